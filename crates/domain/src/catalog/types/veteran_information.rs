//! Veteran Information: military service of a case's decedent.

use super::{CASE_NUMBER_ALIASES, case_number_ref};
use crate::catalog::*;
use crate::values::ValueKind;

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
