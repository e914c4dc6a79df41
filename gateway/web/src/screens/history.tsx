// History: every import the caller may see, filtered by organization, type,
// state, requester and creation date, newest first, paged. Filters live in the
// URL's query string, so a reload or a shared link keeps them.
// API: ListImports (and ListOrganizations / ListImportTypes through the pickers).
import { useState } from "preact/hooks";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { api, type Identity } from "../api/client.js";
import { ImportState } from "../gen/passare/imports/v1/imports_pb.js";
import { Head, ErrorBox, Field, Link, Section, StateBadge, fmtInt, fmtTime, n } from "../ui/common.js";
import { usePages } from "../ui/paging.js";
import { setQuery, useLocation } from "../ui/router.js";
import { OrgPicker } from "./org-picker.js";
import { useCatalog } from "./catalog.js";

export interface HistoryFilters {
  org: string;
  type: string;
  state: string;
  requester: string;
  from: string;
  to: string;
}

const PAGE_SIZE = 20;

const listImports = (f: HistoryFilters, pageToken: string) =>
  api.listImports({
    organizationId: f.org,
    importType: f.type,
    state: f.state ? ImportState[f.state as keyof typeof ImportState] : ImportState.UNSPECIFIED,
    requestedBy: f.requester.trim(),
    // Dates are the user's local days: from the start of `from` to the end of `to`.
    createTimeAfter: f.from ? timestampFromDate(new Date(`${f.from}T00:00:00`)) : undefined,
    createTimeBefore: f.to ? timestampFromDate(new Date(new Date(`${f.to}T00:00:00`).getTime() + 86_400_000)) : undefined,
    pageSize: PAGE_SIZE,
    pageToken,
  });

const STATES = ["DRAFT", "QUEUED", "RUNNING", "PAUSED", "ROLLING_BACK", "COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "STOPPED"];

export function HistoryScreen(props: { who: Identity }) {
  const { query } = useLocation();
  const filters: HistoryFilters = {
    org: query.get("org") ?? "",
    type: query.get("type") ?? "",
    state: query.get("state") ?? "",
    requester: query.get("requester") ?? "",
    from: query.get("from") ?? "",
    to: query.get("to") ?? "",
  };
  const key = JSON.stringify(filters);
  const [types] = useCatalog();
  const [requester, setRequester] = useState(filters.requester);
  const { page, error, loading, pager } = usePages(
    (token) => listImports(filters, token).then((r) => ({ items: r.imports, next: r.nextPageToken })),
    [key],
  );

  const change = (patch: Partial<HistoryFilters>) => setQuery(patch as Record<string, string>);
  const select = (label: string, value: string, options: [string, string][], onChange: (v: string) => void, name: string) => (
    <Field label={label}>
      <select name={name} value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value)}>
        {options.map(([v, l]) => (
          <option value={v}>{l}</option>
        ))}
      </select>
    </Field>
  );

  return (
    <Section
      title="Data Imports — history"
      id="history"
      actions={
        props.who.superAdmin || props.who.developer ? (
          <Link href="/imports/new" class="button primary">
            New import
          </Link>
        ) : undefined
      }
    >
      <form class="filters" onSubmit={(e) => (e.preventDefault(), change({ requester }))} aria-label="Filters">
        <OrgPicker who={props.who} value={filters.org} onChange={(org) => change({ org })} allowAll id="filter-org" />
        {select("Import type", filters.type, [["", "Any type"], ...types.map((t) => [t.key, t.displayName] as [string, string])], (type) => change({ type }), "type")}
        {select("State", filters.state, [["", "Any state"], ...STATES.map((s) => [s, s.toLowerCase().replace(/_/g, " ")] as [string, string])], (state) => change({ state }), "state")}
        <Field label="Requested by (id or e-mail)">
          <input name="requester" value={requester} onInput={(e) => setRequester((e.target as HTMLInputElement).value)} onBlur={() => requester !== filters.requester && change({ requester })} />
        </Field>
        <Field label="Created from">
          <input type="date" name="from" value={filters.from} onChange={(e) => change({ from: (e.target as HTMLInputElement).value })} />
        </Field>
        <Field label="Created to">
          <input type="date" name="to" value={filters.to} onChange={(e) => change({ to: (e.target as HTMLInputElement).value })} />
        </Field>
        <button type="submit">Apply</button>
      </form>
      <ErrorBox error={error} title="Could not list imports" />
      <table class="imports" aria-busy={loading} data-testid="history-table">
        <Head cols={["Created", "Organization", "Files", "State", "Rows", "Requested by"]} />
        <tbody>
          {page?.items.map((i) => (
            <tr data-testid="history-row" data-import-id={i.id}>
              <td>
                <Link href={`/imports/${i.id}`}>{fmtTime(i.createTime)}</Link>
              </td>
              <td>
                {i.organizationName} <span class="muted">({i.organizationId})</span>
              </td>
              <td>
                {i.files.map((f) => f.name).join(", ") || <span class="muted">none</span>}
                {i.note && <div class="muted">{i.note}</div>}
              </td>
              <td>
                <StateBadge state={i.state} />
                {i.attempt > 1 && <span class="muted"> · attempt {i.attempt}</span>}
              </td>
              <td>
                {fmtInt(i.progress?.rowsProcessed)} / {fmtInt(i.progress?.rowsTotal)}
                {n(i.progress?.rowsFailed) > 0 && <div class="bad">{fmtInt(i.progress?.rowsFailed)} failed</div>}
              </td>
              <td>{i.requestedBy?.email || i.requestedBy?.id}</td>
            </tr>
          ))}
          {page && page.items.length === 0 && (
            <tr>
              <td colSpan={6} class="muted">
                No import matches these filters.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {pager}
    </Section>
  );
}
