//! Record events' transactional outbox (docs/record-events.md): the batches
//! a chunk's write adds for the records it created or updated (one per
//! outcome, encoded as `passare.imports.events.v1.RecordEventBatch`),
//! holding and releasing an all-or-nothing import's events, and what the
//! relay reads and deletes.

use passare_imports_proto::events::v1 as ev;
use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::StoreError;

/// Whose write the events are.
#[derive(Debug, Clone, Copy)]
pub struct EventSource<'a> {
    pub organization_id: i64,
    pub import_id: Uuid,
    pub file_id: Uuid,
    pub chunk_id: i64,
    pub attempt: i32,
    pub import_type: &'a str,
    /// Held until the import completes (all-or-nothing imports).
    pub held: bool,
}

/// A stable id derived from the write: a chunk commits once, so the same
/// write always yields the same ids.
pub fn stable_id(import_id: Uuid, chunk_id: i64, part: &[u8]) -> Uuid {
    let mut h = Sha256::new();
    h.update(import_id.as_bytes());
    h.update(chunk_id.to_be_bytes());
    h.update(part);
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::new_v8(bytes)
}

/// The stable id of the event of `row` written by `chunk_id`.
pub fn event_id(import_id: Uuid, chunk_id: i64, row: i64) -> Uuid {
    stable_id(import_id, chunk_id, &row.to_be_bytes())
}

/// The outcome of the records created, as in routing keys and the outbox.
pub const CREATED: &str = "created";
/// The outcome of the records updated.
pub const UPDATED: &str = "updated";

/// One outcome's events of a write, encoded as a `RecordEventBatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    /// [`CREATED`] or [`UPDATED`].
    pub outcome: &'static str,
    /// Records in the batch.
    pub events: i32,
    pub payload: Vec<u8>,
}

impl EncodedBatch {
    pub fn encode(batch_id: Uuid, outcome: &'static str, events: Vec<ev::RecordEvent>) -> Self {
        Self {
            outcome,
            events: events.len() as i32,
            payload: ev::RecordEventBatch {
                batch_id: batch_id.to_string(),
                events,
            }
            .encode_to_vec(),
        }
    }

    /// The batch as the outbox stores it: compressed ([`LZ4`]).
    pub fn compress(&self) -> StoredPayload {
        StoredPayload::compress(self.outcome, self.events, &self.payload)
    }
}

/// How a batch's payload is stored: an LZ4 block of the encoded
/// `RecordEventBatch`, its uncompressed length first (4 bytes, little
/// endian). The worker that writes the batch compresses it (on a blocking
/// thread beside the write when it can) and the relay decompresses it, so
/// PostgreSQL neither compresses nor decompresses the outbox's bytes and
/// receives a third of them (docs/record-events.md).
pub const LZ4: &str = "lz4";
/// A payload stored as the encoded `RecordEventBatch` itself (batches
/// written before migration 0022).
pub const PROTOBUF: &str = "protobuf";

/// A batch compressed for the outbox ([`EncodedBatch::compress`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayload {
    pub outcome: &'static str,
    pub events: i32,
    pub lz4: Vec<u8>,
}

impl StoredPayload {
    /// `payload`, an encoded `RecordEventBatch` of `events` records of
    /// `outcome`, compressed.
    pub fn compress(outcome: &'static str, events: i32, payload: &[u8]) -> Self {
        Self {
            outcome,
            events,
            lz4: lz4_flex::block::compress_prepend_size(payload),
        }
    }
}

/// The encoded `RecordEventBatch` of a stored payload.
pub fn decode_payload(encoding: &str, payload: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    match encoding {
        PROTOBUF => Ok(payload),
        LZ4 => {
            // The length the block claims, bounded by what LZ4 can expand
            // to (255 bytes per byte), before anything is allocated for it.
            let claimed = payload
                .get(..4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_le_bytes)
                .unwrap_or(u32::MAX) as usize;
            if claimed > payload.len().saturating_mul(255) {
                return Err(StoreError::Corrupt(format!(
                    "record event batch claims {claimed} bytes from {} compressed",
                    payload.len()
                )));
            }
            lz4_flex::block::decompress_size_prepended(&payload)
                .map_err(|e| StoreError::Corrupt(format!("record event batch: {e}")))
        }
        other => Err(StoreError::Corrupt(format!(
            "record event batch stored as {other:?}"
        ))),
    }
}

/// Adds the write's event batches (at most one per outcome) to the outbox,
/// in the write's transaction; wakes the relay when they can go at once.
/// A batch's id is derived from the chunk and the outcome.
pub async fn record(
    conn: &mut PgConnection,
    source: EventSource<'_>,
    batches: impl IntoIterator<Item = StoredPayload>,
) -> Result<(), StoreError> {
    let mut recorded = false;
    for batch in batches {
        let batch_id = stable_id(source.import_id, source.chunk_id, batch.outcome.as_bytes());
        sqlx::query(
            "INSERT INTO record_events (batch_id, organization_id, import_id, import_type,
                                        outcome, events, payload, held, encoding)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (batch_id) DO NOTHING",
        )
        .bind(batch_id)
        .bind(source.organization_id)
        .bind(source.import_id)
        .bind(source.import_type)
        .bind(batch.outcome)
        .bind(batch.events)
        .bind(batch.lz4)
        .bind(source.held)
        .bind(LZ4)
        .execute(&mut *conn)
        .await?;
        recorded = true;
    }
    if recorded && !source.held {
        notify(conn).await?;
    }
    Ok(())
}

