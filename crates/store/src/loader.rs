//! Writes one chunk: COPY of its valid rows into a staging table, reference
//! resolution, a merge into the target table keyed by the type's natural key,
//! the chunk's row errors, its done mark and the file and import progress —
//! all in one transaction that holds the organization's write fence. A chunk
//! delivered twice finds itself done and has no second effect; two chunks of
//! one organization never write at the same time, whatever the broker does.

use chrono::{DateTime, Utc};
use passare_imports_domain::catalog::{self, ImportTypeDef};
use std::collections::HashSet;

use passare_imports_domain::FindingKind;
use passare_imports_domain::catalog::{RefTarget, ReferenceDef, RowCheck};
use passare_imports_domain::chunk::{
    ParsedChunk, ROW_COLUMN, RefHit, ReferenceIndex, ReferenceLookup,
};
use passare_imports_domain::copy::{Constant, encode_copy_binary};
use passare_imports_domain::{FailurePolicy, FileState, ImportState, RowProblem};
use sea_orm::EntityTrait;
use serde_json::json;
// Every dynamic SQL string below is assembled from the compiled catalog's
// table and column names (never from a request or a file) plus bind parameters.
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use crate::entities::{chunks, import_files, imports};
use crate::{Db, EVENTS_CHANNEL, StoreError, control, failures, history};

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
    pub policy: FailurePolicy,
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
}

/// The header mapping a file was uploaded with: its headers, matched by name
/// and alias, with the request's explicit mapping taking precedence.
pub fn file_mapping(
    def: &ImportTypeDef,
    file: &import_files::Model,
) -> Result<Vec<Option<&'static str>>, StoreError> {
    let headers: Vec<String> = serde_json::from_value(file.headers.clone())
        .map_err(|e| StoreError::Corrupt(format!("headers of file {}: {e}", file.id)))?;
    let explicit: Vec<(String, String)> = serde_json::from_value(file.column_mapping.clone())
        .map_err(|e| StoreError::Corrupt(format!("column mapping of file {}: {e}", file.id)))?;
    Ok(def.map_headers_with(&headers, &explicit).0)
}

/// Loads what a worker needs to process a chunk; `None` when the chunk does not
/// exist (its import was never queued, or was deleted).
pub async fn load_job(db: &Db, chunk_id: i64) -> Result<Option<ChunkJob>, StoreError> {
    let Some(chunk) = chunks::Entity::find_by_id(chunk_id).one(db.orm()).await? else {
        return Ok(None);
    };
    let file = import_files::Entity::find_by_id(chunk.file_id)
        .one(db.orm())
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("chunk {chunk_id} has no file")))?;
    let import = imports::Entity::find_by_id(chunk.import_id)
        .one(db.orm())
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("chunk {chunk_id} has no import")))?;
    let def = catalog::find(&file.import_type).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "file {} has unknown import type {}",
            file.id, file.import_type
        ))
    })?;
    let mapping = file_mapping(def, &file)?;
    let delimiter = file.delimiter.bytes().next().unwrap_or(b',');
    let policy = FailurePolicy::parse(&import.failure_policy).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "import {} has policy {}",
            import.id, import.failure_policy
        ))
    })?;
    Ok(Some(ChunkJob {
        chunk,
        file,
        import,
        def,
        mapping,
        delimiter,
        policy,
    }))
}

/// The organization's next chunk to load: the first still queued in the order
/// imports were started, files were added and chunks were cut, with the time
/// before which it must not be tried (after a transient failure). Workers
/// load this one whatever message woke them, so order never depends on the
/// broker.
pub async fn next_pending_chunk(
    db: &Db,
    organization_id: i64,
) -> Result<Option<(i64, Option<DateTime<Utc>>)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT c.id, c.not_before FROM chunks c
           JOIN imports i ON i.id = c.import_id
           JOIN import_files f ON f.id = c.file_id
          WHERE c.organization_id = $1 AND c.state = 'queued'
          ORDER BY i.queue_seq, f.load_order, f.position, c.seq
          LIMIT 1",
    )
    .bind(organization_id)
    .fetch_optional(db.pool())
    .await?)
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
    pub parsed: &'a ParsedChunk,
    /// When the worker took the chunk from the queue.
    pub started_at: DateTime<Utc>,
    pub worker: &'a str,
    /// Longest any statement of the write may take, lock waits included.
    pub statement_timeout: Option<std::time::Duration>,
}

const STAGE: &str = "passare_stage";

