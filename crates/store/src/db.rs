//! The connection to PostgreSQL and what can go wrong with it: the pool,
//! schema migrations, and the one classification of database errors
//! (transient or not, and a stable kind) that retries and statuses rely on.

use std::str::FromStr;
use std::time::Duration;

use sea_orm::DbErr;
use sea_orm_migration::MigratorTrait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Orm(#[from] DbErr),
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether trying again later may succeed: lost connections, a pool that
    /// could not hand out a connection, serialization failures, deadlocks,
    /// administrator shutdowns and cancelled statements.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Sqlx(e) => sqlx_transient(e),
            StoreError::Orm(e) => orm_transient(e),
            StoreError::Corrupt(_) => false,
        }
    }

    /// A stable name of what went wrong, for failure records and logs:
    /// `database_connection`, `database_busy`, `serialization_failure`,
    /// `deadlock`, `timeout`, `lock_timeout`, `database` or `corrupt_state`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Sqlx(e) => sqlx_kind(e),
            StoreError::Orm(DbErr::Conn(_) | DbErr::ConnectionAcquire(_)) => "database_connection",
            StoreError::Orm(
                DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
                | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)),
            ) => sqlx_kind(e),
            StoreError::Orm(_) => "database",
            StoreError::Corrupt(_) => "corrupt_state",
        }
    }

    /// The SQLSTATE of a database error, if it is one.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            StoreError::Sqlx(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()),
            _ => None,
        }
    }
}

fn sqlx_kind(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_) => "database_connection",
        sqlx::Error::PoolTimedOut => "database_busy",
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("40001") => "serialization_failure",
            Some("40P01") => "deadlock",
            Some("57014") => "timeout",
            Some("55P03") => "lock_timeout",
            Some("53300") => "database_busy",
            Some(c) if c.starts_with("08") || c.starts_with("57P") => "database_connection",
            _ => "database",
        },
        _ => "database",
    }
}

fn sqlx_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| transient_sqlstate(&c)),
        _ => false,
    }
}

fn orm_transient(e: &DbErr) -> bool {
    match e {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => sqlx_transient(e),
        _ => false,
    }
}

/// SQLSTATEs worth a retry: class 08 (connection), 40001, 40P01, 57P01–57P03
/// (shutdown, crash, cannot connect now), 57014 (statement timeout or
/// cancelled), 55P03 (lock timeout), 53300 (too many connections).
pub fn transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "57014" | "55P03" | "53300"
        )
}

/// The database of one process: a pool of sqlx connections for writes,
/// workers and short reads, and (in a server) a separate small pool for long
/// reads and streams whose statements are time-limited. Every query of the
/// store runs on a connection of one of them (see `exec`).
#[derive(Clone, Debug)]
pub struct Db {
    pool: PgPool,
    reads: PgPool,
}

impl Db {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self {
            reads: pool.clone(),
            pool,
        })
    }

    /// The same database with long reads on a pool of their own:
    /// `connections` at most, opened when first needed, each statement
    /// cancelled after `statement_timeout` (SQLSTATE 57014, a transient
    /// `timeout`).
    pub fn with_read_pool(
        self,
        url: &str,
        connections: u32,
        statement_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("passare-imports reads")
            .options([(
                "statement_timeout",
                format!("{}ms", statement_timeout.as_millis()),
            )]);
        let reads = PgPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        Ok(Self {
            pool: self.pool,
            reads,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The pool of long reads and streams (the main pool unless
    /// [`Db::with_read_pool`] set one).
    pub fn reads(&self) -> &PgPool {
        &self.reads
    }

    /// A connection of the read pool, for a long read or one page of a stream.
    pub async fn read_conn(
        &self,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        Ok(self.reads.acquire().await?)
    }

    /// A connection of the pool, for statements outside a transaction.
    pub async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    /// A transaction on a connection of the pool.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// Whether the database answers (`SELECT 1` on a connection of the pool).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.reads.close().await;
        self.pool.close().await;
    }
}

/// Creates the database if it does not exist, then applies pending migrations.
pub async fn migrate(database_url: &str) -> Result<(), StoreError> {
    let options = PgConnectOptions::from_str(database_url)?;
    let name = options.get_database().unwrap_or("postgres").to_string();
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
            .execute(&mut admin)
            .await?;
        tracing::info!(database = %name, "database created");
    }
    drop(admin);
    let db = Db::connect(database_url, 2).await?;
    let orm = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(db.pool.clone());
    passare_imports_migrations::Migrator::up(&orm, None).await?;
    db.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified_once() {
        for code in ["08006", "40001", "40P01", "57P01", "57014", "55P03"] {
            assert!(transient_sqlstate(code), "{code}");
        }
        for code in ["23505", "23503", "42P01", "22007"] {
            assert!(!transient_sqlstate(code), "{code}");
        }
    }
}
