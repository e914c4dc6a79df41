// Pause switch: pause and resume every organization's imports, or one
// organization's, with a reason. Chunks in hand finish; nothing new starts.
// API: ListPauses, PauseImports, ResumeImports.
import { useEffect, useState } from "preact/hooks";
import { api, canManage, type Identity } from "../api/client.js";
import type { Pause } from "../gen/passare/imports/v1/imports_pb.js";
import { ErrorBox, Field, Section, fmtTime } from "../ui/common.js";
import { OrgPicker, orgNames } from "./org-picker.js";

const listPauses = () => api.listPauses({});
const pauseImports = (organizationId: string, reason: string) => api.pauseImports({ organizationId, reason });
const resumeImports = (organizationId: string) => api.resumeImports({ organizationId });

export function PauseScreen(props: { who: Identity }) {
  const [pauses, setPauses] = useState<Pause[]>();
  const [error, setError] = useState<unknown>();
  const [scope, setScope] = useState<"all" | "org">("all");
  const [org, setOrg] = useState("");
  const [reason, setReason] = useState("");
  const load = () =>
    listPauses()
      .then((r) => (setPauses(r.pauses), setError(undefined)))
      .catch(setError);
  useEffect(() => void load(), []);
  if (!canManage(props.who)) return <Section title="Pause switch" id="pauses"><p>Only super admins and developers may pause imports.</p></Section>;

  const pause = async (e: Event) => {
    e.preventDefault();
    try {
      await pauseImports(scope === "all" ? "" : org, reason.trim());
      setReason("");
      await load();
    } catch (err) {
      setError(err);
    }
  };
  const resume = async (organizationId: string) => {
    try {
      const r = await resumeImports(organizationId);
      setPauses(r.pauses);
      setError(undefined);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Section title="Pause switch" id="pauses">
      <ErrorBox error={error} />
      <h3>In force</h3>
      <ul class="pauses" data-testid="pause-list">
        {pauses?.map((p) => (
          <li data-testid="pause" data-scope={p.organizationId || "all"}>
            <strong>{p.organizationId ? `${orgNames.get(p.organizationId) ?? "Organization"} (${p.organizationId})` : "All organizations"}</strong> — <q>{p.reason}</q>{" "}
            <span class="muted">
              by {p.pausedBy?.email || p.pausedBy?.id} at {fmtTime(p.pauseTime)}
            </span>{" "}
            <button type="button" onClick={() => resume(p.organizationId)} data-testid={`resume-${p.organizationId || "all"}`}>
              Resume {p.organizationId ? "this organization" : "all"}
            </button>
          </li>
        ))}
        {pauses && pauses.length === 0 && <li class="muted">Nothing is paused.</li>}
      </ul>
      <h3>Pause</h3>
      <form class="stack" onSubmit={pause}>
        <fieldset>
          <legend>What to pause</legend>
          <label class="radio">
            <input type="radio" name="scope" checked={scope === "all"} onChange={() => setScope("all")} /> <span>Every organization's imports</span>
          </label>
          <label class="radio">
            <input type="radio" name="scope" checked={scope === "org"} onChange={() => setScope("org")} /> <span>One organization's imports</span>
          </label>
        </fieldset>
        {scope === "org" && <OrgPicker who={props.who} value={org} onChange={setOrg} id="pause-org" />}
        <Field label="Reason (shown on every paused import)">
          <input name="reason" required value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
        </Field>
        <button type="submit" class="danger" disabled={!reason.trim() || (scope === "org" && !org)} data-testid="pause-submit">
          Pause
        </button>
      </form>
    </Section>
  );
}
