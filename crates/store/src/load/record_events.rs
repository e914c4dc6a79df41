//! The record events of a chunk's write (see [`crate::events`]): one per
//! record created, with every written column, and one per record updated,
//! with the columns it changed; values as text, sensitive ones masked.

use std::collections::HashMap;

use passare_imports_domain::chunk::ParsedChunk;
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

/// The events of what `merged` wrote: (created, updated), in row order.
pub(super) fn of_chunk(
    job: &ChunkJob,
    parsed: &ParsedChunk,
    merged: &Merged,
) -> [(&'static str, Vec<ev::RecordEvent>); 2] {
    let def = job.def;
    let source = source(job);
    let sensitive: Vec<&str> = def
        .columns
        .iter()
        .filter(|c| c.sensitive)
        .filter_map(|c| c.target)
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
    let event = |i: usize, outcome: ev::RecordOutcome, columns: &[&str]| {
        let row = parsed.row_number(i) as i64;
        ev::RecordEvent {
            event_id: event_id(source.import_id, source.chunk_id, row).to_string(),
            organization_id: org.clone(),
            import_type: def.key.to_string(),
            key: def
                .key_columns
                .iter()
                .map(|k| ev::KeyPart {
                    column: k.to_string(),
                    value: parsed.text(k, i).unwrap_or_default(),
                })
                .collect(),
            outcome: outcome as i32,
            import_id: import_id.clone(),
            file_id: file_id.clone(),
            row,
            attempt: source.attempt,
            changes: columns
                .iter()
                .map(|c| ev::ColumnValue {
                    column: c.to_string(),
                    value: parsed
                        .text(c, i)
                        .map(|v| if sensitive.contains(c) { mask(&v) } else { v }),
                })
                .collect(),
            commit_time: Some(commit_time),
        }
    };
    let columns = written_columns(def);
    let created = merged
        .created_rows
        .iter()
        .map(|&i| event(i, ev::RecordOutcome::Created, &columns))
        .collect();
    let mut updated = Vec::with_capacity(merged.updated_rows.len());
    if !merged.updated_rows.is_empty() {
        let index: HashMap<i64, usize> = (0..parsed.batch.num_rows())
            .map(|i| (parsed.row_number(i) as i64, i))
            .collect();
        for (row, changed) in &merged.updated_rows {
            if let Some(&i) = index.get(row) {
                let changed: Vec<&str> = changed.iter().map(String::as_str).collect();
                updated.push(event(i, ev::RecordOutcome::Updated, &changed));
            }
        }
        updated.sort_by_key(|e| e.row);
    }
    [("created", created), ("updated", updated)]
}
