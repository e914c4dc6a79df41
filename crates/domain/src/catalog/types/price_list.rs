//! Price List: the goods and services the organization sells.

use crate::catalog::*;
use crate::values::ValueKind::*;

/// The values of `category`, each with its aliases.
#[rustfmt::skip]
const CATEGORY_VALUES: &[(&str, &[&str])] = &[
    ("professional_services", &["services", "professional"]), ("merchandise", &["goods"]),
    ("cash_advance", &["cash advances"]), ("facilities", &["facility"]),
    ("vehicles", &["vehicle", "transportation"]), ("other", &[]),
];

/// Price List: the goods and services the organization sells.
#[rustfmt::skip]
pub const PRICE_LIST: ImportTypeDef = ImportTypeDef::new("price_list", "Price List", "price_list_items", &[
    col("item_code", Text).aliases(&["code", "item #", "sku", "item number"]).required(),
    col("name", Text).aliases(&["item", "item name", "description"]).required(),
    col("category", Enum(CATEGORY_VALUES)).aliases(&["type"]).required(),
    col("price", Money).aliases(&["amount", "unit price"]).required(),
    col("taxable", Bool).aliases(&["tax", "is taxable"]),
    col("gl_account_code", Text).aliases(&["gl account", "gl code", "gl", "account"]).lookup_only(),
    col("active", Bool).aliases(&["is active", "enabled"]),
    SOURCE_UPDATED_AT,
])
    .key(&["item_code"])
    .references(&[ReferenceDef::setup("gl_account_code", "GL account of the organization", ("gl_accounts", "code"), "gl_account_id")])
    .prerequisites(&[PrerequisiteDef { table: "gl_accounts", missing: "has no GL account" }])
    .checks(&[RowCheck::MinMoney { column: "price", cents: 0, strict: false }]);
