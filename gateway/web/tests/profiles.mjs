// A vendor's export read with a saved import profile: the draft page
// suggests the profile whose source headers the file's header holds and
// waits for the user to confirm it, the stored file names the profile
// version, the analysis shows each transform rule's before and after, and
// the import completes (the Rust test checks the stored records).
//
// Env: IMPORT_ID (a draft), CASES_FILE (the vendor's export), PROFILE_ID.
import { assert, assertEq, eventually, noPageError, openSignedIn, required, run } from "./lib.mjs";

await run("profiles", async (t) => {
  const file = required("CASES_FILE");
  const name = file.split("/").pop();
  const page = await openSignedIn(t, required("ADMIN_TOKEN"), `/imports/${required("IMPORT_ID")}`);

  t.step("Drop the vendor's file: the matching profile is suggested, nothing uploads yet");
  await page.getByTestId("file-input").setInputFiles(file);
  const choice = page.getByTestId(`profile-${name}`);
  await choice.waitFor();
  assertEq(await choice.inputValue(), required("PROFILE_ID"), "the suggested profile is chosen");
  assertEq(await page.getByTestId("stored-file").count(), 0, "the file waits for the user");
  await t.shot(page, "profile-suggested");

  t.step("Upload with the profile");
  await page.getByTestId("pending-file").getByRole("button", { name: "Upload" }).click();
  await eventually(async () => (await noPageError(page), (await page.getByTestId("stored-file").count()) === 1), "the file is stored", 60_000);
  const shown = await page.getByTestId("file-profile").textContent();
  assert(/FuneralTech cases v1/.test(shown), `the stored file names its profile: ${shown}`);

  t.step("The analysis shows what each rule did");
  await page.getByTestId("analyze").click();
  const rules = page.getByTestId(`rules-${name}`);
  await rules.waitFor({ timeout: 60_000 });
  const text = await rules.textContent();
  assert(/deceased_first_name = "Mary Ann"/.test(text) && /deceased_last_name = "Smith"/.test(text), `the split's after: ${text}`);
  assert(/date_of_death = "2025-03-04"/.test(text), `the date rule's after: ${text}`);
  await t.shot(page, "rule-effects");

  t.step("Start and complete");
  await eventually(async () => !(await page.getByTestId("start").isDisabled()), "Start is enabled", 60_000);
  await page.getByTestId("start").click();
  await page.locator('.import-page[data-state="COMPLETED"]').waitFor({ timeout: 120_000 });
  await t.shot(page, "completed");
  console.log(JSON.stringify({ done: true }));
});