/// Looks up the records the chunk's references name, one query per
/// reference: setup by its matched column ignoring case, other types' records
/// by their key, with the columns the reference must agree with.
pub async fn reference_index(
    conn: &mut PgConnection,
    organization_id: i64,
    def: &ImportTypeDef,
    parsed: &ParsedChunk,
) -> Result<ReferenceIndex, StoreError> {
    let mut index = ReferenceIndex::default();
    for (r, values) in def.references.iter().zip(parsed.reference_values(def)) {
        if values.is_empty() {
            continue;
        }
        let sql = match r.target {
            RefTarget::Setup {
                table,
                match_column,
            } => format!(
                "SELECT id, lower({match_column}) AS value FROM {table}
                  WHERE organization_id = $1 AND lower({match_column}) = ANY($2)"
            ),
            RefTarget::Records { type_key } => {
                let target = catalog::find(type_key).ok_or_else(|| {
                    StoreError::Corrupt(format!("{} refers to unknown type {type_key}", def.key))
                })?;
                let key = target.key_columns.first().copied().unwrap_or("id");
                let agrees: String = r
                    .agrees
                    .iter()
                    .map(|(_, theirs)| format!(", {theirs}::text"))
                    .collect();
                format!(
                    "SELECT NULL::bigint AS id, {key} AS value{agrees} FROM {table}
                      WHERE organization_id = $1 AND {key} = ANY($2)",
                    table = target.target_table
                )
            }
        };
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(&values)
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            let agrees = (0..r.agrees.len())
                .map(|j| row.try_get::<Option<String>, _>(2 + j))
                .collect::<Result<Vec<_>, _>>()?;
            index.insert(
                r,
                &row.try_get::<String, _>("value")?,
                RefHit {
                    id: row.try_get("id")?,
                    agrees,
                },
            );
        }
    }
    Ok(index)
}

/// Finishes a parsed chunk against what the organization has stored:
/// resolves its references (in the database, else through `earlier`, the
/// records of earlier files of the same import), fails repeated keys and
/// flags, and checks flags against stored records.
pub async fn check_against_stored(
    db: &Db,
    organization_id: i64,
    def: &ImportTypeDef,
    parsed: &mut ParsedChunk,
    earlier: Option<&dyn ReferenceLookup>,
) -> Result<(), StoreError> {
    let mut conn = db.pool().acquire().await?;
    let index = reference_index(&mut conn, organization_id, def, parsed).await?;
    struct Either<'a>(ReferenceIndex, Option<&'a dyn ReferenceLookup>);
    impl ReferenceLookup for Either<'_> {
        fn find(&self, r: &ReferenceDef, value: &str) -> Option<RefHit> {
            self.0
                .find(r, value)
                .or_else(|| self.1.and_then(|e| e.find(r, value)))
        }
    }
    parsed
        .finish(def, &Either(index, earlier))
        .map_err(|e| StoreError::Corrupt(format!("finishing a parsed chunk: {e}")))?;
    check_stored_flags(&mut conn, organization_id, def, parsed).await
}

/// Fails the rows whose key an earlier chunk or file of the same import
/// already wrote: a key repeated within an import is a duplicate (as the
/// analysis reports it), never a silent overwrite of the earlier row.
pub async fn check_repeated_in_import(
    db: &Db,
    target: Target<'_>,
    parsed: &mut ParsedChunk,
) -> Result<(), StoreError> {
    let rows: Vec<usize> = (0..parsed.batch.num_rows())
        .filter(|i| parsed.valid[*i])
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let mut conn = db.pool().acquire().await?;
    // When no stored key of the organization falls within the chunk's key
    // range (the common case while onboarding), no key can repeat one the
    // import wrote: skip the join of every key.
    let first_key = target.def.key_columns.first().copied().unwrap_or_default();
    let first_values: Vec<Option<String>> =
        rows.iter().map(|i| parsed.text(first_key, *i)).collect();
    if !keys_in_range(&mut conn, target, first_key, &first_values).await? {
        return Ok(());
    }
    let found = key_matches(&mut conn, target, parsed, &rows, true).await?;
    let def = target.def;
    for (i, file, row) in found {
        let Some(key) = parsed.key(def, i) else {
            continue;
        };
        let (kind, reason) = if file == Some(target.file_id) {
            (
                FindingKind::DuplicateInFile,
                format!(
                    "duplicate key: the same key is already at row {}",
                    row.unwrap_or_default()
                ),
            )
        } else {
            (
                FindingKind::DuplicateInRequest,
                format!(
                    "duplicate key: the same key was loaded from row {} of an earlier file of this import",
                    row.unwrap_or_default()
                ),
            )
        };
        parsed.fail(
            i,
            kind,
            &def.key_columns.join("+"),
            passare_imports_domain::excerpt(&key.join("+")),
            reason,
        );
    }
    Ok(())
}

