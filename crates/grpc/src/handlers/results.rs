//! Row-level results: ListRowErrors, DownloadResults (server streaming),
//! UpdateRows, UploadCorrections, RetryFailedRows and GetRecordSource.

use std::time::Duration;

use passare_imports_app::results::{self, ResultKind};
use passare_imports_app::{Access, ApiError, App, history};
use passare_imports_proto::v1 as pb;
use passare_imports_store::results::RowErrorCursor;
use tonic::{Request, Response};

use crate::auth::{Call, authorize};
use crate::feed::{Messages, feed};
use crate::status::status;
use crate::{convert, paging};

pub async fn list_row_errors(
    app: &App,
    call: Call,
    req: pb::ListRowErrorsRequest,
) -> Result<pb::ListRowErrorsResponse, ApiError> {
    let id = convert::uuid("import_id", &req.import_id)?;
    let file_id = convert::optional_uuid("file_id", &req.file_id)?;
    let page_size = paging::page_size(req.page_size, 100, 1000)?;
    let after: Option<RowErrorCursor> = paging::decode("row_errors", &req.page_token)?;
    let rows = results::row_errors(
        app,
        &call.who,
        id,
        file_id,
        req.include_retried,
        after,
        page_size as i64 + 1,
    )
    .await?;
    let (rows, next_page_token) =
        paging::page("row_errors", rows, page_size, |e| (e.position, e.row, e.id));
    Ok(pb::ListRowErrorsResponse {
        row_errors: rows.iter().map(convert::row_error).collect(),
        next_page_token,
    })
}

pub type DownloadStream = Messages<pb::DownloadResultsResponse>;

pub async fn download_results(
    app: &App,
    request: Request<pb::DownloadResultsRequest>,
) -> Result<Response<DownloadStream>, ApiError> {
    let who = authorize(&request, Access::Read)?;
    let slot = app.limits.downloads.start(&who)?;
    let req = request.into_inner();
    let id = convert::uuid("import_id", &req.import_id)?;
    let file_id = convert::uuid("file_id", &req.file_id)?;
    let kind = match pb::ResultKind::try_from(req.kind).unwrap_or(pb::ResultKind::Unspecified) {
        pb::ResultKind::FailedRows => ResultKind::FailedRows,
        pb::ResultKind::WrittenRows => ResultKind::WrittenRows,
        pb::ResultKind::Unspecified => {
            return Err(ApiError::invalid(
                "kind",
                "must be RESULT_KIND_FAILED_ROWS or RESULT_KIND_WRITTEN_ROWS",
            ));
        }
    };
    let (name, mut bytes) = results::download(app, &who, id, file_id, kind).await?;
    let stall = Duration::from_secs(app.config.stream_stall_secs);
    let (mut out, stream) = feed(4, stall);
    tokio::spawn(async move {
        // Counted against the caller until the download ends or is cut.
        let _slot = slot;
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
            if !out.send(message.map_err(status)).await || failed {
                return;
            }
        }
    });
    Ok(Response::new(stream))
}

pub async fn update_rows(
    app: &App,
    call: Call,
    req: pb::UpdateRowsRequest,
) -> Result<pb::UpdateRowsResponse, ApiError> {
    let id = convert::uuid("import_id", &req.import_id)?;
    let file_id = convert::uuid("file_id", &req.file_id)?;
    let rows = req
        .rows
        .into_iter()
        .map(|r| {
            let mut cells: Vec<(String, String)> = r.cells.into_iter().collect();
            cells.sort();
            (r.row, cells)
        })
        .collect();
    let (edited, view) = results::update_rows(app, &call.who, id, file_id, rows, &call.id).await?;
    Ok(pb::UpdateRowsResponse {
        rows_edited: edited as i32,
        import: Some(convert::shown(&call.who, &view)),
    })
}

pub async fn upload_corrections(
    app: &App,
    call: Call,
    req: pb::UploadCorrectionsRequest,
) -> Result<pb::UploadCorrectionsResponse, ApiError> {
    let id = convert::uuid("import_id", &req.import_id)?;
    let file_id = convert::uuid("file_id", &req.file_id)?;
    let (corrected, view) =
        results::upload_corrections(app, &call.who, id, file_id, &req.content, &call.id).await?;
    Ok(pb::UploadCorrectionsResponse {
        rows_corrected: corrected as i32,
        import: Some(convert::shown(&call.who, &view)),
    })
}

pub async fn retry_failed_rows(
    app: &App,
    call: Call,
    req: pb::RetryFailedRowsRequest,
) -> Result<pb::RetryFailedRowsResponse, ApiError> {
    let id = convert::uuid("import_id", &req.import_id)?;
    let (rows, view) = results::retry_failed_rows(app, &call.who, id, &call.id).await?;
    Ok(pb::RetryFailedRowsResponse {
        import: Some(convert::shown(&call.who, &view)),
        rows_retried: rows,
    })
}

pub async fn get_record_source(
    app: &App,
    call: Call,
    req: pb::GetRecordSourceRequest,
) -> Result<pb::GetRecordSourceResponse, ApiError> {
    let mut conn = app.db.conn().await?;
    let asked = convert::optional_org(&req.organization_id)?;
    let Some(org) = history::visible_org(&mut conn, &call.who, asked).await? else {
        return Err(ApiError::invalid("organization_id", "is required"));
    };
    let def = convert::import_type_named("import_type", &req.import_type)?;
    if req.key.len() != def.key_columns.len() {
        return Err(ApiError::invalid(
            "key",
            format!(
                "{} is keyed by {} value(s): {}",
                def.display_name,
                def.key_columns.len(),
                def.key_columns.join(", ")
            ),
        ));
    }
    let (source, import, file_name) = history::record_source(&mut conn, def, org, &req.key).await?;
    Ok(pb::GetRecordSourceResponse {
        import_id: import.id.to_string(),
        file_id: source.file_id.to_string(),
        file_name,
        row: source.row,
        requested_by: Some(pb::User {
            id: import.requested_by_id,
            name: import.requested_by_name,
            email: import.requested_by_email,
        }),
        import_create_time: Some(convert::timestamp(&import.created_at)),
        record_update_time: Some(convert::timestamp(&source.updated_at)),
    })
}
