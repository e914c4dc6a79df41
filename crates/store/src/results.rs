//! Row-level results of an import: its row errors (open, or superseded by a
//! retry), the edits people make to failed rows, the rows each file wrote,
//! queueing a retry of the still-failed rows as a new attempt of the same
//! import, and the retention job's purge of what an old import stored.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use passare_imports_domain::ChunkRange;
use passare_imports_domain::catalog::ImportTypeDef;
// Dynamic SQL below is assembled from the compiled catalog's table and
// column names, never from a request or a file.
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use crate::entities::chunks;
use crate::loader::{notify, written_columns};
use crate::repo::Requester;
use crate::{Db, StoreError, history};

/// A row error with its file.
#[derive(Debug, Clone)]
pub struct RowErrorRow {
    pub id: i64,
    pub file_id: Uuid,
    pub file_name: String,
    pub position: i32,
    pub row: i64,
    pub column: String,
    pub value: String,
    pub reason: String,
    pub kind: String,
    pub attempt: i32,
    pub open: bool,
}

/// Where a page of row errors starts: after (file position, row, id).
pub type RowErrorCursor = (i32, i64, i64);

/// A page of an import's row errors, by file position, row and id.
pub async fn list_row_errors(
    db: &Db,
    import_id: Uuid,
    file_id: Option<Uuid>,
    include_retried: bool,
    after: Option<RowErrorCursor>,
    limit: i64,
) -> Result<Vec<RowErrorRow>, StoreError> {
    let (p, r, i) = after.unwrap_or((-1, -1, -1));
    let rows = sqlx::query(
        "SELECT e.id, e.file_id, f.file_name, f.position, e.row_number, e.column_name, e.value,
                e.reason, e.kind, e.attempt, e.superseded_at IS NULL AS open
           FROM row_errors e JOIN import_files f ON f.id = e.file_id
          WHERE e.import_id = $1 AND ($2::uuid IS NULL OR e.file_id = $2)
            AND ($3 OR e.superseded_at IS NULL)
            AND (f.position, e.row_number, e.id) > ($4, $5, $6)
          ORDER BY f.position, e.row_number, e.id
          LIMIT $7",
    )
    .bind(import_id)
    .bind(file_id)
    .bind(include_retried)
    .bind(p)
    .bind(r)
    .bind(i)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RowErrorRow {
                id: row.try_get("id")?,
                file_id: row.try_get("file_id")?,
                file_name: row.try_get("file_name")?,
                position: row.try_get("position")?,
                row: row.try_get("row_number")?,
                column: row.try_get("column_name")?,
                value: row.try_get("value")?,
                reason: row.try_get("reason")?,
                kind: row.try_get("kind")?,
                attempt: row.try_get("attempt")?,
                open: row.try_get("open")?,
            })
        })
        .collect()
}

/// The chunks of a file whose rows hold open (not superseded) errors, in
/// row order: the chunks of the latest attempt that failed rows.
pub async fn chunks_with_open_errors(db: &Db, file_id: Uuid) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT chunk_id FROM row_errors
          WHERE file_id = $1 AND superseded_at IS NULL AND chunk_id IS NOT NULL
          GROUP BY chunk_id ORDER BY min(row_number)",
    )
    .bind(file_id)
    .fetch_all(db.pool())
    .await?)
}

/// The still-failed rows a chunk found, in row order, each with its reasons
/// in one line.
pub async fn open_failed_rows(db: &Db, chunk_id: i64) -> Result<Vec<(i64, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT row_number,
                string_agg(CASE WHEN column_name = '' THEN reason ELSE column_name || ': ' || reason END,
                           '; ' ORDER BY id)
           FROM row_errors WHERE chunk_id = $1 AND superseded_at IS NULL
          GROUP BY row_number ORDER BY row_number",
    )
    .bind(chunk_id)
    .fetch_all(db.pool())
    .await?)
}

