//! Drafts and their files: CreateImport, UploadFile (client streaming),
//! RemoveFile and AnalyzeImport.

use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use passare_imports_app::imports::{self, NewDraft};
use passare_imports_app::observability::names;
use passare_imports_app::{Access, ApiError, App, uploads};
use passare_imports_proto::v1 as pb;
use passare_imports_proto::v1::upload_file_request::Payload;
use tonic::{Request, Response, Streaming};

use crate::auth::{Call, authorize, request_id};
use crate::convert;

pub async fn create_import(
    app: &App,
    call: Call,
    req: pb::CreateImportRequest,
) -> Result<pb::CreateImportResponse, ApiError> {
    let draft = NewDraft {
        organization_id: convert::org(&req.organization_id)?,
        failure_policy: pb::FailurePolicy::try_from(req.failure_policy)
            .ok()
            .and_then(convert::policy_from_pb)
            .ok_or_else(|| {
                ApiError::invalid(
                    "failure_policy",
                    "must be FAILURE_POLICY_STOP_ON_FIRST_ERROR or FAILURE_POLICY_IMPORT_VALID_ROWS",
                )
            })?,
        request_id: match req.request_id.trim() {
            "" => None,
            id => Some(
                uuid::Uuid::parse_str(id)
                    .map_err(|_| ApiError::invalid("request_id", "must be a UUID"))?,
            ),
        },
        note: {
            if req.note.chars().count() > 2000 {
                return Err(ApiError::invalid("note", "is longer than 2000 characters"));
            }
            req.note
        },
    };
    let view = imports::create(app, &call.who, draft, &call.id).await?;
    Ok(pb::CreateImportResponse {
        import: Some(convert::shown(&call.who, &view)),
    })
}

pub async fn upload_file(
    app: &App,
    request: Request<Streaming<pb::UploadFileRequest>>,
) -> Result<Response<pb::UploadFileResponse>, ApiError> {
    let who = authorize(&request, Access::Manage)?;
    let call_id = request_id(&request);
    let _running = app.limits.uploads.start(&who)?;
    let idle = Duration::from_secs(app.config.upload_idle_secs);
    let mut stream = request.into_inner();
    let header = match next_message(&mut stream, idle).await? {
        Some(pb::UploadFileRequest {
            payload: Some(Payload::Header(h)),
        }) => h,
        _ => {
            return Err(ApiError::invalid(
                "header",
                "the first message of an upload must carry the file header",
            ));
        }
    };
    let upload = convert::file_upload(&header, "header")?;
    upload.check(app, "header")?;
    let view = uploads::ingest(app, &who, upload, upload_bytes(stream, idle), &call_id).await?;
    Ok(Response::new(pb::UploadFileResponse {
        file: Some(convert::file(&view)),
    }))
}

/// The next message of an upload, or DEADLINE_EXCEEDED when the client
/// sends nothing for `idle`.
async fn next_message(
    stream: &mut Streaming<pb::UploadFileRequest>,
    idle: Duration,
) -> Result<Option<pb::UploadFileRequest>, ApiError> {
    match tokio::time::timeout(idle, stream.message()).await {
        Err(_) => Err(ApiError::DeadlineExceeded {
            reason: "UPLOAD_IDLE",
            message: format!(
                "the upload sent nothing for {}s (IMPORTS_UPLOAD_IDLE_SECS); start it again",
                idle.as_secs()
            ),
        }),
        Ok(Err(status)) => Err(ApiError::invalid(
            "chunk",
            format!("the upload stream broke: {}", status.message()),
        )),
        Ok(Ok(message)) => Ok(message),
    }
}

/// The bytes of an upload after its header; a second header is refused.
fn upload_bytes(
    stream: Streaming<pb::UploadFileRequest>,
    idle: Duration,
) -> impl Stream<Item = Result<Bytes, ApiError>> + Unpin + Send {
    Box::pin(futures::stream::unfold(
        Some(stream),
        move |stream| async move {
            let mut stream = stream?;
            loop {
                return match next_message(&mut stream, idle).await {
                    Err(e) => Some((Err(e), None)),
                    Ok(None) => None,
                    Ok(Some(pb::UploadFileRequest {
                        payload: Some(Payload::Chunk(bytes)),
                    })) => {
                        metrics::counter!(names::UPLOAD_BYTES, "route" => "stream")
                            .increment(bytes.len() as u64);
                        Some((Ok(Bytes::from(bytes)), Some(stream)))
                    }
                    Ok(Some(pb::UploadFileRequest {
                        payload: Some(Payload::Header(_)),
                    })) => Some((
                        Err(ApiError::invalid(
                            "header",
                            "the header may be sent only once, first",
                        )),
                        None,
                    )),
                    Ok(Some(_)) => continue,
                };
            }
        },
    ))
    .fuse()
}

pub async fn remove_file(
    app: &App,
    call: Call,
    req: pb::RemoveFileRequest,
) -> Result<pb::RemoveFileResponse, ApiError> {
    let import_id = convert::uuid("import_id", &req.import_id)?;
    let file_id = convert::uuid("file_id", &req.file_id)?;
    let view = imports::remove_file(app, &call.who, import_id, file_id, &call.id).await?;
    Ok(pb::RemoveFileResponse {
        import: Some(convert::shown(&call.who, &view)),
    })
}

pub async fn analyze_import(
    app: &App,
    call: Call,
    req: pb::AnalyzeImportRequest,
) -> Result<pb::AnalyzeImportResponse, ApiError> {
    let id = convert::uuid("import_id", &req.import_id)?;
    let view = imports::analyze(app, &call.who, id, &call.id).await?;
    // The analysis runs in a worker: the report comes with the import once
    // `analysis_job` is DONE.
    Ok(pb::AnalyzeImportResponse {
        report: None,
        import: Some(convert::shown(&call.who, &view)),
    })
}
