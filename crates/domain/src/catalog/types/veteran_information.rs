//! Veteran Information: military service of a case's decedent.

use super::{CASE_NUMBER_ALIASES, CASE_NUMBER_REF};
use crate::catalog::*;
use crate::values::ValueKind::*;

/// The values of `branch`, each with its aliases.
#[rustfmt::skip]
const BRANCH_VALUES: &[(&str, &[&str])] = &[
    ("army", &["us army", "usa"]), ("navy", &["us navy", "usn"]),
    ("air_force", &["us air force", "usaf"]), ("marine_corps", &["marines", "usmc"]),
    ("coast_guard", &["uscg"]), ("space_force", &["ussf"]), ("national_guard", &["guard"]),
];

/// Veteran Information: military service of a case's decedent.
#[rustfmt::skip]
pub const VETERAN_INFORMATION: ImportTypeDef = ImportTypeDef::new("veteran_information", "Veteran Information", "case_veterans", &[
    col("case_number", Text).aliases(CASE_NUMBER_ALIASES).required(),
    col("branch", Enum(BRANCH_VALUES)).aliases(&["branch of service", "service branch"]).required(),
    col("service_number", Text).aliases(&["service #", "service no"]),
    col("rank", Text),
    col("entered_on", Date).aliases(&["entered", "date entered", "entry date"]),
    col("discharged_on", Date).aliases(&["discharged", "date discharged", "discharge date"]),
    col("war_period", Text).aliases(&["war", "war or conflict"]),
    col("discharge_type", Text),
    col("flag_requested", Bool).aliases(&["flag"]),
    col("headstone_requested", Bool).aliases(&["headstone", "marker requested"]),
    SOURCE_UPDATED_AT,
])
    .key(&["case_number"])
    .references(&[CASE_NUMBER_REF])
    .checks(&[RowCheck::NotBefore { later: "discharged_on", earlier: "entered_on" }]);