/// The files of an import with still-failed rows, in position order.
pub async fn files_with_open_errors(db: &Db, import_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT f.id FROM import_files f
          WHERE f.import_id = $1
            AND EXISTS (SELECT 1 FROM row_errors e WHERE e.file_id = f.id AND e.superseded_at IS NULL)
          ORDER BY f.position",
    )
    .bind(import_id)
    .fetch_all(db.pool())
    .await?)
}

/// The database's clock (edits are stamped with it).
pub async fn now(db: &Db) -> Result<DateTime<Utc>, StoreError> {
    Ok(sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(db.pool())
        .await?)
}

/// Edits of a file's rows: row → (column, value), in the order they were set.
pub async fn edits_of(
    db: &Db,
    file_id: Uuid,
) -> Result<HashMap<i64, Vec<(String, String)>>, StoreError> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT row_number, column_name, value FROM row_edits WHERE file_id = $1
          ORDER BY row_number, edited_at, column_name",
    )
    .bind(file_id)
    .fetch_all(db.pool())
    .await?;
    let mut out: HashMap<i64, Vec<(String, String)>> = HashMap::new();
    for (row, column, value) in rows {
        out.entry(row).or_default().push((column, value));
    }
    Ok(out)
}

/// What an edit request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edited {
    /// The cells are set; the number of rows.
    Rows(usize),
    /// The import is in another state than completed_with_errors.
    NotRetryable(String),
    /// These rows of the file are not failed (or no longer).
    NotFailed(Vec<i64>),
    /// The retention job deleted the import's results.
    Purged,
}

/// Sets cells of failed rows of a file (column → value), replacing earlier
/// edits of the same cells, and adds the step to the import's timeline.
pub async fn set_edits(
    db: &Db,
    import_id: Uuid,
    file_id: Uuid,
    edits: &[(i64, String, String)],
    by: &Requester,
    what: &str,
) -> Result<Edited, StoreError> {
    let mut tx = db.pool().begin().await?;
    let row: Option<(String, bool)> = sqlx::query_as(
        "SELECT state, results_purged_at IS NOT NULL FROM imports WHERE id = $1 FOR UPDATE",
    )
    .bind(import_id)
    .fetch_optional(&mut *tx)
    .await?;
    match row {
        Some((_, true)) => return Ok(Edited::Purged),
        Some((state, _)) if state == "completed_with_errors" => {}
        other => {
            return Ok(Edited::NotRetryable(
                other.map_or_else(|| "gone".to_string(), |(s, _)| s),
            ));
        }
    }
    let mut rows: Vec<i64> = edits.iter().map(|(r, _, _)| *r).collect();
    rows.sort_unstable();
    rows.dedup();
    let failed: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT row_number FROM row_errors
          WHERE file_id = $1 AND superseded_at IS NULL AND row_number = ANY($2)",
    )
    .bind(file_id)
    .bind(&rows)
    .fetch_all(&mut *tx)
    .await?;
    let not_failed: Vec<i64> = rows
        .iter()
        .copied()
        .filter(|r| !failed.contains(r))
        .collect();
    if !not_failed.is_empty() {
        return Ok(Edited::NotFailed(not_failed));
    }
    let (r, c, v): (Vec<i64>, Vec<String>, Vec<String>) = edits.iter().cloned().fold(
        (Vec::new(), Vec::new(), Vec::new()),
        |(mut r, mut c, mut v), (row, column, value)| {
            r.push(row);
            c.push(column);
            v.push(value);
            (r, c, v)
        },
    );
    sqlx::query(
        "INSERT INTO row_edits (file_id, import_id, row_number, column_name, value, edited_by_id)
         SELECT $1, $2, r, c, v, $6 FROM UNNEST($3::bigint[], $4::text[], $5::text[]) AS e(r, c, v)
         ON CONFLICT (file_id, row_number, column_name) DO UPDATE
            SET value = EXCLUDED.value, edited_by_id = EXCLUDED.edited_by_id, edited_at = clock_timestamp()",
    )
    .bind(file_id)
    .bind(import_id)
    .bind(&r)
    .bind(&c)
    .bind(&v)
    .bind(&by.id)
    .execute(&mut *tx)
    .await?;
    history::event(&mut tx, import_id, "rows_edited", Some(by), what).await?;
    notify(&mut tx, import_id).await?;
    tx.commit().await?;
    Ok(Edited::Rows(rows.len()))
}

