//! The chunk worker. Each slot consumes "organization ready" notices; for a
//! notice it takes the organization's drain lease (a PostgreSQL session
//! advisory lock) and loads that organization's chunks one at a time, in the
//! order the database gives (imports by start, files by position, chunks by
//! sequence), one per message taken from the organization's queue, until
//! nothing is left. The write of every chunk also takes the
//! organization's transaction-scoped write fence, so the guarantee holds even
//! when a worker lost its lease or the broker redelivered a chunk still being
//! written. See docs/per-organization-concurrency.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use passare_imports_domain::chunk::{ChunkLayout, parse_chunk};
use passare_imports_queue::{self as queue, QueueConfig, QueueError, TakenChunk, WorkChannel};
use passare_imports_storage::{FileStore, LocalFileStore, StorageError};
use passare_imports_store::loader::{self, ChunkOutcome, ChunkWrite};
use passare_imports_store::{Db, StoreError, repo};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// `host:pid`, recorded on every chunk a process loads.
pub fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    format!("{host}:{}", std::process::id())
}

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("parsing the chunk: {0}")]
    Parse(String),
}

impl ChunkError {
    fn is_transient(&self) -> bool {
        match self {
            ChunkError::Store(e) => e.is_transient(),
            ChunkError::Storage(StorageError::Io { .. }) => true,
            _ => false,
        }
    }

    /// What users are told; the cause itself is only logged.
    fn public_reason(&self) -> &'static str {
        match self {
            ChunkError::Storage(StorageError::NotFound(_) | StorageError::Truncated { .. }) => {
                "the stored file is missing or shorter than when it was uploaded"
            }
            ChunkError::Parse(_) => "the chunk's bytes could not be read as the file's format",
            _ => "the chunk could not be loaded; the service logged the cause",
        }
    }
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
    /// How often waiting organizations are re-announced.
    pub sweep_every: Duration,
}

