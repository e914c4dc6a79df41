//! What the catalog tells people: the README's section on import types and
//! a header-only template per type.

use crate::catalog::{CATALOG, ImportTypeDef};

/// The README's section on import types, generated from the catalog so the
/// documentation cannot drift from the code (a test compares them).
pub fn markdown() -> String {
    let mut out = String::from(
        "Generated from the catalog by `passare-imports catalog`; do not edit by hand.\n\n",
    );
    for (i, t) in CATALOG.iter().enumerate() {
        out.push_str(&format!(
            "### {}. {} (`{}`)\n\nTable `{}`; key: {}.",
            i + 1,
            t.display_name,
            t.key,
            t.target_table,
            t.key_columns
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(" + ")
        ));
        let deps = t.dependencies();
        if !deps.is_empty() {
            out.push_str(&format!(" Loads after: {}.", deps.join(", ")));
        }
        if !t.prerequisites.is_empty() {
            out.push_str(&format!(
                " Needs organization setup: {}.",
                t.prerequisites
                    .iter()
                    .map(|p| p.table.replace('_', " "))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out.push_str("\n\n| column | kind | required | aliases |\n|---|---|---|---|\n");
        for c in t.columns {
            let mut kind = c.kind.describe();
            if let Some(r) = t.references.iter().find(|r| r.column == c.name) {
                kind.push_str(&format!("; refers to a {}", r.describes));
            }
            if c.sensitive {
                kind.push_str("; masked in reports");
            }
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                c.name,
                kind.replace('|', "\\|"),
                if c.required { "yes" } else { "" },
                c.aliases.join(", ")
            ));
        }
        if !t.row_checks.is_empty() || t.derived_key.is_some() || t.sum_within.is_some() {
            out.push_str("\nChecks: ");
            let mut checks: Vec<String> = t.row_checks.iter().map(|c| c.describe()).collect();
            if let Some(d) = t.derived_key {
                checks.push(format!(
                    "an empty {} becomes `auto-` and a hash of {}",
                    d.column,
                    d.from.join(", ")
                ));
            }
            if let Some(s) = t.sum_within {
                checks.push(format!(
                    "{} per {} above its {} is a warning",
                    s.amount, s.reference, s.total
                ));
            }
            out.push_str(&checks.join("; "));
            out.push_str(".\n");
        }
        out.push('\n');
    }
    out
}

/// A header-only CSV of the type's columns, required ones first.
pub fn template_csv(def: &ImportTypeDef) -> String {
    let mut names: Vec<&str> = def
        .columns
        .iter()
        .filter(|c| c.required)
        .map(|c| c.name)
        .collect();
    names.extend(def.columns.iter().filter(|c| !c.required).map(|c| c.name));
    format!("{}\r\n", names.join(","))
}
