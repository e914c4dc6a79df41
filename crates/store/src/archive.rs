//! The raw archive's bookkeeping (docs/archive.md): which chunks and
//! original files are due for the archive, claiming them for one worker,
//! recording success or a failure with its next attempt, and what an import
//! shows of its archive.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::entities::{import_files, imports};
use crate::{StoreError, exec};

/// How long a claimed chunk or file stays with the worker that claimed it
/// before another may take it (a worker that died mid-archive).
pub const CLAIM: Duration = Duration::from_secs(300);

/// Marks a chunk just written as due for the archive `after` from now (the
/// writing worker archives it at once and clears the mark; the runner takes
/// it if that never happens), and its file's original bytes as due now.
/// Runs in the chunk's write transaction.
pub async fn due(
    conn: &mut PgConnection,
    chunk_id: i64,
    file_id: Uuid,
    after: Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE chunks SET archive_due = clock_timestamp() + make_interval(secs => $2)
          WHERE id = $1",
    )
    .bind(chunk_id)
    .bind(after.as_secs_f64())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE import_files SET original_archive_due = clock_timestamp()
          WHERE id = $1 AND original_archived_at IS NULL AND original_archive_due IS NULL",
    )
    .bind(file_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records a chunk's rows archived (or, with `archived = false`, its archive
/// deleted because its import was rolled back): nothing is due any more —
/// unless the import was rolled back while the rows were being archived.
/// The writing worker archives a chunk on a task of its own, so the
/// rollback's [`withdraw_import`] (and the runner's deletion it leads to)
/// may come before this record of rows it has just stored: the chunk then
/// stays due, and the runner deletes them. The import's row is read under a
/// share lock, which waits for a rollback in flight (it sets
/// `rolled_back_at` and withdraws in one transaction) and then sees it.
pub async fn chunk_done(
    conn: &mut PgConnection,
    chunk_id: i64,
    archived: bool,
) -> Result<(), StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let withdrawn: Option<bool> = sqlx::query_scalar(
        "SELECT i.rolled_back_at IS NOT NULL FROM chunks c JOIN imports i ON i.id = c.import_id
          WHERE c.id = $1 FOR SHARE OF i",
    )
    .bind(chunk_id)
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE chunks SET archive_error = NULL,
                archive_due = CASE WHEN $3 THEN clock_timestamp() END,
                archived_at = CASE WHEN $2 THEN clock_timestamp() END
          WHERE id = $1",
    )
    .bind(chunk_id)
    .bind(archived)
    .bind(archived && withdrawn == Some(true))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Records a failed attempt at a chunk's archive: tried again at `retry_at`.
pub async fn chunk_failed(
    conn: &mut PgConnection,
    chunk_id: i64,
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<i32, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE chunks SET archive_due = $3, archive_error = $2,
                archive_attempts = archive_attempts + 1
          WHERE id = $1 RETURNING archive_attempts",
    )
    .bind(chunk_id)
    .bind(error)
    .bind(retry_at)
    .fetch_optional(conn)
    .await?
    .unwrap_or(0))
}

/// Records a file's original bytes archived.
pub async fn original_done(conn: &mut PgConnection, file_id: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE import_files SET original_archive_due = NULL, original_archive_error = NULL,
                original_archived_at = clock_timestamp()
          WHERE id = $1",
    )
    .bind(file_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a failed attempt at a file's original: tried again at `retry_at`.
pub async fn original_failed(
    conn: &mut PgConnection,
    file_id: Uuid,
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<i32, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE import_files SET original_archive_due = $3, original_archive_error = $2,
                original_archive_attempts = original_archive_attempts + 1
          WHERE id = $1 RETURNING original_archive_attempts",
    )
    .bind(file_id)
    .bind(error)
    .bind(retry_at)
    .fetch_optional(conn)
    .await?
    .unwrap_or(0))
}

/// Claims up to `limit` chunks whose archive is due (each for [`CLAIM`]):
/// their ids and failed attempts so far.
pub async fn claim_chunks(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<(i64, i32)>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE chunks SET archive_due = clock_timestamp() + make_interval(secs => $2)
          WHERE id IN (SELECT id FROM chunks WHERE archive_due <= clock_timestamp()
                        ORDER BY archive_due LIMIT $1 FOR UPDATE SKIP LOCKED)
          RETURNING id, archive_attempts",
    )
    .bind(limit)
    .bind(CLAIM.as_secs_f64())
    .fetch_all(conn)
    .await?)
}

