//! Rolodex: the organization's contacts (churches, cemeteries, vendors, …).

use super::{ADDRESS1_ALIASES, STATE_ALIASES, ZIP_ALIASES};
use crate::catalog::*;
use crate::values::ValueKind::*;

/// The values of `category`, each with its aliases.
#[rustfmt::skip]
const CATEGORY_VALUES: &[(&str, &[&str])] = &[
    ("church", &[]), ("cemetery", &[]), ("crematory", &["crematorium"]),
    ("florist", &["flowers"]), ("hospital", &[]), ("vendor", &["supplier"]), ("clergy", &[]),
    ("other", &[]),
];

/// Rolodex: the organization's contacts (churches, cemeteries, vendors, …).
#[rustfmt::skip]
pub const ROLODEX: ImportTypeDef = ImportTypeDef::new("rolodex", "Rolodex", "rolodex_entries", &[
    col("name", Text).aliases(&["organization", "company", "business name"]).required(),
    col("category", Enum(CATEGORY_VALUES)).aliases(&["type", "kind"]).required(),
    col("contact_first_name", Text).aliases(&["contact first", "first name"]),
    col("contact_last_name", Text).aliases(&["contact last", "last name"]),
    col("phone", Phone).aliases(&["phone number", "telephone"]),
    col("email", Email).aliases(&["e-mail", "email address"]),
    col("address_line1", Text).aliases(ADDRESS1_ALIASES),
    col("city", Text),
    col("state", UsState).aliases(STATE_ALIASES),
    col("zip", Zip).aliases(ZIP_ALIASES),
    col("website", Text).aliases(&["web", "url", "web site"]),
    col("notes", Text).aliases(&["note", "comments"]),
    SOURCE_UPDATED_AT,
])
    .key(&["name", "category"]);