/// Fails the rows that would give a group a second flagged record (a second
/// next of kin of a case) next to one already stored under another key.
pub async fn check_stored_flags(
    conn: &mut PgConnection,
    organization_id: i64,
    def: &ImportTypeDef,
    parsed: &mut ParsedChunk,
) -> Result<(), StoreError> {
    for check in def.row_checks {
        let RowCheck::OneFlaggedPer { group, flag } = *check else {
            continue;
        };
        let flagged: Vec<usize> = (0..parsed.batch.num_rows())
            .filter(|i| parsed.valid[*i] && parsed.text(flag, *i).as_deref() == Some("true"))
            .collect();
        let groups: Vec<String> = flagged
            .iter()
            .filter_map(|i| parsed.text(group, *i))
            .collect();
        if groups.is_empty() {
            continue;
        }
        let key = def
            .key_columns
            .iter()
            .map(|k| format!("{k}::text"))
            .collect::<Vec<_>>()
            .join(" || '+' || ");
        let sql = format!(
            "SELECT {group} AS g, {key} AS k FROM {table}
              WHERE organization_id = $1 AND {flag} AND {group} = ANY($2)",
            table = def.target_table
        );
        let stored: Vec<(String, String)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(&groups)
            .fetch_all(&mut *conn)
            .await?;
        for i in flagged {
            let (Some(g), Some(k)) = (parsed.text(group, i), parsed.key(def, i)) else {
                continue;
            };
            let k = k.join("+");
            if let Some((_, other)) = stored.iter().find(|(sg, sk)| *sg == g && *sk != k) {
                parsed.fail(
                    i,
                    FindingKind::Constraint,
                    flag,
                    "true".into(),
                    format!("{group} {g:?} already has {flag}: {other}"),
                );
            }
        }
    }
    Ok(())
}

/// Target columns written for each row, in COPY order after `organization_id`.
pub fn written_columns(def: &ImportTypeDef) -> Vec<&'static str> {
    def.columns
        .iter()
        .filter_map(|c| c.target)
        .chain(def.references.iter().filter_map(|r| r.store_id_as))
        .collect()
}

/// Writes a chunk; see the module documentation.
pub async fn write_chunk(db: &Db, w: ChunkWrite<'_>) -> Result<ChunkOutcome, StoreError> {
    let job = w.job;
    let org = job.import.organization_id;
    let mut tx = db.pool().begin().await?;
    // Key lookups and updates touch a few thousand rows of a table that may
    // have grown by millions since its statistics were taken: probe the
    // primary key row by row rather than trust a stale estimate into a hash
    // join over the organization's whole table.
    sqlx::raw_sql("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
        .execute(&mut *tx)
        .await?;
    if let Some(limit) = w.statement_timeout {
        set_statement_timeout(&mut tx, limit).await?;
    }
    take_write_fence(&mut tx, org).await?;
    if let Turn::Settled(outcome) = claim_turn(&mut tx, job.chunk.id, org).await? {
        tx.commit().await?;
        return Ok(outcome);
    }

    let write_started: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *tx)
        .await?;
    let problems = &w.parsed.problems;
    insert_row_errors(&mut tx, job, problems).await?;

    let processed = w.parsed.batch.num_rows() as i64;
    let failed = w.parsed.failed_rows() as i64;
    let stop = job.policy == FailurePolicy::StopOnFirstError && failed > 0;
    let mut counts = ChunkCounts {
        processed,
        failed,
        ..ChunkCounts::default()
    };
    if !stop {
        let merged = merge(&mut tx, job, w.parsed).await?;
        counts.created = merged.created;
        counts.updated = merged.updated;
        counts.stale = merged.stale;
        counts.unchanged = processed - failed - merged.created - merged.updated - merged.stale;
    }

    sqlx::query(
        "UPDATE chunks SET state = $2, attempts = attempts + 1, worker = $3,
                rows_created = $4, rows_updated = $5, rows_unchanged = $6, rows_failed = $7,
                rows_stale = $10, started_at = $8, write_started_at = $9,
                finished_at = clock_timestamp()
          WHERE id = $1",
    )
    .bind(job.chunk.id)
    .bind(if stop { "failed" } else { "done" })
    .bind(w.worker)
    .bind(counts.created)
    .bind(counts.updated)
    .bind(counts.unchanged)
    .bind(counts.failed)
    .bind(w.started_at)
    .bind(write_started)
    .bind(counts.stale)
    .execute(&mut *tx)
    .await?;
    add_file_progress(&mut tx, job.file.id, &counts, stop).await?;

    if stop {
        let first = problems.iter().min_by_key(|p| p.row);
        let error = json!({
            "reason": "ROW_FAILED",
            "message": match first {
                Some(p) => format!(
                    "{} row {}: {}{}",
                    job.file.file_name,
                    p.row,
                    if p.column.is_empty() { String::new() } else { format!("{} ", p.column) },
                    p.reason
                ),
                None => format!("{}: a row failed", job.file.file_name),
            },
            "file_id": job.file.id,
            "file_name": job.file.file_name,
            "problem": first,
        });
        control::end_import(
            &mut tx,
            control::Ending {
                import_id: job.import.id,
                organization_id: org,
                policy: job.policy,
                how: control::How::Failed(error),
                first_start: Some(w.started_at),
            },
        )
        .await?;
    } else {
        settle_import(&mut tx, job.import.id, job.policy, w.started_at, w.worker).await?;
    }
    notify(&mut tx, job.import.id).await?;
    tx.commit().await?;
    Ok(if stop {
        ChunkOutcome::FailedImport(counts)
    } else {
        ChunkOutcome::Written(counts)
    })
}

