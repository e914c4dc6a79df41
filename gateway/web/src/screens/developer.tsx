// Developer view: every failed chunk attempt, newest first — error kind,
// message, cause chain, backtrace, attempt, rows, worker and timestamps (what
// Sidekiq's retry page shows). The service empties backtraces and causes for
// callers without the developer role, and refuses the list to plain users.
// API: ListChunkFailures.
import { useState } from "preact/hooks";
import { api, type Identity } from "../api/client.js";
import { ChunkFailureOutcome, type ChunkFailure } from "../gen/passare/imports/v1/imports_pb.js";
import { ErrorBox, Field, Link, Section, fmtInt, fmtTime } from "../ui/common.js";
import { usePages } from "../ui/paging.js";
import { setQuery, useLocation } from "../ui/router.js";
import { OrgPicker } from "./org-picker.js";

const listChunkFailures = (importId: string, organizationId: string, pageToken: string) =>
  api.listChunkFailures({ importId, organizationId, pageSize: 25, pageToken });

export function DeveloperScreen(props: { who: Identity }) {
  const { query } = useLocation();
  const importId = query.get("import") ?? "";
  const org = query.get("org") ?? "";
  const [importInput, setImportInput] = useState(importId);
  const { page, error, pager } = usePages(
    (token) => listChunkFailures(importId, org, token).then((r) => ({ items: r.chunkFailures, next: r.nextPageToken })),
    [importId, org],
  );
  return (
    <Section title="Chunk failures" id="developer">
      <form class="filters" onSubmit={(e) => (e.preventDefault(), setQuery({ import: importInput.trim(), org }))}>
        <OrgPicker who={props.who} value={org} onChange={(o) => setQuery({ org: o })} allowAll id="failures-org" />
        <Field label="Import id">
          <input value={importInput} onInput={(e) => setImportInput((e.target as HTMLInputElement).value)} />
        </Field>
        <button type="submit">Apply</button>
      </form>
      {!props.who.developer && <p class="muted">Backtraces and cause chains are shown to developers only.</p>}
      <ErrorBox error={error} title="Could not list chunk failures" />
      {page && <ChunkFailureList failures={page.items} developer={props.who.developer} showImport />}
      {page && page.items.length === 0 && <p class="muted">No failed chunk attempt.</p>}
      {pager}
    </Section>
  );
}

const outcome = (o: ChunkFailureOutcome) => (ChunkFailureOutcome[o] ?? "").toLowerCase().replace(/_/g, " ");

export function ChunkFailureList(props: { failures: ChunkFailure[]; developer: boolean; showImport?: boolean }) {
  return (
    <ul class="failures" data-testid="chunk-failures">
      {props.failures.map((f) => (
        <li data-testid="chunk-failure" data-kind={f.errorKind}>
          <details>
            <summary>
              <span class={`badge ${f.transient ? "warn" : "bad"}`}>{f.errorKind}</span> <strong>{f.message}</strong>
              <div class="muted">
                {f.fileName} · chunk {f.chunkSeq} · rows {fmtInt(f.firstRow)}–{fmtInt(f.lastRow)} · attempt {f.attempt} · {outcome(f.outcome)}
                {f.retryTime && <> (retry {fmtTime(f.retryTime)})</>} · worker {f.workerHost} pid {f.workerPid} · failed {fmtTime(f.failTime)}
                {props.showImport && (
                  <>
                    {" "}
                    · <Link href={`/imports/${f.importId}`}>import of organization {f.organizationId}</Link>
                  </>
                )}
              </div>
            </summary>
            <dl class="facts-grid">
              <div>
                <dt>Queued</dt>
                <dd>{fmtTime(f.queueTime)}</dd>
              </div>
              <div>
                <dt>Read from</dt>
                <dd>{fmtTime(f.readStartTime)}</dd>
              </div>
              <div>
                <dt>Write from</dt>
                <dd>{fmtTime(f.writeStartTime)}</dd>
              </div>
              <div>
                <dt>Failed</dt>
                <dd>{fmtTime(f.failTime)}</dd>
              </div>
            </dl>
            {f.causes.length > 0 && (
              <ol class="causes" data-testid="causes">
                {f.causes.map((c) => (
                  <li>{c}</li>
                ))}
              </ol>
            )}
            {f.backtrace ? (
              <pre class="backtrace" data-testid="backtrace">
                {f.backtrace}
              </pre>
            ) : (
              <p class="muted">{props.developer ? "No backtrace was captured." : "Backtrace hidden (developers only)."}</p>
            )}
          </details>
        </li>
      ))}
    </ul>
  );
}
