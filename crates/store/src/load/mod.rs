//! The fenced chunk write: one transaction per chunk that takes the
//! organization's write fence, checks it is the chunk's turn, COPYs the valid
//! rows (new keys straight into the target table; existing keys staged and
//! merged), records row errors, marks the chunk done with its timestamps and
//! worker, moves the file and import on, notifies watchers — and commits.
//! A chunk delivered twice finds itself done and has no second effect; two
//! chunks of one organization never write at the same time, whatever the
//! broker does. Everything this transaction does is raw SQL: COPY needs the
//! raw connection, and the catalog shapes the target tables.

mod checks;
mod ending;
mod event_wire;
mod merge;
mod progress;
mod record_events;
mod target;
mod turn;
mod undo;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use passare_imports_domain::catalog::{self, ImportTypeDef};
use passare_imports_domain::chunk::ParsedChunk;
use passare_imports_domain::transform::{AppliedProfile, Bound};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::entities::{chunks, import_files, imports};
use crate::states::{ChunkState, FailurePolicy};
use crate::{StoreError, exec, timeline};

pub use checks::{StoredSum, check_against_stored, reference_index, stored_sums};
pub use ending::{GaveUp, Stopped, fail_draft, give_up_chunk, stop_import};
pub use target::{Merged, Target, compare_with_stored};
pub use undo::{
    RollbackStep, forget as forget_before_images, imaged_columns, roll_back_batch, undo_table,
};

/// A chunk with the file and import it belongs to.
#[derive(Debug, Clone)]
pub struct ChunkJob {
    pub chunk: chunks::Model,
    pub file: import_files::Model,
    pub import: imports::Model,
    pub def: &'static ImportTypeDef,
    /// Canonical column of each field of the file's records.
    pub mapping: Vec<Option<&'static str>>,
    pub delimiter: u8,
    /// The transform rules of the file's profile, bound to its header.
    pub rules: Option<Bound>,
}

impl ChunkJob {
    /// The stored object the chunk's byte range points into: a retry's own
    /// file, else the file's UTF-8 data (its conversion, or the original).
    pub fn data_key(&self) -> &str {
        self.chunk
            .data_key
            .as_deref()
            .or(self.file.data_key.as_deref())
            .unwrap_or(&self.file.storage_key)
    }

    /// The original row number of each record of a retry chunk.
    pub fn row_numbers(&self) -> Option<Vec<u64>> {
        self.chunk
            .row_numbers
            .as_ref()
            .map(|rows| rows.iter().map(|r| (*r).max(0) as u64).collect())
    }

    pub fn policy(&self) -> FailurePolicy {
        self.import.failure_policy
    }
}

/// How a stored file is read, built once per file: its headers, the
/// explicit header mapping (the upload request's entries, then its
/// profile's for headers the request did not map), the profile version it
/// is read with, the canonical column of each header, and the profile's
/// transform rules compiled and bound to the header.
pub struct FileReading {
    pub headers: Vec<String>,
    pub explicit: Vec<(String, String)>,
    pub profile: Option<AppliedProfile>,
    pub mapping: Vec<Option<&'static str>>,
    pub rules: Option<Bound>,
}

impl FileReading {
    pub fn of(def: &'static ImportTypeDef, file: &import_files::Model) -> Result<Self, StoreError> {
        let headers = file_headers(file)?;
        let profile = file_profile(file)?;
        let explicit = merged_mapping(file, profile.as_ref())?;
        let mapping = def.map_headers_with(&headers, &explicit).0;
        let rules = match &profile {
            Some(p) if !p.rules.is_empty() => {
                let program = p.program(def).map_err(|errors| {
                    let first = errors.first().map(ToString::to_string).unwrap_or_default();
                    StoreError::Corrupt(format!("rules of file {}: {first}", file.id))
                })?;
                Some(Arc::new(program).bind(&headers))
            }
            _ => None,
        };
        Ok(Self {
            headers,
            explicit,
            profile,
            mapping,
            rules,
        })
    }
}

