// Organization picker: search by part of the name or by id. Picking one only
// filters or targets this page's calls; it never changes the user's own
// organization.
// API: ListOrganizations.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, type Identity } from "../api/client.js";
import type { Organization } from "../gen/passare/imports/v1/imports_pb.js";
import { ErrorBox } from "../ui/common.js";

const searchOrganizations = (query: string) => api.listOrganizations({ query, pageSize: 20 });

/** Names of organizations seen so far, for labels. */
export const orgNames = new Map<string, string>();

export function OrgPicker(props: {
  who: Identity;
  value: string;
  onChange: (id: string) => void;
  label?: string;
  /** Offer "All organizations" (an empty value). */
  allowAll?: boolean;
  id?: string;
}) {
  const fixed = !props.who.superAdmin && !props.who.developer;
  const [query, setQuery] = useState("");
  const [open, setOpen] = useState(false);
  const [results, setResults] = useState<Organization[]>([]);
  const [error, setError] = useState<unknown>();
  const seq = useRef(0);

  useEffect(() => {
    if (fixed) {
      if (props.value !== props.who.org) props.onChange(props.who.org);
      return;
    }
    if (!open) return;
    const mine = ++seq.current;
    const t = setTimeout(() => {
      searchOrganizations(query.trim())
        .then((r) => {
          if (mine !== seq.current) return;
          r.organizations.forEach((o) => orgNames.set(o.id, o.name));
          setResults(r.organizations);
          setError(undefined);
        })
        .catch((e) => mine === seq.current && setError(e));
    }, 150);
    return () => clearTimeout(t);
  }, [query, open, fixed]);

  useEffect(() => {
    // Label a preset value (from the URL) once.
    if (props.value && !orgNames.has(props.value) && !fixed) {
      searchOrganizations(props.value)
        .then((r) => r.organizations.forEach((o) => orgNames.set(o.id, o.name)))
        .then(() => setResults((x) => [...x]))
        .catch(() => undefined);
    }
  }, [props.value]);

  const label = props.value ? `${orgNames.get(props.value) ?? "Organization"} (${props.value})` : props.allowAll ? "All organizations" : "";
  const inputId = props.id ?? "org-picker";
  if (fixed) {
    return (
      <div class="field">
        <span>{props.label ?? "Organization"}</span>
        <output data-testid="org-fixed">Organization {props.who.org} (your own)</output>
      </div>
    );
  }
  const pick = (id: string) => {
    props.onChange(id);
    setOpen(false);
    setQuery("");
  };
  return (
    <div class="field org-picker" data-testid={inputId}>
      <label for={inputId}>{props.label ?? "Organization"}</label>
      <input
        id={inputId}
        type="search"
        role="combobox"
        aria-expanded={open}
        aria-controls={`${inputId}-list`}
        placeholder={label || "Search by name or id"}
        value={query}
        onFocus={() => setOpen(true)}
        onInput={(e) => {
          setQuery((e.target as HTMLInputElement).value);
          setOpen(true);
        }}
        onKeyDown={(e) => {
          if (e.key === "Escape") setOpen(false);
          if (e.key === "Enter" && results.length > 0) {
            e.preventDefault();
            pick(results[0].id);
          }
        }}
      />
      {props.value && !open && (
        <div class="chosen" data-testid={`${inputId}-chosen`}>
          {label}{" "}
          {props.allowAll && (
            <button type="button" class="link" onClick={() => pick("")}>
              clear
            </button>
          )}
        </div>
      )}
      {open && (
        <ul class="options" id={`${inputId}-list`} role="listbox">
          {props.allowAll && (
            <li>
              <button type="button" role="option" onClick={() => pick("")}>
                All organizations
              </button>
            </li>
          )}
          {results.map((o) => (
            <li>
              <button type="button" role="option" aria-selected={o.id === props.value} onClick={() => pick(o.id)}>
                {o.name} <span class="muted">({o.id})</span>
              </button>
            </li>
          ))}
          {results.length === 0 && !error && <li class="muted">No organization matches.</li>}
          <li>
            <button type="button" class="link" onClick={() => setOpen(false)}>
              Close
            </button>
          </li>
        </ul>
      )}
      <ErrorBox error={error} title="Could not search organizations" />
    </div>
  );
}
