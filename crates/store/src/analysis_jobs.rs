//! Background analyses: one job per import (the latest asked for), claimed
//! by a worker under a lease it renews with every chunk it checks. A job
//! whose worker died is claimed again once its lease has passed; the
//! generation claimed fences out a worker that lost its job. See
//! docs/state-machine.md ("Analysis jobs").

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Requester, StoreError, timeline};

/// A job as `GetImport` shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AnalysisJob {
    pub import_id: Uuid,
    pub organization_id: i64,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    pub generation: i64,
    pub attempts: i32,
    pub rows_done: i64,
    pub rows_total: i64,
    pub error: Option<String>,
    pub requested_by_id: String,
    pub requested_by_name: String,
    pub requested_by_email: String,
    pub requested_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Asked for by StartImport: the import is queued when the report finds
    /// nothing blocking, and fails with the reason when it does.
    pub start_when_done: bool,
}

impl AnalysisJob {
    /// Queued or running: the import may not start yet.
    pub fn is_pending(&self) -> bool {
        self.state == "queued" || self.state == "running"
    }

    pub fn requester(&self) -> Requester {
        Requester {
            id: self.requested_by_id.clone(),
            name: self.requested_by_name.clone(),
            email: self.requested_by_email.clone(),
        }
    }
}

const COLUMNS: &str = "import_id, organization_id, state, generation, attempts, rows_done, \
    rows_total, error, requested_by_id, requested_by_name, requested_by_email, requested_at, \
    started_at, ended_at, start_when_done";

/// An analysis asked for: of which import, how many rows, and whether the
/// import starts when the report finds nothing blocking.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub import_id: Uuid,
    pub organization_id: i64,
    pub rows_total: i64,
    pub start_when_done: bool,
}

/// Queues an analysis of the import, replacing the job of an earlier
/// request (a worker still running that one is fenced out).
pub async fn request(
    conn: &mut PgConnection,
    asked: Request,
    by: &Requester,
) -> Result<(), StoreError> {
    let Request {
        import_id,
        organization_id,
        rows_total,
        start_when_done,
    } = asked;
    sqlx::query(
        "INSERT INTO analysis_jobs (import_id, organization_id, state, rows_total,
                requested_by_id, requested_by_name, requested_by_email, start_when_done)
         VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7)
         ON CONFLICT (import_id) DO UPDATE SET
            state = 'queued', generation = analysis_jobs.generation + 1, attempts = 0,
            rows_done = 0, rows_total = EXCLUDED.rows_total, error = NULL,
            start_when_done = EXCLUDED.start_when_done,
            requested_by_id = EXCLUDED.requested_by_id,
            requested_by_name = EXCLUDED.requested_by_name,
            requested_by_email = EXCLUDED.requested_by_email,
            requested_at = now(), started_at = NULL, ended_at = NULL, lease_until = NULL",
    )
    .bind(import_id)
    .bind(organization_id)
    .bind(rows_total)
    .bind(&by.id)
    .bind(&by.name)
    .bind(&by.email)
    .bind(start_when_done)
    .execute(&mut *conn)
    .await?;
    // Wakes an idle worker's analysis runner at once (it also looks every
    // half second, in case a notice is missed).
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WAITING_CHANNEL)
        .execute(&mut *conn)
        .await?;
    timeline::notify(conn, import_id).await
}

/// The PostgreSQL channel told of every analysis asked for.
pub const WAITING_CHANNEL: &str = "passare_imports_analysis_waiting";

/// Notices of analyses asked for, on a connection of their own: `next`
/// returns when one arrives (or the connection was lost and is being
/// restored, which may have missed one).
pub struct Waiting(sqlx::postgres::PgListener);

impl Waiting {
    pub async fn listen(db: &crate::Db) -> Result<Self, StoreError> {
        Self::listen_to(db, WAITING_CHANNEL).await
    }

