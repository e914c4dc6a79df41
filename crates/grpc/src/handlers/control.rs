//! Running imports: StartImport, StopImport, the pause switch
//! (PauseImports, ResumeImports, ListPauses) and ListChunkFailures.

use passare_imports_app::{Access, ApiError, App, control, history, imports, start};
use passare_imports_proto::v1 as pb;
use passare_imports_store::failures;
use tonic::{Request, Response};

use crate::auth::{authorize, request_id};
use crate::{convert, paging};

pub async fn start_import(
    app: &App,
    request: Request<pb::StartImportRequest>,
) -> Result<Response<pb::StartImportResponse>, ApiError> {
    let who = authorize(&request, Access::Manage)?;
    let call_id = request_id(&request);
    let req = request.get_ref();
    let id = convert::uuid("import_id", &req.import_id)?;
    let policy = convert::policy_from_pb(
        pb::FailurePolicy::try_from(req.failure_policy).unwrap_or(pb::FailurePolicy::Unspecified),
    );
    let view = start::start(app, &who, id, policy, &call_id).await?;
    Ok(Response::new(pb::StartImportResponse {
        import: Some(convert::shown(&who, &view)),
    }))
}

pub async fn stop_import(
    app: &App,
    request: Request<pb::StopImportRequest>,
) -> Result<Response<pb::StopImportResponse>, ApiError> {
    let who = authorize(&request, Access::Manage)?;
    let call_id = request_id(&request);
    let id = convert::uuid("import_id", &request.get_ref().import_id)?;
    let reason = convert::bounded_text("reason", &request.get_ref().reason, 2000)?;
    let view = imports::stop(app, &who, id, &reason, &call_id).await?;
    Ok(Response::new(pb::StopImportResponse {
        import: Some(convert::shown(&who, &view)),
    }))
}

pub async fn pause_imports(
    app: &App,
    request: Request<pb::PauseImportsRequest>,
) -> Result<Response<pb::PauseImportsResponse>, ApiError> {
    let who = authorize(&request, Access::Manage)?;
    let call_id = request_id(&request);
    let org = convert::optional_org(&request.get_ref().organization_id)?;
    let reason = convert::bounded_text("reason", &request.get_ref().reason, 2000)?;
    let pause = control::pause(app, &who, org, &reason, &call_id).await?;
    Ok(Response::new(pb::PauseImportsResponse {
        pause: Some(convert::pause(&pause)),
    }))
}

pub async fn resume_imports(
    app: &App,
    request: Request<pb::ResumeImportsRequest>,
) -> Result<Response<pb::ResumeImportsResponse>, ApiError> {
    let who = authorize(&request, Access::Manage)?;
    let call_id = request_id(&request);
    let org = convert::optional_org(&request.get_ref().organization_id)?;
    let (lifted, pauses) = control::resume(app, &who, org, &call_id).await?;
    Ok(Response::new(pb::ResumeImportsResponse {
        lifted: lifted.as_ref().map(convert::pause),
        pauses: pauses.iter().map(convert::pause).collect(),
    }))
}

pub async fn list_pauses(
    app: &App,
    request: Request<pb::ListPausesRequest>,
) -> Result<Response<pb::ListPausesResponse>, ApiError> {
    authorize(&request, Access::Staff)?;
    let pauses = control::pauses(app).await?;
    Ok(Response::new(pb::ListPausesResponse {
        pauses: pauses.iter().map(convert::pause).collect(),
    }))
}

pub async fn list_chunk_failures(
    app: &App,
    request: Request<pb::ListChunkFailuresRequest>,
) -> Result<Response<pb::ListChunkFailuresResponse>, ApiError> {
    let who = authorize(&request, Access::Staff)?;
    let req = request.into_inner();
    let filter = failures::Filter {
        import_id: convert::optional_uuid("import_id", &req.import_id)?,
        organization_id: convert::optional_org(&req.organization_id)?,
    };
    let page_size = paging::page_size(req.page_size, 50, 500)?;
    let before: Option<i64> = paging::decode("chunk_failures", &req.page_token)?;
    let mut conn = app.db.conn().await?;
    let (rows, names) = history::chunk_failures(&mut conn, &filter, before, page_size + 1).await?;
    let (rows, next_page_token) = paging::page("chunk_failures", rows, page_size, |f| f.id);
    let chunk_failures = rows
        .iter()
        .map(|f| {
            let mut shown =
                convert::chunk_failure(f, names.get(&f.file_id).map_or("", String::as_str));
            if !who.sees_developer_details() {
                convert::redact(&mut shown);
            }
            shown
        })
        .collect();
    Ok(Response::new(pb::ListChunkFailuresResponse {
        chunk_failures,
        next_page_token,
    }))
}
