//! The catalog of import types. Each type is one declarative definition —
//! columns, key, references, prerequisites, row checks, target table — read by
//! the one pipeline; a new type is a new definition plus a migration for its
//! table, never a new code path.

use crate::values::ValueKind;

mod docs;
mod types;

pub use docs::{markdown, template_csv};
pub use types::*;

/// One column of an import type.
#[derive(Debug, Clone, Copy)]
pub struct ColumnDef {
    /// Canonical name, also the column of the staging table.
    pub name: &'static str,
    pub kind: ValueKind,
    pub required: bool,
    /// Other headers that mean this column (matched like the name, see [`normalize_header`]).
    pub aliases: &'static [&'static str],
    /// Shown masked (last four characters) in problems, error files and logs.
    pub sensitive: bool,
    /// Column of the target table it is stored in; `None` for columns that only
    /// feed a reference (the reference stores the resolved id instead).
    pub target: Option<&'static str>,
}

/// What a reference points to.
#[derive(Debug, Clone, Copy)]
pub enum RefTarget {
    /// Organization setup (locations, staff users, GL and bank accounts): a
    /// row of `table` whose `match_column` equals the value, ignoring case.
    Setup {
        table: &'static str,
        match_column: &'static str,
    },
    /// A record of another import type, by that type's (single-column) key,
    /// exactly: in the database, or in an earlier file of the same import.
    Records { type_key: &'static str },
}

/// A reference from a column to organization setup or another type's records.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceDef {
    /// Column of this type holding the reference.
    pub column: &'static str,
    /// What is referred to, for people ("location of the organization").
    pub describes: &'static str,
    pub target: RefTarget,
    /// Target column receiving the referenced setup record's `id`.
    pub store_id_as: Option<&'static str>,
    /// Pairs (column of this type, column of the referenced type): when this
    /// row has a value, it must equal the referenced record's.
    pub agrees: &'static [(&'static str, &'static str)],
}

impl ReferenceDef {
    /// A reference to organization setup: a row of `table` whose column
    /// `match_column` equals the value, ignoring case, whose id is stored as
    /// `store_id_as`.
    pub const fn setup(
        column: &'static str,
        describes: &'static str,
        (table, match_column): (&'static str, &'static str),
        store_id_as: &'static str,
    ) -> Self {
        ReferenceDef {
            column,
            describes,
            target: RefTarget::Setup {
                table,
                match_column,
            },
            store_id_as: Some(store_id_as),
            agrees: &[],
        }
    }

    /// A reference to a record of the type `type_key`, by that type's key.
    pub const fn records(
        column: &'static str,
        describes: &'static str,
        type_key: &'static str,
    ) -> Self {
        ReferenceDef {
            column,
            describes,
            target: RefTarget::Records { type_key },
            store_id_as: None,
            agrees: &[],
        }
    }

    /// Column pairs that must agree with the referenced record.
    pub const fn agrees(mut self, pairs: &'static [(&'static str, &'static str)]) -> Self {
        self.agrees = pairs;
        self
    }
}

/// Organization setup that must exist before an import of the type can run.
#[derive(Debug, Clone, Copy)]
pub struct PrerequisiteDef {
    /// Table that must hold at least one row of the organization.
    pub table: &'static str,
    /// What is missing, for people: "has no location".
    pub missing: &'static str,
}

/// A check across the values of one row (or, for `OneFlaggedPer`, across the
/// rows of one group).
#[derive(Debug, Clone, Copy)]
pub enum RowCheck {
    /// `later` must not be before `earlier` when both are present (dates or
    /// date-times).
    NotBefore {
        later: &'static str,
        earlier: &'static str,
    },
    /// `later` must be strictly after `earlier` when both are present.
    After {
        later: &'static str,
        earlier: &'static str,
    },
    /// The date must not be after today.
    NotInFuture(&'static str),
    /// A money column must be at least (`strict`: above) `cents`.
    MinMoney {
        column: &'static str,
        cents: i64,
        strict: bool,
    },
    /// When every column is present, `total` equals the sum of `plus` minus
    /// the sum of `minus`, within `tolerance_cents`.
    SumEquals {
        total: &'static str,
        plus: &'static [&'static str],
        minus: &'static [&'static str],
        tolerance_cents: i64,
    },
    /// When `kind` is present, `negative` requires a negative `amount` and
    /// `positive` a positive one.
    SignAgrees {
        kind: &'static str,
        amount: &'static str,
        negative: &'static str,
        positive: &'static str,
    },
    /// At most one row of each `group` value has the boolean `flag` set, in
    /// the request and in the database together.
    OneFlaggedPer {
        group: &'static str,
        flag: &'static str,
    },
}

