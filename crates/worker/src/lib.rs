//! The chunk worker. Each slot consumes "organization ready" notices; for a
//! notice it takes the organization's drain lease (a PostgreSQL session
//! advisory lock) and loads that organization's chunks one at a time, in the
//! order the database gives (imports by start, files by position, chunks by
//! sequence), until nothing is left or its time slice ends. The write of every chunk also takes the organization's
//! transaction-scoped write fence, so the guarantee holds even when a worker
//! lost its lease or the broker redelivered a chunk still being written. See
//! docs/per-organization-concurrency.md.
//!
//! - [`slot`]: consuming notices, the sweep, re-announcing organizations;
//! - [`drain`]: one organization's chunks under its lease;
//! - [`archive`]: the raw archive (Parquet rows, original bytes);
//! - [`chunk`]: reading, parsing, checking and writing one chunk;
//! - [`relay`]: publishing the record events' outbox;
//! - [`read`]: reading and parsing a chunk's bytes;
//! - [`failure`]: classifying a failed attempt, retrying it or giving it up;
//! - [`heartbeat`]: the row that shows the worker alive in the queue monitor;
//! - [`telemetry`]: metrics and the readiness the ops listener reports;
//! - [`topology`]: moving the broker off the queues per organization of
//!   earlier releases, once.
//!
//! Beside the slots, each worker runs waiting analyses one at a time
//! (`passare_imports_app::analysis_jobs`).

pub mod archive;
pub mod chunk;
mod drain;
pub mod failure;
mod heartbeat;
mod read;
pub mod relay;
mod slot;
pub mod telemetry;
mod topology;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use passare_imports_app::Config;
use passare_imports_app::app::process_name;
use passare_imports_app::retention::Housekeeping;
use passare_imports_queue::{self as queue, QueueConfig, QueueError, WorkChannel};
use passare_imports_storage::{FileStore, open_store};
use passare_imports_store::Db;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use failure::RetryPolicy;

/// What the drain does after a chunk.
pub(crate) enum Step {
    /// Go on with the next chunk.
    Next,
    /// Stop draining, wait this long, and hand the organization back.
    Pause(Duration),
    /// Stop draining; the organization's next chunk is due at this time.
    WakeAt(DateTime<Utc>),
}

/// What a worker process needs.
#[derive(Clone)]
pub struct Worker {
    pub db: Db,
    pub files: Arc<dyn FileStore>,
    pub queue: QueueConfig,
    pub name: String,
    pub concurrency: usize,
    pub drain_max: Duration,
    /// Read and parse an organization's next chunk while one is written.
    pub read_ahead: bool,
    /// How often waiting organizations are re-announced.
    pub sweep_every: Duration,
    pub retry: RetryPolicy,
    /// Longest a chunk's write statement may take; an attempt as a whole may
    /// take twice as long.
    pub chunk_timeout: Duration,
    /// Retention, upload expiry and the orphan sweep.
    pub housekeeping: Housekeeping,
    /// Records put back per rollback transaction.
    pub rollback_batch: i64,
    /// How the background analyses this worker runs go.
    pub analysis: passare_imports_app::analysis::AnalysisSettings,
    /// How often the heartbeat is written, and how long it stays valid.
    pub heartbeat_every: Duration,
    pub heartbeat_expiry: Duration,
    /// Whether chunk writes add record events to the outbox, and this worker
    /// runs the relay that publishes them.
    pub record_events: bool,
    /// The raw archive, unless `IMPORTS_ARCHIVE` is off.
    pub archive: Option<archive::ArchiveSettings>,
    /// Busy slots and the broker connection, for the ops listener.
    pub activity: Arc<telemetry::Activity>,
}

