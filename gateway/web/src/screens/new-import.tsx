// New import: organization and failure policy, then several files by
// drag-and-drop or the picker, a type per file (suggested from the file name or
// its header, editable), a progress bar per file with resume (the resumable
// upload client in ../upload), remove or replace a file, the analysis, and
// Start — disabled, with the reasons listed, while blocking findings stand.
// A file whose header matches saved import profiles waits for the user to
// confirm the suggested profile (or none) before it uploads.
// API: CreateImport, CreateUpload / WriteUploadPart / GetUpload / CompleteUpload /
// AbortUpload (through uploadFile), RemoveFile, AnalyzeImport, StartImport,
// SuggestProfiles.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, canManage, type Identity } from "../api/client.js";
import { FailurePolicy, type Import, type ImportType } from "../gen/passare/imports/v1/imports_pb.js";
import type { ProfileSuggestion } from "../gen/passare/imports/v1/profiles_pb.js";
import { uploadFile, type UploadProgress } from "../upload/index.js";
import { Head, ErrorBox, Field, Progress, Section, fileStateName, fmtBytes, fmtInt, formatName, n } from "../ui/common.js";
import { navigate } from "../ui/router.js";
import { OrgPicker } from "./org-picker.js";
import { useCatalog } from "./catalog.js";
import { AnalysisView, analysisReady, analysisRunning, blockingReasons, runAnalysis } from "./analysis.js";

const createImport = (organizationId: string, failurePolicy: FailurePolicy, note: string, requestId: string) =>
  api.createImport({ organizationId, failurePolicy, note, requestId });
const removeFile = (importId: string, fileId: string) => api.removeFile({ importId, fileId });
const startImport = (importId: string, failurePolicy: FailurePolicy) => api.startImport({ importId, failurePolicy });

/** Files dropped on the New import screen before its draft existed, handed to the draft screen. */
const handedOver = new Map<string, File[]>();

export function NewImportScreen(props: { who: Identity }) {
  const [org, setOrg] = useState(sessionStorage.getItem("passare-imports.org") ?? "");
  const [policy, setPolicy] = useState<FailurePolicy>(FailurePolicy.IMPORT_VALID_ROWS);
  const [note, setNote] = useState("");
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const requestId = useRef(crypto.randomUUID());
  if (!canManage(props.who)) return <Section title="New import" id="new-import"><p>Only super admins and developers may import.</p></Section>;

  const create = async (files: File[]) => {
    if (!org) return setError(new Error("Pick the organization first."));
    setBusy(true);
    try {
      // The same request id on a retry returns the same draft.
      const { import: imp } = await createImport(org, policy, note, requestId.current);
      sessionStorage.setItem("passare-imports.org", org);
      if (files.length) handedOver.set(imp!.id, files);
      navigate(`/imports/${imp!.id}`);
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return (
    <Section title="New import" id="new-import">
      <form class="stack" onSubmit={(e) => (e.preventDefault(), create([]))}>
        <OrgPicker who={props.who} value={org} onChange={setOrg} label="Organization to import into" id="new-org" />
        <PolicyChoice value={policy} onChange={setPolicy} />
        <Field label="Note (shown in the history)">
          <input name="note" value={note} onInput={(e) => setNote((e.target as HTMLInputElement).value)} />
        </Field>
        <DropZone onFiles={(files) => create(files)} disabled={busy || !org} />
        <button type="submit" class="primary" disabled={busy || !org}>
          Create the draft
        </button>
      </form>
      <ErrorBox error={error} title="Could not create the import" />
    </Section>
  );
}

export function PolicyChoice(props: { value: FailurePolicy; onChange: (p: FailurePolicy) => void; legend?: string }) {
  const option = (p: FailurePolicy, label: string, hint: string) => (
    <label class="radio">
      <input type="radio" name="policy" checked={props.value === p} onChange={() => props.onChange(p)} />
      <span>
        {label}
        <small>{hint}</small>
      </span>
    </label>
  );
  return (
    <fieldset class="policy">
      <legend>{props.legend ?? "When a row fails"}</legend>
      {option(FailurePolicy.IMPORT_VALID_ROWS, "Import as much as possible", "every valid row lands; failing rows are listed with their reason, to fix and retry")}
      {option(FailurePolicy.STOP_ON_FIRST_ERROR, "All or nothing", "the first failing row stops the import and everything it wrote is rolled back")}
    </fieldset>
  );
}

function DropZone(props: { onFiles: (files: File[]) => void; disabled?: boolean; label?: string }) {
  const [over, setOver] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  return (
    <div
      class={`dropzone${over ? " over" : ""}`}
      data-testid="dropzone"
      onDragOver={(e) => (e.preventDefault(), setOver(true))}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        if (!props.disabled && e.dataTransfer?.files.length) props.onFiles([...e.dataTransfer.files]);
      }}
    >
      <p>{props.label ?? "Drop CSV, TSV or XLSX files here, or"}</p>
      <button type="button" disabled={props.disabled} onClick={() => input.current?.click()}>
        Choose files…
      </button>
      <input
        ref={input}
        type="file"
        multiple
        hidden
        accept=".csv,.tsv,.txt,.xlsx"
        aria-label="Files to import"
        data-testid="file-input"
        onChange={(e) => {
          const files = [...((e.target as HTMLInputElement).files ?? [])];
          (e.target as HTMLInputElement).value = "";
          if (files.length) props.onFiles(files);
        }}
      />
    </div>
  );
}

