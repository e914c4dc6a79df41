//! Why a chunk attempt failed, and what the worker does about it: errors
//! are classified once (transient or permanent, and a stable kind), carry
//! the backtrace of where the worker met them, and decide between a retry
//! after a backoff and giving the chunk up by its import's policy (then
//! dead-lettered).

use std::backtrace::Backtrace;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use passare_imports_app::Config;
use passare_imports_app::app::host_name;
use passare_imports_app::observability::traces;
use passare_imports_domain::messages::{ChunkMessage, DeadChunk};
use passare_imports_queue::WorkChannel;
use passare_imports_storage::StorageError;
use passare_imports_store::failures::{self, NewFailure};
use passare_imports_store::imports;
use passare_imports_store::load::{self, GaveUp};
use passare_imports_store::{FailureOutcome, StoreError};
use tracing::Instrument;
use uuid::Uuid;

use crate::{Step, telemetry};

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
            ChunkError::Storage(e) => e.is_transient(),
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
            ChunkError::Storage(StorageError::Unavailable { .. }) => "storage_unavailable",
            ChunkError::Storage(_) => "storage_io",
            ChunkError::Parse(_) => "parse",
            ChunkError::Timeout(_) => "chunk_timeout",
        }
    }

    /// What users are told; the cause itself is for developers (logs and
    /// `ListChunkFailures`).
    pub(crate) fn public_reason(&self) -> &'static str {
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
    /// The import type's key (the metrics' `kind`).
    pub kind: &'static str,
    /// Failed attempts before this one.
    pub attempts_before: i32,
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

impl crate::Worker {
    /// Handles a failed attempt at a chunk. A transient failure is recorded
    /// and retried after a backoff (the chunk row keeps its place and gets a
    /// retry time); past the retry limit, or for a permanent failure, the
    /// chunk is given up by its import's policy and dead-lettered. Returns
    /// what the drain does next; a failure that could not be recorded is
    /// tried again shortly (the chunk is still the organization's next).
    pub(crate) async fn failed(
        &self,
        channel: &WorkChannel,
        chunk_id: i64,
        e: AttemptError,
    ) -> Step {
        let Some(of) = e.of else {
            // Not even the chunk's row could be read (the database is
            // unreachable): nothing can be recorded; try again shortly.
            tracing::warn!(chunk_id, error = %e, error_kind = e.error.error.kind(), "chunk could not be read; will retry");
            return Step::Pause(Duration::from_secs(1));
        };
        let failure = self.failure_record(chunk_id, &of, &e);
        tracing::warn!(
            import_id = %of.import_id, org_id = of.organization_id, file_id = %of.file_id,
            chunk = of.seq, chunk_id, attempt = failure.attempt, error_kind = %failure.error_kind,
            transient = failure.transient, outcome = failure.outcome.as_str(),
            retry_at = ?failure.retry_at, causes = ?failure.causes,
            "chunk attempt failed"
        );
        let recorded = match failure.retry_at {
            Some(at) => self.schedule_retry(&failure).await.map(|_| {
                telemetry::chunk(of.kind, "retried");
                Step::WakeAt(at)
            }),
            None => {
                let reason = e.error.error.public_reason();
                self.give_up(channel, &of, &failure, reason).await
            }
        };
        recorded.unwrap_or_else(|store| {
            tracing::warn!(chunk_id, error = %store, "recording the failure failed; will retry");
            Step::Pause(Duration::from_secs(1))
        })
    }

    async fn schedule_retry(&self, failure: &NewFailure) -> Result<bool, StoreError> {
        failures::schedule_retry(&mut *self.db.conn().await?, failure).await
    }

