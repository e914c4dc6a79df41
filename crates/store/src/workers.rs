//! Live workers and what they hold, for the queue monitor: each worker
//! process writes a heartbeat row; each drain records its organization and
//! the chunk in hand (`migrations/sql/0011_workers.sql`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::StoreError;

/// A worker process as its heartbeat row shows it, with the drains it holds.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveWorker {
    pub name: String,
    pub host: String,
    pub pid: i32,
    pub slots: i32,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

/// One organization's drain: who holds it, the chunk in hand and since when,
/// and whether it is stalled (its worker has no live heartbeat, or the chunk
/// has been in hand longer than `attempt_limit`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Drain {
    pub organization_id: i64,
    pub worker: String,
    pub drain_started_at: DateTime<Utc>,
    pub chunk_id: Option<i64>,
    pub chunk_started_at: Option<DateTime<Utc>>,
    pub stalled: bool,
}

/// The process identity a heartbeat writes.
#[derive(Debug, Clone)]
pub struct WorkerIdentity {
    pub name: String,
    pub host: String,
    pub pid: i32,
    pub slots: i32,
    pub started_at: DateTime<Utc>,
}

/// Writes the worker's heartbeat, valid for `expiry`, and deletes the rows of
/// workers whose heartbeat expired.
pub async fn heartbeat(
    conn: &mut PgConnection,
    me: &WorkerIdentity,
    expiry: std::time::Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO workers (name, host, pid, slots, started_at, heartbeat_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, now(), now() + make_interval(secs => $6))
         ON CONFLICT (name) DO UPDATE
            SET heartbeat_at = now(), expires_at = now() + make_interval(secs => $6)",
    )
    .bind(&me.name)
    .bind(&me.host)
    .bind(me.pid)
    .bind(me.slots)
    .bind(me.started_at)
    .bind(expiry.as_secs_f64())
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM workers WHERE expires_at < now()")
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes the worker's row when it stops cleanly.
pub async fn stopped(conn: &mut PgConnection, name: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM workers WHERE name = $1")
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

/// Workers whose heartbeat has not expired, oldest first.
pub async fn live(conn: &mut PgConnection) -> Result<Vec<LiveWorker>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT name, host, pid, slots, started_at, heartbeat_at FROM workers
          WHERE expires_at >= now() ORDER BY started_at, name",
    )
    .fetch_all(conn)
    .await?)
}

/// Records that `worker` took the organization's drain lease.
pub async fn drain_taken(
    conn: &mut PgConnection,
    organization_id: i64,
    worker: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO drains (organization_id, worker) VALUES ($1, $2)
         ON CONFLICT (organization_id) DO UPDATE
            SET worker = $2, drain_started_at = clock_timestamp(),
                chunk_id = NULL, chunk_started_at = NULL",
    )
    .bind(organization_id)
    .bind(worker)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the chunk `worker` begins in the organization's drain.
pub async fn chunk_taken(
    conn: &mut PgConnection,
    organization_id: i64,
    worker: &str,
    chunk_id: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE drains SET chunk_id = $3, chunk_started_at = clock_timestamp()
          WHERE organization_id = $1 AND worker = $2",
    )
    .bind(organization_id)
    .bind(worker)
    .bind(chunk_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that `worker` released the organization's drain lease.
pub async fn drain_released(
    conn: &mut PgConnection,
    organization_id: i64,
    worker: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM drains WHERE organization_id = $1 AND worker = $2")
        .bind(organization_id)
        .bind(worker)
        .execute(conn)
        .await?;
    Ok(())
}

/// Every recorded drain, by organization.
pub async fn drains(
    conn: &mut PgConnection,
    attempt_limit: std::time::Duration,
) -> Result<Vec<Drain>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT d.organization_id, d.worker, d.drain_started_at, d.chunk_id, d.chunk_started_at,
                (w.name IS NULL
                 OR COALESCE(d.chunk_started_at < now() - make_interval(secs => $1), false))
                    AS stalled
           FROM drains d
           LEFT JOIN workers w ON w.name = d.worker AND w.expires_at >= now()
          ORDER BY d.organization_id",
    )
    .bind(attempt_limit.as_secs_f64())
    .fetch_all(conn)
    .await?)
}
