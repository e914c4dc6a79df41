// Shared helpers of the browser tests: Debian's Chromium driven by
// playwright-core (no browser download), screenshots to a folder outside git,
// sign-in through the page, and a small assertion vocabulary.
//
// Environment (set by integration-tests/tests/browser.rs, or by hand):
//   GATEWAY_URL       the gateway serving the page and grpc-web (required)
//   ADMIN_TOKEN, DEVELOPER_TOKEN, MEMBER_TOKEN   bearer tokens
//   SCREENSHOT_DIR    where screenshots go (default /tmp/passare-imports-screenshots)
//   CHROMIUM          the browser (default /usr/bin/chromium)
//   HEADED=1          show the browser (needs a display)
import { chromium } from "playwright-core";
import { mkdtemp, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

export const GATEWAY_URL = required("GATEWAY_URL");
export const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || "/tmp/passare-imports-screenshots";

export function required(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

/** Launches Chromium with a fresh profile; returns the persistent context. */
export async function launch(testName) {
  const profile = await mkdtemp(path.join(tmpdir(), "passare-chromium-"));
  const shots = path.join(SCREENSHOT_DIR, testName);
  await rm(shots, { recursive: true, force: true });
  await mkdir(shots, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: process.env.HEADED !== "1",
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ].filter((a) => a !== "--headless" || process.env.HEADED !== "1"),
  });
  context.setDefaultTimeout(Number(process.env.STEP_TIMEOUT_MS || 30_000));
  let n = 0;
  const log = [];
  const t = {
    context,
    shots,
    /** Writes `NN-name.png` of the page. */
    async shot(page, name) {
      n += 1;
      const file = path.join(shots, `${String(n).padStart(2, "0")}-${name}.png`);
      await page.screenshot({ path: file });
      return file;
    },
    step(message) {
      log.push(message);
      console.log(`[${testName}] ${message}`);
    },
    async close() {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true }).catch(() => undefined);
    },
  };
  for (const page of context.pages()) await page.close();
  context.on("page", (page) => watchConsole(testName, page));
  return t;
}

function watchConsole(testName, page) {
  page.on("pageerror", (e) => console.error(`[${testName}] page error: ${e.stack ?? e}`));
  page.on("console", (m) => {
    if (m.type() === "error") console.error(`[${testName}] console: ${m.text()}`);
  });
}

/** Opens a new tab on `path` and signs in with `token` through the sign-in form. */
export async function openSignedIn(t, token, pathname = "/imports") {
  const page = await t.context.newPage();
  await page.goto(GATEWAY_URL + pathname);
  await page.getByLabel("Bearer token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("who").waitFor();
  if (new URL(page.url()).pathname !== pathname) await page.goto(GATEWAY_URL + pathname);
  return page;
}

export function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

export function assertEq(actual, expected, message) {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`assertion failed: ${message}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** Waits until `f()` is truthy (polling), or fails with `message`. */
export async function eventually(f, message, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await f();
      if (last) return last;
    } catch (e) {
      if (e instanceof PageError) throw e;
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${message} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs a test body with a browser; exits non-zero with the error when it fails. */
export async function run(testName, body) {
  const t = await launch(testName);
  const started = Date.now();
  try {
    await body(t);
    console.log(`[${testName}] passed in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${t.shots}`);
    console.log(JSON.stringify({ result: "passed", test: testName, screenshots: t.shots }));
  } catch (e) {
    for (const page of t.context.pages()) await t.shot(page, "failure").catch(() => undefined);
    console.error(`[${testName}] FAILED: ${e.stack ?? e}`);
    console.log(JSON.stringify({ result: "failed", test: testName, error: String(e.message ?? e), screenshots: t.shots }));
    process.exitCode = 1;
  } finally {
    await t.close();
  }
}

/** Reads a Playwright download into a string. */
export async function downloadText(download) {
  const file = await download.path();
  const { readFile } = await import("node:fs/promises");
  return readFile(file, "utf8");
}

/** An error the page shows: ends an `eventually` at once. */
export class PageError extends Error {}

/** Throws a PageError when the page shows an error box (e.g. an upload the server refused). */
export async function noPageError(page) {
  const e = page.getByTestId("error");
  if ((await e.count()) > 0) throw new PageError(`the page shows an error: ${await e.first().textContent()}`);
}