impl RowCheck {
    /// Columns the check reads.
    pub fn columns(&self) -> Vec<&'static str> {
        match *self {
            RowCheck::NotBefore { later, earlier } | RowCheck::After { later, earlier } => {
                vec![later, earlier]
            }
            RowCheck::NotInFuture(c) => vec![c],
            RowCheck::MinMoney { column, .. } => vec![column],
            RowCheck::SumEquals {
                total, plus, minus, ..
            } => std::iter::once(total)
                .chain(plus.iter().copied())
                .chain(minus.iter().copied())
                .collect(),
            RowCheck::SignAgrees { kind, amount, .. } => vec![kind, amount],
            RowCheck::OneFlaggedPer { group, flag } => vec![group, flag],
        }
    }

    /// The rule in words, for the catalog and the README.
    pub fn describe(&self) -> String {
        match *self {
            RowCheck::NotBefore { later, earlier } => format!("{later} ≥ {earlier}"),
            RowCheck::After { later, earlier } => format!("{later} > {earlier}"),
            RowCheck::NotInFuture(c) => format!("{c} not in the future"),
            RowCheck::MinMoney {
                column,
                cents,
                strict,
            } => format!(
                "{column} {} {}",
                if strict { ">" } else { "≥" },
                crate::values::format_cents(cents)
            ),
            RowCheck::SumEquals {
                total,
                plus,
                minus,
                tolerance_cents,
            } => {
                let mut rhs = plus.join(" + ");
                for m in minus {
                    rhs.push_str(&format!(" − {m}"));
                }
                format!(
                    "{total} = {rhs} within {} when all are given",
                    crate::values::format_cents(tolerance_cents)
                )
            }
            RowCheck::SignAgrees {
                kind,
                amount,
                negative,
                positive,
            } => format!(
                "{kind}, when given, agrees with the sign of {amount} ({negative} < 0, {positive} > 0)"
            ),
            RowCheck::OneFlaggedPer { group, flag } => {
                format!("at most one row with {flag} per {group}")
            }
        }
    }
}

/// A key part computed when the file leaves it empty.
#[derive(Debug, Clone, Copy)]
pub struct DerivedKey {
    /// The key column filled in.
    pub column: &'static str,
    /// Columns whose normalised values are hashed into it.
    pub from: &'static [&'static str],
}

/// A warning computed over the whole request: the sum of `amount` over the
/// rows referring to one record of `reference` (stored ones included) above
/// that record's `total`.
#[derive(Debug, Clone, Copy)]
pub struct SumWithinReferenced {
    pub amount: &'static str,
    pub reference: &'static str,
    pub total: &'static str,
}

/// An import type.
#[derive(Debug, Clone, Copy)]
pub struct ImportTypeDef {
    /// Stable key used by the API ("cases").
    pub key: &'static str,
    /// Name shown to people ("Cases").
    pub display_name: &'static str,
    pub target_table: &'static str,
    pub columns: &'static [ColumnDef],
    /// Columns forming the natural key within an organization.
    pub key_columns: &'static [&'static str],
    pub references: &'static [ReferenceDef],
    pub prerequisites: &'static [PrerequisiteDef],
    pub row_checks: &'static [RowCheck],
    /// Filled in when the file leaves the key column empty.
    pub derived_key: Option<DerivedKey>,
    /// Request-wide warnings.
    pub sum_within: Option<SumWithinReferenced>,
}

