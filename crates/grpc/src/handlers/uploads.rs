//! The resumable upload for browsers and flaky networks: CreateUpload,
//! WriteUploadPart, GetUpload, CompleteUpload and AbortUpload.

use bytes::Bytes;
use passare_imports_app::uploads::resumable;
use passare_imports_app::{ApiError, App};
use passare_imports_proto::v1 as pb;

use crate::auth::Call;
use crate::convert;

pub async fn create_upload(
    app: &App,
    call: Call,
    req: pb::CreateUploadRequest,
) -> Result<pb::CreateUploadResponse, ApiError> {
    let header = req
        .header
        .ok_or_else(|| ApiError::invalid("header", "is required"))?;
    let mut upload = convert::file_upload(&header, "header")?;
    upload.declared_sha256 =
        Some(req.declared_sha256.trim().to_lowercase()).filter(|s| !s.is_empty());
    let request_id = convert::optional_uuid("request_id", &req.request_id)
        .map_err(|_| ApiError::invalid("request_id", "must be a UUID"))?;
    let record = resumable::create(app, &call.who, upload, request_id, &call.id).await?;
    Ok(pb::CreateUploadResponse {
        upload: Some(convert::upload(&record, app.config.upload_part_bytes)),
    })
}

pub async fn write_upload_part(
    app: &App,
    call: Call,
    req: pb::WriteUploadPartRequest,
) -> Result<pb::WriteUploadPartResponse, ApiError> {
    let id = convert::uuid("upload_id", &req.upload_id)?;
    let committed =
        resumable::write_part(app, &call.who, id, req.offset, Bytes::from(req.data)).await?;
    Ok(pb::WriteUploadPartResponse {
        committed_bytes: committed,
    })
}

pub async fn get_upload(
    app: &App,
    call: Call,
    req: pb::GetUploadRequest,
) -> Result<pb::GetUploadResponse, ApiError> {
    let id = convert::uuid("upload_id", &req.upload_id)?;
    let record = resumable::get(app, &call.who, id).await?;
    Ok(pb::GetUploadResponse {
        upload: Some(convert::upload(&record, app.config.upload_part_bytes)),
    })
}

pub async fn complete_upload(
    app: &App,
    call: Call,
    req: pb::CompleteUploadRequest,
) -> Result<pb::CompleteUploadResponse, ApiError> {
    let id = convert::uuid("upload_id", &req.upload_id)?;
    let (file, record) = resumable::complete(app, &call.who, id, &call.id).await?;
    Ok(pb::CompleteUploadResponse {
        file: Some(convert::file(&file)),
        upload: Some(convert::upload(&record, app.config.upload_part_bytes)),
    })
}

pub async fn abort_upload(
    app: &App,
    call: Call,
    req: pb::AbortUploadRequest,
) -> Result<pb::AbortUploadResponse, ApiError> {
    let id = convert::uuid("upload_id", &req.upload_id)?;
    let record = resumable::abort(app, &call.who, id, &call.id).await?;
    Ok(pb::AbortUploadResponse {
        upload: Some(convert::upload(&record, app.config.upload_part_bytes)),
    })
}
