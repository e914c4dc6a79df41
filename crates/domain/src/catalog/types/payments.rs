//! Payments: money received against a contract.

use super::CASE_NUMBER_ALIASES;
use crate::catalog::*;
use crate::values::ValueKind::*;

/// The values of `method`, each with its aliases.
#[rustfmt::skip]
const METHOD_VALUES: &[(&str, &[&str])] = &[
    ("cash", &[]), ("check", &["cheque"]),
    ("credit_card", &["card", "credit", "visa", "mastercard"]),
    ("ach", &["bank transfer", "eft"]), ("insurance", &["insurance assignment"]),
    ("other", &[]),
];

/// Payments: money received against a contract.
#[rustfmt::skip]
pub const PAYMENTS: ImportTypeDef = ImportTypeDef::new("payments", "Payments", "payments", &[
    col("contract_number", Text).aliases(&["contract #", "contract no", "contract", "contract id"]).required(),
    col("paid_on", Date).aliases(&["date", "payment date", "date paid"]).required(),
    col("amount", Money).aliases(&["payment", "payment amount", "amount paid"]).required(),
    col("method", Enum(METHOD_VALUES)).aliases(&["payment method", "paid by", "type"]).required(),
    col("reference", Text).aliases(&["ref", "reference #", "check number", "receipt"]),
    col("payer_name", Text).aliases(&["payer", "paid by name", "received from"]),
    col("case_number", Text).aliases(CASE_NUMBER_ALIASES),
    SOURCE_UPDATED_AT,
])
    .key(&["contract_number", "reference"])
    .references(&[ReferenceDef::records("contract_number", "contract", "contract_information")
        .agrees(&[("case_number", "case_number")])])
    .checks(&[RowCheck::MinMoney { column: "amount", cents: 0, strict: true }])
    .sum_within(SumWithinReferenced { amount: "amount", reference: "contract_number", total: "total" });
