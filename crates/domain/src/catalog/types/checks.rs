//! Checks: checks written from the organization's bank accounts.

use super::{
    BANK_ACCOUNT_ALIASES, BANK_ACCOUNT_NEEDED, BANK_ACCOUNT_REF, CASE_NUMBER_ALIASES,
    CASE_NUMBER_REF,
};
use crate::catalog::*;
use crate::values::ValueKind::*;

/// The values of `status`, each with its aliases.
#[rustfmt::skip]
const STATUS_VALUES: &[(&str, &[&str])] = &[
    ("issued", &["open", "outstanding"]), ("cleared", &["cashed"]), ("void", &["voided"]),
];

/// Checks: checks written from the organization's bank accounts.
#[rustfmt::skip]
pub const CHECKS: ImportTypeDef = ImportTypeDef::new("checks", "Checks", "checks", &[
    col("bank_account_number", Text).aliases(BANK_ACCOUNT_ALIASES).required(),
    col("check_number", Text).aliases(&["check #", "check no", "check"]).required(),
    col("issued_on", Date).aliases(&["date", "issue date", "check date"]).required(),
    col("payee", Text).aliases(&["pay to", "paid to"]).required(),
    col("amount", Money).aliases(&["check amount"]).required(),
    col("memo", Text).aliases(&["note", "for"]),
    col("case_number", Text).aliases(CASE_NUMBER_ALIASES),
    col("status", Enum(STATUS_VALUES)).aliases(&["check status"]),
    SOURCE_UPDATED_AT,
])
    .key(&["bank_account_number", "check_number"])
    .references(&[BANK_ACCOUNT_REF, CASE_NUMBER_REF])
    .prerequisites(&[BANK_ACCOUNT_NEEDED])
    .checks(&[RowCheck::MinMoney { column: "amount", cents: 0, strict: true }]);