/// One row a file wrote, as the record stands.
#[derive(Debug, Clone)]
pub struct WrittenRow {
    pub row: i64,
    /// Created by this file (else updated).
    pub created: bool,
    /// The record's key, as text.
    pub key: Vec<String>,
    /// The written columns, as text (`None` for NULL).
    pub values: Vec<Option<String>>,
}

/// The records a file is the last writer of, in row order, as a stream (a
/// file may have written millions).
pub fn written_rows(
    db: &Db,
    def: &'static ImportTypeDef,
    organization_id: i64,
    file_id: Uuid,
) -> BoxStream<'static, Result<WrittenRow, StoreError>> {
    let columns = written_columns(def);
    let keys = def.key_columns;
    let sql = format!(
        "SELECT source_row, created_at = updated_at AS created, ARRAY[{keys}] AS key, ARRAY[{values}] AS vals
           FROM {table} WHERE organization_id = $1 AND source_file_id = $2
          ORDER BY source_row",
        keys = keys
            .iter()
            .map(|k| format!("{k}::text"))
            .collect::<Vec<_>>()
            .join(", "),
        values = columns
            .iter()
            .map(|c| format!("{c}::text"))
            .collect::<Vec<_>>()
            .join(", "),
        table = def.target_table,
    );
    let pool = db.pool().clone();
    // The query runs in a task of its own and hands rows over a bounded
    // channel, so memory stays flat whatever the file wrote and the stream
    // does not borrow the pool.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<WrittenRow, StoreError>>(256);
    tokio::spawn(async move {
        let mut rows = sqlx::query(AssertSqlSafe(sql))
            .bind(organization_id)
            .bind(file_id)
            .fetch(&pool);
        while let Some(row) = rows.next().await {
            let item = row.map_err(StoreError::from).and_then(|row| {
                Ok(WrittenRow {
                    row: row
                        .try_get::<Option<i64>, _>("source_row")?
                        .unwrap_or_default(),
                    created: row.try_get("created")?,
                    key: row.try_get("key")?,
                    values: row.try_get("vals")?,
                })
            });
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

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
    /// The import is in another state than completed_with_errors.
    NotRetryable(String),
    /// Failed rows or their edits changed while the retry files were built;
    /// build them again.
    Changed,
    /// The retention job deleted the import's results.
    Purged,
}

/// Queues a retry of an import's still-failed rows as its next attempt: the
/// rows' errors are superseded, their files go back to `queued` with their
/// counts adjusted (the rows are pending again), and the import takes a new
/// place at the end of its organization's queue. `built_at` is when the
/// retry files were built: edits made since refuse the retry (`Changed`).
pub async fn queue_retry(
    db: &Db,
    import_id: Uuid,
    files: &[RetryFile],
    built_at: DateTime<Utc>,
    by: &Requester,
) -> Result<Retry, StoreError> {
    let mut tx = db.pool().begin().await?;
    let org: Option<i64> = sqlx::query_scalar("SELECT organization_id FROM imports WHERE id = $1")
        .bind(import_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(org) = org else {
        return Ok(Retry::NotRetryable("gone".into()));
    };
    // The same order as StartImport: the organization's queue lock, then the import.
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('passare_imports.queue:' || $1::text, 0))",
    )
    .bind(org)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(
        "SELECT state, attempt, results_purged_at IS NOT NULL AS purged FROM imports WHERE id = $1 FOR UPDATE",
    )
    .bind(import_id)
    .fetch_one(&mut *tx)
    .await?;
    let state: String = row.try_get("state")?;
    if row.try_get::<bool, _>("purged")? {
        return Ok(Retry::Purged);
    }
    if state != "completed_with_errors" {
        return Ok(Retry::NotRetryable(state));
    }
    let attempt: i32 = row.try_get::<i32, _>("attempt")? + 1;
    let edited_since: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM row_edits WHERE import_id = $1 AND edited_at > $2)",
    )
    .bind(import_id)
    .bind(built_at)
    .fetch_one(&mut *tx)
    .await?;
    let open: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT file_id, count(DISTINCT row_number) FROM row_errors
          WHERE import_id = $1 AND superseded_at IS NULL GROUP BY file_id ORDER BY file_id",
    )
    .bind(import_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut planned: Vec<(Uuid, i64)> = files
        .iter()
        .map(|f| (f.file_id, f.rows.len() as i64))
        .collect();
    planned.sort();
    if edited_since || planned != open {
        return Ok(Retry::Changed);
    }
    sqlx::query(
        "UPDATE row_errors SET superseded_at = clock_timestamp()
          WHERE import_id = $1 AND superseded_at IS NULL",
    )
    .bind(import_id)
    .execute(&mut *tx)
    .await?;
    let mut queued = Vec::new();
    let mut total = 0;
    for f in files {
        let retried = f.rows.len() as i64;
        total += retried;
        let next_seq: i32 =
            sqlx::query_scalar("SELECT COALESCE(max(seq) + 1, 0) FROM chunks WHERE file_id = $1")
                .bind(f.file_id)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "UPDATE import_files SET state = 'queued', rows_failed = rows_failed - $2,
                    rows_processed = rows_processed - $2, chunks_total = chunks_total + $3,
                    updated_at = clock_timestamp()
              WHERE id = $1",
        )
        .bind(f.file_id)
        .bind(retried)
        .bind(f.chunks.len() as i32)
        .execute(&mut *tx)
        .await?;
        let mut offset = 0usize;
        for (i, c) in f.chunks.iter().enumerate() {
            let numbers = f
                .rows
                .get(offset..offset + c.rows as usize)
                .ok_or_else(|| {
                    StoreError::Corrupt("a retry chunk has more rows than its file".into())
                })?
                .to_vec();
            offset += c.rows as usize;
            let row = sqlx::query(
                "INSERT INTO chunks (import_id, file_id, organization_id, seq, first_row, row_count,
                        byte_start, byte_end, state, attempt, data_key, row_numbers)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, $10, $11)
                 RETURNING id, seq",
            )
            .bind(import_id)
            .bind(f.file_id)
            .bind(org)
            .bind(next_seq + i as i32)
            .bind(numbers.first().copied().unwrap_or_default())
            .bind(c.rows as i64)
            .bind(c.start as i64)
            .bind(c.end as i64)
            .bind(attempt)
            .bind(&f.data_key)
            .bind(&numbers)
            .fetch_one(&mut *tx)
            .await?;
            queued.push((row.try_get::<i64, _>("id")?, row.try_get::<i32, _>("seq")?));
        }
    }
    sqlx::query(
        "UPDATE imports SET state = 'queued', attempt = $2, queue_seq = nextval('import_queue_seq'),
                queued_at = clock_timestamp(), finished_at = NULL, error = NULL,
                updated_at = clock_timestamp()
          WHERE id = $1",
    )
    .bind(import_id)
    .bind(attempt)
    .execute(&mut *tx)
    .await?;
    history::event(
        &mut tx,
        import_id,
        "retry_queued",
        Some(by),
        &format!(
            "attempt {attempt}: {total} failed rows of {} files",
            files.len()
        ),
    )
    .await?;
    notify(&mut tx, import_id).await?;
    tx.commit().await?;
    let ids: Vec<i64> = queued.iter().map(|(id, _)| *id).collect();
    let chunks = crate::repo::chunks_by_id(db.orm(), &ids).await?;
    Ok(Retry::Queued {
        organization_id: org,
        attempt,
        rows: total,
        chunks,
    })
}