impl Worker {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            db: Db::connect(&config.database_url, config.database_max_connections).await?,
            files: Arc::new(LocalFileStore::new(&config.storage_dir).await?),
            queue: config.queue(),
            name: worker_name(),
            concurrency: config.worker_concurrency,
            drain_max: Duration::from_secs(config.worker_drain_max_secs.max(1)),
            sweep_every: Duration::from_secs(config.worker_sweep_secs.max(1)),
        })
    }

    /// Runs until `shutdown`: connects to the broker, runs the slots and the
    /// sweep, and reconnects with backoff whenever the connection is lost. On
    /// shutdown the chunk in hand is finished; every other message stays with
    /// the broker.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut backoff = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            let conn = match queue::connect(
                &self.queue,
                &format!("passare-imports worker {}", self.name),
            )
            .await
            {
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
            let cycle = shutdown.child_token();
            let mut slots = tokio::task::JoinSet::new();
            let mut sweep = None;
            if let Ok(channel) = WorkChannel::open(self.queue.clone(), &conn).await {
                let worker = self.clone();
                let stop = cycle.clone();
                sweep = Some(tokio::spawn(
                    async move { worker.sweep(channel, stop).await },
                ));
            }
            for slot in 0..self.concurrency {
                self.spawn_slot(&mut slots, &conn, slot, &cycle).await;
            }
            // A slot whose channel closed is replaced while the connection
            // lives; when the connection is gone, the others finish their
            // chunk and the cycle starts over.
            while let Some(ended) = slots.join_next().await {
                if let Ok((slot, Err(e))) = &ended {
                    tracing::warn!(slot, error = %e, "worker slot ended");
                }
                if let Ok((slot, _)) = ended
                    && !shutdown.is_cancelled()
                    && conn.status().connected()
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    self.spawn_slot(&mut slots, &conn, slot, &cycle).await;
                }
            }
            cycle.cancel();
            if let Some(sweep) = sweep {
                let _ = sweep.await;
            }
            let _ = conn.close(200, "worker stopping".into()).await;
            if !shutdown.is_cancelled() {
                tracing::warn!("broker connection lost; reconnecting");
                tokio::time::sleep(backoff).await;
            }
        }
        tracing::info!(worker = %self.name, "worker stopped");
        Ok(())
    }

    async fn spawn_slot(
        &self,
        slots: &mut tokio::task::JoinSet<(usize, Result<(), QueueError>)>,
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

    /// Every `sweep_every`, re-announces the organizations whose chunks have
    /// waited a while: a notice dropped while another worker held the lease,
    /// a message the broker never took, a worker that died with its lease —
    /// none of them leaves an organization stuck.
    async fn sweep(&self, channel: WorkChannel, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.sweep_every) => {}
            }
            let orgs = match repo::organizations_with_waiting_chunks(
                self.db.orm(),
                self.sweep_every,
            )
            .await
            {
                Ok(orgs) => orgs,
                Err(e) => {
                    tracing::warn!(error = %e, "sweep could not read waiting chunks");
                    continue;
                }
            };
            for org in orgs {
                self.hand_back(&channel, org).await;
            }
            if !channel.is_open() {
                break;
            }
        }
        channel.close().await;
    }

    async fn run_slot(
        &self,
        slot: usize,
        channel: WorkChannel,
        shutdown: CancellationToken,
    ) -> Result<(), QueueError> {
        let tag = format!("{}#{slot}", self.name);
        let mut consumer = channel.consume_ready(&tag).await?;
        loop {
            let delivery = tokio::select! {
                _ = shutdown.cancelled() => break,
                d = queue::next_delivery(&mut consumer) => d,
            };
            let delivery = match delivery {
                None => break,
                Some(Err(e)) => return Err(e),
                Some(Ok(d)) => d,
            };
            match queue::parse_ready(&delivery) {
                Some(org) => self.drain(&channel, org, &shutdown).await,
                None => {
                    tracing::error!(data = %String::from_utf8_lossy(&delivery.data), "dropping an unreadable ready notice")
                }
            }
            let _ = delivery.ack(Default::default()).await;
            if !channel.is_open() {
                break;
            }
        }
        channel.close().await;
        Ok(())
    }

    /// Loads an organization's chunks, in database order, while holding its
    /// drain lease. Each message taken from the organization's queue leads to
    /// one load; when the queue is empty, chunks still queued in the database
    /// (their message was lost) are loaded too.
    async fn drain(&self, channel: &WorkChannel, org: i64, shutdown: &CancellationToken) {
        let mut lease = match self.db.pool().acquire().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(org_id = org, error = %e, "no database connection for the drain lease");
                return;
            }
        };
        let got: Result<bool, _> = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtextextended('passare_imports.drain:' || $1::text, 0))",
        )
        .bind(org)
        .fetch_one(&mut *lease)
        .await;
        match got {
            Ok(true) => {}
            // Another worker drains this organization; it will see our chunks,
            // and the sweep covers the case where it dies first.
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(org_id = org, error = %e, "taking the drain lease failed");
                return;
            }
        }
        let deadline = Instant::now() + self.drain_max;
        let mut pause = None;
        while !shutdown.is_cancelled() && Instant::now() < deadline && channel.is_open() {
            let taken = match channel.take_chunk(org).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(org_id = org, error = %e, "taking a chunk message failed");
                    break;
                }
            };
            let taken = match taken {
                Some(t) if t.message.is_err() => {
                    tracing::error!("dead-lettering an unreadable chunk message");
                    let _ = t.dead_letter().await;
                    continue;
                }
                other => other,
            };
            let next = match loader::next_pending_chunk(&self.db, org).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(org_id = org, error = %e, "finding the next chunk failed");
                    if let Some(t) = taken {
                        let _ = t.requeue().await;
                    }
                    pause = Some(Duration::from_secs(1));
                    break;
                }
            };
            let Some(chunk_id) = next else {
                // Nothing left to load: the message was a duplicate, or its
                // chunk was loaded while the message was delayed.
                match taken {
                    Some(t) => {
                        let _ = t.ack().await;
                        continue;
                    }
                    None => break,
                }
            };
            if let Err(wait) = self.load(chunk_id, taken).await {
                pause = Some(wait);
                break;
            }
        }
        if let Some(wait) = pause {
            tokio::time::sleep(wait).await;
        }
        let released: Result<bool, _> = sqlx::query_scalar(
            "SELECT pg_advisory_unlock(hashtextextended('passare_imports.drain:' || $1::text, 0))",
        )
        .bind(org)
        .fetch_one(&mut *lease)
        .await;
        if released.is_err() {
            // The session is broken; closing it releases the lock.
            lease.close_on_drop();
        }
        drop(lease);
        // Anything published after our last look, whose notice another worker
        // dropped while we held the lease, is announced again.
        match channel.org_depth(org).await {
            Ok(0) => {}
            Ok(_) => self.hand_back(channel, org).await,
            Err(e) => {
                tracing::warn!(org_id = org, error = %e, "checking the organization's queue failed")
            }
        }
    }

    async fn hand_back(&self, channel: &WorkChannel, org: i64) {
        if let Err(e) = channel.notify_ready(org).await {
            tracing::warn!(org_id = org, error = %e, "re-announcing the organization failed");
        }
    }

    /// Loads one chunk and settles the message that woke it, if any.
    /// `Err(wait)` asks the drain to stop and pause; the message went back to
    /// the queue.
    async fn load(&self, chunk_id: i64, taken: Option<TakenChunk>) -> Result<(), Duration> {
        let settle = |ok: bool| async move {
            if let Some(t) = taken {
                let _ = if ok { t.ack().await } else { t.requeue().await };
            }
        };
        match self.process_chunk(chunk_id).await {
            Ok(ChunkOutcome::NotYourTurn) => {
                tracing::info!(
                    chunk_id,
                    "an earlier chunk of the organization is pending; retrying"
                );
                settle(false).await;
                Err(Duration::from_millis(250))
            }
            Ok(outcome) => {
                tracing::debug!(chunk_id, ?outcome, "chunk settled");
                settle(true).await;
                Ok(())
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(chunk_id, error = %e, "chunk failed for a transient reason; will retry");
                settle(false).await;
                Err(Duration::from_secs(1))
            }
            Err(e) => {
                tracing::error!(chunk_id, error = %e, "chunk cannot be loaded");
                match loader::fail_chunk(&self.db, chunk_id, e.public_reason()).await {
                    Ok(()) => {
                        settle(true).await;
                        Ok(())
                    }
                    Err(store) => {
                        tracing::warn!(chunk_id, error = %store, "recording the failure failed; will retry");
                        settle(false).await;
                        Err(Duration::from_secs(1))
                    }
                }
            }
        }
    }

    /// Reads, parses and writes one chunk. Safe to call for a chunk that is
    /// already done or whose import ended: it then has no effect.
    #[tracing::instrument(skip_all, fields(chunk_id))]
    pub async fn process_chunk(&self, chunk_id: i64) -> Result<ChunkOutcome, ChunkError> {
        let started_at = Utc::now();
        let Some(job) = loader::load_job(&self.db, chunk_id).await? else {
            return Ok(ChunkOutcome::Gone);
        };
        if job.chunk.state != "queued" {
            return Ok(ChunkOutcome::AlreadyDone);
        }
        let read_at = std::time::Instant::now();
        let bytes = self
            .files
            .read_range(
                job.data_key(),
                job.chunk.byte_start as u64,
                job.chunk.byte_end as u64,
            )
            .await?;
        let mapping = job.mapping.clone();
        let (def, delimiter, first_row) = (job.def, job.delimiter, job.chunk.first_row as u64);
        let today = Utc::now().date_naive();
        let mut parsed = tokio::task::spawn_blocking(move || {
            let layout = ChunkLayout {
                def,
                mapping: &mapping,
                delimiter,
                first_row,
                today,
            };
            parse_chunk(&bytes, layout).map_err(|e| ChunkError::Parse(e.to_string()))
        })
        .await
        .map_err(|e| ChunkError::Parse(e.to_string()))??;
        // References resolve against what is stored: earlier files of the
        // import were loaded before this one (files load in dependency order).
        loader::check_against_stored(&self.db, job.import.organization_id, def, &mut parsed, None)
            .await?;
        loader::check_repeated_in_import(&self.db, loader::Target::of(&job), &mut parsed).await?;
        let parsed_at = std::time::Instant::now();
        let outcome = loader::write_chunk(
            &self.db,
            ChunkWrite {
                job: &job,
                parsed: &parsed,
                started_at,
                worker: &self.name,
            },
        )
        .await?;
        tracing::info!(
            import_id = %job.import.id, org_id = job.import.organization_id, file_id = %job.file.id,
            chunk = job.chunk.seq, ?outcome,
            read_parse_ms = (parsed_at - read_at).as_millis() as u64,
            write_ms = parsed_at.elapsed().as_millis() as u64,
            "chunk processed"
        );
        Ok(outcome)
    }
}
