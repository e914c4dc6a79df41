//! Cases: one row per case (a death and the services around it).

use super::CASE_NUMBER_ALIASES;
use crate::catalog::*;
use crate::values::ValueKind::*;

/// The values of `case_type`, each with its aliases.
#[rustfmt::skip]
const CASE_TYPE_VALUES: &[(&str, &[&str])] = &[
    ("at_need", &["at need", "atneed"]), ("pre_need", &["pre need", "preneed"]),
    ("other", &[]),
];

/// The values of `case_status`, each with its aliases.
#[rustfmt::skip]
const CASE_STATUS_VALUES: &[(&str, &[&str])] = &[
    ("open", &["active"]), ("closed", &[]), ("cancelled", &["canceled"]),
];

/// The values of `disposition`, each with its aliases.
#[rustfmt::skip]
const DISPOSITION_VALUES: &[(&str, &[&str])] = &[
    ("burial", &["bury"]), ("cremation", &["cremate"]), ("entombment", &[]),
    ("donation", &["body donation"]), ("other", &[]),
];

/// Cases: one row per case (a death and the services around it).
#[rustfmt::skip]
pub const CASES: ImportTypeDef = ImportTypeDef::new("cases", "Cases", "cases", &[
    col("case_number", Text).aliases(CASE_NUMBER_ALIASES).required(),
    col("deceased_first_name", Text).aliases(&["first name", "first_name", "decedent first name", "given name"]).required(),
    col("deceased_middle_name", Text).aliases(&["middle name", "middle_name", "decedent middle name"]),
    col("deceased_last_name", Text).aliases(&["last name", "last_name", "decedent last name", "surname"]).required(),
    col("suffix", Text),
    col("date_of_birth", Date).aliases(&["dob", "birth date", "birthdate", "born"]),
    col("date_of_death", Date).aliases(&["dod", "death date", "deathdate", "died"]),
    col("case_type", Enum(CASE_TYPE_VALUES)).aliases(&["type"]),
    col("case_status", Enum(CASE_STATUS_VALUES)).aliases(&["status"]),
    col("disposition", Enum(DISPOSITION_VALUES)),
    col("location_name", Text).aliases(&["location", "branch"]).lookup_only(),
    col("director_email", Email).aliases(&["director", "funeral director email", "director e-mail"]).lookup_only(),
    col("opened_on", Date).aliases(&["opened", "open date", "date opened"]),
    SOURCE_UPDATED_AT,
])
    .key(&["case_number"])
    .references(&[
        ReferenceDef::setup("location_name", "location of the organization", ("locations", "name"), "location_id"),
        ReferenceDef::setup("director_email", "staff user of the organization", ("staff_users", "email"), "director_user_id"),
    ])
    .prerequisites(&[PrerequisiteDef { table: "locations", missing: "has no location" }])
    .checks(&[
        RowCheck::NotBefore { later: "date_of_death", earlier: "date_of_birth" },
        RowCheck::NotInFuture("date_of_birth"),
        RowCheck::NotInFuture("date_of_death"),
    ]);