/// The channel the relay listens on.
pub const CHANNEL: &str = "passare_imports_record_events";

async fn notify(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// Lets an all-or-nothing import's events go: it completed.
pub async fn release(conn: &mut PgConnection, import_id: Uuid) -> Result<(), StoreError> {
    let released =
        sqlx::query("UPDATE record_events SET held = false WHERE import_id = $1 AND held")
            .bind(import_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    if released > 0 {
        notify(conn).await?;
    }
    Ok(())
}

/// Drops an import's events not yet published: its writes were undone.
pub async fn discard(conn: &mut PgConnection, import_id: Uuid) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("DELETE FROM record_events WHERE import_id = $1")
            .bind(import_id)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// A batch ready to publish.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredBatch {
    pub id: i64,
    pub batch_id: Uuid,
    pub organization_id: i64,
    pub import_type: String,
    pub outcome: String,
    pub events: i32,
    /// The encoded `RecordEventBatch` (decompressed by [`ready`]).
    pub payload: Vec<u8>,
    /// How the outbox holds the payload ([`LZ4`] or [`PROTOBUF`]).
    pub encoding: String,
}

impl StoredBatch {
    /// `{organization}.{import_type}.{outcome}`.
    pub fn routing_key(&self) -> String {
        format!(
            "{}.{}.{}",
            self.organization_id, self.import_type, self.outcome
        )
    }
}

/// A round of the relay: the batches to publish, and whether more were
/// waiting behind them.
#[derive(Debug, Default)]
pub struct Ready {
    pub batches: Vec<StoredBatch>,
    pub more: bool,
}

/// The oldest batches ready to publish, in commit order: at most `rows`,
/// and no more than `events` records in all, except that the oldest batch
/// is always among them however many it holds (a chunk's events of one
/// outcome are one batch, so their number follows the chunk size). The
/// bound is decided on the `events` column; only the chosen payloads are
/// read.
pub async fn ready(conn: &mut PgConnection, rows: i64, events: i64) -> Result<Ready, StoreError> {
    let waiting: Vec<(i64, i32)> =
        sqlx::query_as("SELECT id, events FROM record_events WHERE NOT held ORDER BY id LIMIT $1")
            .bind(rows + 1)
            .fetch_all(&mut *conn)
            .await?;
    let (mut ids, mut records) = (Vec::new(), 0_i64);
    for &(id, n) in &waiting {
        let n = i64::from(n);
        if ids.len() as i64 == rows || (!ids.is_empty() && records + n > events) {
            break;
        }
        ids.push(id);
        records += n;
    }
    if ids.is_empty() {
        return Ok(Ready::default());
    }
    let stored: Vec<StoredBatch> = sqlx::query_as(
        "SELECT id, batch_id, organization_id, import_type, outcome, events, payload, encoding
           FROM record_events WHERE id = ANY($1) AND NOT held ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    // Decompressed on a blocking thread: a round holds up to 20,000
    // records, about 10 MB of protobuf.
    let batches = tokio::task::spawn_blocking(move || {
        stored
            .into_iter()
            .map(|mut b| {
                b.payload = decode_payload(&b.encoding, std::mem::take(&mut b.payload))?;
                b.encoding = PROTOBUF.to_string();
                Ok(b)
            })
            .collect::<Result<Vec<StoredBatch>, StoreError>>()
    })
    .await
    .map_err(|e| StoreError::Corrupt(format!("decompressing record events: {e}")))??;
    Ok(Ready {
        batches,
        more: waiting.len() > ids.len(),
    })
}

/// Removes batches the broker confirmed.
pub async fn published(conn: &mut PgConnection, ids: &[i64]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM record_events WHERE id = ANY($1)")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_payload_reads_back_as_the_batch_written() {
        let batch = EncodedBatch::encode(
            Uuid::from_u128(5),
            CREATED,
            vec![ev::RecordEvent {
                event_id: "e".into(),
                row: 2,
                ..ev::RecordEvent::default()
            }],
        );
        let stored = batch.compress();
        assert_eq!((stored.outcome, stored.events), (CREATED, 1));
        assert_eq!(
            decode_payload(LZ4, stored.lz4).ok(),
            Some(batch.payload.clone())
        );
        assert_eq!(
            decode_payload(PROTOBUF, batch.payload.clone()).ok(),
            Some(batch.payload)
        );
    }

    #[test]
    fn a_damaged_stored_payload_is_an_error_not_an_allocation() {
        // A block that claims 4 GB from a few bytes.
        let claims_too_much = vec![0xff, 0xff, 0xff, 0xff, 0x10, 0x61];
        assert!(matches!(
            decode_payload(LZ4, claims_too_much),
            Err(StoreError::Corrupt(_))
        ));
        let mut truncated = EncodedBatch::encode(Uuid::from_u128(5), CREATED, Vec::new())
            .compress()
            .lz4;
        truncated.truncate(truncated.len() - 3);
        assert!(decode_payload(LZ4, truncated).is_err());
        assert!(decode_payload(LZ4, Vec::new()).is_err());
        assert!(decode_payload("zstd", vec![1, 2, 3]).is_err());
    }
}
