//! The gRPC adapter of Passare Imports: the ImportService handlers (one
//! module per resource in [`handlers`]), the conversions between messages
//! and the use cases' values ([`convert`]), the one table from errors to
//! status codes ([`status`]), authentication ([`auth`]), page tokens
//! ([`paging`]) and the server ([`server`]). The gateway serves the same
//! routes over grpc-web.

pub mod auth;
pub mod convert;
pub mod feed;
pub mod handlers;
pub mod paging;
pub mod server;
pub mod spans;
pub mod status;

use passare_imports_app::{Access, App};
use passare_imports_proto::v1 as pb;
use passare_imports_proto::v1::import_service_server::ImportService;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use auth::Call;
use handlers::{control, drafts, history, monitor, profiles, reads, results, uploads};

pub use server::{layers, routes, serve, until};

/// The ImportService implementation: every RPC is a handler of [`handlers`].
pub struct ImportApi {
    app: App,
}

impl ImportApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// A unary call's handler, cut after `IMPORTS_CALL_TIMEOUT_SECS` with
/// DEADLINE_EXCEEDED (`CALL_TIMEOUT`); dropping it releases its connection
/// and rolls back its transaction. Streams have their own bounds.
async fn within_deadline<T>(
    app: &App,
    handler: impl std::future::Future<Output = Result<T, passare_imports_app::ApiError>>,
) -> Result<T, passare_imports_app::ApiError> {
    let limit = std::time::Duration::from_secs(app.config.call_timeout_secs);
    tokio::time::timeout(limit, handler)
        .await
        .unwrap_or_else(|_| {
            Err(passare_imports_app::ApiError::DeadlineExceeded {
                reason: "CALL_TIMEOUT",
                message: format!(
                    "the call took longer than the server allows, {}s (IMPORTS_CALL_TIMEOUT_SECS)",
                    limit.as_secs()
                ),
            })
        })
}

/// The ImportService trait. Each unary RPC names who may call it (an
/// [`Access`] level) and its handler; the call is authorized before the
/// handler sees the message, runs within the server's deadline, and the handler's error becomes a status
/// through the one table.
macro_rules! import_service {
    ($($rpc:ident($req:ident) -> $resp:ident = $access:ident $handler:path;)* $(; $($extra:item)*)?) => {
        #[tonic::async_trait]
        impl ImportService for ImportApi {
            $(
                async fn $rpc(&self, request: Request<pb::$req>) -> Result<Response<pb::$resp>, Status> {
                    let span = spans::rpc(stringify!($rpc), &request);
                    async move {
                        let call = Call::authorize(&request, Access::$access).map_err(status::status)?;
                        within_deadline(&self.app, $handler(&self.app, call, request.into_inner()))
                            .await
                            .map(Response::new)
                            .map_err(status::status)
                    }
                    .instrument(span)
                    .await
                }
            )*
            $($($extra)*)?
        }
    };
}

