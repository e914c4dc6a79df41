//! Reading what happened: the audit log (written after each state-changing
//! call), the organization picker, where a record came from, and failed
//! chunk attempts for developers. Also the organization a read is scoped to,
//! which a user who is not staff only ever sees as their own.

use passare_imports_domain::catalog::ImportTypeDef;
use passare_imports_store::audit::{self, AuditFilter, NewAudit};
use passare_imports_store::entities::{audit_events, chunk_failures, imports, organizations};
use passare_imports_store::records::{self, RecordSource};
use passare_imports_store::{PgConnection, failures, files, organizations as orgs};
use std::collections::HashMap;
use uuid::Uuid;

use crate::app::App;
use crate::error::ApiError;
use crate::identity::Caller;

/// A state-changing call to record once it succeeded.
pub fn call(
    who: &Caller,
    request_id: &str,
    action: &'static str,
    organization_id: Option<i64>,
    import_id: Option<Uuid>,
    details: serde_json::Value,
) -> NewAudit {
    NewAudit {
        actor: who.requester(),
        action,
        organization_id,
        import_id,
        request_id: request_id.to_string(),
        details,
    }
}

/// Records a state-changing call in the audit log. The change itself is
/// committed (and on the import's timeline) before this runs; a failure to
/// record is logged for the developers rather than failing the call.
pub async fn record(app: &App, event: NewAudit) {
    let (action, import_id) = (event.action, event.import_id);
    let result = match app.db.conn().await {
        Ok(mut conn) => audit::record(&mut conn, event).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::error!(action, import_id = ?import_id, error = %e, "recording an audit event failed");
    }
}

/// Records a state-changing call about one import (of `org`) in the audit
/// log, as [`record`] does.
pub async fn audit_import(
    app: &App,
    who: &Caller,
    request_id: &str,
    action: &'static str,
    (org, import_id): (i64, Uuid),
    details: serde_json::Value,
) {
    let event = call(who, request_id, action, Some(org), Some(import_id), details);
    record(app, event).await;
}

/// A page of the audit log, newest first.
pub async fn audit_events(
    conn: &mut PgConnection,
    filter: &AuditFilter,
    before_id: Option<i64>,
    limit: u64,
) -> Result<Vec<audit_events::Model>, ApiError> {
    Ok(audit::list(conn, filter, before_id, limit).await?)
}

/// The organization a read is about: the one asked for (NOT_FOUND when it
/// does not exist or the caller may not see it), or — for a user who is not
/// staff and asked for none — their own.
pub async fn visible_org(
    conn: &mut PgConnection,
    who: &Caller,
    asked: Option<i64>,
) -> Result<Option<i64>, ApiError> {
    let Some(org) = asked else {
        return Ok(if who.is_staff() {
            None
        } else {
            who.organization_id
        });
    };
    if !who.sees(org) || orgs::find(conn, org).await?.is_none() {
        return Err(ApiError::not_found("organization", org));
    }
    Ok(Some(org))
}

/// An organization that must exist (a pause or a new import names it).
pub async fn existing_org(
    conn: &mut PgConnection,
    org: i64,
) -> Result<organizations::Model, ApiError> {
    orgs::find(conn, org)
        .await?
        .ok_or_else(|| ApiError::not_found("organization", org))
}

/// Organizations for the picker: by part of the name or the id; a user who
/// is not staff finds only their own.
pub async fn organizations(
    conn: &mut PgConnection,
    who: &Caller,
    query: &str,
    cursor: Option<(String, i64)>,
    limit: u64,
) -> Result<Vec<organizations::Model>, ApiError> {
    let only = match (who.is_staff(), who.organization_id) {
        (true, _) => None,
        (false, Some(org)) => Some(org),
        (false, None) => return Ok(Vec::new()),
    };
    Ok(orgs::list(conn, query, only, cursor, limit).await?)
}

/// Where a record came from, with the import that wrote it.
pub async fn record_source(
    conn: &mut PgConnection,
    def: &ImportTypeDef,
    org: i64,
    key: &[String],
) -> Result<(RecordSource, imports::Model, String), ApiError> {
    let not_found = || ApiError::not_found("record", format!("{}/{}", def.key, key.join("+")));
    let source = records::source(conn, def, org, key)
        .await?
        .ok_or_else(not_found)?;
    let import = passare_imports_store::imports::find(conn, source.import_id)
        .await?
        .ok_or_else(not_found)?;
    let names = files::names(conn, &[source.file_id]).await?;
    let file_name = names.get(&source.file_id).cloned().unwrap_or_default();
    Ok((source, import, file_name))
}

/// A page of failed chunk attempts, newest first, with their files' names.
pub async fn chunk_failures(
    conn: &mut PgConnection,
    filter: &failures::Filter,
    before: Option<i64>,
    limit: u64,
) -> Result<(Vec<chunk_failures::Model>, HashMap<Uuid, String>), ApiError> {
    let rows = failures::list(conn, filter, before, limit).await?;
    let ids: Vec<Uuid> = rows.iter().map(|f| f.file_id).collect();
    let names = files::names(conn, &ids).await?;
    Ok((rows, names))
}
