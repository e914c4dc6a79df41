// Builds the page into dist/: one JS and one CSS bundle with content hashes in
// their names (the gateway lets browsers cache them for good) and an
// index.html that names them (the gateway makes browsers revalidate it).
// Nothing is fetched at run time: every dependency is in the bundle.
import { build } from "esbuild";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";

const dist = "dist";
await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
const result = await build({
  entryPoints: { app: "src/main.tsx" },
  bundle: true,
  format: "esm",
  target: ["chrome110", "firefox115", "safari16"],
  jsx: "automatic",
  jsxImportSource: "preact",
  minify: process.env.MINIFY !== "0",
  sourcemap: true,
  outdir: dist,
  entryNames: "assets/[name]-[hash]",
  assetNames: "assets/[name]-[hash]",
  metafile: true,
  logLevel: "warning",
  legalComments: "linked",
});
const outputs = Object.keys(result.metafile.outputs).map((o) => "/" + path.relative(dist, o).split(path.sep).join("/"));
const js = outputs.find((o) => o.endsWith(".js"));
const css = outputs.find((o) => o.endsWith(".css"));
const html = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Data Imports · Operations Center · Passare</title>
    <link rel="icon" href="data:," />
    ${css ? `<link rel="stylesheet" href="${css}" />` : ""}
    <script type="module" src="${js}"></script>
  </head>
  <body>
    <div id="app"><noscript>The Operations Center needs JavaScript.</noscript></div>
  </body>
</html>
`;
await writeFile(path.join(dist, "index.html"), html);
console.log(`built ${dist}/index.html, ${js}${css ? `, ${css}` : ""}`);

// The same upload client for Node: the grpc-web tests through the gateway
// (tests/upload-node.mjs) run the page's own client code.
await build({
  entryPoints: ["src/upload/node.ts"],
  bundle: true,
  platform: "node",
  format: "esm",
  target: ["node20"],
  outfile: "dist-node/upload-client.mjs",
  logLevel: "warning",
});
console.log("built dist-node/upload-client.mjs");
