//! Writes one chunk: COPY of its valid rows into a staging table, reference
//! resolution, a merge into the target table keyed by the type's natural key,
//! the chunk's row errors, its done mark and the file and import progress —
//! all in one transaction that holds the organization's write fence. A chunk
//! delivered twice finds itself done and has no second effect; two chunks of
//! one organization never write at the same time, whatever the broker does.

use chrono::{DateTime, Utc};
use passare_imports_domain::catalog::{self, ImportTypeDef};
use passare_imports_domain::chunk::{ParsedChunk, ROW_COLUMN};
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
    pub headers: Vec<String>,
    pub delimiter: u8,
    pub policy: FailurePolicy,
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
    let headers: Vec<String> = serde_json::from_value(file.headers.clone())
        .map_err(|e| StoreError::Corrupt(format!("headers of file {}: {e}", file.id)))?;
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
        headers,
        delimiter,
        policy,
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
    /// COPY text of the parsed batch's valid rows, columns in batch order.
    pub copy_text: &'a [u8],
    /// When the worker took the chunk from the queue.
    pub started_at: DateTime<Utc>,
    pub worker: &'a str,
}

const STAGE: &str = "passare_stage";

/// Writes a chunk; see the module documentation.
pub async fn write_chunk(db: &Db, w: ChunkWrite<'_>) -> Result<ChunkOutcome, StoreError> {
    let job = w.job;
    let org = job.import.organization_id;
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('passare_imports.write:' || $1::text, 0))",
    )
    .bind(org)
    .execute(&mut *tx)
    .await?;

    let Some(row) = sqlx::query(
        "SELECT c.state, i.state AS import_state, i.queue_seq, f.position
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
               AND (i.queue_seq, f.position, c.seq) < ($3, $4, $5))",
    )
    .bind(org)
    .bind(job.chunk.id)
    .bind(queue_seq.unwrap_or(i64::MAX))
    .bind(position)
    .bind(job.chunk.seq)
    .fetch_one(&mut *tx)
    .await?;
    if earlier_pending {
        return Ok(ChunkOutcome::NotYourTurn);
    }

    let write_started: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *tx)
        .await?;
    stage_rows(&mut tx, job.def, w.copy_text).await?;
    let mut problems = w.parsed.problems.clone();
    let unresolved = resolve_references(&mut tx, job, &mut problems).await?;
    insert_row_errors(&mut tx, job, &problems).await?;

    let processed = w.parsed.batch.num_rows() as i64;
    let failed = w.parsed.failed_rows() as i64 + unresolved;
    let stop = job.policy == FailurePolicy::StopOnFirstError && failed > 0;
    let mut counts = ChunkCounts {
        processed,
        failed,
        ..ChunkCounts::default()
    };
    if !stop {
        let (created, updated) = merge(&mut tx, job).await?;
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
        sqlx::query(
            "UPDATE chunks SET state = 'skipped', finished_at = clock_timestamp()
              WHERE import_id = $1 AND state = 'queued'",
        )
        .bind(job.import.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE import_files SET state = 'failed', updated_at = clock_timestamp()
              WHERE import_id = $1 AND state IN ('queued', 'running')",
        )
        .bind(job.import.id)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(EVENTS_CHANNEL)
        .bind(job.import.id.to_string())
        .execute(&mut *tx)
        .await?;
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
    sqlx::query("UPDATE chunks SET state = 'skipped', finished_at = clock_timestamp() WHERE import_id = $1 AND state = 'queued'")
        .bind(import_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE import_files SET state = 'failed', updated_at = clock_timestamp() WHERE import_id = $1 AND state IN ('queued', 'running')")
        .bind(import_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(EVENTS_CHANNEL)
        .bind(import_id.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
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

async fn stage_rows(
    conn: &mut PgConnection,
    def: &ImportTypeDef,
    copy_text: &[u8],
) -> Result<(), StoreError> {
    let columns: Vec<String> = def
        .columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.kind.sql_type()))
        .collect();
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TEMP TABLE {STAGE} ({ROW_COLUMN} bigint PRIMARY KEY, {}) ON COMMIT DROP",
        columns.join(", ")
    )))
    .execute(&mut *conn)
    .await?;
    let mut copy = conn
        .copy_in_raw(&format!("COPY {STAGE} FROM STDIN (FORMAT text)"))
        .await?;
    if let Err(e) = copy.send(copy_text).await {
        copy.abort("staging failed").await.ok();
        return Err(e.into());
    }
    copy.finish().await?;
    Ok(())
}

