//! Vocabulary shared by every layer: file formats, the kinds of problem a
//! file or row can have, where a problem is, and the byte range of a chunk.

use serde::{Deserialize, Serialize};

/// The names of an enum's variants as text: `as_str`, `parse` and
/// `Display`, for the states and formats stored as their snake_case names.
#[macro_export]
macro_rules! text_names {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// The name stored in the database and written in logs.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Parses the stored name.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Container format of an uploaded file, detected from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    Csv,
    Tsv,
    Xlsx,
}

text_names!(FileFormat { Csv => "csv", Tsv => "tsv", Xlsx => "xlsx" });

/// What kind of problem a finding is; analysis groups findings by kind.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The file cannot be read as a table (broken quoting, an unreadable workbook, …).
    #[default]
    Structure,
    /// A required column has no header in the file.
    MissingColumn,
    /// A header that is no column of the type (ignored).
    UnknownColumn,
    /// A value that is not of its column's kind.
    TypeError,
    /// A missing required value, or a row check that fails.
    Constraint,
    /// A key seen earlier in the same file.
    DuplicateInFile,
    /// A key seen in an earlier file of the same import.
    DuplicateInRequest,
    /// A reference that names nothing, in the database or earlier in the import.
    UnresolvedReference,
    /// Organization setup the type needs is missing.
    MissingPrerequisite,
    /// The row's chunk could not be loaded at all (it failed past the retry
    /// limit, or its stored bytes could not be read); the row was not
    /// examined and may be retried.
    NotLoaded,
    /// A value that no transform rule maps (docs/transform-rules.md).
    UnmappedValue,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Structure => "structure",
            FindingKind::MissingColumn => "missing_column",
            FindingKind::UnknownColumn => "unknown_column",
            FindingKind::TypeError => "type_error",
            FindingKind::Constraint => "constraint",
            FindingKind::DuplicateInFile => "duplicate_in_file",
            FindingKind::DuplicateInRequest => "duplicate_in_request",
            FindingKind::UnresolvedReference => "unresolved_reference",
            FindingKind::MissingPrerequisite => "missing_prerequisite",
            FindingKind::NotLoaded => "not_loaded",
            FindingKind::UnmappedValue => "unmapped_value",
        }
    }

    /// Findings about a whole file or organization, which block an import
    /// whatever its failure policy; row findings block only imports that
    /// stop on the first error.
    pub fn is_file_level(self) -> bool {
        matches!(
            self,
            FindingKind::Structure | FindingKind::MissingColumn | FindingKind::MissingPrerequisite
        )
    }
}

/// A problem located in a file. `row` counts data records after the header
/// from 1 (a quoted field spanning lines still counts once); 0 means the file
/// as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowProblem {
    pub row: u64,
    pub column: String,
    pub value: String,
    pub reason: String,
    #[serde(default)]
    pub kind: FindingKind,
}

impl RowProblem {
    pub fn file(reason: impl Into<String>) -> Self {
        Self {
            row: 0,
            column: String::new(),
            value: String::new(),
            reason: reason.into(),
            kind: FindingKind::Structure,
        }
    }
}

/// The byte range of one chunk of a stored file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRange {
    pub seq: u32,
    /// Row number of the chunk's first record (see [`RowProblem::row`]).
    pub first_row: u64,
    /// Records in the chunk, blank records included.
    pub rows: u64,
    pub start: u64,
    pub end: u64,
}

/// A value as shown in problems and error files: at most 200 characters, and
/// control characters other than tab and line breaks (NUL, which PostgreSQL
/// text cannot hold, among them) replaced by `�`.
pub fn excerpt(value: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = value
        .chars()
        .take(MAX)
        .map(|c| {
            if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    if value.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

/// Longest run of `*` a masked value starts with: a value of any length
/// masks to at most this many characters plus its last four.
pub const MASK_STARS: usize = 8;

/// Masks a sensitive value to its last four characters, behind at most
/// [`MASK_STARS`] stars; control characters (NUL included) become `�`, so a
/// masked value is short, printable and storable whatever the cell held.
pub fn mask(value: &str) -> String {
    let count = value.chars().count();
    if count <= 4 {
        return "*".repeat(count);
    }
    let tail = value
        .chars()
        .skip(count - 4)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c });
    "*".repeat((count - 4).min(MASK_STARS))
        .chars()
        .chain(tail)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_storable() {
        assert_eq!(excerpt("a\0b"), "a\u{FFFD}b");
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long).chars().count(), 201);
    }

    #[test]
    fn mask_keeps_only_the_last_four() {
        assert_eq!(mask("123-45-6789"), "*******6789");
        assert_eq!(mask("12"), "**");
        // However long, and whatever it holds, a masked value is short and printable.
        let hostile = format!("{}12\03\n", "9".repeat(100_000));
        assert_eq!(mask(&hostile), "********2\u{FFFD}3\u{FFFD}");
        assert_eq!(excerpt("a\u{1}b\tc"), "a\u{FFFD}b\tc");
    }
}
