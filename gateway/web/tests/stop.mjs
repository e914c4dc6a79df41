// Stop from the live view: an all-or-nothing import is analysed and started
// from the page, stopped with a reason and a confirmation once rows were
// written, and shows it was rolled back (the Rust test checks nothing remains).
//
// Env: IMPORT_ID (a draft, policy all or nothing, about 200,000 rows).
import { assert, eventually, openSignedIn, required, run } from "./lib.mjs";

await run("stop", async (t) => {
  const page = await openSignedIn(t, required("ADMIN_TOKEN"), `/imports/${required("IMPORT_ID")}`);
  await page.getByTestId("analyze").click();
  await eventually(async () => !(await page.getByTestId("start").isDisabled()), "the analysis allows Start", 120_000);
  await page.getByTestId("start-section").getByLabel(/All or nothing/).check();
  const clicked = Date.now();
  await page.getByTestId("start").click();
  await page.getByTestId("live").waitFor();
  const rows = async () => Number(((await page.getByTestId("rows-processed").textContent()) ?? "").split("/")[0].replace(/\D/g, ""));
  await eventually(async () => (await rows()) > 0, "rows are written", 60_000);
  t.step(`first progress ${Date.now() - clicked} ms after Start`);
  await t.shot(page, "live-running");
  await page.getByTestId("stop").click();
  const dialog = page.getByTestId("stop-dialog");
  await dialog.getByLabel(/Reason/).fill("Wrong organization's file");
  await t.shot(page, "stop-confirmation");
  const before = await rows();
  await dialog.getByTestId("confirm-stop").click();
  await page.locator('.import-page[data-state="STOPPED"]').waitFor({ timeout: 60_000 });
  const banner = await page.getByTestId("stopped").textContent();
  assert(/Wrong organization's file/.test(banner) && /rolled back/.test(banner), `the stop and its rollback are shown: ${banner}`);
  await t.shot(page, "stopped");
  console.log(JSON.stringify({ stoppedAfterRows: before }));
});