/// The header mapping a file was uploaded with: its headers, matched by name
/// and alias, with the request's explicit mapping, then its profile's,
/// taking precedence (without compiling the profile's rules).
pub fn file_mapping(
    def: &ImportTypeDef,
    file: &import_files::Model,
) -> Result<Vec<Option<&'static str>>, StoreError> {
    let explicit = merged_mapping(file, file_profile(file)?.as_ref())?;
    Ok(def.map_headers_with(&file_headers(file)?, &explicit).0)
}

/// The file's headers as stored.
pub fn file_headers(file: &import_files::Model) -> Result<Vec<String>, StoreError> {
    serde_json::from_value(file.headers.clone())
        .map_err(|e| StoreError::Corrupt(format!("headers of file {}: {e}", file.id)))
}

/// The explicit header mapping of a file read with `profile`: the upload
/// request's entries, then the profile's for headers the request did not map.
fn merged_mapping(
    file: &import_files::Model,
    profile: Option<&AppliedProfile>,
) -> Result<Vec<(String, String)>, StoreError> {
    let request: Vec<(String, String)> = serde_json::from_value(file.column_mapping.clone())
        .map_err(|e| StoreError::Corrupt(format!("column mapping of file {}: {e}", file.id)))?;
    Ok(AppliedProfile::merge_mapping(profile, &request))
}

/// The profile version the file is read with.
pub fn file_profile(file: &import_files::Model) -> Result<Option<AppliedProfile>, StoreError> {
    file.profile
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("profile of file {}: {e}", file.id)))
}

/// The import type of a stored file.
pub fn file_type(file: &import_files::Model) -> Result<&'static ImportTypeDef, StoreError> {
    catalog::find(&file.import_type).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "file {} has unknown import type {}",
            file.id, file.import_type
        ))
    })
}

/// Loads what a worker needs to process a chunk; `None` when the chunk does not
/// exist (its import was never queued, or was deleted).
pub async fn load_job(
    conn: &mut PgConnection,
    chunk_id: i64,
) -> Result<Option<ChunkJob>, StoreError> {
    use sea_orm::EntityTrait;
    let Some(chunk) = exec::one(conn, chunks::Entity::find_by_id(chunk_id)).await? else {
        return Ok(None);
    };
    let file = exec::one(conn, import_files::Entity::find_by_id(chunk.file_id))
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("chunk {chunk_id} has no file")))?;
    let import = exec::one(conn, imports::Entity::find_by_id(chunk.import_id))
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("chunk {chunk_id} has no import")))?;
    let def = file_type(&file)?;
    let FileReading { mapping, rules, .. } = FileReading::of(def, &file)?;
    let delimiter = file.delimiter.bytes().next().unwrap_or(b',');
    Ok(Some(ChunkJob {
        chunk,
        file,
        import,
        def,
        mapping,
        delimiter,
        rules,
    }))
}

/// Row counts of one written chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkCounts {
    pub processed: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub failed: i64,
    /// Rows older than the stored record (`source_updated_at`), not written.
    pub stale: i64,
}

/// What became of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Rows written (some may have failed under IMPORT_VALID_ROWS).
    Written(ChunkCounts),
    /// A row failed under STOP_ON_FIRST_ERROR: nothing of the chunk was written
    /// and the import failed.
    FailedImport(ChunkCounts),
    /// The chunk was already done: a redelivery.
    AlreadyDone,
    /// The import ended before this chunk ran; the chunk is marked skipped.
    Skipped,
    /// The chunk does not exist.
    Gone,
    /// An earlier chunk of the organization is still pending; try later.
    NotYourTurn,
}

/// The parsed rows of a chunk and who processed them.
pub struct ChunkWrite<'a> {
    pub job: &'a ChunkJob,
    /// The parsed chunk; the write fails the rows that repeat a key of the
    /// import in it, as the row errors it records.
    pub parsed: &'a mut ParsedChunk,
    /// When the worker took the chunk from the queue.
    pub started_at: DateTime<Utc>,
    pub worker: &'a str,
    /// Longest any statement of the write may take, lock waits included.
    pub statement_timeout: Option<std::time::Duration>,
    /// With the raw archive on: how long after the commit the archive runner
    /// may take the chunk if its writer has not archived it by then.
    pub archive_after: Option<std::time::Duration>,
    /// Whether the write adds record events to the outbox.
    pub record_events: bool,
}