/// Builders for the declarations in `types/`: a type starts from its key,
/// name, target table and columns, and adds what it has beyond them.
impl ImportTypeDef {
    pub const fn new(
        key: &'static str,
        display_name: &'static str,
        target_table: &'static str,
        columns: &'static [ColumnDef],
    ) -> Self {
        ImportTypeDef {
            key,
            display_name,
            target_table,
            columns,
            key_columns: &[],
            references: &[],
            prerequisites: &[],
            row_checks: &[],
            derived_key: None,
            sum_within: None,
        }
    }

    /// Columns forming the natural key.
    pub const fn key(mut self, columns: &'static [&'static str]) -> Self {
        self.key_columns = columns;
        self
    }

    pub const fn references(mut self, references: &'static [ReferenceDef]) -> Self {
        self.references = references;
        self
    }

    pub const fn prerequisites(mut self, prerequisites: &'static [PrerequisiteDef]) -> Self {
        self.prerequisites = prerequisites;
        self
    }

    pub const fn checks(mut self, checks: &'static [RowCheck]) -> Self {
        self.row_checks = checks;
        self
    }

    pub const fn derived_key(mut self, derived: DerivedKey) -> Self {
        self.derived_key = Some(derived);
        self
    }

    pub const fn sum_within(mut self, sum: SumWithinReferenced) -> Self {
        self.sum_within = Some(sum);
        self
    }
}

impl ImportTypeDef {
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Types whose records this type refers to, which load before it.
    pub fn dependencies(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for r in self.references {
            if let RefTarget::Records { type_key } = r.target
                && !out.contains(&type_key)
            {
                out.push(type_key);
            }
        }
        out
    }

    /// Position of the type in the loading order: every type comes after the
    /// types it refers to.
    pub fn load_rank(&self) -> i32 {
        CATALOG
            .iter()
            .position(|t| t.key == self.key)
            .unwrap_or(CATALOG.len()) as i32
    }

    /// Maps a file's headers to canonical columns with an explicit mapping
    /// (file header → column) taking precedence over names and aliases.
    /// Returns the mapping and the explicit entries that name no column.
    pub fn map_headers_with(
        &self,
        headers: &[String],
        explicit: &[(String, String)],
    ) -> (Vec<Option<&'static str>>, Vec<String>) {
        let mut unknown = Vec::new();
        let mut forced: Vec<(String, &'static str)> = Vec::new();
        for (header, column) in explicit {
            match self
                .columns
                .iter()
                .find(|c| normalize_header(c.name) == normalize_header(column))
            {
                Some(c) => forced.push((normalize_header(header), c.name)),
                None => unknown.push(column.clone()),
            }
        }
        let mut mapped = self.map_headers(headers);
        if !forced.is_empty() {
            for (i, h) in headers.iter().enumerate() {
                if let Some((_, c)) = forced.iter().find(|(f, _)| *f == normalize_header(h)) {
                    // The explicit target wins; any header that matched it by alias lets go.
                    for m in mapped.iter_mut() {
                        if *m == Some(*c) {
                            *m = None;
                        }
                    }
                    mapped[i] = Some(c);
                }
            }
        }
        (mapped, unknown)
    }

    /// Maps a file's headers to canonical columns; `None` marks a header that
    /// is not a column of this type (it is ignored).
    pub fn map_headers(&self, headers: &[String]) -> Vec<Option<&'static str>> {
        let mut taken: Vec<&'static str> = Vec::new();
        headers
            .iter()
            .map(|h| {
                let found = self.column_named(h)?;
                // A second header for the same column is not read: the scan
                // refuses such a file (see `repeated_columns`).
                if taken.contains(&found.name) {
                    return None;
                }
                taken.push(found.name);
                Some(found.name)
            })
            .collect()
    }

