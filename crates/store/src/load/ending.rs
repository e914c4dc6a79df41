//! Ending an import before all its chunks were written: a failed row or
//! chunk, a chunk given up after its retries, or a user's stop. Each happens
//! behind the organization's write fence, between two chunk writes; an
//! all-or-nothing import that wrote is then rolled back by the workers, in
//! batches (see `undo`).

use chrono::{DateTime, Utc};
use passare_imports_domain::FindingKind;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ChunkCounts, ChunkOutcome, progress, turn, undo};
use crate::failures::{self, NewFailure};
use crate::states::{ChunkState, FailurePolicy, FileState, ImportState};
use crate::{Requester, StoreError, imports, locks, timeline};

/// How an import ends before all its chunks were written.
pub(super) enum How {
    /// A row or a chunk failed; the JSON is the import's `error`.
    Failed(serde_json::Value),
    /// A user stopped it.
    Stopped { by: Requester, reason: String },
}

/// An import to end, with what the ending needs to know.
pub(super) struct Ending {
    pub import_id: Uuid,
    pub policy: FailurePolicy,
    pub how: How,
    /// When the chunk that ends it began, if a chunk does: the import's
    /// start time, unless an earlier chunk set it. A stop leaves it unset:
    /// an import stopped while queued never started.
    pub first_start: Option<DateTime<Utc>>,
}

/// Ends a draft whose start was asked for but cannot happen (the analysis
/// StartImport queued found something blocking): FAILED with `error`, its
/// files failed. Call in the transaction that holds the import's row lock
/// and found it a draft; nothing was written, so nothing is rolled back.
pub async fn fail_draft(
    conn: &mut PgConnection,
    import_id: Uuid,
    policy: FailurePolicy,
    error: serde_json::Value,
) -> Result<(), StoreError> {
    end_import(
        conn,
        Ending {
            import_id,
            policy,
            how: How::Failed(error),
            first_start: None,
        },
    )
    .await
}

/// Ends an import: records the final state, skips its chunks still queued,
/// ends its unfinished files, and — for an all-or-nothing import that wrote
/// — leaves it `rolling_back` for the workers to put back what it wrote. Call behind the organization's write fence,
/// in the transaction that decided the ending.
pub(super) async fn end_import(conn: &mut PgConnection, e: Ending) -> Result<(), StoreError> {
    let (state, file_state) = match &e.how {
        How::Failed(_) => (ImportState::Failed, FileState::Failed),
        How::Stopped { .. } => (ImportState::Stopped, FileState::Stopped),
    };
    let (error, by, reason) = match e.how {
        How::Failed(error) => (Some(error), None, None),
        How::Stopped { by, reason } => (None, Some(by), Some(reason)),
    };
    sqlx::query(
        "UPDATE imports SET state = $2, error = COALESCE($3, error),
                stopped_by_id = $4, stopped_by_name = $5, stopped_by_email = $6,
                stopped_at = CASE WHEN $4 IS NULL THEN NULL ELSE clock_timestamp() END,
                stop_reason = $7,
                started_at = COALESCE(started_at, $8),
                finished_at = clock_timestamp(), updated_at = clock_timestamp()
          WHERE id = $1",
    )
    .bind(e.import_id)
    .bind(state)
    .bind(error.clone())
    .bind(by.as_ref().map(|b| b.id.clone()))
    .bind(by.as_ref().map(|b| b.name.clone()))
    .bind(by.as_ref().map(|b| b.email.clone()))
    .bind(reason.clone())
    .bind(e.first_start)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE chunks SET state = $2, finished_at = clock_timestamp()
          WHERE import_id = $1 AND state = $3",
    )
    .bind(e.import_id)
    .bind(ChunkState::Skipped)
    .bind(ChunkState::Queued)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE import_files SET state = $2, updated_at = clock_timestamp()
          WHERE import_id = $1 AND state = ANY($3)",
    )
    .bind(e.import_id)
    .bind(file_state)
    .bind(
        &[
            FileState::Ready,
            FileState::Invalid,
            FileState::Queued,
            FileState::Running,
        ][..],
    )
    .execute(&mut *conn)
    .await?;
    match (&by, &error) {
        (Some(by), _) => {
            let why = reason.as_deref().unwrap_or("");
            timeline::record(conn, e.import_id, "stopped", Some(by), why).await?
        }
        (None, Some(error)) => {
            let why = error["message"].as_str().unwrap_or_default();
            timeline::record(conn, e.import_id, "failed", None, why).await?
        }
        (None, None) => {}
    }
    if e.policy == FailurePolicy::StopOnFirstError {
        if undo::wrote_any(conn, e.import_id).await? {
            // The workers put it back in batches (`undo::roll_back_batch`).
            undo::begin(conn, e.import_id).await?;
        } else {
            undo::forget(conn, e.import_id).await?;
        }
    }
    Ok(())
}

