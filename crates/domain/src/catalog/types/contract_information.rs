//! Contract Information: the statement of goods and services of a case.

use super::{CASE_NUMBER_ALIASES, case_number_ref};
use crate::catalog::*;
use crate::values::ValueKind;

/// Contract Information: the statement of goods and services of a case.
pub const CONTRACT_INFORMATION: ImportTypeDef = ImportTypeDef {
    key: "contract_information",
    display_name: "Contract Information",
    target_table: "contracts",
    columns: &[
        required(aliases(
            col("contract_number", ValueKind::Text),
            &["contract #", "contract no", "contract", "contract id"],
        )),
        required(aliases(
            col("case_number", ValueKind::Text),
            CASE_NUMBER_ALIASES,
        )),
        required(aliases(
            col("contract_date", ValueKind::Date),
            &["date", "contract date", "signed on"],
        )),
        required(aliases(
            col("total", ValueKind::Money),
            &["contract total", "grand total", "amount"],
        )),
        aliases(
            col(
                "contract_type",
                ValueKind::Enum(&[
                    ("at_need", &["at need", "atneed"]),
                    ("pre_need", &["pre need", "preneed"]),
                ]),
            ),
            &["type"],
        ),
        aliases(
            col("purchaser_name", ValueKind::Text),
            &["purchaser", "buyer"],
        ),
        col("subtotal", ValueKind::Money),
        aliases(col("tax", ValueKind::Money), &["sales tax"]),
        aliases(col("discount", ValueKind::Money), &["discounts"]),
        aliases(
            col(
                "status",
                ValueKind::Enum(&[
                    ("draft", &[]),
                    ("signed", &["executed"]),
                    ("void", &["voided"]),
                ]),
            ),
            &["contract status"],
        ),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["contract_number"],
    references: &[case_number_ref()],
    prerequisites: &[],
    row_checks: &[
        RowCheck::SumEquals {
            total: "total",
            plus: &["subtotal", "tax"],
            minus: &["discount"],
            tolerance_cents: 1,
        },
        RowCheck::MinMoney {
            column: "total",
            cents: 0,
            strict: false,
        },
        RowCheck::MinMoney {
            column: "subtotal",
            cents: 0,
            strict: false,
        },
        RowCheck::MinMoney {
            column: "tax",
            cents: 0,
            strict: false,
        },
        RowCheck::MinMoney {
            column: "discount",
            cents: 0,
            strict: false,
        },
    ],
    derived_key: None,
    sum_within: None,
};