    /// Gives the chunk up by its import's policy, then dead-letters it.
    async fn give_up(
        &self,
        channel: &WorkChannel,
        of: &AttemptOf,
        failure: &NewFailure,
        reason: &str,
    ) -> Result<Step, StoreError> {
        let mut conn = self.db.conn().await?;
        let timeout = Some(self.chunk_timeout);
        let gave_up =
            load::give_up_chunk(&mut conn, failure.chunk_id, reason, failure, timeout).await?;
        tracing::error!(
            import_id = %of.import_id, org_id = of.organization_id, file_id = %of.file_id,
            chunk = of.seq, chunk_id = failure.chunk_id, attempt = failure.attempt,
            outcome = ?gave_up, "chunk given up"
        );
        if !matches!(gave_up, GaveUp::Nothing(_)) {
            telemetry::chunk(of.kind, "failed");
            // The import's trace, so the dead letter joins it (best effort).
            let traceparent = imports::trace_context(&mut conn, of.import_id)
                .await
                .ok()
                .flatten();
            self.dead_letter(channel, of, failure, traceparent.as_deref())
                .await;
        }
        Ok(Step::Next)
    }

    /// The record of a failed attempt: what failed, where the worker met
    /// it, and what happens next (a retry time while attempts remain).
    fn failure_record(&self, chunk_id: i64, of: &AttemptOf, e: &AttemptError) -> NewFailure {
        let attempt = (of.attempts_before + 1).max(1) as u32;
        let transient = e.error.error.is_transient();
        // Symbolizing takes a moment (long in debug builds): before the
        // retry time is set, so the wait is not eaten by it.
        let backtrace = e.error.backtrace.to_string();
        let failed_at = Utc::now();
        let retry_at = (transient && self.retry.retries(attempt)).then(|| {
            failed_at
                + chrono::Duration::from_std(self.retry.delay_after(attempt))
                    .unwrap_or_else(|_| chrono::Duration::seconds(60))
        });
        NewFailure {
            chunk_id,
            attempt: attempt as i32,
            error_kind: e.error.error.kind().to_string(),
            transient,
            message: e.error.error.to_string(),
            causes: e.causes(),
            backtrace,
            worker_host: host_name(),
            worker_pid: std::process::id() as i32,
            outcome: match (retry_at, transient) {
                (Some(_), _) => FailureOutcome::RetryScheduled,
                (None, true) => FailureOutcome::DeadLettered,
                (None, false) => FailureOutcome::Failed,
            },
            retry_at,
            read_started_at: e.read_started_at,
            write_started_at: e.write_started_at,
            failed_at,
        }
    }

    /// Publishes a chunk given up to the dead-letter queue for inspection;
    /// the database row is the record, so a failure to publish is logged.
    /// The message carries the import's trace context (`traceparent`, the
    /// call that started it) in its headers, under a span of its own.
    async fn dead_letter(
        &self,
        channel: &WorkChannel,
        of: &AttemptOf,
        failure: &NewFailure,
        traceparent: Option<&str>,
    ) {
        let chunk_id = failure.chunk_id;
        let dead = DeadChunk::V1 {
            chunk: ChunkMessage::V1 {
                chunk_id,
                import_id: of.import_id,
                file_id: of.file_id,
                organization_id: of.organization_id,
                seq: of.seq.max(0) as u32,
            },
            attempts: failure.attempt.max(0) as u32,
            error_kind: failure.error_kind.clone(),
            message: failure.message.clone(),
            worker: self.name.clone(),
        };
        let span = tracing::info_span!(
            "chunk.dead_letter",
            otel.kind = "producer",
            import_id = %of.import_id,
            org_id = of.organization_id,
            chunk = of.seq,
            chunk_id,
            trace_id = tracing::field::Empty,
        );
        traces::continue_traceparent(&span, traceparent);
        let trace = traces::carrier_of(&span);
        match channel.dead_letter(&dead, &trace).instrument(span).await {
            Ok(()) => telemetry::dead_lettered(of.kind),
            Err(q) => {
                tracing::warn!(chunk_id, error = %q, "publishing to the dead-letter queue failed; the failure is recorded in the database")
            }
        }
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
        let lost = ChunkError::Store(StoreError::Sqlx(
            passare_imports_store::sqlx::Error::PoolTimedOut,
        ));
        assert!(lost.is_transient());
        assert_eq!(lost.kind(), "database_busy");
    }

    #[test]
    fn a_traced_error_keeps_its_cause_chain_and_backtrace() {
        let io = std::io::Error::other("connection reset by peer");
        let e = AttemptError {
            error: ChunkError::Store(StoreError::Sqlx(passare_imports_store::sqlx::Error::Io(io)))
                .into(),
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
