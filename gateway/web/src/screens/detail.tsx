// Import detail: who, which organization, when; the files with their
// checksums and per-file created / updated / unchanged / stale / failed counts;
// the timeline; row errors, paged, each editable inline; failed rows and
// written rows to download; corrections to upload; retry of the failed rows;
// and the failed chunk attempts (backtraces for developers only).
// API: ListRowErrors, DownloadResults, UpdateRows, UploadCorrections, RetryFailedRows.
import { useState } from "preact/hooks";
import { api, canManage, type Identity } from "../api/client.js";
import { ImportState, ResultKind, type Import, type ImportFile, type RowError } from "../gen/passare/imports/v1/imports_pb.js";
import { Head, ErrorBox, Section, StateBadge, fileStateName, fmtBytes, fmtInt, fmtTime, kindName, n, policyName, saveBytes } from "../ui/common.js";
import { usePages } from "../ui/paging.js";
import { ChunkFailureList } from "./developer.js";

const ROW_ERRORS_PAGE = 50;
const listRowErrors = (importId: string, fileId: string, pageToken: string) => api.listRowErrors({ importId, fileId, pageSize: ROW_ERRORS_PAGE, pageToken });
const downloadResults = (importId: string, fileId: string, kind: ResultKind) => api.downloadResults({ importId, fileId, kind });
const updateRow = (importId: string, fileId: string, row: bigint, cells: Record<string, string>) =>
  api.updateRows({ importId, fileId, rows: [{ row, cells }] });
const uploadCorrections = (importId: string, fileId: string, content: Uint8Array) => api.uploadCorrections({ importId, fileId, content });
const retryFailedRows = (importId: string) => api.retryFailedRows({ importId });

export function Detail(props: { imp: Import; who: Identity; onImport: (imp: Import) => void }) {
  const imp = props.imp;
  const [error, setError] = useState<unknown>();
  const [notice, setNotice] = useState("");
  const manage = canManage(props.who);
  const retryable = imp.state === ImportState.COMPLETED_WITH_ERRORS;
  const purged = !!imp.resultsPurgeTime;

  const download = async (f: ImportFile, kind: ResultKind) => {
    try {
      const parts: Uint8Array[] = [];
      let name = `${f.name}.csv`;
      let type = "text/csv";
      for await (const m of downloadResults(imp.id, f.id, kind)) {
        if (m.fileName) name = m.fileName;
        if (m.contentType) type = m.contentType;
        parts.push(m.chunk);
      }
      saveBytes(name, type, parts);
      setError(undefined);
    } catch (e) {
      setError(e);
    }
  };
  const corrections = async (f: ImportFile, file: File) => {
    try {
      const r = await uploadCorrections(imp.id, f.id, new Uint8Array(await file.arrayBuffer()));
      setNotice(`${r.rowsCorrected} row(s) of ${f.name} corrected; retry the failed rows to load them.`);
      if (r.import) props.onImport(r.import);
      setError(undefined);
    } catch (e) {
      setError(e);
    }
  };
  const retry = async () => {
    try {
      const r = await retryFailedRows(imp.id);
      setNotice(`${fmtInt(r.rowsRetried)} row(s) queued again as attempt ${r.import?.attempt ?? ""}.`);
      if (r.import) props.onImport(r.import);
      setError(undefined);
    } catch (e) {
      setError(e);
    }
  };

  return (
    <>
      <Section title="Import" id="detail">
        <dl class="facts-grid" data-testid="summary">
          <div>
            <dt>Organization</dt>
            <dd>
              {imp.organizationName} ({imp.organizationId})
            </dd>
          </div>
          <div>
            <dt>Requested by</dt>
            <dd data-testid="requested-by">
              {imp.requestedBy?.name} &lt;{imp.requestedBy?.email}&gt;
            </dd>
          </div>
          <div>
            <dt>State</dt>
            <dd>
              <StateBadge state={imp.state} /> {imp.attempt > 1 && `attempt ${imp.attempt}`}
            </dd>
          </div>
          <div>
            <dt>Policy</dt>
            <dd>{policyName(imp.failurePolicy)}</dd>
          </div>
          <div>
            <dt>Created</dt>
            <dd>{fmtTime(imp.createTime)}</dd>
          </div>
          <div>
            <dt>Queued</dt>
            <dd>{fmtTime(imp.queueTime)}</dd>
          </div>
          <div>
            <dt>Started</dt>
            <dd>{fmtTime(imp.startTime)}</dd>
          </div>
          <div>
            <dt>Ended</dt>
            <dd>{fmtTime(imp.endTime)}</dd>
          </div>
          {imp.note && (
            <div>
              <dt>Note</dt>
              <dd>{imp.note}</dd>
            </div>
          )}
        </dl>
        {imp.error && (
          <div class="error" data-testid="import-error">
            <strong>{imp.error.reason}</strong>: {imp.error.message}
          </div>
        )}
        {imp.stopTime && (
          <div class="banner" data-testid="stopped">
            Stopped by {imp.stoppedBy?.email} at {fmtTime(imp.stopTime)}: <q>{imp.stopReason}</q>
            {imp.rollbackTime && <> · rolled back at {fmtTime(imp.rollbackTime)}: nothing it wrote remains</>}.
          </div>
        )}
        {purged && <div class="banner">Files and row-level results were deleted by retention at {fmtTime(imp.resultsPurgeTime)}; the summary stays.</div>}
        {notice && (
          <div class="banner good" role="status" data-testid="notice">
            {notice}
          </div>
        )}
        <ErrorBox error={error} />
        <FilesTable imp={imp} manage={manage} retryable={retryable && !purged} onDownload={download} onCorrections={corrections} />
        {manage && retryable && !purged && (
          <button type="button" class="primary" onClick={retry} data-testid="retry">
            Retry the {fmtInt(imp.progress?.rowsFailed)} failed row(s)
          </button>
        )}
      </Section>
      {n(imp.progress?.rowsFailed) > 0 && !purged && <RowErrors imp={imp} manage={manage && retryable} onImport={props.onImport} />}
      {imp.chunkFailureCount > 0 && (
        <Section title={`Failed chunk attempts (${imp.chunkFailureCount})`} id="import-chunk-failures">
          <ChunkFailureList failures={imp.chunkFailures} developer={props.who.developer} />
        </Section>
      )}
      <Section title="Timeline" id="timeline">
        <ol class="timeline">
          {imp.timeline.map((t) => (
            <li data-kind={t.kind}>
              <time>{fmtTime(t.time)}</time> <strong>{t.kind.replace(/_/g, " ")}</strong> <span class="muted">{t.actor ? `by ${t.actor.email || t.actor.id}` : "by the service"}</span>
              {t.detail && <div>{t.detail}</div>}
            </li>
          ))}
        </ol>
      </Section>
    </>
  );
}

