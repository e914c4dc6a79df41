//! The audit log: every state-changing call, with who made it, for which
//! organization and import, the call's request id and what it said. Written
//! once the call succeeded; kept when an import's results are purged.

use chrono::{DateTime, FixedOffset};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::entities::audit_events;
use crate::{Requester, StoreError, exec};

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

/// Records a state-changing call.
pub async fn record(conn: &mut PgConnection, a: NewAudit) -> Result<(), StoreError> {
    exec::insert(
        conn,
        audit_events::ActiveModel {
            actor_id: Set(a.actor.id),
            actor_name: Set(a.actor.name),
            actor_email: Set(a.actor.email),
            action: Set(a.action.to_string()),
            organization_id: Set(a.organization_id),
            import_id: Set(a.import_id),
            request_id: Set(a.request_id),
            details: Set(a.details),
            ..Default::default()
        },
    )
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
pub async fn list(
    conn: &mut PgConnection,
    f: &AuditFilter,
    before_id: Option<i64>,
    limit: u64,
) -> Result<Vec<audit_events::Model>, StoreError> {
    use audit_events::Column as C;
    let actor = f.actor.as_ref().map(|actor| {
        let email = Expr::cust_with_values("lower(actor_email) = lower($1)", [actor.clone()]);
        Condition::any()
            .add(C::ActorId.eq(actor.clone()))
            .add(email)
    });
    let cond = Condition::all()
        .add_option(f.organization_id.map(|org| C::OrganizationId.eq(org)))
        .add_option(actor)
        .add_option(f.action.as_ref().map(|action| C::Action.eq(action.clone())))
        .add_option(f.import_id.map(|id| C::ImportId.eq(id)))
        .add_option(f.after.map(|after| C::At.gte(after)))
        .add_option(f.before.map(|before| C::At.lt(before)))
        .add_option(before_id.map(|id| C::Id.lt(id)));
    let select = audit_events::Entity::find().filter(cond);
    exec::all(conn, select.order_by_desc(C::Id).limit(limit)).await
}
