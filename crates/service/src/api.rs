//! The ImportService RPCs. Each handler checks its request, chooses the
//! transaction boundary, and returns the import as the API shows it.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use passare_imports_domain::catalog::{self, CATALOG};
use passare_imports_domain::decode::{self, Encoding, Sniffed};
use passare_imports_domain::scan::{ScanOptions, ScanReport, scan};
use passare_imports_domain::{ChunkMessage, FileState, ImportState};
use passare_imports_proto::v1 as pb;
use passare_imports_proto::v1::import_service_server::ImportService;
use passare_imports_proto::v1::upload_file_request::Payload;
use passare_imports_store::control::{self, Stopped};
use passare_imports_store::entities::chunks;
use passare_imports_store::repo::{self, NewFile, NewImport, Requester, Timestamp};
use passare_imports_store::results::{self, Retry};
use passare_imports_store::{failures, history};
use sea_orm::TransactionTrait;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::app::App;
use crate::auth::{Caller, caller};
use crate::convert::{self, ImportView};
use crate::error::{ApiError, FieldViolation, Precondition};

const DEFAULT_PAGE_SIZE: u64 = 50;
const MAX_PAGE_SIZE: u64 = 500;

pub struct ImportApi {
    app: App,
    uploads: std::sync::Arc<tokio::sync::Semaphore>,
    /// Uploads running per user, in this process.
    per_user: UploadsPerUser,
}

type UploadsPerUser = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>;

/// One running upload of a user; counted down when dropped.
struct UserUpload {
    user: String,
    running: UploadsPerUser,
}

impl Drop for UserUpload {
    fn drop(&mut self) {
        if let Ok(mut running) = self.running.lock()
            && let Some(n) = running.get_mut(&self.user)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.user);
            }
        }
    }
}

type DownloadStream =
    Pin<Box<dyn Stream<Item = Result<pb::DownloadResultsResponse, Status>> + Send>>;

/// Opaque page token of row errors: (file position, row, id).
fn encode_row_token((position, row, id): (i32, i64, i64)) -> String {
    hex::encode(format!("v1|row|{position}|{row}|{id}"))
}

fn decode_row_token(token: &str) -> Result<(i32, i64, i64), ApiError> {
    let bad = || ApiError::invalid("page_token", "is not a token this service issued");
    let raw = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
    let mut parts = raw.strip_prefix("v1|row|").ok_or_else(bad)?.split('|');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(p), Some(r), Some(i), None) => Ok((
            p.parse().map_err(|_| bad())?,
            r.parse().map_err(|_| bad())?,
            i.parse().map_err(|_| bad())?,
        )),
        _ => Err(bad()),
    }
}

/// Opaque page token of organizations: (lower-case name, id).
fn encode_name_token(name: &str, id: i64) -> String {
    hex::encode(format!("v1|org|{id}|{name}"))
}

fn decode_name_token(token: &str) -> Result<(String, i64), ApiError> {
    let bad = || ApiError::invalid("page_token", "is not a token this service issued");
    let raw = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
    let (id, name) = raw
        .strip_prefix("v1|org|")
        .and_then(|rest| rest.split_once('|'))
        .ok_or_else(bad)?;
    Ok((name.to_string(), id.parse().map_err(|_| bad())?))
}

fn not_retryable(state: &str) -> ApiError {
    ApiError::FailedPrecondition {
        reason: "IMPORT_NOT_RETRYABLE",
        message: format!(
            "only an import that completed with errors can have its failed rows edited or retried; this import is {state}"
        ),
        preconditions: vec![Precondition {
            kind: "STATE".into(),
            subject: "import".into(),
            description: format!("import is {state}, not completed_with_errors"),
        }],
        violations: vec![],
    }
}

fn purged(view: &ImportView) -> ApiError {
    ApiError::FailedPrecondition {
        reason: "RESULTS_PURGED",
        message: "the import's uploaded files and row-level results were deleted by the retention policy (IMPORTS_RETENTION_DAYS); its summary remains".into(),
        preconditions: vec![Precondition {
            kind: "RETENTION".into(),
            subject: format!("imports/{}", view.import.id),
            description: "results purged".into(),
        }],
        violations: vec![],
    }
}

/// The call's `x-request-id` (set by the request-id layer when absent).
fn request_id<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn too_many_files(max: u64) -> ApiError {
    ApiError::ResourceExhausted(format!(
        "an import may hold at most {max} files (IMPORTS_MAX_FILES_PER_IMPORT); start another import for the rest"
    ))
}

impl ImportApi {
    pub fn new(app: App) -> Self {
        let uploads = std::sync::Arc::new(tokio::sync::Semaphore::new(
            app.config.max_concurrent_uploads,
        ));
        Self {
            app,
            uploads,
            per_user: Default::default(),
        }
    }

    /// A file of the import by id; NOT_FOUND when the import has none such.
    fn file_of<'v>(
        &self,
        view: &'v ImportView,
        file_id: &str,
    ) -> Result<&'v convert::FileView, ApiError> {
        let id = parse_uuid("file_id", file_id)?;
        view.files
            .iter()
            .find(|f| f.file.id == id)
            .ok_or_else(|| ApiError::NotFound {
                kind: "file",
                id: id.to_string(),
            })
    }

    /// The import and one of its files, as their results read them.
    async fn file_results(
        &self,
        who: &Caller,
        import_id: &str,
        file_id: &str,
    ) -> Result<(ImportView, crate::results::FileResults), ApiError> {
        let view = self.view(who, parse_uuid("import_id", import_id)?).await?;
        let file = self.file_of(&view, file_id)?.file.clone();
        Ok((view, crate::results::FileResults::of(file)?))
    }

    /// Stores edits of failed rows, refusing rows that are not failed.
    async fn apply_edits(
        &self,
        who: &Caller,
        view: &ImportView,
        f: &crate::results::FileResults,
        edits: &[(i64, String, String)],
        what: &str,
    ) -> Result<usize, ApiError> {
        if view.import.results_purged_at.is_some() {
            return Err(purged(view));
        }
        match results::set_edits(
            &self.app.db,
            view.import.id,
            f.file.id,
            edits,
            &requester(who),
            what,
        )
        .await?
        {
            results::Edited::Rows(n) => Ok(n),
            results::Edited::NotRetryable(state) => Err(not_retryable(&state)),
            results::Edited::Purged => Err(purged(view)),
            results::Edited::NotFailed(rows) => Err(ApiError::InvalidArgument {
                reason: "ROWS_NOT_FAILED",
                message: format!(
                    "only failed rows can be edited; these rows of {} are not failed: {}",
                    f.file.file_name,
                    rows.iter()
                        .take(20)
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                violations: rows
                    .iter()
                    .take(100)
                    .map(|r| FieldViolation {
                        field: format!("rows[{r}]"),
                        description: "not a failed row of the file".into(),
                    })
                    .collect(),
            }),
        }
    }

    /// Records a state-changing call in the audit log. The change itself is
    /// committed (and on the import's timeline) before this runs; a failure
    /// to record is logged for the developers rather than failing the call.
    async fn audit(
        &self,
        who: &Caller,
        request_id: &str,
        action: &'static str,
        organization_id: Option<i64>,
        import_id: Option<Uuid>,
        details: serde_json::Value,
    ) {
        let event = history::NewAudit {
            actor: requester(who),
            action,
            organization_id,
            import_id,
            request_id: request_id.to_string(),
            details,
        };
        if let Err(e) = history::audit(&self.app.db, event).await {
            tracing::error!(action, import_id = ?import_id, error = %e, "recording an audit event failed");
        }
    }

    /// Publishes the messages of committed chunk rows. If the broker cannot
    /// take them now, the import stays queued and the workers' sweep
    /// announces it once the broker is back; nothing is lost.
    async fn publish(&self, import_id: Uuid, org: i64, chunks: &[chunks::Model]) {
        let messages: Vec<ChunkMessage> = chunks
            .iter()
            .map(|c| ChunkMessage::V1 {
                chunk_id: c.id,
                import_id: c.import_id,
                file_id: c.file_id,
                organization_id: c.organization_id,
                seq: c.seq as u32,
            })
            .collect();
        match self.app.publisher.publish_chunks(org, &messages).await {
            Ok(()) => {
                tracing::info!(import_id = %import_id, org_id = org, chunks = messages.len(), "import queued")
            }
            Err(e) => tracing::warn!(
                import_id = %import_id, org_id = org, error = %e,
                "import queued, but its chunk messages could not be published; the worker sweep will announce it"
            ),
        }
    }

    /// Counts an upload against its user's limit until the guard drops.
    fn user_upload(&self, who: &Caller) -> Result<UserUpload, ApiError> {
        let max = self.app.config.max_uploads_per_user;
        let mut running = self
            .per_user
            .lock()
            .map_err(|_| ApiError::Internal("the upload counter is poisoned".into()))?;
        let n = running.entry(who.id.clone()).or_default();
        if *n >= max {
            return Err(ApiError::ResourceExhausted(format!(
                "you already run {max} uploads, the most one user may (IMPORTS_MAX_UPLOADS_PER_USER); wait for one to finish"
            )));
        }
        *n += 1;
        Ok(UserUpload {
            user: who.id.clone(),
            running: self.per_user.clone(),
        })
    }

    /// The organization a pause or resume is about: `None` for every
    /// organization; an organization that does not exist is NOT_FOUND.
    async fn scope(&self, organization_id: &str) -> Result<Option<i64>, ApiError> {
        if organization_id.trim().is_empty() {
            return Ok(None);
        }
        let org = parse_org(organization_id)?;
        if repo::organization(self.app.db.orm(), org).await?.is_none() {
            return Err(ApiError::NotFound {
                kind: "organization",
                id: org.to_string(),
            });
        }
        Ok(Some(org))
    }

    /// The organization a read is filtered by: the one asked for (NOT_FOUND
    /// when it does not exist or the caller may not see it), or — for a user
    /// who is not staff and asked for none — their own.
    async fn visible_org(
        &self,
        who: &Caller,
        organization_id: &str,
    ) -> Result<Option<i64>, ApiError> {
        let not_found = |org: i64| ApiError::NotFound {
            kind: "organization",
            id: org.to_string(),
        };
        if organization_id.trim().is_empty() {
            return Ok(if who.is_staff() {
                None
            } else {
                who.organization_id
            });
        }
        let org = parse_org(organization_id)?;
        if !who.sees(org) || repo::organization(self.app.db.orm(), org).await?.is_none() {
            return Err(not_found(org));
        }
        Ok(Some(org))
    }

    /// The import as `who` may see it: one of an organization the caller may
    /// not see is NOT_FOUND exactly like one that does not exist.
    async fn view(&self, who: &Caller, id: Uuid) -> Result<ImportView, ApiError> {
        self.app
            .import_view(id)
            .await?
            .filter(|v| who.sees(v.import.organization_id))
            .ok_or_else(|| ApiError::NotFound {
                kind: "import",
                id: id.to_string(),
            })
    }
}

