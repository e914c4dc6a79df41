// Analysis: the dry run of a draft import, per file (rows, format, encoding,
// delimiter, header mapping with unmatched headers mappable by hand), findings
// grouped by kind and severity with counts and sample rows, and the
// would-create / update / unchanged counts. Which findings stop Start.
// API: AnalyzeImport, WatchImport / GetImport (to follow the background job).
import { useState } from "preact/hooks";
import { api } from "../api/client.js";
import {
  AnalysisJobState,
  FailurePolicy,
  FindingKind,
  Severity,
  type AnalysisReport,
  type FileAnalysis,
  type Finding,
  type Import,
  type ImportType,
} from "../gen/passare/imports/v1/imports_pb.js";
import { Head, fmtInt, fmtTime, formatName, kindName, n, severityName } from "../ui/common.js";

const analyzeImport = (importId: string) => api.analyzeImport({ importId });
const watchImport = (importId: string, signal: AbortSignal) => api.watchImport({ importId }, { signal });
const getImport = (importId: string) => api.getImport({ importId });

/**
 * Whether the import's analysis is finished and current: its job is DONE, or
 * (servers that analyse synchronously) a report is present, not stale, and no
 * job is recorded.
 */
export function analysisReady(imp: Import): boolean {
  const job = imp.analysisJob;
  if (job && job.state !== AnalysisJobState.UNSPECIFIED) return job.state === AnalysisJobState.DONE && !!imp.analysis && !imp.analysis.stale;
  return !!imp.analysis && !imp.analysis.stale;
}

export function analysisRunning(imp: Import): boolean {
  const s = imp.analysisJob?.state;
  return s === AnalysisJobState.QUEUED || s === AnalysisJobState.RUNNING;
}

/**
 * Asks for an analysis and follows it until it is done (or failed), calling
 * `onImport` with every new state of the import. Works with the background
 * job (AnalyzeImport returns at once) and with a synchronous report.
 */
export async function runAnalysis(importId: string, onImport: (imp: Import) => void, signal: AbortSignal): Promise<Import> {
  const res = await analyzeImport(importId);
  let imp = res.import;
  if (imp && res.report && !imp.analysis) imp.analysis = res.report;
  if (!imp) imp = (await getImport(importId)).import!;
  onImport(imp);
  const over = (i: Import) => analysisReady(i) || i.analysisJob?.state === AnalysisJobState.FAILED || (!analysisRunning(i) && !!i.analysis);
  while (!over(imp) && !signal.aborted) {
    try {
      for await (const ev of watchImport(importId, signal)) {
        if (!ev.import) continue;
        imp = ev.import;
        onImport(imp);
        if (over(imp)) break;
      }
    } catch (e) {
      if (signal.aborted) throw e;
    }
    if (!over(imp)) {
      // The stream ended (a draft's watch may end) or broke: poll once, then watch again.
      await new Promise((r) => setTimeout(r, 1000));
      imp = (await getImport(importId)).import ?? imp;
      onImport(imp);
    }
  }
  return imp;
}

const FILE_KINDS = new Set([FindingKind.STRUCTURE, FindingKind.MISSING_COLUMN, FindingKind.MISSING_PREREQUISITE]);

/** A finding's severity under the policy the import will start with (the server decides again at Start). */
export function effectiveSeverity(f: Finding, analysedUnder: FailurePolicy, startWith: FailurePolicy): Severity {
  if (FILE_KINDS.has(f.kind) || f.kind === FindingKind.UNKNOWN_COLUMN || analysedUnder === startWith) return f.severity;
  if (startWith === FailurePolicy.IMPORT_VALID_ROWS) return Severity.WARNING;
  return f.severity === Severity.WARNING && analysedUnder === FailurePolicy.STOP_ON_FIRST_ERROR ? Severity.WARNING : Severity.BLOCKING;
}

