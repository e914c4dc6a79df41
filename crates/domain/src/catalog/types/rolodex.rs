//! Rolodex: the organization's contacts (churches, cemeteries, vendors, …).

use super::{ADDRESS1_ALIASES, STATE_ALIASES, ZIP_ALIASES};
use crate::catalog::*;
use crate::values::ValueKind;

/// Rolodex: the organization's contacts (churches, cemeteries, vendors, …).
pub const ROLODEX: ImportTypeDef = ImportTypeDef {
    key: "rolodex",
    display_name: "Rolodex",
    target_table: "rolodex_entries",
    columns: &[
        required(aliases(
            col("name", ValueKind::Text),
            &["organization", "company", "business name"],
        )),
        required(aliases(
            col(
                "category",
                ValueKind::Enum(&[
                    ("church", &[]),
                    ("cemetery", &[]),
                    ("crematory", &["crematorium"]),
                    ("florist", &["flowers"]),
                    ("hospital", &[]),
                    ("vendor", &["supplier"]),
                    ("clergy", &[]),
                    ("other", &[]),
                ]),
            ),
            &["type", "kind"],
        )),
        aliases(
            col("contact_first_name", ValueKind::Text),
            &["contact first", "first name"],
        ),
        aliases(
            col("contact_last_name", ValueKind::Text),
            &["contact last", "last name"],
        ),
        aliases(
            col("phone", ValueKind::Phone),
            &["phone number", "telephone"],
        ),
        aliases(col("email", ValueKind::Email), &["e-mail", "email address"]),
        aliases(col("address_line1", ValueKind::Text), ADDRESS1_ALIASES),
        col("city", ValueKind::Text),
        aliases(col("state", ValueKind::UsState), STATE_ALIASES),
        aliases(col("zip", ValueKind::Zip), ZIP_ALIASES),
        aliases(col("website", ValueKind::Text), &["web", "url", "web site"]),
        aliases(col("notes", ValueKind::Text), &["note", "comments"]),
        SOURCE_UPDATED_AT,
    ],
    key_columns: &["name", "category"],
    references: &[],
    prerequisites: &[],
    row_checks: &[],
    derived_key: None,
    sum_within: None,
};