fn parse_uuid(field: &str, value: &str) -> Result<Uuid, ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    Uuid::parse_str(value.trim())
        .map_err(|_| ApiError::invalid(field, format!("{value:?} is not an import id")))
}

fn parse_org(value: &str) -> Result<i64, ApiError> {
    match value.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ if value.trim().is_empty() => Err(ApiError::invalid("organization_id", "is required")),
        _ => Err(ApiError::invalid(
            "organization_id",
            format!("{value:?} is not an organization id"),
        )),
    }
}

/// Opaque page token: the (create time, id) of the last import of a page.
fn encode_token(at: &Timestamp, id: Uuid) -> String {
    hex::encode(format!("v1|{}|{id}", at.to_rfc3339()))
}

fn decode_token(token: &str) -> Result<(Timestamp, Uuid), ApiError> {
    let bad = || ApiError::invalid("page_token", "is not a token this service issued");
    let raw = hex::decode(token).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = raw.split('|');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("v1"), Some(at), Some(id), None) => Ok((
            chrono::DateTime::parse_from_rfc3339(at).map_err(|_| bad())?,
            Uuid::parse_str(id).map_err(|_| bad())?,
        )),
        _ => Err(bad()),
    }
}

/// `page_size` of a list request: 0 means the default.
fn page_size(requested: i32) -> Result<u64, ApiError> {
    match requested {
        n if n < 0 => Err(ApiError::invalid("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok((n as u64).min(MAX_PAGE_SIZE)),
    }
}

/// Opaque page token of lists ordered by a numeric id, newest first.
fn encode_id_token(id: i64) -> String {
    hex::encode(format!("v1|id|{id}"))
}

fn decode_id_token(token: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::invalid("page_token", "is not a token this service issued");
    let raw = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
    raw.strip_prefix("v1|id|")
        .and_then(|id| id.parse().ok())
        .ok_or_else(bad)
}

/// Free text of a request, trimmed, at most `max` characters.
fn bounded_text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    Ok(value.to_string())
}

/// The import as the caller is shown it: developer details (backtraces and
/// cause chains of failed chunk attempts) only for developers.
fn shown(who: &Caller, view: &ImportView) -> pb::Import {
    let mut import = pb::Import::from(view);
    if !who.sees_developer_details() {
        for f in &mut import.chunk_failures {
            redact(f);
        }
    }
    import
}

/// Strips what only developers see from a failed chunk attempt.
fn redact(f: &mut pb::ChunkFailure) {
    f.backtrace.clear();
    f.causes.clear();
}

fn from_timestamp(t: &prost_types::Timestamp) -> Result<Timestamp, ApiError> {
    chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .map(|t| t.fixed_offset())
        .ok_or_else(|| ApiError::invalid("time", "is not a valid timestamp"))
}

/// The requester as stored, from the caller's token.
fn requester(who: &Caller) -> Requester {
    Requester {
        id: who.id.clone(),
        name: who.name.clone(),
        email: who.email.clone(),
    }
}

fn known_types() -> String {
    CATALOG.iter().map(|t| t.key).collect::<Vec<_>>().join(", ")
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchImportResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ImportService for ImportApi {
    async fn create_import(
        &self,
        request: Request<pb::CreateImportRequest>,
    ) -> Result<Response<pb::CreateImportResponse>, Status> {
        let who = caller(&request)?;
        let call_id = request_id(&request);
        who.must_manage()?;
        let req = request.into_inner();
        let organization_id = parse_org(&req.organization_id)?;
        let policy = pb::FailurePolicy::try_from(req.failure_policy)
            .ok()
            .and_then(convert::policy_from_pb)
            .ok_or_else(|| {
                ApiError::invalid(
                    "failure_policy",
                    "must be FAILURE_POLICY_STOP_ON_FIRST_ERROR or FAILURE_POLICY_IMPORT_VALID_ROWS",
                )
            })?;
        let request_id = if req.request_id.trim().is_empty() {
            None
        } else {
            Some(
                Uuid::parse_str(req.request_id.trim())
                    .map_err(|_| ApiError::invalid("request_id", "must be a UUID"))?,
            )
        };
        if req.note.chars().count() > 2000 {
            return Err(ApiError::invalid("note", "is longer than 2000 characters").into());
        }
        if repo::organization(self.app.db.orm(), organization_id)
            .await
            .map_err(ApiError::from)?
            .is_none()
        {
            return Err(ApiError::NotFound {
                kind: "organization",
                id: organization_id.to_string(),
            }
            .into());
        }
        let (import, created) = repo::create_import(
            self.app.db.orm(),
            NewImport {
                organization_id,
                failure_policy: policy,
                note: req.note,
                request_id,
                requested_by: requester(&who),
            },
        )
        .await
        .map_err(ApiError::from)?;
        tracing::info!(import_id = %import.id, org_id = organization_id, created, "import created");
        if created {
            self.audit(
                &who,
                &call_id,
                "create_import",
                Some(organization_id),
                Some(import.id),
                serde_json::json!({
                    "failure_policy": import.failure_policy,
                    "note": import.note,
                    "request_id": import.request_id,
                }),
            )
            .await;
        }
        let view = self.view(&who, import.id).await?;
        Ok(Response::new(pb::CreateImportResponse {
            import: Some(shown(&who, &view)),
        }))
    }

    async fn upload_file(
        &self,
        request: Request<Streaming<pb::UploadFileRequest>>,
    ) -> Result<Response<pb::UploadFileResponse>, Status> {
        let who = caller(&request)?;
        who.must_manage()?;
        let request_id = request_id(&request);
        let _mine = self.user_upload(&who)?;
        let _upload = self.uploads.clone().try_acquire_owned().map_err(|_| {
            ApiError::ResourceExhausted(format!(
                "this server already receives {} uploads (IMPORTS_MAX_CONCURRENT_UPLOADS); try again shortly",
                self.app.config.max_concurrent_uploads
            ))
        })?;
        let idle = Duration::from_secs(self.app.config.upload_idle_secs);
        let mut stream = request.into_inner();
        let idle_error = || {
            ApiError::DeadlineExceeded(format!(
                "the upload sent nothing for {}s (IMPORTS_UPLOAD_IDLE_SECS); start it again",
                idle.as_secs()
            ))
        };
        let header = match tokio::time::timeout(idle, stream.message())
            .await
            .map_err(|_| idle_error())??
        {
            Some(pb::UploadFileRequest {
                payload: Some(Payload::Header(h)),
            }) => h,
            _ => {
                return Err(ApiError::invalid(
                    "header",
                    "the first message of an upload must carry the file header",
                )
                .into());
            }
        };
        let import_id = parse_uuid("header.import_id", &header.import_id)?;
        let def = catalog::find(&header.import_type).ok_or_else(|| {
            ApiError::invalid(
                "header.import_type",
                format!(
                    "{:?} is not an import type; known types: {}",
                    header.import_type,
                    known_types()
                ),
            )
        })?;
        let file_name = header.file_name.trim().to_string();
        if file_name.is_empty() || file_name.len() > 255 {
            return Err(
                ApiError::invalid("header.file_name", "must be 1 to 255 characters").into(),
            );
        }
        let max = self.app.config.max_file_bytes;
        if header.declared_size_bytes <= 0 || header.declared_size_bytes as u64 > max {
            return Err(ApiError::invalid(
                "header.declared_size_bytes",
                format!("must be between 1 and {max} bytes (the largest file accepted)"),
            )
            .into());
        }
        let declared = header.declared_size_bytes as u64;
        let reading = ReadOptions::from_header(def, &header)?;
        let import = repo::find_import(self.app.db.orm(), import_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound {
                kind: "import",
                id: import_id.to_string(),
            })?;
        if import.state != ImportState::Draft.as_str() {
            return Err(not_a_draft(&import.state).into());
        }
        let max_files = self.app.config.max_files_per_import;
        if repo::file_count(self.app.db.orm(), import_id)
            .await
            .map_err(ApiError::from)?
            >= max_files
        {
            return Err(too_many_files(max_files).into());
        }

        let file_id = Uuid::now_v7();
        let key = format!("imports/{import_id}/{file_id}");
        let mut writer = self.app.files.create(&key).await.map_err(ApiError::from)?;
        // The structural scan reads the bytes as they arrive, on a blocking
        // thread, so the file is stored and scanned in one pass.
        let (scan_tx, scan_rx) = mpsc::channel::<bytes::Bytes>(16);
        let chunk_rows = self.app.config.chunk_rows;
        let (explicit, delimiter) = (reading.mapping.clone(), reading.delimiter);
        let scanner = tokio::task::spawn_blocking(move || {
            scan(
                std::io::BufReader::new(ChannelReader::new(scan_rx)),
                def,
                &ScanOptions {
                    explicit: &explicit,
                    delimiter,
                    chunk_rows,
                },
            )
        });
        let mut head: Vec<u8> = Vec::with_capacity(HEAD_BYTES);
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        while let Some(msg) = tokio::time::timeout(idle, stream.message())
            .await
            .map_err(|_| idle_error())??
        {
            match msg.payload {
                Some(Payload::Chunk(bytes)) => {
                    received += bytes.len() as u64;
                    if received > declared {
                        return Err(ApiError::invalid(
                            "chunk",
                            format!("more bytes arrived than the {declared} declared"),
                        )
                        .into());
                    }
                    hasher.update(&bytes);
                    if head.len() < HEAD_BYTES {
                        let take = (HEAD_BYTES - head.len()).min(bytes.len());
                        head.extend_from_slice(&bytes[..take]);
                    }
                    writer.write(&bytes).await.map_err(ApiError::from)?;
                    // The scanner stops early only for files it rejects outright.
                    let _ = scan_tx.send(bytes::Bytes::from(bytes)).await;
                }
                Some(Payload::Header(_)) => {
                    return Err(ApiError::invalid(
                        "header",
                        "the header may be sent only once, first",
                    )
                    .into());
                }
                None => {}
            }
        }
        if received != declared {
            return Err(ApiError::invalid(
                "header.declared_size_bytes",
                format!("declared {declared} bytes but {received} arrived"),
            )
            .into());
        }
        drop(scan_tx);
        let report = scanner
            .await
            .map_err(|e| ApiError::Internal(format!("scan task: {e}")))?
            .map_err(|e| ApiError::Internal(format!("scanning the upload: {e}")))?;
        let size = writer.commit().await.map_err(ApiError::from)?;
        let sha256 = hex::encode(hasher.finalize());
        let read = self
            .read_as_text(&key, size, &head, report, def, &reading)
            .await
            .inspect_err(|_| {
                let files = self.app.files.clone();
                let key = key.clone();
                tokio::spawn(async move { files.delete(&key).await });
            })?;
        let report = read.report;
        let max_rows = self.app.config.max_rows_per_file;
        if report.row_count > max_rows {
            self.app.files.delete(&key).await.ok();
            if let Some(data) = &read.data_key {
                self.app.files.delete(data).await.ok();
            }
            return Err(ApiError::invalid(
                "chunk",
                format!(
                    "the file has {} rows; a file may hold at most {max_rows} (IMPORTS_MAX_ROWS_PER_FILE): split it into several files",
                    report.row_count
                ),
            )
            .into());
        }

        let state = if report.is_valid() {
            FileState::Ready
        } else {
            FileState::Invalid
        };
        let problems = serde_json::to_value(&report.problems).unwrap_or_default();
        let added = repo::add_file(
            self.app.db.orm(),
            NewFile {
                id: file_id,
                import_id,
                organization_id: import.organization_id,
                import_type: def.key.to_string(),
                file_name,
                storage_key: key.clone(),
                size_bytes: size as i64,
                sha256,
                format: report.format.as_str().to_string(),
                delimiter: (report.delimiter as char).to_string(),
                headers: report.headers.clone(),
                row_count: report.row_count as i64,
                chunk_plan: report.chunks.clone(),
                state,
                problems,
                encoding: read.encoding,
                sheet_name: read.sheet,
                data_key: read.data_key.clone(),
                column_mapping: reading.mapping.clone(),
                load_order: def.load_rank(),
            },
            &requester(&who),
            max_files,
        )
        .await
        .map_err(ApiError::from)?;
        let model = match added {
            repo::Added::File(model) => *model,
            refused => {
                self.app.files.delete(&key).await.ok();
                if let Some(data) = &read.data_key {
                    self.app.files.delete(data).await.ok();
                }
                return Err(match refused {
                    repo::Added::TooMany(_) => too_many_files(max_files),
                    _ => not_a_draft("queued"),
                }
                .into());
            }
        };
        tracing::info!(
            import_id = %import_id, file_id = %file_id, org_id = import.organization_id,
            bytes = size, rows = report.row_count, valid = report.is_valid(), "file uploaded"
        );
        self.audit(
            &who,
            &request_id,
            "upload_file",
            Some(import.organization_id),
            Some(import_id),
            serde_json::json!({
                "file_id": model.id,
                "file_name": model.file_name,
                "import_type": model.import_type,
                "size_bytes": model.size_bytes,
                "sha256": model.sha256,
                "rows": model.row_count,
                "state": model.state,
            }),
        )
        .await;
        let views = self
            .app
            .file_views(vec![model])
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::UploadFileResponse {
            file: views.first().map(convert::file),
        }))
    }

    async fn start_import(
        &self,
        request: Request<pb::StartImportRequest>,
    ) -> Result<Response<pb::StartImportResponse>, Status> {
        let who = caller(&request)?;
        let request_id = request_id(&request);
        who.must_manage()?;
        let id = parse_uuid("import_id", &request.get_ref().import_id)?;
        let policy = convert::policy_from_pb(
            pb::FailurePolicy::try_from(request.get_ref().failure_policy)
                .unwrap_or(pb::FailurePolicy::Unspecified),
        );
        let mut view = self.view(&who, id).await?;
        if view.import.state != ImportState::Draft.as_str() {
            // Starting a started import is a no-op that shows where it is.
            return Ok(Response::new(pb::StartImportResponse {
                import: Some(shown(&who, &view)),
            }));
        }
        if let Some(policy) = policy
            && policy.as_str() != view.import.failure_policy
        {
            repo::set_failure_policy(self.app.db.orm(), id, policy)
                .await
                .map_err(ApiError::from)?;
            view = self.view(&who, id).await?;
        }
        // An import never analysed is analysed now: a caller that uploads and
        // starts gets the same protection as one that looks at the report.
        if view.import.analysis.is_none() && !view.files.is_empty() {
            crate::analysis::analyze(&self.app, &view.import, &requester(&who)).await?;
            view = self.view(&who, id).await?;
        }
        let org = view.import.organization_id;

        // Queue under the organization's queue lock and the import's row lock,
        // checking the files as they are now: an upload that raced this call
        // is either in the list or refused.
        let txn = self.app.db.orm().begin().await.map_err(ApiError::from)?;
        repo::lock_org_queue(&txn, org)
            .await
            .map_err(ApiError::from)?;
        let import = repo::lock_import(&txn, id).await.map_err(ApiError::from)?;
        let Some(import) = import.filter(|i| i.state == ImportState::Draft.as_str()) else {
            txn.rollback().await.ok();
            let view = self.view(&who, id).await?;
            return Ok(Response::new(pb::StartImportResponse {
                import: Some(shown(&who, &view)),
            }));
        };
        let files = repo::import_files(&txn, id).await.map_err(ApiError::from)?;
        let fresh = ImportView {
            import: import.clone(),
            files: self
                .app
                .file_views(files.clone())
                .await
                .map_err(ApiError::from)?,
            queue_position: 0,
            pause: None,
            chunk_failures: Vec::new(),
            chunk_failure_count: 0,
            timeline: Vec::new(),
            organization_name: String::new(),
        };
        if let Err(e) = self.check_startable(&fresh).await {
            txn.rollback().await.ok();
            return Err(e.into());
        }
        let Some(chunks) = repo::queue_import(&txn, &import, &files, &requester(&who))
            .await
            .map_err(ApiError::from)?
        else {
            txn.rollback().await.ok();
            let view = self.view(&who, id).await?;
            return Ok(Response::new(pb::StartImportResponse {
                import: Some(shown(&who, &view)),
            }));
        };
        txn.commit().await.map_err(ApiError::from)?;
        self.publish(id, org, &chunks).await;
        self.audit(
            &who,
            &request_id,
            "start_import",
            Some(org),
            Some(id),
            serde_json::json!({
                "failure_policy": import.failure_policy,
                "chunks": chunks.len(),
            }),
        )
        .await;
        let view = self.view(&who, id).await?;
        Ok(Response::new(pb::StartImportResponse {
            import: Some(shown(&who, &view)),
        }))
    }

    async fn remove_file(
        &self,
        request: Request<pb::RemoveFileRequest>,
    ) -> Result<Response<pb::RemoveFileResponse>, Status> {
        let who = caller(&request)?;
        who.must_manage()?;
        let request_id = request_id(&request);
        let import_id = parse_uuid("import_id", &request.get_ref().import_id)?;
        let file_id = parse_uuid("file_id", &request.get_ref().file_id)?;
        let removed_name = match repo::remove_file(
            self.app.db.orm(),
            import_id,
            file_id,
            &requester(&who),
        )
        .await
        .map_err(ApiError::from)?
        {
            repo::Removed::Done(name, keys) => {
                for key in keys {
                    if let Err(e) = self.app.files.delete(&key).await {
                        tracing::warn!(import_id = %import_id, key, error = %e, "deleting a removed file's bytes failed");
                    }
                }
                tracing::info!(import_id = %import_id, file_id = %file_id, "file removed");
                name
            }
            repo::Removed::NotDraft(state) => return Err(not_a_draft(&state).into()),
            repo::Removed::NotFound => {
                return Err(ApiError::NotFound {
                    kind: "file",
                    id: file_id.to_string(),
                }
                .into());
            }
        };
        let view = self.view(&who, import_id).await?;
        self.audit(
            &who,
            &request_id,
            "remove_file",
            Some(view.import.organization_id),
            Some(import_id),
            serde_json::json!({ "file_id": file_id, "file_name": removed_name }),
        )
        .await;
        Ok(Response::new(pb::RemoveFileResponse {
            import: Some(shown(&who, &view)),
        }))
    }

    async fn analyze_import(
        &self,
        request: Request<pb::AnalyzeImportRequest>,
    ) -> Result<Response<pb::AnalyzeImportResponse>, Status> {
        let who = caller(&request)?;
        let request_id = request_id(&request);
        who.must_manage()?;
        let id = parse_uuid("import_id", &request.get_ref().import_id)?;
        let view = self.view(&who, id).await?;
        if view.import.state != ImportState::Draft.as_str() {
            return Err(ApiError::FailedPrecondition {
                reason: "IMPORT_NOT_DRAFT",
                message: format!(
                    "only a draft import can be analysed; this import is {}",
                    view.import.state
                ),
                preconditions: vec![Precondition {
                    kind: "STATE".into(),
                    subject: "import".into(),
                    description: format!("import is {}, not draft", view.import.state),
                }],
                violations: vec![],
            }
            .into());
        }
        if view.files.is_empty() {
            return Err(ApiError::FailedPrecondition {
                reason: "NO_FILES",
                message: "the import has no files; upload at least one before analysing".into(),
                preconditions: vec![Precondition {
                    kind: "FILES".into(),
                    subject: "import".into(),
                    description: "no files uploaded".into(),
                }],
                violations: vec![],
            }
            .into());
        }
        let report = crate::analysis::analyze(&self.app, &view.import, &requester(&who)).await?;
        self.audit(
            &who,
            &request_id,
            "analyze_import",
            Some(view.import.organization_id),
            Some(id),
            serde_json::json!({
                "blocking": report.blocks(view.policy()),
                "files": report.files.len(),
                "duration_ms": report.duration_ms,
            }),
        )
        .await;
        let view = self.view(&who, id).await?;
        Ok(Response::new(pb::AnalyzeImportResponse {
            report: Some(convert::analysis(&report, view.policy(), false)),
            import: Some(shown(&who, &view)),
        }))
    }

    async fn list_import_types(
        &self,
        request: Request<pb::ListImportTypesRequest>,
    ) -> Result<Response<pb::ListImportTypesResponse>, Status> {
        caller(&request)?;
        Ok(Response::new(pb::ListImportTypesResponse {
            import_types: CATALOG.iter().map(|t| convert::import_type(t)).collect(),
        }))
    }

    async fn get_import_template(
        &self,
        request: Request<pb::GetImportTemplateRequest>,
    ) -> Result<Response<pb::GetImportTemplateResponse>, Status> {
        caller(&request)?;
        let key = &request.get_ref().import_type;
        let def = catalog::find(key).ok_or_else(|| {
            ApiError::invalid(
                "import_type",
                format!(
                    "{key:?} is not an import type; known types: {}",
                    known_types()
                ),
            )
        })?;
        Ok(Response::new(pb::GetImportTemplateResponse {
            file_name: format!("{}.csv", def.key),
            content_type: "text/csv; charset=utf-8".into(),
            content: catalog::template_csv(def).into_bytes(),
        }))
    }

    async fn get_import(
        &self,
        request: Request<pb::GetImportRequest>,
    ) -> Result<Response<pb::GetImportResponse>, Status> {
        let who = caller(&request)?;
        let id = parse_uuid("import_id", &request.get_ref().import_id)?;
        let view = self.view(&who, id).await?;
        Ok(Response::new(pb::GetImportResponse {
            import: Some(shown(&who, &view)),
        }))
    }

    async fn list_imports(
        &self,
        request: Request<pb::ListImportsRequest>,
    ) -> Result<Response<pb::ListImportsResponse>, Status> {
        let who = caller(&request)?;
        let req = request.into_inner();
        let org = self.visible_org(&who, &req.organization_id).await?;
        let page_size = page_size(req.page_size)?;
        let cursor = if req.page_token.is_empty() {
            None
        } else {
            Some(decode_token(&req.page_token)?)
        };
        let state = pb::ImportState::try_from(req.state).map_err(|_| {
            ApiError::invalid("state", format!("{} is not an import state", req.state))
        })?;
        let (states, paused) = match state {
            pb::ImportState::Unspecified => (vec![], None),
            pb::ImportState::Paused => {
                (vec![ImportState::Queued, ImportState::Running], Some(true))
            }
            pb::ImportState::Queued => (vec![ImportState::Queued], Some(false)),
            pb::ImportState::Running => (vec![ImportState::Running], Some(false)),
            other => (vec![convert::import_state_from_pb(other)?], None),
        };
        let import_type = match req.import_type.trim() {
            "" => None,
            key => Some(
                catalog::find(key)
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "import_type",
                            format!(
                                "{key:?} is not an import type; known types: {}",
                                known_types()
                            ),
                        )
                    })?
                    .key
                    .to_string(),
            ),
        };
        let filter = repo::ImportFilter {
            organization_id: org,
            import_type,
            states,
            paused,
            requested_by: Some(req.requested_by.trim().to_string()).filter(|r| !r.is_empty()),
            created_from: req
                .create_time_after
                .as_ref()
                .map(from_timestamp)
                .transpose()?,
            created_before: req
                .create_time_before
                .as_ref()
                .map(from_timestamp)
                .transpose()?,
        };
        if !who.is_staff() && org.is_none() {
            // A user of no organization sees no import.
            return Ok(Response::new(pb::ListImportsResponse::default()));
        }
        let db = self.app.db.orm();
        let mut rows = repo::list_imports(db, &filter, cursor, page_size + 1)
            .await
            .map_err(ApiError::from)?;
        let more = rows.len() as u64 > page_size;
        rows.truncate(page_size as usize);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => encode_token(&last.created_at, last.id),
            _ => String::new(),
        };
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut files = repo::files_of_imports(db, &ids)
            .await
            .map_err(ApiError::from)?;
        let mut imports = Vec::with_capacity(rows.len());
        for import in rows {
            let (mine, rest): (Vec<_>, Vec<_>) =
                files.into_iter().partition(|f| f.import_id == import.id);
            files = rest;
            let view = self
                .app
                .view_of(import, mine)
                .await
                .map_err(ApiError::from)?;
            imports.push(shown(&who, &view));
        }
        Ok(Response::new(pb::ListImportsResponse {
            imports,
            next_page_token,
        }))
    }

    type WatchImportStream = WatchStream;

    async fn watch_import(
        &self,
        request: Request<pb::WatchImportRequest>,
    ) -> Result<Response<Self::WatchImportStream>, Status> {
        let who = caller(&request)?;
        let id = parse_uuid("import_id", &request.get_ref().import_id)?;
        // Subscribe before the snapshot so no change falls between the two.
        let mut changes = self.app.events.subscribe();
        let first = self.view(&who, id).await?;
        let app = self.app.clone();
        let poll = Duration::from_millis(app.config.watch_poll_ms.max(50));
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut last = shown(&who, &first);
            let terminal = |i: &pb::Import| {
                matches!(
                    pb::ImportState::try_from(i.state),
                    Ok(pb::ImportState::Completed
                        | pb::ImportState::CompletedWithErrors
                        | pb::ImportState::Failed
                        | pb::ImportState::Stopped)
                )
            };
            let done = terminal(&last);
            let snapshot = pb::WatchImportResponse {
                kind: pb::WatchEventKind::Snapshot as i32,
                import: Some(last.clone()),
            };
            if tx.send(Ok(snapshot)).await.is_err() || done {
                return;
            }
            let mut tick = tokio::time::interval(poll);
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tick.tick() => {}
                    changed = changes.recv() => match changed {
                        Ok(Some(other)) if other != id => continue,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                }
                let now = match app.import_view(id).await {
                    Ok(Some(v)) => shown(&who, &v),
                    Ok(None) => {
                        let _ = tx
                            .send(Err(ApiError::NotFound {
                                kind: "import",
                                id: id.to_string(),
                            }
                            .into()))
                            .await;
                        return;
                    }
                    Err(e) if e.is_transient() => continue,
                    Err(e) => {
                        let _ = tx.send(Err(ApiError::from(e).into())).await;
                        return;
                    }
                };
                if now == last {
                    continue;
                }
                let state_changed = now.state != last.state
                    || now
                        .files
                        .iter()
                        .zip(&last.files)
                        .any(|(a, b)| a.state != b.state)
                    || now.files.len() != last.files.len();
                let kind = if state_changed {
                    pb::WatchEventKind::StateChanged
                } else {
                    pb::WatchEventKind::Progress
                };
                let done = terminal(&now);
                last = now.clone();
                if tx
                    .send(Ok(pb::WatchImportResponse {
                        kind: kind as i32,
                        import: Some(now),
                    }))
                    .await
                    .is_err()
                    || done
                {
                    return;
                }
            }
        });
        Ok(Response::new(
            Box::pin(ReceiverStream::new(rx)) as WatchStream
        ))
    }

    async fn stop_import(
        &self,
        request: Request<pb::StopImportRequest>,
    ) -> Result<Response<pb::StopImportResponse>, Status> {
        let who = caller(&request)?;
        who.must_manage()?;
        let request_id = request_id(&request);
        let req = request.into_inner();
        let id = parse_uuid("import_id", &req.import_id)?;
        let reason = bounded_text("reason", &req.reason, 2000)?;
        match control::stop_import(&self.app.db, id, &requester(&who), &reason)
            .await
            .map_err(ApiError::from)?
        {
            Stopped::Now => {
                tracing::info!(import_id = %id, by = %who.id, reason = %reason, "import stopped");
                let org = self.view(&who, id).await?.import.organization_id;
                self.audit(
                    &who,
                    &request_id,
                    "stop_import",
                    Some(org),
                    Some(id),
                    serde_json::json!({ "reason": reason }),
                )
                .await;
            }
            Stopped::Already => {}
            Stopped::Finished(state) => {
                return Err(ApiError::FailedPrecondition {
                    reason: "IMPORT_FINISHED",
                    message: format!("the import already ended {state}; there is nothing to stop"),
                    preconditions: vec![Precondition {
                        kind: "STATE".into(),
                        subject: format!("imports/{id}"),
                        description: format!("import is {state}"),
                    }],
                    violations: vec![],
                }
                .into());
            }
            Stopped::NotFound => {
                return Err(ApiError::NotFound {
                    kind: "import",
                    id: id.to_string(),
                }
                .into());
            }
        }
        let view = self.view(&who, id).await?;
        Ok(Response::new(pb::StopImportResponse {
            import: Some(shown(&who, &view)),
        }))
    }

    async fn pause_imports(
        &self,
        request: Request<pb::PauseImportsRequest>,
    ) -> Result<Response<pb::PauseImportsResponse>, Status> {
        let who = caller(&request)?;
        who.must_manage()?;
        let request_id = request_id(&request);
        let req = request.into_inner();
        let org = self.scope(&req.organization_id).await?;
        let reason = bounded_text("reason", &req.reason, 2000)?;
        if reason.is_empty() {
            return Err(ApiError::invalid(
                "reason",
                "is required: say why, it is shown on every paused import",
            )
            .into());
        }
        let pause = control::pause(&self.app.db, org, &reason, &requester(&who))
            .await
            .map_err(ApiError::from)?;
        tracing::info!(org_id = ?org, by = %who.id, reason = %reason, "imports paused");
        self.audit(
            &who,
            &request_id,
            "pause_imports",
            org,
            None,
            serde_json::json!({ "reason": reason, "scope": org.map_or("every organization".to_string(), |o| format!("organization {o}")) }),
        )
        .await;
        Ok(Response::new(pb::PauseImportsResponse {
            pause: Some(convert::pause(&pause)),
        }))
    }

    async fn resume_imports(
        &self,
        request: Request<pb::ResumeImportsRequest>,
    ) -> Result<Response<pb::ResumeImportsResponse>, Status> {
        let who = caller(&request)?;
        who.must_manage()?;
        let request_id = request_id(&request);
        let org = self.scope(&request.get_ref().organization_id).await?;
        let (lifted, waking) = control::resume(&self.app.db, org, &requester(&who))
            .await
            .map_err(ApiError::from)?;
        tracing::info!(org_id = ?org, by = %who.id, lifted = lifted.is_some(), organizations = waking.len(), "imports resumed");
        self.audit(
            &who,
            &request_id,
            "resume_imports",
            org,
            None,
            serde_json::json!({
                "lifted": lifted.as_ref().map(|p| p.reason.clone()),
                "organizations_woken": waking.len(),
            }),
        )
        .await;
        // Wake the workers now; if the broker cannot take the notices, their
        // sweep finds the waiting chunks.
        if !waking.is_empty()
            && let Err(e) = self.app.publisher.announce(&waking).await
        {
            tracing::warn!(error = %e, "announcing resumed organizations failed; the worker sweep will");
        }
        let pauses = control::pauses(&self.app.db)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ResumeImportsResponse {
            lifted: lifted.as_ref().map(convert::pause),
            pauses: pauses.iter().map(convert::pause).collect(),
        }))
    }

    async fn list_pauses(
        &self,
        request: Request<pb::ListPausesRequest>,
    ) -> Result<Response<pb::ListPausesResponse>, Status> {
        let who = caller(&request)?;
        who.must_be_staff()?;
        let pauses = control::pauses(&self.app.db)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListPausesResponse {
            pauses: pauses.iter().map(convert::pause).collect(),
        }))
    }

    async fn list_chunk_failures(
        &self,
        request: Request<pb::ListChunkFailuresRequest>,
    ) -> Result<Response<pb::ListChunkFailuresResponse>, Status> {
        let who = caller(&request)?;
        who.must_be_staff()?;
        let req = request.into_inner();
        let filter = failures::Filter {
            import_id: match req.import_id.trim() {
                "" => None,
                id => Some(parse_uuid("import_id", id)?),
            },
            organization_id: match req.organization_id.trim() {
                "" => None,
                org => Some(parse_org(org)?),
            },
        };
        let page_size = page_size(req.page_size)?;
        let before = match req.page_token.as_str() {
            "" => None,
            token => Some(decode_id_token(token)?),
        };
        let mut rows = failures::list(&self.app.db, &filter, before, page_size + 1)
            .await
            .map_err(ApiError::from)?;
        let more = rows.len() as u64 > page_size;
        rows.truncate(page_size as usize);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => encode_id_token(last.id),
            _ => String::new(),
        };
        let file_ids: Vec<Uuid> = rows.iter().map(|f| f.file_id).collect();
        let names = repo::file_names(self.app.db.orm(), &file_ids)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListChunkFailuresResponse {
            chunk_failures: rows
                .iter()
                .map(|f| {
                    let mut shown =
                        convert::chunk_failure(f, names.get(&f.file_id).map_or("", String::as_str));
                    if !who.sees_developer_details() {
                        redact(&mut shown);
                    }
                    shown
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn list_row_errors(
        &self,
        request: Request<pb::ListRowErrorsRequest>,
    ) -> Result<Response<pb::ListRowErrorsResponse>, Status> {
        let who = caller(&request)?;
        let req = request.into_inner();
        let id = parse_uuid("import_id", &req.import_id)?;
        let view = self.view(&who, id).await?;
        let file_id = match req.file_id.trim() {
            "" => None,
            f => Some(self.file_of(&view, f)?.file.id),
        };
        let page_size = match req.page_size {
            n if n < 0 => return Err(ApiError::invalid("page_size", "must not be negative").into()),
            0 => 100,
            n => i64::from(n.min(1000)),
        };
        let after = match req.page_token.as_str() {
            "" => None,
            token => Some(decode_row_token(token)?),
        };
        let mut rows = results::list_row_errors(
            &self.app.db,
            id,
            file_id,
            req.include_retried,
            after,
            page_size + 1,
        )
        .await
        .map_err(ApiError::from)?;
        let more = rows.len() as i64 > page_size;
        rows.truncate(page_size as usize);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => encode_row_token((last.position, last.row, last.id)),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListRowErrorsResponse {
            row_errors: rows.iter().map(convert::row_error).collect(),
            next_page_token,
        }))
    }

    type DownloadResultsStream = DownloadStream;

    async fn download_results(
        &self,
        request: Request<pb::DownloadResultsRequest>,
    ) -> Result<Response<Self::DownloadResultsStream>, Status> {
        let who = caller(&request)?;
        let req = request.into_inner();
        let id = parse_uuid("import_id", &req.import_id)?;
        let view = self.view(&who, id).await?;
        let file = self.file_of(&view, &req.file_id)?.file.clone();
        if view.import.results_purged_at.is_some() {
            return Err(purged(&view).into());
        }
        let kind = pb::ResultKind::try_from(req.kind).unwrap_or(pb::ResultKind::Unspecified);
        let stem = file
            .file_name
            .rsplit_once('.')
            .map_or(file.file_name.as_str(), |(stem, _)| stem)
            .to_string();
        let f = crate::results::FileResults::of(file)?;
        let (name, mut bytes) = match kind {
            pb::ResultKind::FailedRows => (
                format!("{stem}.failed-rows.csv"),
                crate::results::failed_rows_csv(self.app.clone(), f),
            ),
            pb::ResultKind::WrittenRows => (
                format!("{stem}.written-rows.csv"),
                crate::results::written_rows_csv(self.app.clone(), f, view.import.organization_id),
            ),
            pb::ResultKind::Unspecified => {
                return Err(ApiError::invalid(
                    "kind",
                    "must be RESULT_KIND_FAILED_ROWS or RESULT_KIND_WRITTEN_ROWS",
                )
                .into());
            }
        };
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut first = Some((name, "text/csv; charset=utf-8".to_string()));
            while let Some(piece) = bytes.recv().await {
                let message = piece.map(|chunk| {
                    let (file_name, content_type) = first.take().unwrap_or_default();
                    pb::DownloadResultsResponse {
                        file_name,
                        content_type,
                        chunk,
                    }
                });
                let failed = message.is_err();
                if tx.send(message.map_err(Status::from)).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(
            Box::pin(ReceiverStream::new(rx)) as DownloadStream
        ))
    }

    async fn update_rows(
        &self,
        request: Request<pb::UpdateRowsRequest>,
    ) -> Result<Response<pb::UpdateRowsResponse>, Status> {
        let who = caller(&request)?;
        who.must_manage()?;
        let request_id = request_id(&request);
        let req = request.into_inner();
        let (view, f) = self
            .file_results(&who, &req.import_id, &req.file_id)
            .await?;
        let id = view.import.id;
        if req.rows.is_empty() {
            return Err(ApiError::invalid("rows", "name at least one row to edit").into());
        }
        let mut edits = Vec::new();
        for (i, r) in req.rows.iter().enumerate() {
            if r.row < 1 {
                return Err(
                    ApiError::invalid(&format!("rows[{i}].row"), "must be a row number").into(),
                );
            }
            if r.cells.is_empty() {
                return Err(ApiError::invalid(
                    &format!("rows[{i}].cells"),
                    "set at least one cell",
                )
                .into());
            }
            let mut cells: Vec<(&String, &String)> = r.cells.iter().collect();
            cells.sort();
            for (column, value) in cells {
                let field = format!("rows[{i}].cells[{column}]");
                f.position(&field, column)?;
                if value.chars().count() > passare_imports_domain::chunk::MAX_VALUE_CHARS {
                    return Err(ApiError::invalid(&field, "is too long").into());
                }
                edits.push((r.row, column.clone(), value.clone()));
            }
        }
        let rows = self
            .apply_edits(
                &who,
                &view,
                &f,
                &edits,
                &format!("{} rows of {} edited", req.rows.len(), f.file.file_name),
            )
            .await?;
        self.audit(
            &who,
            &request_id,
            "update_rows",
            Some(view.import.organization_id),
            Some(id),
            serde_json::json!({
                "file_id": f.file.id,
                "rows": req.rows.iter().map(|r| r.row).collect::<Vec<_>>(),
                "cells": edits.len(),
            }),
        )
        .await;
        let view = self.view(&who, id).await?;
        Ok(Response::new(pb::UpdateRowsResponse {
            rows_edited: rows as i32,
            import: Some(shown(&who, &view)),
        }))
    }

    async fn upload_corrections(
        &self,
        request: Request<pb::UploadCorrectionsRequest>,
    ) -> Result<Response<pb::UploadCorrectionsResponse>, Status> {
        let who = caller(&request)?;
        who.must_manage()?;
        let request_id = request_id(&request);
        let req = request.into_inner();
        let (view, f) = self
            .file_results(&who, &req.import_id, &req.file_id)
            .await?;
        let id = view.import.id;
        if req.content.is_empty() {
            return Err(ApiError::invalid("content", "is empty").into());
        }
        let edits = crate::results::corrections(&f, &req.content)?;
        if edits.is_empty() {
            return Err(ApiError::invalid("content", "holds no corrected row").into());
        }
        let mut rows: Vec<i64> = edits.iter().map(|(r, _, _)| *r).collect();
        rows.dedup();
        let corrected = self
            .apply_edits(
                &who,
                &view,
                &f,
                &edits,
                &format!(
                    "{} rows of {} corrected from a file",
                    rows.len(),
                    f.file.file_name
                ),
            )
            .await?;
        self.audit(
            &who,
            &request_id,
            "upload_corrections",
            Some(view.import.organization_id),
            Some(id),
            serde_json::json!({
                "file_id": f.file.id,
                "rows": rows,
                "size_bytes": req.content.len(),
                "sha256": hex::encode(Sha256::digest(&req.content)),
            }),
        )
        .await;
        let view = self.view(&who, id).await?;
        Ok(Response::new(pb::UploadCorrectionsResponse {
            rows_corrected: corrected as i32,
            import: Some(shown(&who, &view)),
        }))
    }

    async fn retry_failed_rows(
        &self,
        request: Request<pb::RetryFailedRowsRequest>,
    ) -> Result<Response<pb::RetryFailedRowsResponse>, Status> {
        let who = caller(&request)?;
        who.must_manage()?;
        let request_id = request_id(&request);
        let id = parse_uuid("import_id", &request.get_ref().import_id)?;
        let view = self.view(&who, id).await?;
        if view.import.results_purged_at.is_some() {
            return Err(purged(&view).into());
        }
        if view.import.state != ImportState::CompletedWithErrors.as_str() {
            return Err(not_retryable(&view.import.state).into());
        }
        match crate::results::retry(&self.app, &view.import, &requester(&who)).await? {
            Retry::Queued {
                organization_id,
                attempt,
                rows,
                chunks,
            } => {
                self.publish(id, organization_id, &chunks).await;
                self.audit(
                    &who,
                    &request_id,
                    "retry_failed_rows",
                    Some(organization_id),
                    Some(id),
                    serde_json::json!({ "attempt": attempt, "rows": rows, "chunks": chunks.len() }),
                )
                .await;
                let view = self.view(&who, id).await?;
                Ok(Response::new(pb::RetryFailedRowsResponse {
                    import: Some(shown(&who, &view)),
                    rows_retried: rows,
                }))
            }
            Retry::NotRetryable(state) => Err(not_retryable(&state).into()),
            Retry::Purged => Err(purged(&view).into()),
            Retry::Changed => Err(ApiError::Aborted(
                "failed rows were edited while the retry was prepared; retry again".into(),
            )
            .into()),
        }
    }

    async fn get_record_source(
        &self,
        request: Request<pb::GetRecordSourceRequest>,
    ) -> Result<Response<pb::GetRecordSourceResponse>, Status> {
        let who = caller(&request)?;
        let req = request.into_inner();
        let Some(org) = self.visible_org(&who, &req.organization_id).await? else {
            return Err(ApiError::invalid("organization_id", "is required").into());
        };
        let def = catalog::find(&req.import_type).ok_or_else(|| {
            ApiError::invalid(
                "import_type",
                format!(
                    "{:?} is not an import type; known types: {}",
                    req.import_type,
                    known_types()
                ),
            )
        })?;
        if req.key.len() != def.key_columns.len() {
            return Err(ApiError::invalid(
                "key",
                format!(
                    "{} is keyed by {} value(s): {}",
                    def.display_name,
                    def.key_columns.len(),
                    def.key_columns.join(", ")
                ),
            )
            .into());
        }
        let not_found = || ApiError::NotFound {
            kind: "record",
            id: format!("{}/{}", def.key, req.key.join("+")),
        };
        let source = repo::record_source(self.app.db.orm(), def, org, &req.key)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(not_found)?;
        let import = repo::find_import(self.app.db.orm(), source.import_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(not_found)?;
        let names = repo::file_names(self.app.db.orm(), &[source.file_id])
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::GetRecordSourceResponse {
            import_id: import.id.to_string(),
            file_id: source.file_id.to_string(),
            file_name: names.get(&source.file_id).cloned().unwrap_or_default(),
            row: source.row,
            requested_by: Some(pb::User {
                id: import.requested_by_id,
                name: import.requested_by_name,
                email: import.requested_by_email,
            }),
            import_create_time: Some(convert::timestamp(&import.created_at)),
            record_update_time: Some(convert::timestamp(&source.updated_at)),
        }))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let who = caller(&request)?;
        who.must_be_staff()?;
        let req = request.into_inner();
        let filter = history::AuditFilter {
            organization_id: match req.organization_id.trim() {
                "" => None,
                org => Some(parse_org(org)?),
            },
            actor: Some(req.actor.trim().to_string()).filter(|a| !a.is_empty()),
            action: Some(req.action.trim().to_string()).filter(|a| !a.is_empty()),
            import_id: match req.import_id.trim() {
                "" => None,
                id => Some(parse_uuid("import_id", id)?),
            },
            after: req.time_after.as_ref().map(from_timestamp).transpose()?,
            before: req.time_before.as_ref().map(from_timestamp).transpose()?,
        };
        let page_size = page_size(req.page_size)?;
        let before = match req.page_token.as_str() {
            "" => None,
            token => Some(decode_id_token(token)?),
        };
        let mut rows = history::list_audit(&self.app.db, &filter, before, page_size + 1)
            .await
            .map_err(ApiError::from)?;
        let more = rows.len() as u64 > page_size;
        rows.truncate(page_size as usize);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => encode_id_token(last.id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: rows.iter().map(convert::audit_event).collect(),
            next_page_token,
        }))
    }

    // The resumable upload is being built (issue 12); these answer
    // UNIMPLEMENTED until it lands.
    async fn create_upload(
        &self,
        _request: Request<pb::CreateUploadRequest>,
    ) -> Result<Response<pb::CreateUploadResponse>, Status> {
        Err(Status::unimplemented("resumable uploads are not available yet"))
    }

    async fn write_upload_part(
        &self,
        _request: Request<pb::WriteUploadPartRequest>,
    ) -> Result<Response<pb::WriteUploadPartResponse>, Status> {
        Err(Status::unimplemented("resumable uploads are not available yet"))
    }

    async fn get_upload(
        &self,
        _request: Request<pb::GetUploadRequest>,
    ) -> Result<Response<pb::GetUploadResponse>, Status> {
        Err(Status::unimplemented("resumable uploads are not available yet"))
    }

    async fn complete_upload(
        &self,
        _request: Request<pb::CompleteUploadRequest>,
    ) -> Result<Response<pb::CompleteUploadResponse>, Status> {
        Err(Status::unimplemented("resumable uploads are not available yet"))
    }

    async fn abort_upload(
        &self,
        _request: Request<pb::AbortUploadRequest>,
    ) -> Result<Response<pb::AbortUploadResponse>, Status> {
        Err(Status::unimplemented("resumable uploads are not available yet"))
    }

    async fn list_organizations(
        &self,
        request: Request<pb::ListOrganizationsRequest>,
    ) -> Result<Response<pb::ListOrganizationsResponse>, Status> {
        let who = caller(&request)?;
        let req = request.into_inner();
        let only = if who.is_staff() {
            None
        } else {
            match who.organization_id {
                Some(org) => Some(org),
                None => return Ok(Response::new(pb::ListOrganizationsResponse::default())),
            }
        };
        let page_size = page_size(req.page_size)?;
        let cursor = match req.page_token.as_str() {
            "" => None,
            token => Some(decode_name_token(token)?),
        };
        let query = bounded_text("query", &req.query, 200)?;
        let mut rows =
            repo::list_organizations(self.app.db.orm(), &query, only, cursor, page_size + 1)
                .await
                .map_err(ApiError::from)?;
        let more = rows.len() as u64 > page_size;
        rows.truncate(page_size as usize);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => encode_name_token(&last.name.to_lowercase(), last.id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListOrganizationsResponse {
            organizations: rows
                .into_iter()
                .map(|o| pb::Organization {
                    id: o.id.to_string(),
                    name: o.name,
                })
                .collect(),
            next_page_token,
        }))
    }
}

