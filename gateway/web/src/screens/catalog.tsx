// Catalog: the import types with their columns, required marks, aliases,
// prerequisites and checks, and a header-only template per type.
// API: ListImportTypes, GetImportTemplate.
import { useEffect, useState } from "preact/hooks";
import { api } from "../api/client.js";
import type { ImportType } from "../gen/passare/imports/v1/imports_pb.js";
import { Head, ErrorBox, Section, saveBytes } from "../ui/common.js";

const listImportTypes = () => api.listImportTypes({});
const getTemplate = (importType: string) => api.getImportTemplate({ importType });

let cached: Promise<ImportType[]> | undefined;
/** The catalog, fetched once per page load (it is data of the deployed service). */
export function catalog(): Promise<ImportType[]> {
  cached ??= listImportTypes()
    .then((r) => r.importTypes)
    .catch((e) => {
      cached = undefined;
      throw e;
    });
  return cached;
}

export function useCatalog(): [ImportType[], unknown] {
  const [types, setTypes] = useState<ImportType[]>([]);
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    catalog().then(setTypes, setError);
  }, []);
  return [types, error];
}

export function CatalogScreen() {
  const [types, error] = useCatalog();
  const [downloadError, setDownloadError] = useState<unknown>();
  const download = async (key: string) => {
    try {
      const t = await getTemplate(key);
      saveBytes(t.fileName, t.contentType, [t.content]);
      setDownloadError(undefined);
    } catch (e) {
      setDownloadError(e);
    }
  };
  return (
    <Section title={`Import types (${types.length})`} id="catalog">
      <ErrorBox error={error} title="Could not load the import types" />
      <ErrorBox error={downloadError} title="Could not download the template" />
      <p class="muted">In loading order. Headers match by name or alias, ignoring case, spaces and punctuation.</p>
      {types.map((t, i) => (
        <details class="type" data-testid={`type-${t.key}`} open={i === 0}>
          <summary>
            <strong>
              {i + 1}. {t.displayName}
            </strong>{" "}
            <code>{t.key}</code> <span class="muted">· {t.columns.length} columns · key {t.keyColumns.join(" + ")}</span>
          </summary>
          <div class="type-body">
            <p>
              <button type="button" onClick={() => download(t.key)} data-testid={`template-${t.key}`}>
                Download template ({t.key}.csv)
              </button>
            </p>
            {t.prerequisites.length > 0 && <p>Needs organization setup: {t.prerequisites.join("; ")}.</p>}
            {t.dependencies.length > 0 && <p>Loads after: {t.dependencies.join(", ")}.</p>}
            <table>
              <Head cols={["Column", "Kind", "Required", "Aliases"]} />
              <tbody>
                {t.columns.map((c) => (
                  <tr>
                    <td>
                      <code>{c.name}</code>
                      {c.sensitive && <span class="badge">masked</span>}
                    </td>
                    <td>{c.description || c.kind}</td>
                    <td>{c.required ? <span class="required" aria-label="required">required</span> : ""}</td>
                    <td class="muted">{c.aliases.join(", ")}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {t.rowChecks.length > 0 && <p>Checks: {t.rowChecks.join("; ")}.</p>}
          </div>
        </details>
      ))}
    </Section>
  );
}
