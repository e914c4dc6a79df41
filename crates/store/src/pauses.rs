//! The pause switch: one stored row per paused scope (an organization, or
//! every organization), read by the drain before every chunk and shown on
//! every paused import.

use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};
use sqlx::PgConnection;

use crate::entities::import_pauses;
use crate::{Requester, StoreError, chunks, exec, timeline};

/// Pauses one organization, or every organization (`None`), with a reason.
/// Pausing a paused scope replaces its reason and author. Watchers of every
/// import re-read, so queued and running imports show the pause at once.
pub async fn pause(
    conn: &mut PgConnection,
    organization_id: Option<i64>,
    reason: &str,
    by: &Requester,
) -> Result<import_pauses::Model, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // An upsert on the scope's expression index (a NULL organization is the
    // global scope), which sea-orm's builder does not express.
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO import_pauses (organization_id, reason, paused_by_id, paused_by_name, paused_by_email)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (COALESCE(organization_id, 0)) DO UPDATE
            SET reason = EXCLUDED.reason, paused_by_id = EXCLUDED.paused_by_id,
                paused_by_name = EXCLUDED.paused_by_name, paused_by_email = EXCLUDED.paused_by_email,
                paused_at = now()
         RETURNING id",
    )
    .bind(organization_id)
    .bind(reason)
    .bind(&by.id)
    .bind(&by.name)
    .bind(&by.email)
    .fetch_one(&mut *tx)
    .await?;
    let model = exec::one(&mut tx, import_pauses::Entity::find_by_id(id))
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("pause {id} vanished")))?;
    timeline::record_in_scope(&mut tx, organization_id, "paused", by, reason).await?;
    timeline::notify_everyone(&mut tx).await?;
    tx.commit().await?;
    Ok(model)
}

/// Lifts the pause of one organization, or the pause of every organization
/// (`None`); the other scopes stay as they are. Returns the pause lifted, if
/// there was one, and the organizations that now have chunks to load (to
/// announce to the workers).
pub async fn resume(
    conn: &mut PgConnection,
    organization_id: Option<i64>,
    by: &Requester,
) -> Result<(Option<import_pauses::Model>, Vec<i64>), StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let scope = match organization_id {
        Some(org) => import_pauses::Column::OrganizationId.eq(org),
        None => import_pauses::Column::OrganizationId.is_null(),
    };
    let lifted = exec::one(&mut tx, import_pauses::Entity::find().filter(scope.clone())).await?;
    exec::run(&mut tx, import_pauses::Entity::delete_many().filter(scope)).await?;
    let waking =
        chunks::waiting_organizations(&mut tx, std::time::Duration::ZERO, organization_id).await?;
    if let Some(p) = &lifted {
        timeline::record_in_scope(&mut tx, organization_id, "resumed", by, &p.reason).await?;
    }
    timeline::notify_everyone(&mut tx).await?;
    tx.commit().await?;
    Ok((lifted, waking))
}

/// Every pause in force: the global one first, then by organization.
pub async fn all(conn: &mut PgConnection) -> Result<Vec<import_pauses::Model>, StoreError> {
    let mut pauses = exec::all(
        conn,
        import_pauses::Entity::find().order_by_asc(import_pauses::Column::OrganizationId),
    )
    .await?;
    // NULL (every organization) sorts last in ascending order; show it first.
    pauses.sort_by_key(|p| p.organization_id.is_some());
    Ok(pauses)
}

/// The pause that holds an organization's imports, if any: the pause of
/// every organization first, else the organization's own.
pub async fn holding(
    conn: &mut PgConnection,
    organization_id: i64,
) -> Result<Option<import_pauses::Model>, StoreError> {
    let mut found = exec::all(
        conn,
        import_pauses::Entity::find().filter(
            Condition::any()
                .add(import_pauses::Column::OrganizationId.is_null())
                .add(import_pauses::Column::OrganizationId.eq(organization_id)),
        ),
    )
    .await?;
    found.sort_by_key(|p| p.organization_id.is_some());
    Ok(found.into_iter().next())
}

/// [`holding`] for each of `organizations` held by a pause (the others are
/// absent), in one statement: the global pause first, else the
/// organization's own.
pub async fn holding_many(
    conn: &mut PgConnection,
    organizations: &[i64],
) -> Result<std::collections::HashMap<i64, import_pauses::Model>, StoreError> {
    let found = exec::all(
        conn,
        import_pauses::Entity::find().filter(
            Condition::any()
                .add(import_pauses::Column::OrganizationId.is_null())
                .add(import_pauses::Column::OrganizationId.is_in(organizations.iter().copied())),
        ),
    )
    .await?;
    let global = found.iter().find(|p| p.organization_id.is_none()).cloned();
    Ok(organizations
        .iter()
        .filter_map(|org| {
            global
                .clone()
                .or_else(|| {
                    found
                        .iter()
                        .find(|p| p.organization_id == Some(*org))
                        .cloned()
                })
                .map(|p| (*org, p))
        })
        .collect())
}
