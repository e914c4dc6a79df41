// Journey 3 — an incident: a developer pauses every organization's imports
// with a reason, the banner appears on a running import's live view (another
// tab), the developer view lists a chunk failure with its cause chain and
// backtrace, the developer resumes and the import completes; a plain user
// sees neither the developer view nor backtraces.
//
// Env: RUNNING_IMPORT_ID (running), FAILED_IMPORT_ID (has a failed chunk).
import { GATEWAY_URL, assert, eventually, openSignedIn, required, run } from "./lib.mjs";

const running = required("RUNNING_IMPORT_ID");
const failed = required("FAILED_IMPORT_ID");
const reason = "Deploy 4.2 breaks chunk writes";
const rowsOf = async (page) => Number(((await page.getByTestId("rows-processed").textContent()) ?? "").split("/")[0].replace(/\D/g, ""));

await run("journey3", async (t) => {
  t.step("Live view of the running import");
  const live = await openSignedIn(t, required("ADMIN_TOKEN"), `/imports/${running}`);
  await live.getByTestId("live").waitFor();
  await eventually(async () => (await rowsOf(live)) > 0, "progress shows");

  t.step("Pause every organization, with a reason");
  const ops = await openSignedIn(t, required("DEVELOPER_TOKEN"), "/imports/pauses");
  await ops.getByLabel(/Reason/).fill(reason);
  await ops.getByTestId("pause-submit").click();
  await ops.locator('[data-testid="pause"][data-scope="all"]').waitFor();
  await t.shot(ops, "pause-switch");

  t.step("The banner appears on the running import");
  await live.bringToFront();
  await live.getByTestId("pause-banner").waitFor({ timeout: 30_000 });
  assert((await live.getByTestId("pause-reason").textContent()) === reason, "the banner gives the reason");
  assert((await live.getByTestId("state").first().textContent()) === "paused", "the state reads paused");
  // The chunk in hand finishes; then nothing moves.
  await live.waitForTimeout(1500);
  const held = await rowsOf(live);
  await live.waitForTimeout(2500);
  assert((await rowsOf(live)) === held, "no chunk starts while paused");
  await t.shot(live, "live-paused");

  t.step("The developer view: the chunk failure with its backtrace");
  await ops.goto(`${GATEWAY_URL}/imports/failures?import=${failed}`);
  const failure = ops.getByTestId("chunk-failure").first();
  await failure.waitFor();
  assert((await failure.getAttribute("data-kind")) === "storage_missing", "the failure's kind");
  await failure.locator("summary").click();
  const backtrace = (await failure.getByTestId("backtrace").textContent()) ?? "";
  assert(backtrace.trim().length > 0, "a backtrace is shown to developers");
  assert((await failure.getByTestId("causes").locator("li").count()) > 0, "the cause chain is shown");
  await t.shot(ops, "developer-view");

  t.step("Resume; the import goes on and completes");
  await ops.goto(`${GATEWAY_URL}/imports/pauses`);
  await ops.getByTestId("resume-all").click();
  await eventually(async () => (await ops.getByTestId("pause").count()) === 0, "no pause left");
  await live.bringToFront();
  await live.getByTestId("pause-banner").waitFor({ state: "detached", timeout: 30_000 });
  await live.locator('.import-page[data-state="COMPLETED"]').waitFor({ timeout: 240_000 });
  await t.shot(live, "completed-after-resume");

  t.step("A plain user sees no developer view and no backtrace");
  const member = await openSignedIn(t, required("MEMBER_TOKEN"), "/imports");
  assert((await member.getByRole("link", { name: "Chunk failures" }).count()) === 0, "no developer menu for a plain user");
  await member.goto(`${GATEWAY_URL}/imports/failures`);
  await member.getByTestId("error-reason").waitFor();
  assert((await member.getByTestId("error-reason").textContent()) === "NOT_SUPER_ADMIN", "the developer view is refused with its reason");
  await t.shot(member, "member-refused");
  await member.goto(`${GATEWAY_URL}/imports/${failed}`);
  const mine = member.getByTestId("chunk-failure").first();
  await mine.waitFor();
  await mine.locator("summary").click();
  assert((await mine.getByTestId("backtrace").count()) === 0, "no backtrace for a plain user");
  await t.shot(member, "member-detail");
  console.log(JSON.stringify({ pausedAtRows: held }));
});
