//! Row-level results of an import and what people do with them: page its
//! row errors, download its result files, fix failed rows (cell by cell or
//! with a corrected file), and retry exactly the still-failed rows as the
//! import's next attempt.

mod corrections;
mod downloads;
mod files;
pub(crate) mod retry;

use passare_imports_store::dead_letters;
use passare_imports_store::results::{self, Edited, Retry, RowErrorCursor, RowErrorRow};
use passare_imports_store::states::ImportState;
use tokio::sync::mpsc;
use uuid::Uuid;

pub use downloads::DOWNLOAD_CHUNK;
pub use files::FileResults;

use crate::app::App;
use crate::error::{ApiError, FieldViolation, not_retryable, purged};
use crate::history;
use crate::identity::Caller;
use crate::start::publish;
use crate::views::{self, ImportView};

/// A page of an import's row errors (of one file, when given), in file and
/// row order, after `after`.
pub async fn row_errors(
    app: &App,
    who: &Caller,
    import_id: Uuid,
    file_id: Option<Uuid>,
    include_retried: bool,
    after: Option<RowErrorCursor>,
    limit: i64,
) -> Result<Vec<RowErrorRow>, ApiError> {
    let mut conn = app.db.conn().await?;
    let view = views::visible(&mut conn, who, import_id).await?;
    let file_id = file_id
        .map(|f| view.file(f).map(|f| f.file.id))
        .transpose()?;
    let page =
        results::list_row_errors(&mut conn, import_id, file_id, include_retried, after, limit);
    Ok(page.await?)
}

/// Which result file to download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    FailedRows,
    WrittenRows,
}

/// A result file of one file of an import: its name and its bytes as they
/// are produced.
pub async fn download(
    app: &App,
    who: &Caller,
    import_id: Uuid,
    file_id: Uuid,
    kind: ResultKind,
) -> Result<(String, mpsc::Receiver<Result<Vec<u8>, ApiError>>), ApiError> {
    let (view, f) = file_results(app, who, import_id, file_id).await?;
    if view.import.results_purged_at.is_some() {
        return Err(purged(view.import.id));
    }
    let stem = f
        .file
        .file_name
        .rsplit_once('.')
        .map_or(f.file.file_name.as_str(), |(stem, _)| stem)
        .to_string();
    Ok(match kind {
        ResultKind::FailedRows => (
            format!("{stem}.failed-rows.csv"),
            downloads::failed_rows_csv(app.clone(), f, who.is_staff()),
        ),
        ResultKind::WrittenRows => (
            format!("{stem}.written-rows.csv"),
            downloads::written_rows_csv(app.clone(), f, view.import.organization_id),
        ),
    })
}

/// The import and one of its files, as their results read them.
async fn file_results(
    app: &App,
    who: &Caller,
    import_id: Uuid,
    file_id: Uuid,
) -> Result<(ImportView, FileResults), ApiError> {
    let mut conn = app.db.conn().await?;
    let view = views::visible(&mut conn, who, import_id).await?;
    let file = view.file(file_id)?.file.clone();
    Ok((view, FileResults::of(file)?))
}

/// New cells of failed rows: (row, [(canonical column, value)]).
pub type RowCells = Vec<(i64, Vec<(String, String)>)>;

/// Sets cells of failed rows of a file; returns how many rows, and the import.
pub async fn update_rows(
    app: &App,
    who: &Caller,
    import_id: Uuid,
    file_id: Uuid,
    rows: RowCells,
    call_id: &str,
) -> Result<(usize, ImportView), ApiError> {
    let (view, f) = file_results(app, who, import_id, file_id).await?;
    if rows.is_empty() {
        return Err(ApiError::invalid("rows", "name at least one row to edit"));
    }
    let mut edits = Vec::new();
    for (i, (row, cells)) in rows.iter().enumerate() {
        if *row < 1 {
            return Err(ApiError::invalid(
                &format!("rows[{i}].row"),
                "must be a row number",
            ));
        }
        if cells.is_empty() {
            return Err(ApiError::invalid(
                &format!("rows[{i}].cells"),
                "set at least one cell",
            ));
        }
        for (column, value) in cells {
            let field = format!("rows[{i}].cells[{column}]");
            f.position(&field, column)?;
            if value.chars().count() > passare_imports_domain::chunk::MAX_VALUE_CHARS {
                return Err(ApiError::invalid(&field, "is too long"));
            }
            edits.push((*row, column.clone(), value.clone()));
        }
    }
    let what = format!("{} rows of {} edited", rows.len(), f.file.file_name);
    let details = serde_json::json!({
        "file_id": f.file.id,
        "rows": rows.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        "cells": edits.len(),
    });
    let call = (call_id, "update_rows", details);
    apply_edits(app, who, &view, &f, &edits, &what, call).await
}

