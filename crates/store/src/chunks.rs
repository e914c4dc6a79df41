//! Chunk records outside the write path: an organization's next chunk to
//! load (the database decides the order, not the broker), the organizations
//! whose chunks wait for a worker, and chunks read back for an import.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::entities::chunks;
use crate::states::ChunkState;
use crate::{StoreError, exec};

/// The organization's next chunk to load: the first still queued in the order
/// imports were started, files load and chunks were cut, with the time
/// before which it must not be tried (after a transient failure). Workers
/// load this one whatever message woke them, so order never depends on the
/// broker. The chunk after it comes second, when there is one: a worker may
/// read and parse it while the first is written.
pub async fn next_pending(
    conn: &mut PgConnection,
    organization_id: i64,
) -> Result<Vec<(i64, Option<DateTime<Utc>>)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT c.id, c.not_before FROM chunks c
           JOIN imports i ON i.id = c.import_id
           JOIN import_files f ON f.id = c.file_id
          WHERE c.organization_id = $1 AND c.state = $2
          ORDER BY i.queue_seq, f.load_order, f.position, c.seq
          LIMIT 2",
    )
    .bind(organization_id)
    .bind(ChunkState::Queued)
    .fetch_all(conn)
    .await?)
}

/// Organizations not paused with chunks that have waited at least `min_age`
/// (since they were queued, or since their retry came due), or with an
/// import rolling back untouched that long, for the workers' sweep, which
/// re-announces them; with `organization_id`, only that one (a resume).
pub async fn waiting_organizations(
    conn: &mut PgConnection,
    min_age: std::time::Duration,
    organization_id: Option<i64>,
) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT w.organization_id FROM (
             SELECT c.organization_id FROM chunks c
              WHERE c.state = $1
                AND COALESCE(c.not_before, c.queued_at) <= now() - make_interval(secs => $2)
             UNION
             SELECT i.organization_id FROM imports i
              WHERE i.state = $4 AND i.updated_at <= now() - make_interval(secs => $2)) w
          WHERE ($3::bigint IS NULL OR w.organization_id = $3)
            AND NOT EXISTS (SELECT 1 FROM import_pauses p
                             WHERE p.organization_id IS NULL OR p.organization_id = w.organization_id)",
    )
    .bind(ChunkState::Queued)
    .bind(min_age.as_secs_f64())
    .bind(organization_id)
    .bind(crate::states::ImportState::RollingBack)
    .fetch_all(conn)
    .await?)
}

/// Chunks of an import in the order they were created.
pub async fn of_import(conn: &mut PgConnection, import_id: Uuid) -> exec::Records<chunks::Model> {
    exec::all_by(
        conn,
        chunks::Column::ImportId.eq(import_id),
        chunks::Column::Id,
    )
    .await
}

/// Chunks by id, in id order.
pub async fn by_ids(
    conn: &mut PgConnection,
    ids: &[i64],
) -> Result<Vec<chunks::Model>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    exec::all(
        conn,
        chunks::Entity::find()
            .filter(chunks::Column::Id.is_in(ids.iter().copied()))
            .order_by_asc(chunks::Column::Id),
    )
    .await
}