const normal = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, "");

/** The header of a text file as written (quotes removed); empty for workbooks. */
async function readHeader(file: File): Promise<string[]> {
  if (/\.xlsx$/i.test(file.name)) return [];
  const head = await file.slice(0, 64 * 1024).text();
  const line = head.replace(/^\uFEFF/, "").split(/\r?\n/)[0] ?? "";
  const sep = [",", "\t", ";", "|"].sort((a, b) => line.split(b).length - line.split(a).length)[0];
  return line.split(sep).map((h) => h.trim().replace(/^"|"$/g, ""));
}

/** Saved profiles whose source headers the file's header holds (none for workbooks). */
async function suggestProfiles(file: File, importType: string, organizationId: string): Promise<ProfileSuggestion[]> {
  const headers = await readHeader(file);
  if (!importType || !headers.length) return [];
  try {
    return (await api.suggestProfiles({ importType, organizationId, headers })).suggestions;
  } catch {
    // Suggestions help; the file can be uploaded without them.
    return [];
  }
}

/** The import type a file most likely holds: by its header (text files), else by its name. */
export async function suggestType(file: File, types: ImportType[]): Promise<string> {
  if (!types.length) return "";
  if (!/\.xlsx$/i.test(file.name)) {
    const headers = (await readHeader(file)).map(normal);
    let best = ["", 0] as [string, number];
    for (const t of types) {
      // A header named as the type names its column counts most, an alias
      // less, a header the type has no column for counts against it: a
      // family file (case_number, first_name, last_name, phone) is not Cases
      // just because Cases takes first_name as an alias.
      const names = new Set(t.columns.map((c) => normal(c.name)));
      const aliases = new Set(t.columns.flatMap((c) => c.aliases).map(normal));
      const exact = headers.filter((h) => names.has(h)).length;
      const alias = headers.filter((h) => !names.has(h) && aliases.has(h)).length;
      const foreign = headers.length - exact - alias;
      const required = t.columns.filter((c) => c.required).every((c) => [c.name, ...c.aliases].map(normal).some((x) => headers.includes(x)));
      const score = exact + 0.75 * alias - foreign + (required ? 1 : 0) - Math.abs(t.columns.length - headers.length) * 0.01;
      if (score > best[1]) best = [t.key, score];
    }
    if (best[1] >= 3) return best[0];
  }
  const base = normal(file.name.replace(/\.[^.]+$/, ""));
  const byName = types.find((t) => base === normal(t.key) || base === normal(t.displayName));
  if (byName) return byName.key;
  const words = file.name.toLowerCase().split(/[^a-z]+/).filter((w) => w.length > 3);
  const partial = types.find((t) => words.some((w) => normal(t.key).includes(w.replace(/s$/, "")) || normal(t.displayName).includes(w.replace(/s$/, ""))));
  return partial?.key ?? "";
}

interface Item {
  key: string;
  file: File;
  type: string;
  state: "choose-type" | "uploading" | "done" | "failed" | "cancelled";
  progress?: UploadProgress;
  error?: unknown;
  abort?: AbortController;
  /** The stored file this upload replaces (removed first). */
  replaces?: string;
  mapping?: { header: string; column: string }[];
  /** Profiles the file's header matches, and the one chosen ("" for none). */
  profiles?: ProfileSuggestion[];
  profileId?: string;
}

