//! What happened to an import and who did it: its timeline (created,
//! analyzed, queued, started, paused, resumed, stopped, finished, retried …),
//! written by the transaction that takes each step, and the notifications
//! that tell watchers on every replica to re-read an import.

use sea_orm::{ActiveValue::Set, ColumnTrait};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::entities::import_events;
use crate::states::ImportState;
use crate::{EVENTS_CHANNEL, Requester, StoreError, exec};

/// Adds a step to an import's timeline (`actor` `None`: the service acted).
pub async fn record(
    conn: &mut PgConnection,
    import_id: Uuid,
    kind: &str,
    actor: Option<&Requester>,
    detail: &str,
) -> Result<(), StoreError> {
    exec::insert(
        conn,
        import_events::ActiveModel {
            import_id: Set(import_id),
            kind: Set(kind.to_string()),
            actor_id: Set(actor.map(|a| a.id.clone())),
            actor_name: Set(actor.map(|a| a.name.clone())),
            actor_email: Set(actor.map(|a| a.email.clone())),
            detail: Set(detail.to_string()),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// Adds a step to the timeline of every queued or running import of one
/// organization (`Some`) or of all (`None`): a pause or a resume.
pub async fn record_in_scope(
    conn: &mut PgConnection,
    organization_id: Option<i64>,
    kind: &str,
    actor: &Requester,
    detail: &str,
) -> Result<(), StoreError> {
    // One set-based statement: a global pause may touch every running import.
    sqlx::query(
        "INSERT INTO import_events (import_id, kind, actor_id, actor_name, actor_email, detail)
         SELECT id, $2, $3, $4, $5, $6 FROM imports
          WHERE state = ANY($7) AND ($1::bigint IS NULL OR organization_id = $1)",
    )
    .bind(organization_id)
    .bind(kind)
    .bind(&actor.id)
    .bind(&actor.name)
    .bind(&actor.email)
    .bind(detail)
    .bind([ImportState::Queued, ImportState::Running])
    .execute(conn)
    .await?;
    Ok(())
}

/// An import's timeline, oldest first.
pub async fn of_import(
    conn: &mut PgConnection,
    import_id: Uuid,
) -> exec::Records<import_events::Model> {
    use import_events::Column;
    exec::all_by(conn, Column::ImportId.eq(import_id), Column::Id).await
}

/// The timelines of many imports in one statement (a page of ListImports),
/// each oldest first.
pub async fn of_imports(
    conn: &mut PgConnection,
    import_ids: &[Uuid],
) -> exec::Records<import_events::Model> {
    use import_events::Column;
    exec::all_by(
        conn,
        Column::ImportId.is_in(import_ids.iter().copied()),
        Column::Id,
    )
    .await
}

/// Tells every watcher, on every replica, that an import changed — when the
/// transaction commits.
pub async fn notify(conn: &mut PgConnection, import_id: Uuid) -> Result<(), StoreError> {
    send(conn, &import_id.to_string()).await
}

/// Tells every watcher on every replica to re-read (a pause changes many
/// imports at once).
pub async fn notify_everyone(conn: &mut PgConnection) -> Result<(), StoreError> {
    send(conn, "*").await
}

async fn send(conn: &mut PgConnection, payload: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(EVENTS_CHANNEL)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}
