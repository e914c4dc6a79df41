//! The resumable upload for browsers: CreateUpload, WriteUploadPart,
//! GetUpload, CompleteUpload and AbortUpload. They answer UNIMPLEMENTED
//! until the resumable upload lands.

use passare_imports_app::{ApiError, App};
use passare_imports_proto::v1 as pb;
use tonic::{Request, Response};

fn not_yet() -> ApiError {
    ApiError::Unavailable("resumable uploads are not available yet".into())
}

pub async fn create_upload(
    _app: &App,
    _request: Request<pb::CreateUploadRequest>,
) -> Result<Response<pb::CreateUploadResponse>, ApiError> {
    Err(not_yet())
}

pub async fn write_upload_part(
    _app: &App,
    _request: Request<pb::WriteUploadPartRequest>,
) -> Result<Response<pb::WriteUploadPartResponse>, ApiError> {
    Err(not_yet())
}

pub async fn get_upload(
    _app: &App,
    _request: Request<pb::GetUploadRequest>,
) -> Result<Response<pb::GetUploadResponse>, ApiError> {
    Err(not_yet())
}

pub async fn complete_upload(
    _app: &App,
    _request: Request<pb::CompleteUploadRequest>,
) -> Result<Response<pb::CompleteUploadResponse>, ApiError> {
    Err(not_yet())
}

pub async fn abort_upload(
    _app: &App,
    _request: Request<pb::AbortUploadRequest>,
) -> Result<Response<pb::AbortUploadResponse>, ApiError> {
    Err(not_yet())
}
