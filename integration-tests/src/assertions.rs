//! Checks over what the database recorded: one chunk at a time per
//! organization and imports in start order (from chunk intervals), and an
//! organization's cases compared value by value with the files that wrote
//! them. Each returns an error that says what differs.

use chrono::{DateTime, Utc};
use passare_imports_store::Db;
use uuid::Uuid;

use crate::fixtures::{CaseValues, normalized};
use crate::records::{ChunkRecord, Interval, stored_cases};

/// Fails when two chunks of one organization overlap in time, or when an
/// organization's imports did not run in the order they were queued.
pub fn assert_serial_per_org(intervals: &[Interval]) -> anyhow::Result<()> {
    let mut orgs: Vec<i64> = intervals.iter().map(|i| i.organization_id).collect();
    orgs.sort_unstable();
    orgs.dedup();
    for org in orgs {
        let mine: Vec<&Interval> = intervals
            .iter()
            .filter(|i| i.organization_id == org)
            .collect();
        for pair in mine.windows(2) {
            anyhow::ensure!(
                pair[0].finished <= pair[1].started,
                "organization {org}: a chunk started at {} before the previous one finished at {}",
                pair[1].started,
                pair[0].finished
            );
            anyhow::ensure!(
                pair[0].queue_seq <= pair[1].queue_seq,
                "organization {org}: import queued {} ran before import queued {}",
                pair[1].queue_seq,
                pair[0].queue_seq
            );
        }
    }
    Ok(())
}

/// Fails unless every chunk (as [`chunks_of`](crate::records::chunks_of)
/// lists them, in loading order) is done and started after the previous one
/// finished — and, given `not_before`, not before that moment.
pub fn assert_loaded_in_order(
    chunks: &[ChunkRecord],
    not_before: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    let mut previous: Option<DateTime<Utc>> = not_before;
    for c in chunks {
        let (Some(started), Some(finished)) = (c.started, c.finished) else {
            anyhow::bail!(
                "chunk {} of file {} was not loaded: {c:?}",
                c.seq,
                c.file_position
            );
        };
        anyhow::ensure!(c.state == "done", "chunk {} is {}", c.seq, c.state);
        if let Some(previous) = previous {
            anyhow::ensure!(
                started >= previous,
                "chunk {} of file {} started at {started}, before {previous} (the previous chunk's end, or the start of the wait)",
                c.seq,
                c.file_position
            );
        }
        previous = Some(finished);
    }
    Ok(())
}

/// Whether some chunk of `a` and some chunk of `b` ran at the same time.
pub fn orgs_overlap(intervals: &[Interval], a: i64, b: i64) -> bool {
    intervals
        .iter()
        .filter(|x| x.organization_id == a)
        .any(|x| {
            intervals
                .iter()
                .filter(|y| y.organization_id == b)
                .any(|y| x.started < y.finished && y.started < x.finished)
        })
}

/// A case a test expects stored: its values as the file holds them (dates
/// as written; compared as stored) and the import that must have written it
/// last.
pub type ExpectedCase = (CaseValues, Uuid);

/// What an organization holds after `first` and then `second` were imported
/// into it (generated files: row `i` of each has the same case number): the
/// second file's values, written by the second import, except rows the two
/// files hold identically, which the second import left alone.
pub fn after_two_imports(
    first: (&[CaseValues], Uuid),
    second: (&[CaseValues], Uuid),
) -> Vec<ExpectedCase> {
    let mut out: Vec<ExpectedCase> = second
        .0
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let writer = match first.0.get(i) {
                Some(before) if before == row => first.1,
                _ => second.1,
            };
            (row.clone(), writer)
        })
        .collect();
    out.extend(
        first
            .0
            .iter()
            .skip(second.0.len())
            .map(|row| (row.clone(), first.1)),
    );
    out
}

/// Every row of `rows`, written by `import`.
pub fn all_written_by(rows: &[CaseValues], import: Uuid) -> Vec<ExpectedCase> {
    rows.iter().map(|r| (r.clone(), import)).collect()
}

/// Fails unless the organization's cases are exactly `expected`: no case
/// missing, none extra, none twice (see [`stored_cases`]), every column
/// equal to the file's value and every provenance the expected import. The
/// error lists the first differences and how many there are.
pub async fn assert_cases_are(db: &Db, org: i64, expected: &[ExpectedCase]) -> anyhow::Result<()> {
    let stored = stored_cases(db, org).await?;
    let mut differences = Vec::new();
    for (row, writer) in expected {
        let want = normalized(row);
        match stored.get(&want[0]) {
            None => differences.push(format!("case {} is missing", want[0])),
            Some(s) if s.values != want => differences.push(format!(
                "case {}: stored {:?}, the file says {:?}",
                want[0], s.values, want
            )),
            Some(s) if s.source_import_id != Some(*writer) => differences.push(format!(
                "case {}: written by {:?}, expected {writer}",
                want[0], s.source_import_id
            )),
            Some(_) => {}
        }
    }
    if stored.len() != expected.len() {
        differences.push(format!(
            "{} cases stored, {} expected",
            stored.len(),
            expected.len()
        ));
    }
    anyhow::ensure!(
        differences.is_empty(),
        "organization {org}: {} differences from the files, first ones:\n  {}",
        differences.len(),
        differences
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    Ok(())
}