    /// Notices on `channel` (the record events' relay listens to its own).
    pub async fn listen_to(db: &crate::Db, channel: &str) -> Result<Self, StoreError> {
        // A connection of its own, outside the process's pool: the listener
        // holds it for as long as it lives.
        let own = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with((*db.pool().connect_options()).clone());
        let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
        listener.listen(channel).await?;
        Ok(Self(listener))
    }

    /// Waits for the next notice; an error means the connection broke (the
    /// listener reconnects on the next call).
    pub async fn next(&mut self) -> Result<(), StoreError> {
        self.0.recv().await?;
        Ok(())
    }
}

/// The import's latest analysis job.
pub async fn of_import(
    conn: &mut PgConnection,
    import_id: Uuid,
) -> Result<Option<AnalysisJob>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM analysis_jobs WHERE import_id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(import_id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// The jobs of a page of imports, in one statement.
pub async fn of_imports(
    conn: &mut PgConnection,
    import_ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, AnalysisJob>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM analysis_jobs WHERE import_id = ANY($1)");
    let jobs: Vec<AnalysisJob> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(import_ids)
        .fetch_all(&mut *conn)
        .await?;
    Ok(jobs.into_iter().map(|j| (j.import_id, j)).collect())
}

/// Claims the oldest job waiting, or running under a lease that has passed
/// (its worker died), for `lease_secs`.
pub async fn claim(
    conn: &mut PgConnection,
    lease_secs: u64,
) -> Result<Option<AnalysisJob>, StoreError> {
    let sql = format!(
        "UPDATE analysis_jobs SET state = 'running', generation = generation + 1,
                attempts = attempts + 1, rows_done = 0,
                started_at = coalesce(started_at, now()),
                lease_until = now() + make_interval(secs => $1)
          WHERE import_id = (
                SELECT import_id FROM analysis_jobs
                 WHERE state = 'queued' OR (state = 'running' AND lease_until < now())
                 ORDER BY requested_at
                 FOR UPDATE SKIP LOCKED
                 LIMIT 1)
         RETURNING {COLUMNS}"
    );
    let job: Option<AnalysisJob> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(lease_secs as f64)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(j) = &job {
        timeline::notify(conn, j.import_id).await?;
    }
    Ok(job)
}

/// Records the rows checked so far and renews the lease; `false` when the
/// job is no longer this worker's (asked for again, or claimed by another
/// after the lease passed).
pub async fn progress(
    conn: &mut PgConnection,
    job: &AnalysisJob,
    rows_done: i64,
    lease_secs: u64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE analysis_jobs SET rows_done = $3, lease_until = now() + make_interval(secs => $4)
          WHERE import_id = $1 AND generation = $2 AND state = 'running'",
    )
    .bind(job.import_id)
    .bind(job.generation)
    .bind(rows_done)
    .bind(lease_secs as f64)
    .execute(&mut *conn)
    .await?;
    announce_if(conn, job, done.rows_affected() > 0).await
}

/// Takes the job to `done` or `failed` (with `error`), if it is still this
/// worker's; run in the transaction that stores the report, it keeps a
/// fenced-out worker's report out. `false` when the job is no longer its.
pub async fn end(
    conn: &mut PgConnection,
    job: &AnalysisJob,
    error: Option<&str>,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE analysis_jobs SET state = CASE WHEN $3::text IS NULL THEN 'done' ELSE 'failed' END,
                error = $3, ended_at = now(), lease_until = NULL,
                rows_done = CASE WHEN $3::text IS NULL THEN rows_total ELSE rows_done END
          WHERE import_id = $1 AND generation = $2 AND state = 'running'",
    )
    .bind(job.import_id)
    .bind(job.generation)
    .bind(error)
    .execute(&mut *conn)
    .await?;
    announce_if(conn, job, done.rows_affected() > 0).await
}

/// Tells watchers of the job's import when the fenced update `changed` it;
/// returns whether it did.
async fn announce_if(
    conn: &mut PgConnection,
    job: &AnalysisJob,
    changed: bool,
) -> Result<bool, StoreError> {
    if changed {
        timeline::notify(conn, job.import_id).await?;
    }
    Ok(changed)
}