/// Target columns written for each row, in COPY order after `organization_id`.
pub fn written_columns(def: &ImportTypeDef) -> Vec<&'static str> {
    def.columns
        .iter()
        .filter_map(|c| c.target)
        .chain(def.references.iter().filter_map(|r| r.store_id_as))
        .collect()
}

/// `columns` qualified by the table alias `alias`, comma-separated
/// (`t.a, t.b`): the dynamic statements' column lists.
pub(super) fn qualified(alias: &str, columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The condition that the rows aliased `left` and `right` hold the same
/// `keys` (`t.k = s.k AND …`).
pub(super) fn same_keys(keys: &[&str], left: &str, right: &str) -> String {
    keys.iter()
        .map(|k| format!("{left}.{k} = {right}.{k}"))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// SQL type a key column's text is cast to.
pub fn sql_type(def: &ImportTypeDef, column: &str) -> &'static str {
    def.column(column).map_or("text", |c| c.kind.sql_type())
}

/// Writes a chunk; see the module documentation. The connection's buffers,
/// grown to the chunk's COPY data and record events (megabytes, more with
/// larger chunks), are given back afterwards: a pooled connection would
/// otherwise keep its largest chunk's buffers for good, each of them.
pub async fn write_chunk(
    conn: &mut PgConnection,
    w: ChunkWrite<'_>,
) -> Result<ChunkOutcome, StoreError> {
    let written = write_fenced(conn, w).await;
    sqlx::Connection::shrink_buffers(conn);
    written
}

async fn write_fenced(
    conn: &mut PgConnection,
    w: ChunkWrite<'_>,
) -> Result<ChunkOutcome, StoreError> {
    let job = w.job;
    let org = job.import.organization_id;
    let processed = w.parsed.batch.num_rows() as i64;
    let mut steps = Steps::start();
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    turn::prepare(&mut tx, w.statement_timeout).await?;
    crate::locks::write_fence(&mut tx, org).await?;
    if let turn::Turn::Settled(outcome) = turn::claim(&mut tx, job.chunk.id, org).await? {
        tx.commit().await?;
        return Ok(outcome);
    }
    let write_started: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *tx)
        .await?;
    steps.lap(Step::Turn);
    let stops = |parsed: &ParsedChunk| {
        job.policy() == FailurePolicy::StopOnFirstError && parsed.failed_rows() > 0
    };
    // One key lookup, behind the fence: it fails the rows repeating a key of
    // the import and sorts the others for the merge.
    let plan = match stops(w.parsed) {
        true => None,
        false => merge::plan(&mut tx, job, w.parsed).await?,
    };
    steps.lap(Step::Lookup);
    let stop = stops(w.parsed);
    let failed = w.parsed.failed_rows() as i64;
    // The created events are built while the rows are written, for the rows
    // the lookup found new (none on an unchanged re-import).
    let prepared = match (&plan, w.record_events && !stop) {
        (Some(plan), true) => Some(record_events::prepare(job, w.parsed, plan.new_rows())),
        _ => None,
    };
    progress::insert_row_errors(&mut tx, job, &w.parsed.problems).await?;
    steps.lap(Step::Errors);
    let mut counts = ChunkCounts {
        processed,
        failed,
        ..ChunkCounts::default()
    };
    if let (false, Some(plan)) = (stop, plan) {
        let merged = merge::apply(&mut tx, job, plan, w.record_events).await?;
        counts.created = merged.created;
        counts.updated = merged.updated;
        counts.stale = merged.stale;
        counts.unchanged = processed - failed - merged.created - merged.updated - merged.stale;
        steps.lap(Step::Rows);
        if let Some(prepared) = prepared {
            add_events(&mut tx, job, w.parsed, merged, prepared).await?;
        }
        steps.lap(Step::Events);
    }
    let state = if stop {
        ChunkState::Failed
    } else {
        ChunkState::Done
    };
    let timing = progress::ChunkTiming {
        worker: w.worker,
        started_at: w.started_at,
        write_started_at: write_started,
    };
    progress::settle_chunk(&mut tx, job.chunk.id, state, &counts, &timing).await?;
    progress::add_file_progress(&mut tx, job.file.id, &counts, stop).await?;
    if let (false, Some(after)) = (stop, w.archive_after) {
        crate::archive::due(&mut tx, job.chunk.id, job.file.id, after).await?;
    }
    if stop {
        fail_import(&mut tx, job, w).await?;
    } else {
        progress::settle_import(&mut tx, job.import.id, job.policy(), w.started_at, w.worker)
            .await?;
    }
    timeline::notify(&mut tx, job.import.id).await?;
    steps.lap(Step::Settle);
    tx.commit().await?;
    steps.lap(Step::Commit);
    steps.log(job);
    Ok(if stop {
        ChunkOutcome::FailedImport(counts)
    } else {
        ChunkOutcome::Written(counts)
    })
}

