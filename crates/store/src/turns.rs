//! Turns of the workers, one per organization: the count of each
//! organization's ended drains (`migrations/sql/0021_drain_turns.sql`), which
//! lets a worker tell a notice that still matters from one a drain has made
//! redundant (docs/per-organization-concurrency.md, "Turns").

use passare_imports_domain::messages::OrgReady;
use sqlx::PgConnection;

use crate::{Db, StoreError};

/// The notices announcing `orgs`, each with its organization's current count
/// of ended drains. Read only after the work they announce is committed: a
/// drain that ends after this read looks for that work after counting
/// itself, so a notice older than the count is never the only one left.
pub async fn notices(conn: &mut PgConnection, orgs: &[i64]) -> Result<Vec<OrgReady>, StoreError> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT o.id, COALESCE(t.drains_ended, 0)
           FROM unnest($1::bigint[]) WITH ORDINALITY AS o (id, n)
           LEFT JOIN drain_turns t ON t.organization_id = o.id
          ORDER BY o.n",
    )
    .bind(orgs)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(org, turn)| OrgReady::new(org, Some(turn)))
        .collect())
}

/// [`notices`] on a connection of `db`; when the database cannot tell,
/// notices without a count, which no worker drops as redundant (at worst the
/// organization gets a spare turn).
pub async fn announcing(db: &Db, orgs: &[i64]) -> Vec<OrgReady> {
    let read = match db.conn().await {
        Ok(mut conn) => notices(&mut conn, orgs).await,
        Err(e) => Err(e),
    };
    read.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "announcing without turns");
        orgs.iter().map(|org| OrgReady::new(*org, None)).collect()
    })
}

/// Counts a drain of `org` as ended. Runs after the drain released its lease
/// and before it looks for work left (in its own statement, committed before
/// that look), so every notice published before the count went up announced
/// work committed before the look.
pub async fn drain_ended(conn: &mut PgConnection, org: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO drain_turns (organization_id, drains_ended) VALUES ($1, 1)
         ON CONFLICT (organization_id)
         DO UPDATE SET drains_ended = drain_turns.drains_ended + 1",
    )
    .bind(org)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether a drain of the notice's organization has ended since it was
/// published: the work it announced was then seen, and announced again if
/// any was left, so the notice can be dropped without taking a turn. A
/// notice without a count (an earlier release's) is never redundant, nor is
/// one the database cannot tell about (it is drained: at worst a spare
/// turn).
pub async fn is_redundant(db: &Db, notice: &OrgReady) -> bool {
    let answer = match db.conn().await {
        Ok(mut conn) => redundant(&mut conn, notice).await,
        Err(e) => Err(e),
    };
    answer.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "could not tell whether a notice is redundant");
        false
    })
}

async fn redundant(conn: &mut PgConnection, notice: &OrgReady) -> Result<bool, StoreError> {
    let Some(turn) = notice.turn() else {
        return Ok(false);
    };
    let ended: Option<i64> =
        sqlx::query_scalar("SELECT drains_ended FROM drain_turns WHERE organization_id = $1")
            .bind(notice.organization_id())
            .fetch_optional(conn)
            .await?;
    Ok(ended.is_some_and(|ended| ended > turn))
}
