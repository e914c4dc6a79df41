//! Transform rules (docs/transform-rules.md): declarative steps that turn a
//! source system's rows into the columns of an import type before they are
//! parsed — copy a header into a column, map values (with a default for
//! values no entry maps), defaults for missing values, trim and case, split
//! one field into several and join several into one, extract by regular
//! expression, read dates with an explicit pattern — each optionally only
//! where another field holds a value.
//!
//! Rules run in the order given, one record at a time, over the record's
//! fields: every column of the type (from the file's header mapping) and the
//! source headers the rules name. [`compile`] validates a rule set against
//! its import type once (unknown fields, bad patterns, fields derived from
//! themselves); the resulting [`Program`] is what analysis and load run, so
//! both apply exactly the same rules.

mod compile;
mod run;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::{ImportTypeDef, normalize_header};

pub use compile::{Program, RuleError, compile};
pub use run::{Bound, RuleEffect, RuleExample, RuleIssue};

/// Most rules a rule set may hold.
pub const MAX_RULES: usize = 200;
/// Most entries of one value map.
pub const MAX_MAP_ENTRIES: usize = 10_000;
/// Longest text of a rule (names, values, patterns, separators).
pub const MAX_RULE_TEXT: usize = 1_000;

/// One step of a rule set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Runs only for records where this holds; for every record when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    pub action: Action,
}

/// What a rule does. Field names are columns of the import type or source
/// headers of the rule set; outputs are always columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Action {
    /// Copies a field (typically a source header) into a column.
    Copy { from: String, to: String },
    /// Replaces a field's value by the one its entry maps it to, writing the
    /// result into `into` (the same field when empty). A value no entry maps
    /// takes `default` when given, is kept when `keep_unmapped`, and fails
    /// its row otherwise.
    MapValues {
        column: String,
        #[serde(default)]
        into: String,
        values: Vec<(String, String)>,
        #[serde(default)]
        default: Option<String>,
        #[serde(default)]
        keep_unmapped: bool,
        /// Matches values exactly; by default case and surrounding spaces
        /// do not matter.
        #[serde(default)]
        match_case: bool,
    },
    /// Gives an empty field a value.
    Default { column: String, value: String },
    /// Trims a field and collapses runs of spaces inside it to one.
    Trim { column: String },
    /// Changes a field's letter case.
    Case { column: String, to: LetterCase },
    /// Splits a field at `separator` into the `into` columns; with
    /// `from_end`, the last column takes the last piece and the first one
    /// what remains. A separator of spaces splits at any run of spaces.
    Split {
        column: String,
        separator: String,
        into: Vec<String>,
        #[serde(default)]
        from_end: bool,
    },
    /// Joins the non-empty values of several fields with `separator`.
    Join {
        columns: Vec<String>,
        separator: String,
        into: String,
    },
    /// Writes the first capture group of `pattern` (or the whole match when
    /// it has none) into `into`; empty when the value does not match.
    Extract {
        column: String,
        pattern: String,
        into: String,
    },
    /// Reads a date (or date and time) with an explicit pattern (`%m-%d-%y`)
    /// and writes it as `YYYY-MM-DD` into `into` (the same field when empty).
    /// A two-digit year is never in the future.
    Date {
        column: String,
        pattern: String,
        #[serde(default)]
        into: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LetterCase {
    Upper,
    Lower,
    /// The first letter of every word upper case, the rest lower.
    Title,
}

/// A test of one field's current value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub column: String,
    pub test: Test,
    /// The value(s) compared (`equals`, `not_equals`, `one_of`) or the
    /// regular expression (`matches`, one value).
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// Equal to the value, ignoring case and surrounding spaces.
    Equals,
    NotEquals,
    /// Equal to one of the values, ignoring case and surrounding spaces.
    OneOf,
    /// Matches the regular expression.
    Matches,
    Empty,
    NotEmpty,
}

/// Which version of which profile a file is read with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileVersion {
    pub profile_id: Uuid,
    pub name: String,
    pub version: i32,
}

impl AppliedProfile {
    /// The explicit header mapping of a file uploaded with `request`'s
    /// mapping and this profile: the request's entries first, then the
    /// profile's for headers the request did not map.
    pub fn merge_mapping(
        profile: Option<&AppliedProfile>,
        request: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut explicit = request.to_vec();
        for (header, column) in profile
            .map(|p| p.column_mapping.as_slice())
            .unwrap_or_default()
        {
            let wanted = normalize_header(header);
            if !explicit.iter().any(|(h, _)| normalize_header(h) == wanted) {
                explicit.push((header.clone(), column.clone()));
            }
        }
        explicit
    }

    /// The profile's rules compiled for `def`.
    pub fn program(&self, def: &'static ImportTypeDef) -> Result<Program, Vec<RuleError>> {
        compile(def, &self.source_headers, &self.rules)
    }

    pub fn version(&self) -> ProfileVersion {
        ProfileVersion {
            profile_id: self.profile_id,
            name: self.name.clone(),
            version: self.version,
        }
    }
}

/// A profile's version as a file uses it: recorded on the file when it is
/// uploaded with the profile, so that analysis and load read the file with
/// the same mapping and rules whatever happens to the profile later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedProfile {
    pub profile_id: Uuid,
    pub name: String,
    pub version: i32,
    /// File header → column, after the upload's own explicit mapping.
    pub column_mapping: Vec<(String, String)>,
    /// The source system's headers the rules read.
    pub source_headers: Vec<String>,
    pub rules: Vec<Rule>,
}
