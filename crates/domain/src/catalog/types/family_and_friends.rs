//! Family And Friends: people connected to a case.

use super::{ADDRESS1_ALIASES, CASE_NUMBER_ALIASES, STATE_ALIASES, ZIP_ALIASES, case_number_ref};
use crate::catalog::*;
use crate::values::ValueKind;

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
