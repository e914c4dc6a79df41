//! Analysis as background work: AnalyzeImport records a job and returns; a
//! worker process claims the oldest waiting job, runs the analysis with its
//! progress recorded chunk by chunk, and stores the report (or the job's
//! error). A job whose worker died is taken over once its lease has passed
//! and analysed again from the start (analysis writes nothing but its
//! report, so starting over is exact); one interrupted `max_attempts` times
//! fails with the reason. A job StartImport asked for (`start_when_done`)
//! then queues its import, or fails it when the report blocks it
//! ([`crate::start::after_analysis`]).

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use passare_imports_queue::Publisher;
use passare_imports_storage::FileStore;
use passare_imports_store::analysis_jobs::{self, AnalysisJob};
use passare_imports_store::{Db, ImportState, imports as records};
use tokio_util::sync::CancellationToken;

use crate::analysis::{Analyser, AnalysisSettings, analyze};
use crate::error::ApiError;

/// How often an idle worker looks for a waiting analysis.
const POLL: Duration = Duration::from_millis(500);

/// Runs waiting analyses until `shutdown`; an analysis in hand when it comes
/// is handed back to the queue for another worker.
pub async fn run(
    db: Db,
    files: Arc<dyn FileStore>,
    settings: AnalysisSettings,
    publisher: Arc<Publisher>,
    shutdown: CancellationToken,
) {
    let ctx = Analyser {
        db: &db,
        files: files.as_ref(),
        settings,
    };
    // Woken at once by a notice of an analysis asked for; without one (the
    // listener could not connect), the runner looks every `POLL`.
    let mut waiting = match analysis_jobs::Waiting::listen(&db).await {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "no notices of analyses asked for; looking for them every {POLL:?}");
            None
        }
    };
    loop {
        let ran = tokio::select! {
            _ = shutdown.cancelled() => break,
            ran = next(ctx, &publisher, &shutdown) => ran,
        };
        match ran {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "looking for analysis jobs failed"),
        }
        let notice = async {
            match waiting.as_mut() {
                Some(w) => {
                    if let Err(e) = w.next().await {
                        // Reconnected on the next call; until then, the
                        // runner looks every `POLL`.
                        tracing::debug!(error = %e, "the notice connection broke; it reconnects");
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = notice => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Claims and runs the next waiting analysis; `false` when none waits.
async fn next(
    ctx: Analyser<'_>,
    publisher: &Publisher,
    shutdown: &CancellationToken,
) -> Result<bool, ApiError> {
    let job = {
        let mut conn = ctx.db.conn().await?;
        analysis_jobs::claim(&mut conn, ctx.settings.lease_secs).await?
    };
    let Some(job) = job else {
        return Ok(false);
    };
    tracing::info!(import_id = %job.import_id, attempt = job.attempts, "analysis job claimed");
    if job.attempts > ctx.settings.max_attempts as i32 {
        let why = format!(
            "the analysis was interrupted {} times (its worker stopped or lost the database); call AnalyzeImport again",
            job.attempts - 1
        );
        return fail(ctx, &job, &why).await.map(|_| true);
    }
    // The analysis joins the trace of the StartImport that asked for it.
    let traceparent = records::trace_context(&mut *ctx.db.conn().await?, job.import_id).await?;
    let span = tracing::info_span!(
        "analysis",
        import_id = %job.import_id,
        org_id = job.organization_id,
        trace_id = tracing::field::Empty,
    );
    crate::observability::traces::continue_traceparent(&span, traceparent.as_deref());
    let outcome = tokio::select! {
        outcome = run_one(ctx, &job).instrument(span.clone()) => outcome,
        _ = shutdown.cancelled() => {
            // The lease passes and another worker takes the job over.
            tracing::info!(import_id = %job.import_id, "worker stopping; analysis job left to another worker");
            return Ok(true);
        }
    };
    match outcome {
        Ok(()) if job.start_when_done => {
            crate::start::after_analysis(ctx.db, publisher, &job)
                .instrument(span)
                .await?;
        }
        Ok(()) => {}
        Err(ApiError::Aborted(why)) => {
            tracing::info!(import_id = %job.import_id, why, "analysis job superseded");
        }
        Err(e) if is_transient(&e) => {
            // Left running: the lease passes and the job is claimed again.
            tracing::warn!(import_id = %job.import_id, error = %e, "analysis interrupted; it will be retried");
        }
        Err(e) => {
            let why = format!("the analysis failed: {e}; call AnalyzeImport again");
            fail(ctx, &job, &why).await?;
        }
    }
    Ok(true)
}

/// A failure that running again may not meet (the database or storage away).
fn is_transient(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::Unavailable(_) | ApiError::DeadlineExceeded { .. }
    )
}

async fn run_one(ctx: Analyser<'_>, job: &AnalysisJob) -> Result<(), ApiError> {
    let import = {
        let mut conn = ctx.db.conn().await?;
        records::find(&mut conn, job.import_id).await?
    };
    let Some(import) = import else {
        return Err(ApiError::Aborted("the import was deleted".into()));
    };
    if import.state != ImportState::Draft {
        return Err(ApiError::FailedPrecondition {
            reason: "IMPORT_NOT_DRAFT",
            message: format!(
                "the import was started ({}) before its analysis ran",
                import.state
            ),
            preconditions: Vec::new(),
            violations: Vec::new(),
            info: Vec::new(),
        });
    }
    analyze(ctx, &import, &job.requester(), Some(job)).await?;
    Ok(())
}

async fn fail(ctx: Analyser<'_>, job: &AnalysisJob, why: &str) -> Result<(), ApiError> {
    tracing::warn!(import_id = %job.import_id, error = why, "analysis job failed");
    let mut conn = ctx.db.conn().await?;
    analysis_jobs::end(&mut conn, job, Some(why)).await?;
    Ok(())
}
