//! Events: visitations, services and the like of a case.

use super::{CASE_NUMBER_ALIASES, CASE_NUMBER_REF};
use crate::catalog::*;
use crate::values::ValueKind::*;

/// The values of `event_type`, each with its aliases.
#[rustfmt::skip]
const EVENT_TYPE_VALUES: &[(&str, &[&str])] = &[
    ("visitation", &["viewing", "wake"]), ("funeral_service", &["funeral", "service"]),
    ("memorial_service", &["memorial"]), ("committal", &[]),
    ("graveside", &["graveside service"]), ("reception", &[]), ("other", &[]),
];

/// Events: visitations, services and the like of a case.
#[rustfmt::skip]
pub const EVENTS: ImportTypeDef = ImportTypeDef::new("events", "Events", "case_events", &[
    col("case_number", Text).aliases(CASE_NUMBER_ALIASES).required(),
    col("event_type", Enum(EVENT_TYPE_VALUES)).aliases(&["event", "type"]).required(),
    col("starts_at", DateTime).aliases(&["start", "starts", "start time", "begins"]).required(),
    col("ends_at", DateTime).aliases(&["end", "ends", "end time"]),
    col("location_name", Text).aliases(&["location", "place", "venue"]),
    col("officiant", Text).aliases(&["clergy", "officiated by"]),
    col("notes", Text).aliases(&["note", "comments"]),
    SOURCE_UPDATED_AT,
])
    .key(&["case_number", "event_type", "starts_at"])
    .references(&[CASE_NUMBER_REF])
    .checks(&[RowCheck::After { later: "ends_at", earlier: "starts_at" }]);