/** Why Start is refused, in words; empty when it may start. */
export function blockingReasons(report: AnalysisReport, analysedUnder: FailurePolicy, startWith: FailurePolicy): string[] {
  const out: string[] = [];
  const add = (where: string, f: Finding) => {
    if (effectiveSeverity(f, analysedUnder, startWith) !== Severity.BLOCKING) return;
    const rows = f.samples
      .filter((s) => n(s.row) > 0)
      .slice(0, 3)
      .map((s) => n(s.row));
    out.push(`${where}: ${kindName(f.kind)} — ${f.message}${n(f.count) > 1 ? ` (${fmtInt(f.count)})` : ""}${rows.length ? ` (rows ${rows.join(", ")}${n(f.count) > rows.length ? "…" : ""})` : ""}`);
  };
  for (const f of report.findings) add(f.fileNames.length ? f.fileNames.join(", ") : "organization", f);
  for (const file of report.files) for (const f of file.findings) add(file.fileName, f);
  return out;
}

export function AnalysisView(props: {
  report: AnalysisReport;
  analysedUnder: FailurePolicy;
  startWith: FailurePolicy;
  types: ImportType[];
  /** Re-uploads a file with headers mapped by hand (header → column). */
  onRemap?: (fileId: string, mapping: { header: string; column: string }[]) => void;
}) {
  const r = props.report;
  return (
    <div class="analysis" data-testid="analysis">
      <p class="muted">
        Analysed {fmtTime(r.analyzeTime)} in {fmtInt(r.durationMs)} ms{r.stale && <strong class="bad"> · stale: the files changed since</strong>}.
      </p>
      <Counts r={r} />
      {r.findings.length > 0 && (
        <div class="org-findings">
          <h3>About the organization</h3>
          <Findings findings={r.findings} analysedUnder={props.analysedUnder} startWith={props.startWith} />
        </div>
      )}
      {r.files.map((f) => (
        <FileCard file={f} type={props.types.find((t) => t.key === f.importType)} {...props} />
      ))}
    </div>
  );
}

function Counts(props: { r: AnalysisReport | FileAnalysis }) {
  const r = props.r;
  return (
    <dl class="counts" data-testid="would">
      <div>
        <dt>would create</dt>
        <dd data-testid="would-create">{fmtInt(r.wouldCreate)}</dd>
      </div>
      <div>
        <dt>would update</dt>
        <dd data-testid="would-update">{fmtInt(r.wouldUpdate)}</dd>
      </div>
      <div>
        <dt>unchanged</dt>
        <dd data-testid="would-unchanged">{fmtInt(r.wouldLeaveUnchanged)}</dd>
      </div>
      <div>
        <dt>older than stored</dt>
        <dd>{fmtInt(r.wouldSkipStale)}</dd>
      </div>
      <div>
        <dt>rows failing</dt>
        <dd class={n(r.rowsFailing) > 0 ? "bad" : ""} data-testid="rows-failing">
          {fmtInt(r.rowsFailing)}
        </dd>
      </div>
    </dl>
  );
}

