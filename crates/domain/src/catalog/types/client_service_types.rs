//! Client Service Types: the kinds of service the organization offers.

use crate::catalog::*;
use crate::values::ValueKind;

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
