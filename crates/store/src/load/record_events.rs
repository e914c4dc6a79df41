//! The record events of a chunk's write (see [`crate::events`]): one per
//! record created, with every written column, and one per record updated,
//! with the columns it changed; values as text, sensitive ones masked.

use std::collections::HashMap;

use arrow_array::ArrayRef;
use passare_imports_domain::chunk::{ParsedChunk, cell_text};
use passare_imports_domain::model::mask;
use passare_imports_proto::events::v1 as ev;

use super::{ChunkJob, Merged, written_columns};
use crate::events::{EventSource, event_id};
use crate::states::FailurePolicy;

/// Whose write the chunk's events are; an all-or-nothing import's are held
/// until it completes.
pub(super) fn source(job: &ChunkJob) -> EventSource<'_> {
    EventSource {
        organization_id: job.import.organization_id,
        import_id: job.import.id,
        file_id: job.file.id,
        chunk_id: job.chunk.id,
        attempt: job.import.attempt,
        import_type: job.def.key,
        held: job.policy() == FailurePolicy::StopOnFirstError,
    }
}

/// A column of the chunk's batch, looked up once per chunk.
struct Column<'a> {
    name: &'static str,
    array: Option<&'a ArrayRef>,
    sensitive: bool,
}

impl Column<'_> {
    fn text(&self, i: usize) -> Option<String> {
        let v = cell_text(self.array?, i)?;
        Some(if self.sensitive { mask(&v) } else { v })
    }
}

/// The events of what `merged` wrote: (created, updated), in row order.
/// Columns and row numbers are resolved once per chunk, not per cell.
pub(super) fn of_chunk(
    job: &ChunkJob,
    parsed: &ParsedChunk,
    merged: &Merged,
) -> [(&'static str, Vec<ev::RecordEvent>); 2] {
    let def = job.def;
    let source = source(job);
    let column = |name: &'static str| Column {
        name,
        array: parsed.batch.column_by_name(name),
        sensitive: def
            .columns
            .iter()
            .any(|c| c.sensitive && c.target == Some(name)),
    };
    let written: Vec<Column> = written_columns(def).into_iter().map(column).collect();
    let keys: Vec<Column> = def.key_columns.iter().map(|k| column(k)).collect();
    let rows: Vec<i64> = (0..parsed.batch.num_rows())
        .map(|i| parsed.row_number(i) as i64)
        .collect();
    let now = chrono::Utc::now();
    let commit_time = prost_types::Timestamp {
        seconds: now.timestamp(),
        nanos: now.timestamp_subsec_nanos() as i32,
    };
    let (import_id, file_id, org) = (
        source.import_id.to_string(),
        source.file_id.to_string(),
        source.organization_id.to_string(),
    );
    let event = |i: usize, outcome: ev::RecordOutcome, columns: &[&Column]| ev::RecordEvent {
        event_id: event_id(source.import_id, source.chunk_id, rows[i]).to_string(),
        organization_id: org.clone(),
        import_type: def.key.to_string(),
        key: keys
            .iter()
            .map(|k| ev::KeyPart {
                column: k.name.to_string(),
                value: k.text(i).unwrap_or_default(),
            })
            .collect(),
        outcome: outcome as i32,
        import_id: import_id.clone(),
        file_id: file_id.clone(),
        row: rows[i],
        attempt: source.attempt,
        changes: columns
            .iter()
            .map(|c| ev::ColumnValue {
                column: c.name.to_string(),
                value: c.text(i),
            })
            .collect(),
        commit_time: Some(commit_time),
    };
    let all: Vec<&Column> = written.iter().collect();
    let created = merged
        .created_rows
        .iter()
        .map(|&i| event(i, ev::RecordOutcome::Created, &all))
        .collect();
    let mut updated = Vec::with_capacity(merged.updated_rows.len());
    if !merged.updated_rows.is_empty() {
        let index: HashMap<i64, usize> = rows.iter().enumerate().map(|(i, r)| (*r, i)).collect();
        for (row, changed) in &merged.updated_rows {
            let Some(&i) = index.get(row) else { continue };
            let columns: Vec<&Column> = written
                .iter()
                .filter(|c| changed.iter().any(|name| name == c.name))
                .collect();
            updated.push(event(i, ev::RecordOutcome::Updated, &columns));
        }
        updated.sort_by_key(|e| e.row);
    }
    [("created", created), ("updated", updated)]
}
