// Journey 1 — onboarding Riverside Funeral Home (organization 1042):
// four files of different types (cases.xlsx, family.csv, contracts.csv,
// payments.csv), the analysis blocks with its reasons listed, family.csv is
// replaced (PAGE_UPLOADS=1: through the page's resumable upload) or removed
// (files uploaded by the harness, the same journey without the page's
// uploads), "import as much as possible" is started, the tab is
// closed, a new tab finds the import in the history by organization, the
// failed rows are downloaded, two corrected in a file uploaded back and one
// edited inline, and retried until the import completes.
//
// Env: CASES_FILE FAMILY_FILE CONTRACTS_FILE PAYMENTS_FILE FAMILY_FIXED_FILE,
// and IMPORT_ID (a draft holding the four files) unless PAGE_UPLOADS=1.
import { GATEWAY_URL, assert, assertEq, downloadText, eventually, noPageError, openSignedIn, required, run } from "./lib.mjs";

const pageUploads = process.env.PAGE_UPLOADS === "1";
const files = ["CASES_FILE", "FAMILY_FILE", "CONTRACTS_FILE", "PAYMENTS_FILE"].map(required);

await run(pageUploads ? "journey1-page-uploads" : "journey1", async (t) => {
  const admin = required("ADMIN_TOKEN");
  let page;
  let importId;
  if (pageUploads) {
    t.step("New import: pick the organization, drop four files");
    page = await openSignedIn(t, admin, "/imports/new");
    await page.getByLabel("Organization to import into").fill("river");
    await page.getByRole("option", { name: /Riverside Funeral Home/ }).click();
    await t.shot(page, "new-import");
    await page.getByTestId("file-input").setInputFiles(files);
    await page.waitForURL(/\/imports\/[0-9a-f-]{36}$/);
    importId = new URL(page.url()).pathname.split("/").pop();
    await eventually(async () => (await page.getByTestId("pending-file").count()) > 0 || (await page.getByTestId("stored-file").count()) === 4, "uploads begin");
    await t.shot(page, "uploading");
  } else {
    importId = required("IMPORT_ID");
    page = await openSignedIn(t, admin, `/imports/${importId}`);
  }
  await eventually(async () => (await noPageError(page), (await page.getByTestId("stored-file").count()) === 4), "four stored files", 120_000);
  const types = await page.getByTestId("stored-file").evaluateAll((rows) => rows.map((r) => [r.dataset.name, r.children[1].textContent]));
  t.step(`files: ${JSON.stringify(types)}`);
  // Uploads finish in any order: compare by file name.
  assertEq(Object.fromEntries(types.sort()), { "cases.xlsx": "Cases", "contracts.csv": "Contract Information", "family.csv": "Family And Friends", "payments.csv": "Payments" }, "a type per file");
  await t.shot(page, "draft-files");

  t.step("Analysis blocks, with the reasons listed");
  await page.getByTestId("analyze").click();
  const reasons = page.getByTestId("start-reasons");
  await eventually(async () => /family\.csv: missing column/.test(await reasons.textContent()), "the missing column of family.csv is a reason");
  assert(await page.getByTestId("start").isDisabled(), "Start is disabled while blocking findings stand");
  const payments = page.getByTestId("analysis-payments.csv");
  assert((await payments.locator('[data-kind="UNRESOLVED_REFERENCE"][data-severity="WARNING"]').count()) === 1, "payments naming unknown contracts are a warning");
  await payments.locator('[data-kind="UNRESOLVED_REFERENCE"] summary').click();
  await eventually(async () => (await payments.locator("table.samples tbody tr td:first-child").first().textContent()) === "58", "the sample rows name row 58");
  await t.shot(page, "analysis-findings");
  await page.getByTestId("start-section").scrollIntoViewIfNeeded();
  await t.shot(page, "start-blocked-with-reasons");

  if (pageUploads) {
    t.step("Replace family.csv with the corrected file");
    await page.getByTestId("replace-family.csv").setInputFiles(required("FAMILY_FIXED_FILE"));
    await eventually(async () => (await page.getByTestId("pending-file").count()) === 0 && (await page.getByTestId("stored-file").count()) === 4, "family.csv replaced", 120_000);
  } else {
    t.step("Remove family.csv (replacing it needs the page's upload)");
    await page.getByRole("button", { name: "Remove family.csv" }).click();
    await eventually(async () => (await page.getByTestId("stored-file").count()) === 3, "family.csv removed");
  }
  await eventually(async () => /changed since the analysis/.test(await reasons.textContent()), "the analysis is stale");
  await page.getByTestId("analyze").click();
  await eventually(async () => !(await page.getByTestId("start").isDisabled()), "only warnings remain: Start is enabled", 60_000);
  await page.getByTestId("start-section").getByLabel(/Import as much as possible/).check();
  await t.shot(page, "analysis-warnings-only");

  t.step("Start, see the live view, close the tab");
  await page.getByTestId("start").click();
  await page.getByTestId("live").waitFor();
  await t.shot(page, "live");
  await page.close();

  t.step("A new tab: the history, filtered by organization");
  const next = await openSignedIn(t, admin, "/imports");
  await next.getByLabel("Organization").fill("Riverside");
  await next.getByRole("option", { name: /Riverside Funeral Home/ }).click();
  await next.waitForURL(/org=1042/);
  const row = next.locator(`[data-import-id="${importId}"]`);
  await row.waitFor();
  await t.shot(next, "history-by-organization");
  await row.getByRole("link").click();
  await next.locator('.import-page[data-state="COMPLETED_WITH_ERRORS"]').waitFor({ timeout: 180_000 });
  const paymentsRow = next.locator('[data-testid="file-row"][data-name="payments.csv"]');
  assertEq((await paymentsRow.getByTestId("failed").textContent()).trim(), "3", "3 failed payment rows");
  await next.getByTestId("row-errors-table").waitFor();
  await t.shot(next, "completed-with-errors");

  t.step("Download the failed rows, correct two in a file, edit the third inline");
  const [download] = await Promise.all([next.waitForEvent("download"), next.getByTestId("download-failed-payments.csv").click()]);
  const csv = await downloadText(download);
  const lines = csv.trim().split(/\r?\n/);
  const header = lines[0].split(",");
  assertEq(header.slice(0, 2), ["row", "contract_number"], "failed rows start with row and the file's headers");
  assertEq(lines.length, 4, "three failed rows");
  const errorAt = header.indexOf("error");
  const fixed = [header.slice(0, errorAt).join(",")];
  for (const line of lines.slice(1, 3)) {
    const cells = line.split(",");
    assert(/^K-90\d\d$/.test(cells[1]), `a failed row names an unknown contract: ${line}`);
    cells[1] = `K-${Number(cells[1].slice(2)) - 9050}`;
    fixed.push(cells.slice(0, errorAt).join(","));
  }
  // Handed to the file input from memory: nothing is left on disk.
  const correctionFile = { name: "payments.corrected.csv", mimeType: "text/csv", buffer: Buffer.from(fixed.join("\n") + "\n") };
  await next.getByTestId("corrections-payments.csv").setInputFiles(correctionFile);
  await eventually(async () => /2 row\(s\) of payments\.csv corrected/.test((await next.getByTestId("notice").textContent()) ?? ""), "corrections accepted");
  const last = lines[3].split(",")[0];
  await next.getByRole("button", { name: `Edit row ${last} of payments.csv` }).first().click();
  const editor = next.getByTestId("row-editor");
  await editor.getByLabel("Column").fill("contract_number");
  await editor.getByLabel("New value").fill("K-10");
  await t.shot(next, "edit-row");
  await editor.getByRole("button", { name: "Save the row" }).click();
  await editor.waitFor({ state: "detached" });

  t.step("Retry the failed rows");
  await next.getByTestId("retry").click();
  await next.locator('.import-page[data-state="COMPLETED"]').waitFor({ timeout: 180_000 });
  assertEq((await paymentsRow.getByTestId("failed").textContent()).trim(), "0", "no failed row left");
  await t.shot(next, "completed");
  console.log(JSON.stringify({ importId, gateway: GATEWAY_URL }));
});
