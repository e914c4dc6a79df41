//! The chunk worker. Each slot consumes "organization ready" notices; for a
//! notice it takes the organization's drain lease (a PostgreSQL session
//! advisory lock) and loads that organization's chunks one at a time, in the
//! order the database gives (imports by start, files by position, chunks by
//! sequence), one per message taken from the organization's queue, until
//! nothing is left. The write of every chunk also takes the
//! organization's transaction-scoped write fence, so the guarantee holds even
//! when a worker lost its lease or the broker redelivered a chunk still being
//! written. See docs/per-organization-concurrency.md.

use std::backtrace::Backtrace;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use passare_imports_domain::chunk::{ChunkLayout, parse_chunk};
use passare_imports_domain::{ChunkMessage, DeadChunk};
use passare_imports_queue::{self as queue, QueueConfig, QueueError, TakenChunk, WorkChannel};
use passare_imports_storage::{FileStore, LocalFileStore, StorageError};
use passare_imports_store::failures::{self, NewFailure, Outcome};
use passare_imports_store::loader::{self, ChunkOutcome, ChunkWrite, GaveUp};
use passare_imports_store::{Db, StoreError, control, repo};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Config;

/// The host this process runs on.
pub fn worker_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

/// `host:pid`, recorded on every chunk a process loads.
pub fn worker_name() -> String {
    format!("{}:{}", worker_host(), std::process::id())
}

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("parsing the chunk: {0}")]
    Parse(String),
    #[error("the chunk was not loaded within {0:?}")]
    Timeout(Duration),
}

impl ChunkError {
    /// Whether another attempt may succeed: lost or busy connections,
    /// serialization failures, deadlocks, timeouts, storage I/O.
    pub fn is_transient(&self) -> bool {
        match self {
            ChunkError::Store(e) => e.is_transient(),
            ChunkError::Storage(StorageError::Io { .. }) => true,
            ChunkError::Timeout(_) => true,
            _ => false,
        }
    }

    /// A stable class of the error, for failure records and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ChunkError::Store(e) => e.kind(),
            ChunkError::Storage(StorageError::NotFound(_) | StorageError::Truncated { .. }) => {
                "storage_missing"
            }
            ChunkError::Storage(_) => "storage_io",
            ChunkError::Parse(_) => "parse",
            ChunkError::Timeout(_) => "chunk_timeout",
        }
    }

    /// What users are told; the cause itself is for developers (logs and
    /// `ListChunkFailures`).
    fn public_reason(&self) -> &'static str {
        match self {
            ChunkError::Storage(StorageError::NotFound(_) | StorageError::Truncated { .. }) => {
                "the stored file is missing or shorter than when it was uploaded"
            }
            ChunkError::Parse(_) => "the chunk's bytes could not be read as the file's format",
            e if e.is_transient() => {
                "the chunk kept failing for a transient reason (see the chunk failures)"
            }
            _ => "the chunk could not be loaded; see the chunk failures",
        }
    }
}

/// A chunk error with the backtrace of where the worker met it.
#[derive(Debug)]
pub struct Traced {
    pub error: ChunkError,
    pub backtrace: Backtrace,
}

impl From<ChunkError> for Traced {
    fn from(error: ChunkError) -> Self {
        Self {
            error,
            backtrace: Backtrace::force_capture(),
        }
    }
}

impl From<StoreError> for Traced {
    fn from(e: StoreError) -> Self {
        ChunkError::Store(e).into()
    }
}

impl From<StorageError> for Traced {
    fn from(e: StorageError) -> Self {
        ChunkError::Storage(e).into()
    }
}

/// The chunk an attempt was about, once its row was read.
#[derive(Debug, Clone, Copy)]
pub struct AttemptOf {
    pub import_id: Uuid,
    pub organization_id: i64,
    pub file_id: Uuid,
    pub seq: i32,
    /// Failed attempts before this one.
    pub attempts_before: i32,
}

/// How far an attempt got, and what it was about.
#[derive(Debug, Default)]
struct Stamps {
    of: Option<AttemptOf>,
    read_started_at: Option<DateTime<Utc>>,
    write_started_at: Option<DateTime<Utc>>,
}

