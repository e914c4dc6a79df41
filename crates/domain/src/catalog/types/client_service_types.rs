//! Client Service Types: the kinds of service the organization offers.

use crate::catalog::*;
use crate::values::ValueKind::*;

/// The values of `default_case_type`, each with its aliases.
#[rustfmt::skip]
const DEFAULT_CASE_TYPE_VALUES: &[(&str, &[&str])] = &[
    ("at_need", &["at need", "atneed"]), ("pre_need", &["pre need", "preneed"]),
    ("other", &[]),
];

/// Client Service Types: the kinds of service the organization offers.
#[rustfmt::skip]
pub const CLIENT_SERVICE_TYPES: ImportTypeDef = ImportTypeDef::new("client_service_types", "Client Service Types", "client_service_types", &[
    col("code", Code).aliases(&["service code", "type code"]).required(),
    col("name", Text).aliases(&["service name", "service type"]).required(),
    col("description", Text),
    col("default_case_type", Enum(DEFAULT_CASE_TYPE_VALUES)).aliases(&["case type"]),
    col("active", Bool).aliases(&["is active", "enabled"]),
    SOURCE_UPDATED_AT,
])
    .key(&["code"]);