/// Imports finished before `cutoff` (and drafts created before it) whose
/// uploaded files and row-level results are still stored, oldest first.
pub async fn due_for_purge(
    db: &Db,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM imports
          WHERE results_purged_at IS NULL
            AND (finished_at < $1 OR (state = 'draft' AND created_at < $1))
          ORDER BY COALESCE(finished_at, created_at)
          LIMIT $2",
    )
    .bind(cutoff)
    .bind(limit)
    .fetch_all(db.pool())
    .await?)
}

/// An import being purged: its row is locked (no start, upload, edit or
/// retry can slip in), it was checked to be still due, and its row-level
/// results are deleted in the open transaction. Delete `keys` from storage,
/// then [`Purge::finish`]; dropping it instead rolls everything back.
pub struct Purge {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    pub import_id: Uuid,
    pub keys: Vec<String>,
}

/// Starts purging an import if it is still due: finished before `cutoff`,
/// or a draft created before it, and not purged yet.
pub async fn begin_purge(
    db: &Db,
    import_id: Uuid,
    cutoff: DateTime<Utc>,
) -> Result<Option<Purge>, StoreError> {
    let mut tx = db.pool().begin().await?;
    let due: Option<bool> = sqlx::query_scalar(
        "SELECT results_purged_at IS NULL
                AND (finished_at < $2 OR (state = 'draft' AND created_at < $2))
           FROM imports WHERE id = $1 FOR UPDATE",
    )
    .bind(import_id)
    .bind(cutoff)
    .fetch_optional(&mut *tx)
    .await?;
    if due != Some(true) {
        return Ok(None);
    }
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT k FROM (
             SELECT storage_key AS k FROM import_files WHERE import_id = $1
             UNION SELECT data_key FROM import_files WHERE import_id = $1 AND data_key IS NOT NULL
             UNION SELECT data_key FROM chunks WHERE import_id = $1 AND data_key IS NOT NULL) keys
          ORDER BY k",
    )
    .bind(import_id)
    .fetch_all(&mut *tx)
    .await?;
    for table in ["row_errors", "row_edits", "chunk_failures", "import_undo"] {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE import_id = $1"
        )))
        .bind(import_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(Some(Purge {
        tx,
        import_id,
        keys,
    }))
}

