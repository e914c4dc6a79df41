//! The bookkeeping of a written chunk, in its transaction: the chunk's own
//! counts and times, its row errors, its file's progress and state, and the
//! import's state once its files add up (with the timeline steps of its
//! first chunk and its end).

use chrono::{DateTime, Utc};
use passare_imports_domain::RowProblem;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ChunkCounts, ChunkJob, undo};
use crate::states::{ChunkState, FailurePolicy, FileState, ImportState};
use crate::{StoreError, timeline};

/// Who wrote a chunk and when.
pub(super) struct ChunkTiming<'a> {
    pub worker: &'a str,
    /// When the worker took the chunk.
    pub started_at: DateTime<Utc>,
    /// When its write transaction began writing.
    pub write_started_at: DateTime<Utc>,
}

/// Marks a chunk settled with its counts and times.
pub(super) async fn settle_chunk(
    conn: &mut PgConnection,
    chunk_id: i64,
    state: ChunkState,
    counts: &ChunkCounts,
    timing: &ChunkTiming<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE chunks SET state = $2, attempts = attempts + 1, worker = $3,
                rows_created = $4, rows_updated = $5, rows_unchanged = $6, rows_failed = $7,
                rows_stale = $10, started_at = $8, write_started_at = $9,
                finished_at = clock_timestamp()
          WHERE id = $1",
    )
    .bind(chunk_id)
    .bind(state)
    .bind(timing.worker)
    .bind(counts.created)
    .bind(counts.updated)
    .bind(counts.unchanged)
    .bind(counts.failed)
    .bind(timing.started_at)
    .bind(timing.write_started_at)
    .bind(counts.stale)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds a settled chunk's counts to its file and moves the file's state on.
pub(super) async fn add_file_progress(
    conn: &mut PgConnection,
    file_id: Uuid,
    counts: &ChunkCounts,
    failed: bool,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE import_files SET
                chunks_done = chunks_done + 1,
                rows_processed = rows_processed + $2, rows_created = rows_created + $3,
                rows_updated = rows_updated + $4, rows_unchanged = rows_unchanged + $5,
                rows_failed = rows_failed + $6, rows_stale = rows_stale + $8,
                state = CASE
                    WHEN $7 THEN $9
                    WHEN chunks_done + 1 >= chunks_total AND rows_failed + $6 > 0 THEN $10
                    WHEN chunks_done + 1 >= chunks_total THEN $11
                    ELSE $12 END,
                updated_at = clock_timestamp()
          WHERE id = $1",
    )
    .bind(file_id)
    .bind(counts.processed)
    .bind(counts.created)
    .bind(counts.updated)
    .bind(counts.unchanged)
    .bind(counts.failed)
    .bind(failed)
    .bind(counts.stale)
    .bind(FileState::Failed)
    .bind(FileState::CompletedWithErrors)
    .bind(FileState::Completed)
    .bind(FileState::Running)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves a running import to the state its files now add up to, and adds
/// to its timeline when it started (its first chunk) or ended. An
/// all-or-nothing import that completes no longer needs its before-images.
pub(super) async fn settle_import(
    conn: &mut PgConnection,
    import_id: Uuid,
    policy: FailurePolicy,
    first_start: DateTime<Utc>,
    worker: &str,
) -> Result<(), StoreError> {
    let next_state = state_after(&mut *conn, import_id).await?;
    let first: bool = sqlx::query_scalar(
        "WITH before AS (SELECT started_at IS NULL AS first FROM imports WHERE id = $1)
         UPDATE imports SET state = $2,
                started_at = COALESCE(started_at, $3),
                finished_at = CASE WHEN $4 THEN clock_timestamp() ELSE finished_at END,
                updated_at = clock_timestamp()
          WHERE id = $1
      RETURNING (SELECT first FROM before)",
    )
    .bind(import_id)
    .bind(next_state)
    .bind(first_start)
    .bind(next_state.is_terminal())
    .fetch_one(&mut *conn)
    .await?;
    if first {
        let detail = format!("by worker {worker}");
        timeline::record(conn, import_id, "started", None, &detail).await?;
    }
    if next_state.is_terminal() {
        let (done, failed): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(sum(rows_created + rows_updated + rows_unchanged), 0)::bigint,
                    COALESCE(sum(rows_failed), 0)::bigint
               FROM import_files WHERE import_id = $1",
        )
        .bind(import_id)
        .fetch_one(&mut *conn)
        .await?;
        let detail = format!("{done} rows imported, {failed} failed");
        timeline::record(conn, import_id, next_state.as_str(), None, &detail).await?;
        if policy == FailurePolicy::StopOnFirstError {
            undo::forget(conn, import_id).await?;
            // Its writes stand: their record events may go.
            crate::events::release(conn, import_id).await?;
        }
    }
    Ok(())
}

/// The import's state once its files' states are as stored.
async fn state_after(conn: &mut PgConnection, import_id: Uuid) -> Result<ImportState, StoreError> {
    let states: Vec<FileState> =
        sqlx::query_scalar("SELECT state FROM import_files WHERE import_id = $1")
            .bind(import_id)
            .fetch_all(conn)
            .await?;
    Ok(if !states.iter().all(|s| s.is_finished()) {
        ImportState::Running
    } else if states.contains(&FileState::Failed) {
        ImportState::Failed
    } else if states.contains(&FileState::CompletedWithErrors) {
        ImportState::CompletedWithErrors
    } else {
        ImportState::Completed
    })
}

/// Records a chunk's row problems, one statement for all of them.
pub(super) async fn insert_row_errors(
    conn: &mut PgConnection,
    job: &ChunkJob,
    problems: &[RowProblem],
) -> Result<(), StoreError> {
    if problems.is_empty() {
        return Ok(());
    }
    let rows: Vec<i64> = problems.iter().map(|p| p.row as i64).collect();
    let columns: Vec<&str> = problems.iter().map(|p| p.column.as_str()).collect();
    let values: Vec<&str> = problems.iter().map(|p| p.value.as_str()).collect();
    let reasons: Vec<&str> = problems.iter().map(|p| p.reason.as_str()).collect();
    let kinds: Vec<&str> = problems.iter().map(|p| p.kind.as_str()).collect();
    sqlx::query(
        "INSERT INTO row_errors (import_id, file_id, chunk_id, row_number, column_name, value, reason, kind, attempt)
         SELECT $1, $2, $3, r, c, v, why, k, $9
           FROM UNNEST($4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[]) AS e(r, c, v, why, k)",
    )
    .bind(job.import.id)
    .bind(job.file.id)
    .bind(job.chunk.id)
    .bind(&rows)
    .bind(&columns)
    .bind(&values)
    .bind(&reasons)
    .bind(&kinds)
    .bind(job.chunk.attempt)
    .execute(conn)
    .await?;
    Ok(())
}
