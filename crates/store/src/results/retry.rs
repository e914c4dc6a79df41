//! Queueing a retry of an import's still-failed rows as its next attempt:
//! the rows' errors are superseded, each file's retry chunks are inserted
//! (their records keep their original row numbers), and the import takes a
//! new place at the end of its organization's queue.

use chrono::{DateTime, Utc};
use passare_imports_domain::ChunkRange;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::entities::{chunks, import_files, imports};
use crate::states::{ChunkState, FileState, ImportState};
use crate::{Requester, StoreError, exec, imports as import_records, locks, timeline};

/// The retry file of one file: the still-failed rows (with their edits),
/// stored under `data_key` with the file's header, cut into chunks.
#[derive(Debug, Clone)]
pub struct RetryFile {
    pub file_id: Uuid,
    pub data_key: String,
    /// Byte ranges of the chunks within the retry file (`first_row` unused).
    pub chunks: Vec<ChunkRange>,
    /// The original row number of each record, in order.
    pub rows: Vec<i64>,
}

/// What a retry request found.
#[derive(Debug)]
pub enum Retry {
    /// Queued as attempt `attempt`: publish these chunks.
    Queued {
        organization_id: i64,
        attempt: i32,
        rows: i64,
        chunks: Vec<chunks::Model>,
    },
    /// The import is in another state than completed_with_errors (`None`: gone).
    NotRetryable(Option<ImportState>),
    /// Failed rows or their edits changed while the retry files were built;
    /// build them again.
    Changed,
    /// The retention job deleted the import's results.
    Purged,
}

/// Queues a retry of an import's still-failed rows as its next attempt.
/// `built_at` is when the retry files were built: edits made since, or
/// failed rows other than the files hold, refuse the retry (`Changed`).
/// With `dead`, only the rows of those dead-lettered chunks are retried,
/// and the dead letters are marked requeued in the same transaction (one
/// another call requeued meanwhile refuses the retry: `Changed`); without,
/// every waiting dead letter of the import is marked requeued into the
/// new attempt, since its rows are among those retried.
pub async fn queue_retry(
    conn: &mut PgConnection,
    import_id: Uuid,
    files: &[RetryFile],
    built_at: DateTime<Utc>,
    by: &Requester,
    dead: Option<&[i64]>,
) -> Result<Retry, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let Some(org) = import_records::find(&mut tx, import_id)
        .await?
        .map(|i| i.organization_id)
    else {
        return Ok(Retry::NotRetryable(None));
    };
    // The same order as StartImport: the organization's queue lock, then the import.
    locks::queue(&mut tx, org).await?;
    let import = import_records::lock(&mut tx, import_id).await?;
    let import = match import {
        Some(i) if i.results_purged_at.is_some() => return Ok(Retry::Purged),
        Some(i) if i.state == ImportState::CompletedWithErrors => i,
        other => return Ok(Retry::NotRetryable(other.map(|i| i.state))),
    };
    if !still_as_built(&mut tx, import_id, files, built_at, dead).await? {
        return Ok(Retry::Changed);
    }
    sqlx::query(
        "UPDATE row_errors SET superseded_at = clock_timestamp()
          WHERE import_id = $1 AND superseded_at IS NULL
            AND ($2::bigint[] IS NULL OR chunk_id = ANY($2))",
    )
    .bind(import_id)
    .bind(dead)
    .execute(&mut *tx)
    .await?;
    let attempt = import.attempt + 1;
    // A requeue whose rows are no longer failed (a RetryFailedRows ran
    // them meanwhile) has nothing to queue.
    let nothing_left = dead.is_some() && files.is_empty();
    if nothing_left || !crate::dead_letters::requeued(&mut tx, import_id, dead, attempt, by).await?
    {
        return Ok(Retry::Changed);
    }
    let mut queued = Vec::new();
    for f in files {
        queued.extend(queue_file(&mut tx, &import, f, attempt).await?);
    }
    exec::run(
        &mut tx,
        imports::Entity::update_many()
            .col_expr(imports::Column::State, Expr::value(ImportState::Queued))
            .col_expr(imports::Column::Attempt, Expr::value(attempt))
            .col_expr(
                imports::Column::QueueSeq,
                Expr::cust("nextval('import_queue_seq')"),
            )
            .col_expr(imports::Column::QueuedAt, Expr::cust("clock_timestamp()"))
            .col_expr(imports::Column::FinishedAt, Expr::cust("NULL"))
            .col_expr(imports::Column::Error, Expr::cust("NULL"))
            .col_expr(imports::Column::UpdatedAt, Expr::cust("clock_timestamp()"))
            .filter(imports::Column::Id.eq(import_id)),
    )
    .await?;
    let rows: i64 = files.iter().map(|f| f.rows.len() as i64).sum();
    let detail = format!(
        "attempt {attempt}: {rows} failed rows of {} files",
        files.len()
    );
    timeline::record(&mut tx, import_id, "retry_queued", Some(by), &detail).await?;
    timeline::notify(&mut tx, import_id).await?;
    tx.commit().await?;
    Ok(Retry::Queued {
        organization_id: org,
        attempt,
        rows,
        chunks: queued,
    })
}

