//! The audit log and the organization picker: ListAuditEvents and
//! ListOrganizations.

use passare_imports_app::{ApiError, App, history};
use passare_imports_proto::v1 as pb;
use passare_imports_store::audit::AuditFilter;

use crate::auth::Call;
use crate::{convert, paging};

pub async fn list_audit_events(
    app: &App,
    _call: Call,
    req: pb::ListAuditEventsRequest,
) -> Result<pb::ListAuditEventsResponse, ApiError> {
    let filter = AuditFilter {
        organization_id: convert::optional_org(&req.organization_id)?,
        actor: Some(req.actor.trim().to_string()).filter(|a| !a.is_empty()),
        action: Some(req.action.trim().to_string()).filter(|a| !a.is_empty()),
        import_id: convert::optional_uuid("import_id", &req.import_id)?,
        after: req
            .time_after
            .as_ref()
            .map(convert::from_timestamp)
            .transpose()?,
        before: req
            .time_before
            .as_ref()
            .map(convert::from_timestamp)
            .transpose()?,
    };
    let page_size = paging::page_size(req.page_size, 50, 500)?;
    let before: Option<i64> = paging::decode("audit", &req.page_token)?;
    let mut conn = app.db.conn().await?;
    let rows = history::audit_events(&mut conn, &filter, before, page_size + 1).await?;
    let (rows, next_page_token) = paging::page("audit", rows, page_size, |e| e.id);
    Ok(pb::ListAuditEventsResponse {
        events: rows.iter().map(convert::audit_event).collect(),
        next_page_token,
    })
}

pub async fn list_organizations(
    app: &App,
    call: Call,
    req: pb::ListOrganizationsRequest,
) -> Result<pb::ListOrganizationsResponse, ApiError> {
    let page_size = paging::page_size(req.page_size, 50, 500)?;
    let cursor: Option<(String, i64)> = paging::decode("organizations", &req.page_token)?;
    let query = convert::bounded_text("query", &req.query, 200)?;
    let mut conn = app.db.conn().await?;
    let rows = history::organizations(&mut conn, &call.who, &query, cursor, page_size + 1).await?;
    let (rows, next_page_token) = paging::page("organizations", rows, page_size, |o| {
        (o.name.to_lowercase(), o.id)
    });
    Ok(pb::ListOrganizationsResponse {
        organizations: rows
            .into_iter()
            .map(|o| pb::Organization {
                id: o.id.to_string(),
                name: o.name,
            })
            .collect(),
        next_page_token,
    })
}
