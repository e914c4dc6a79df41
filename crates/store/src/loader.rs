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
use crate::{Db, EVENTS_CHANNEL, StoreError};

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
    /// The stored object the chunk's byte range points into.
    pub fn data_key(&self) -> &str {
        self.file
            .data_key
            .as_deref()
            .unwrap_or(&self.file.storage_key)
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
/// imports were started, files were added and chunks were cut. Workers load
/// this one whatever message woke them, so order never depends on the broker.
pub async fn next_pending_chunk(db: &Db, organization_id: i64) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT c.id FROM chunks c
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
    take_write_fence(&mut tx, org).await?;

    let Some(row) = sqlx::query(
        "SELECT c.state, i.state AS import_state, i.queue_seq, f.load_order, f.position
           FROM chunks c JOIN imports i ON i.id = c.import_id JOIN import_files f ON f.id = c.file_id
          WHERE c.id = $1 FOR UPDATE OF c",
    )
    .bind(job.chunk.id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(ChunkOutcome::Gone);
    };
    let chunk_state: String = row.try_get("state")?;
    let import_state: String = row.try_get("import_state")?;
    let queue_seq: Option<i64> = row.try_get("queue_seq")?;
    let position: i32 = row.try_get("position")?;
    let load_order: i32 = row.try_get("load_order")?;
    if chunk_state != "queued" {
        return Ok(ChunkOutcome::AlreadyDone);
    }
    if ImportState::parse(&import_state).is_none_or(ImportState::is_terminal) {
        sqlx::query(
            "UPDATE chunks SET state = 'skipped', finished_at = clock_timestamp() WHERE id = $1",
        )
        .bind(job.chunk.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(ChunkOutcome::Skipped);
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
    .bind(job.chunk.id)
    .bind(queue_seq.unwrap_or(i64::MAX))
    .bind(position)
    .bind(job.chunk.seq)
    .bind(load_order)
    .fetch_one(&mut *tx)
    .await?;
    if earlier_pending {
        return Ok(ChunkOutcome::NotYourTurn);
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
        let (created, updated) = merge(&mut tx, job, w.parsed).await?;
        counts.created = created;
        counts.updated = updated;
        counts.unchanged = processed - failed - created - updated;
    }

    sqlx::query(
        "UPDATE chunks SET state = $2, attempts = attempts + 1, worker = $3,
                rows_created = $4, rows_updated = $5, rows_unchanged = $6, rows_failed = $7,
                started_at = $8, write_started_at = $9, finished_at = clock_timestamp()
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
    .execute(&mut *tx)
    .await?;

    let file_state: String = sqlx::query_scalar(
        "UPDATE import_files SET
                chunks_done = chunks_done + 1,
                rows_processed = rows_processed + $2, rows_created = rows_created + $3,
                rows_updated = rows_updated + $4, rows_unchanged = rows_unchanged + $5,
                rows_failed = rows_failed + $6,
                state = CASE
                    WHEN $7 THEN 'failed'
                    WHEN chunks_done + 1 >= chunks_total AND rows_failed + $6 > 0 THEN 'completed_with_errors'
                    WHEN chunks_done + 1 >= chunks_total THEN 'completed'
                    ELSE 'running' END,
                updated_at = clock_timestamp()
          WHERE id = $1
      RETURNING state",
    )
    .bind(job.file.id)
    .bind(counts.processed)
    .bind(counts.created)
    .bind(counts.updated)
    .bind(counts.unchanged)
    .bind(counts.failed)
    .bind(stop)
    .fetch_one(&mut *tx)
    .await?;

    let next_state = if stop {
        ImportState::Failed
    } else {
        import_state_after(&mut tx, job.import.id).await?
    };
    let error = stop.then(|| {
        let first = problems.iter().min_by_key(|p| p.row);
        json!({
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
        })
    });
    sqlx::query(
        "UPDATE imports SET state = $2,
                started_at = COALESCE(started_at, $3),
                finished_at = CASE WHEN $4 THEN clock_timestamp() ELSE finished_at END,
                error = COALESCE($5, error),
                updated_at = clock_timestamp()
          WHERE id = $1",
    )
    .bind(job.import.id)
    .bind(next_state.as_str())
    .bind(w.started_at)
    .bind(next_state.is_terminal())
    .bind(error)
    .execute(&mut *tx)
    .await?;
    if stop {
        skip_the_rest(&mut tx, job.import.id).await?;
    }
    notify(&mut tx, job.import.id).await?;
    tx.commit().await?;
    tracing::debug!(file_state, import_state = %next_state, "chunk committed");
    Ok(if stop {
        ChunkOutcome::FailedImport(counts)
    } else {
        ChunkOutcome::Written(counts)
    })
}

/// Records that a chunk cannot be loaded at all (its file is gone, its bytes
/// cannot be parsed): the chunk, its file and its import fail with `reason`,
/// and the import's remaining chunks are skipped.
pub async fn fail_chunk(db: &Db, chunk_id: i64, reason: &str) -> Result<(), StoreError> {
    let mut tx = db.pool().begin().await?;
    let org: Option<i64> = sqlx::query_scalar("SELECT organization_id FROM chunks WHERE id = $1")
        .bind(chunk_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(org) = org else {
        return Ok(());
    };
    // The same fence as a write: the failure lands between two chunk writes.
    take_write_fence(&mut tx, org).await?;
    let Some(row) = sqlx::query(
        "UPDATE chunks SET state = 'failed', attempts = attempts + 1, finished_at = clock_timestamp()
          WHERE id = $1 AND state = 'queued'
      RETURNING import_id, file_id, organization_id",
    )
    .bind(chunk_id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(());
    };
    let import_id: Uuid = row.try_get("import_id")?;
    let file_id: Uuid = row.try_get("file_id")?;
    let file_name: String = sqlx::query_scalar(
        "UPDATE import_files SET state = 'failed', updated_at = clock_timestamp() WHERE id = $1 RETURNING file_name",
    )
    .bind(file_id)
    .fetch_one(&mut *tx)
    .await?;
    let error = json!({
        "reason": "CHUNK_FAILED",
        "message": format!("{file_name}: {reason}"),
        "file_id": file_id,
        "file_name": file_name,
    });
    sqlx::query(
        "UPDATE imports SET state = 'failed', error = $2, finished_at = clock_timestamp(),
                started_at = COALESCE(started_at, clock_timestamp()), updated_at = clock_timestamp()
          WHERE id = $1 AND state NOT IN ('completed', 'completed_with_errors', 'failed', 'stopped')",
    )
    .bind(import_id)
    .bind(error)
    .execute(&mut *tx)
    .await?;
    skip_the_rest(&mut tx, import_id).await?;
    notify(&mut tx, import_id).await?;
    tx.commit().await?;
    Ok(())
}

/// The organization's write fence, held until the transaction ends.
async fn take_write_fence(conn: &mut PgConnection, org: i64) -> Result<(), StoreError> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('passare_imports.write:' || $1::text, 0))",
    )
    .bind(org)
    .execute(conn)
    .await?;
    Ok(())
}

/// A failed import's chunks still queued are skipped and its unfinished files fail.
async fn skip_the_rest(conn: &mut PgConnection, import_id: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE chunks SET state = 'skipped', finished_at = clock_timestamp()
          WHERE import_id = $1 AND state = 'queued'",
    )
    .bind(import_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE import_files SET state = 'failed', updated_at = clock_timestamp()
          WHERE import_id = $1 AND state IN ('queued', 'running')",
    )
    .bind(import_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Tells watchers the import changed, when the transaction commits.
async fn notify(conn: &mut PgConnection, import_id: Uuid) -> Result<(), StoreError> {
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
        "INSERT INTO row_errors (import_id, file_id, chunk_id, row_number, column_name, value, reason, kind)
         SELECT $1, $2, $3, r, c, v, why, k
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

    /// The compared (non-key) columns and the SQL conditions joining the
    /// target `t` to the stage `s` and telling rows that differ.
    fn comparison(&self) -> (Vec<&'static str>, String, String) {
        let keys = self.def.key_columns;
        let compared: Vec<&'static str> = written_columns(self.def)
            .into_iter()
            .filter(|c| !keys.contains(c))
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
        (compared, matched, differs)
    }
}

/// What writing a chunk would do, without writing it: (would create, would
/// update, would leave unchanged) among the valid rows. Runs in its own
/// transaction, which it rolls back.
pub async fn compare_with_stored(
    db: &Db,
    target: Target<'_>,
    parsed: &ParsedChunk,
) -> Result<(i64, i64, i64), StoreError> {
    let batch = &parsed.batch;
    let valid: Vec<usize> = (0..batch.num_rows()).filter(|i| parsed.valid[*i]).collect();
    if valid.is_empty() {
        return Ok((0, 0, 0));
    }
    let mut conn = db.pool().acquire().await?;
    let first_key = target.def.key_columns.first().copied().unwrap_or_default();
    let first_values: Vec<Option<String>> =
        valid.iter().map(|i| parsed.text(first_key, *i)).collect();
    if !keys_in_range(&mut conn, target, first_key, &first_values).await? {
        return Ok((valid.len() as i64, 0, 0));
    }
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let mut data = Vec::with_capacity(valid.len() * 160);
    target.encode(batch, &valid, &mut data);
    target.stage(&mut tx, &data).await?;
    let (_, matched, differs) = target.comparison();
    let (existing, changed): (i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT count(*), count(*) FILTER (WHERE {differs})
           FROM {STAGE} s JOIN {table} t ON t.organization_id = s.organization_id AND {matched}",
        table = target.def.target_table
    )))
    .fetch_one(&mut *tx)
    .await?;
    tx.rollback().await?;
    Ok((valid.len() as i64 - existing, changed, existing - changed))
}

