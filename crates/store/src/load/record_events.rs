//! The record events of a chunk's write (see [`crate::events`]): one per
//! record created, with every written column, and one per record updated,
//! with the columns it changed; values as text, sensitive ones masked.
//!
//! The created events are built and encoded before the write transaction,
//! on a blocking thread while the transaction runs ([`prepare`]): in the
//! common case every valid row is created, and the transaction only stores
//! the batch already encoded. The updated events depend on what the update
//! found changed, and are built in the transaction ([`updated`]).

use std::collections::HashMap;

use arrow_array::{Array, ArrayRef, Int64Array};
use passare_imports_domain::catalog::ImportTypeDef;
use passare_imports_domain::chunk::{ParsedChunk, ROW_COLUMN, cell_text};
use passare_imports_domain::model::mask;
use passare_imports_proto::events::v1 as ev;
use uuid::Uuid;

use super::{ChunkJob, written_columns};
use crate::events::{CREATED, EncodedBatch, EventSource, UPDATED, event_id, stable_id};
use crate::states::FailurePolicy;

/// Whose write the chunk's events are; an all-or-nothing import's are held
/// until it completes.
pub(super) fn source(job: &ChunkJob) -> EventSource<'static> {
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
struct Column {
    name: &'static str,
    array: Option<ArrayRef>,
    sensitive: bool,
}

impl Column {
    fn text(&self, i: usize) -> Option<String> {
        let v = cell_text(self.array.as_ref()?, i)?;
        Some(if self.sensitive { mask(&v) } else { v })
    }
}

/// Builds the events of one chunk's rows: columns, row numbers and the
/// fields every event shares are resolved once per chunk, not per cell.
/// Owns what it reads, so it can run on a blocking thread.
struct Builder {
    def: &'static ImportTypeDef,
    import_id: Uuid,
    chunk_id: i64,
    attempt: i32,
    written: Vec<Column>,
    keys: Vec<Column>,
    /// The row number of each batch row.
    rows: Vec<i64>,
    /// Organization, import and file as text.
    ids: [String; 3],
    commit_time: prost_types::Timestamp,
}

impl Builder {
    fn new(def: &'static ImportTypeDef, source: EventSource<'_>, parsed: &ParsedChunk) -> Self {
        let batch = &parsed.batch;
        let column = |name: &'static str| Column {
            name,
            array: batch.column_by_name(name).cloned(),
            sensitive: def
                .columns
                .iter()
                .any(|c| c.sensitive && c.target == Some(name)),
        };
        let numbers = batch
            .column_by_name(ROW_COLUMN)
            .and_then(|a| a.as_any().downcast_ref::<Int64Array>());
        let rows = match numbers {
            Some(numbers) => numbers.values().to_vec(),
            None => vec![0; batch.num_rows()],
        };
        let now = chrono::Utc::now();
        Self {
            def,
            import_id: source.import_id,
            chunk_id: source.chunk_id,
            attempt: source.attempt,
            written: written_columns(def).into_iter().map(column).collect(),
            keys: def.key_columns.iter().map(|k| column(k)).collect(),
            rows,
            ids: [
                source.organization_id.to_string(),
                source.import_id.to_string(),
                source.file_id.to_string(),
            ],
            commit_time: prost_types::Timestamp {
                seconds: now.timestamp(),
                nanos: now.timestamp_subsec_nanos() as i32,
            },
        }
    }

    /// The event of batch row `i` with the values of `columns`.
    fn event(&self, i: usize, outcome: ev::RecordOutcome, columns: &[&Column]) -> ev::RecordEvent {
        let [org, import_id, file_id] = &self.ids;
        ev::RecordEvent {
            event_id: event_id(self.import_id, self.chunk_id, self.rows[i]).to_string(),
            organization_id: org.clone(),
            import_type: self.def.key.to_string(),
            key: self
                .keys
                .iter()
                .map(|k| ev::KeyPart {
                    column: k.name.to_string(),
                    value: k.text(i).unwrap_or_default(),
                })
                .collect(),
            outcome: outcome as i32,
            import_id: import_id.clone(),
            file_id: file_id.clone(),
            row: self.rows[i],
            attempt: self.attempt,
            changes: columns
                .iter()
                .map(|c| ev::ColumnValue {
                    column: c.name.to_string(),
                    value: c.text(i),
                })
                .collect(),
            commit_time: Some(self.commit_time),
        }
    }

    /// The created events of `rows` (batch rows, in order), encoded.
    fn created(&self, rows: &[usize]) -> Prepared {
        let all: Vec<&Column> = self.written.iter().collect();
        let batch_id = stable_id(self.import_id, self.chunk_id, CREATED.as_bytes());
        let mut prepared = Prepared::new(batch_id, rows.len());
        for &i in rows {
            prepared.push(i, &self.event(i, ev::RecordOutcome::Created, &all));
        }
        prepared
    }
}

/// A chunk's created events, encoded as the `RecordEventBatch` of every
/// valid row before the write knows which rows it creates; [`Prepared::batch`]
/// keeps the ones it did. The encoding is the batch id (field 1) followed by
/// each event (field 2), as prost encodes the message, so a subset is the
/// batch id followed by the subset's events.
#[derive(Debug)]
pub(super) struct Prepared {
    payload: Vec<u8>,
    /// Where the batch id ends.
    header: usize,
    /// Each event's batch row and where its encoding ends.
    ends: Vec<(usize, usize)>,
}

