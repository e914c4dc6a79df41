//! The analysis report: what a dry run found in every file of an import and
//! what the import would do, grouped so a person can act on it. Built by the
//! service's analysis, stored with the import, shown by `GetImport`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{FindingKind, RowProblem};
use crate::transform::{ProfileVersion, RuleEffect};

/// Sample rows kept per finding.
pub const DEFAULT_SAMPLES: usize = 20;

/// Findings of one kind: how many, and the first few with their location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// Never blocks (unknown columns, payments above a contract's total).
    pub warning_only: bool,
    pub count: u64,
    /// A sentence about the finding as a whole.
    pub message: String,
    pub samples: Vec<RowProblem>,
    /// Files concerned, for findings about the organization (prerequisites).
    #[serde(default)]
    pub files: Vec<String>,
}

impl Finding {
    /// Whether the finding keeps an import from starting. File findings
    /// always do; row findings do when the import would stop at the first
    /// failing row (`stops_on_first_error`), and are warnings (those rows
    /// will fail and be reported) when it imports the valid rows.
    pub fn blocks(&self, stops_on_first_error: bool) -> bool {
        !self.warning_only && (self.kind.is_file_level() || stops_on_first_error)
    }
}

/// Groups problems into findings by kind, keeping at most `samples` of each.
#[derive(Debug, Clone)]
pub struct FindingSet {
    samples: usize,
    by_kind: BTreeMap<(FindingKind, bool), Finding>,
}

impl FindingSet {
    pub fn new(samples: usize) -> Self {
        Self {
            samples,
            by_kind: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, problem: RowProblem, warning_only: bool) {
        let keep = self.samples;
        let f = self
            .by_kind
            .entry((problem.kind, warning_only))
            .or_insert_with(|| Finding {
                kind: problem.kind,
                warning_only,
                count: 0,
                message: String::new(),
                samples: Vec::new(),
                files: Vec::new(),
            });
        f.count += 1;
        if f.samples.len() < keep {
            f.samples.push(problem);
        }
    }

    /// The findings, each with its summary message.
    pub fn finish(self) -> Vec<Finding> {
        self.by_kind
            .into_values()
            .map(|mut f| {
                f.samples.sort_by_key(|p| p.row);
                f.message = summary(&f);
                f
            })
            .collect()
    }
}

fn summary(f: &Finding) -> String {
    let what = match f.kind {
        FindingKind::Structure => "structural problem",
        FindingKind::MissingColumn => "missing column",
        FindingKind::UnknownColumn => "unknown column (ignored)",
        FindingKind::TypeError => "value not of its column's type",
        FindingKind::Constraint => "failed check",
        FindingKind::DuplicateInFile => "key repeated in the file",
        FindingKind::DuplicateInRequest => "key repeated from an earlier file",
        FindingKind::UnresolvedReference => "unresolved reference",
        FindingKind::MissingPrerequisite => "missing prerequisite",
        FindingKind::NotLoaded => "rows whose chunk could not be loaded",
        FindingKind::UnmappedValue => "value no transform rule maps",
    };
    let first = f.samples.first().map(|p| {
        let at = if p.row == 0 {
            String::new()
        } else {
            format!("row {} ", p.row)
        };
        let col = if p.column.is_empty() {
            String::new()
        } else {
            format!("{} ", p.column)
        };
        let value = if p.value.is_empty() {
            String::new()
        } else {
            format!("{:?} ", p.value)
        };
        format!("{at}{col}{value}{}", p.reason)
    });
    match (f.count, first) {
        (1, Some(first)) => format!("1 {what}: {first}"),
        (n, Some(first)) => format!("{n} × {what}; first: {first}"),
        (n, None) => format!("{n} × {what}"),
    }
}

/// What analysis learned about one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileAnalysis {
    pub file_id: Uuid,
    pub file_name: String,
    pub import_type: String,
    pub rows: u64,
    pub format: String,
    pub encoding: String,
    pub delimiter: String,
    pub sheet_name: Option<String>,
    /// Each header of the file and the column it maps to ("" when ignored).
    pub columns: Vec<(String, String)>,
    /// Files load in this order (types referred to by others first).
    pub load_order: i32,
    pub would_create: u64,
    pub would_update: u64,
    pub would_leave_unchanged: u64,
    /// Rows older than the stored record (by `source_updated_at`), which
    /// would leave it alone.
    #[serde(default)]
    pub would_skip_stale: u64,
    /// Rows that fail a check and would not be written.
    pub rows_failing: u64,
    pub findings: Vec<Finding>,
    /// The profile the file is read with.
    #[serde(default)]
    pub profile: Option<ProfileVersion>,
    /// What each of the profile's transform rules did, with samples.
    #[serde(default)]
    pub rule_effects: Vec<RuleEffect>,
}

/// The dry run of a whole import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisReport {
    pub analyzed_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// The files analysed, in loading order.
    pub files: Vec<FileAnalysis>,
    /// Findings about the organization (missing prerequisites).
    pub findings: Vec<Finding>,
    /// Identifies the files analysed; a change of files makes the report stale.
    pub fingerprint: String,
}

impl AnalysisReport {
    /// Every finding with the file it belongs to (`None` for the organization).
    pub fn all_findings(&self) -> impl Iterator<Item = (Option<&FileAnalysis>, &Finding)> {
        self.findings.iter().map(|f| (None, f)).chain(
            self.files
                .iter()
                .flat_map(|file| file.findings.iter().map(move |f| (Some(file), f))),
        )
    }

    /// Whether any finding blocks the import (see [`Finding::blocks`]).
    pub fn blocks(&self, stops_on_first_error: bool) -> bool {
        self.all_findings()
            .any(|(_, f)| f.blocks(stops_on_first_error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(kind: FindingKind, row: u64) -> RowProblem {
        RowProblem {
            row,
            column: "paid_on".into(),
            value: "soon".into(),
            reason: "is not a date".into(),
            kind,
        }
    }

    #[test]
    fn findings_group_by_kind_count_all_and_keep_a_few_samples() {
        let mut set = FindingSet::new(2);
        for row in [9, 3, 5] {
            set.add(problem(FindingKind::TypeError, row), false);
        }
        set.add(problem(FindingKind::Constraint, 4), true);
        let found = set.finish();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].kind, FindingKind::TypeError);
        assert_eq!(found[0].count, 3);
        assert_eq!(
            found[0].samples.iter().map(|p| p.row).collect::<Vec<_>>(),
            vec![3, 9]
        );
        assert!(
            found[0]
                .message
                .starts_with("3 × value not of its column's type; first: row 3")
        );
        assert!(found[0].blocks(true));
        assert!(!found[0].blocks(false));
        assert!(!found[1].blocks(true));
        let missing = Finding {
            kind: FindingKind::MissingColumn,
            ..found[0].clone()
        };
        assert!(missing.blocks(false));
    }
}
