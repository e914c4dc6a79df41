//! The catalog of import types. Each type is one declarative definition —
//! columns, key, references, prerequisites, row checks, target table — read by
//! the one pipeline; a new type is a new definition plus a migration for its
//! table, never a new code path.

use crate::values::ValueKind;

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

/// A reference from a column to organization setup or another type's records.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceDef {
    /// Column of this type holding the reference.
    pub column: &'static str,
    /// What is referred to, for people ("org location").
    pub describes: &'static str,
    /// Table and column the value must match within the organization
    /// (case-insensitively).
    pub table: &'static str,
    pub match_column: &'static str,
    /// Target column receiving the referenced record's `id`.
    pub store_id_as: &'static str,
}

/// Organization setup that must exist before an import of the type can run.
#[derive(Debug, Clone, Copy)]
pub struct PrerequisiteDef {
    /// Table that must hold at least one row of the organization.
    pub table: &'static str,
    /// What is missing, for people: "has no location".
    pub missing: &'static str,
}

/// A check across the values of one row.
#[derive(Debug, Clone, Copy)]
pub enum RowCheck {
    /// `later` must not be before `earlier` when both are present.
    NotBefore {
        later: &'static str,
        earlier: &'static str,
    },
    /// The date must not be after today.
    NotInFuture(&'static str),
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
}

impl ImportTypeDef {
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Maps a file's headers to canonical columns; `None` marks a header that
    /// is not a column of this type (it is ignored).
    pub fn map_headers(&self, headers: &[String]) -> Vec<Option<&'static str>> {
        let mut taken: Vec<&'static str> = Vec::new();
        headers
            .iter()
            .map(|h| {
                let wanted = normalize_header(h);
                let found = self.columns.iter().find(|c| {
                    normalize_header(c.name) == wanted
                        || c.aliases.iter().any(|a| normalize_header(a) == wanted)
                })?;
                // A second header for the same column is ignored: the first wins.
                if taken.contains(&found.name) {
                    return None;
                }
                taken.push(found.name);
                Some(found.name)
            })
            .collect()
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

const fn required(mut c: ColumnDef) -> ColumnDef {
    c.required = true;
    c
}

const fn aliases(mut c: ColumnDef, aliases: &'static [&'static str]) -> ColumnDef {
    c.aliases = aliases;
    c
}

const fn lookup_only(mut c: ColumnDef) -> ColumnDef {
    c.target = None;
    c
}

/// Cases: one row per case (a death and the services around it).
pub const CASES: ImportTypeDef = ImportTypeDef {
    key: "cases",
    display_name: "Cases",
    target_table: "cases",
    columns: &[
        required(aliases(
            col("case_number", ValueKind::Text),
            &[
                "case #",
                "case no",
                "case_no",
                "casenumber",
                "case id",
                "case",
            ],
        )),
        required(aliases(
            col("deceased_first_name", ValueKind::Text),
            &[
                "first name",
                "first_name",
                "decedent first name",
                "given name",
            ],
        )),
        aliases(
            col("deceased_middle_name", ValueKind::Text),
            &["middle name", "middle_name", "decedent middle name"],
        ),
        required(aliases(
            col("deceased_last_name", ValueKind::Text),
            &["last name", "last_name", "decedent last name", "surname"],
        )),
        col("suffix", ValueKind::Text),
        aliases(
            col("date_of_birth", ValueKind::Date),
            &["dob", "birth date", "birthdate", "born"],
        ),
        aliases(
            col("date_of_death", ValueKind::Date),
            &["dod", "death date", "deathdate", "died"],
        ),
        aliases(
            col(
                "case_type",
                ValueKind::Enum(&[
                    ("at_need", &["at need", "atneed"]),
                    ("pre_need", &["pre need", "preneed"]),
                    ("other", &[]),
                ]),
            ),
            &["type"],
        ),
        aliases(
            col(
                "case_status",
                ValueKind::Enum(&[
                    ("open", &["active"]),
                    ("closed", &[]),
                    ("cancelled", &["canceled"]),
                ]),
            ),
            &["status"],
        ),
        col(
            "disposition",
            ValueKind::Enum(&[
                ("burial", &["bury"]),
                ("cremation", &["cremate"]),
                ("entombment", &[]),
                ("donation", &["body donation"]),
                ("other", &[]),
            ]),
        ),
        lookup_only(aliases(
            col("location_name", ValueKind::Text),
            &["location", "branch"],
        )),
        lookup_only(aliases(
            col("director_email", ValueKind::Email),
            &["director", "funeral director email", "director e-mail"],
        )),
        aliases(
            col("opened_on", ValueKind::Date),
            &["opened", "open date", "date opened"],
        ),
    ],
    key_columns: &["case_number"],
    references: &[
        ReferenceDef {
            column: "location_name",
            describes: "location of the organization",
            table: "locations",
            match_column: "name",
            store_id_as: "location_id",
        },
        ReferenceDef {
            column: "director_email",
            describes: "staff user of the organization",
            table: "staff_users",
            match_column: "email",
            store_id_as: "director_user_id",
        },
    ],
    prerequisites: &[PrerequisiteDef {
        table: "locations",
        missing: "has no location",
    }],
    row_checks: &[
        RowCheck::NotBefore {
            later: "date_of_death",
            earlier: "date_of_birth",
        },
        RowCheck::NotInFuture("date_of_birth"),
        RowCheck::NotInFuture("date_of_death"),
    ],
};

/// Every import type the service knows.
pub const CATALOG: &[&ImportTypeDef] = &[&CASES];

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
                let names = match c {
                    RowCheck::NotBefore { later, earlier } => vec![*later, *earlier],
                    RowCheck::NotInFuture(c) => vec![*c],
                };
                for n in names {
                    assert!(t.column(n).is_some(), "{}: {}", t.key, n);
                }
            }
        }
        assert!(find("CASES").is_some());
        assert!(find("payments").is_none());
    }
}
