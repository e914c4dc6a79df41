//! What a worker reports (docs/operations.md): its slots busy and idle, the
//! chunks it settles and their rows, each chunk's phase times, and whether it
//! can take work (`/readyz`: a broker connection, a database that answers,
//! not stopping).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use passare_imports_app::observability::{ProcessProbe, names};
use passare_imports_store::load::{ChunkCounts, ChunkOutcome};
use tokio_util::sync::CancellationToken;

use crate::Worker;

/// What the worker's slots are doing, shared by its tasks.
#[derive(Debug, Default)]
pub struct Activity {
    busy: AtomicUsize,
    connected: AtomicBool,
}

/// A slot draining an organization; idle again when dropped.
pub(crate) struct BusySlot(Arc<Activity>);

impl Activity {
    pub(crate) fn busy(self: &Arc<Self>) -> BusySlot {
        self.busy.fetch_add(1, Ordering::Relaxed);
        BusySlot(self.clone())
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }
}

impl Drop for BusySlot {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The phases of a chunk, timed separately.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    Read,
    Parse,
    Check,
    Write,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Read => "read",
            Phase::Parse => "parse",
            Phase::Check => "check",
            Phase::Write => "write",
        }
    }
}

pub(crate) fn phase(phase: Phase, took: Duration) {
    histogram!(names::CHUNK_PHASE_SECONDS, "phase" => phase.as_str()).record(took.as_secs_f64());
}

/// Counts a chunk's outcome and, when it was written, its rows.
pub(crate) fn settled(kind: &'static str, outcome: &ChunkOutcome) {
    let (label, counts) = match outcome {
        ChunkOutcome::Written(counts) => ("loaded", Some(counts)),
        ChunkOutcome::FailedImport(counts) => ("failed", Some(counts)),
        ChunkOutcome::Skipped => ("skipped", None),
        // Nothing happened to the chunk in this attempt.
        ChunkOutcome::AlreadyDone | ChunkOutcome::Gone | ChunkOutcome::NotYourTurn => return,
    };
    chunk(kind, label);
    if let Some(counts) = counts {
        rows(kind, counts);
    }
}

/// Counts a chunk by `outcome` (`loaded`, `failed`, `retried`, `skipped`).
pub(crate) fn chunk(kind: &'static str, outcome: &'static str) {
    counter!(names::CHUNKS, "kind" => kind, "outcome" => outcome).increment(1);
}

/// Counts the rows of a chunk by outcome.
pub(crate) fn rows(kind: &'static str, c: &ChunkCounts) {
    for (outcome, n) in [
        ("created", c.created),
        ("updated", c.updated),
        ("unchanged", c.unchanged),
        ("failed", c.failed),
        ("stale", c.stale),
    ] {
        counter!(names::ROWS, "kind" => kind, "outcome" => outcome).increment(n.max(0) as u64);
    }
}

pub(crate) fn dead_lettered(kind: &'static str) {
    counter!(names::DEAD_LETTERED, "kind" => kind).increment(1);
}

/// The worker's answer to the ops listener.
pub struct WorkerProbe {
    worker: Worker,
    shutdown: CancellationToken,
}

impl WorkerProbe {
    pub fn new(worker: Worker, shutdown: CancellationToken) -> Self {
        Self { worker, shutdown }
    }
}

#[async_trait::async_trait]
impl ProcessProbe for WorkerProbe {
    async fn ready(&self) -> Result<(), String> {
        if self.shutdown.is_cancelled() {
            return Err("stopping: finishing the chunks in hand".into());
        }
        if !self.worker.activity.connected.load(Ordering::Relaxed) {
            return Err("no broker connection (reconnecting)".into());
        }
        self.worker
            .db
            .ping()
            .await
            .map_err(|e| format!("the database does not answer: {e}"))
    }

    async fn refresh(&self) {
        let busy = self.worker.activity.busy.load(Ordering::Relaxed);
        let slots = self.worker.concurrency;
        gauge!(names::WORKER_SLOTS, "state" => "busy").set(busy as f64);
        gauge!(names::WORKER_SLOTS, "state" => "idle").set(slots.saturating_sub(busy) as f64);
    }
}
