//! Events: visitations, services and the like of a case.

use super::{CASE_NUMBER_ALIASES, case_number_ref};
use crate::catalog::*;
use crate::values::ValueKind;

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