/// What a stop request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The import is now stopped.
    Now,
    /// It was stopped before (stopping is idempotent).
    Already,
    /// It had already ended in this other state.
    Finished(ImportState),
    NotFound,
}

/// Stops an import. Waits for the organization's write fence, so a chunk in
/// hand finishes first and none starts after: a queued import never starts,
/// a running one stops after its current chunk. An all-or-nothing import
/// that wrote is left rolling back (the caller announces the organization to
/// the workers).
pub async fn stop_import(
    conn: &mut PgConnection,
    import_id: Uuid,
    by: &Requester,
    reason: &str,
) -> Result<Stopped, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let Some(org) = imports::find(&mut tx, import_id)
        .await?
        .map(|i| i.organization_id)
    else {
        return Ok(Stopped::NotFound);
    };
    locks::write_fence(&mut tx, org).await?;
    let import = imports::lock(&mut tx, import_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("import {import_id} vanished")))?;
    match import.state {
        ImportState::Stopped => return Ok(Stopped::Already),
        // Ending already: stopped (then rolling back), or failed.
        ImportState::RollingBack if import.stopped_by_id.is_some() => {
            return Ok(Stopped::Already);
        }
        ImportState::RollingBack => return Ok(Stopped::Finished(ImportState::Failed)),
        s if s.is_terminal() => return Ok(Stopped::Finished(s)),
        _ => {}
    }
    let how = How::Stopped {
        by: by.clone(),
        reason: reason.to_string(),
    };
    end_import(
        &mut tx,
        Ending {
            import_id,
            policy: import.failure_policy,
            how,
            first_start: None,
        },
    )
    .await?;
    timeline::notify(&mut tx, import_id).await?;
    tx.commit().await?;
    Ok(Stopped::Now)
}

/// What became of a chunk the workers gave up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GaveUp {
    /// STOP_ON_FIRST_ERROR: the import failed and what it wrote was rolled back.
    ImportFailed,
    /// IMPORT_VALID_ROWS: the chunk's rows are recorded as failed and the
    /// import goes on with its next chunk.
    RowsFailed(i64),
    /// Nothing to do: the chunk was settled meanwhile (done, skipped, gone)
    /// or is not next.
    Nothing(ChunkOutcome),
}

/// The chunk being given up, as its rows read it.
#[derive(sqlx::FromRow)]
struct GivenUp {
    organization_id: i64,
    import_id: Uuid,
    file_id: Uuid,
    file_name: String,
    #[sqlx(rename = "failure_policy")]
    policy: FailurePolicy,
    attempt: i32,
    /// The row number of each of its records.
    #[sqlx(rename = "rows")]
    numbers: Vec<i64>,
}

impl GivenUp {
    async fn read(conn: &mut PgConnection, chunk_id: i64) -> Result<Option<Self>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT c.organization_id, c.import_id, c.file_id, c.attempt,
                    COALESCE(c.row_numbers, ARRAY(SELECT generate_series(c.first_row, c.first_row + c.row_count - 1))) AS rows,
                    i.failure_policy, f.file_name
               FROM chunks c JOIN imports i ON i.id = c.import_id JOIN import_files f ON f.id = c.file_id
              WHERE c.id = $1",
        )
        .bind(chunk_id)
        .fetch_optional(conn)
        .await?)
    }

    /// "rows 1–5000" or "row 7".
    fn range(&self) -> String {
        let first = self.numbers.iter().copied().min().unwrap_or_default();
        let last = self.numbers.iter().copied().max().unwrap_or_default();
        if self.numbers.len() > 1 {
            format!("rows {first}–{last}")
        } else {
            format!("row {first}")
        }
    }
}