import_service! {
    create_import(CreateImportRequest) -> CreateImportResponse = Manage drafts::create_import;
    remove_file(RemoveFileRequest) -> RemoveFileResponse = Manage drafts::remove_file;
    analyze_import(AnalyzeImportRequest) -> AnalyzeImportResponse = Manage drafts::analyze_import;
    create_upload(CreateUploadRequest) -> CreateUploadResponse = Manage uploads::create_upload;
    write_upload_part(WriteUploadPartRequest) -> WriteUploadPartResponse = Manage uploads::write_upload_part;
    get_upload(GetUploadRequest) -> GetUploadResponse = Manage uploads::get_upload;
    complete_upload(CompleteUploadRequest) -> CompleteUploadResponse = Manage uploads::complete_upload;
    abort_upload(AbortUploadRequest) -> AbortUploadResponse = Manage uploads::abort_upload;
    start_import(StartImportRequest) -> StartImportResponse = Manage control::start_import;
    stop_import(StopImportRequest) -> StopImportResponse = Manage control::stop_import;
    pause_imports(PauseImportsRequest) -> PauseImportsResponse = Manage control::pause_imports;
    resume_imports(ResumeImportsRequest) -> ResumeImportsResponse = Manage control::resume_imports;
    list_pauses(ListPausesRequest) -> ListPausesResponse = Staff control::list_pauses;
    list_chunk_failures(ListChunkFailuresRequest) -> ListChunkFailuresResponse = Staff control::list_chunk_failures;
    get_queue_monitor(GetQueueMonitorRequest) -> GetQueueMonitorResponse = Staff monitor::get_queue_monitor;
    list_dead_letters(ListDeadLettersRequest) -> ListDeadLettersResponse = Staff monitor::list_dead_letters;
    requeue_dead_letters(RequeueDeadLettersRequest) -> RequeueDeadLettersResponse = Manage monitor::requeue_dead_letters;
    discard_dead_letters(DiscardDeadLettersRequest) -> DiscardDeadLettersResponse = Manage monitor::discard_dead_letters;
    list_workers(ListWorkersRequest) -> ListWorkersResponse = Staff monitor::list_workers;
    get_import(GetImportRequest) -> GetImportResponse = Read reads::get_import;
    list_imports(ListImportsRequest) -> ListImportsResponse = Read reads::list_imports;
    list_import_types(ListImportTypesRequest) -> ListImportTypesResponse = Read reads::list_import_types;
    get_import_template(GetImportTemplateRequest) -> GetImportTemplateResponse = Read reads::get_import_template;
    list_row_errors(ListRowErrorsRequest) -> ListRowErrorsResponse = Read results::list_row_errors;
    update_rows(UpdateRowsRequest) -> UpdateRowsResponse = Manage results::update_rows;
    upload_corrections(UploadCorrectionsRequest) -> UploadCorrectionsResponse = Manage results::upload_corrections;
    retry_failed_rows(RetryFailedRowsRequest) -> RetryFailedRowsResponse = Manage results::retry_failed_rows;
    get_record_source(GetRecordSourceRequest) -> GetRecordSourceResponse = Read results::get_record_source;
    list_audit_events(ListAuditEventsRequest) -> ListAuditEventsResponse = Staff history::list_audit_events;
    list_organizations(ListOrganizationsRequest) -> ListOrganizationsResponse = Read history::list_organizations;
    create_profile(CreateProfileRequest) -> CreateProfileResponse = Manage profiles::create_profile;
    update_profile(UpdateProfileRequest) -> UpdateProfileResponse = Manage profiles::update_profile;
    get_profile(GetProfileRequest) -> GetProfileResponse = Read profiles::get_profile;
    list_profiles(ListProfilesRequest) -> ListProfilesResponse = Read profiles::list_profiles;
    delete_profile(DeleteProfileRequest) -> DeleteProfileResponse = Manage profiles::delete_profile;
    suggest_profiles(SuggestProfilesRequest) -> SuggestProfilesResponse = Read profiles::suggest_profiles;
    ;
    // The streaming RPCs.
    async fn upload_file(
        &self,
        request: Request<Streaming<pb::UploadFileRequest>>,
    ) -> Result<Response<pb::UploadFileResponse>, Status> {
        let span = spans::rpc("upload_file", &request);
        drafts::upload_file(&self.app, request)
            .instrument(span)
            .await
            .map_err(status::status)
    }

    type WatchImportStream = reads::WatchStream;

    async fn watch_import(
        &self,
        request: Request<pb::WatchImportRequest>,
    ) -> Result<Response<Self::WatchImportStream>, Status> {
        reads::watch_import(&self.app, request).await.map_err(status::status)
    }

    type DownloadResultsStream = results::DownloadStream;

    async fn download_results(
        &self,
        request: Request<pb::DownloadResultsRequest>,
    ) -> Result<Response<Self::DownloadResultsStream>, Status> {
        results::download_results(&self.app, request).await.map_err(status::status)
    }
}
