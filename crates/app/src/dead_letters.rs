//! Handling dead letters (docs/monitoring.md): listing the chunks workers
//! gave up on, requeueing them — their rows run again as their import's
//! next attempt, through the organization's ordered queue like any load —
//! or discarding them, each audited with who did it. Afterwards their
//! copies leave the broker's `{prefix}.dead` queue (best effort: the
//! database is the record).

use std::collections::{BTreeMap, HashSet};

use passare_imports_store::dead_letters::{self, DeadLetter, Resolution};
use passare_imports_store::imports as import_records;
use passare_imports_store::results::Retry;
use passare_imports_store::states::{FailurePolicy, ImportState};
use uuid::Uuid;

use crate::App;
use crate::dead_queue;
use crate::error::{ApiError, Precondition, not_retryable, purged};
use crate::history;
use crate::identity::Caller;
use crate::start::publish;
use crate::views::{self, ImportView};

/// Most chunks one call handles.
pub const MAX_CHUNKS: usize = 1_000;

/// What a requeue did.
#[derive(Debug)]
pub struct Requeued {
    pub requeued: Vec<i64>,
    pub already_resolved: Vec<i64>,
    pub imports: Vec<ImportView>,
}

/// The dead letters of `chunk_ids`, every one of which must exist.
async fn letters(app: &App, chunk_ids: &[i64]) -> Result<Vec<DeadLetter>, ApiError> {
    if chunk_ids.is_empty() || chunk_ids.len() > MAX_CHUNKS {
        return Err(ApiError::invalid(
            "chunk_ids",
            format!("name 1 to {MAX_CHUNKS} dead-lettered chunks"),
        ));
    }
    let found = dead_letters::find(&mut *app.db.conn().await?, chunk_ids).await?;
    let known: HashSet<i64> = found.iter().map(|d| d.chunk_id).collect();
    let unknown: Vec<i64> = chunk_ids
        .iter()
        .copied()
        .filter(|c| !known.contains(c))
        .collect();
    if unknown.is_empty() {
        return Ok(found);
    }
    let exist = dead_letters::existing_chunks(&mut *app.db.conn().await?, &unknown).await?;
    if let Some(absent) = unknown.iter().find(|c| !exist.contains(c)) {
        return Err(ApiError::not_found("chunk", absent));
    }
    Err(ApiError::FailedPrecondition {
        reason: "NOT_A_DEAD_LETTER",
        message: format!(
            "chunks {unknown:?} were never given up, so there is nothing to requeue or discard (see ListDeadLetters)"
        ),
        preconditions: unknown
            .iter()
            .map(|c| Precondition {
                kind: "STATE".into(),
                subject: format!("chunks/{c}"),
                description: "the chunk is not dead-lettered".into(),
            })
            .collect(),
        violations: vec![],
        info: vec![],
    })
}

/// Why a dead letter's import cannot run its rows again, if it cannot.
fn refusal(import: &passare_imports_store::entities::imports::Model) -> Option<ApiError> {
    if import.results_purged_at.is_some() {
        return Some(purged(import.id));
    }
    if import.failure_policy == FailurePolicy::StopOnFirstError {
        return Some(ApiError::precondition(
            "ALL_OR_NOTHING_IMPORT",
            format!(
                "import {} is all-or-nothing: giving the chunk up failed it and put back what it had written, so there is nothing to complete; start the import again (or discard the dead letter)",
                import.id
            ),
            "POLICY",
            format!("imports/{}", import.id),
            "stop_on_first_error imports are started again, not requeued",
        ));
    }
    if !import.state.is_terminal() {
        return Some(ApiError::precondition(
            "IMPORT_STILL_RUNNING",
            format!(
                "import {} is {}: requeue its dead letters once it ended (its other chunks go on meanwhile)",
                import.id,
                import.state.as_str()
            ),
            "STATE",
            format!("imports/{}", import.id),
            "the import has not ended",
        ));
    }
    (import.state != ImportState::CompletedWithErrors).then(|| not_retryable(import.state.as_str()))
}