/// Limits every statement of the transaction (lock waits included), so a
/// write stuck behind a lock fails as a retryable timeout instead of holding
/// the organization for ever.
async fn set_statement_timeout(
    conn: &mut PgConnection,
    limit: std::time::Duration,
) -> Result<(), StoreError> {
    sqlx::query("SELECT set_config('statement_timeout', $1, true)")
        .bind(format!("{}ms", limit.as_millis().max(1)))
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether a chunk may be written now, decided behind the organization's
/// write fence.
enum Turn {
    Go,
    /// Nothing to write; commit and report this.
    Settled(ChunkOutcome),
}

/// Locks the chunk and checks that it is still queued, that its import has
/// not ended (if it has, the chunk is marked skipped) and that no earlier
/// chunk of the organization is pending.
async fn claim_turn(conn: &mut PgConnection, chunk_id: i64, org: i64) -> Result<Turn, StoreError> {
    let Some(row) = sqlx::query(
        "SELECT c.state, c.seq, i.state AS import_state, i.queue_seq, f.load_order, f.position
           FROM chunks c JOIN imports i ON i.id = c.import_id JOIN import_files f ON f.id = c.file_id
          WHERE c.id = $1 FOR UPDATE OF c",
    )
    .bind(chunk_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(Turn::Settled(ChunkOutcome::Gone));
    };
    let chunk_state: String = row.try_get("state")?;
    let import_state: String = row.try_get("import_state")?;
    let queue_seq: Option<i64> = row.try_get("queue_seq")?;
    let seq: i32 = row.try_get("seq")?;
    let position: i32 = row.try_get("position")?;
    let load_order: i32 = row.try_get("load_order")?;
    if chunk_state != "queued" {
        return Ok(Turn::Settled(ChunkOutcome::AlreadyDone));
    }
    if ImportState::parse(&import_state).is_none_or(ImportState::is_terminal) {
        sqlx::query(
            "UPDATE chunks SET state = 'skipped', finished_at = clock_timestamp() WHERE id = $1",
        )
        .bind(chunk_id)
        .execute(&mut *conn)
        .await?;
        return Ok(Turn::Settled(ChunkOutcome::Skipped));
    }
    let earlier_pending: bool = sqlx::query_scalar(
        "SELECT EXISTS (
            SELECT 1 FROM chunks c
              JOIN imports i ON i.id = c.import_id
              JOIN import_files f ON f.id = c.file_id
             WHERE c.organization_id = $1 AND c.state = 'queued' AND c.id <> $2
               AND (i.queue_seq, f.load_order, f.position, c.seq) < ($3, $6, $4, $5))",
    )
    .bind(org)
    .bind(chunk_id)
    .bind(queue_seq.unwrap_or(i64::MAX))
    .bind(position)
    .bind(seq)
    .bind(load_order)
    .fetch_one(&mut *conn)
    .await?;
    Ok(if earlier_pending {
        Turn::Settled(ChunkOutcome::NotYourTurn)
    } else {
        Turn::Go
    })
}

