//! Bank Transactions: lines of the organization's bank statements.

use super::{BANK_ACCOUNT_ALIASES, BANK_ACCOUNT_NEEDED, BANK_ACCOUNT_REF};
use crate::catalog::*;
use crate::values::ValueKind::*;

/// The values of `type`, each with its aliases.
#[rustfmt::skip]
const TYPE_VALUES: &[(&str, &[&str])] = &[
    ("debit", &["dr", "withdrawal"]), ("credit", &["cr", "deposit"]),
];

/// Bank Transactions: lines of the organization's bank statements.
#[rustfmt::skip]
pub const BANK_TRANSACTIONS: ImportTypeDef = ImportTypeDef::new("bank_transactions", "Bank Transactions", "bank_transactions", &[
    col("bank_account_number", Text).aliases(BANK_ACCOUNT_ALIASES).required(),
    col("posted_on", Date).aliases(&["date", "posted", "post date", "transaction date"]).required(),
    col("amount", Money).aliases(&["transaction amount"]).required(),
    col("description", Text).aliases(&["memo", "details", "payee"]).required(),
    col("reference", Text).aliases(&["ref", "reference #", "transaction id", "fitid"]),
    col("type", Enum(TYPE_VALUES)).aliases(&["transaction type", "dr/cr"]),
    SOURCE_UPDATED_AT,
])
    .key(&["bank_account_number", "reference"])
    .references(&[BANK_ACCOUNT_REF])
    .prerequisites(&[BANK_ACCOUNT_NEEDED])
    .checks(&[RowCheck::SignAgrees { kind: "type", amount: "amount", negative: "debit", positive: "credit" }])
    .derived_key(DerivedKey { column: "reference", from: &["bank_account_number", "posted_on", "amount", "description"] });
