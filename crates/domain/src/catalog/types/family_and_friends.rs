//! Family And Friends: people connected to a case.

use super::{ADDRESS1_ALIASES, CASE_NUMBER_ALIASES, CASE_NUMBER_REF, STATE_ALIASES, ZIP_ALIASES};
use crate::catalog::*;
use crate::values::ValueKind::*;

/// The values of `relationship`, each with its aliases.
#[rustfmt::skip]
const RELATIONSHIP_VALUES: &[(&str, &[&str])] = &[
    ("spouse", &["wife", "husband", "partner"]), ("child", &["son", "daughter"]),
    ("parent", &["mother", "father"]), ("sibling", &["brother", "sister"]),
    ("grandchild", &["grandson", "granddaughter"]), ("friend", &[]), ("other", &[]),
];

/// Family And Friends: people connected to a case.
#[rustfmt::skip]
pub const FAMILY_AND_FRIENDS: ImportTypeDef = ImportTypeDef::new("family_and_friends", "Family And Friends", "case_family_members", &[
    col("case_number", Text).aliases(CASE_NUMBER_ALIASES).required(),
    col("first_name", Text).aliases(&["first", "given name"]).required(),
    col("last_name", Text).aliases(&["last", "surname"]).required(),
    col("relationship", Enum(RELATIONSHIP_VALUES)).aliases(&["relation", "relationship to deceased"]).required(),
    col("is_next_of_kin", Bool).aliases(&["next of kin", "nok"]),
    col("is_informant", Bool).aliases(&["informant"]),
    col("phone", Phone).aliases(&["phone number", "telephone", "mobile"]),
    col("email", Email).aliases(&["e-mail", "email address"]),
    col("address_line1", Text).aliases(ADDRESS1_ALIASES),
    col("city", Text),
    col("state", UsState).aliases(STATE_ALIASES),
    col("zip", Zip).aliases(ZIP_ALIASES),
    SOURCE_UPDATED_AT,
])
    .key(&["case_number", "first_name", "last_name"])
    .references(&[CASE_NUMBER_REF])
    .checks(&[RowCheck::OneFlaggedPer { group: "case_number", flag: "is_next_of_kin" }]);
