//! PostgreSQL state of Passare Imports: the records of imports, files,
//! chunks, row errors, pauses, failures, timelines and the audit log, and the
//! bulk writer that loads a chunk's rows into the twelve target tables,
//! fenced per organization.
//!
//! One principled split (docs/decisions.md, "One way to the database"):
//! the service's own tables are sea-orm entities with typed states, queried
//! with sea-orm's builder; the target tables are shaped by the catalog and
//! written in bulk with raw SQL (COPY, merges, lookups). Both run on sqlx
//! connections through [`exec`], so one function serves a plain connection,
//! a transaction, or the fenced chunk transaction. Every SQL statement of
//! the service lives in this crate; every function takes the connection
//! (or transaction) it runs on, and each use case chooses its transaction.

pub mod analysis_jobs;
pub mod archive;
pub mod audit;
pub mod chunks;
mod db;
pub mod dead_letters;
pub mod entities;
pub mod events;
mod exec;
pub mod failures;
pub mod files;
pub mod imports;
pub mod load;
pub mod locks;
pub mod monitor;
pub mod organizations;
pub mod pauses;
pub mod profiles;
pub mod rates;
pub mod records;
pub mod results;
pub mod scratch;
pub mod states;
pub mod timeline;
pub mod topology;
pub mod turns;
pub mod uploads;
pub mod workers;

use chrono::{DateTime, FixedOffset};

pub use db::{Db, StoreError, migrate, transient_sqlstate};
pub use sqlx;
pub use sqlx::PgConnection;
pub use states::{ChunkState, FailureOutcome, FailurePolicy, FileState, ImportState, UploadState};

/// Channel of the notifications sent whenever an import changes; the payload
/// is the import id, or `*` when every watcher should re-read.
pub const EVENTS_CHANNEL: &str = "passare_imports_events";

/// A time as the database stores it.
pub type Timestamp = DateTime<FixedOffset>;

/// Who acted, from their bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    pub id: String,
    pub name: String,
    pub email: String,
}
