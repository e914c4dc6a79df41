//! Writes one chunk: COPY of its valid rows into a staging table, reference
//! resolution, a merge into the target table keyed by the type's natural key,
//! the chunk's row errors, its done mark and the file and import progress —
//! all in one transaction that holds the organization's write fence. A chunk
//! delivered twice finds itself done and has no second effect; two chunks of
//! one organization never write at the same time, whatever the broker does.

use chrono::{DateTime, Utc};
use passare_imports_domain::catalog::{self, ImportTypeDef};
use std::collections::HashSet;

use passare_imports_domain::chunk::{ParsedChunk, ROW_COLUMN, SetupIndex, date_from_days};
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

/// The organization's next chunk to load: the first still queued in the order
/// imports were started, files were added and chunks were cut. Workers load
/// this one whatever message woke them, so order never depends on the broker.
pub async fn next_pending_chunk(db: &Db, organization_id: i64) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT c.id FROM chunks c
           JOIN imports i ON i.id = c.import_id
           JOIN import_files f ON f.id = c.file_id
          WHERE c.organization_id = $1 AND c.state = 'queued'
          ORDER BY i.queue_seq, f.position, c.seq
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

/// The organization's setup records that `def`'s references point to.
pub async fn load_setup(
    db: &Db,
    organization_id: i64,
    def: &ImportTypeDef,
) -> Result<SetupIndex, StoreError> {
    let mut index = SetupIndex::default();
    for r in def.references {
        let sql = format!(
            "SELECT id, {m} AS value FROM {table} WHERE organization_id = $1",
            m = r.match_column,
            table = r.table
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(organization_id)
            .fetch_all(db.pool())
            .await?;
        for row in rows {
            index.insert(
                r.column,
                &row.try_get::<String, _>("value")?,
                row.try_get("id")?,
            );
        }
    }
    Ok(index)
}

/// Target columns written for each row, in COPY order after `organization_id`.
fn written_columns(def: &ImportTypeDef) -> Vec<&'static str> {
    def.columns
        .iter()
        .filter_map(|c| c.target)
        .chain(def.references.iter().map(|r| r.store_id_as))
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
    let def = job.def;
    let batch = &parsed.batch;
    let valid: Vec<usize> = (0..batch.num_rows()).filter(|i| parsed.valid[*i]).collect();
    if valid.is_empty() {
        return Ok((0, 0));
    }
    let keys: Vec<&str> = def.key_columns.to_vec();
    let columns = written_columns(def);
    let mut encoded: Vec<&str> = columns.clone();
    encoded.push(ROW_COLUMN);
    let prefix = [Constant::Int8(job.import.organization_id)];
    let suffix = [
        Constant::Uuid(*job.import.id.as_bytes()),
        Constant::Uuid(*job.file.id.as_bytes()),
    ];
    let encode = |rows: &[usize], out: &mut Vec<u8>| {
        out.clear();
        encode_copy_binary(batch, &encoded, rows.iter().copied(), &prefix, &suffix, out);
    };
    let list = format!(
        "organization_id, {}, source_row, source_import_id, source_file_id",
        columns.join(", ")
    );
    let copy_target = format!(
        "COPY {} ({list}) FROM STDIN (FORMAT binary)",
        def.target_table
    );
    let mut data = Vec::with_capacity(valid.len() * 160);
    let key_values: Vec<Vec<Option<String>>> =
        keys.iter().map(|k| text_values(batch, k, &valid)).collect();

    // The common case when onboarding a client: no key of the chunk exists
    // yet, and the rows go straight in with COPY. When no stored key even
    // falls within the chunk's key range, that is certain; otherwise COPY is
    // tried under a savepoint, and a key that does exist sends the chunk down
    // the careful path below.
    encode(&valid, &mut data);
    if !keys_in_range(conn, job, keys[0], &key_values[0]).await? {
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

    let existing = existing_keys(conn, job, &keys, &key_values).await?;
    // Batch rows whose key the organization already has, and the others.
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for (n, row) in valid.iter().copied().enumerate() {
        let key: Vec<Option<String>> = key_values.iter().map(|col| col[n].clone()).collect();
        if existing.contains(&key) {
            old.push(row);
        } else {
            new.push(row);
        }
    }

    let mut created = 0;
    if !new.is_empty() {
        encode(&new, &mut data);
        created = copy_in(conn, &copy_target, &data).await?;
    }
    let mut updated = 0;
    if !old.is_empty() {
        encode(&old, &mut data);
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TEMP TABLE {STAGE} ON COMMIT DROP AS SELECT {list} FROM {} WITH NO DATA",
            def.target_table
        )))
        .execute(&mut *conn)
        .await?;
        copy_in(
            conn,
            &format!("COPY {STAGE} ({list}) FROM STDIN (FORMAT binary)"),
            &data,
        )
        .await?;
        let compared: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| !keys.contains(c))
            .collect();
        let set: Vec<String> = compared.iter().map(|c| format!("{c} = s.{c}")).collect();
        let matched: Vec<String> = keys.iter().map(|k| format!("t.{k} = s.{k}")).collect();
        let sql = format!(
            "UPDATE {table} t SET {set}, source_row = s.source_row, source_import_id = s.source_import_id,
                    source_file_id = s.source_file_id, updated_at = now()
               FROM {STAGE} s
              WHERE t.organization_id = s.organization_id AND {matched}
                AND ({old}) IS DISTINCT FROM ({new})",
            table = def.target_table,
            set = set.join(", "),
            matched = matched.join(" AND "),
            old = compared.iter().map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", "),
            new = compared.iter().map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", "),
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