/// Adds a settled chunk's counts to its file and moves the file's state on.
async fn add_file_progress(
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
                    WHEN $7 THEN 'failed'
                    WHEN chunks_done + 1 >= chunks_total AND rows_failed + $6 > 0 THEN 'completed_with_errors'
                    WHEN chunks_done + 1 >= chunks_total THEN 'completed'
                    ELSE 'running' END,
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
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves a running import to the state its files now add up to, and adds
/// to its timeline when it started (its first chunk) or ended. An
/// all-or-nothing import that completes no longer needs its before-images.
async fn settle_import(
    conn: &mut PgConnection,
    import_id: Uuid,
    policy: FailurePolicy,
    first_start: DateTime<Utc>,
    worker: &str,
) -> Result<(), StoreError> {
    let next_state = import_state_after(&mut *conn, import_id).await?;
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
    .bind(next_state.as_str())
    .bind(first_start)
    .bind(next_state.is_terminal())
    .fetch_one(&mut *conn)
    .await?;
    if first {
        history::event(
            conn,
            import_id,
            "started",
            None,
            &format!("by worker {worker}"),
        )
        .await?;
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
        history::event(
            conn,
            import_id,
            next_state.as_str(),
            None,
            &format!("{done} rows imported, {failed} failed"),
        )
        .await?;
        if policy == FailurePolicy::StopOnFirstError {
            control::forget_undo(conn, import_id).await?;
        }
    }
    Ok(())
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

/// Gives up on a chunk that cannot be loaded: it failed permanently (its
/// stored bytes are gone or unreadable) or failed for a transient reason
/// past the retry limit. The attempt is recorded in `chunk_failures`; then,
/// by the import's policy, the import fails (and is rolled back) or the
/// chunk's rows are recorded as failed rows and the import continues. All in
/// one transaction behind the organization's write fence.
pub async fn give_up_chunk(
    db: &Db,
    chunk_id: i64,
    public_reason: &str,
    failure: &failures::NewFailure,
    statement_timeout: Option<std::time::Duration>,
) -> Result<GaveUp, StoreError> {
    let mut tx = db.pool().begin().await?;
    if let Some(limit) = statement_timeout {
        set_statement_timeout(&mut tx, limit).await?;
    }
    let Some(row) = sqlx::query(
        "SELECT c.organization_id, c.import_id, c.file_id, c.row_count, c.attempt,
                COALESCE(c.row_numbers, ARRAY(SELECT generate_series(c.first_row, c.first_row + c.row_count - 1))) AS rows,
                i.failure_policy, f.file_name
           FROM chunks c JOIN imports i ON i.id = c.import_id JOIN import_files f ON f.id = c.file_id
          WHERE c.id = $1",
    )
    .bind(chunk_id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(GaveUp::Nothing(ChunkOutcome::Gone));
    };
    let org: i64 = row.try_get("organization_id")?;
    let import_id: Uuid = row.try_get("import_id")?;
    let file_id: Uuid = row.try_get("file_id")?;
    let numbers: Vec<i64> = row.try_get("rows")?;
    let rows: i64 = row.try_get("row_count")?;
    let attempt: i32 = row.try_get("attempt")?;
    let first_row = numbers.iter().copied().min().unwrap_or_default();
    let last_row = numbers.iter().copied().max().unwrap_or_default();
    let file_name: String = row.try_get("file_name")?;
    let policy_name: String = row.try_get("failure_policy")?;
    let policy = FailurePolicy::parse(&policy_name).ok_or_else(|| {
        StoreError::Corrupt(format!("import {import_id} has policy {policy_name}"))
    })?;
    // The same fence as a write: the failure lands between two chunk writes.
    take_write_fence(&mut tx, org).await?;
    if let Turn::Settled(outcome) = claim_turn(&mut tx, chunk_id, org).await? {
        tx.commit().await?;
        return Ok(GaveUp::Nothing(outcome));
    }
    sqlx::query(
        "UPDATE chunks SET state = 'failed', attempts = attempts + 1, not_before = NULL,
                rows_failed = row_count, finished_at = clock_timestamp()
          WHERE id = $1",
    )
    .bind(chunk_id)
    .execute(&mut *tx)
    .await?;
    failures::insert(&mut tx, failure).await?;
    let range = if rows > 1 {
        format!("rows {first_row}–{last_row}")
    } else {
        format!("row {first_row}")
    };
    let counts = ChunkCounts {
        processed: rows,
        failed: rows,
        ..ChunkCounts::default()
    };
    let outcome = match policy {
        FailurePolicy::StopOnFirstError => {
            add_file_progress(&mut tx, file_id, &counts, true).await?;
            let error = json!({
                "reason": "CHUNK_FAILED",
                "message": format!("{file_name}: {range} could not be loaded: {public_reason}"),
                "file_id": file_id,
                "file_name": file_name,
            });
            control::end_import(
                &mut tx,
                control::Ending {
                    import_id,
                    organization_id: org,
                    policy,
                    how: control::How::Failed(error),
                    first_start: Some(Utc::now()),
                },
            )
            .await?;
            GaveUp::ImportFailed
        }
        FailurePolicy::ImportValidRows => {
            let reason = format!(
                "not loaded: the chunk of {range} failed after {} attempts: {public_reason}",
                failure.attempt
            );
            sqlx::query(
                "INSERT INTO row_errors (import_id, file_id, chunk_id, row_number, column_name, value, reason, kind, attempt)
                 SELECT $1, $2, $3, r, '', '', $4, $5, $7 FROM UNNEST($6::bigint[]) AS r",
            )
            .bind(import_id)
            .bind(file_id)
            .bind(chunk_id)
            .bind(&reason)
            .bind(FindingKind::NotLoaded.as_str())
            .bind(&numbers)
            .bind(attempt)
            .execute(&mut *tx)
            .await?;
            add_file_progress(&mut tx, file_id, &counts, false).await?;
            let now: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
                .fetch_one(&mut *tx)
                .await?;
            settle_import(&mut tx, import_id, policy, now, &failure.worker_host).await?;
            GaveUp::RowsFailed(rows)
        }
    };
    notify(&mut tx, import_id).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// The organization's write fence, held until the transaction ends.
pub(crate) async fn take_write_fence(conn: &mut PgConnection, org: i64) -> Result<(), StoreError> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('passare_imports.write:' || $1::text, 0))",
    )
    .bind(org)
    .execute(conn)
    .await?;
    Ok(())
}

