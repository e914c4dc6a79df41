//! The queue monitor's reads (docs/monitoring.md): per organization with
//! work, its running and queued imports, waiting, failed and dead-lettered
//! chunks and last activity; the totals over all of them; and the rows
//! loaded per minute. What each worker holds is in [`crate::workers`].

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::StoreError;

/// One organization with imports queued, running or rolling back, or a drain.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrganizationQueue {
    pub organization_id: i64,
    pub organization_name: String,
    pub running_import: Option<Uuid>,
    /// Queued imports, in the order they will load.
    pub queued_imports: Vec<Uuid>,
    pub waiting_chunks: i64,
    /// When the oldest waiting chunk was queued (or its retry came due).
    pub oldest_waiting: Option<DateTime<Utc>>,
    /// Chunks given up, of the organization's queued and running imports.
    pub failed_chunks: i64,
    /// Dead letters waiting for an operator (requeue or discard).
    pub dead_lettered_chunks: i64,
    pub paused: bool,
    /// The latest chunk the organization finished.
    pub last_activity: Option<DateTime<Utc>>,
}

/// Totals over every organization.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Totals {
    pub organizations: i64,
    pub running_imports: i64,
    pub queued_imports: i64,
    pub waiting_chunks: i64,
    pub dead_lettered_chunks: i64,
}

/// A page of organizations with work, by id after `after`.
pub async fn organizations(
    conn: &mut PgConnection,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<OrganizationQueue>, StoreError> {
    Ok(sqlx::query_as(
        "WITH busy AS (
             SELECT organization_id FROM imports WHERE state IN ('queued', 'running', 'rolling_back')
             UNION SELECT organization_id FROM drains
             UNION SELECT organization_id FROM dead_letters WHERE resolution IS NULL)
         SELECT o.id AS organization_id, o.name AS organization_name,
                r.id AS running_import,
                COALESCE((SELECT array_agg(i.id ORDER BY i.queue_seq) FROM imports i
                           WHERE i.organization_id = o.id AND i.state = 'queued'
                             AND i.id IS DISTINCT FROM r.id), '{}')
                    AS queued_imports,
                (SELECT count(*) FROM chunks c WHERE c.organization_id = o.id
                    AND c.state = 'queued') AS waiting_chunks,
                (SELECT min(COALESCE(c.not_before, c.queued_at)) FROM chunks c
                  WHERE c.organization_id = o.id AND c.state = 'queued') AS oldest_waiting,
                (SELECT count(*) FROM chunks c JOIN imports i ON i.id = c.import_id
                  WHERE c.organization_id = o.id AND c.state = 'failed'
                    AND i.state IN ('queued', 'running', 'rolling_back')) AS failed_chunks,
                (SELECT count(*) FROM dead_letters d
                  WHERE d.organization_id = o.id AND d.resolution IS NULL) AS dead_lettered_chunks,
                EXISTS (SELECT 1 FROM import_pauses p
                         WHERE p.organization_id IS NULL OR p.organization_id = o.id) AS paused,
                (SELECT max(c.finished_at) FROM chunks c WHERE c.organization_id = o.id)
                    AS last_activity
           FROM organizations o JOIN busy b ON b.organization_id = o.id
           -- The import a worker holds a chunk of (still `queued` until that
           -- first chunk commits), else the one running or rolling back.
           LEFT JOIN LATERAL (
                SELECT COALESCE(
                    (SELECT c.import_id FROM drains d JOIN chunks c ON c.id = d.chunk_id
                      WHERE d.organization_id = o.id),
                    (SELECT i.id FROM imports i WHERE i.organization_id = o.id
                        AND i.state IN ('running', 'rolling_back') ORDER BY i.queue_seq LIMIT 1))
                    AS id) r ON true
          WHERE ($1::bigint IS NULL OR o.id > $1)
          ORDER BY o.id
          LIMIT $2",
    )
    .bind(after)
    .bind(limit.min(i64::MAX as u64) as i64)
    .fetch_all(conn)
    .await?)
}

/// Totals over every organization.
pub async fn totals(conn: &mut PgConnection) -> Result<Totals, StoreError> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(DISTINCT organization_id) FROM imports WHERE state IN ('queued', 'running', 'rolling_back'))
                    AS organizations,
                (SELECT count(*) FROM imports WHERE state IN ('running', 'rolling_back'))
                    AS running_imports,
                (SELECT count(*) FROM imports WHERE state = 'queued') AS queued_imports,
                (SELECT count(*) FROM chunks WHERE state = 'queued') AS waiting_chunks,
                (SELECT count(*) FROM dead_letters WHERE resolution IS NULL)
                    AS dead_lettered_chunks",
    )
    .fetch_one(conn)
    .await?)
}

/// What the metrics of a server or gateway read from the database at a
/// scrape (docs/operations.md).
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Imports per state, every state present.
    pub imports_by_state: Vec<(String, i64)>,
    pub waiting_chunks: i64,
    pub oldest_waiting: Option<DateTime<Utc>>,
    /// The organizations with the most waiting chunks: id, waiting chunks,
    /// oldest waiting since.
    pub top_organizations: Vec<(i64, i64, Option<DateTime<Utc>>)>,
    pub dead_lettered_chunks: i64,
    pub live_workers: i64,
}

/// Reads the gauges, with the `top` organizations by backlog.
pub async fn gauges(conn: &mut PgConnection, top: usize) -> Result<Gauges, StoreError> {
    let imports_by_state =
        sqlx::query_as("SELECT state::text, count(*) FROM imports GROUP BY state ORDER BY state")
            .fetch_all(&mut *conn)
            .await?;
    let (waiting_chunks, oldest_waiting): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT count(*), min(COALESCE(not_before, queued_at)) FROM chunks WHERE state = 'queued'",
    )
    .fetch_one(&mut *conn)
    .await?;
    let top_organizations = sqlx::query_as(
        "SELECT organization_id, count(*), min(COALESCE(not_before, queued_at))
           FROM chunks WHERE state = 'queued'
          GROUP BY organization_id ORDER BY count(*) DESC, organization_id LIMIT $1",
    )
    .bind(top as i64)
    .fetch_all(&mut *conn)
    .await?;
    let (dead_lettered_chunks, live_workers): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM dead_letters WHERE resolution IS NULL),
                (SELECT count(*) FROM workers WHERE expires_at >= now())",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Gauges {
        imports_by_state,
        waiting_chunks,
        oldest_waiting,
        top_organizations,
        dead_lettered_chunks,
        live_workers,
    })
}

/// Rows of the chunks finished in each of the last `minutes` minutes, oldest
/// first (minutes with none are 0).
pub async fn rows_per_minute(
    conn: &mut PgConnection,
    minutes: i32,
) -> Result<Vec<(DateTime<Utc>, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT m.minute, COALESCE(sum(c.row_count), 0)::bigint
           FROM generate_series(date_trunc('minute', now()) - make_interval(mins => $1 - 1),
                                date_trunc('minute', now()), interval '1 minute') AS m(minute)
           LEFT JOIN chunks c ON c.finished_at >= m.minute
                             AND c.finished_at < m.minute + interval '1 minute'
                             AND c.state IN ('done', 'failed')
          GROUP BY m.minute ORDER BY m.minute",
    )
    .bind(minutes)
    .fetch_all(conn)
    .await?)
}

/// A read-only transaction that sees one snapshot, so the monitor's reads
/// agree with each other (a drain and the import of its chunk, say).
pub async fn snapshot(
    conn: &mut PgConnection,
) -> Result<sqlx::Transaction<'_, sqlx::Postgres>, StoreError> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}