/// Claims up to `limit` files whose original is due: ids and attempts.
pub async fn claim_originals(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<(Uuid, i32)>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE import_files SET original_archive_due = clock_timestamp() + make_interval(secs => $2)
          WHERE id IN (SELECT id FROM import_files WHERE original_archive_due <= clock_timestamp()
                        ORDER BY original_archive_due LIMIT $1 FOR UPDATE SKIP LOCKED)
          RETURNING id, original_archive_attempts",
    )
    .bind(limit)
    .bind(CLAIM.as_secs_f64())
    .fetch_all(conn)
    .await?)
}

/// Makes every archived chunk of a rolled-back import due again, so the
/// runner deletes its rows from the archive.
pub async fn withdraw_import(conn: &mut PgConnection, import_id: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE chunks SET archive_due = clock_timestamp()
          WHERE import_id = $1 AND (archived_at IS NOT NULL OR archive_due IS NOT NULL)",
    )
    .bind(import_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A file with its import.
pub async fn file_and_import(
    conn: &mut PgConnection,
    file_id: Uuid,
) -> Result<Option<(import_files::Model, imports::Model)>, StoreError> {
    use sea_orm::EntityTrait;
    let Some(file) = exec::one(conn, import_files::Entity::find_by_id(file_id)).await? else {
        return Ok(None);
    };
    let import = exec::one(conn, imports::Entity::find_by_id(file.import_id)).await?;
    Ok(import.map(|i| (file, i)))
}

/// The rows failed in a chunk, by row number, with the first reason of each.
pub async fn chunk_row_errors(
    conn: &mut PgConnection,
    file_id: Uuid,
    chunk_id: i64,
) -> Result<HashMap<i64, String>, StoreError> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT DISTINCT ON (row_number) row_number, reason FROM row_errors
          WHERE file_id = $1 AND chunk_id = $2 ORDER BY row_number, id",
    )
    .bind(file_id)
    .bind(chunk_id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// What an import shows of its archive.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct ImportArchive {
    pub import_id: Uuid,
    pub chunks_archived: i64,
    /// Chunks (and originals) waiting for the archive or being retried.
    pub pending: i64,
    /// Failed attempts of the pending ones.
    pub failed_attempts: i64,
    /// The latest failure of a pending one.
    pub last_error: Option<String>,
    pub next_attempt: Option<DateTime<Utc>>,
    pub originals_archived: i64,
}

/// The archive of each import of `ids`.
pub async fn of_imports(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, ImportArchive>, StoreError> {
    let rows: Vec<ImportArchive> =
        sqlx::query_as(
            "WITH c AS (
                 SELECT import_id, count(archived_at) AS archived,
                        count(archive_due) AS pending,
                        COALESCE(sum(archive_attempts) FILTER (WHERE archive_due IS NOT NULL), 0)::bigint AS attempts,
                        (array_agg(archive_error ORDER BY archive_due DESC)
                           FILTER (WHERE archive_due IS NOT NULL AND archive_error IS NOT NULL))[1] AS error,
                        min(archive_due) AS next_at
                   FROM chunks WHERE import_id = ANY($1) GROUP BY import_id),
             f AS (
                 SELECT import_id, count(original_archived_at) AS archived,
                        count(original_archive_due) AS pending,
                        COALESCE(sum(original_archive_attempts) FILTER (WHERE original_archive_due IS NOT NULL), 0)::bigint AS attempts,
                        (array_agg(original_archive_error ORDER BY original_archive_due DESC)
                           FILTER (WHERE original_archive_due IS NOT NULL AND original_archive_error IS NOT NULL))[1] AS error,
                        min(original_archive_due) AS next_at
                   FROM import_files WHERE import_id = ANY($1) GROUP BY import_id)
             SELECT f.import_id, COALESCE(c.archived, 0) AS chunks_archived,
                    COALESCE(c.pending, 0) + f.pending AS pending,
                    COALESCE(c.attempts, 0) + f.attempts AS failed_attempts,
                    COALESCE(c.error, f.error) AS last_error,
                    LEAST(c.next_at, f.next_at) AS next_attempt,
                    f.archived AS originals_archived
               FROM f LEFT JOIN c ON c.import_id = f.import_id",
        )
        .bind(ids)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|a| (a.import_id, a)).collect())
}