/// Tells watchers the import changed, when the transaction commits.
pub(crate) async fn notify(conn: &mut PgConnection, import_id: Uuid) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(EVENTS_CHANNEL)
        .bind(import_id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// The import's state once its files' states are as stored.
async fn import_state_after(
    conn: &mut PgConnection,
    import_id: Uuid,
) -> Result<ImportState, StoreError> {
    let states: Vec<String> =
        sqlx::query_scalar("SELECT state FROM import_files WHERE import_id = $1")
            .bind(import_id)
            .fetch_all(conn)
            .await?;
    let parsed: Vec<FileState> = states.iter().filter_map(|s| FileState::parse(s)).collect();
    let finished = |s: &FileState| {
        matches!(
            s,
            FileState::Completed | FileState::CompletedWithErrors | FileState::Failed
        )
    };
    Ok(if !parsed.iter().all(finished) {
        ImportState::Running
    } else if parsed.contains(&FileState::Failed) {
        ImportState::Failed
    } else if parsed.contains(&FileState::CompletedWithErrors) {
        ImportState::CompletedWithErrors
    } else {
        ImportState::Completed
    })
}

async fn insert_row_errors(
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

/// Where a chunk's rows go: the type's table, rows of one organization,
/// written by one file of one import.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub def: &'a ImportTypeDef,
    pub organization_id: i64,
    pub import_id: Uuid,
    pub file_id: Uuid,
}

impl<'a> Target<'a> {
    pub fn of(job: &'a ChunkJob) -> Self {
        Self {
            def: job.def,
            organization_id: job.import.organization_id,
            import_id: job.import.id,
            file_id: job.file.id,
        }
    }

    /// Columns in COPY order: organization, the written columns, provenance.
    fn list(&self) -> String {
        format!(
            "organization_id, {}, source_row, source_import_id, source_file_id",
            written_columns(self.def).join(", ")
        )
    }

    /// Encodes `rows` of the batch as a binary COPY stream in [`Target::list`] order.
    fn encode(&self, batch: &arrow_array::RecordBatch, rows: &[usize], out: &mut Vec<u8>) {
        let mut encoded = written_columns(self.def);
        encoded.push(ROW_COLUMN);
        out.clear();
        encode_copy_binary(
            batch,
            &encoded,
            rows.iter().copied(),
            &[Constant::Int8(self.organization_id)],
            &[
                Constant::Uuid(*self.import_id.as_bytes()),
                Constant::Uuid(*self.file_id.as_bytes()),
            ],
            out,
        );
    }

    /// Copies `data` (from [`Target::encode`]) into a new temporary table of the
    /// target's shape, dropped at commit.
    async fn stage(&self, conn: &mut PgConnection, data: &[u8]) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TEMP TABLE {STAGE} ON COMMIT DROP AS SELECT {list} FROM {table} WITH NO DATA",
            list = self.list(),
            table = self.def.target_table
        )))
        .execute(&mut *conn)
        .await?;
        copy_in(
            conn,
            &format!("COPY {STAGE} ({}) FROM STDIN (FORMAT binary)", self.list()),
            data,
        )
        .await?;
        Ok(())
    }

    /// The compared columns (neither key nor `source_updated_at`) and the SQL
    /// conditions joining the target `t` to the stage `s`, telling rows that
    /// differ, and telling stale rows (older than the stored record).
    fn comparison(&self) -> Comparison {
        let keys = self.def.key_columns;
        let compared: Vec<&'static str> = written_columns(self.def)
            .into_iter()
            .filter(|c| !keys.contains(c) && *c != SOURCE_UPDATED_AT)
            .collect();
        let matched = keys
            .iter()
            .map(|k| format!("t.{k} = s.{k}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let differs = format!(
            "({}) IS DISTINCT FROM ({})",
            compared
                .iter()
                .map(|c| format!("t.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
            compared
                .iter()
                .map(|c| format!("s.{c}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let stale = if written_columns(self.def).contains(&SOURCE_UPDATED_AT) {
            "COALESCE(s.source_updated_at < t.source_updated_at, false)".to_string()
        } else {
            "false".to_string()
        };
        Comparison {
            compared,
            matched,
            differs,
            stale,
        }
    }
}

/// See [`Target::comparison`].
struct Comparison {
    compared: Vec<&'static str>,
    matched: String,
    differs: String,
    stale: String,
}

/// The column every type accepts for the source system's last-modified time.
const SOURCE_UPDATED_AT: &str = "source_updated_at";

/// What writing rows does (or would do) to the stored records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Merged {
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub stale: i64,
}

/// What writing a chunk would do, without writing it, among the valid rows.
/// Runs in its own transaction, which it rolls back.
pub async fn compare_with_stored(
    db: &Db,
    target: Target<'_>,
    parsed: &ParsedChunk,
) -> Result<Merged, StoreError> {
    let batch = &parsed.batch;
    let valid: Vec<usize> = (0..batch.num_rows()).filter(|i| parsed.valid[*i]).collect();
    if valid.is_empty() {
        return Ok(Merged::default());
    }
    let mut conn = db.pool().acquire().await?;
    let first_key = target.def.key_columns.first().copied().unwrap_or_default();
    let first_values: Vec<Option<String>> =
        valid.iter().map(|i| parsed.text(first_key, *i)).collect();
    if !keys_in_range(&mut conn, target, first_key, &first_values).await? {
        return Ok(Merged {
            created: valid.len() as i64,
            ..Merged::default()
        });
    }
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let mut data = Vec::with_capacity(valid.len() * 160);
    target.encode(batch, &valid, &mut data);
    target.stage(&mut tx, &data).await?;
    let c = target.comparison();
    let (existing, changed, stale): (i64, i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT count(*), count(*) FILTER (WHERE {differs} AND NOT {stale}), count(*) FILTER (WHERE {stale})
           FROM {STAGE} s JOIN {table} t ON t.organization_id = s.organization_id AND {matched}",
        differs = c.differs,
        stale = c.stale,
        matched = c.matched,
        table = target.def.target_table
    )))
    .fetch_one(&mut *tx)
    .await?;
    tx.rollback().await?;
    Ok(Merged {
        created: valid.len() as i64 - existing,
        updated: changed,
        unchanged: existing - changed - stale,
        stale,
    })
}

/// Writes the chunk's valid rows: keys new to the organization go straight
/// into the target table with COPY; rows whose key exists are staged and
/// updated where a value differs (identical rows are left alone, provenance
/// included; rows older than the stored record are stale and left alone
/// too). An all-or-nothing import first keeps a before-image of every record
/// it updates, so a failure or a stop can put it back. The organization's
/// write fence makes the split safe: no other transaction writes this
/// organization's rows meanwhile. `unchanged` is left for the caller.
async fn merge(
    conn: &mut PgConnection,
    job: &ChunkJob,
    parsed: &ParsedChunk,
) -> Result<Merged, StoreError> {
    let target = Target::of(job);
    let def = job.def;
    let batch = &parsed.batch;
    let valid: Vec<usize> = (0..batch.num_rows()).filter(|i| parsed.valid[*i]).collect();
    if valid.is_empty() {
        return Ok(Merged::default());
    }
    let copy_target = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        def.target_table,
        target.list()
    );
    let mut data = Vec::with_capacity(valid.len() * 160);
    let first_key = def.key_columns.first().copied().unwrap_or_default();
    let first_values: Vec<Option<String>> =
        valid.iter().map(|i| parsed.text(first_key, *i)).collect();
    let created_only = |created| Merged {
        created,
        ..Merged::default()
    };

    // The common case when onboarding a client: no key of the chunk exists
    // yet, and the rows go straight in with COPY. When no stored key even
    // falls within the chunk's key range, that is certain; otherwise COPY is
    // tried under a savepoint, and a key that does exist sends the chunk down
    // the careful path below.
    target.encode(batch, &valid, &mut data);
    if !keys_in_range(conn, target, first_key, &first_values).await? {
        return Ok(created_only(copy_in(conn, &copy_target, &data).await?));
    }
    sqlx::query("SAVEPOINT passare_copy")
        .execute(&mut *conn)
        .await?;
    match copy_in(conn, &copy_target, &data).await {
        Ok(created) => {
            sqlx::query("RELEASE SAVEPOINT passare_copy")
                .execute(&mut *conn)
                .await?;
            return Ok(created_only(created));
        }
        Err(StoreError::Sqlx(sqlx::Error::Database(e))) if e.code().as_deref() == Some("23505") => {
            sqlx::query("ROLLBACK TO SAVEPOINT passare_copy")
                .execute(&mut *conn)
                .await?;
        }
        Err(e) => return Err(e),
    }

    let existing = existing_rows(conn, target, parsed, &valid).await?;
    let (old, new): (Vec<usize>, Vec<usize>) =
        valid.iter().copied().partition(|i| existing.contains(i));

    let mut merged = Merged::default();
    if !new.is_empty() {
        target.encode(batch, &new, &mut data);
        merged.created = copy_in(conn, &copy_target, &data).await?;
    }
    if !old.is_empty() {
        target.encode(batch, &old, &mut data);
        target.stage(conn, &data).await?;
        let c = target.comparison();
        let mut set: Vec<String> = c
            .compared
            .iter()
            .map(|col| format!("{col} = s.{col}"))
            .collect();
        if c.stale != "false" {
            set.push(format!(
                "{SOURCE_UPDATED_AT} = COALESCE(s.{SOURCE_UPDATED_AT}, t.{SOURCE_UPDATED_AT})"
            ));
        }
        let row_key = def
            .key_columns
            .iter()
            .map(|k| format!("t.{k}::text"))
            .collect::<Vec<_>>()
            .join(", ");
        // One statement, one snapshot: the before-images are the records as
        // they were when the update began.
        let sql = format!(
            "WITH undo AS (
                 INSERT INTO import_undo (import_id, target_table, row_key, before)
                 SELECT $1, '{table}', concat_ws(E'\\x1f', {row_key}), to_jsonb(t)
                   FROM {table} t JOIN {STAGE} s ON t.organization_id = s.organization_id AND {matched}
                  WHERE $2 AND {differs} AND NOT {stale}
                 ON CONFLICT DO NOTHING
                 RETURNING 1),
             updated AS (
                 UPDATE {table} t SET {set}, source_row = s.source_row,
                        source_import_id = s.source_import_id, source_file_id = s.source_file_id,
                        updated_at = now()
                   FROM {STAGE} s
                  WHERE t.organization_id = s.organization_id AND {matched} AND {differs} AND NOT {stale}
                 RETURNING 1)
             SELECT (SELECT count(*) FROM updated),
                    (SELECT count(*) FROM {STAGE} s JOIN {table} t
                        ON t.organization_id = s.organization_id AND {matched} WHERE {stale}),
                    (SELECT count(*) FROM undo)",
            table = def.target_table,
            set = set.join(", "),
            matched = c.matched,
            differs = c.differs,
            stale = c.stale,
        );
        let (updated, stale, _undo): (i64, i64, i64) = sqlx::query_as(AssertSqlSafe(sql))
            .bind(job.import.id)
            .bind(job.policy == FailurePolicy::StopOnFirstError)
            .fetch_one(&mut *conn)
            .await?;
        merged.updated = updated;
        merged.stale = stale;
    }
    Ok(merged)
}