/// A failed attempt at a chunk: the error with its backtrace, how far the
/// attempt got, and which chunk it was (unknown when even its row could not
/// be read).
#[derive(Debug, thiserror::Error)]
#[error("{}", .error.error)]
pub struct AttemptError {
    pub error: Traced,
    pub of: Option<AttemptOf>,
    pub read_started_at: Option<DateTime<Utc>>,
    pub write_started_at: Option<DateTime<Utc>>,
}

impl AttemptError {
    /// The error and its sources, outermost first.
    pub fn causes(&self) -> Vec<String> {
        let mut out = vec![self.error.error.to_string()];
        let mut next = std::error::Error::source(&self.error.error);
        while let Some(e) = next {
            let text = e.to_string();
            if out.last() != Some(&text) {
                out.push(text);
            }
            next = e.source();
        }
        out
    }
}

/// When to try a chunk again after a transient failure: exponential backoff
/// from `base`, doubling, capped at `max_delay`, with jitter (up to the same
/// again), for at most `max_attempts` attempts in all.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_attempts: config.retry_max_attempts,
            base: Duration::from_millis(config.retry_base_ms),
            max_delay: Duration::from_millis(config.retry_max_delay_ms),
        }
    }

    /// Whether another attempt follows failed attempt number `attempt` (1-based).
    pub fn retries(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        ExponentialBuilder::default()
            .with_min_delay(self.base)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.max_delay)
    }
}

/// What the drain does after a chunk.
enum Step {
    /// Go on with the next chunk.
    Next,
    /// Stop draining, wait this long, and hand the organization back.
    Pause(Duration),
    /// Stop draining; the organization's next chunk is due at this time.
    WakeAt(DateTime<Utc>),
}

