//! Bank Transactions: lines of the organization's bank statements.

use super::BANK_ACCOUNT_ALIASES;
use crate::catalog::*;
use crate::values::ValueKind;

/// Bank Transactions: lines of the organization's bank statements.
pub const BANK_TRANSACTIONS: ImportTypeDef = ImportTypeDef {
    key: "bank_transactions",
    display_name: "Bank Transactions",
    target_table: "bank_transactions",
    columns: &[
        required(aliases(
            col("bank_account_number", ValueKind::Text),
            BANK_ACCOUNT_ALIASES,
        )),
        required(aliases(
            col("posted_on", ValueKind::Date),
            &["date", "posted", "post date", "transaction date"],
        )),
        required(aliases(
            col("amount", ValueKind::Money),
            &["transaction amount"],
        )),
        required(aliases(
            col("description", ValueKind::Text),
            &["memo", "details", "payee"],
        )),
        aliases(
            col("reference", ValueKind::Text),
            &["ref", "reference #", "transaction id", "fitid"],
        ),
        aliases(
            col(
                "type",
                ValueKind::Enum(&[
                    ("debit", &["dr", "withdrawal"]),
                    ("credit", &["cr", "deposit"]),
                ]),
            ),
            &["transaction type", "dr/cr"],
        ),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["bank_account_number", "reference"],
    references: &[ReferenceDef {
        column: "bank_account_number",
        describes: "bank account of the organization",
        target: RefTarget::Setup {
            table: "bank_accounts",
            match_column: "number",
        },
        store_id_as: Some("bank_account_id"),
        agrees: &[],
    }],
    prerequisites: &[PrerequisiteDef {
        table: "bank_accounts",
        missing: "has no bank account",
    }],
    row_checks: &[RowCheck::SignAgrees {
        kind: "type",
        amount: "amount",
        negative: "debit",
        positive: "credit",
    }],
    derived_key: Some(DerivedKey {
        column: "reference",
        from: &["bank_account_number", "posted_on", "amount", "description"],
    }),
    sum_within: None,
};
