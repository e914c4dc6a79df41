//! Payments: money received against a contract.

use super::CASE_NUMBER_ALIASES;
use crate::catalog::*;
use crate::values::ValueKind;

/// Payments: money received against a contract.
pub const PAYMENTS: ImportTypeDef = ImportTypeDef {
    key: "payments",
    display_name: "Payments",
    target_table: "payments",
    columns: &[
        required(aliases(
            col("contract_number", ValueKind::Text),
            &["contract #", "contract no", "contract", "contract id"],
        )),
        required(aliases(
            col("paid_on", ValueKind::Date),
            &["date", "payment date", "date paid"],
        )),
        required(aliases(
            col("amount", ValueKind::Money),
            &["payment", "payment amount", "amount paid"],
        )),
        required(aliases(
            col(
                "method",
                ValueKind::Enum(&[
                    ("cash", &[]),
                    ("check", &["cheque"]),
                    ("credit_card", &["card", "credit", "visa", "mastercard"]),
                    ("ach", &["bank transfer", "eft"]),
                    ("insurance", &["insurance assignment"]),
                    ("other", &[]),
                ]),
            ),
            &["payment method", "paid by", "type"],
        )),
        aliases(
            col("reference", ValueKind::Text),
            &["ref", "reference #", "check number", "receipt"],
        ),
        aliases(
            col("payer_name", ValueKind::Text),
            &["payer", "paid by name", "received from"],
        ),
        aliases(col("case_number", ValueKind::Text), CASE_NUMBER_ALIASES),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["contract_number", "reference"],
    references: &[ReferenceDef {
        column: "contract_number",
        describes: "contract",
        target: RefTarget::Records {
            type_key: "contract_information",
        },
        store_id_as: None,
        agrees: &[("case_number", "case_number")],
    }],
    prerequisites: &[],
    row_checks: &[RowCheck::MinMoney {
        column: "amount",
        cents: 0,
        strict: true,
    }],
    derived_key: None,
    sum_within: Some(SumWithinReferenced {
        amount: "amount",
        reference: "contract_number",
        total: "total",
    }),
};