/// Whether the failed rows are still those the retry files were built from:
/// no edit since `built_at`, and per file the same number of failed rows.
async fn still_as_built(
    conn: &mut PgConnection,
    import_id: Uuid,
    files: &[RetryFile],
    built_at: DateTime<Utc>,
    dead: Option<&[i64]>,
) -> Result<bool, StoreError> {
    let edited_since: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM row_edits WHERE import_id = $1 AND edited_at > $2)",
    )
    .bind(import_id)
    .bind(built_at)
    .fetch_one(&mut *conn)
    .await?;
    let open: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT file_id, count(DISTINCT row_number) FROM row_errors
          WHERE import_id = $1 AND superseded_at IS NULL
            AND ($2::bigint[] IS NULL OR chunk_id = ANY($2))
          GROUP BY file_id ORDER BY file_id",
    )
    .bind(import_id)
    .bind(dead)
    .fetch_all(&mut *conn)
    .await?;
    let mut planned: Vec<(Uuid, i64)> = files
        .iter()
        .map(|f| (f.file_id, f.rows.len() as i64))
        .collect();
    planned.sort();
    Ok(!edited_since && planned == open)
}

/// Puts one file back in the queue with the chunks of its retry file: its
/// retried rows are pending again.
async fn queue_file(
    conn: &mut PgConnection,
    import: &imports::Model,
    f: &RetryFile,
    attempt: i32,
) -> Result<Vec<chunks::Model>, StoreError> {
    let retried = f.rows.len() as i64;
    let next_seq: i32 =
        sqlx::query_scalar("SELECT COALESCE(max(seq) + 1, 0) FROM chunks WHERE file_id = $1")
            .bind(f.file_id)
            .fetch_one(&mut *conn)
            .await?;
    exec::run(
        conn,
        import_files::Entity::update_many()
            .col_expr(import_files::Column::State, Expr::value(FileState::Queued))
            .col_expr(
                import_files::Column::RowsFailed,
                Expr::col(import_files::Column::RowsFailed).sub(retried),
            )
            .col_expr(
                import_files::Column::RowsProcessed,
                Expr::col(import_files::Column::RowsProcessed).sub(retried),
            )
            .col_expr(
                import_files::Column::ChunksTotal,
                Expr::col(import_files::Column::ChunksTotal).add(f.chunks.len() as i32),
            )
            .col_expr(
                import_files::Column::UpdatedAt,
                Expr::cust("clock_timestamp()"),
            )
            .filter(import_files::Column::Id.eq(f.file_id)),
    )
    .await?;
    let mut records = Vec::with_capacity(f.chunks.len());
    let mut offset = 0usize;
    for (i, c) in f.chunks.iter().enumerate() {
        let numbers = f
            .rows
            .get(offset..offset + c.rows as usize)
            .ok_or_else(|| StoreError::Corrupt("a retry chunk has more rows than its file".into()))?
            .to_vec();
        offset += c.rows as usize;
        records.push(chunks::ActiveModel {
            import_id: Set(import.id),
            file_id: Set(f.file_id),
            organization_id: Set(import.organization_id),
            seq: Set(next_seq + i as i32),
            first_row: Set(numbers.first().copied().unwrap_or_default()),
            row_count: Set(c.rows as i64),
            byte_start: Set(c.start as i64),
            byte_end: Set(c.end as i64),
            state: Set(ChunkState::Queued),
            attempt: Set(attempt),
            data_key: Set(Some(f.data_key.clone())),
            row_numbers: Set(Some(numbers)),
            ..Default::default()
        });
    }
    exec::insert_many(conn, records).await
}