async fn copy_in(conn: &mut PgConnection, statement: &str, data: &[u8]) -> Result<i64, StoreError> {
    let mut copy = conn.copy_in_raw(statement).await?;
    if let Err(e) = copy.send(data).await {
        copy.abort("the chunk could not be sent").await.ok();
        return Err(e.into());
    }
    Ok(copy.finish().await? as i64)
}

/// SQL type a key column's text is cast to.
fn sql_type(def: &ImportTypeDef, column: &str) -> &'static str {
    def.column(column).map_or("text", |c| c.kind.sql_type())
}

/// Whether the organization has any record whose first key column falls
/// between the smallest and the largest of `values` (in the database's
/// collation). When it has none, no key of the chunk can exist.
async fn keys_in_range(
    conn: &mut PgConnection,
    target: Target<'_>,
    column: &str,
    values: &[Option<String>],
) -> Result<bool, StoreError> {
    let kind = sql_type(target.def, column);
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {table} t WHERE t.organization_id = $1 AND t.{column} BETWEEN
            (SELECT min(x::{kind}) FROM unnest($2::text[]) x) AND (SELECT max(x::{kind}) FROM unnest($2::text[]) x))",
        table = target.def.target_table,
    );
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(target.organization_id)
        .bind(values)
        .fetch_one(&mut *conn)
        .await?)
}

