//! Dead letters (docs/monitoring.md): the chunks workers gave up on, until
//! an operator requeues or discards them.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Requester, StoreError};

/// Records a chunk given up, in the transaction that gives it up: the
/// dead letter points at its last failed attempt.
pub async fn record(conn: &mut PgConnection, chunk_id: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO dead_letters (chunk_id, failure_id, import_id, organization_id)
         SELECT chunk_id, id, import_id, organization_id FROM chunk_failures
          WHERE chunk_id = $1 ORDER BY id DESC LIMIT 1
         ON CONFLICT (chunk_id) DO NOTHING",
    )
    .bind(chunk_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A dead letter with what an operator needs to decide.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeadLetter {
    pub chunk_id: i64,
    pub import_id: Uuid,
    pub organization_id: i64,
    pub file_id: Uuid,
    pub file_name: String,
    pub chunk_seq: i32,
    pub first_row: i64,
    pub last_row: i64,
    pub attempts: i32,
    pub error_kind: String,
    pub message: String,
    /// `dead_lettered` (retries ran out) or `failed` (no retry cures it).
    pub outcome: String,
    pub dead_at: DateTime<Utc>,
    pub resolution: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by_id: Option<String>,
    pub resolved_by_name: Option<String>,
    pub resolved_by_email: Option<String>,
    pub resolution_note: String,
    pub requeued_attempt: Option<i32>,
}

const SELECT: &str = "SELECT d.chunk_id, d.import_id, d.organization_id, f.file_id,
        fi.file_name, f.chunk_seq, f.first_row, f.last_row, f.attempt AS attempts,
        f.error_kind, f.message, f.outcome, d.dead_at, d.resolution, d.resolved_at,
        d.resolved_by_id, d.resolved_by_name, d.resolved_by_email, d.resolution_note, d.requeued_attempt
   FROM dead_letters d
   JOIN chunk_failures f ON f.id = d.failure_id
   JOIN import_files fi ON fi.id = f.file_id";

/// Dead letters newest first (by chunk id, before `before`), of one
/// organization or all, waiting ones only unless `resolved_too`.
pub async fn list(
    conn: &mut PgConnection,
    organization_id: Option<i64>,
    resolved_too: bool,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<DeadLetter>, StoreError> {
    let sql = format!(
        "{SELECT}
          WHERE ($1::bigint IS NULL OR d.organization_id = $1)
            AND ($2 OR d.resolution IS NULL)
            AND ($3::bigint IS NULL OR d.chunk_id < $3)
          ORDER BY d.chunk_id DESC LIMIT $4"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(organization_id)
        .bind(resolved_too)
        .bind(before)
        .bind(limit.min(i64::MAX as u64) as i64)
        .fetch_all(conn)
        .await?)
}

/// The dead letters of these chunks (those that exist).
pub async fn find(
    conn: &mut PgConnection,
    chunk_ids: &[i64],
) -> Result<Vec<DeadLetter>, StoreError> {
    let sql = format!("{SELECT} WHERE d.chunk_id = ANY($1) ORDER BY d.chunk_id");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(chunk_ids)
        .fetch_all(conn)
        .await?)
}

/// How a dead letter was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Its rows run again as this attempt of the import.
    Requeued(i32),
    Discarded,
}

/// Marks the waiting dead letters among `chunk_ids` handled; returns the
/// chunk ids it marked (one already handled is left as it was).
pub async fn resolve(
    conn: &mut PgConnection,
    chunk_ids: &[i64],
    how: Resolution,
    note: &str,
    by: &Requester,
) -> Result<Vec<i64>, StoreError> {
    let (resolution, attempt) = match how {
        Resolution::Requeued(attempt) => ("requeued", Some(attempt)),
        Resolution::Discarded => ("discarded", None),
    };
    Ok(sqlx::query_scalar(
        "UPDATE dead_letters SET resolution = $2, resolved_at = clock_timestamp(),
                resolved_by_id = $3, resolved_by_name = $4, resolved_by_email = $5,
                resolution_note = $6, requeued_attempt = $7
          WHERE chunk_id = ANY($1) AND resolution IS NULL
      RETURNING chunk_id",
    )
    .bind(chunk_ids)
    .bind(resolution)
    .bind(&by.id)
    .bind(&by.name)
    .bind(&by.email)
    .bind(note)
    .bind(attempt)
    .fetch_all(conn)
    .await?)
}

/// Marks dead letters requeued into `attempt`, in the transaction that
/// queues it. With `chunks`, exactly those: false when one of them was
/// handled meanwhile. Without, every waiting dead letter of the import —
/// a RetryFailedRows runs their rows again too, so none is left waiting
/// for rows already back in the queue.
pub async fn requeued(
    conn: &mut PgConnection,
    import_id: Uuid,
    chunks: Option<&[i64]>,
    attempt: i32,
    by: &Requester,
) -> Result<bool, StoreError> {
    if let Some(chunks) = chunks {
        let how = Resolution::Requeued(attempt);
        return Ok(resolve(conn, chunks, how, "", by).await?.len() == chunks.len());
    }
    sqlx::query(
        "UPDATE dead_letters SET resolution = 'requeued', resolved_at = clock_timestamp(),
                resolved_by_id = $2, resolved_by_name = $3, resolved_by_email = $4,
                resolution_note = 'with every failed row (RetryFailedRows)',
                requeued_attempt = $5
          WHERE import_id = $1 AND resolution IS NULL",
    )
    .bind(import_id)
    .bind(&by.id)
    .bind(&by.name)
    .bind(&by.email)
    .bind(attempt)
    .execute(conn)
    .await?;
    Ok(true)
}

/// The chunks of an import's dead letters requeued into `attempt`.
pub async fn requeued_into(
    conn: &mut PgConnection,
    import_id: Uuid,
    attempt: i32,
) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT chunk_id FROM dead_letters
          WHERE import_id = $1 AND resolution = 'requeued' AND requeued_attempt = $2
          ORDER BY chunk_id",
    )
    .bind(import_id)
    .bind(attempt)
    .fetch_all(conn)
    .await?)
}

/// Which of these chunks exist (dead-lettered or not).
pub async fn existing_chunks(
    conn: &mut PgConnection,
    chunk_ids: &[i64],
) -> Result<Vec<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM chunks WHERE id = ANY($1) ORDER BY id")
            .bind(chunk_ids)
            .fetch_all(conn)
            .await?,
    )
}
