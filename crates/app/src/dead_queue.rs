//! The broker's dead-letter queue `{prefix}.dead` (docs/monitoring.md):
//! once dead letters are requeued or discarded, their copies leave it.

use std::collections::HashSet;

use crate::App;

/// Takes the handled chunks' messages out of the broker's dead-letter
/// queue; a failure is logged (the queue is for inspection, the database is
/// the record).
pub(crate) async fn prune(app: &App, chunk_ids: &[i64]) {
    if chunk_ids.is_empty() {
        return;
    }
    let handled: HashSet<i64> = chunk_ids.iter().copied().collect();
    match passare_imports_queue::prune_dead(app.publisher.config(), &handled).await {
        Ok(removed) => tracing::info!(removed, "dead-letter queue: handled chunks removed"),
        Err(e) => {
            tracing::warn!(error = %e, "pruning the dead-letter queue failed; its copies stay for inspection")
        }
    }
}