impl Worker {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            db: Db::connect(&config.database_url, config.database_max_connections).await?,
            files: open_store(&config.storage()).await?,
            queue: config.queue(),
            name: process_name(),
            concurrency: config.worker_concurrency,
            drain_max: Duration::from_secs(config.worker_drain_max_secs.max(1)),
            read_ahead: config.worker_read_ahead,
            sweep_every: Duration::from_secs(config.worker_sweep_secs.max(1)),
            retry: RetryPolicy::from_config(config),
            chunk_timeout: Duration::from_millis(config.chunk_timeout_ms),
            housekeeping: Housekeeping {
                retention_days: config.retention_days,
                retention_every: Duration::from_secs(config.retention_sweep_secs),
                upload_expiry: Duration::from_secs(config.upload_expire_secs),
                orphan_min_age: Duration::from_secs(config.orphan_min_age_secs),
            },
            rollback_batch: config.rollback_batch_rows as i64,
            analysis: passare_imports_app::analysis::AnalysisSettings::of(config),
            heartbeat_every: Duration::from_secs(config.worker_heartbeat_secs.max(1)),
            heartbeat_expiry: Duration::from_secs(config.worker_heartbeat_expiry_secs.max(2)),
            record_events: config.record_events,
            archive: config.archive.then(|| archive::ArchiveSettings {
                prefix: config.archive_prefix.clone(),
                retry: RetryPolicy {
                    max_attempts: u32::MAX,
                    base: Duration::from_secs(config.archive_retry_secs),
                    max_delay: Duration::from_secs(3_600),
                },
                retention_days: config.archive_retention_days,
                slots: Arc::new(tokio::sync::Semaphore::new(archive::IN_MEMORY)),
            }),
            activity: Arc::default(),
        })
    }

    /// Runs until `shutdown`: connects to the broker, runs the slots and the
    /// sweep, and reconnects with backoff whenever the connection is lost. On
    /// shutdown the chunk in hand is finished; every other message stays with
    /// the broker.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let retention = tokio::spawn(passare_imports_app::retention::run(
            self.db.clone(),
            self.files.clone(),
            self.housekeeping,
            shutdown.clone(),
        ));
        // Imports whose analysis StartImport queued are announced by the
        // worker that analysed them, on a publisher of its own.
        let publisher = Arc::new(passare_imports_queue::Publisher::new(
            self.queue.clone(),
            format!("passare-imports worker {} analyses", self.name),
        ));
        let analyses = tokio::spawn(passare_imports_app::analysis_jobs::run(
            self.db.clone(),
            self.files.clone(),
            self.analysis,
            publisher,
            shutdown.clone(),
        ));
        let heartbeat = tokio::spawn(heartbeat::run(self.clone(), shutdown.clone()));
        let archiver = tokio::spawn(self.clone().archive_runner(shutdown.clone()));
        let relay = tokio::spawn(self.clone().relay(shutdown.clone()));
        let mut backoff = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            let label = format!("passare-imports worker {}", self.name);
            let conn = match queue::connect(&self.queue, &label).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "broker unreachable");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            tracing::info!(worker = %self.name, slots = self.concurrency, "worker connected to the broker");
            backoff = Duration::from_millis(200);
            self.activity.set_connected(true);
            self.serve_connection(&conn, &shutdown).await;
            self.activity.set_connected(false);
            let _ = conn.close(200, "worker stopping".into()).await;
            if !shutdown.is_cancelled() {
                tracing::warn!("broker connection lost; reconnecting");
                tokio::time::sleep(backoff).await;
            }
        }
        let _ = retention.await;
        let _ = analyses.await;
        let _ = heartbeat.await;
        let _ = archiver.await;
        let _ = relay.await;
        tracing::info!(worker = %self.name, "worker stopped");
        Ok(())
    }

    /// Runs the slots and the sweep on one broker connection until it is
    /// lost or the worker stops. A slot whose channel closed is replaced
    /// while the connection lives; when the connection is gone, the others
    /// finish their chunk and the cycle ends.
    async fn serve_connection(&self, conn: &queue::Connection, shutdown: &CancellationToken) {
        if let Err(e) = self.move_topology(conn).await {
            // The old queues stay until a later connection tries again; the
            // sweep announces waiting work meanwhile.
            tracing::warn!(error = %e, "moving the broker to the shared notice queue failed");
        }
        let cycle = shutdown.child_token();
        let mut slots = JoinSet::new();
        let mut sweep = None;
        if let Ok(channel) = WorkChannel::open(self.queue.clone(), conn).await {
            let worker = self.clone();
            let stop = cycle.clone();
            sweep = Some(tokio::spawn(
                async move { worker.sweep(channel, stop).await },
            ));
        }
        for slot in 0..self.concurrency {
            self.spawn_slot(&mut slots, conn, slot, &cycle).await;
        }
        while let Some(ended) = slots.join_next().await {
            if let Ok((slot, Err(e))) = &ended {
                tracing::warn!(slot, error = %e, "worker slot ended");
            }
            if let Ok((slot, _)) = ended
                && !shutdown.is_cancelled()
                && conn.status().connected()
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.spawn_slot(&mut slots, conn, slot, &cycle).await;
            }
        }
        cycle.cancel();
        if let Some(sweep) = sweep {
            let _ = sweep.await;
        }
    }

    async fn spawn_slot(
        &self,
        slots: &mut JoinSet<(usize, Result<(), QueueError>)>,
        conn: &queue::Connection,
        slot: usize,
        stop: &CancellationToken,
    ) {
        match WorkChannel::open(self.queue.clone(), conn).await {
            Ok(channel) => {
                let worker = self.clone();
                let stop = stop.clone();
                slots.spawn(async move { (slot, worker.run_slot(slot, channel, stop).await) });
            }
            Err(e) => tracing::warn!(slot, error = %e, "opening a worker channel failed"),
        }
    }
}