/// Why a drain ended.
enum Drained {
    /// Nothing is left, the time slice ran out, or the worker stops: hand the
    /// organization back if its queue still holds messages.
    HandBack,
    /// The organization is paused: its chunks wait for the resume.
    Paused,
    /// Another worker holds the organization's drain lease and will see its
    /// chunks.
    Busy,
    /// The next chunk waits for its retry time.
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
    /// How often waiting organizations are re-announced.
    pub sweep_every: Duration,
    pub retry: RetryPolicy,
    /// Longest a chunk's write statement may take; an attempt as a whole may
    /// take twice as long.
    pub chunk_timeout: Duration,
    /// Days before an ended import's files and row-level results are deleted (0: never).
    pub retention_days: u64,
    pub retention_every: Duration,
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
            retry: RetryPolicy::from_config(config),
            chunk_timeout: Duration::from_millis(config.chunk_timeout_ms),
            retention_days: config.retention_days,
            retention_every: Duration::from_secs(config.retention_sweep_secs),
        })
    }

    /// Runs until `shutdown`: connects to the broker, runs the slots and the
    /// sweep, and reconnects with backoff whenever the connection is lost. On
    /// shutdown the chunk in hand is finished; every other message stays with
    /// the broker.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let retention = tokio::spawn(crate::retention::run(
            self.db.clone(),
            self.files.clone(),
            self.retention_days,
            self.retention_every,
            shutdown.clone(),
        ));
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
        let _ = retention.await;
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
                Some(org) => match self.drain(&channel, org, &shutdown).await {
                    Drained::HandBack | Drained::Paused | Drained::Busy => {}
                    Drained::WakeAt(at) => self.wake_later(&channel, org, at, &shutdown),
                },
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

    /// Announces the organization again once its next chunk is due. If this
    /// process stops first, the sweep of any worker announces it.
    fn wake_later(
        &self,
        channel: &WorkChannel,
        org: i64,
        at: DateTime<Utc>,
        shutdown: &CancellationToken,
    ) {
        let wait = (at - Utc::now()).to_std().unwrap_or_default();
        let (channel, shutdown) = (channel.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(wait) => {
                    if let Err(e) = channel.notify_ready(org).await {
                        tracing::debug!(org_id = org, error = %e, "announcing a retry failed; the sweep will");
                    }
                }
            }
        });
    }

    /// Loads an organization's chunks, in database order, while holding its
    /// drain lease: one chunk per message taken from the organization's
    /// queue, and chunks still queued in the database when the queue is empty
    /// (their message was lost). Stops when the organization is paused, when
    /// its next chunk waits for a retry, when nothing is left, or after
    /// `drain_max`.
    async fn drain(
        &self,
        channel: &WorkChannel,
        org: i64,
        shutdown: &CancellationToken,
    ) -> Drained {
        let mut lease = match self.db.pool().acquire().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(org_id = org, error = %e, "no database connection for the drain lease");
                return Drained::HandBack;
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
            Ok(false) => return Drained::Busy,
            Err(e) => {
                tracing::warn!(org_id = org, error = %e, "taking the drain lease failed");
                return Drained::HandBack;
            }
        }
        let deadline = Instant::now() + self.drain_max;
        let mut pause = None;
        let mut ended = Drained::HandBack;
        while !shutdown.is_cancelled() && Instant::now() < deadline && channel.is_open() {
            // The pause switch: no new chunk starts while it holds.
            match control::pause_of(&self.db, org).await {
                Ok(None) => {}
                Ok(Some(p)) => {
                    tracing::info!(org_id = org, reason = %p.reason, "organization paused; its chunks wait");
                    ended = Drained::Paused;
                    break;
                }
                Err(e) => {
                    tracing::warn!(org_id = org, error = %e, "reading the pause switch failed");
                    pause = Some(Duration::from_secs(1));
                    break;
                }
            }
            let next = match loader::next_pending_chunk(&self.db, org).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(org_id = org, error = %e, "finding the next chunk failed");
                    pause = Some(Duration::from_secs(1));
                    break;
                }
            };
            let Some((chunk_id, not_before)) = next else {
                // Nothing left to load: what the queue still holds are
                // duplicates, or messages of chunks loaded meanwhile.
                match channel.take_chunk(org).await {
                    Ok(Some(t)) => {
                        let _ = t.ack().await;
                        continue;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(org_id = org, error = %e, "taking a chunk message failed");
                        break;
                    }
                }
            };
            if let Some(at) = not_before.filter(|at| *at > Utc::now()) {
                ended = Drained::WakeAt(at);
                break;
            }
            let taken = match channel.take_chunk(org).await {
                Ok(Some(t)) if t.message.is_err() => {
                    tracing::error!(org_id = org, "dead-lettering an unreadable chunk message");
                    let _ = t.dead_letter().await;
                    continue;
                }
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(org_id = org, error = %e, "taking a chunk message failed");
                    break;
                }
            };
            match self.load(channel, chunk_id, taken).await {
                Step::Next => {}
                Step::Pause(wait) => {
                    pause = Some(wait);
                    break;
                }
                Step::WakeAt(at) => {
                    ended = Drained::WakeAt(at);
                    break;
                }
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
        if let Drained::HandBack = ended {
            // Anything published after our last look, whose notice another
            // worker dropped while we held the lease, is announced again.
            match channel.org_depth(org).await {
                Ok(0) => {}
                Ok(_) => self.hand_back(channel, org).await,
                Err(e) => {
                    tracing::warn!(org_id = org, error = %e, "checking the organization's queue failed")
                }
            }
        }
        ended
    }

    async fn hand_back(&self, channel: &WorkChannel, org: i64) {
        if let Err(e) = channel.notify_ready(org).await {
            tracing::warn!(org_id = org, error = %e, "re-announcing the organization failed");
        }
    }

    /// Loads one chunk and settles the message that woke it, if any. A
    /// transient failure is recorded and retried after a backoff (the
    /// message is acknowledged: the chunk row keeps its place and its retry
    /// time); past the retry limit, or for a permanent failure, the chunk is
    /// given up by its import's policy and dead-lettered.
    async fn load(&self, channel: &WorkChannel, chunk_id: i64, taken: Option<TakenChunk>) -> Step {
        let settle = |ok: bool| async move {
            if let Some(t) = taken {
                let _ = if ok { t.ack().await } else { t.requeue().await };
            }
        };
        let e = match self.process_chunk(chunk_id).await {
            Ok(ChunkOutcome::NotYourTurn) => {
                tracing::info!(
                    chunk_id,
                    "an earlier chunk of the organization is pending; retrying"
                );
                settle(false).await;
                return Step::Pause(Duration::from_millis(250));
            }
            Ok(outcome) => {
                tracing::debug!(chunk_id, ?outcome, "chunk settled");
                settle(true).await;
                return Step::Next;
            }
            Err(e) => e,
        };
        let Some(of) = e.of else {
            // Not even the chunk's row could be read (the database is
            // unreachable): nothing can be recorded; try again shortly.
            tracing::warn!(chunk_id, error = %e, error_kind = e.error.error.kind(), "chunk could not be read; will retry");
            settle(false).await;
            return Step::Pause(Duration::from_secs(1));
        };
        let attempt = (of.attempts_before + 1).max(1) as u32;
        let transient = e.error.error.is_transient();
        let mut failure = NewFailure {
            chunk_id,
            attempt: attempt as i32,
            error_kind: e.error.error.kind().to_string(),
            transient,
            message: e.error.error.to_string(),
            causes: e.causes(),
            // Symbolizing takes a moment (long in debug builds): before the
            // retry time is set, so the wait is not eaten by it.
            backtrace: e.error.backtrace.to_string(),
            worker_host: worker_host(),
            worker_pid: std::process::id() as i32,
            outcome: if transient {
                Outcome::DeadLettered
            } else {
                Outcome::Failed
            },
            retry_at: None,
            read_started_at: e.read_started_at,
            write_started_at: e.write_started_at,
        };
        if transient && self.retry.retries(attempt) {
            failure.outcome = Outcome::RetryScheduled;
            failure.retry_at = Some(
                Utc::now()
                    + chrono::Duration::from_std(self.retry.delay_after(attempt))
                        .unwrap_or_else(|_| chrono::Duration::seconds(60)),
            );
        }
        let (outcome, retry_at) = (failure.outcome, failure.retry_at);
        tracing::warn!(
            import_id = %of.import_id, org_id = of.organization_id, file_id = %of.file_id,
            chunk = of.seq, chunk_id, attempt, error_kind = %failure.error_kind, transient,
            outcome = outcome.as_str(), retry_at = ?retry_at, causes = ?failure.causes,
            "chunk attempt failed"
        );
        if let Some(at) = retry_at {
            return match failures::schedule_retry(&self.db, &failure).await {
                Ok(_) => {
                    settle(true).await;
                    Step::WakeAt(at)
                }
                Err(store) => {
                    tracing::warn!(chunk_id, error = %store, "recording the failure failed; will retry");
                    settle(false).await;
                    Step::Pause(Duration::from_secs(1))
                }
            };
        }
        match loader::give_up_chunk(
            &self.db,
            chunk_id,
            e.error.error.public_reason(),
            &failure,
            Some(self.chunk_timeout),
        )
        .await
        {
            Ok(gave_up) => {
                tracing::error!(
                    import_id = %of.import_id, org_id = of.organization_id, file_id = %of.file_id,
                    chunk = of.seq, chunk_id, attempt, outcome = ?gave_up, "chunk given up"
                );
                if !matches!(gave_up, GaveUp::Nothing(_)) {
                    let dead = DeadChunk::V1 {
                        chunk: ChunkMessage::V1 {
                            chunk_id,
                            import_id: of.import_id,
                            file_id: of.file_id,
                            organization_id: of.organization_id,
                            seq: of.seq.max(0) as u32,
                        },
                        attempts: attempt,
                        error_kind: failure.error_kind.clone(),
                        message: failure.message.clone(),
                        worker: self.name.clone(),
                    };
                    if let Err(q) = channel.dead_letter(&dead).await {
                        tracing::warn!(chunk_id, error = %q, "publishing to the dead-letter queue failed; the failure is recorded in the database");
                    }
                }
                settle(true).await;
                Step::Next
            }
            Err(store) => {
                tracing::warn!(chunk_id, error = %store, "recording the failure failed; will retry");
                settle(false).await;
                Step::Pause(Duration::from_secs(1))
            }
        }
    }

    /// Reads, parses and writes one chunk, within twice the chunk timeout.
    /// Safe to call for a chunk that is already done or whose import ended:
    /// it then has no effect. A failure says how far the attempt got.
    #[tracing::instrument(skip_all, fields(chunk_id))]
    pub async fn process_chunk(&self, chunk_id: i64) -> Result<ChunkOutcome, AttemptError> {
        let stamps = Mutex::new(Stamps::default());
        let limit = self.chunk_timeout * 2;
        let result = match tokio::time::timeout(limit, self.attempt(chunk_id, &stamps)).await {
            Ok(result) => result,
            Err(_) => Err(ChunkError::Timeout(limit).into()),
        };
        result.map_err(|error| {
            let s = stamps
                .lock()
                .map(|s| (s.of, s.read_started_at, s.write_started_at));
            let (of, read_started_at, write_started_at) = s.unwrap_or_default();
            AttemptError {
                error,
                of,
                read_started_at,
                write_started_at,
            }
        })
    }

    async fn attempt(&self, chunk_id: i64, stamps: &Mutex<Stamps>) -> Result<ChunkOutcome, Traced> {
        let stamp = |f: &dyn Fn(&mut Stamps)| {
            if let Ok(mut s) = stamps.lock() {
                f(&mut s);
            }
        };
        let started_at = Utc::now();
        let Some(job) = loader::load_job(&self.db, chunk_id).await? else {
            return Ok(ChunkOutcome::Gone);
        };
        if job.chunk.state != "queued" {
            return Ok(ChunkOutcome::AlreadyDone);
        }
        stamp(&|s| {
            s.of = Some(AttemptOf {
                import_id: job.import.id,
                organization_id: job.import.organization_id,
                file_id: job.file.id,
                seq: job.chunk.seq,
                attempts_before: job.chunk.attempts,
            });
            s.read_started_at = Some(Utc::now());
        });
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
        let row_numbers = job.row_numbers();
        let today = Utc::now().date_naive();
        let mut parsed = tokio::task::spawn_blocking(move || {
            let layout = ChunkLayout {
                def,
                mapping: &mapping,
                delimiter,
                first_row,
                row_numbers: row_numbers.as_deref(),
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
        stamp(&|s| s.write_started_at = Some(Utc::now()));
        let outcome = loader::write_chunk(
            &self.db,
            ChunkWrite {
                job: &job,
                parsed: &parsed,
                started_at,
                worker: &self.name,
                statement_timeout: Some(self.chunk_timeout),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_the_limit() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            max_delay: Duration::from_millis(1_000),
        };
        for attempt in 1..=6u32 {
            let unjittered = Duration::from_millis((100u64 << (attempt - 1)).min(1_000));
            let d = policy.delay_after(attempt);
            assert!(
                d >= unjittered && d <= unjittered * 2,
                "attempt {attempt}: {d:?} not within [{unjittered:?}, 2×]"
            );
        }
        assert!(policy.retries(4));
        assert!(!policy.retries(5), "the fifth failed attempt is the last");
    }

    #[test]
    fn transient_and_permanent_failures_are_told_apart() {
        let timeout = ChunkError::Timeout(Duration::from_secs(1));
        assert!(timeout.is_transient());
        assert_eq!(timeout.kind(), "chunk_timeout");
        let parse = ChunkError::Parse("bad bytes".into());
        assert!(!parse.is_transient());
        assert_eq!(parse.kind(), "parse");
        let missing = ChunkError::Storage(StorageError::NotFound("imports/x".into()));
        assert!(!missing.is_transient());
        assert_eq!(missing.kind(), "storage_missing");
        let lost = ChunkError::Store(StoreError::Sqlx(sqlx::Error::PoolTimedOut));
        assert!(lost.is_transient());
        assert_eq!(lost.kind(), "database_busy");
    }

    #[test]
    fn a_traced_error_keeps_its_cause_chain_and_backtrace() {
        let io = std::io::Error::other("connection reset by peer");
        let e = AttemptError {
            error: ChunkError::Store(StoreError::Sqlx(sqlx::Error::Io(io))).into(),
            of: None,
            read_started_at: None,
            write_started_at: None,
        };
        let causes = e.causes();
        assert!(
            causes.iter().any(|c| c.contains("connection reset")),
            "{causes:?}"
        );
        assert!(!e.error.backtrace.to_string().is_empty());
    }
}