/// Writes the chunk's valid rows: keys new to the organization go straight
/// into the target table with COPY; rows whose key exists are staged and
/// updated where a value differs (identical rows are left alone, provenance
/// included). The organization's write fence makes the split safe: no other
/// transaction writes this organization's rows meanwhile. Returns (created,
/// updated).
async fn merge(
    conn: &mut PgConnection,
    job: &ChunkJob,
    parsed: &ParsedChunk,
) -> Result<(i64, i64), StoreError> {
    let target = Target::of(job);
    let def = job.def;
    let batch = &parsed.batch;
    let valid: Vec<usize> = (0..batch.num_rows()).filter(|i| parsed.valid[*i]).collect();
    if valid.is_empty() {
        return Ok((0, 0));
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

    // The common case when onboarding a client: no key of the chunk exists
    // yet, and the rows go straight in with COPY. When no stored key even
    // falls within the chunk's key range, that is certain; otherwise COPY is
    // tried under a savepoint, and a key that does exist sends the chunk down
    // the careful path below.
    target.encode(batch, &valid, &mut data);
    if !keys_in_range(conn, target, first_key, &first_values).await? {
        return Ok((copy_in(conn, &copy_target, &data).await?, 0));
    }
    sqlx::query("SAVEPOINT passare_copy")
        .execute(&mut *conn)
        .await?;
    match copy_in(conn, &copy_target, &data).await {
        Ok(created) => {
            sqlx::query("RELEASE SAVEPOINT passare_copy")
                .execute(&mut *conn)
                .await?;
            return Ok((created, 0));
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

    let mut created = 0;
    if !new.is_empty() {
        target.encode(batch, &new, &mut data);
        created = copy_in(conn, &copy_target, &data).await?;
    }
    let mut updated = 0;
    if !old.is_empty() {
        target.encode(batch, &old, &mut data);
        target.stage(conn, &data).await?;
        let (compared, matched, differs) = target.comparison();
        let set: Vec<String> = compared.iter().map(|c| format!("{c} = s.{c}")).collect();
        let sql = format!(
            "UPDATE {table} t SET {set}, source_row = s.source_row, source_import_id = s.source_import_id,
                    source_file_id = s.source_file_id, updated_at = now()
               FROM {STAGE} s
              WHERE t.organization_id = s.organization_id AND {matched} AND {differs}",
            table = def.target_table,
            set = set.join(", "),
        );
        updated = sqlx::query(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await?
            .rows_affected() as i64;
    }
    Ok((created, updated))
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