/// A blocking reader over the byte chunks of an upload, for the scanner thread.
struct ChannelReader {
    rx: mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<bytes::Bytes>) -> Self {
        Self {
            rx,
            current: bytes::Bytes::new(),
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(next) => self.current = next,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Bytes of an upload kept to tell its format and encoding.
const HEAD_BYTES: usize = 64 * 1024;

/// How the request says to read a file.
#[derive(Debug, Clone)]
struct ReadOptions {
    encoding: Option<Encoding>,
    sheet: Option<String>,
    delimiter: Option<u8>,
    mapping: Vec<(String, String)>,
}

impl ReadOptions {
    fn from_header(
        def: &'static catalog::ImportTypeDef,
        h: &pb::FileHeader,
    ) -> Result<Self, ApiError> {
        let encoding = match h.encoding.trim() {
            "" => None,
            name => Some(Encoding::parse(name).ok_or_else(|| {
                ApiError::invalid(
                    "header.encoding",
                    format!(
                        "{name:?} is not a supported encoding; use utf-8, utf-16 or windows-1252, or leave it empty to detect"
                    ),
                )
            })?),
        };
        let delimiter = match h.delimiter.as_str() {
            "" => None,
            "," => Some(b','),
            "\t" | "\\t" | "tab" | "TAB" => Some(b'\t'),
            ";" => Some(b';'),
            "|" => Some(b'|'),
            other => {
                return Err(ApiError::invalid(
                    "header.delimiter",
                    format!("{other:?} is not a delimiter; use \",\", \"\\t\", \";\" or \"|\""),
                ));
            }
        };
        let mut mapping = Vec::new();
        for (i, m) in h.column_mapping.iter().enumerate() {
            if def
                .columns
                .iter()
                .all(|c| catalog::normalize_header(c.name) != catalog::normalize_header(&m.column))
            {
                return Err(ApiError::invalid(
                    &format!("header.column_mapping[{i}].column"),
                    format!(
                        "{:?} is not a column of {}; its columns are {}",
                        m.column,
                        def.display_name,
                        def.columns
                            .iter()
                            .map(|c| c.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            mapping.push((m.header.clone(), m.column.clone()));
        }
        let sheet = Some(h.sheet_name.trim().to_string()).filter(|s| !s.is_empty());
        Ok(Self {
            encoding,
            sheet,
            delimiter,
            mapping,
        })
    }
}

/// A stored upload as the pipeline reads it.
struct ReadFile {
    report: ScanReport,
    encoding: String,
    sheet: Option<String>,
    /// The UTF-8 CSV conversion the chunks index, when the original is not UTF-8 text.
    data_key: Option<String>,
}

/// What a stored upload must become before the UTF-8 pipeline reads it.
#[derive(Debug, Clone, Copy)]
enum Conversion {
    Workbook,
    Text(Encoding),
}

impl ImportApi {
    /// Decides how the stored upload is read: UTF-8 text as it is (the scan
    /// made while it arrived stands); a workbook, UTF-16 or Windows-1252
    /// (detected, or as the request says) converted to UTF-8 CSV, stored
    /// beside the original and scanned again.
    async fn read_as_text(
        &self,
        key: &str,
        size: u64,
        head: &[u8],
        report: ScanReport,
        def: &'static catalog::ImportTypeDef,
        reading: &ReadOptions,
    ) -> Result<ReadFile, ApiError> {
        let sniffed = decode::sniff(head);
        let conversion = match (sniffed, reading.encoding) {
            (Sniffed::Xlsx, _) => Some(Conversion::Workbook),
            (_, Some(e)) if decode::needs_conversion(e) => Some(Conversion::Text(e)),
            (_, Some(e)) => {
                return Ok(ReadFile {
                    report,
                    encoding: e.as_str().into(),
                    sheet: None,
                    data_key: None,
                });
            }
            (Sniffed::Text(e), None) if decode::needs_conversion(e) => Some(Conversion::Text(e)),
            (Sniffed::Text(_), None) if report.invalid_utf8 => {
                Some(Conversion::Text(Encoding::Windows1252))
            }
            (Sniffed::Text(e), None) => {
                return Ok(ReadFile {
                    report,
                    encoding: e.as_str().into(),
                    sheet: None,
                    data_key: None,
                });
            }
        };
        let Some(conversion) = conversion else {
            return Err(ApiError::Internal("no conversion chosen".into()));
        };
        if head.starts_with(b"\xD0\xCF\x11\xE0") {
            return Ok(ReadFile {
                report: ScanReport::rejected(
                    passare_imports_domain::FileFormat::Xlsx,
                    "the file is a legacy .xls workbook or a password-protected one; save it as .xlsx without a password, or as CSV",
                ),
                encoding: String::new(),
                sheet: None,
                data_key: None,
            });
        }
        let original = self.app.files.read_range(key, 0, size).await?;
        let (sheet, delimiter, explicit, chunk_rows) = (
            reading.sheet.clone(),
            reading.delimiter,
            reading.mapping.clone(),
            self.app.config.chunk_rows,
        );
        let converted = tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(original.len());
            let (sheet, format) = match conversion {
                Conversion::Workbook => {
                    let done = decode::xlsx_to_csv(
                        std::io::Cursor::new(&original[..]),
                        sheet.as_deref(),
                        &mut out,
                    )?;
                    (Some(done.sheet), passare_imports_domain::FileFormat::Xlsx)
                }
                Conversion::Text(e) => {
                    decode::transcode(&original[..], e, &mut out)?;
                    (None, passare_imports_domain::FileFormat::Csv)
                }
            };
            let delimiter = match conversion {
                Conversion::Workbook => Some(b','),
                Conversion::Text(_) => delimiter,
            };
            let mut report = scan(
                &out[..],
                def,
                &ScanOptions {
                    explicit: &explicit,
                    delimiter,
                    chunk_rows,
                },
            )
            .map_err(decode::DecodeError::from)?;
            if format == passare_imports_domain::FileFormat::Xlsx {
                report.format = format;
            }
            Ok::<_, decode::DecodeError>((out, report, sheet))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("conversion task: {e}")))?;
        let encoding = match conversion {
            Conversion::Workbook => "xlsx".to_string(),
            Conversion::Text(e) => e.as_str().to_string(),
        };
        let (out, report, sheet) = match converted {
            Ok(done) => done,
            Err(e) => {
                let format = match conversion {
                    Conversion::Workbook => passare_imports_domain::FileFormat::Xlsx,
                    Conversion::Text(_) => passare_imports_domain::FileFormat::Csv,
                };
                return Ok(ReadFile {
                    report: ScanReport::rejected(format, e.to_string()),
                    encoding,
                    sheet: reading.sheet.clone(),
                    data_key: None,
                });
            }
        };
        let data_key = format!("{key}.utf8.csv");
        let mut writer = self.app.files.create(&data_key).await?;
        writer.write(&out).await?;
        writer.commit().await?;
        Ok(ReadFile {
            report,
            encoding,
            sheet,
            data_key: Some(data_key),
        })
    }
}

fn not_a_draft(state: &str) -> ApiError {
    ApiError::FailedPrecondition {
        reason: "IMPORT_NOT_DRAFT",
        message: format!("files can be added only to a draft import; this import is {state}"),
        preconditions: vec![Precondition {
            kind: "STATE".into(),
            subject: "import".into(),
            description: format!("import is {state}, not draft"),
        }],
        violations: vec![],
    }
}

impl ImportApi {
    /// Refuses to start an import that cannot succeed: no files, broken files,
    /// or missing organization setup.
    async fn check_startable(&self, view: &ImportView) -> Result<(), ApiError> {
        if view.files.is_empty() {
            return Err(ApiError::FailedPrecondition {
                reason: "NO_FILES",
                message: "the import has no files; upload at least one before starting".into(),
                preconditions: vec![Precondition {
                    kind: "FILES".into(),
                    subject: "import".into(),
                    description: "no files uploaded".into(),
                }],
                violations: vec![],
            });
        }
        let mut violations = Vec::new();
        for f in &view.files {
            if f.file.state == FileState::Invalid.as_str() {
                for p in &f.problems {
                    violations.push(FieldViolation {
                        field: format!("files[{}]", f.file.file_name),
                        description: if p.row == 0 {
                            p.reason.clone()
                        } else {
                            format!("row {}: {}", p.row, p.reason)
                        },
                    });
                }
            }
        }
        if !violations.is_empty() {
            return Err(ApiError::FailedPrecondition {
                reason: "INVALID_FILES",
                message: format!(
                    "the import has files that cannot be read: {}",
                    violations
                        .iter()
                        .take(3)
                        .map(|v| format!("{}: {}", v.field, v.description))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                preconditions: vec![],
                violations,
            });
        }
        let Some((report, stale)) = view.analysis() else {
            return Err(ApiError::FailedPrecondition {
                reason: "NOT_ANALYZED",
                message: "the import has not been analysed; call AnalyzeImport".into(),
                preconditions: vec![Precondition {
                    kind: "ANALYSIS".into(),
                    subject: "import".into(),
                    description: "no analysis".into(),
                }],
                violations: vec![],
            });
        };
        if stale {
            return Err(ApiError::FailedPrecondition {
                reason: "ANALYSIS_STALE",
                message: format!(
                    "the files changed since the analysis of {}; call AnalyzeImport again and review the report",
                    report.analyzed_at.to_rfc3339()
                ),
                preconditions: vec![Precondition {
                    kind: "ANALYSIS".into(),
                    subject: "import".into(),
                    description: "files changed since the last analysis".into(),
                }],
                violations: vec![],
            });
        }
        let policy = view.policy();
        let mut preconditions = Vec::new();
        let mut violations = Vec::new();
        for (file, f) in report.all_findings() {
            if !f.blocks(policy) {
                continue;
            }
            match file {
                None => preconditions.push(Precondition {
                    kind: "PREREQUISITE".into(),
                    subject: format!("organizations/{}", view.import.organization_id),
                    description: f.message.clone(),
                }),
                Some(file) => {
                    for p in &f.samples {
                        violations.push(FieldViolation {
                            field: if p.row == 0 {
                                format!("files[{}].{}", file.file_name, p.column)
                            } else {
                                format!("files[{}].rows[{}].{}", file.file_name, p.row, p.column)
                            },
                            description: format!(
                                "{}: {}{}",
                                f.kind.as_str(),
                                if p.value.is_empty() {
                                    String::new()
                                } else {
                                    format!("{:?} ", p.value)
                                },
                                p.reason
                            ),
                        });
                    }
                }
            }
        }
        if preconditions.is_empty() && violations.is_empty() {
            return Ok(());
        }
        let mut message: Vec<String> = preconditions
            .iter()
            .map(|p| p.description.clone())
            .collect();
        let blocking: Vec<String> = report
            .all_findings()
            .filter(|(file, f)| file.is_some() && f.blocks(policy))
            .map(|(file, f)| {
                format!(
                    "{}: {}",
                    file.map_or("", |x| x.file_name.as_str()),
                    f.message
                )
            })
            .collect();
        message.extend(blocking);
        Err(ApiError::FailedPrecondition {
            reason: if preconditions.is_empty() {
                "BLOCKING_FINDINGS"
            } else {
                "MISSING_PREREQUISITE"
            },
            message: message.join("; "),
            preconditions,
            violations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_forgeries() {
        let at = chrono::Utc::now().fixed_offset();
        let id = Uuid::now_v7();
        let token = encode_token(&at, id);
        let (back_at, back_id) = decode_token(&token).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back_id, id);
        assert_eq!(back_at, at);
        assert!(decode_token("zz").is_err());
        assert!(decode_token(&hex::encode("v2|x|y")).is_err());
    }
}