function FilesTable(props: {
  imp: Import;
  manage: boolean;
  retryable: boolean;
  onDownload: (f: ImportFile, k: ResultKind) => void;
  onCorrections: (f: ImportFile, file: File) => void;
}) {
  const imp = props.imp;
  const p = imp.progress;
  return (
    <table class="files detail-files" data-testid="detail-files">
      <Head cols={["File", "State", "Rows", "Created", "Updated", "Unchanged", "Stale", "Failed", "Rolled back", "Results"]} />
      <tbody>
        {imp.files.map((f) => (
          <tr data-testid="file-row" data-name={f.name}>
            <td>
              <strong>{f.name}</strong> <span class="muted">{f.importType}</span>
              <div class="muted">{fmtBytes(f.sizeBytes)}</div>
              <div class="mono small" data-testid="sha256" title="SHA-256 of the stored bytes">
                {f.sha256}
              </div>
            </td>
            <td>{fileStateName(f.state)}</td>
            <td>{fmtInt(f.rowCount)}</td>
            <td data-testid="created">{fmtInt(f.progress?.rowsCreated)}</td>
            <td data-testid="updated">{fmtInt(f.progress?.rowsUpdated)}</td>
            <td data-testid="unchanged">{fmtInt(f.progress?.rowsUnchanged)}</td>
            <td data-testid="stale">{fmtInt(f.progress?.rowsStale)}</td>
            <td data-testid="failed" class={n(f.progress?.rowsFailed) ? "bad" : ""}>
              {fmtInt(f.progress?.rowsFailed)}
            </td>
            <td>{fmtInt(f.progress?.rowsRolledBack)}</td>
            <td class="actions">
              {n(f.progress?.rowsFailed) > 0 && (
                <button type="button" onClick={() => props.onDownload(f, ResultKind.FAILED_ROWS)} data-testid={`download-failed-${f.name}`}>
                  Failed rows
                </button>
              )}
              {n(f.progress?.rowsCreated) + n(f.progress?.rowsUpdated) > 0 && (
                <button type="button" onClick={() => props.onDownload(f, ResultKind.WRITTEN_ROWS)} data-testid={`download-written-${f.name}`}>
                  Written rows
                </button>
              )}
              {props.manage && props.retryable && n(f.progress?.rowsFailed) > 0 && (
                <label class="button">
                  Upload corrections
                  <input
                    type="file"
                    hidden
                    accept=".csv"
                    data-testid={`corrections-${f.name}`}
                    onChange={(e) => {
                      const file = (e.target as HTMLInputElement).files?.[0];
                      (e.target as HTMLInputElement).value = "";
                      if (file) props.onCorrections(f, file);
                    }}
                  />
                </label>
              )}
            </td>
          </tr>
        ))}
      </tbody>
      <tfoot>
        <tr data-testid="totals">
          <th scope="row">All files</th>
          <td />
          <td>{fmtInt(p?.rowsTotal)}</td>
          <td>{fmtInt(p?.rowsCreated)}</td>
          <td>{fmtInt(p?.rowsUpdated)}</td>
          <td>{fmtInt(p?.rowsUnchanged)}</td>
          <td>{fmtInt(p?.rowsStale)}</td>
          <td>{fmtInt(p?.rowsFailed)}</td>
          <td>{fmtInt(p?.rowsRolledBack)}</td>
          <td />
        </tr>
      </tfoot>
    </table>
  );
}

