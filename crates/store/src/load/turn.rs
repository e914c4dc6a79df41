//! Whether a chunk may be written now, decided behind the organization's
//! write fence: it is still queued, its import has not ended, no import of
//! the organization is being rolled back and no earlier chunk of the
//! organization is pending.

use sqlx::{PgConnection, Row};

use super::ChunkOutcome;
use crate::StoreError;
use crate::states::{ChunkState, ImportState};

/// Settings of a chunk's write transaction: a statement timeout (lock waits
/// included), so a write stuck behind a lock fails as a retryable timeout
/// instead of holding the organization for ever; and key lookups that probe
/// the primary key row by row — the target table may have grown by millions
/// since its statistics were taken, and a stale estimate must not turn a
/// few thousand lookups into a hash join over the organization's table. No
/// JIT compilation either: the large table's estimates would make each
/// statement pay milliseconds of compiling for a few thousand probes.
pub(super) async fn prepare(
    conn: &mut PgConnection,
    statement_timeout: Option<std::time::Duration>,
) -> Result<(), StoreError> {
    sqlx::raw_sql(
        "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL jit = off",
    )
    .execute(&mut *conn)
    .await?;
    if let Some(limit) = statement_timeout {
        set_statement_timeout(conn, limit).await?;
    }
    Ok(())
}

/// Settings of the lookups that check a chunk against what is stored,
/// outside the write transaction: each statement is planned for its own
/// values (`force_custom_plan`) — the generic plan PostgreSQL switches a
/// prepared statement to after five executions knows neither the
/// organization nor how many values a chunk looks up, and was seen to take
/// seconds per chunk of a table this very import had just filled — and
/// without JIT compilation (milliseconds per statement for nothing).
pub(super) async fn probing(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::raw_sql("SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL jit = off")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Limits every statement of the transaction, lock waits included.
pub(super) async fn set_statement_timeout(
    conn: &mut PgConnection,
    limit: std::time::Duration,
) -> Result<(), StoreError> {
    sqlx::query("SELECT set_config('statement_timeout', $1, true)")
        .bind(format!("{}ms", limit.as_millis().max(1)))
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether a chunk may be written now.
pub(super) enum Turn {
    Go,
    /// Nothing to write; commit and report this.
    Settled(ChunkOutcome),
}

/// Locks the chunk and checks that it is still queued, that its import has
/// not ended (if it has, the chunk is marked skipped) and that no earlier
/// chunk of the organization is pending.
pub(super) async fn claim(
    conn: &mut PgConnection,
    chunk_id: i64,
    org: i64,
) -> Result<Turn, StoreError> {
    let Some(row) = sqlx::query(
        "SELECT c.state, c.seq, i.state AS import_state, i.queue_seq, f.load_order, f.position
           FROM chunks c JOIN imports i ON i.id = c.import_id JOIN import_files f ON f.id = c.file_id
          WHERE c.id = $1 FOR UPDATE OF c",
    )
    .bind(chunk_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(Turn::Settled(ChunkOutcome::Gone));
    };
    let chunk_state: ChunkState = row.try_get("state")?;
    let import_state: ImportState = row.try_get("import_state")?;
    if chunk_state != ChunkState::Queued {
        return Ok(Turn::Settled(ChunkOutcome::AlreadyDone));
    }
    if import_state.is_terminal() {
        sqlx::query("UPDATE chunks SET state = $2, finished_at = clock_timestamp() WHERE id = $1")
            .bind(chunk_id)
            .bind(ChunkState::Skipped)
            .execute(&mut *conn)
            .await?;
        return Ok(Turn::Settled(ChunkOutcome::Skipped));
    }
    // An import of the organization being rolled back goes first: nothing
    // else of the organization is written until it is put back whole.
    let earlier_pending: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM imports WHERE organization_id = $1 AND state = $8)
             OR EXISTS (
            SELECT 1 FROM chunks c
              JOIN imports i ON i.id = c.import_id
              JOIN import_files f ON f.id = c.file_id
             WHERE c.organization_id = $1 AND c.state = $7 AND c.id <> $2
               AND (i.queue_seq, f.load_order, f.position, c.seq) < ($3, $6, $4, $5))",
    )
    .bind(org)
    .bind(chunk_id)
    .bind(
        row.try_get::<Option<i64>, _>("queue_seq")?
            .unwrap_or(i64::MAX),
    )
    .bind(row.try_get::<i32, _>("position")?)
    .bind(row.try_get::<i32, _>("seq")?)
    .bind(row.try_get::<i32, _>("load_order")?)
    .bind(ChunkState::Queued)
    .bind(ImportState::RollingBack)
    .fetch_one(&mut *conn)
    .await?;
    Ok(if earlier_pending {
        Turn::Settled(ChunkOutcome::NotYourTurn)
    } else {
        Turn::Go
    })
}