/// Which of the given batch rows have a key the organization already has.
async fn existing_rows(
    conn: &mut PgConnection,
    target: Target<'_>,
    parsed: &ParsedChunk,
    rows: &[usize],
) -> Result<HashSet<usize>, StoreError> {
    Ok(key_matches(conn, target, parsed, rows, false)
        .await?
        .into_iter()
        .map(|(i, _, _)| i)
        .collect())
}

/// The given batch rows whose key is stored (only records last written by
/// the target's import when `same_import`), with the file and row that wrote
/// each.
async fn key_matches(
    conn: &mut PgConnection,
    target: Target<'_>,
    parsed: &ParsedChunk,
    rows: &[usize],
    same_import: bool,
) -> Result<Vec<(usize, Option<Uuid>, Option<i64>)>, StoreError> {
    let def = target.def;
    let keys = def.key_columns;
    let unnest: Vec<String> = std::iter::once("$3::int8[]".to_string())
        .chain((0..keys.len()).map(|i| format!("${}::text[]", i + 4)))
        .collect();
    let names: Vec<String> = std::iter::once("i".to_string())
        .chain((0..keys.len()).map(|i| format!("k{i}")))
        .collect();
    let on: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("t.{k} = u.k{i}::{}", sql_type(def, k)))
        .collect();
    let sql = format!(
        "SELECT u.i, t.source_file_id, t.source_row FROM UNNEST({unnest}) AS u({names})
           JOIN {table} t ON t.organization_id = $1 AND {on}
          WHERE NOT $2 OR t.source_import_id = $4_import",
        unnest = unnest.join(", "),
        names = names.join(", "),
        table = def.target_table,
        on = on.join(" AND "),
    )
    .replace("$4_import", &format!("${}", keys.len() + 4));
    let indexes: Vec<i64> = rows.iter().map(|r| *r as i64).collect();
    let mut query = sqlx::query_as(AssertSqlSafe(sql))
        .bind(target.organization_id)
        .bind(same_import)
        .bind(indexes);
    for k in keys {
        let values: Vec<Option<String>> = rows.iter().map(|r| parsed.text(k, *r)).collect();
        query = query.bind(values);
    }
    let found: Vec<(i64, Option<Uuid>, Option<i64>)> =
        query.bind(target.import_id).fetch_all(&mut *conn).await?;
    Ok(found
        .into_iter()
        .map(|(i, f, r)| (i as usize, f, r))
        .collect())
}
