// Live view of a started import: total and per-file progress, rows/s and time
// left, state, queue position ("after import … of this organization"), the pause
// banner with its reason, and Stop with a reason and a confirmation. It follows
// WatchImport and reconnects, so leaving and coming back (another tab,
// tomorrow) shows the same view: the URL is the import's.
// API: WatchImport, ListImports (the imports ahead in the queue), StopImport.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, canManage, type Identity } from "../api/client.js";
import { ImportState, type Import } from "../gen/passare/imports/v1/imports_pb.js";
import { ErrorBox, Link, Progress, StateBadge, TERMINAL, fileStateName, fmtDuration, fmtInt, fmtTime, n } from "../ui/common.js";

const watchImport = (importId: string, signal: AbortSignal) => api.watchImport({ importId }, { signal });
const importsAhead = (organizationId: string, state: ImportState) => api.listImports({ organizationId, state, pageSize: 100 });
const stopImport = (importId: string, reason: string) => api.stopImport({ importId, reason });

/**
 * Follows the import until it ends, handing every event's import to
 * `onImport` at most once per animation frame (a million-row import sends many
 * events; the page draws the latest).
 */
export function useWatch(imp: Import, onImport: (imp: Import) => void): { connected: boolean; error: unknown } {
  const [connected, setConnected] = useState(false);
  const [error, setError] = useState<unknown>();
  const terminal = TERMINAL.has(imp.state);
  useEffect(() => {
    if (terminal) return;
    const abort = new AbortController();
    let latest: Import | undefined;
    let frame = 0;
    const flush = () => {
      frame = 0;
      if (latest) onImport(latest);
    };
    (async () => {
      let delay = 500;
      while (!abort.signal.aborted) {
        try {
          for await (const ev of watchImport(imp.id, abort.signal)) {
            setConnected(true);
            setError(undefined);
            delay = 500;
            if (!ev.import) continue;
            latest = ev.import;
            frame ||= requestAnimationFrame(flush);
            if (TERMINAL.has(ev.import.state)) {
              cancelAnimationFrame(frame);
              flush();
              return;
            }
          }
        } catch (e) {
          if (abort.signal.aborted) return;
          setError(e);
        }
        setConnected(false);
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10_000);
      }
    })();
    return () => {
      abort.abort();
      cancelAnimationFrame(frame);
    };
  }, [imp.id, terminal]);
  return { connected, error };
}

/** Rows per second over the last ten seconds of progress. */
function useRate(processed: number): number {
  const samples = useRef<[number, number][]>([]);
  const now = performance.now();
  const s = samples.current;
  if (!s.length || s[s.length - 1][1] !== processed) s.push([now, processed]);
  while (s.length > 2 && now - s[0][0] > 10_000) s.shift();
  if (s.length < 2) return 0;
  const [t0, r0] = s[0];
  const [t1, r1] = s[s.length - 1];
  return t1 > t0 ? ((r1 - r0) * 1000) / (t1 - t0) : 0;
}

