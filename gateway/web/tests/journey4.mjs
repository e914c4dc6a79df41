// Journey 4 — Client Services checks on a customer: the history filtered by
// organization, type, state, requester and dates, paged; the import's detail
// (who, when, files with checksums, timeline, per-file counts) whose counts the
// Rust test compares with the database.
//
// Env: CHECKED_IMPORT_ID. The harness made 21 small drafts and the checked
// import for organization 1042, and one rolodex draft for organization 2001.
import { GATEWAY_URL, assert, assertEq, eventually, openSignedIn, required, run } from "./lib.mjs";

const checked = required("CHECKED_IMPORT_ID");

await run("journey4", async (t) => {
  const page = await openSignedIn(t, required("ADMIN_TOKEN"), "/imports");
  const rows = page.getByTestId("history-row");
  const countIs = (n, what) => eventually(async () => (await rows.count()) === n && !(await page.getByTestId("history-table").getAttribute("aria-busy") === "true"), `${what}: ${n} rows`);

  t.step("Paging: 23 imports, 20 a page");
  await countIs(20, "page 1");
  await t.shot(page, "history-page-1");
  await page.getByRole("button", { name: "Next page" }).click();
  await countIs(3, "page 2");
  assertEq(await page.getByTestId("page-number").textContent(), "Page 2", "page number");
  await page.getByRole("button", { name: "Previous page" }).click();
  await countIs(20, "back on page 1");

  t.step("By organization (picked by id)");
  await page.getByLabel("Organization").fill("2001");
  await page.getByRole("option", { name: /Organization 2001/ }).click();
  await countIs(1, "organization 2001");
  assert(/rolodex\.csv/.test(await rows.first().textContent()), "organization 2001's import");
  await page.getByRole("button", { name: "clear" }).click();
  await countIs(20, "all organizations again");

  t.step("By type, state, requester and dates");
  await page.getByLabel("Import type").selectOption("rolodex");
  await countIs(1, "rolodex");
  await page.getByLabel("Import type").selectOption("");
  await page.getByLabel("State").selectOption("COMPLETED_WITH_ERRORS");
  await countIs(1, "completed with errors");
  assertEq(await rows.first().getAttribute("data-import-id"), checked, "the checked import");
  await t.shot(page, "history-by-state");
  await page.getByLabel("State").selectOption("");
  await page.getByLabel(/Requested by/).fill("nobody@passare.com");
  await page.getByRole("button", { name: "Apply" }).click();
  await countIs(0, "an unknown requester");
  await page.getByLabel(/Requested by/).fill("ADMIN-1@passare.com");
  await page.getByRole("button", { name: "Apply" }).click();
  await countIs(20, "the requester by e-mail, any case");
  const today = new Date();
  const day = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  await page.getByLabel("Created to").fill(day(new Date(today.getTime() - 86_400_000)));
  await countIs(0, "created before today");
  await page.getByLabel("Created to").fill("");
  await page.getByLabel("Created from").fill(day(today));
  await countIs(20, "created today");
  await t.shot(page, "history-filtered");

  t.step("The import's detail");
  await page.goto(`${GATEWAY_URL}/imports/${checked}`);
  const file = page.getByTestId("file-row").first();
  await file.waitFor();
  assert(/^[0-9a-f]{64}$/.test((await file.getByTestId("sha256").textContent()).trim()), "the checksum is shown");
  assert(/User admin-1/.test(await page.getByTestId("requested-by").textContent()), "who requested it");
  const kinds = await page.locator(".timeline li").evaluateAll((xs) => xs.map((x) => x.dataset.kind));
  for (const k of ["created", "file_added", "analyzed", "queued", "started", "completed_with_errors"]) assert(kinds.includes(k), `the timeline has ${k}: ${kinds}`);
  await page.getByTestId("row-errors-table").waitFor();
  await t.shot(page, "detail");
  const num = async (id) => Number((await file.getByTestId(id).textContent()).replace(/\D/g, ""));
  const counts = {
    created: await num("created"),
    updated: await num("updated"),
    unchanged: await num("unchanged"),
    stale: await num("stale"),
    failed: await num("failed"),
  };
  console.log(JSON.stringify({ detailCounts: counts }));
});
