//! Basic Information: vital statistics of a case's decedent.

use super::{ADDRESS1_ALIASES, CASE_NUMBER_ALIASES, CASE_NUMBER_REF, STATE_ALIASES, ZIP_ALIASES};
use crate::catalog::*;
use crate::values::ValueKind::*;

/// The values of `sex`, each with its aliases.
#[rustfmt::skip]
const SEX_VALUES: &[(&str, &[&str])] = &[
    ("female", &["f", "woman"]), ("male", &["m", "man"]), ("unknown", &["u", "unspecified"]),
];

/// The values of `marital_status`, each with its aliases.
#[rustfmt::skip]
const MARITAL_STATUS_VALUES: &[(&str, &[&str])] = &[
    ("married", &[]), ("never_married", &["single"]), ("widowed", &["widow", "widower"]),
    ("divorced", &[]), ("separated", &[]), ("unknown", &[]),
];

/// Basic Information: vital statistics of a case's decedent.
#[rustfmt::skip]
pub const BASIC_INFORMATION: ImportTypeDef = ImportTypeDef::new("basic_information", "Basic Information", "case_basic_information", &[
    col("case_number", Text).aliases(CASE_NUMBER_ALIASES).required(),
    col("sex", Enum(SEX_VALUES)).aliases(&["gender"]),
    col("ssn", Ssn).aliases(&["social security number", "social security", "soc sec #", "ss#", "ss #"]).sensitive(),
    col("marital_status", Enum(MARITAL_STATUS_VALUES)),
    col("place_of_birth", Text).aliases(&["birthplace", "birth place"]),
    col("address_line1", Text).aliases(ADDRESS1_ALIASES),
    col("address_line2", Text).aliases(&["address 2", "apt", "suite"]),
    col("city", Text),
    col("state", UsState).aliases(STATE_ALIASES),
    col("zip", Zip).aliases(ZIP_ALIASES),
    col("county", Text),
    col("occupation", Text),
    col("industry", Text).aliases(&["kind of business"]),
    col("education", Text),
    col("father_name", Text).aliases(&["father", "father's name"]),
    col("mother_maiden_name", Text).aliases(&["mother", "mother's maiden name", "mother maiden name"]),
    SOURCE_UPDATED_AT,
])
    .key(&["case_number"])
    .references(&[CASE_NUMBER_REF]);