export function LiveView(props: { imp: Import; who: Identity; onImport: (imp: Import) => void }) {
  const imp = props.imp;
  const { connected, error } = useWatch(imp, props.onImport);
  const p = imp.progress;
  const processed = n(p?.rowsProcessed);
  const total = n(p?.rowsTotal);
  const rate = useRate(processed);
  const left = rate > 0 ? (total - processed) / rate : NaN;
  const active = !TERMINAL.has(imp.state);
  const moving = active && imp.state !== ImportState.PAUSED && imp.state !== ImportState.QUEUED;

  return (
    <section class="card live" aria-labelledby="live-title" data-testid="live">
      <header>
        <h2 id="live-title">
          Live · <StateBadge state={imp.state} />
        </h2>
        <span class={connected ? "good" : "muted"} data-testid="connection">
          {active ? (connected ? "● following" : "○ connecting…") : "finished"}
        </span>
      </header>
      {imp.pause && (
        <div class="banner paused" role="status" data-testid="pause-banner">
          <strong>Paused</strong> {imp.pause.organizationId ? `(organization ${imp.pause.organizationId})` : "(all organizations)"} by{" "}
          {imp.pause.pausedBy?.email || imp.pause.pausedBy?.id} at {fmtTime(imp.pause.pauseTime)}: <q data-testid="pause-reason">{imp.pause.reason}</q>. Chunks in hand
          finish; nothing new starts until the pause is lifted.
        </div>
      )}
      {imp.state === ImportState.QUEUED && <QueuePosition imp={imp} />}
      {imp.state === ImportState.ROLLING_BACK && imp.rollback && (
        <div class="banner paused" role="status" data-testid="rollback-banner">
          <strong>Rolling back</strong>: this all-or-nothing import{" "}
          {imp.rollback.endsAs === ImportState.STOPPED ? "was stopped" : "failed"}; what it wrote is being put back before
          anything else of the organization runs.
          <Progress value={n(imp.rollback.recordsDone)} max={n(imp.rollback.recordsTotal)} label="Records put back" />
        </div>
      )}
      <Progress value={processed} max={total} label="All files" />
      <dl class="counts" data-testid="live-counts">
        <div>
          <dt>rows</dt>
          <dd data-testid="rows-processed">
            {fmtInt(processed)} / {fmtInt(total)}
          </dd>
        </div>
        <div>
          <dt>rows/s</dt>
          <dd data-testid="rows-per-second">{moving ? fmtInt(Math.round(rate)) : "—"}</dd>
        </div>
        <div>
          <dt>time left</dt>
          <dd>{moving ? fmtDuration(left) : imp.state === ImportState.PAUSED ? "paused" : "—"}</dd>
        </div>
        <div>
          <dt>chunks</dt>
          <dd>
            {p?.chunksDone ?? 0} / {p?.chunksTotal ?? 0}
          </dd>
        </div>
        <div>
          <dt>failed rows</dt>
          <dd class={n(p?.rowsFailed) ? "bad" : ""}>{fmtInt(p?.rowsFailed)}</dd>
        </div>
      </dl>
      <table class="files">
        <tbody>
          {imp.files.map((f) => (
            <tr>
              <th scope="row">{f.name}</th>
              <td class="wide">
                <Progress value={n(f.progress?.rowsProcessed)} max={n(f.progress?.rowsTotal ?? f.rowCount)} label={f.name} />
              </td>
              <td>
                {fmtInt(f.progress?.rowsProcessed)} / {fmtInt(f.progress?.rowsTotal ?? f.rowCount)}
              </td>
              <td>{fileStateName(f.state)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <ErrorBox error={error} title="Lost the live connection; reconnecting" />
      {active && canManage(props.who) && <StopButton imp={imp} onImport={props.onImport} />}
    </section>
  );
}

function QueuePosition(props: { imp: Import }) {
  const imp = props.imp;
  const [ahead, setAhead] = useState<Import | undefined>();
  useEffect(() => {
    if (imp.queuePosition <= 0) return setAhead(undefined);
    Promise.all([importsAhead(imp.organizationId, ImportState.RUNNING), importsAhead(imp.organizationId, ImportState.QUEUED), importsAhead(imp.organizationId, ImportState.PAUSED)])
      .then((rs) => {
        const mine = n(imp.queueTime?.seconds) * 1e9 + (imp.queueTime?.nanos ?? 0);
        const before = rs
          .flatMap((r) => r.imports)
          .filter((i) => i.id !== imp.id && i.queueTime && n(i.queueTime.seconds) * 1e9 + i.queueTime.nanos < mine)
          .sort((a, b) => n(b.queueTime!.seconds) - n(a.queueTime!.seconds) || b.queueTime!.nanos - a.queueTime!.nanos);
        setAhead(before[0]);
      })
      .catch(() => setAhead(undefined));
  }, [imp.id, imp.queuePosition]);
  return (
    <p class="banner queued" data-testid="queue-position">
      {imp.queuePosition === 0 ? (
        "Next in line for this organization."
      ) : (
        <>
          Waiting behind {imp.queuePosition} import{imp.queuePosition === 1 ? "" : "s"} of this organization
          {ahead && (
            <>
              {" "}
              — after import <Link href={`/imports/${ahead.id}`}>{ahead.files.map((f) => f.name).join(", ") || ahead.id.slice(0, 8)}</Link> ({fmtTime(ahead.createTime)})
            </>
          )}
          .
        </>
      )}
    </p>
  );
}

function StopButton(props: { imp: Import; onImport: (imp: Import) => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [reason, setReason] = useState("");
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const allOrNothing = props.imp.failurePolicy === 1;
  const stop = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      const { import: stopped } = await stopImport(props.imp.id, reason.trim());
      dialog.current?.close();
      if (stopped) props.onImport(stopped);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" class="danger" onClick={() => dialog.current?.showModal()} data-testid="stop">
        Stop…
      </button>
      <dialog ref={dialog} aria-labelledby="stop-title" data-testid="stop-dialog">
        <form onSubmit={stop} class="stack">
          <h3 id="stop-title">Stop this import?</h3>
          <p>
            The chunk in hand finishes; nothing after it starts.{" "}
            {allOrNothing ? <strong>All or nothing: every record it wrote is rolled back.</strong> : "What it wrote so far stays and is counted."}
          </p>
          <label class="field">
            <span>Reason (shown in the history)</span>
            <textarea name="reason" required value={reason} onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)} />
          </label>
          <ErrorBox error={error} title="Could not stop the import" />
          <div class="row">
            <button type="submit" class="danger" disabled={busy || !reason.trim()} data-testid="confirm-stop">
              Stop the import
            </button>
            <button type="button" onClick={() => dialog.current?.close()}>
              Keep it running
            </button>
          </div>
        </form>
      </dialog>
    </>
  );
}