const uploadKey = (importId: string, f: File) => `passare-imports.upload:${importId}:${f.name}:${f.size}:${f.lastModified}`;

/** The draft of an import: its files, uploads, analysis and Start. */
export function DraftScreen(props: { imp: Import; who: Identity; onImport: (imp: Import) => void; reload: () => Promise<void> }) {
  const imp = props.imp;
  const [types, typesError] = useCatalog();
  const [items, setItems] = useState<Item[]>([]);
  const [error, setError] = useState<unknown>();
  const [startError, setStartError] = useState<unknown>();
  const [policy, setPolicy] = useState<FailurePolicy>(imp.failurePolicy || FailurePolicy.IMPORT_VALID_ROWS);
  const [analysing, setAnalysing] = useState(false);
  const [starting, setStarting] = useState(false);
  const [finished, setFinished] = useState<{ name: string; size: number; sent: number; resumedFrom: number }[]>([]);
  const itemsRef = useRef(items);
  itemsRef.current = items;
  const manage = canManage(props.who);

  const update = (key: string, patch: Partial<Item>) => setItems((xs) => xs.map((x) => (x.key === key ? { ...x, ...patch } : x)));

  const upload = async (item: Item) => {
    const abort = new AbortController();
    update(item.key, { state: "uploading", abort, error: undefined });
    const storeKey = uploadKey(imp.id, item.file);
    try {
      if (item.replaces) {
        await removeFile(imp.id, item.replaces);
        update(item.key, { replaces: undefined });
      }
      const result = await uploadFile({
        client: api,
        importId: imp.id,
        file: item.file,
        importType: item.type,
        columnMapping: item.mapping,
        profileId: item.profileId || undefined,
        uploadId: sessionStorage.getItem(storeKey) ?? undefined,
        onUploadId: (id) => sessionStorage.setItem(storeKey, id),
        onProgress: (progress) => update(item.key, { progress }),
        signal: abort.signal,
      });
      sessionStorage.removeItem(storeKey);
      setFinished((xs) => [...xs, { name: item.file.name, size: item.file.size, sent: result.sentBytes, resumedFrom: result.resumedFrom }]);
      update(item.key, { state: "done" });
      setItems((xs) => xs.filter((x) => x.key !== item.key));
    } catch (e) {
      update(item.key, { state: abort.signal.aborted ? "cancelled" : "failed", error: e });
    }
    await props.reload();
  };

  const add = async (files: File[], replaces?: string, type?: string, mapping?: Item["mapping"]) => {
    const cat = types.length ? types : [];
    for (const file of files) {
      const suggested = type ?? (await suggestType(file, cat));
      const profiles = await suggestProfiles(file, suggested, imp.organizationId);
      const best = profiles.find((p) => p.complete)?.profile?.id ?? "";
      const item: Item = { key: crypto.randomUUID(), file, type: suggested, state: "choose-type", replaces, mapping, profiles, profileId: best };
      setItems((xs) => [...xs, item]);
      // A matching profile is confirmed by the user before the file goes up.
      if (suggested && !profiles.length) void upload(item);
    }
  };

  useEffect(() => {
    const files = handedOver.get(imp.id);
    if (files && types.length) {
      handedOver.delete(imp.id);
      void add(files);
    }
  }, [types.length]);

  const analyse = async () => {
    setAnalysing(true);
    setError(undefined);
    const abort = new AbortController();
    try {
      await runAnalysis(imp.id, props.onImport, abort.signal);
    } catch (e) {
      setError(e);
    } finally {
      setAnalysing(false);
    }
  };

  const start = async () => {
    setStarting(true);
    setStartError(undefined);
    try {
      const { import: started } = await startImport(imp.id, policy);
      if (started) props.onImport(started);
    } catch (e) {
      setStartError(e);
      await props.reload();
    } finally {
      setStarting(false);
    }
  };

  const remove = async (fileId: string) => {
    try {
      const { import: after } = await removeFile(imp.id, fileId);
      if (after) props.onImport(after);
    } catch (e) {
      setError(e);
    }
  };

  const pending = items.filter((i) => i.state !== "done");
  const report = imp.analysis;
  const reasons: string[] = [];
  if (!imp.files.length) reasons.push("Add at least one file.");
  if (pending.some((i) => i.state === "uploading")) reasons.push("Wait for the uploads to finish.");
  if (pending.some((i) => i.state !== "uploading")) reasons.push("Upload or remove the files not yet uploaded.");
  if (imp.files.some((f) => f.problems.length > 0 && fileStateName(f.state) === "invalid")) reasons.push("A file is structurally broken: replace it.");
  if (analysisRunning(imp)) reasons.push("The analysis is running.");
  else if (!report) reasons.push("Analyse the files first.");
  else if (report.stale) reasons.push("The files changed since the analysis: analyse again.");
  else if (!analysisReady(imp)) reasons.push("Analyse the files again.");
  if (report && !report.stale) reasons.push(...blockingReasons(report, imp.failurePolicy, policy));

  return (
    <>
      <Section title={`New import for ${imp.organizationName} (${imp.organizationId})`} id="draft">
        <ErrorBox error={typesError} title="Could not load the import types" />
        <p class="muted">
          Draft · created by {imp.requestedBy?.email} · policy chosen at creation: {imp.failurePolicy === FailurePolicy.STOP_ON_FIRST_ERROR ? "all or nothing" : "import valid rows"}
          {imp.note && <> · {imp.note}</>}
        </p>
        <table class="files" data-testid="draft-files">
          <Head cols={["File", "Type", "Size", "Rows", "State", { hidden: "Actions" }]} />
          <tbody>
            {imp.files.map((f) => (
              <tr data-testid="stored-file" data-name={f.name}>
                <td>
                  {f.name}
                  <div class="muted mono" title="SHA-256">
                    {f.sha256.slice(0, 16)}…
                  </div>
                  {f.profile && (
                    <div class="muted" data-testid="file-profile">
                      profile {f.profile.name} v{f.profile.version}
                    </div>
                  )}
                </td>
                <td>{types.find((t) => t.key === f.importType)?.displayName ?? f.importType}</td>
                <td>{fmtBytes(f.sizeBytes)}</td>
                <td>
                  {fmtInt(f.rowCount)} <span class="muted">{formatName(f.format)}</span>
                </td>
                <td>
                  {fileStateName(f.state)}
                  {f.problems.slice(0, 3).map((p) => (
                    <div class="bad">
                      row {n(p.row)}: {p.reason}
                    </div>
                  ))}
                </td>
                <td class="actions">
                  {manage && (
                    <>
                      <ReplaceButton name={f.name} onFile={(file) => add([file], f.id, f.importType)} />
                      <button type="button" class="danger" onClick={() => remove(f.id)} aria-label={`Remove ${f.name}`}>
                        Remove
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
            {pending.map((i) => (
              <tr data-testid="pending-file" data-name={i.file.name}>
                <td>{i.file.name}</td>
                <td>
                  <select
                    aria-label={`Type of ${i.file.name}`}
                    value={i.type}
                    disabled={i.state === "uploading"}
                    onChange={(e) => update(i.key, { type: (e.target as HTMLSelectElement).value })}
                  >
                    <option value="">Choose a type…</option>
                    {types.map((t) => (
                      <option value={t.key}>{t.displayName}</option>
                    ))}
                  </select>
                </td>
                <td>{fmtBytes(i.file.size)}</td>
                <td colSpan={2}>
                  {i.progress && <Progress value={i.progress.committedBytes} max={i.progress.totalBytes} label={`Upload of ${i.file.name}`} />}
                  {i.progress && (
                    <small class="muted" data-testid="upload-stats" data-committed={i.progress.committedBytes} data-sent={i.progress.sentBytes} data-resumed-from={i.progress.resumedFrom}>
                      {fmtBytes(i.progress.committedBytes)} of {fmtBytes(i.progress.totalBytes)}
                      {i.progress.resumedFrom > 0 && <> · resumed at {fmtBytes(i.progress.resumedFrom)}</>}
                      {i.progress.bytesPerSecond > 0 && <> · {fmtBytes(i.progress.bytesPerSecond)}/s</>}
                      {i.progress.waiting && <strong> · {i.progress.waiting}</strong>}
                    </small>
                  )}
                  {i.profiles && i.profiles.length > 0 && i.state !== "uploading" && (
                    <label class="profile-choice">
                      Read with profile{" "}
                      <select
                        aria-label={`Profile of ${i.file.name}`}
                        data-testid={`profile-${i.file.name}`}
                        value={i.profileId ?? ""}
                        onChange={(e) => update(i.key, { profileId: (e.target as HTMLSelectElement).value })}
                      >
                        <option value="">No profile</option>
                        {i.profiles.map((s) => (
                          <option value={s.profile?.id}>
                            {s.profile?.name} · v{s.profile?.version} · {s.matchedHeaders} of {s.profile?.sourceHeaders.length} headers
                          </option>
                        ))}
                      </select>
                    </label>
                  )}
                  {i.state === "choose-type" && (
                    <span class="warn">{i.profiles?.length ? "A saved profile matches this file's header: check it, then upload." : "Choose the type, then upload."}</span>
                  )}
                  {i.state === "cancelled" && <span class="muted">Cancelled.</span>}
                  {i.error !== undefined && <ErrorBox error={i.error} title={`Upload of ${i.file.name} failed`} />}
                </td>
                <td class="actions">
                  {i.state === "uploading" ? (
                    <button type="button" onClick={() => i.abort?.abort()}>
                      Cancel
                    </button>
                  ) : (
                    <>
                      <button type="button" class="primary" disabled={!i.type} onClick={() => upload(i)}>
                        {i.state === "failed" ? "Resume upload" : "Upload"}
                      </button>
                      <button type="button" onClick={() => setItems((xs) => xs.filter((x) => x.key !== i.key))}>
                        Remove
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {finished.length > 0 && (
          <ul class="muted uploads-done" aria-label="Uploads finished in this tab">
            {finished.map((f) => (
              <li data-testid="upload-done" data-name={f.name} data-sent={f.sent} data-resumed-from={f.resumedFrom}>
                {f.name}: uploaded, {fmtBytes(f.sent)} sent{f.resumedFrom > 0 && <>, resumed at {fmtBytes(f.resumedFrom)}</>}
              </li>
            ))}
          </ul>
        )}
        {manage && <DropZone onFiles={(files) => add(files)} label="Add files: drop them here, or" />}
        <ErrorBox error={error} />
      </Section>

      <Section
        title="Analysis"
        id="analysis-section"
        actions={
          manage ? (
            <button type="button" onClick={analyse} disabled={analysing || !imp.files.length || pending.length > 0} data-testid="analyze">
              {analysing ? "Analysing…" : report ? "Analyse again" : "Analyse"}
            </button>
          ) : undefined
        }
      >
        {analysisRunning(imp) && imp.analysisJob && (
          <Progress value={n(imp.analysisJob.rowsDone)} max={n(imp.analysisJob.rowsTotal)} label="Analysis" />
        )}
        {imp.analysisJob?.error && <div class="error">The analysis could not finish: {imp.analysisJob.error}</div>}
        {report ? (
          <AnalysisView
            report={report}
            analysedUnder={imp.failurePolicy}
            startWith={policy}
            types={types}
            onRemap={(fileId, mapping) => {
              const stored = imp.files.find((f) => f.id === fileId);
              const local = items.find((i) => i.file.name === stored?.name)?.file;
              if (stored && local) void add([local], fileId, stored.importType, mapping);
              else setError(new Error(`Choose ${stored?.name ?? "the file"} again with "Replace" to upload it with the new mapping.`));
            }}
          />
        ) : (
          <p class="muted">No analysis yet. It checks every file as it would load it, without writing anything.</p>
        )}
      </Section>

      {manage && (
        <Section title="Start" id="start-section">
          <PolicyChoice value={policy} onChange={setPolicy} legend="Start with this policy" />
          {reasons.length > 0 && (
            <div class="reasons" data-testid="start-reasons">
              <strong>Start is not possible yet:</strong>
              <ul>
                {reasons.map((r) => (
                  <li>{r}</li>
                ))}
              </ul>
            </div>
          )}
          <button type="button" class="primary" disabled={reasons.length > 0 || starting} onClick={start} data-testid="start">
            Start the import
          </button>
          <ErrorBox error={startError} title="The import could not start" />
        </Section>
      )}
    </>
  );
}

function ReplaceButton(props: { name: string; onFile: (f: File) => void }) {
  const input = useRef<HTMLInputElement>(null);
  return (
    <>
      <button type="button" onClick={() => input.current?.click()} aria-label={`Replace ${props.name}`}>
        Replace
      </button>
      <input
        ref={input}
        type="file"
        hidden
        data-testid={`replace-${props.name}`}
        onChange={(e) => {
          const f = (e.target as HTMLInputElement).files?.[0];
          (e.target as HTMLInputElement).value = "";
          if (f) props.onFile(f);
        }}
      />
    </>
  );
}
