//! The resumable upload for browsers and flaky networks: CreateUpload,
//! WriteUploadPart, GetUpload, CompleteUpload and AbortUpload.

use bytes::Bytes;
use passare_imports_app::uploads::resumable;
use passare_imports_app::{Access, ApiError, App};
use passare_imports_proto::v1 as pb;
use tonic::{Request, Response};

use crate::auth::{authorize, request_id};
use crate::convert;

pub async fn create_upload(
    app: &App,
    request: Request<pb::CreateUploadRequest>,
) -> Result<Response<pb::CreateUploadResponse>, ApiError> {
    let who = authorize(&request, Access::Manage)?;
    let call_id = request_id(&request);
    let req = request.into_inner();
    let header = req
        .header
        .ok_or_else(|| ApiError::invalid("header", "is required"))?;
    let mut upload = convert::file_upload(&header, "header")?;
    upload.declared_sha256 =
        Some(req.declared_sha256.trim().to_lowercase()).filter(|s| !s.is_empty());
    let request_id = convert::optional_uuid("request_id", &req.request_id)
        .map_err(|_| ApiError::invalid("request_id", "must be a UUID"))?;
    let record = resumable::create(app, &who, upload, request_id, &call_id).await?;
    Ok(Response::new(pb::CreateUploadResponse {
        upload: Some(convert::upload(&record, app.config.upload_part_bytes)),
    }))
}

pub async fn write_upload_part(
    app: &App,
    request: Request<pb::WriteUploadPartRequest>,
) -> Result<Response<pb::WriteUploadPartResponse>, ApiError> {
    let who = authorize(&request, Access::Manage)?;
    let req = request.into_inner();
    let id = convert::uuid("upload_id", &req.upload_id)?;
    let committed = resumable::write_part(app, &who, id, req.offset, Bytes::from(req.data)).await?;
    Ok(Response::new(pb::WriteUploadPartResponse {
        committed_bytes: committed,
    }))
}

pub async fn get_upload(
    app: &App,
    request: Request<pb::GetUploadRequest>,
) -> Result<Response<pb::GetUploadResponse>, ApiError> {
    let who = authorize(&request, Access::Manage)?;
    let id = convert::uuid("upload_id", &request.get_ref().upload_id)?;
    let record = resumable::get(app, &who, id).await?;
    Ok(Response::new(pb::GetUploadResponse {
        upload: Some(convert::upload(&record, app.config.upload_part_bytes)),
    }))
}

pub async fn complete_upload(
    app: &App,
    request: Request<pb::CompleteUploadRequest>,
) -> Result<Response<pb::CompleteUploadResponse>, ApiError> {
    let who = authorize(&request, Access::Manage)?;
    let call_id = request_id(&request);
    let id = convert::uuid("upload_id", &request.get_ref().upload_id)?;
    let (file, record) = resumable::complete(app, &who, id, &call_id).await?;
    Ok(Response::new(pb::CompleteUploadResponse {
        file: Some(convert::file(&file)),
        upload: Some(convert::upload(&record, app.config.upload_part_bytes)),
    }))
}

pub async fn abort_upload(
    app: &App,
    request: Request<pb::AbortUploadRequest>,
) -> Result<Response<pb::AbortUploadResponse>, ApiError> {
    let who = authorize(&request, Access::Manage)?;
    let call_id = request_id(&request);
    let id = convert::uuid("upload_id", &request.get_ref().upload_id)?;
    let record = resumable::abort(app, &who, id, &call_id).await?;
    Ok(Response::new(pb::AbortUploadResponse {
        upload: Some(convert::upload(&record, app.config.upload_part_bytes)),
    }))
}