impl Prepared {
    fn new(batch_id: Uuid, events: usize) -> Self {
        let mut payload = Vec::with_capacity(64 + events * 320);
        prost::encoding::string::encode(1, &batch_id.to_string(), &mut payload);
        Self {
            header: payload.len(),
            payload,
            ends: Vec::with_capacity(events),
        }
    }

    fn push(&mut self, row: usize, event: &ev::RecordEvent) {
        prost::encoding::message::encode(2, event, &mut self.payload);
        self.ends.push((row, self.payload.len()));
    }

    /// The batch of the events of `rows` (batch rows, in order, among those
    /// prepared); `None` when there are none.
    pub(super) fn batch(self, rows: &[usize]) -> Option<EncodedBatch> {
        if rows.is_empty() {
            return None;
        }
        let events = rows.len() as i32;
        let every = rows.len() == self.ends.len()
            && rows.iter().zip(&self.ends).all(|(r, (row, _))| r == row);
        if every {
            return Some(EncodedBatch {
                outcome: CREATED,
                events,
                payload: self.payload,
            });
        }
        let mut start = self.header;
        let mut spans: HashMap<usize, (usize, usize)> = HashMap::with_capacity(self.ends.len());
        for &(row, end) in &self.ends {
            spans.insert(row, (start, end));
            start = end;
        }
        let mut payload = Vec::with_capacity(self.payload.len());
        payload.extend_from_slice(&self.payload[..self.header]);
        for (start, end) in rows.iter().filter_map(|r| spans.get(r)) {
            payload.extend_from_slice(&self.payload[*start..*end]);
        }
        Some(EncodedBatch {
            outcome: CREATED,
            events,
            payload,
        })
    }
}

/// Starts building the created events of the chunk's `rows` (those the key
/// lookup found new) on a blocking thread, to run while the write
/// transaction copies them.
pub(super) fn prepare(
    job: &ChunkJob,
    parsed: &ParsedChunk,
    rows: &[usize],
) -> tokio::task::JoinHandle<Prepared> {
    let builder = Builder::new(job.def, source(job), parsed);
    let rows = rows.to_vec();
    tokio::task::spawn_blocking(move || builder.created(&rows))
}

/// The events of the records `updated_rows` updated (row number, changed
/// columns), in row order.
pub(super) fn updated(
    job: &ChunkJob,
    parsed: &ParsedChunk,
    updated_rows: &[(i64, Vec<String>)],
) -> Vec<ev::RecordEvent> {
    if updated_rows.is_empty() {
        return Vec::new();
    }
    let builder = Builder::new(job.def, source(job), parsed);
    let index: HashMap<i64, usize> = builder
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| (*r, i))
        .collect();
    let mut updated = Vec::with_capacity(updated_rows.len());
    for (row, changed) in updated_rows {
        let Some(&i) = index.get(row) else { continue };
        let columns: Vec<&Column> = builder
            .written
            .iter()
            .filter(|c| changed.iter().any(|name| name == c.name))
            .collect();
        updated.push(builder.event(i, ev::RecordOutcome::Updated, &columns));
    }
    updated.sort_by_key(|e| e.row);
    updated
}

/// The updated events' batch; `None` when there are none.
pub(super) fn updated_batch(job: &ChunkJob, events: Vec<ev::RecordEvent>) -> Option<EncodedBatch> {
    if events.is_empty() {
        return None;
    }
    let batch_id = stable_id(job.import.id, job.chunk.id, UPDATED.as_bytes());
    Some(EncodedBatch::encode(batch_id, UPDATED, events))
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn event(row: i64) -> ev::RecordEvent {
        ev::RecordEvent {
            event_id: format!("event {row}"),
            organization_id: "1042".into(),
            import_type: "cases".into(),
            key: vec![ev::KeyPart {
                column: "case_id".into(),
                value: format!("C{row}"),
            }],
            outcome: ev::RecordOutcome::Created as i32,
            row,
            changes: vec![
                ev::ColumnValue {
                    column: "name".into(),
                    value: Some("x".repeat(row as usize * 50)),
                },
                ev::ColumnValue {
                    column: "ssn".into(),
                    value: None,
                },
            ],
            ..ev::RecordEvent::default()
        }
    }

    fn prepared(rows: &[usize]) -> (Uuid, Prepared) {
        let id = Uuid::from_u128(7);
        let mut p = Prepared::new(id, rows.len());
        for &i in rows {
            p.push(i, &event(i as i64 + 2));
        }
        (id, p)
    }

    fn expected(id: Uuid, rows: &[usize]) -> Vec<u8> {
        ev::RecordEventBatch {
            batch_id: id.to_string(),
            events: rows.iter().map(|&i| event(i as i64 + 2)).collect(),
        }
        .encode_to_vec()
    }

    #[test]
    fn every_prepared_event_is_the_batch_prost_encodes() {
        let rows = [0, 1, 3, 4, 7];
        let (id, p) = prepared(&rows);
        let batch = p.batch(&rows).expect("a batch");
        assert_eq!(batch.payload, expected(id, &rows));
        assert_eq!(batch.events, 5);
        assert_eq!(batch.outcome, CREATED);
    }

    #[test]
    fn a_subset_of_the_prepared_events_is_the_batch_of_that_subset() {
        let (id, p) = prepared(&[0, 1, 3, 4, 7]);
        let batch = p.batch(&[1, 4, 7]).expect("a batch");
        assert_eq!(batch.payload, expected(id, &[1, 4, 7]));
        assert_eq!(batch.events, 3);
        let (_, p) = prepared(&[0, 1]);
        assert!(p.batch(&[]).is_none());
    }
}
