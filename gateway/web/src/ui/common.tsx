// Small building blocks shared by the screens: errors, links, progress bars,
// formatting of times, sizes and enums.
import type { ComponentChildren, JSX } from "preact";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { describeError } from "../api/errors.js";
import { navigate } from "./router.js";
import { FailurePolicy, FileFormat, FileState, FindingKind, ImportState, Severity } from "../gen/passare/imports/v1/imports_pb.js";

export function Link(props: { href: string; children: ComponentChildren; class?: string; title?: string }) {
  return (
    <a
      href={props.href}
      class={props.class}
      title={props.title}
      onClick={(e: MouseEvent) => {
        if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}

/** An API error with its code, reason, message and details. */
export function ErrorBox(props: { error: unknown; title?: string }) {
  if (!props.error) return null;
  const e = describeError(props.error);
  return (
    <div class="error" role="alert" data-testid="error">
      <strong>{props.title ?? "The service refused the request"}</strong>
      <div>
        {e.codeName && <code>{e.codeName}</code>}
        {e.reason && (
          <>
            {e.codeName && " · "}
            <code data-testid="error-reason">{e.reason}</code>
          </>
        )}
        {(e.codeName || e.reason) && " — "}
        {e.message || "no message"}
      </div>
      {e.violations.length > 0 && (
        <ul class="violations">
          {e.violations.slice(0, 50).map((v) => (
            <li>
              <code>{v.field}</code> {v.description}
            </li>
          ))}
          {e.violations.length > 50 && <li>… and {e.violations.length - 50} more</li>}
        </ul>
      )}
      {e.retryAfterMs !== undefined && <div>Retry in {Math.ceil(e.retryAfterMs / 1000)} s.</div>}
    </div>
  );
}

export function Progress(props: { value: number; max: number; label: string }) {
  const pct = props.max > 0 ? Math.min(100, (100 * props.value) / props.max) : 0;
  return (
    <div class="progress" role="progressbar" aria-label={props.label} aria-valuemin={0} aria-valuemax={props.max} aria-valuenow={props.value}>
      <div class="bar" style={{ width: `${pct}%` }} />
      <span>{pct.toFixed(pct < 10 ? 1 : 0)}%</span>
    </div>
  );
}

export function Field(props: { label: string; children: ComponentChildren; hint?: string }) {
  return (
    <label class="field">
      <span>{props.label}</span>
      {props.children}
      {props.hint && <small>{props.hint}</small>}
    </label>
  );
}

export function Section(props: { title: string; children: ComponentChildren; actions?: JSX.Element; id?: string }) {
  return (
    <section class="card" aria-labelledby={props.id} data-testid={props.id}>
      <header>
        <h2 id={props.id}>{props.title}</h2>
        {props.actions}
      </header>
      {props.children}
    </section>
  );
}

export const n = (v: bigint | number | undefined) => Number(v ?? 0);
export const fmtInt = (v: bigint | number | undefined) => n(v).toLocaleString("en-US");

export function fmtTime(t: Timestamp | undefined): string {
  if (!t) return "—";
  return timestampDate(t).toLocaleString("en-US", { dateStyle: "medium", timeStyle: "medium" });
}

export function fmtBytes(b: bigint | number): string {
  const v = n(b);
  if (v < 1024) return `${v} B`;
  if (v < 1024 ** 2) return `${(v / 1024).toFixed(1)} KiB`;
  if (v < 1024 ** 3) return `${(v / 1024 ** 2).toFixed(1)} MiB`;
  return `${(v / 1024 ** 3).toFixed(2)} GiB`;
}

export function fmtDuration(seconds: number): string {
  if (!isFinite(seconds) || seconds < 0) return "—";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

const words = (s: string) => s.toLowerCase().replace(/_/g, " ");

export const stateName = (s: ImportState) => words(ImportState[s] ?? "unknown");
export const fileStateName = (s: FileState) => words(FileState[s] ?? "unknown");
export const kindName = (k: FindingKind) => words(FindingKind[k] ?? "unknown");
export const severityName = (s: Severity) => words(Severity[s] ?? "unknown");
export const formatName = (f: FileFormat) => (FileFormat[f] ?? "—").replace("UNSPECIFIED", "—");
export const policyName = (p: FailurePolicy) =>
  p === FailurePolicy.STOP_ON_FIRST_ERROR ? "all or nothing (stop on first error)" : p === FailurePolicy.IMPORT_VALID_ROWS ? "import valid rows" : "—";

export function StateBadge(props: { state: ImportState }) {
  const name = ImportState[props.state] ?? "UNSPECIFIED";
  return (
    <span class={`badge state-${name.toLowerCase()}`} data-testid="state">
      {stateName(props.state)}
    </span>
  );
}

export const TERMINAL = new Set([ImportState.COMPLETED, ImportState.COMPLETED_WITH_ERRORS, ImportState.FAILED, ImportState.STOPPED]);

/** Saves bytes as a file download. */
export function saveBytes(name: string, type: string, parts: Uint8Array[]): void {
  const blob = new Blob(parts as BlobPart[], { type: type || "application/octet-stream" });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A table's header row; `{ hidden }` names a column for screen readers only. */
export function Head(props: { cols: (string | { hidden: string })[] }) {
  return (
    <thead>
      <tr>
        {props.cols.map((c) => (
          <th scope="col">{typeof c === "string" ? c : <span class="sr-only">{c.hidden}</span>}</th>
        ))}
      </tr>
    </thead>
  );
}