/// The steps of a chunk's write, timed for the debug log "chunk written".
#[derive(Clone, Copy)]
enum Step {
    /// Begin, statement timeout, the write fence and the chunk's turn.
    Turn,
    /// The stored keys of the chunk's rows.
    Lookup,
    /// The row errors.
    Errors,
    /// COPY of new rows, and the update of changed ones.
    Rows,
    /// The record events (waiting for the created ones being built).
    Events,
    /// The chunk, file and import's progress, and the watchers' notice.
    Settle,
    Commit,
}

/// Milliseconds each [`Step`] of a chunk's write took.
struct Steps {
    last: std::time::Instant,
    ms: [u64; 7],
}

impl Steps {
    fn start() -> Self {
        Self {
            last: std::time::Instant::now(),
            ms: [0; 7],
        }
    }

    /// Ends `step`: the time since the last step ended is its.
    fn lap(&mut self, step: Step) {
        let now = std::time::Instant::now();
        self.ms[step as usize] += (now - self.last).as_millis() as u64;
        self.last = now;
    }

    fn log(&self, job: &ChunkJob) {
        let [turn, lookup, errors, rows, events, settle, commit] = self.ms;
        tracing::debug!(
            import_id = %job.import.id, chunk = job.chunk.seq,
            turn_ms = turn, lookup_ms = lookup, errors_ms = errors, rows_ms = rows,
            events_ms = events, settle_ms = settle, commit_ms = commit,
            "chunk written"
        );
    }
}

/// Adds the events of what `merged` wrote to the outbox: the created ones
/// from what was `prepared` (the new rows'), the updated ones built now.
async fn add_events(
    conn: &mut PgConnection,
    job: &ChunkJob,
    parsed: &ParsedChunk,
    merged: Merged,
    prepared: tokio::task::JoinHandle<record_events::Prepared>,
) -> Result<(), StoreError> {
    let prepared = match prepared.await {
        Ok(prepared) => prepared,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => return Err(StoreError::Corrupt(format!("record events not built: {e}"))),
    };
    let (created, updated) = (merged.created_rows, merged.updated_rows);
    let batches = record_events::stored(job, parsed, prepared, created, updated).await?;
    crate::events::record(conn, record_events::source(job), batches).await
}

/// Ends an all-or-nothing import at its first failing row, naming it.
async fn fail_import(
    conn: &mut PgConnection,
    job: &ChunkJob,
    w: ChunkWrite<'_>,
) -> Result<(), StoreError> {
    let first = w.parsed.problems.iter().min_by_key(|p| p.row);
    let message = match first {
        Some(p) => format!(
            "{} row {}: {}{}",
            job.file.file_name,
            p.row,
            if p.column.is_empty() {
                String::new()
            } else {
                format!("{} ", p.column)
            },
            p.reason
        ),
        None => format!("{}: a row failed", job.file.file_name),
    };
    let error = json!({
        "reason": "ROW_FAILED",
        "message": message,
        "file_id": job.file.id,
        "file_name": job.file.file_name,
        "problem": first,
    });
    ending::end_import(
        conn,
        ending::Ending {
            import_id: job.import.id,
            policy: job.policy(),
            how: ending::How::Failed(error),
            first_start: Some(w.started_at),
        },
    )
    .await
}

/// The import a chunk belongs to, for callers that only know the chunk.
pub async fn import_of_chunk(
    conn: &mut PgConnection,
    chunk_id: i64,
) -> Result<Option<Uuid>, StoreError> {
    use sea_orm::EntityTrait;
    Ok(exec::one(conn, chunks::Entity::find_by_id(chunk_id))
        .await?
        .map(|c| c.import_id))
}