/// Gives up on a chunk that cannot be loaded: it failed permanently (its
/// stored bytes are gone or unreadable) or failed for a transient reason
/// past the retry limit. The attempt is recorded in `chunk_failures`; then,
/// by the import's policy, the import fails (and is rolled back) or the
/// chunk's rows are recorded as failed rows and the import continues. All in
/// one transaction behind the organization's write fence.
pub async fn give_up_chunk(
    conn: &mut PgConnection,
    chunk_id: i64,
    public_reason: &str,
    failure: &NewFailure,
    statement_timeout: Option<std::time::Duration>,
) -> Result<GaveUp, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    if let Some(limit) = statement_timeout {
        turn::set_statement_timeout(&mut tx, limit).await?;
    }
    let Some(chunk) = GivenUp::read(&mut tx, chunk_id).await? else {
        return Ok(GaveUp::Nothing(ChunkOutcome::Gone));
    };
    // The same fence as a write: the failure lands between two chunk writes.
    locks::write_fence(&mut tx, chunk.organization_id).await?;
    if let turn::Turn::Settled(outcome) =
        turn::claim(&mut tx, chunk_id, chunk.organization_id).await?
    {
        tx.commit().await?;
        return Ok(GaveUp::Nothing(outcome));
    }
    sqlx::query(
        "UPDATE chunks SET state = $2, attempts = attempts + 1, not_before = NULL,
                rows_failed = row_count, finished_at = clock_timestamp()
          WHERE id = $1",
    )
    .bind(chunk_id)
    .bind(ChunkState::Failed)
    .execute(&mut *tx)
    .await?;
    failures::insert(&mut tx, failure).await?;
    crate::dead_letters::record(&mut tx, chunk_id).await?;
    let rows = chunk.numbers.len() as i64;
    let counts = ChunkCounts {
        processed: rows,
        failed: rows,
        ..ChunkCounts::default()
    };
    let outcome = match chunk.policy {
        FailurePolicy::StopOnFirstError => {
            progress::add_file_progress(&mut tx, chunk.file_id, &counts, true).await?;
            fail_for_chunk(&mut tx, &chunk, public_reason).await?;
            GaveUp::ImportFailed
        }
        FailurePolicy::ImportValidRows => {
            let reason = format!(
                "not loaded: the chunk of {} failed after {} attempts: {public_reason}",
                chunk.range(),
                failure.attempt
            );
            not_loaded(&mut tx, &chunk, chunk_id, &reason).await?;
            progress::add_file_progress(&mut tx, chunk.file_id, &counts, false).await?;
            let now = Utc::now();
            progress::settle_import(
                &mut tx,
                chunk.import_id,
                chunk.policy,
                now,
                &failure.worker_host,
            )
            .await?;
            GaveUp::RowsFailed(rows)
        }
    };
    timeline::notify(&mut tx, chunk.import_id).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// Ends an all-or-nothing import whose chunk could not be loaded.
async fn fail_for_chunk(
    conn: &mut PgConnection,
    chunk: &GivenUp,
    public_reason: &str,
) -> Result<(), StoreError> {
    let error = json!({
        "reason": "CHUNK_FAILED",
        "message": format!("{}: {} could not be loaded: {public_reason}", chunk.file_name, chunk.range()),
        "file_id": chunk.file_id,
        "file_name": chunk.file_name,
    });
    end_import(
        conn,
        Ending {
            import_id: chunk.import_id,
            policy: chunk.policy,
            how: How::Failed(error),
            first_start: Some(Utc::now()),
        },
    )
    .await
}

/// Records every row of a chunk given up as a `not_loaded` row error.
async fn not_loaded(
    conn: &mut PgConnection,
    chunk: &GivenUp,
    chunk_id: i64,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO row_errors (import_id, file_id, chunk_id, row_number, column_name, value, reason, kind, attempt)
         SELECT $1, $2, $3, r, '', '', $4, $5, $7 FROM UNNEST($6::bigint[]) AS r",
    )
    .bind(chunk.import_id)
    .bind(chunk.file_id)
    .bind(chunk_id)
    .bind(reason)
    .bind(FindingKind::NotLoaded.as_str())
    .bind(&chunk.numbers)
    .bind(chunk.attempt)
    .execute(conn)
    .await?;
    Ok(())
}