    /// Columns that more than one header names (by name, alias or the
    /// explicit mapping), each with the positions (from 0) of those headers.
    /// Reading such a file would keep one header's values and drop the
    /// others', so the scan refuses it. An explicit mapping that takes a
    /// column from a header matching it only by alias is the caller's choice
    /// and not counted.
    pub fn repeated_columns(
        &self,
        headers: &[String],
        explicit: &[(String, String)],
    ) -> Vec<(&'static str, Vec<usize>)> {
        let forced = |h: &str| {
            explicit
                .iter()
                .find(|(header, _)| normalize_header(header) == normalize_header(h))
                .and_then(|(_, column)| {
                    self.columns
                        .iter()
                        .find(|c| normalize_header(c.name) == normalize_header(column))
                })
                .map(|c| c.name)
        };
        let mut by_column: Vec<(&'static str, Vec<usize>, bool)> = Vec::new();
        for (i, h) in headers.iter().enumerate() {
            let (column, is_forced) = match forced(h) {
                Some(c) => (c, true),
                None => match self.column_named(h) {
                    Some(c) => (c.name, false),
                    None => continue,
                },
            };
            match by_column.iter_mut().find(|(c, _, _)| *c == column) {
                Some((_, at, any_forced)) => {
                    at.push(i);
                    *any_forced |= is_forced;
                }
                None => by_column.push((column, vec![i], is_forced)),
            }
        }
        by_column
            .into_iter()
            .filter_map(|(column, at, any_forced)| {
                let named: Vec<usize> = at
                    .iter()
                    .copied()
                    .filter(|&i| !any_forced || forced(&headers[i]).is_some())
                    .collect();
                (named.len() > 1).then_some((column, named))
            })
            .collect()
    }

    /// The column a header names by the column's name or one of its aliases.
    pub fn column_named(&self, header: &str) -> Option<&ColumnDef> {
        let wanted = normalize_header(header);
        if wanted.is_empty() {
            return None;
        }
        self.columns.iter().find(|c| {
            normalize_header(c.name) == wanted
                || c.aliases.iter().any(|a| normalize_header(a) == wanted)
        })
    }

    /// Required columns that none of the mapped headers provides.
    pub fn missing_required(&self, mapped: &[Option<&'static str>]) -> Vec<&'static str> {
        self.columns
            .iter()
            .filter(|c| c.required && !mapped.contains(&Some(c.name)))
            .map(|c| c.name)
            .collect()
    }
}

/// Headers match case-, space- and punctuation-insensitively: `Case #`,
/// `case_no` and `CaseNumber` normalise alike once aliases are listed.
pub fn normalize_header(header: &str) -> String {
    header
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '#')
        .flat_map(char::to_lowercase)
        .collect()
}

const fn col(name: &'static str, kind: ValueKind) -> ColumnDef {
    ColumnDef {
        name,
        kind,
        required: false,
        aliases: &[],
        sensitive: false,
        target: Some(name),
    }
}

impl ColumnDef {
    /// Other headers that mean this column.
    const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }

    /// Every row must give a value.
    const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Masked in problems, error files and logs.
    const fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// Only feeds a reference; the target table stores the resolved id.
    const fn lookup_only(mut self) -> Self {
        self.target = None;
        self
    }
}

/// The source system's last-modified time of a record, which every type
/// accepts: a row older than the stored record is `stale` and leaves it alone.
pub const SOURCE_UPDATED_AT: ColumnDef = col("source_updated_at", ValueKind::DateTime).aliases(&[
    "updated at",
    "last updated",
    "last modified",
    "modified at",
    "date modified",
]);

/// Every import type the service knows, in loading order: a type comes after
/// every type it refers to.
pub const CATALOG: &[&ImportTypeDef] = &[
    &CASES,
    &BASIC_INFORMATION,
    &VETERAN_INFORMATION,
    &FAMILY_AND_FRIENDS,
    &EVENTS,
    &CONTRACT_INFORMATION,
    &PAYMENTS,
    &ROLODEX,
    &PRICE_LIST,
    &CLIENT_SERVICE_TYPES,
    &CHECKS,
    &BANK_TRANSACTIONS,
];

/// Finds a type by its key, case-insensitively.
pub fn find(key: &str) -> Option<&'static ImportTypeDef> {
    CATALOG
        .iter()
        .copied()
        .find(|t| t.key.eq_ignore_ascii_case(key.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(h: &[&str]) -> Vec<String> {
        h.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_explicit_mapping_wins_over_names_and_aliases() {
        let (mapped, unknown) = CASES.map_headers_with(
            &headers(&["Ref", "First Name", "Last Name", "Case #"]),
            &[
                ("ref".into(), "Case Number".into()),
                ("x".into(), "favourite_colour".into()),
            ],
        );
        assert_eq!(
            mapped,
            vec![
                Some("case_number"),
                Some("deceased_first_name"),
                Some("deceased_last_name"),
                None
            ]
        );
        assert_eq!(unknown, vec!["favourite_colour".to_string()]);
    }

    #[test]
    fn the_readme_lists_the_types_as_the_catalog_defines_them() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .unwrap_or_default();
        let section = readme
            .split_once("<!-- catalog:start -->\n")
            .and_then(|(_, rest)| rest.split_once("<!-- catalog:end -->"))
            .map(|(section, _)| section);
        assert_eq!(
            section,
            Some(markdown().as_str()),
            "README.md's import types section is out of date: run `passare-imports catalog` and paste its output between the catalog markers"
        );
    }

    #[test]
    fn templates_list_required_columns_first() {
        let t = template_csv(&PAYMENTS);
        assert!(
            t.starts_with("contract_number,paid_on,amount,method,reference"),
            "{t}"
        );
        assert!(t.ends_with("\r\n"));
    }

    #[test]
    fn headers_match_names_and_aliases_ignoring_case_space_and_punctuation() {
        let mapped = CASES.map_headers(&headers(&[
            "Case #",
            "First Name",
            "DECEASED_LAST_NAME",
            "D.O.B.",
            "Favourite colour",
        ]));
        assert_eq!(
            mapped,
            vec![
                Some("case_number"),
                Some("deceased_first_name"),
                Some("deceased_last_name"),
                Some("date_of_birth"),
                None
            ]
        );
        assert!(CASES.missing_required(&mapped).is_empty());
    }

    #[test]
    fn a_second_header_for_the_same_column_is_ignored() {
        let mapped = CASES.map_headers(&headers(&["case_number", "Case No"]));
        assert_eq!(mapped, vec![Some("case_number"), None]);
        assert_eq!(
            CASES.missing_required(&mapped),
            vec!["deceased_first_name", "deceased_last_name"]
        );
    }

    #[test]
    fn every_reference_and_check_names_a_column_of_its_type() {
        for t in CATALOG {
            for r in t.references {
                assert!(t.column(r.column).is_some(), "{}: {}", t.key, r.column);
            }
            for k in t.key_columns {
                assert!(t.column(k).is_some(), "{}: {}", t.key, k);
            }
            for c in t.row_checks {
                for n in c.columns() {
                    assert!(t.column(n).is_some(), "{}: {}", t.key, n);
                }
            }
        }
        assert!(find("CASES").is_some());
        assert!(find("payroll").is_none());
        for (i, t) in CATALOG.iter().enumerate() {
            for d in t.dependencies() {
                let at = CATALOG.iter().position(|x| x.key == d);
                assert!(at.is_some_and(|at| at < i), "{} must come after {d}", t.key);
                assert_eq!(
                    find(d).map(|x| x.key_columns.len()),
                    Some(1),
                    "{d} is referred to by one key column"
                );
            }
            for r in t.references {
                for (mine, theirs) in r.agrees {
                    assert!(t.column(mine).is_some(), "{}: {mine}", t.key);
                    if let RefTarget::Records { type_key } = r.target {
                        assert!(find(type_key).and_then(|x| x.column(theirs)).is_some());
                    }
                }
            }
            if let Some(d) = t.derived_key {
                assert!(t.key_columns.contains(&d.column));
                for c in d.from {
                    assert!(t.column(c).is_some(), "{}: {c}", t.key);
                }
            }
        }
        assert_eq!(CATALOG.len(), 12);
    }
}