impl Purge {
    /// Records the purge once the files are deleted: the import keeps its
    /// summary and says when its results went; a draft is ended `stopped`
    /// (its files are gone).
    pub async fn finish(mut self, retention_days: u64) -> Result<(), StoreError> {
        let reason = format!("abandoned draft: its files were deleted after {retention_days} days");
        let was_draft: bool = sqlx::query_scalar(
            "WITH before AS (SELECT state = 'draft' AS draft FROM imports WHERE id = $1)
             UPDATE imports SET results_purged_at = clock_timestamp(), updated_at = clock_timestamp(),
                    state = CASE WHEN state = 'draft' THEN 'stopped' ELSE state END,
                    stop_reason = CASE WHEN state = 'draft' THEN $2 ELSE stop_reason END,
                    stopped_at = CASE WHEN state = 'draft' THEN clock_timestamp() ELSE stopped_at END,
                    finished_at = COALESCE(finished_at, clock_timestamp())
              WHERE id = $1
          RETURNING (SELECT draft FROM before)",
        )
        .bind(self.import_id)
        .bind(&reason)
        .fetch_one(&mut *self.tx)
        .await?;
        if was_draft {
            sqlx::query(
                "UPDATE import_files SET state = 'stopped', updated_at = clock_timestamp()
                  WHERE import_id = $1 AND state IN ('ready', 'invalid')",
            )
            .bind(self.import_id)
            .execute(&mut *self.tx)
            .await?;
            history::event(&mut self.tx, self.import_id, "stopped", None, &reason).await?;
        }
        history::event(
            &mut self.tx,
            self.import_id,
            "results_purged",
            None,
            &format!("uploaded files and row-level results deleted after {retention_days} days"),
        )
        .await?;
        notify(&mut self.tx, self.import_id).await?;
        self.tx.commit().await?;
        Ok(())
    }
}
