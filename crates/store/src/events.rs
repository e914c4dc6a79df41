//! Record events' transactional outbox (docs/record-events.md): the rows a
//! chunk's write adds for the records it created or updated, holding and
//! releasing an all-or-nothing import's events, and what the relay reads
//! and deletes.

use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::StoreError;

/// One record event about to be stored with its write.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub row_number: i64,
    /// `created` or `updated`.
    pub outcome: &'static str,
    /// The natural key's values, in key order.
    pub key: Vec<String>,
    /// `{column: value or null}`: every column of a created record, the
    /// changed ones of an updated record; sensitive values masked.
    pub changes: serde_json::Value,
}

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

/// The stable id of the event of `row` written by `chunk_id`: a chunk
/// commits once, so its row's event always has this id.
pub fn event_id(import_id: Uuid, chunk_id: i64, row: i64) -> Uuid {
    let mut h = Sha256::new();
    h.update(import_id.as_bytes());
    h.update(chunk_id.to_be_bytes());
    h.update(row.to_be_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::new_v8(bytes)
}

/// Adds the events to the outbox, in the write's transaction; wakes the
/// relay when they can go at once.
pub async fn record(
    conn: &mut PgConnection,
    source: EventSource<'_>,
    events: Vec<NewEvent>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = events
        .iter()
        .map(|e| event_id(source.import_id, source.chunk_id, e.row_number))
        .collect();
    let rows: Vec<i64> = events.iter().map(|e| e.row_number).collect();
    let outcomes: Vec<&str> = events.iter().map(|e| e.outcome).collect();
    let (keys, changes): (Vec<serde_json::Value>, Vec<serde_json::Value>) = events
        .into_iter()
        .map(|e| (serde_json::json!(e.key), e.changes))
        .unzip();
    sqlx::query(
        "INSERT INTO record_events (event_id, organization_id, import_id, file_id, row_number,
                                    attempt, import_type, outcome, record_key, changes, held)
         SELECT e.id, $2, $3, $4, e.row_number, $5, $6, e.outcome, e.record_key, e.changes, $7
           FROM unnest($1::uuid[], $8::bigint[], $9::text[], $10::jsonb[], $11::jsonb[])
                AS e(id, row_number, outcome, record_key, changes)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(source.organization_id)
    .bind(source.import_id)
    .bind(source.file_id)
    .bind(source.attempt)
    .bind(source.import_type)
    .bind(source.held)
    .bind(&rows)
    .bind(&outcomes)
    .bind(&keys)
    .bind(&changes)
    .execute(&mut *conn)
    .await?;
    if !source.held {
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

/// An event ready to publish.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub id: i64,
    pub event_id: Uuid,
    pub organization_id: i64,
    pub import_id: Uuid,
    pub file_id: Uuid,
    pub row_number: i64,
    pub attempt: i32,
    pub import_type: String,
    pub outcome: String,
    pub record_key: serde_json::Value,
    pub changes: serde_json::Value,
    pub committed_at: chrono::DateTime<chrono::Utc>,
}

/// The oldest `limit` events ready to publish, in commit order.
pub async fn ready(conn: &mut PgConnection, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, event_id, organization_id, import_id, file_id, row_number, attempt,
                import_type, outcome, record_key, changes, committed_at
           FROM record_events WHERE NOT held ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Removes events the broker confirmed.
pub async fn published(conn: &mut PgConnection, ids: &[i64]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM record_events WHERE id = ANY($1)")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// Events waiting to be published (held ones included).
pub async fn waiting(conn: &mut PgConnection) -> Result<(i64, i64), StoreError> {
    Ok(sqlx::query_as(
        "SELECT count(*) FILTER (WHERE NOT held), count(*) FILTER (WHERE held) FROM record_events",
    )
    .fetch_one(conn)
    .await?)
}