function RowErrors(props: { imp: Import; manage: boolean; onImport: (imp: Import) => void }) {
  const imp = props.imp;
  const [fileId, setFileId] = useState("");
  const [editing, setEditing] = useState<string>("");
  const { page, error, pager } = usePages(
    (token) => listRowErrors(imp.id, fileId, token).then((r) => ({ items: r.rowErrors, next: r.nextPageToken })),
    [imp.id, fileId, imp.attempt, n(imp.progress?.rowsFailed)],
  );
  return (
    <Section title={`Row errors (${fmtInt(imp.progress?.rowsFailed)} rows still failed)`} id="row-errors">
      <label class="field inline">
        <span>File</span>
        <select value={fileId} onChange={(e) => setFileId((e.target as HTMLSelectElement).value)}>
          <option value="">All files</option>
          {imp.files.map((f) => (
            <option value={f.id}>{f.name}</option>
          ))}
        </select>
      </label>
      <ErrorBox error={error} title="Could not list row errors" />
      <table data-testid="row-errors-table">
        <Head cols={["File", "Row", "Column", "Value", "Reason", "Attempt", { hidden: "Edit" }]} />
        <tbody>
          {page?.items.map((r) => {
            const key = `${r.fileId}:${r.row}:${r.column}`;
            return (
              <>
                <tr data-testid="row-error" data-row={String(r.row)}>
                  <td>{r.fileName}</td>
                  <td>{n(r.row)}</td>
                  <td>
                    <code>{r.column}</code>
                  </td>
                  <td>
                    <code>{r.value}</code>
                  </td>
                  <td>
                    {r.reason} <span class="muted">({kindName(r.kind)})</span>
                  </td>
                  <td>{r.attempt}</td>
                  <td>
                    {props.manage && r.open && (
                      <button type="button" onClick={() => setEditing(editing === key ? "" : key)} aria-label={`Edit row ${r.row} of ${r.fileName}`}>
                        Edit
                      </button>
                    )}
                  </td>
                </tr>
                {editing === key && (
                  <tr>
                    <td colSpan={7}>
                      <RowEditor
                        importId={imp.id}
                        error={r}
                        onSaved={(imp2) => {
                          setEditing("");
                          props.onImport(imp2);
                        }}
                      />
                    </td>
                  </tr>
                )}
              </>
            );
          })}
        </tbody>
      </table>
      {pager}
    </Section>
  );
}

function RowEditor(props: { importId: string; error: RowError; onSaved: (imp: Import) => void }) {
  const e = props.error;
  const [column, setColumn] = useState(e.column);
  const [value, setValue] = useState(e.value);
  const [error, setError] = useState<unknown>();
  const submit = async (ev: Event) => {
    ev.preventDefault();
    try {
      const r = await updateRow(props.importId, e.fileId, e.row, { [column]: value });
      if (r.import) props.onSaved(r.import);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form class="row-editor row" onSubmit={submit} data-testid="row-editor">
      <label class="field inline">
        <span>Column</span>
        <input value={column} onInput={(ev) => setColumn((ev.target as HTMLInputElement).value)} />
      </label>
      <label class="field inline">
        <span>New value</span>
        <input name="value" value={value} onInput={(ev) => setValue((ev.target as HTMLInputElement).value)} autofocus />
      </label>
      <button type="submit" class="primary">
        Save the row
      </button>
      <ErrorBox error={error} title="Could not edit the row" />
    </form>
  );
}

