//! Starting an import: it must have files, none structurally broken, an
//! analysis that still describes its files and finds nothing blocking; then
//! it is numbered in its organization's queue with its chunk rows, under
//! the organization's queue lock, and its chunk messages are published.

use tracing::Instrument;

use crate::observability::traces;
use passare_imports_queue::Publisher;
use passare_imports_store::analysis_jobs::{self, AnalysisJob};
use passare_imports_store::entities::chunks;
use passare_imports_store::states::{FailurePolicy, ImportState};
use passare_imports_store::{
    Db, Requester, StoreError, files, imports as records, load, locks, timeline, turns,
};
use uuid::Uuid;

use crate::app::App;
use crate::error::{ApiError, FieldViolation, Precondition, no_files};
use crate::history;
use crate::identity::Caller;
use crate::views::{self, FileView, ImportView, is_invalid};

/// Starts a draft import (optionally changing its failure policy first);
/// starting a started import returns it as it is. An import never analysed
/// is not analysed within the call: its analysis is queued with
/// `start_when_done`, and the worker that runs it queues the import when
/// the report finds nothing blocking ([`after_analysis`]).
pub async fn start(
    app: &App,
    who: &Caller,
    id: Uuid,
    policy: Option<FailurePolicy>,
    call_id: &str,
) -> Result<ImportView, ApiError> {
    let mut conn = app.db.conn().await?;
    let mut view = views::visible(&mut conn, who, id).await?;
    if view.import.state != ImportState::Draft {
        return Ok(view);
    }
    if let Some(policy) = policy.filter(|p| *p != view.import.failure_policy) {
        records::set_failure_policy(&mut conn, id, policy).await?;
        view = views::visible(&mut conn, who, id).await?;
    }
    // Asked again while the analysis it queued runs: nothing more to do.
    if view
        .analysis_job
        .as_ref()
        .is_some_and(|j| j.is_pending() && j.start_when_done)
    {
        return Ok(view);
    }
    check_no_analysis_pending(&view)?;
    // The analysis and every chunk loaded for the import join this call's
    // trace (when traces are on).
    if let Some(traceparent) = traces::traceparent_of(&tracing::Span::current()) {
        records::set_trace_context(&mut conn, id, &traceparent).await?;
    }
    let org = view.import.organization_id;
    let policy = view.import.failure_policy;
    if view.import.analysis.is_none() && !view.files.is_empty() {
        // A caller that uploads and starts gets the same protection as one
        // that looks at the report first, without holding the call open.
        check_files_readable(&view.files)?;
        let rows: i64 = view.files.iter().map(|f| f.file.row_count).sum();
        let asked = analysis_jobs::Request {
            import_id: id,
            organization_id: org,
            rows_total: rows,
            start_when_done: true,
        };
        analysis_jobs::request(&mut conn, asked, &who.requester()).await?;
        let details =
            serde_json::json!({ "failure_policy": policy, "after_analysis": true, "rows": rows });
        history::audit_import(app, who, call_id, "start_import", (org, id), details).await;
        return views::visible(&mut conn, who, id).await;
    }
    // The queueing takes a transaction of its own: hold no connection
    // meanwhile, so concurrent starts never starve the pool.
    drop(conn);
    let queued = queue(&app.db, id, &who.requester()).await?;
    if let Some(chunks) = &queued {
        publish(&app.db, &app.publisher, id, org, chunks).await;
        let details = serde_json::json!({ "failure_policy": policy, "chunks": chunks.len() });
        history::audit_import(app, who, call_id, "start_import", (org, id), details).await;
    }
    views::visible(&mut *app.db.conn().await?, who, id).await
}

