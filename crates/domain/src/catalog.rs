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

const fn sensitive(mut c: ColumnDef) -> ColumnDef {
    c.sensitive = true;
    c
}

const fn lookup_only(mut c: ColumnDef) -> ColumnDef {
    c.target = None;
    c
}

/// The source system's last-modified time of a record, which every type
/// accepts: a row older than the stored record is `stale` and leaves it alone.
pub const SOURCE_UPDATED_AT: ColumnDef = aliases(
    col("source_updated_at", ValueKind::DateTime),
    &[
        "updated at",
        "last updated",
        "last modified",
        "modified at",
        "date modified",
    ],
);

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
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["case_number"],
    references: &[
        ReferenceDef {
            column: "location_name",
            describes: "location of the organization",
            target: RefTarget::Setup {
                table: "locations",
                match_column: "name",
            },
            store_id_as: Some("location_id"),
            agrees: &[],
        },
        ReferenceDef {
            column: "director_email",
            describes: "staff user of the organization",
            target: RefTarget::Setup {
                table: "staff_users",
                match_column: "email",
            },
            store_id_as: Some("director_user_id"),
            agrees: &[],
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
    derived_key: None,
    sum_within: None,
};

const CASE_NUMBER_ALIASES: &[&str] = &[
    "case #",
    "case no",
    "case_no",
    "casenumber",
    "case id",
    "case",
];

const fn case_number_ref() -> ReferenceDef {
    ReferenceDef {
        column: "case_number",
        describes: "case",
        target: RefTarget::Records { type_key: "cases" },
        store_id_as: None,
        agrees: &[],
    }
}

const STATE_ALIASES: &[&str] = &["st", "province"];
const ZIP_ALIASES: &[&str] = &["zip code", "zipcode", "postal code", "postcode"];
const ADDRESS1_ALIASES: &[&str] = &["address", "address 1", "street", "street address"];

/// Basic Information: vital statistics of a case's decedent.
pub const BASIC_INFORMATION: ImportTypeDef = ImportTypeDef {
    key: "basic_information",
    display_name: "Basic Information",
    target_table: "case_basic_information",
    columns: &[
        required(aliases(
            col("case_number", ValueKind::Text),
            CASE_NUMBER_ALIASES,
        )),
        aliases(
            col(
                "sex",
                ValueKind::Enum(&[
                    ("female", &["f", "woman"]),
                    ("male", &["m", "man"]),
                    ("unknown", &["u", "unspecified"]),
                ]),
            ),
            &["gender"],
        ),
        sensitive(aliases(
            col("ssn", ValueKind::Ssn),
            &[
                "social security number",
                "social security",
                "soc sec #",
                "ss#",
                "ss #",
            ],
        )),
        col(
            "marital_status",
            ValueKind::Enum(&[
                ("married", &[]),
                ("never_married", &["single"]),
                ("widowed", &["widow", "widower"]),
                ("divorced", &[]),
                ("separated", &[]),
                ("unknown", &[]),
            ]),
        ),
        aliases(
            col("place_of_birth", ValueKind::Text),
            &["birthplace", "birth place"],
        ),
        aliases(col("address_line1", ValueKind::Text), ADDRESS1_ALIASES),
        aliases(
            col("address_line2", ValueKind::Text),
            &["address 2", "apt", "suite"],
        ),
        col("city", ValueKind::Text),
        aliases(col("state", ValueKind::UsState), STATE_ALIASES),
        aliases(col("zip", ValueKind::Zip), ZIP_ALIASES),
        col("county", ValueKind::Text),
        col("occupation", ValueKind::Text),
        aliases(col("industry", ValueKind::Text), &["kind of business"]),
        col("education", ValueKind::Text),
        aliases(
            col("father_name", ValueKind::Text),
            &["father", "father's name"],
        ),
        aliases(
            col("mother_maiden_name", ValueKind::Text),
            &["mother", "mother's maiden name", "mother maiden name"],
        ),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["case_number"],
    references: &[case_number_ref()],
    prerequisites: &[],
    row_checks: &[],
    derived_key: None,
    sum_within: None,
};

/// Veteran Information: military service of a case's decedent.
pub const VETERAN_INFORMATION: ImportTypeDef = ImportTypeDef {
    key: "veteran_information",
    display_name: "Veteran Information",
    target_table: "case_veterans",
    columns: &[
        required(aliases(
            col("case_number", ValueKind::Text),
            CASE_NUMBER_ALIASES,
        )),
        required(aliases(
            col(
                "branch",
                ValueKind::Enum(&[
                    ("army", &["us army", "usa"]),
                    ("navy", &["us navy", "usn"]),
                    ("air_force", &["us air force", "usaf"]),
                    ("marine_corps", &["marines", "usmc"]),
                    ("coast_guard", &["uscg"]),
                    ("space_force", &["ussf"]),
                    ("national_guard", &["guard"]),
                ]),
            ),
            &["branch of service", "service branch"],
        )),
        aliases(
            col("service_number", ValueKind::Text),
            &["service #", "service no"],
        ),
        col("rank", ValueKind::Text),
        aliases(
            col("entered_on", ValueKind::Date),
            &["entered", "date entered", "entry date"],
        ),
        aliases(
            col("discharged_on", ValueKind::Date),
            &["discharged", "date discharged", "discharge date"],
        ),
        aliases(
            col("war_period", ValueKind::Text),
            &["war", "war or conflict"],
        ),
        col("discharge_type", ValueKind::Text),
        aliases(col("flag_requested", ValueKind::Bool), &["flag"]),
        aliases(
            col("headstone_requested", ValueKind::Bool),
            &["headstone", "marker requested"],
        ),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["case_number"],
    references: &[case_number_ref()],
    prerequisites: &[],
    row_checks: &[RowCheck::NotBefore {
        later: "discharged_on",
        earlier: "entered_on",
    }],
    derived_key: None,
    sum_within: None,
};

/// Family And Friends: people connected to a case.
pub const FAMILY_AND_FRIENDS: ImportTypeDef = ImportTypeDef {
    key: "family_and_friends",
    display_name: "Family And Friends",
    target_table: "case_family_members",
    columns: &[
        required(aliases(
            col("case_number", ValueKind::Text),
            CASE_NUMBER_ALIASES,
        )),
        required(aliases(
            col("first_name", ValueKind::Text),
            &["first", "given name"],
        )),
        required(aliases(
            col("last_name", ValueKind::Text),
            &["last", "surname"],
        )),
        required(aliases(
            col(
                "relationship",
                ValueKind::Enum(&[
                    ("spouse", &["wife", "husband", "partner"]),
                    ("child", &["son", "daughter"]),
                    ("parent", &["mother", "father"]),
                    ("sibling", &["brother", "sister"]),
                    ("grandchild", &["grandson", "granddaughter"]),
                    ("friend", &[]),
                    ("other", &[]),
                ]),
            ),
            &["relation", "relationship to deceased"],
        )),
        aliases(
            col("is_next_of_kin", ValueKind::Bool),
            &["next of kin", "nok"],
        ),
        aliases(col("is_informant", ValueKind::Bool), &["informant"]),
        aliases(
            col("phone", ValueKind::Phone),
            &["phone number", "telephone", "mobile"],
        ),
        aliases(col("email", ValueKind::Email), &["e-mail", "email address"]),
        aliases(col("address_line1", ValueKind::Text), ADDRESS1_ALIASES),
        col("city", ValueKind::Text),
        aliases(col("state", ValueKind::UsState), STATE_ALIASES),
        aliases(col("zip", ValueKind::Zip), ZIP_ALIASES),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["case_number", "first_name", "last_name"],
    references: &[case_number_ref()],
    prerequisites: &[],
    row_checks: &[RowCheck::OneFlaggedPer {
        group: "case_number",
        flag: "is_next_of_kin",
    }],
    derived_key: None,
    sum_within: None,
};

/// Events: visitations, services and the like of a case.
pub const EVENTS: ImportTypeDef = ImportTypeDef {
    key: "events",
    display_name: "Events",
    target_table: "case_events",
    columns: &[
        required(aliases(
            col("case_number", ValueKind::Text),
            CASE_NUMBER_ALIASES,
        )),
        required(aliases(
            col(
                "event_type",
                ValueKind::Enum(&[
                    ("visitation", &["viewing", "wake"]),
                    ("funeral_service", &["funeral", "service"]),
                    ("memorial_service", &["memorial"]),
                    ("committal", &[]),
                    ("graveside", &["graveside service"]),
                    ("reception", &[]),
                    ("other", &[]),
                ]),
            ),
            &["event", "type"],
        )),
        required(aliases(
            col("starts_at", ValueKind::DateTime),
            &["start", "starts", "start time", "begins"],
        )),
        aliases(
            col("ends_at", ValueKind::DateTime),
            &["end", "ends", "end time"],
        ),
        aliases(
            col("location_name", ValueKind::Text),
            &["location", "place", "venue"],
        ),
        aliases(
            col("officiant", ValueKind::Text),
            &["clergy", "officiated by"],
        ),
        aliases(col("notes", ValueKind::Text), &["note", "comments"]),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["case_number", "event_type", "starts_at"],
    references: &[case_number_ref()],
    prerequisites: &[],
    row_checks: &[RowCheck::After {
        later: "ends_at",
        earlier: "starts_at",
    }],
    derived_key: None,
    sum_within: None,
};

/// Contract Information: the statement of goods and services of a case.
pub const CONTRACT_INFORMATION: ImportTypeDef = ImportTypeDef {
    key: "contract_information",
    display_name: "Contract Information",
    target_table: "contracts",
    columns: &[
        required(aliases(
            col("contract_number", ValueKind::Text),
            &["contract #", "contract no", "contract", "contract id"],
        )),
        required(aliases(
            col("case_number", ValueKind::Text),
            CASE_NUMBER_ALIASES,
        )),
        required(aliases(
            col("contract_date", ValueKind::Date),
            &["date", "contract date", "signed on"],
        )),
        required(aliases(
            col("total", ValueKind::Money),
            &["contract total", "grand total", "amount"],
        )),
        aliases(
            col(
                "contract_type",
                ValueKind::Enum(&[
                    ("at_need", &["at need", "atneed"]),
                    ("pre_need", &["pre need", "preneed"]),
                ]),
            ),
            &["type"],
        ),
        aliases(
            col("purchaser_name", ValueKind::Text),
            &["purchaser", "buyer"],
        ),
        col("subtotal", ValueKind::Money),
        aliases(col("tax", ValueKind::Money), &["sales tax"]),
        aliases(col("discount", ValueKind::Money), &["discounts"]),
        aliases(
            col(
                "status",
                ValueKind::Enum(&[
                    ("draft", &[]),
                    ("signed", &["executed"]),
                    ("void", &["voided"]),
                ]),
            ),
            &["contract status"],
        ),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["contract_number"],
    references: &[case_number_ref()],
    prerequisites: &[],
    row_checks: &[
        RowCheck::SumEquals {
            total: "total",
            plus: &["subtotal", "tax"],
            minus: &["discount"],
            tolerance_cents: 1,
        },
        RowCheck::MinMoney {
            column: "total",
            cents: 0,
            strict: false,
        },
        RowCheck::MinMoney {
            column: "subtotal",
            cents: 0,
            strict: false,
        },
        RowCheck::MinMoney {
            column: "tax",
            cents: 0,
            strict: false,
        },
        RowCheck::MinMoney {
            column: "discount",
            cents: 0,
            strict: false,
        },
    ],
    derived_key: None,
    sum_within: None,
};

/// Payments: money received against a contract.
pub const PAYMENTS: ImportTypeDef = ImportTypeDef {
    key: "payments",
    display_name: "Payments",
    target_table: "payments",
    columns: &[
        required(aliases(
            col("contract_number", ValueKind::Text),
            &["contract #", "contract no", "contract", "contract id"],
        )),
        required(aliases(
            col("paid_on", ValueKind::Date),
            &["date", "payment date", "date paid"],
        )),
        required(aliases(
            col("amount", ValueKind::Money),
            &["payment", "payment amount", "amount paid"],
        )),
        required(aliases(
            col(
                "method",
                ValueKind::Enum(&[
                    ("cash", &[]),
                    ("check", &["cheque"]),
                    ("credit_card", &["card", "credit", "visa", "mastercard"]),
                    ("ach", &["bank transfer", "eft"]),
                    ("insurance", &["insurance assignment"]),
                    ("other", &[]),
                ]),
            ),
            &["payment method", "paid by", "type"],
        )),
        aliases(
            col("reference", ValueKind::Text),
            &["ref", "reference #", "check number", "receipt"],
        ),
        aliases(
            col("payer_name", ValueKind::Text),
            &["payer", "paid by name", "received from"],
        ),
        aliases(col("case_number", ValueKind::Text), CASE_NUMBER_ALIASES),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["contract_number", "reference"],
    references: &[ReferenceDef {
        column: "contract_number",
        describes: "contract",
        target: RefTarget::Records {
            type_key: "contract_information",
        },
        store_id_as: None,
        agrees: &[("case_number", "case_number")],
    }],
    prerequisites: &[],
    row_checks: &[RowCheck::MinMoney {
        column: "amount",
        cents: 0,
        strict: true,
    }],
    derived_key: None,
    sum_within: Some(SumWithinReferenced {
        amount: "amount",
        reference: "contract_number",
        total: "total",
    }),
};

/// Rolodex: the organization's contacts (churches, cemeteries, vendors, …).
pub const ROLODEX: ImportTypeDef = ImportTypeDef {
    key: "rolodex",
    display_name: "Rolodex",
    target_table: "rolodex_entries",
    columns: &[
        required(aliases(
            col("name", ValueKind::Text),
            &["organization", "company", "business name"],
        )),
        required(aliases(
            col(
                "category",
                ValueKind::Enum(&[
                    ("church", &[]),
                    ("cemetery", &[]),
                    ("crematory", &["crematorium"]),
                    ("florist", &["flowers"]),
                    ("hospital", &[]),
                    ("vendor", &["supplier"]),
                    ("clergy", &[]),
                    ("other", &[]),
                ]),
            ),
            &["type", "kind"],
        )),
        aliases(
            col("contact_first_name", ValueKind::Text),
            &["contact first", "first name"],
        ),
        aliases(
            col("contact_last_name", ValueKind::Text),
            &["contact last", "last name"],
        ),
        aliases(
            col("phone", ValueKind::Phone),
            &["phone number", "telephone"],
        ),
        aliases(col("email", ValueKind::Email), &["e-mail", "email address"]),
        aliases(col("address_line1", ValueKind::Text), ADDRESS1_ALIASES),
        col("city", ValueKind::Text),
        aliases(col("state", ValueKind::UsState), STATE_ALIASES),
        aliases(col("zip", ValueKind::Zip), ZIP_ALIASES),
        aliases(col("website", ValueKind::Text), &["web", "url", "web site"]),
        aliases(col("notes", ValueKind::Text), &["note", "comments"]),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["name", "category"],
    references: &[],
    prerequisites: &[],
    row_checks: &[],
    derived_key: None,
    sum_within: None,
};

/// Price List: the goods and services the organization sells.
pub const PRICE_LIST: ImportTypeDef = ImportTypeDef {
    key: "price_list",
    display_name: "Price List",
    target_table: "price_list_items",
    columns: &[
        required(aliases(
            col("item_code", ValueKind::Text),
            &["code", "item #", "sku", "item number"],
        )),
        required(aliases(
            col("name", ValueKind::Text),
            &["item", "item name", "description"],
        )),
        required(aliases(
            col(
                "category",
                ValueKind::Enum(&[
                    ("professional_services", &["services", "professional"]),
                    ("merchandise", &["goods"]),
                    ("cash_advance", &["cash advances"]),
                    ("facilities", &["facility"]),
                    ("vehicles", &["vehicle", "transportation"]),
                    ("other", &[]),
                ]),
            ),
            &["type"],
        )),
        required(aliases(
            col("price", ValueKind::Money),
            &["amount", "unit price"],
        )),
        aliases(col("taxable", ValueKind::Bool), &["tax", "is taxable"]),
        lookup_only(aliases(
            col("gl_account_code", ValueKind::Text),
            &["gl account", "gl code", "gl", "account"],
        )),
        aliases(col("active", ValueKind::Bool), &["is active", "enabled"]),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["item_code"],
    references: &[ReferenceDef {
        column: "gl_account_code",
        describes: "GL account of the organization",
        target: RefTarget::Setup {
            table: "gl_accounts",
            match_column: "code",
        },
        store_id_as: Some("gl_account_id"),
        agrees: &[],
    }],
    prerequisites: &[PrerequisiteDef {
        table: "gl_accounts",
        missing: "has no GL account",
    }],
    row_checks: &[RowCheck::MinMoney {
        column: "price",
        cents: 0,
        strict: false,
    }],
    derived_key: None,
    sum_within: None,
};

/// Client Service Types: the kinds of service the organization offers.
pub const CLIENT_SERVICE_TYPES: ImportTypeDef = ImportTypeDef {
    key: "client_service_types",
    display_name: "Client Service Types",
    target_table: "client_service_types",
    columns: &[
        required(aliases(
            col("code", ValueKind::Code),
            &["service code", "type code"],
        )),
        required(aliases(
            col("name", ValueKind::Text),
            &["service name", "service type"],
        )),
        col("description", ValueKind::Text),
        aliases(
            col(
                "default_case_type",
                ValueKind::Enum(&[
                    ("at_need", &["at need", "atneed"]),
                    ("pre_need", &["pre need", "preneed"]),
                    ("other", &[]),
                ]),
            ),
            &["case type"],
        ),
        aliases(col("active", ValueKind::Bool), &["is active", "enabled"]),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["code"],
    references: &[],
    prerequisites: &[],
    row_checks: &[],
    derived_key: None,
    sum_within: None,
};

const BANK_ACCOUNT_ALIASES: &[&str] = &["account", "account number", "account #", "bank account"];

/// Checks: checks written from the organization's bank accounts.
pub const CHECKS: ImportTypeDef = ImportTypeDef {
    key: "checks",
    display_name: "Checks",
    target_table: "checks",
    columns: &[
        required(aliases(
            col("bank_account_number", ValueKind::Text),
            BANK_ACCOUNT_ALIASES,
        )),
        required(aliases(
            col("check_number", ValueKind::Text),
            &["check #", "check no", "check"],
        )),
        required(aliases(
            col("issued_on", ValueKind::Date),
            &["date", "issue date", "check date"],
        )),
        required(aliases(
            col("payee", ValueKind::Text),
            &["pay to", "paid to"],
        )),
        required(aliases(col("amount", ValueKind::Money), &["check amount"])),
        aliases(col("memo", ValueKind::Text), &["note", "for"]),
        aliases(col("case_number", ValueKind::Text), CASE_NUMBER_ALIASES),
        aliases(
            col(
                "status",
                ValueKind::Enum(&[
                    ("issued", &["open", "outstanding"]),
                    ("cleared", &["cashed"]),
                    ("void", &["voided"]),
                ]),
            ),
            &["check status"],
        ),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["bank_account_number", "check_number"],
    references: &[
        ReferenceDef {
            column: "bank_account_number",
            describes: "bank account of the organization",
            target: RefTarget::Setup {
                table: "bank_accounts",
                match_column: "number",
            },
            store_id_as: Some("bank_account_id"),
            agrees: &[],
        },
        case_number_ref(),
    ],
    prerequisites: &[PrerequisiteDef {
        table: "bank_accounts",
        missing: "has no bank account",
    }],
    row_checks: &[RowCheck::MinMoney {
        column: "amount",
        cents: 0,
        strict: true,
    }],
    derived_key: None,
    sum_within: None,
};

/// Bank Transactions: lines of the organization's bank statements.
pub const BANK_TRANSACTIONS: ImportTypeDef = ImportTypeDef {
    key: "bank_transactions",
    display_name: "Bank Transactions",
    target_table: "bank_transactions",
    columns: &[
        required(aliases(
            col("bank_account_number", ValueKind::Text),
            BANK_ACCOUNT_ALIASES,
        )),
        required(aliases(
            col("posted_on", ValueKind::Date),
            &["date", "posted", "post date", "transaction date"],
        )),
        required(aliases(
            col("amount", ValueKind::Money),
            &["transaction amount"],
        )),
        required(aliases(
            col("description", ValueKind::Text),
            &["memo", "details", "payee"],
        )),
        aliases(
            col("reference", ValueKind::Text),
            &["ref", "reference #", "transaction id", "fitid"],
        ),
        aliases(
            col(
                "type",
                ValueKind::Enum(&[
                    ("debit", &["dr", "withdrawal"]),
                    ("credit", &["cr", "deposit"]),
                ]),
            ),
            &["transaction type", "dr/cr"],
        ),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["bank_account_number", "reference"],
    references: &[ReferenceDef {
        column: "bank_account_number",
        describes: "bank account of the organization",
        target: RefTarget::Setup {
            table: "bank_accounts",
            match_column: "number",
        },
        store_id_as: Some("bank_account_id"),
        agrees: &[],
    }],
    prerequisites: &[PrerequisiteDef {
        table: "bank_accounts",
        missing: "has no bank account",
    }],
    row_checks: &[RowCheck::SignAgrees {
        kind: "type",
        amount: "amount",
        negative: "debit",
        positive: "credit",
    }],
    derived_key: Some(DerivedKey {
        column: "reference",
        from: &["bank_account_number", "posted_on", "amount", "description"],
    }),
    sum_within: None,
};

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
