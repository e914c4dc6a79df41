//! Failed chunk attempts: what a developer needs to tell why a chunk failed
//! (kind, message, cause chain, backtrace, attempt, file, rows, worker,
//! timestamps), recorded as each attempt fails, and read back newest first.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::entities::{chunk_failures, chunks};
use crate::states::{ChunkState, FailureOutcome};
use crate::{StoreError, exec, timeline};

/// One failed attempt, as the worker saw it. The chunk's own facts (import,
/// file, rows, queue time) are read from its row when the record is written.
#[derive(Debug, Clone)]
pub struct NewFailure {
    pub chunk_id: i64,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub error_kind: String,
    pub transient: bool,
    pub message: String,
    /// The error and its sources, outermost first.
    pub causes: Vec<String>,
    pub backtrace: String,
    pub worker_host: String,
    pub worker_pid: i32,
    pub outcome: FailureOutcome,
    pub retry_at: Option<DateTime<Utc>>,
    pub read_started_at: Option<DateTime<Utc>>,
    pub write_started_at: Option<DateTime<Utc>>,
    /// When the worker met the failure (the retry time counts from it, not
    /// from when the record could be written).
    pub failed_at: DateTime<Utc>,
}

/// Records a failed attempt (in the caller's transaction).
pub async fn insert(conn: &mut PgConnection, f: &NewFailure) -> Result<(), StoreError> {
    // Copies the chunk's facts in the same statement, so the record matches
    // the chunk as it was when the attempt failed.
    sqlx::query(
        "INSERT INTO chunk_failures (chunk_id, import_id, file_id, organization_id, chunk_seq,
                first_row, last_row, attempt, error_kind, transient, message, causes, backtrace,
                worker_host, worker_pid, outcome, retry_at, queued_at, read_started_at, write_started_at,
                failed_at)
         SELECT c.id, c.import_id, c.file_id, c.organization_id, c.seq,
                COALESCE((SELECT min(r) FROM unnest(c.row_numbers) r), c.first_row),
                COALESCE((SELECT max(r) FROM unnest(c.row_numbers) r), c.first_row + GREATEST(c.row_count, 1) - 1),
                $2, $3, $4, $5, $6, $7,
                $8, $9, $10, $11, c.queued_at, $12, $13, $14
           FROM chunks c WHERE c.id = $1",
    )
    .bind(f.chunk_id)
    .bind(f.attempt)
    .bind(&f.error_kind)
    .bind(f.transient)
    .bind(&f.message)
    .bind(serde_json::json!(f.causes))
    .bind(&f.backtrace)
    .bind(&f.worker_host)
    .bind(f.worker_pid)
    .bind(f.outcome)
    .bind(f.retry_at)
    .bind(f.read_started_at)
    .bind(f.write_started_at)
    .bind(f.failed_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a transient failure and holds the chunk back until `retry_at`
/// (its place in the organization's order is kept: nothing of the
/// organization loads before it). Returns `false` when the chunk was no
/// longer queued (settled meanwhile), in which case nothing is recorded.
pub async fn schedule_retry(conn: &mut PgConnection, f: &NewFailure) -> Result<bool, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let held = exec::run(
        &mut tx,
        chunks::Entity::update_many()
            .col_expr(chunks::Column::Attempts, Expr::cust("attempts + 1"))
            .col_expr(chunks::Column::NotBefore, Expr::value(f.retry_at))
            .filter(chunks::Column::Id.eq(f.chunk_id))
            .filter(chunks::Column::State.eq(ChunkState::Queued)),
    )
    .await?
        == 1;
    if held {
        insert(&mut tx, f).await?;
        // Watchers see the failure count move.
        let chunk = exec::one(&mut tx, chunks::Entity::find_by_id(f.chunk_id)).await?;
        if let Some(chunk) = chunk {
            timeline::notify(&mut tx, chunk.import_id).await?;
        }
    }
    tx.commit().await?;
    Ok(held)
}

/// Which failures to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub import_id: Option<Uuid>,
    pub organization_id: Option<i64>,
}

/// A page of failures, newest first, strictly older than `before` (an id).
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<chunk_failures::Model>, StoreError> {
    use chunk_failures::Column as C;
    let cond = Condition::all()
        .add_option(filter.import_id.map(|id| C::ImportId.eq(id)))
        .add_option(filter.organization_id.map(|org| C::OrganizationId.eq(org)))
        .add_option(before.map(|id| C::Id.lt(id)));
    let select = chunk_failures::Entity::find().filter(cond);
    exec::all(conn, select.order_by_desc(C::Id).limit(limit)).await
}

/// The latest `limit` failed attempts of each of `import_ids` (imports with
/// none are absent), newest first, in one statement.
pub async fn latest_for_imports(
    conn: &mut PgConnection,
    import_ids: &[Uuid],
    limit: u64,
) -> Result<std::collections::HashMap<Uuid, Vec<chunk_failures::Model>>, StoreError> {
    let rows: Vec<chunk_failures::Model> = exec::all_raw(
        conn,
        sqlx::query(
            "SELECT * FROM (
                 SELECT f.*, row_number() OVER (PARTITION BY import_id ORDER BY id DESC) AS rank
                   FROM chunk_failures f WHERE import_id = ANY($1)) ranked
              WHERE rank <= $2 ORDER BY id DESC",
        )
        .bind(import_ids)
        .bind(limit as i64),
    )
    .await?;
    let mut by_import: std::collections::HashMap<Uuid, Vec<chunk_failures::Model>> =
        std::collections::HashMap::new();
    for f in rows {
        by_import.entry(f.import_id).or_default().push(f);
    }
    Ok(by_import)
}

/// How many failed chunk attempts each of `import_ids` has (imports with
/// none are absent), in one statement.
pub async fn count_for_imports(
    conn: &mut PgConnection,
    import_ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, u64>, StoreError> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT import_id, count(*) FROM chunk_failures WHERE import_id = ANY($1) GROUP BY import_id",
    )
    .bind(import_ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, n)| (id, n.max(0) as u64))
        .collect())
}