/// Requeues dead letters: per import, one new attempt running exactly
/// their rows. Every import is checked before any is queued.
pub async fn requeue(
    app: &App,
    who: &Caller,
    chunk_ids: &[i64],
    call_id: &str,
) -> Result<Requeued, ApiError> {
    let found = letters(app, chunk_ids).await?;
    let (waiting, resolved): (Vec<DeadLetter>, Vec<DeadLetter>) =
        found.into_iter().partition(|d| d.resolution.is_none());
    let mut by_import: BTreeMap<Uuid, Vec<i64>> = BTreeMap::new();
    for d in &waiting {
        by_import.entry(d.import_id).or_default().push(d.chunk_id);
    }
    let mut conn = app.db.conn().await?;
    let mut imports = Vec::new();
    for import_id in by_import.keys() {
        let import = import_records::find(&mut conn, *import_id)
            .await?
            .ok_or_else(|| ApiError::not_found("import", import_id))?;
        if let Some(refused) = refusal(&import) {
            return Err(refused);
        }
        imports.push(import);
    }
    let by = who.requester();
    let mut requeued = Vec::new();
    let mut views = Vec::new();
    for import in imports {
        let chunks = &by_import[&import.id];
        let outcome =
            crate::results::retry::build_and_queue(app, &mut conn, &import, &by, Some(chunks))
                .await?;
        let Retry::Queued {
            organization_id,
            attempt,
            rows,
            chunks: queued,
        } = outcome
        else {
            return Err(ApiError::Aborted(format!(
                "import {} changed while its dead letters were requeued (another call requeued them, or its rows were edited); list the dead letters and try again",
                import.id
            )));
        };
        publish(&app.db, &app.publisher, import.id, organization_id, &queued).await;
        let details = serde_json::json!({ "chunk_ids": chunks, "attempt": attempt, "rows": rows });
        history::audit_import(
            app,
            who,
            call_id,
            "requeue_dead_letters",
            (organization_id, import.id),
            details,
        )
        .await;
        requeued.extend(chunks.iter().copied());
        views.push(views::visible(&mut conn, who, import.id).await?);
    }
    drop(conn);
    dead_queue::prune(app, &requeued).await;
    Ok(Requeued {
        requeued,
        already_resolved: resolved.iter().map(|d| d.chunk_id).collect(),
        imports: views,
    })
}

/// Discards dead letters: their rows stay failed. Returns (discarded,
/// already resolved).
pub async fn discard(
    app: &App,
    who: &Caller,
    chunk_ids: &[i64],
    reason: &str,
    call_id: &str,
) -> Result<(Vec<i64>, Vec<i64>), ApiError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 1_000 {
        return Err(ApiError::invalid(
            "reason",
            "say why, in 1 to 1000 characters",
        ));
    }
    let found = letters(app, chunk_ids).await?;
    let mut conn = app.db.conn().await?;
    let discarded = dead_letters::resolve(
        &mut conn,
        chunk_ids,
        Resolution::Discarded,
        reason,
        &who.requester(),
    )
    .await?;
    drop(conn);
    let mut by_import: BTreeMap<(i64, Uuid), Vec<i64>> = BTreeMap::new();
    for d in found.iter().filter(|d| discarded.contains(&d.chunk_id)) {
        by_import
            .entry((d.organization_id, d.import_id))
            .or_default()
            .push(d.chunk_id);
    }
    for ((org, import_id), chunks) in by_import {
        let details = serde_json::json!({ "chunk_ids": chunks, "reason": reason });
        history::audit_import(
            app,
            who,
            call_id,
            "discard_dead_letters",
            (org, import_id),
            details,
        )
        .await;
    }
    dead_queue::prune(app, &discarded).await;
    let already = found
        .iter()
        .map(|d| d.chunk_id)
        .filter(|c| !discarded.contains(c))
        .collect();
    Ok((discarded, already))
}
