//! What happened and who did it: each import's timeline (created, analyzed,
//! queued, started, paused, resumed, stopped, finished, retried …) and the
//! audit log of every state-changing call. Timeline steps are written in the
//! transaction that takes them; audit events once the call succeeded.

use chrono::{DateTime, FixedOffset};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::entities::{audit_events, import_events};
use crate::repo::Requester;
use crate::{Db, StoreError};

const INSERT_EVENT: &str =
    "INSERT INTO import_events (import_id, kind, actor_id, actor_name, actor_email, detail)
     VALUES ($1, $2, $3, $4, $5, $6)";

/// Adds a step to an import's timeline (`actor` `None`: the service acted).
pub async fn event(
    conn: &mut PgConnection,
    import_id: Uuid,
    kind: &str,
    actor: Option<&Requester>,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_EVENT)
        .bind(import_id)
        .bind(kind)
        .bind(actor.map(|a| a.id.as_str()))
        .bind(actor.map(|a| a.name.as_str()))
        .bind(actor.map(|a| a.email.as_str()))
        .bind(detail)
        .execute(conn)
        .await?;
    Ok(())
}

/// [`event`], inside a sea-orm transaction.
pub async fn event_orm(
    db: &impl ConnectionTrait,
    import_id: Uuid,
    kind: &str,
    actor: Option<&Requester>,
    detail: &str,
) -> Result<(), StoreError> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        INSERT_EVENT,
        vec![
            import_id.into(),
            kind.into(),
            actor.map(|a| a.id.clone()).into(),
            actor.map(|a| a.name.clone()).into(),
            actor.map(|a| a.email.clone()).into(),
            detail.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Adds a step to the timeline of every queued or running import of one
/// organization (`Some`) or of all (`None`): a pause or a resume.
pub async fn event_in_scope(
    conn: &mut PgConnection,
    organization_id: Option<i64>,
    kind: &str,
    actor: &Requester,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO import_events (import_id, kind, actor_id, actor_name, actor_email, detail)
         SELECT id, $2, $3, $4, $5, $6 FROM imports
          WHERE state IN ('queued', 'running') AND ($1::bigint IS NULL OR organization_id = $1)",
    )
    .bind(organization_id)
    .bind(kind)
    .bind(&actor.id)
    .bind(&actor.name)
    .bind(&actor.email)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// An import's timeline, oldest first.
pub async fn timeline(
    db: &impl ConnectionTrait,
    import_id: Uuid,
) -> Result<Vec<import_events::Model>, StoreError> {
    Ok(import_events::Entity::find()
        .filter(import_events::Column::ImportId.eq(import_id))
        .order_by_asc(import_events::Column::Id)
        .all(db)
        .await?)
}

/// A state-changing call to remember.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub actor: Requester,
    pub action: &'static str,
    pub organization_id: Option<i64>,
    pub import_id: Option<Uuid>,
    pub request_id: String,
    pub details: serde_json::Value,
}

/// Records a state-changing call in the audit log.
pub async fn audit(db: &Db, a: NewAudit) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events (actor_id, actor_name, actor_email, action, organization_id,
                import_id, request_id, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&a.actor.id)
    .bind(&a.actor.name)
    .bind(&a.actor.email)
    .bind(a.action)
    .bind(a.organization_id)
    .bind(a.import_id)
    .bind(&a.request_id)
    .bind(&a.details)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Which audit events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub organization_id: Option<i64>,
    /// A user id, or an e-mail in any case.
    pub actor: Option<String>,
    pub action: Option<String>,
    pub import_id: Option<Uuid>,
    pub after: Option<DateTime<FixedOffset>>,
    pub before: Option<DateTime<FixedOffset>>,
}

/// A page of audit events, newest first, older than the event `before_id`.
pub async fn list_audit(
    db: &Db,
    f: &AuditFilter,
    before_id: Option<i64>,
    limit: u64,
) -> Result<Vec<audit_events::Model>, StoreError> {
    use audit_events::Column as C;
    let mut cond = Condition::all();
    if let Some(org) = f.organization_id {
        cond = cond.add(C::OrganizationId.eq(org));
    }
    if let Some(actor) = &f.actor {
        cond = cond.add(Condition::any().add(C::ActorId.eq(actor.clone())).add(
            sea_orm::sea_query::Expr::cust_with_values(
                "lower(actor_email) = lower($1)",
                [actor.clone()],
            ),
        ));
    }
    if let Some(action) = &f.action {
        cond = cond.add(C::Action.eq(action.clone()));
    }
    if let Some(import_id) = f.import_id {
        cond = cond.add(C::ImportId.eq(import_id));
    }
    if let Some(after) = f.after {
        cond = cond.add(C::At.gte(after));
    }
    if let Some(before) = f.before {
        cond = cond.add(C::At.lt(before));
    }
    if let Some(id) = before_id {
        cond = cond.add(C::Id.lt(id));
    }
    Ok(audit_events::Entity::find()
        .filter(cond)
        .order_by_desc(C::Id)
        .limit(limit)
        .all(db.orm())
        .await?)
}
