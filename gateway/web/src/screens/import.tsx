// One import at /imports/{id}: the draft screen while it is a draft, then the
// live view while it runs and the detail below it (and alone once it ended).
// API: GetImport.
import { useEffect, useState } from "preact/hooks";
import { api, type Identity } from "../api/client.js";
import { ImportState, type Import } from "../gen/passare/imports/v1/imports_pb.js";
import { ErrorBox, Link, Section, TERMINAL } from "../ui/common.js";
import { DraftScreen } from "./new-import.js";
import { LiveView } from "./live.js";
import { Detail } from "./detail.js";

const getImport = (importId: string) => api.getImport({ importId });

export function ImportScreen(props: { id: string; who: Identity }) {
  const [imp, setImp] = useState<Import>();
  const [error, setError] = useState<unknown>();
  const reload = () =>
    getImport(props.id)
      .then((r) => (setImp(r.import), setError(undefined)))
      .catch(setError);
  useEffect(() => {
    void reload();
  }, [props.id]);
  // A watch stream ends with the terminal event; read the import once more so
  // the detail (timeline, failures) is complete.
  const terminal = imp ? TERMINAL.has(imp.state) : false;
  useEffect(() => {
    if (terminal) void reload();
  }, [terminal]);

  if (!imp)
    return (
      <Section title="Import" id="import-loading">
        {error ? <ErrorBox error={error} title="Could not open this import" /> : <p class="muted">Loading…</p>}
        <p>
          <Link href="/imports">Back to the history</Link>
        </p>
      </Section>
    );
  return (
    <div class="import-page" data-import-id={imp.id} data-state={ImportState[imp.state]}>
      <p class="back">
        <Link href={`/imports?org=${imp.organizationId}`}>← {imp.organizationName}'s imports</Link>
      </p>
      <ErrorBox error={error} />
      {imp.state === ImportState.DRAFT ? (
        <DraftScreen imp={imp} who={props.who} onImport={setImp} reload={reload} />
      ) : (
        <>
          {!terminal && <LiveView imp={imp} who={props.who} onImport={setImp} />}
          <Detail imp={imp} who={props.who} onImport={setImp} />
        </>
      )}
    </div>
  );
}