/// Queues an import whose analysis StartImport asked for, once a worker has
/// stored its report: the import is queued and announced when nothing
/// blocks it; when something does, it ends FAILED with the refusal's reason
/// and message (the report stays with it). An import that is no longer a
/// draft, or whose files changed since (ANALYSIS_STALE: its user has to
/// start it again), is left as it is.
pub async fn after_analysis(
    db: &Db,
    publisher: &Publisher,
    job: &AnalysisJob,
) -> Result<(), ApiError> {
    let id = job.import_id;
    match queue(db, id, &job.requester()).await {
        Ok(Some(chunks)) => {
            publish(db, publisher, id, job.organization_id, &chunks).await;
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(ApiError::FailedPrecondition { reason, .. })
            if matches!(
                reason,
                "ANALYSIS_STALE" | "ANALYSIS_RUNNING" | "NOT_ANALYZED"
            ) =>
        {
            tracing::info!(import_id = %id, reason, "import not started after its analysis");
            Ok(())
        }
        Err(ApiError::FailedPrecondition {
            reason, message, ..
        }) => {
            let mut tx = db.begin().await?;
            let Some(import) = records::lock(&mut tx, id)
                .await?
                .filter(|i| i.state == ImportState::Draft)
            else {
                return Ok(());
            };
            let error = serde_json::json!({
                "reason": reason,
                "message": format!("the analysis asked for by StartImport found the import cannot start: {message}"),
            });
            load::fail_draft(&mut tx, id, import.failure_policy, error).await?;
            timeline::notify(&mut tx, id).await?;
            tx.commit().await.map_err(StoreError::from)?;
            tracing::info!(import_id = %id, reason, "import failed: its analysis found it cannot start");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Queues the import under the organization's queue lock and the import's
/// row lock, checking the files as they are now: an upload that raced the
/// start is either in the list or refused. `None` when the import is no
/// longer a draft (or is gone).
async fn queue(db: &Db, id: Uuid, by: &Requester) -> Result<Option<Vec<chunks::Model>>, ApiError> {
    let mut tx = db.begin().await?;
    let Some(org) = records::find(&mut tx, id).await?.map(|i| i.organization_id) else {
        return Ok(None);
    };
    locks::queue(&mut tx, org).await?;
    let Some(import) = records::lock(&mut tx, id)
        .await?
        .filter(|i| i.state == ImportState::Draft)
    else {
        return Ok(None);
    };
    let files = files::of_import(&mut tx, id).await?;
    let job = analysis_jobs::of_import(&mut tx, id).await?;
    let fresh = ImportView {
        analysis_job: job,
        import: import.clone(),
        files: views::file_views(&mut tx, files.clone()).await?,
        queue_position: 0,
        pause: None,
        chunk_failures: Vec::new(),
        chunk_failure_count: 0,
        timeline: Vec::new(),
        organization_name: String::new(),
        rate: None,
        archive: None,
    };
    check_startable(&fresh)?;
    let Some(chunks) = records::queue(&mut tx, &import, &files, by).await? else {
        return Ok(None);
    };
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Some(chunks))
}

/// Announces the organization of committed chunk rows to the workers. If
/// the broker cannot take the notice now, the import stays queued and the
/// workers' sweep announces it once the broker is back; nothing is lost.
pub async fn publish(
    db: &Db,
    publisher: &Publisher,
    import_id: Uuid,
    org: i64,
    chunks: &[chunks::Model],
) {
    let span = tracing::info_span!("publish notice", otel.kind = "producer", org_id = org);
    let trace = crate::observability::traces::carrier_of(&span);
    let notices = turns::announcing(db, &[org]).await;
    let announced = publisher
        .announce_traced(&notices, &trace)
        .instrument(span)
        .await;
    match announced {
        Ok(()) => {
            tracing::info!(import_id = %import_id, org_id = org, chunks = chunks.len(), "import queued")
        }
        Err(e) => tracing::warn!(
            import_id = %import_id, org_id = org, error = %e,
            "import queued, but its notice could not be published; the worker sweep will announce it"
        ),
    }
}

/// Refuses to start an import whose analysis is waiting or running (the
/// report to check is not there yet), or whose latest analysis failed.
fn check_no_analysis_pending(view: &ImportView) -> Result<(), ApiError> {
    let Some(job) = &view.analysis_job else {
        return Ok(());
    };
    let subject = format!("imports/{}", view.import.id);
    if job.is_pending() {
        return Err(ApiError::precondition(
            "ANALYSIS_RUNNING",
            format!(
                "the import's analysis is {} ({} of {} rows checked); start it once the report is there",
                job.state, job.rows_done, job.rows_total
            ),
            "ANALYSIS",
            subject,
            format!("analysis {}", job.state),
        ));
    }
    if job.state == "failed" {
        return Err(ApiError::precondition(
            "ANALYSIS_FAILED",
            format!(
                "the import's latest analysis failed ({}); call AnalyzeImport again",
                job.error.as_deref().unwrap_or("no reason recorded")
            ),
            "ANALYSIS",
            subject,
            "analysis failed",
        ));
    }
    Ok(())
}

/// Refuses to start an import that cannot succeed: no files, broken files,
/// an analysis waiting, running or failed, no current analysis, or blocking
/// findings.
pub fn check_startable(view: &ImportView) -> Result<(), ApiError> {
    if view.files.is_empty() {
        return Err(no_files("starting"));
    }
    check_no_analysis_pending(view)?;
    check_files_readable(&view.files)?;
    let Some((report, stale)) = view.analysis() else {
        return Err(ApiError::precondition(
            "NOT_ANALYZED",
            "the import has not been analysed; call AnalyzeImport",
            "ANALYSIS",
            "import",
            "no analysis",
        ));
    };
    if stale {
        return Err(ApiError::precondition(
            "ANALYSIS_STALE",
            format!(
                "the files changed since the analysis of {}; call AnalyzeImport again and review the report",
                report.analyzed_at.to_rfc3339()
            ),
            "ANALYSIS",
            "import",
            "files changed since the last analysis",
        ));
    }
    check_findings(view, &report)
}

/// Structurally broken files, each problem a violation of its file.
fn check_files_readable(files: &[FileView]) -> Result<(), ApiError> {
    let violations: Vec<FieldViolation> = files
        .iter()
        .filter(|f| is_invalid(&f.file))
        .flat_map(|f| {
            f.problems.iter().map(|p| FieldViolation {
                field: format!("files[{}]", f.file.file_name),
                description: if p.row == 0 {
                    p.reason.clone()
                } else {
                    format!("row {}: {}", p.row, p.reason)
                },
            })
        })
        .collect();
    if violations.is_empty() {
        return Ok(());
    }
    Err(ApiError::FailedPrecondition {
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
        info: vec![],
    })
}

/// Blocking findings: missing prerequisites as preconditions of the
/// organization, row findings as violations of their file and row.
fn check_findings(
    view: &ImportView,
    report: &passare_imports_domain::analysis::AnalysisReport,
) -> Result<(), ApiError> {
    let strict = view.policy().stops_on_first_error();
    let mut preconditions = Vec::new();
    let mut violations = Vec::new();
    let mut messages = Vec::new();
    for (file, f) in report.all_findings().filter(|(_, f)| f.blocks(strict)) {
        let Some(file) = file else {
            preconditions.push(Precondition {
                kind: "PREREQUISITE".into(),
                subject: format!("organizations/{}", view.import.organization_id),
                description: f.message.clone(),
            });
            continue;
        };
        messages.push(format!("{}: {}", file.file_name, f.message));
        violations.extend(f.samples.iter().map(|p| FieldViolation {
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
        }));
    }
    if preconditions.is_empty() && violations.is_empty() {
        return Ok(());
    }
    let mut message: Vec<String> = preconditions
        .iter()
        .map(|p| p.description.clone())
        .collect();
    message.extend(messages);
    Err(ApiError::FailedPrecondition {
        reason: if preconditions.is_empty() {
            "BLOCKING_FINDINGS"
        } else {
            "MISSING_PREREQUISITE"
        },
        message: message.join("; "),
        preconditions,
        violations,
        info: vec![],
    })
}