function FileCard(props: {
  file: FileAnalysis;
  type?: ImportType;
  analysedUnder: FailurePolicy;
  startWith: FailurePolicy;
  onRemap?: (fileId: string, mapping: { header: string; column: string }[]) => void;
}) {
  const f = props.file;
  const [manual, setManual] = useState<Record<string, string>>({});
  const mapped = new Set(f.columns.map((c) => c.column).filter(Boolean));
  const free = (props.type?.columns ?? []).filter((c) => !mapped.has(c.name));
  const unmatched = f.columns.filter((c) => !c.column);
  const apply = () => {
    const mapping = [
      ...f.columns.filter((c) => c.column).map((c) => ({ header: c.header, column: c.column })),
      ...Object.entries(manual)
        .filter(([, column]) => column)
        .map(([header, column]) => ({ header, column })),
    ];
    props.onRemap?.(f.fileId, mapping);
  };
  return (
    <article class="file-analysis" data-testid={`analysis-${f.fileName}`}>
      <h3>
        {f.fileName} <span class="muted">· {props.type?.displayName ?? f.importType}</span>
      </h3>
      <p class="facts">
        {fmtInt(f.rows)} rows · {formatName(f.format)} · encoding {f.encoding || "—"} · delimiter{" "}
        <code>{f.delimiter === "\t" ? "tab" : f.delimiter || "—"}</code>
        {f.sheetName && <> · sheet {f.sheetName}</>} · loads {f.loadOrder}
        {f.loadOrder === 1 ? "st" : f.loadOrder === 2 ? "nd" : f.loadOrder === 3 ? "rd" : "th"}
      </p>
      <Counts r={f} />
      <details>
        <summary>
          Header mapping ({f.columns.length} headers{unmatched.length > 0 && <strong class="warn">, {unmatched.length} unmatched</strong>})
        </summary>
        <table class="mapping">
          <Head cols={["Header in the file", "Column"]} />
          <tbody>
            {f.columns.map((c) => (
              <tr>
                <td>{c.header}</td>
                <td>
                  {c.column ? (
                    <code>{c.column}</code>
                  ) : (
                    <select
                      aria-label={`Column for header ${c.header}`}
                      value={manual[c.header] ?? ""}
                      onChange={(e) => setManual({ ...manual, [c.header]: (e.target as HTMLSelectElement).value })}
                    >
                      <option value="">ignored</option>
                      {free.map((col) => (
                        <option value={col.name}>{col.name}</option>
                      ))}
                    </select>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {unmatched.length > 0 && props.onRemap && (
          <button type="button" disabled={!Object.values(manual).some(Boolean)} onClick={apply}>
            Apply mapping (uploads the file again)
          </button>
        )}
      </details>
      {f.profile && <RuleEffects file={f} />}
      {f.findings.length > 0 ? (
        <Findings findings={f.findings} analysedUnder={props.analysedUnder} startWith={props.startWith} />
      ) : (
        <p class="good">No findings.</p>
      )}
    </article>
  );
}

/** What each transform rule of the file's profile did: records changed and before → after samples. */
function RuleEffects(props: { file: FileAnalysis }) {
  const f = props.file;
  const shown = (values: { field: string; value: string }[]) => values.map((v) => `${v.field} = ${v.value === "" ? "(empty)" : JSON.stringify(v.value)}`).join("; ");
  return (
    <details class="rule-effects" data-testid={`rules-${f.fileName}`} open>
      <summary>
        Read with profile {f.profile?.name} v{f.profile?.version}: {f.ruleEffects.length} rules
      </summary>
      <table class="samples">
        <Head cols={["Rule", "Does", "Records changed", "Row", "Before", "After"]} />
        <tbody>
          {f.ruleEffects.flatMap((e) =>
            (e.examples.length ? e.examples : [undefined]).map((x, i) => (
              <tr data-rule={e.rule}>
                <td>{i === 0 ? e.rule : ""}</td>
                <td>{i === 0 ? e.summary : ""}</td>
                <td>{i === 0 ? fmtInt(e.rowsChanged) : ""}</td>
                <td>{x ? n(x.row) : "—"}</td>
                <td>{x ? shown(x.before) : ""}</td>
                <td>{x ? shown(x.after) : ""}</td>
              </tr>
            )),
          )}
        </tbody>
      </table>
    </details>
  );
}

function Findings(props: { findings: Finding[]; analysedUnder: FailurePolicy; startWith: FailurePolicy }) {
  const sorted = [...props.findings].sort(
    (a, b) =>
      effectiveSeverity(a, props.analysedUnder, props.startWith) - effectiveSeverity(b, props.analysedUnder, props.startWith) || a.kind - b.kind,
  );
  return (
    <ul class="findings">
      {sorted.map((f) => {
        const sev = effectiveSeverity(f, props.analysedUnder, props.startWith);
        return (
          <li class={sev === Severity.BLOCKING ? "blocking" : "warning"} data-testid="finding" data-kind={FindingKind[f.kind]} data-severity={Severity[sev]}>
            <details>
              <summary>
                <span class={`badge ${sev === Severity.BLOCKING ? "bad" : "warn"}`}>{severityName(sev)}</span> <strong>{kindName(f.kind)}</strong> ×{" "}
                {fmtInt(f.count)} — {f.message}
                {f.fileNames.length > 0 && <span class="muted"> (needed by {f.fileNames.join(", ")})</span>}
              </summary>
              {f.samples.length > 0 && (
                <table class="samples">
                  <Head cols={["Row", "Column", "Value", "Reason"]} />
                  <tbody>
                    {f.samples.map((s) => (
                      <tr>
                        <td>{n(s.row) || "file"}</td>
                        <td>{s.column}</td>
                        <td>
                          <code>{s.value}</code>
                        </td>
                        <td>{s.reason}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </details>
          </li>
        );
      })}
    </ul>
  );
}
