// How the live view keeps up with a large import: the page starts an
// analysed draft and, inside the page, a MutationObserver timestamps every
// change of the rows counter while a PerformanceObserver records long tasks
// (main-thread work over 50 ms, which a user feels as a frozen page). Prints
// the figures (first progress after Start, updates per second, the longest
// gap between updates, long tasks) as one JSON line; the Rust test prints
// them. Nothing here asserts a time.
//
// Env: IMPORT_ID (an analysed draft, large enough to run for several seconds).
import { eventually, openSignedIn, required, run } from "./lib.mjs";

await run("live-view", async (t) => {
  const page = await openSignedIn(t, required("ADMIN_TOKEN"), `/imports/${required("IMPORT_ID")}`);
  await page.getByTestId("analyze").click();
  await eventually(async () => !(await page.getByTestId("start").isDisabled()), "the analysis allows Start", 120_000);
  await page.evaluate(() => {
    const w = window;
    w.__live = { longTasks: [], updates: [], clicked: 0 };
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) w.__live.longTasks.push(e.duration);
    }).observe({ type: "longtask", buffered: false });
    // The live view replaces the draft screen: watch the whole page for the
    // rows counter's text changing.
    let last = "";
    new MutationObserver(() => {
      const el = document.querySelector('[data-testid="rows-processed"]');
      const text = el?.textContent ?? "";
      if (text && text !== last) {
        last = text;
        w.__live.updates.push([performance.now(), text]);
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
    document.querySelector('[data-testid="start"]')?.addEventListener("click", () => (w.__live.clicked = performance.now()), { capture: true });
  });
  await page.getByTestId("start").click();
  await page.getByTestId("live").waitFor();
  await t.shot(page, "live-running");
  await page.locator('.import-page[data-state="COMPLETED"]').waitFor({ timeout: 600_000 });
  await t.shot(page, "completed");
  const m = await page.evaluate(() => window.__live);
  const moving = m.updates.filter(([, text]) => !/^0\s*\//.test(text.trim()));
  const times = moving.map(([at]) => at);
  const gaps = times.slice(1).map((x, i) => x - times[i]);
  const span = times.length > 1 ? (times[times.length - 1] - times[0]) / 1000 : 0;
  const sorted = [...gaps].sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      firstProgressMs: times.length ? Math.round(times[0] - m.clicked) : null,
      updates: times.length,
      updatesPerSecond: span > 0 ? Number(((times.length - 1) / span).toFixed(2)) : null,
      medianGapMs: sorted.length ? Math.round(sorted[Math.floor(sorted.length / 2)]) : null,
      longestGapMs: sorted.length ? Math.round(sorted[sorted.length - 1]) : null,
      longTasks: m.longTasks.length,
      longestTaskMs: m.longTasks.length ? Math.round(Math.max(...m.longTasks)) : 0,
      runSeconds: Number(span.toFixed(1)),
    }),
  );
});
