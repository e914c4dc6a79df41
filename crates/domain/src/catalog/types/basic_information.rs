//! Basic Information: vital statistics of a case's decedent.

use super::{ADDRESS1_ALIASES, CASE_NUMBER_ALIASES, STATE_ALIASES, ZIP_ALIASES, case_number_ref};
use crate::catalog::*;
use crate::values::ValueKind;

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
