// Opens the main screens and takes their screenshots (a quick look, no journey).
import { openSignedIn, run, required } from "./lib.mjs";

await run("smoke", async (t) => {
  const page = await openSignedIn(t, required("ADMIN_TOKEN"));
  await page.getByTestId("history-table").waitFor();
  await t.shot(page, "history");
  for (const p of (process.env.SMOKE_PATHS || "/imports/catalog,/imports/new,/imports/pauses").split(",")) {
    await page.goto(process.env.GATEWAY_URL + p);
    await page.waitForTimeout(800);
    await t.shot(page, p.replace(/\W+/g, "-"));
  }
});
