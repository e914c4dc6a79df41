//! Checks: checks written from the organization's bank accounts.

use super::{BANK_ACCOUNT_ALIASES, CASE_NUMBER_ALIASES, case_number_ref};
use crate::catalog::*;
use crate::values::ValueKind;

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
