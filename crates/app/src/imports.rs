//! Drafts and their files, reads of imports, and stopping one: creating a
//! draft (idempotent per request id), removing a file from a draft, the
//! history list, and StopImport.

use passare_imports_store::files::{self, Removed};
use passare_imports_store::imports::{self as records, ImportFilter, NewImport};
use passare_imports_store::load::{self, Stopped};
use passare_imports_store::states::{FailurePolicy, ImportState};
use passare_imports_store::{PgConnection, Timestamp, turns};
use uuid::Uuid;

use crate::app::App;
use crate::error::{ApiError, not_a_draft};
use crate::history;
use crate::identity::Caller;
use crate::views::{self, ImportView};

/// What CreateImport asks for.
#[derive(Debug, Clone)]
pub struct NewDraft {
    pub organization_id: i64,
    pub failure_policy: FailurePolicy,
    pub note: String,
    pub request_id: Option<Uuid>,
}

/// Creates a draft import of an organization; a retry with the same
/// request id returns the first call's import.
pub async fn create(
    app: &App,
    who: &Caller,
    draft: NewDraft,
    call_id: &str,
) -> Result<ImportView, ApiError> {
    let mut conn = app.db.conn().await?;
    history::existing_org(&mut conn, draft.organization_id).await?;
    let (import, created) = records::create(
        &mut conn,
        NewImport {
            organization_id: draft.organization_id,
            failure_policy: draft.failure_policy,
            note: draft.note.clone(),
            request_id: draft.request_id,
            requested_by: who.requester(),
        },
    )
    .await?;
    tracing::info!(import_id = %import.id, org_id = import.organization_id, created, "import created");
    if !created {
        // The request id's first request made this import (AIP-155).
        crate::error::same_request(
            &format!("import {}", import.id),
            &[
                (
                    "organization_id",
                    import.organization_id == draft.organization_id,
                ),
                (
                    "failure_policy",
                    import.failure_policy == draft.failure_policy,
                ),
                ("note", import.note == draft.note),
            ],
        )?;
    }
    if created {
        let details = serde_json::json!({
            "failure_policy": import.failure_policy,
            "note": import.note,
            "request_id": import.request_id,
        });
        history::audit_import(
            app,
            who,
            call_id,
            "create_import",
            (import.organization_id, import.id),
            details,
        )
        .await;
    }
    views::visible(&mut conn, who, import.id).await
}

/// Removes a file from a draft import and deletes its bytes.
pub async fn remove_file(
    app: &App,
    who: &Caller,
    import_id: Uuid,
    file_id: Uuid,
    call_id: &str,
) -> Result<ImportView, ApiError> {
    let mut conn = app.db.conn().await?;
    // Another organization's import is NOT_FOUND like one that does not exist.
    views::visible_record(&mut conn, who, import_id).await?;
    let name = match files::remove(&mut conn, import_id, file_id, &who.requester()).await? {
        Removed::Done(name, keys) => {
            for key in keys {
                if let Err(e) = app.files.delete(&key).await {
                    tracing::warn!(import_id = %import_id, key, error = %e, "deleting a removed file's bytes failed");
                }
            }
            tracing::info!(import_id = %import_id, file_id = %file_id, "file removed");
            name
        }
        Removed::NotDraft(state) => {
            return Err(not_a_draft(
                state,
                "files can be added only to a draft import",
            ));
        }
        Removed::NotFound => return Err(ApiError::not_found("file", file_id)),
    };
    let view = views::visible(&mut conn, who, import_id).await?;
    let details = serde_json::json!({ "file_id": file_id, "file_name": name });
    history::audit_import(
        app,
        who,
        call_id,
        "remove_file",
        (view.import.organization_id, import_id),
        details,
    )
    .await;
    Ok(view)
}

/// A page of the history: imports newest first, after `cursor`, with one
/// more than `limit` when there is a next page.
pub async fn list(
    conn: &mut PgConnection,
    filter: &ImportFilter,
    cursor: Option<(Timestamp, Uuid)>,
    limit: u64,
) -> Result<Vec<ImportView>, ApiError> {
    let rows = records::list(conn, filter, cursor, limit).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let files = files::of_imports(conn, &ids).await?;
    Ok(views::views_of(conn, rows, files).await?)
}

/// Stops an import after the chunk in hand; an all-or-nothing import is
/// rolled back. Stopping a stopped import changes nothing.
pub async fn stop(
    app: &App,
    who: &Caller,
    id: Uuid,
    reason: &str,
    call_id: &str,
) -> Result<ImportView, ApiError> {
    let mut conn = app.db.conn().await?;
    views::visible_record(&mut conn, who, id).await?;
    match load::stop_import(&mut conn, id, &who.requester(), reason).await? {
        Stopped::Now => {
            tracing::info!(import_id = %id, by = %who.id, reason = %reason, "import stopped");
            let view = views::visible(&mut conn, who, id).await?;
            if view.import.state == ImportState::RollingBack {
                // A worker puts back what it wrote; tell the workers now (the
                // sweep finds it otherwise).
                let org = view.import.organization_id;
                let notices = turns::announcing(&app.db, &[org]).await;
                if let Err(e) = app.publisher.announce(&notices).await {
                    tracing::warn!(org_id = org, error = %e, "announcing a rollback failed; the worker sweep will");
                }
            }
            let details = serde_json::json!({ "reason": reason });
            history::audit_import(
                app,
                who,
                call_id,
                "stop_import",
                (view.import.organization_id, id),
                details,
            )
            .await;
            Ok(view)
        }
        Stopped::Already => views::visible(&mut conn, who, id).await,
        Stopped::Finished(state) => Err(ApiError::precondition(
            "IMPORT_FINISHED",
            format!("the import already ended {state}; there is nothing to stop"),
            "STATE",
            format!("imports/{id}"),
            format!("import is {state}"),
        )),
        Stopped::NotFound => Err(ApiError::not_found("import", id)),
    }
}

/// Queues the analysis of a draft import's files and returns at once; a
/// worker runs it and `analysis_job` follows it until the report is stored
/// with the import. Asking again replaces a job still waiting or running.
pub async fn analyze(
    app: &App,
    who: &Caller,
    id: Uuid,
    call_id: &str,
) -> Result<ImportView, ApiError> {
    let mut conn = app.db.conn().await?;
    let view = views::visible(&mut conn, who, id).await?;
    if view.import.state != passare_imports_store::ImportState::Draft {
        return Err(not_a_draft(
            view.import.state,
            "only a draft import can be analysed",
        ));
    }
    if view.files.is_empty() {
        return Err(crate::error::no_files("analysing"));
    }
    let rows: i64 = view.files.iter().map(|f| f.file.row_count).sum();
    let asked = passare_imports_store::analysis_jobs::Request {
        import_id: id,
        organization_id: view.import.organization_id,
        rows_total: rows,
        start_when_done: false,
    };
    passare_imports_store::analysis_jobs::request(&mut conn, asked, &who.requester()).await?;
    let details = serde_json::json!({ "files": view.files.len(), "rows": rows });
    history::audit_import(
        app,
        who,
        call_id,
        "analyze_import",
        (view.import.organization_id, id),
        details,
    )
    .await;
    views::visible(&mut conn, who, id).await
}
