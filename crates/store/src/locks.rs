//! The advisory locks that keep an organization's work in order, as
//! docs/per-organization-concurrency.md describes them:
//!
//! | lock | held | by | guarantees |
//! |---|---|---|---|
//! | queue (`passare_imports.queue:{org}`) | transaction | StartImport, RetryFailedRows | imports of an organization are numbered and published in the order they queue |
//! | drain lease (`passare_imports.drain:{org}`) | session | one worker slot | one worker drains an organization at a time |
//! | write fence (`passare_imports.write:{org}`) | transaction | every chunk write, give-up, stop | never two chunks of an organization written at once, whatever the broker redelivers |
//! | retention (`passare_imports.retention`) | session | one worker's retention job | one process purges at a time |
//! | record events (`passare_imports.record_events`) | session | one worker's event relay | events are published by one process, in commit order |
//!
//! The keys are part of the contract with running workers: changing one is a
//! migration of its own.

use sqlx::PgConnection;

use crate::StoreError;

const QUEUE: &str = "passare_imports.queue:";
const DRAIN: &str = "passare_imports.drain:";
const WRITE: &str = "passare_imports.write:";
const RETENTION: &str = "passare_imports.retention";
const RELAY: &str = "passare_imports.record_events";

/// Serialises the StartImport (and RetryFailedRows) calls of one
/// organization for the rest of the transaction, so their chunks reach the
/// broker in the order they queue.
pub async fn queue(conn: &mut PgConnection, org: i64) -> Result<(), StoreError> {
    xact_lock(conn, QUEUE, org).await
}

/// The organization's write fence, held until the transaction ends.
pub async fn write_fence(conn: &mut PgConnection, org: i64) -> Result<(), StoreError> {
    xact_lock(conn, WRITE, org).await
}

/// Tries the organization's drain lease on this session; `false` when
/// another worker holds it. Held until [`release_drain`] or the session ends
/// (a worker that dies releases it with its connection).
pub async fn try_drain(conn: &mut PgConnection, org: i64) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1 || $2::text, 0))")
            .bind(DRAIN)
            .bind(org)
            .fetch_one(conn)
            .await?,
    )
}

/// Releases the drain lease this session holds.
pub async fn release_drain(conn: &mut PgConnection, org: i64) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT pg_advisory_unlock(hashtextextended($1 || $2::text, 0))")
            .bind(DRAIN)
            .bind(org)
            .fetch_one(conn)
            .await?,
    )
}

async fn xact_lock(conn: &mut PgConnection, prefix: &str, org: i64) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || $2::text, 0))")
        .bind(prefix)
        .bind(org)
        .execute(conn)
        .await?;
    Ok(())
}

/// The retention job's lock, on this session: one process at a time purges.
pub async fn try_retention(conn: &mut PgConnection) -> Result<bool, StoreError> {
    try_session(conn, RETENTION).await
}

/// The event relay's lock, on this session (until the session ends): one
/// process at a time publishes record events.
pub async fn try_relay(conn: &mut PgConnection) -> Result<bool, StoreError> {
    try_session(conn, RELAY).await
}

async fn try_session(conn: &mut PgConnection, name: &str) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(name)
            .fetch_one(conn)
            .await?,
    )
}

/// Releases the retention job's lock this session holds.
pub async fn release_retention(conn: &mut PgConnection) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
            .bind(RETENTION)
            .fetch_one(conn)
            .await?,
    )
}
