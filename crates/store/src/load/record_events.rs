//! The record events of a chunk's write (see [`crate::events`]): one per
//! record created, with every written column, and one per record updated,
//! with the columns it changed; values as text, sensitive ones masked.
//!
//! The created events are built, encoded and compressed on a blocking
//! thread while the write transaction copies the rows ([`prepare`]): in the
//! common case every new row is created, and the transaction only stores
//! the batch already compressed. The updated events depend on what the
//! update found changed, and are built in the transaction ([`updated`]).
//! Events are written in protobuf from the chunk's own values
//! ([`super::event_wire`]).

use std::collections::HashMap;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use passare_imports_domain::catalog::ImportTypeDef;
use passare_imports_domain::chunk::{ParsedChunk, ROW_COLUMN, column_texts};
use passare_imports_domain::model::mask;
use passare_imports_proto::events::v1 as ev;
use uuid::Uuid;

use super::event_wire::EventParts;
use super::{ChunkJob, written_columns};
use crate::StoreError;
use crate::events::{
    CREATED, EncodedBatch, EventSource, StoredPayload, UPDATED, event_id, stable_id,
};
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

/// A column of the chunk's batch as its events carry it, resolved once per
/// chunk: as text (a string column shared, any other written out once),
/// masked when sensitive.
struct Column {
    name: &'static str,
    text: Option<StringArray>,
}

impl Column {
    fn of(name: &'static str, batch: &RecordBatch, sensitive: bool) -> Self {
        let text = batch.column_by_name(name).map(|array| {
            let text = column_texts(array);
            if sensitive {
                text.iter().map(|v| v.map(mask)).collect()
            } else {
                text
            }
        });
        Self { name, text }
    }

    /// The cell as the event carries it; `None` when missing.
    fn value(&self, i: usize) -> Option<&str> {
        let text = self.text.as_ref()?;
        (i < text.len() && text.is_valid(i)).then(|| text.value(i))
    }
}

/// The key and the column values of one event, borrowed from the chunk's
/// columns; kept from one event to the next so that none allocates.
#[derive(Default)]
struct Parts<'c> {
    key: Vec<(&'c str, &'c str)>,
    changes: Vec<(&'c str, Option<&'c str>)>,
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
    /// Seconds and nanoseconds since the epoch.
    commit_time: (i64, i32),
}

impl Builder {
    fn new(def: &'static ImportTypeDef, source: EventSource<'_>, batch: &RecordBatch) -> Self {
        let column = |name: &'static str| {
            let sensitive = def
                .columns
                .iter()
                .any(|c| c.sensitive && c.target == Some(name));
            Column::of(name, batch, sensitive)
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
            commit_time: (now.timestamp(), now.timestamp_subsec_nanos() as i32),
        }
    }

    /// Appends the event of batch row `i` with the values of `columns` to a
    /// `RecordEventBatch`'s encoding (its field 2).
    fn put<'c>(
        &'c self,
        i: usize,
        outcome: ev::RecordOutcome,
        columns: &[&'c Column],
        parts: &mut Parts<'c>,
        out: &mut Vec<u8>,
    ) {
        let [org, import_id, file_id] = &self.ids;
        let mut id = Uuid::encode_buffer();
        let event_id = event_id(self.import_id, self.chunk_id, self.rows[i])
            .hyphenated()
            .encode_lower(&mut id);
        parts.key.clear();
        parts.key.extend(
            self.keys
                .iter()
                .map(|k| (k.name, k.value(i).unwrap_or_default())),
        );
        parts.changes.clear();
        parts
            .changes
            .extend(columns.iter().map(|c| (c.name, c.value(i))));
        let event = EventParts {
            event_id,
            organization_id: org,
            import_type: self.def.key,
            key: &parts.key,
            outcome: outcome as i32,
            import_id,
            file_id,
            row: self.rows[i],
            attempt: self.attempt,
            changes: &parts.changes,
            commit_time: self.commit_time,
        };
        event.put(EVENTS_FIELD, out);
    }

    /// The created events of `rows` (batch rows, in order), encoded, and
    /// compressed as the outbox stores them.
    fn created(&self, rows: &[usize]) -> Prepared {
        let all: Vec<&Column> = self.written.iter().collect();
        let batch_id = stable_id(self.import_id, self.chunk_id, CREATED.as_bytes());
        let mut prepared = Prepared::new(batch_id, rows.len());
        let mut parts = Parts::default();
        for &i in rows {
            prepared.push(i, |out| {
                self.put(i, ev::RecordOutcome::Created, &all, &mut parts, out)
            });
        }
        prepared.compress();
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
    /// The batch of every prepared event as the outbox stores it, made
    /// beside the write (the common case: every prepared row is created).
    stored: Option<StoredPayload>,
}

