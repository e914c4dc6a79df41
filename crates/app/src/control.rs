//! The pause switch: pausing and resuming one organization's imports or
//! everyone's, and the pauses in force. Resuming announces the organizations
//! with waiting chunks to the workers at once.

use passare_imports_store::entities::import_pauses;
use passare_imports_store::{pauses, turns};

use crate::app::App;
use crate::error::ApiError;
use crate::history;
use crate::identity::Caller;

/// Pauses one organization (`Some`) or every organization, with a reason.
pub async fn pause(
    app: &App,
    who: &Caller,
    org: Option<i64>,
    reason: &str,
    call_id: &str,
) -> Result<import_pauses::Model, ApiError> {
    let mut conn = app.db.conn().await?;
    if let Some(org) = org {
        history::existing_org(&mut conn, org).await?;
    }
    if reason.is_empty() {
        return Err(ApiError::invalid(
            "reason",
            "is required: say why, it is shown on every paused import",
        ));
    }
    let pause = pauses::pause(&mut conn, org, reason, &who.requester()).await?;
    tracing::info!(org_id = ?org, by = %who.id, reason = %reason, "imports paused");
    let scope = org.map_or("every organization".to_string(), |o| {
        format!("organization {o}")
    });
    let details = serde_json::json!({ "reason": reason, "scope": scope });
    history::record(
        app,
        history::call(who, call_id, "pause_imports", org, None, details),
    )
    .await;
    Ok(pause)
}

/// Lifts the pause of one organization (`Some`) or of every organization;
/// returns the pause lifted, if any, and the pauses still in force.
pub async fn resume(
    app: &App,
    who: &Caller,
    org: Option<i64>,
    call_id: &str,
) -> Result<(Option<import_pauses::Model>, Vec<import_pauses::Model>), ApiError> {
    let mut conn = app.db.conn().await?;
    if let Some(org) = org {
        history::existing_org(&mut conn, org).await?;
    }
    let (lifted, waking) = pauses::resume(&mut conn, org, &who.requester()).await?;
    tracing::info!(org_id = ?org, by = %who.id, lifted = lifted.is_some(), organizations = waking.len(), "imports resumed");
    let details = serde_json::json!({
        "lifted": lifted.as_ref().map(|p| p.reason.clone()),
        "organizations_woken": waking.len(),
    });
    history::record(
        app,
        history::call(who, call_id, "resume_imports", org, None, details),
    )
    .await;
    // Wake the workers now; if the broker cannot take the notices, their
    // sweep finds the waiting chunks.
    if !waking.is_empty()
        && let Err(e) = app
            .publisher
            .announce(&turns::announcing(&app.db, &waking).await)
            .await
    {
        tracing::warn!(error = %e, "announcing resumed organizations failed; the worker sweep will");
    }
    Ok((lifted, pauses::all(&mut conn).await?))
}

/// The pauses in force, the global one first.
pub async fn pauses(app: &App) -> Result<Vec<import_pauses::Model>, ApiError> {
    let mut conn = app.db.conn().await?;
    Ok(pauses::all(&mut conn).await?)
}
