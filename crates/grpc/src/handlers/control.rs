//! Running imports: StartImport, StopImport, the pause switch
//! (PauseImports, ResumeImports, ListPauses) and ListChunkFailures.

use passare_imports_app::{ApiError, App, control, history, imports, start};
use passare_imports_proto::v1 as pb;
use passare_imports_store::failures;

use crate::auth::Call;
use crate::{convert, paging};

pub async fn start_import(
    app: &App,
    call: Call,
    req: pb::StartImportRequest,
) -> Result<pb::StartImportResponse, ApiError> {
    let id = convert::uuid("import_id", &req.import_id)?;
    let policy = convert::policy_from_pb(
        pb::FailurePolicy::try_from(req.failure_policy).unwrap_or(pb::FailurePolicy::Unspecified),
    );
    let view = start::start(app, &call.who, id, policy, &call.id).await?;
    Ok(pb::StartImportResponse {
        import: Some(convert::shown(&call.who, &view)),
    })
}

pub async fn stop_import(
    app: &App,
    call: Call,
    req: pb::StopImportRequest,
) -> Result<pb::StopImportResponse, ApiError> {
    let id = convert::uuid("import_id", &req.import_id)?;
    let reason = convert::bounded_text("reason", &req.reason, 2000)?;
    let view = imports::stop(app, &call.who, id, &reason, &call.id).await?;
    Ok(pb::StopImportResponse {
        import: Some(convert::shown(&call.who, &view)),
    })
}

pub async fn pause_imports(
    app: &App,
    call: Call,
    req: pb::PauseImportsRequest,
) -> Result<pb::PauseImportsResponse, ApiError> {
    let org = convert::optional_org(&req.organization_id)?;
    let reason = convert::bounded_text("reason", &req.reason, 2000)?;
    let pause = control::pause(app, &call.who, org, &reason, &call.id).await?;
    Ok(pb::PauseImportsResponse {
        pause: Some(convert::pause(&pause)),
    })
}

pub async fn resume_imports(
    app: &App,
    call: Call,
    req: pb::ResumeImportsRequest,
) -> Result<pb::ResumeImportsResponse, ApiError> {
    let org = convert::optional_org(&req.organization_id)?;
    let (lifted, pauses) = control::resume(app, &call.who, org, &call.id).await?;
    Ok(pb::ResumeImportsResponse {
        lifted: lifted.as_ref().map(convert::pause),
        pauses: pauses.iter().map(convert::pause).collect(),
    })
}

pub async fn list_pauses(
    app: &App,
    _call: Call,
    _req: pb::ListPausesRequest,
) -> Result<pb::ListPausesResponse, ApiError> {
    let pauses = control::pauses(app).await?;
    Ok(pb::ListPausesResponse {
        pauses: pauses.iter().map(convert::pause).collect(),
    })
}

pub async fn list_chunk_failures(
    app: &App,
    call: Call,
    req: pb::ListChunkFailuresRequest,
) -> Result<pb::ListChunkFailuresResponse, ApiError> {
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
            if !call.who.sees_developer_details() {
                convert::redact(&mut shown);
            }
            shown
        })
        .collect();
    Ok(pb::ListChunkFailuresResponse {
        chunk_failures,
        next_page_token,
    })
}
