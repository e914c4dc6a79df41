//! The record events of a chunk's write (see [`crate::events`]): one per
//! record created, with every written column, and one per record updated,
//! with the columns it changed; values as text, sensitive ones masked.

use std::collections::HashMap;

use passare_imports_domain::chunk::ParsedChunk;
use passare_imports_domain::model::mask;
use serde_json::{Map, Value};

use super::{ChunkJob, Merged, written_columns};
use crate::events::{EventSource, NewEvent};
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

/// The events of what `merged` wrote.
pub(super) fn of_chunk(job: &ChunkJob, parsed: &ParsedChunk, merged: Merged) -> Vec<NewEvent> {
    let def = job.def;
    let columns = written_columns(def);
    let sensitive = |column: &str| {
        def.columns
            .iter()
            .any(|c| c.sensitive && c.target == Some(column))
    };
    let value = |column: &str, i: usize| -> Value {
        match parsed.text(column, i) {
            None => Value::Null,
            Some(v) if sensitive(column) => Value::String(mask(&v)),
            Some(v) => Value::String(v),
        }
    };
    let event = |i: usize, outcome: &'static str, changed: &[&str]| NewEvent {
        row_number: parsed.row_number(i) as i64,
        outcome,
        key: def
            .key_columns
            .iter()
            .map(|k| parsed.text(k, i).unwrap_or_default())
            .collect(),
        changes: Value::Object(
            changed
                .iter()
                .map(|c| (c.to_string(), value(c, i)))
                .collect::<Map<String, Value>>(),
        ),
    };
    let mut events = Vec::with_capacity(merged.created_rows.len() + merged.updated_rows.len());
    for &i in &merged.created_rows {
        events.push(event(i, "created", &columns));
    }
    if !merged.updated_rows.is_empty() {
        let index: HashMap<i64, usize> = (0..parsed.batch.num_rows())
            .map(|i| (parsed.row_number(i) as i64, i))
            .collect();
        for (row, changed) in &merged.updated_rows {
            if let Some(&i) = index.get(row) {
                let changed: Vec<&str> = changed.iter().map(String::as_str).collect();
                events.push(event(i, "updated", &changed));
            }
        }
    }
    events
}