/// Whether the organization has any record whose first key column falls
/// between the smallest and the largest of `values` (in the database's
/// collation). When it has none, no key of the chunk can exist.
async fn keys_in_range(
    conn: &mut PgConnection,
    job: &ChunkJob,
    column: &str,
    values: &[Option<String>],
) -> Result<bool, StoreError> {
    let kind = job.def.column(column).map_or("text", |c| c.kind.sql_type());
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {table} t WHERE t.organization_id = $1 AND t.{column} BETWEEN
            (SELECT min(x::{kind}) FROM unnest($2::text[]) x) AND (SELECT max(x::{kind}) FROM unnest($2::text[]) x))",
        table = job.def.target_table,
    );
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(job.import.organization_id)
        .bind(values)
        .fetch_one(&mut *conn)
        .await?)
}

/// A key column's values for the given rows, as text (dates as YYYY-MM-DD).
fn text_values(
    batch: &arrow_array::RecordBatch,
    column: &str,
    rows: &[usize],
) -> Vec<Option<String>> {
    use arrow_array::{Array, Date32Array, StringArray};
    let Some(array) = batch.column_by_name(column) else {
        return vec![None; rows.len()];
    };
    if let Some(a) = array.as_any().downcast_ref::<StringArray>() {
        rows.iter()
            .map(|r| a.is_valid(*r).then(|| a.value(*r).to_string()))
            .collect()
    } else if let Some(a) = array.as_any().downcast_ref::<Date32Array>() {
        rows.iter()
            .map(|r| {
                a.is_valid(*r)
                    .then(|| date_from_days(a.value(*r)).to_string())
            })
            .collect()
    } else {
        vec![None; rows.len()]
    }
}

/// Which of the given keys the organization already has.
async fn existing_keys(
    conn: &mut PgConnection,
    job: &ChunkJob,
    keys: &[&str],
    values: &[Vec<Option<String>>],
) -> Result<HashSet<Vec<Option<String>>>, StoreError> {
    let def = job.def;
    let unnest: Vec<String> = (0..keys.len())
        .map(|i| format!("${}::text[]", i + 2))
        .collect();
    let names: Vec<String> = (0..keys.len()).map(|i| format!("k{i}")).collect();
    let on: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let kind = def.column(k).map_or("text", |c| c.kind.sql_type());
            format!("t.{k} = u.k{i}::{kind}")
        })
        .collect();
    let out: Vec<String> = keys.iter().map(|k| format!("t.{k}::text")).collect();
    let sql = format!(
        "SELECT {out} FROM {table} t JOIN UNNEST({unnest}) AS u({names}) ON {on} WHERE t.organization_id = $1",
        out = out.join(", "),
        table = def.target_table,
        unnest = unnest.join(", "),
        names = names.join(", "),
        on = on.join(" AND "),
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(job.import.organization_id);
    for column in values {
        query = query.bind(column.clone());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            (0..keys.len())
                .map(|i| r.try_get::<Option<String>, _>(i).map_err(StoreError::from))
                .collect()
        })
        .collect()
}