/// Takes a corrected failed-rows file; returns how many rows it corrected,
/// and the import.
pub async fn upload_corrections(
    app: &App,
    who: &Caller,
    import_id: Uuid,
    file_id: Uuid,
    content: &[u8],
    call_id: &str,
) -> Result<(usize, ImportView), ApiError> {
    let (view, f) = file_results(app, who, import_id, file_id).await?;
    if content.is_empty() {
        return Err(ApiError::invalid("content", "is empty"));
    }
    let edits = corrections::corrections(&f, content)?;
    if edits.is_empty() {
        return Err(ApiError::invalid("content", "holds no corrected row"));
    }
    let mut rows: Vec<i64> = edits.iter().map(|(r, _, _)| *r).collect();
    rows.dedup();
    let what = format!(
        "{} rows of {} corrected from a file",
        rows.len(),
        f.file.file_name
    );
    let details = serde_json::json!({
        "file_id": f.file.id,
        "rows": rows,
        "size_bytes": content.len(),
        "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content)),
    });
    let call = (call_id, "upload_corrections", details);
    apply_edits(app, who, &view, &f, &edits, &what, call).await
}

/// Stores edits of failed rows, refusing rows that are not failed, and
/// audits the call (its id, RPC and details); returns how many rows were
/// edited, and the import as it is now.
async fn apply_edits(
    app: &App,
    who: &Caller,
    view: &ImportView,
    f: &FileResults,
    edits: &[(i64, String, String)],
    what: &str,
    (call_id, rpc, details): (&str, &'static str, serde_json::Value),
) -> Result<(usize, ImportView), ApiError> {
    if view.import.results_purged_at.is_some() {
        return Err(purged(view.import.id));
    }
    let mut conn = app.db.conn().await?;
    let edited = results::set_edits(
        &mut conn,
        view.import.id,
        f.file.id,
        edits,
        &who.requester(),
        what,
    )
    .await?;
    let n = match edited {
        Edited::Rows(n) => n,
        Edited::NotRetryable(state) => return Err(not_retryable(state_name(state))),
        Edited::Purged => return Err(purged(view.import.id)),
        Edited::NotFailed(rows) => return Err(not_failed(&f.file.file_name, &rows)),
    };
    let scope = (view.import.organization_id, view.import.id);
    history::audit_import(app, who, call_id, rpc, scope, details).await;
    Ok((n, views::visible(&mut conn, who, view.import.id).await?))
}

fn state_name(state: Option<ImportState>) -> &'static str {
    state.map_or("gone", ImportState::as_str)
}

fn not_failed(file_name: &str, rows: &[i64]) -> ApiError {
    ApiError::InvalidArgument {
        reason: "ROWS_NOT_FAILED",
        message: format!(
            "only failed rows can be edited; these rows of {file_name} are not failed: {}",
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
    }
}

/// Runs the still-failed rows again as the import's next attempt; returns
/// how many rows, and the import.
pub async fn retry_failed_rows(
    app: &App,
    who: &Caller,
    import_id: Uuid,
    call_id: &str,
) -> Result<(i64, ImportView), ApiError> {
    let mut conn = app.db.conn().await?;
    let view = views::visible(&mut conn, who, import_id).await?;
    if view.import.results_purged_at.is_some() {
        return Err(purged(import_id));
    }
    if view.import.state != ImportState::CompletedWithErrors {
        return Err(not_retryable(view.import.state));
    }
    match retry::build_and_queue(app, &mut conn, &view.import, &who.requester(), None).await? {
        Retry::Queued {
            organization_id,
            attempt,
            rows,
            chunks,
        } => {
            publish(&app.db, &app.publisher, import_id, organization_id, &chunks).await;
            let details =
                serde_json::json!({ "attempt": attempt, "rows": rows, "chunks": chunks.len() });
            history::audit_import(
                app,
                who,
                call_id,
                "retry_failed_rows",
                (organization_id, import_id),
                details,
            )
            .await;
            // Its dead letters went into this attempt with the other rows.
            let dead = dead_letters::requeued_into(&mut conn, import_id, attempt).await?;
            crate::dead_queue::prune(app, &dead).await;
            Ok((rows, views::visible(&mut conn, who, import_id).await?))
        }
        Retry::NotRetryable(state) => Err(not_retryable(state_name(state))),
        Retry::Purged => Err(purged(import_id)),
        Retry::Changed => Err(ApiError::Aborted(
            "failed rows were edited while the retry was prepared; retry again".into(),
        )),
    }
}