impl Prepared {
    fn new(batch_id: Uuid, events: usize) -> Self {
        let mut payload = Vec::with_capacity(64 + events * 520);
        put_batch_id(batch_id, &mut payload);
        Self {
            header: payload.len(),
            payload,
            ends: Vec::with_capacity(events),
            stored: None,
        }
    }

    /// Compresses the batch of every prepared event.
    fn compress(&mut self) {
        if !self.ends.is_empty() {
            let events = self.ends.len() as i32;
            self.stored = Some(StoredPayload::compress(CREATED, events, &self.payload));
        }
    }

    /// Adds the event of batch row `row`, which `write` appends.
    fn push(&mut self, row: usize, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.payload);
        self.ends.push((row, self.payload.len()));
    }

    /// The batch of the events of `rows` (batch rows, in order, among those
    /// prepared) as the outbox stores it; `None` when there are none.
    pub(super) fn batch(mut self, rows: &[usize]) -> Option<StoredPayload> {
        if let (true, Some(stored)) = (self.every(rows), self.stored.take()) {
            return Some(stored);
        }
        self.encoded(rows).map(|b| b.compress())
    }

    /// Whether `rows` are every prepared row.
    fn every(&self, rows: &[usize]) -> bool {
        rows.len() == self.ends.len() && rows.iter().zip(&self.ends).all(|(r, (row, _))| r == row)
    }

    /// The batch of the events of `rows`, encoded; `None` when there are none.
    fn encoded(self, rows: &[usize]) -> Option<EncodedBatch> {
        if rows.is_empty() {
            return None;
        }
        let events = rows.len() as i32;
        if self.every(rows) {
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
/// transaction copies them; the columns are rendered as text there too, not
/// on the runtime's thread ahead of the COPY.
pub(super) fn prepare(
    job: &ChunkJob,
    parsed: &ParsedChunk,
    rows: &[usize],
) -> tokio::task::JoinHandle<Prepared> {
    let (def, source, batch) = (job.def, source(job), parsed.batch.clone());
    let rows = rows.to_vec();
    tokio::task::spawn_blocking(move || {
        if rows.is_empty() {
            // No new row (an unchanged or updating re-import): no created
            // event, and no column is rendered as text for none.
            let batch_id = stable_id(source.import_id, source.chunk_id, CREATED.as_bytes());
            return Prepared::new(batch_id, 0);
        }
        Builder::new(def, source, &batch).created(&rows)
    })
}

/// A `RecordEventBatch`'s events are its field 2, after its id (field 1).
const EVENTS_FIELD: u32 = 2;

fn put_batch_id(batch_id: Uuid, out: &mut Vec<u8>) {
    let mut id = Uuid::encode_buffer();
    let id: &str = batch_id.hyphenated().encode_lower(&mut id);
    prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(id.len() as u64, out);
    out.extend_from_slice(id.as_bytes());
}

/// The write's batches as the outbox stores them: the created events of
/// `created_rows` from what was `prepared`, and the updated events of
/// `updated_rows` (row number, changed columns). Built and compressed on a
/// blocking thread: a chunk's updated events are megabytes to encode and
/// compress, which would hold a thread of the async runtime.
pub(super) async fn stored(
    job: &ChunkJob,
    parsed: &ParsedChunk,
    prepared: Prepared,
    created_rows: Vec<usize>,
    updated_rows: Vec<(i64, Vec<&'static str>)>,
) -> Result<Vec<StoredPayload>, StoreError> {
    let (def, source, batch) = (job.def, source(job), parsed.batch.clone());
    let batch_id = stable_id(job.import.id, job.chunk.id, UPDATED.as_bytes());
    tokio::task::spawn_blocking(move || {
        let created = prepared.batch(&created_rows);
        let updated = (!updated_rows.is_empty())
            .then(|| Builder::new(def, source, &batch))
            .and_then(|b| updated(&b, batch_id, &updated_rows));
        created
            .into_iter()
            .chain(updated.map(|b| b.compress()))
            .collect()
    })
    .await
    .map_err(|e| StoreError::Corrupt(format!("record events not built: {e}")))
}

/// The batch `batch_id` of the events of the records `updated_rows` updated
/// (row number, changed columns), in row order; `None` when there are none.
fn updated(
    builder: &Builder,
    batch_id: Uuid,
    updated_rows: &[(i64, Vec<&'static str>)],
) -> Option<EncodedBatch> {
    let index: HashMap<i64, usize> = builder
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| (*r, i))
        .collect();
    let mut in_order: Vec<&(i64, Vec<&str>)> = updated_rows.iter().collect();
    in_order.sort_by_key(|(row, _)| *row);
    let mut payload = Vec::new();
    put_batch_id(batch_id, &mut payload);
    let mut events = 0;
    let mut parts = Parts::default();
    for (row, changed) in in_order {
        let Some(&i) = index.get(row) else { continue };
        let columns: Vec<&Column> = builder
            .written
            .iter()
            .filter(|c| changed.contains(&c.name))
            .collect();
        builder.put(
            i,
            ev::RecordOutcome::Updated,
            &columns,
            &mut parts,
            &mut payload,
        );
        events += 1;
    }
    (events > 0).then_some(EncodedBatch {
        outcome: UPDATED,
        events,
        payload,
    })
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
            p.push(i, |out| {
                prost::encoding::message::encode(EVENTS_FIELD, &event(i as i64 + 2), out)
            });
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

    /// A Basic Information chunk (its `ssn` is sensitive): one row with
    /// every value, one with some missing.
    fn basic_information() -> ParsedChunk {
        use passare_imports_domain::catalog::BASIC_INFORMATION;
        use passare_imports_domain::chunk::{ChunkLayout, parse_chunk};
        let headers: Vec<String> = ["case_number", "sex", "ssn", "city", "source_updated_at"]
            .iter()
            .map(|h| h.to_string())
            .collect();
        let mapping = BASIC_INFORMATION.map_headers(&headers);
        let layout = ChunkLayout {
            def: &BASIC_INFORMATION,
            mapping: &mapping,
            delimiter: b',',
            first_row: 2,
            row_numbers: None,
            today: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
            rules: None,
            rule_samples: 0,
        };
        let text = "C-1,F,123-45-6789,Dayton,2025-03-04T05:06:07Z\nC-2,,,,\n";
        parse_chunk(text.as_bytes(), layout).expect("a chunk")
    }

    #[test]
    fn a_chunks_events_carry_its_values_as_text_with_sensitive_ones_masked() {
        let parsed = basic_information();
        let def = &passare_imports_domain::catalog::BASIC_INFORMATION;
        let source = EventSource {
            organization_id: 1042,
            import_id: Uuid::from_u128(1),
            file_id: Uuid::from_u128(2),
            chunk_id: 9,
            attempt: 3,
            import_type: def.key,
            held: false,
        };
        let builder = Builder::new(def, source, &parsed.batch);
        let prepared = builder.created(&[0, 1]);
        let (_, payload) = stored(prepared.batch(&[0, 1]).expect("a batch"));
        let batch = ev::RecordEventBatch::decode(&payload[..]).expect("a batch");
        assert_eq!(batch.events.len(), 2);
        let values = |e: &ev::RecordEvent| -> HashMap<String, Option<String>> {
            e.changes
                .iter()
                .map(|c| (c.column.clone(), c.value.clone()))
                .collect()
        };
        let (full, sparse) = (&batch.events[0], &batch.events[1]);
        assert_eq!(full.row, 2);
        assert_eq!(full.event_id, event_id(source.import_id, 9, 2).to_string());
        assert_eq!((full.organization_id.as_str(), full.attempt), ("1042", 3));
        assert_eq!(full.key[0].value, "C-1");
        let full = values(full);
        assert_eq!(full["sex"].as_deref(), Some("female"));
        assert_eq!(full["city"].as_deref(), Some("Dayton"));
        assert_eq!(full["ssn"].as_deref(), Some(mask("123-45-6789").as_str()));
        assert_ne!(full["ssn"].as_deref(), Some("123-45-6789"));
        assert_eq!(
            full["source_updated_at"].as_deref(),
            Some("2025-03-04T05:06:07Z")
        );
        assert_eq!(sparse.row, 3);
        let sparse = values(sparse);
        assert_eq!(sparse["ssn"], None);
        assert_eq!(sparse["city"], None);
    }

    /// The encoded batch the outbox would hold for `batch`.
    fn stored(batch: StoredPayload) -> (i32, Vec<u8>) {
        assert_eq!(batch.outcome, CREATED);
        let payload = crate::events::decode_payload(crate::events::LZ4, batch.lz4);
        (batch.events, payload.expect("a batch the relay can read"))
    }

    #[test]
    fn every_prepared_event_is_the_batch_prost_encodes() {
        let rows = [0, 1, 3, 4, 7];
        let (id, p) = prepared(&rows);
        let (events, payload) = stored(p.batch(&rows).expect("a batch"));
        assert_eq!((events, payload), (5, expected(id, &rows)));
        // Compressed beside the write, as `prepare` does.
        let (id, mut p) = prepared(&rows);
        p.compress();
        assert!(p.stored.is_some());
        let (events, payload) = stored(p.batch(&rows).expect("a batch"));
        assert_eq!((events, payload), (5, expected(id, &rows)));
    }

    #[test]
    fn a_subset_of_the_prepared_events_is_the_batch_of_that_subset() {
        for compressed in [false, true] {
            let (id, mut p) = prepared(&[0, 1, 3, 4, 7]);
            if compressed {
                p.compress();
            }
            let (events, payload) = stored(p.batch(&[1, 4, 7]).expect("a batch"));
            assert_eq!((events, payload), (3, expected(id, &[1, 4, 7])));
        }
        let (_, p) = prepared(&[0, 1]);
        assert!(p.batch(&[]).is_none());
    }
}
