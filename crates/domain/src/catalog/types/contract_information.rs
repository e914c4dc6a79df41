//! Contract Information: the statement of goods and services of a case.

use super::{CASE_NUMBER_ALIASES, CASE_NUMBER_REF};
use crate::catalog::*;
use crate::values::ValueKind::*;

/// The values of `contract_type`, each with its aliases.
#[rustfmt::skip]
const CONTRACT_TYPE_VALUES: &[(&str, &[&str])] = &[
    ("at_need", &["at need", "atneed"]), ("pre_need", &["pre need", "preneed"]),
];

/// The values of `status`, each with its aliases.
#[rustfmt::skip]
const STATUS_VALUES: &[(&str, &[&str])] = &[
    ("draft", &[]), ("signed", &["executed"]), ("void", &["voided"]),
];

/// Contract Information: the statement of goods and services of a case.
#[rustfmt::skip]
pub const CONTRACT_INFORMATION: ImportTypeDef = ImportTypeDef::new("contract_information", "Contract Information", "contracts", &[
    col("contract_number", Text).aliases(&["contract #", "contract no", "contract", "contract id"]).required(),
    col("case_number", Text).aliases(CASE_NUMBER_ALIASES).required(),
    col("contract_date", Date).aliases(&["date", "contract date", "signed on"]).required(),
    col("total", Money).aliases(&["contract total", "grand total", "amount"]).required(),
    col("contract_type", Enum(CONTRACT_TYPE_VALUES)).aliases(&["type"]),
    col("purchaser_name", Text).aliases(&["purchaser", "buyer"]),
    col("subtotal", Money),
    col("tax", Money).aliases(&["sales tax"]),
    col("discount", Money).aliases(&["discounts"]),
    col("status", Enum(STATUS_VALUES)).aliases(&["contract status"]),
    SOURCE_UPDATED_AT,
])
    .key(&["contract_number"])
    .references(&[CASE_NUMBER_REF])
    .checks(&[
        RowCheck::SumEquals { total: "total", plus: &["subtotal", "tax"], minus: &["discount"], tolerance_cents: 1 },
        RowCheck::MinMoney { column: "total", cents: 0, strict: false },
        RowCheck::MinMoney { column: "subtotal", cents: 0, strict: false },
        RowCheck::MinMoney { column: "tax", cents: 0, strict: false },
        RowCheck::MinMoney { column: "discount", cents: 0, strict: false },
    ]);