/// Fails the staged rows whose references resolve to nothing in the
/// organization, removing them from the stage. Returns how many rows failed.
async fn resolve_references(
    conn: &mut PgConnection,
    job: &ChunkJob,
    problems: &mut Vec<RowProblem>,
) -> Result<i64, StoreError> {
    let mut failed_rows = std::collections::BTreeSet::new();
    for r in job.def.references {
        let sql = format!(
            "SELECT s.{ROW_COLUMN} AS row_number, s.{col} AS value FROM {STAGE} s
              WHERE s.{col} IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM {table} t WHERE t.organization_id = $1 AND lower(t.{m}) = lower(s.{col}))",
            col = r.column,
            table = r.table,
            m = r.match_column,
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(job.import.organization_id)
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            let row_number: i64 = row.try_get("row_number")?;
            let value: String = row.try_get("value")?;
            failed_rows.insert(row_number);
            problems.push(RowProblem {
                row: row_number as u64,
                column: r.column.to_string(),
                reason: format!("no {} matches {value:?}", r.describes),
                value,
            });
        }
    }
    if !failed_rows.is_empty() {
        let rows: Vec<i64> = failed_rows.iter().copied().collect();
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {STAGE} WHERE {ROW_COLUMN} = ANY($1)"
        )))
        .bind(&rows)
        .execute(&mut *conn)
        .await?;
    }
    Ok(failed_rows.len() as i64)
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
    sqlx::query(
        "INSERT INTO row_errors (import_id, file_id, chunk_id, row_number, column_name, value, reason)
         SELECT $1, $2, $3, r, c, v, why
           FROM UNNEST($4::bigint[], $5::text[], $6::text[], $7::text[]) AS e(r, c, v, why)",
    )
    .bind(job.import.id)
    .bind(job.file.id)
    .bind(job.chunk.id)
    .bind(&rows)
    .bind(&columns)
    .bind(&values)
    .bind(&reasons)
    .execute(conn)
    .await?;
    Ok(())
}

/// Merges the stage into the target table: new keys are created, changed rows
/// updated, identical rows left alone. Returns (created, updated).
async fn merge(conn: &mut PgConnection, job: &ChunkJob) -> Result<(i64, i64), StoreError> {
    let def = job.def;
    let mut targets: Vec<String> = Vec::new();
    let mut sources: Vec<String> = Vec::new();
    for c in def.columns {
        if let Some(t) = c.target {
            targets.push(t.to_string());
            sources.push(format!("s.{}", c.name));
        }
    }
    for r in def.references {
        targets.push(r.store_id_as.to_string());
        sources.push(format!(
            "(SELECT t.id FROM {table} t WHERE t.organization_id = $1 AND lower(t.{m}) = lower(s.{col}) ORDER BY t.id LIMIT 1)",
            table = r.table,
            m = r.match_column,
            col = r.column
        ));
    }
    let key_targets: Vec<&str> = def
        .key_columns
        .iter()
        .filter_map(|k| def.column(k).and_then(|c| c.target))
        .collect();
    let compared: Vec<&String> = targets
        .iter()
        .filter(|t| !key_targets.contains(&t.as_str()))
        .collect();
    let set: Vec<String> = compared
        .iter()
        .map(|t| format!("{t} = EXCLUDED.{t}"))
        .collect();
    let sql = format!(
        "WITH merged AS (
            INSERT INTO {table} AS t (organization_id, {cols}, source_import_id, source_file_id, source_row)
            SELECT $1, {vals}, $2, $3, s.{ROW_COLUMN} FROM {STAGE} s
            ON CONFLICT (organization_id, {keys}) DO UPDATE SET {set},
                source_import_id = EXCLUDED.source_import_id,
                source_file_id = EXCLUDED.source_file_id,
                source_row = EXCLUDED.source_row,
                updated_at = now()
            WHERE ({old}) IS DISTINCT FROM ({new})
            RETURNING (xmax = 0) AS created)
         SELECT count(*) FILTER (WHERE created) AS created, count(*) FILTER (WHERE NOT created) AS updated FROM merged",
        table = def.target_table,
        cols = targets.join(", "),
        vals = sources.join(", "),
        keys = key_targets.join(", "),
        set = set.join(", "),
        old = compared.iter().map(|t| format!("t.{t}")).collect::<Vec<_>>().join(", "),
        new = compared.iter().map(|t| format!("EXCLUDED.{t}")).collect::<Vec<_>>().join(", "),
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(job.import.organization_id)
        .bind(job.import.id)
        .bind(job.file.id)
        .fetch_one(conn)
        .await?;
    Ok((row.try_get("created")?, row.try_get("updated")?))
}
