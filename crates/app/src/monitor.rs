//! The queue monitor (docs/monitoring.md): organizations with work, what the
//! workers hold for them and whether it is stalled, totals, live workers
//! and throughput, read from PostgreSQL (the chunks and their order live
//! there; the broker holds only notices and dead letters).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use passare_imports_store::monitor::{self, OrganizationQueue, Totals};
use passare_imports_store::workers::{self, Drain, LiveWorker};
use passare_imports_store::{PgConnection, StoreError};

use crate::App;

/// One organization's queue with the drain a worker holds for it.
#[derive(Debug, Clone)]
pub struct QueueView {
    pub queue: OrganizationQueue,
    pub drain: Option<Drain>,
}

/// A live worker with the drains it holds.
#[derive(Debug, Clone)]
pub struct WorkerView {
    pub worker: LiveWorker,
    pub drains: Vec<Drain>,
}

/// Everything the monitor shows.
#[derive(Debug, Clone)]
pub struct Monitor {
    /// A page of organizations (one more than asked when there are more).
    pub organizations: Vec<QueueView>,
    pub totals: Totals,
    pub stalled_drains: i64,
    pub workers: Vec<WorkerView>,
    pub throughput: Vec<(DateTime<Utc>, i64)>,
}

/// How long a chunk may be in hand before it counts as stalled: an attempt
/// may take twice the chunk timeout.
pub fn attempt_limit(app: &App) -> Duration {
    Duration::from_millis(app.config.chunk_timeout_ms.saturating_mul(2))
}

/// Reads the monitor: organizations after `after`, at most `limit`.
pub async fn read(
    app: &App,
    after: Option<i64>,
    limit: u64,
    minutes: i32,
) -> Result<Monitor, StoreError> {
    let mut conn = app.db.conn().await?;
    let mut tx = monitor::snapshot(&mut conn).await?;
    let organizations = monitor::organizations(&mut tx, after, limit).await?;
    let totals = monitor::totals(&mut tx).await?;
    let throughput = monitor::rows_per_minute(&mut tx, minutes).await?;
    let drains = workers::drains(&mut tx, attempt_limit(app)).await?;
    let live = live_workers(&mut tx, &drains).await?;
    tx.commit().await?;
    let stalled_drains = drains.iter().filter(|d| d.stalled).count() as i64;
    let mut by_org: HashMap<i64, Drain> =
        drains.into_iter().map(|d| (d.organization_id, d)).collect();
    Ok(Monitor {
        organizations: organizations
            .into_iter()
            .map(|queue| QueueView {
                drain: by_org.remove(&queue.organization_id),
                queue,
            })
            .collect(),
        totals,
        stalled_drains,
        workers: live,
        throughput,
    })
}

/// The live workers with the drains each holds.
pub async fn workers(app: &App) -> Result<Vec<WorkerView>, StoreError> {
    let mut conn = app.db.conn().await?;
    let drains = workers::drains(&mut conn, attempt_limit(app)).await?;
    live_workers(&mut conn, &drains).await
}

async fn live_workers(
    conn: &mut PgConnection,
    drains: &[Drain],
) -> Result<Vec<WorkerView>, StoreError> {
    Ok(workers::live(conn)
        .await?
        .into_iter()
        .map(|worker| WorkerView {
            drains: drains
                .iter()
                .filter(|d| d.worker == worker.name)
                .cloned()
                .collect(),
            worker,
        })
        .collect())
}
