//! Moments in the test's database that tests aim at, and faults they inject
//! there: a chunk write in flight (a session holding the organization's write
//! fence), cutting every session of the database, and an organization's
//! drain lease held by the test itself. The lock keys are the worker's own
//! (see docs/per-organization-concurrency.md); change them together.

use std::time::Duration;

use passare_imports_store::Db;
use passare_imports_store::sqlx::{self, Connection, postgres::PgConnection};

use crate::test_env::{TestEnv, admin_db};

/// The advisory-lock key of an organization's write fence, held by the
/// transaction that writes one of its chunks (`$1`: the organization id).
const WRITE_FENCE_KEY: &str = "hashtextextended('passare_imports.write:' || $1::text, 0)";

/// The advisory-lock key of an organization's drain lease, held by the
/// worker that drains it (`$1`: the organization id).
const DRAIN_LEASE_KEY: &str = "hashtextextended('passare_imports.drain:' || $1::text, 0)";

/// Sessions of database `$2` holding the write fence of organization `$1`: a
/// bigint advisory lock shows in pg_locks as its high half (classid), low
/// half (objid) and objsubid 1.
fn fence_holders_sql() -> String {
    format!(
        "SELECT l.pid FROM pg_locks l, (SELECT {WRITE_FENCE_KEY} AS key) k
          WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
            AND l.database = (SELECT oid FROM pg_database WHERE datname = $2)
            AND l.classid::bigint = ((k.key >> 32) & 4294967295)
            AND l.objid::bigint = (k.key & 4294967295)"
    )
}

/// A chunk write seen in flight.
#[derive(Debug, Clone, Copy)]
pub struct WriteInFlight {
    /// The writing session.
    pub pid: i32,
    /// Chunks of the organization done (committed) at that moment: the one
    /// in flight is not among them.
    pub chunks_done: i64,
    /// When the test saw it.
    pub seen_at: chrono::DateTime<chrono::Utc>,
}

impl TestEnv {
    /// The chunk write of `org` in flight right now, if any.
    pub async fn chunk_write_in_flight(&self, org: i64) -> anyhow::Result<Option<WriteInFlight>> {
        let sql = format!(
            "SELECT w.pid, (SELECT count(*) FROM chunks WHERE organization_id = $1 AND state = 'done')
               FROM ({}) w LIMIT 1",
            fence_holders_sql()
        );
        let found: Option<(i32, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .bind(&self.database)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(found.map(|(pid, chunks_done)| WriteInFlight {
            pid,
            chunks_done,
            seen_at: chrono::Utc::now(),
        }))
    }

    /// Waits until a chunk of `org` is being written (polling every few
    /// milliseconds), at most `within`.
    pub async fn wait_for_chunk_write(
        &self,
        org: i64,
        within: Duration,
    ) -> anyhow::Result<WriteInFlight> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(write) = self.chunk_write_in_flight(org).await? {
                return Ok(write);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "no chunk of organization {org} was written within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until the database has ended session `pid` (a killed process's:
    /// its transaction rolled back), at most 10 s.
    pub async fn wait_session_end(&self, pid: i32) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let query = format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}");
        while crate::count(&self.db, &query).await? > 0 {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "session {pid} outlived its killed process"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Cuts every connection to this test's database (`pg_terminate_backend`);
    /// returns how many were cut.
    pub async fn cut_database_connections(&self) -> anyhow::Result<i64> {
        let admin = admin_db().await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.database)
        .fetch_one(admin.pool())
        .await?;
        admin.close().await;
        Ok(n)
    }

    /// Waits (at most `within`) for a moment when a chunk of `org` is being
    /// written and, in the same statement, cuts every connection to this
    /// test's database. A write that was committing in that instant may
    /// still commit: [`Cut::writers`] says what was seen, the chunk failures
    /// say what was broken.
    pub async fn cut_connections_mid_write(
        &self,
        org: i64,
        within: Duration,
    ) -> anyhow::Result<Cut> {
        let admin = admin_db().await?;
        let sql = format!(
            "WITH writers AS ({}),
                  cut AS (SELECT pg_terminate_backend(a.pid) AS ok FROM pg_stat_activity a
                           WHERE a.datname = $2 AND a.pid <> pg_backend_pid()
                             AND EXISTS (SELECT 1 FROM writers))
             SELECT (SELECT count(*) FROM writers), (SELECT count(*) FROM cut WHERE ok)",
            fence_holders_sql()
        );
        let deadline = tokio::time::Instant::now() + within;
        let result = loop {
            let (writers, cut): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(org)
                .bind(&self.database)
                .fetch_one(admin.pool())
                .await?;
            if writers > 0 {
                break Ok(Cut {
                    writers,
                    cut,
                    at: chrono::Utc::now(),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                break Err(anyhow::anyhow!(
                    "no chunk of organization {org} was written within {within:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        admin.close().await;
        result
    }
}

/// Connections cut while a chunk write was in flight.
#[derive(Debug, Clone, Copy)]
pub struct Cut {
    /// Sessions that held the organization's write fence.
    pub writers: i64,
    /// Sessions of the database cut.
    pub cut: i64,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// An organization's drain lease, held by the test on a connection of its
/// own, exactly as a worker draining the organization holds it: while it is
/// held no worker may drain the organization.
pub struct DrainLease {
    conn: PgConnection,
    org: i64,
}

impl DrainLease {
    /// Takes the lease (waiting while a worker holds it).
    pub async fn hold(env: &TestEnv, org: i64) -> anyhow::Result<Self> {
        let mut conn = PgConnection::connect(&env.config.database_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT pg_advisory_lock({DRAIN_LEASE_KEY})"
        )))
        .bind(org)
        .execute(&mut conn)
        .await?;
        Ok(Self { conn, org })
    }

    /// Releases the lease and closes its connection.
    pub async fn release(mut self) -> anyhow::Result<()> {
        let released: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT pg_advisory_unlock({DRAIN_LEASE_KEY})"
        )))
        .bind(self.org)
        .fetch_one(&mut self.conn)
        .await?;
        anyhow::ensure!(released, "the drain lease of {} was not held", self.org);
        self.conn.close().await?;
        Ok(())
    }
}

/// Sessions of `db`'s database inside a transaction that has written
/// something (a chunk write, in a test database while an import runs).
pub async fn writing_sessions(db: &Db) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()
            AND backend_xid IS NOT NULL",
    )
    .fetch_one(db.pool())
    .await?)
}
