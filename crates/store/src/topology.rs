//! What the workers record of the broker's topology: whether a queue prefix
//! has moved from a queue per organization to the shared notice queue, and
//! which organizations could have an old queue.

use sqlx::PgConnection;

use crate::StoreError;

/// The topology of this release: `{prefix}.notices` and `{prefix}.dead`.
pub const CURRENT: i32 = 2;

/// Whether the broker of `prefix` was moved to the current topology.
pub async fn is_current(conn: &mut PgConnection, prefix: &str) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar::<_, i32>("SELECT version FROM broker_topology WHERE queue_prefix = $1")
            .bind(prefix)
            .fetch_optional(conn)
            .await?
            .is_some_and(|v| v >= CURRENT),
    )
}

/// Organizations that ever started an import: those a release with a queue
/// per organization declared one for.
pub async fn organizations_ever_queued(conn: &mut PgConnection) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT organization_id FROM imports WHERE queue_seq IS NOT NULL ORDER BY 1",
    )
    .fetch_all(conn)
    .await?)
}

/// Records that the broker of `prefix` was moved: how many organizations'
/// old queues were deleted and how many messages went with them.
pub async fn record_current(
    conn: &mut PgConnection,
    prefix: &str,
    organizations: usize,
    legacy_messages: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO broker_topology (queue_prefix, version, organizations, legacy_messages)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (queue_prefix) DO UPDATE
            SET version = EXCLUDED.version, migrated_at = now(),
                organizations = EXCLUDED.organizations,
                legacy_messages = EXCLUDED.legacy_messages",
    )
    .bind(prefix)
    .bind(CURRENT)
    .bind(organizations as i64)
    .bind(i64::try_from(legacy_messages).unwrap_or(i64::MAX))
    .execute(conn)
    .await?;
    Ok(())
}
