//! The gRPC adapter of Passare Imports: the ImportService handlers (one
//! module per resource in [`handlers`]), the conversions between messages
//! and the use cases' values ([`convert`]), the one table from errors to
//! status codes ([`status`]), authentication ([`auth`]), page tokens
//! ([`paging`]) and the server ([`server`]). The gateway serves the same
//! routes over grpc-web.

pub mod auth;
pub mod convert;
pub mod handlers;
pub mod paging;
pub mod server;
pub mod status;

use passare_imports_app::App;
use passare_imports_proto::v1 as pb;
use passare_imports_proto::v1::import_service_server::ImportService;
use tonic::{Request, Response, Status, Streaming};

use handlers::{control, drafts, history, reads, results, uploads};

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

/// The ImportService trait, each unary RPC delegated to its handler, whose
/// error becomes a status through the one table.
macro_rules! import_service {
    ($($rpc:ident($req:ident) -> $resp:ident = $handler:path;)* $(; $($extra:item)*)?) => {
        #[tonic::async_trait]
        impl ImportService for ImportApi {
            $(
                async fn $rpc(&self, request: Request<pb::$req>) -> Result<Response<pb::$resp>, Status> {
                    $handler(&self.app, request).await.map_err(status::status)
                }
            )*
            $($($extra)*)?
        }
    };
}

import_service! {
    create_import(CreateImportRequest) -> CreateImportResponse = drafts::create_import;
    remove_file(RemoveFileRequest) -> RemoveFileResponse = drafts::remove_file;
    analyze_import(AnalyzeImportRequest) -> AnalyzeImportResponse = drafts::analyze_import;
    create_upload(CreateUploadRequest) -> CreateUploadResponse = uploads::create_upload;
    write_upload_part(WriteUploadPartRequest) -> WriteUploadPartResponse = uploads::write_upload_part;
    get_upload(GetUploadRequest) -> GetUploadResponse = uploads::get_upload;
    complete_upload(CompleteUploadRequest) -> CompleteUploadResponse = uploads::complete_upload;
    abort_upload(AbortUploadRequest) -> AbortUploadResponse = uploads::abort_upload;
    start_import(StartImportRequest) -> StartImportResponse = control::start_import;
    stop_import(StopImportRequest) -> StopImportResponse = control::stop_import;
    pause_imports(PauseImportsRequest) -> PauseImportsResponse = control::pause_imports;
    resume_imports(ResumeImportsRequest) -> ResumeImportsResponse = control::resume_imports;
    list_pauses(ListPausesRequest) -> ListPausesResponse = control::list_pauses;
    list_chunk_failures(ListChunkFailuresRequest) -> ListChunkFailuresResponse = control::list_chunk_failures;
    get_import(GetImportRequest) -> GetImportResponse = reads::get_import;
    list_imports(ListImportsRequest) -> ListImportsResponse = reads::list_imports;
    list_import_types(ListImportTypesRequest) -> ListImportTypesResponse = reads::list_import_types;
    get_import_template(GetImportTemplateRequest) -> GetImportTemplateResponse = reads::get_import_template;
    list_row_errors(ListRowErrorsRequest) -> ListRowErrorsResponse = results::list_row_errors;
    update_rows(UpdateRowsRequest) -> UpdateRowsResponse = results::update_rows;
    upload_corrections(UploadCorrectionsRequest) -> UploadCorrectionsResponse = results::upload_corrections;
    retry_failed_rows(RetryFailedRowsRequest) -> RetryFailedRowsResponse = results::retry_failed_rows;
    get_record_source(GetRecordSourceRequest) -> GetRecordSourceResponse = results::get_record_source;
    list_audit_events(ListAuditEventsRequest) -> ListAuditEventsResponse = history::list_audit_events;
    list_organizations(ListOrganizationsRequest) -> ListOrganizationsResponse = history::list_organizations;
    ;
    // The streaming RPCs.
    async fn upload_file(
        &self,
        request: Request<Streaming<pb::UploadFileRequest>>,
    ) -> Result<Response<pb::UploadFileResponse>, Status> {
        drafts::upload_file(&self.app, request).await.map_err(status::status)
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
