// The resumable upload in Chromium (needs the server's CreateUpload…): a
// generated 50 MB file goes through the New import screen's upload client.
// MODE=offline: the browser goes offline mid-upload, comes back, and the
// upload completes. MODE=reload: the page is reloaded mid-upload, the file is
// chosen again, and the client resumes from the committed offset (it prints
// where it resumed and how many bytes it sent after the reload).
//
// Env: IMPORT_ID (an empty draft), BIG_FILE, MODE.
import { assert, eventually, noPageError, openSignedIn, required, run } from "./lib.mjs";

const mode = required("MODE");
const file = required("BIG_FILE");

await run(`upload-${mode}`, async (t) => {
  const page = await openSignedIn(t, required("ADMIN_TOKEN"), `/imports/${required("IMPORT_ID")}`);
  await page.getByTestId("draft-files").waitFor();
  await page.getByTestId("file-input").setInputFiles(file);
  const stats = page.getByTestId("upload-stats");
  const committed = async () => Number((await stats.getAttribute("data-committed").catch(() => "0")) ?? 0);
  await eventually(async () => (await noPageError(page), (await committed()) > 12 * 1024 * 1024), "12 MB committed", 120_000);
  await t.shot(page, "uploading");
  if (mode === "offline") {
    await t.context.setOffline(true);
    await eventually(async () => /offline|retrying/.test((await stats.textContent()) ?? ""), "the client waits for the network", 30_000);
    const held = await committed();
    await page.waitForTimeout(2000);
    await t.shot(page, "offline");
    assert((await committed()) === held, "nothing is committed while offline");
    await t.context.setOffline(false);
  } else {
    const before = await committed();
    await page.reload();
    await page.getByTestId("draft-files").waitFor();
    await page.getByTestId("file-input").setInputFiles(file);
    await eventually(async () => Number((await stats.getAttribute("data-resumed-from").catch(() => "0")) ?? 0) > 0, "the client resumes", 60_000);
    const resumedFrom = Number(await stats.getAttribute("data-resumed-from"));
    assert(resumedFrom >= before, `resumed at ${resumedFrom}, at least the ${before} bytes seen committed before the reload`);
    await t.shot(page, "resumed");
  }
  const done = page.getByTestId("upload-done");
  await done.waitFor({ timeout: 300_000 });
  await eventually(async () => (await page.getByTestId("stored-file").count()) === 1, "the file is attached");
  await t.shot(page, "uploaded");
  console.log(JSON.stringify({ resumedFrom: Number(await done.getAttribute("data-resumed-from")), sentAfterReload: Number(await done.getAttribute("data-sent")) }));
});
