//! PostgreSQL state of Passare Imports. sea-orm entities and queries for the
//! bookkeeping tables (imports, files, chunks, row errors), and the bulk loader
//! that writes a chunk's rows with COPY and a merge, fenced per organization.
//! Every query is scoped by what the caller may see; transaction boundaries
//! are chosen by the service layer.

pub mod control;
pub mod entities;
pub mod failures;
pub mod history;
pub mod loader;
pub mod repo;
pub mod results;

use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr, SqlxPostgresConnector};
use sqlx::postgres::PgPoolOptions;

pub use sea_orm;
pub use sqlx;

/// Channel of the notifications sent whenever an import changes; the payload
/// is the import id.
pub const EVENTS_CHANNEL: &str = "passare_imports_events";

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

/// The database, reachable through sea-orm and, for COPY and LISTEN, through
/// the sqlx pool underneath.
#[derive(Clone, Debug)]
pub struct Db {
    orm: DatabaseConnection,
}

impl Db {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self {
            orm: SqlxPostgresConnector::from_sqlx_postgres_pool(pool),
        })
    }

    pub fn orm(&self) -> &DatabaseConnection {
        &self.orm
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        self.orm.get_postgres_connection_pool()
    }

    pub async fn close(&self) {
        self.pool().close().await;
    }
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
