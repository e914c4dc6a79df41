//! The worker's heartbeat: every `heartbeat_every` the process writes its
//! row in `workers` (host, pid, slots, start), valid for `heartbeat_expiry`,
//! which is how the queue monitor lists live workers and tells a dead
//! worker's drain from a live one. The row is deleted on a clean stop.

use chrono::Utc;
use passare_imports_app::app::host_name;
use passare_imports_store::workers::{self, WorkerIdentity};
use tokio_util::sync::CancellationToken;

use crate::Worker;

/// Writes the heartbeat until `shutdown`, then removes it.
pub(crate) async fn run(worker: Worker, shutdown: CancellationToken) {
    let me = WorkerIdentity {
        name: worker.name.clone(),
        host: host_name(),
        pid: std::process::id() as i32,
        slots: worker.concurrency.min(i32::MAX as usize) as i32,
        started_at: Utc::now(),
    };
    let mut tick = tokio::time::interval(worker.heartbeat_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let written = match worker.db.conn().await {
            Ok(mut conn) => workers::heartbeat(&mut conn, &me, worker.heartbeat_expiry).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "writing the worker heartbeat failed");
        }
    }
    if let Ok(mut conn) = worker.db.conn().await
        && let Err(e) = workers::stopped(&mut conn, &me.name).await
    {
        tracing::debug!(error = %e, "removing the worker heartbeat failed");
    }
}
