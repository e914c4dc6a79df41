//! Price List: the goods and services the organization sells.

use crate::catalog::*;
use crate::values::ValueKind;

/// Price List: the goods and services the organization sells.
pub const PRICE_LIST: ImportTypeDef = ImportTypeDef {
    key: "price_list",
    display_name: "Price List",
    target_table: "price_list_items",
    columns: &[
        required(aliases(
            col("item_code", ValueKind::Text),
            &["code", "item #", "sku", "item number"],
        )),
        required(aliases(
            col("name", ValueKind::Text),
            &["item", "item name", "description"],
        )),
        required(aliases(
            col(
                "category",
                ValueKind::Enum(&[
                    ("professional_services", &["services", "professional"]),
                    ("merchandise", &["goods"]),
                    ("cash_advance", &["cash advances"]),
                    ("facilities", &["facility"]),
                    ("vehicles", &["vehicle", "transportation"]),
                    ("other", &[]),
                ]),
            ),
            &["type"],
        )),
        required(aliases(
            col("price", ValueKind::Money),
            &["amount", "unit price"],
        )),
        aliases(col("taxable", ValueKind::Bool), &["tax", "is taxable"]),
        lookup_only(aliases(
            col("gl_account_code", ValueKind::Text),
            &["gl account", "gl code", "gl", "account"],
        )),
        aliases(col("active", ValueKind::Bool), &["is active", "enabled"]),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["item_code"],
    references: &[ReferenceDef {
        column: "gl_account_code",
        describes: "GL account of the organization",
        target: RefTarget::Setup {
            table: "gl_accounts",
            match_column: "code",
        },
        store_id_as: Some("gl_account_id"),
        agrees: &[],
    }],
    prerequisites: &[PrerequisiteDef {
        table: "gl_accounts",
        missing: "has no GL account",
    }],
    row_checks: &[RowCheck::MinMoney {
        column: "price",
        cents: 0,
        strict: false,
    }],
    derived_key: None,
    sum_within: None,
};
