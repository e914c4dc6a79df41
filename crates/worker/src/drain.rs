//! Draining one organization under its lease: first the rollback of an
//! all-or-nothing import that failed or was stopped, a batch at a time; then
//! one chunk per message taken from the organization's queue, in the
//! database's order, until nothing is left, the pause switch holds, the next
//! chunk waits for its retry, or the time slice ends.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use passare_imports_queue::WorkChannel;
use passare_imports_store::load::{self, RollbackStep};
use passare_imports_store::{chunks, locks, pauses};
use tokio_util::sync::CancellationToken;

use crate::Step;
use crate::Worker;

/// Why a drain ended.
pub(crate) enum Drained {
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

/// What the drain does after one look at the organization.
enum Flow {
    Go,
    /// Stop draining, after waiting this long when given.
    Stop(Drained, Option<Duration>),
}

impl Worker {
    /// Loads an organization's chunks while holding its drain lease: one
    /// chunk per message taken from the organization's queue, and chunks
    /// still queued in the database when the queue is empty (their message
    /// was lost). Stops when the organization is paused, when its next chunk
    /// waits for a retry, when nothing is left, or after `drain_max`.
    pub(crate) async fn drain(
        &self,
        channel: &WorkChannel,
        org: i64,
        shutdown: &CancellationToken,
    ) -> Drained {
        let mut lease = match self.db.conn().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(org_id = org, error = %e, "no database connection for the drain lease");
                return Drained::HandBack;
            }
        };
        match locks::try_drain(&mut lease, org).await {
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
        let (ended, pause) = loop {
            if shutdown.is_cancelled() || Instant::now() >= deadline || !channel.is_open() {
                break (Drained::HandBack, None);
            }
            if let Flow::Stop(ended, pause) = self.drain_one(channel, org).await {
                break (ended, pause);
            }
        };
        if let Some(wait) = pause {
            tokio::time::sleep(wait).await;
        }
        if locks::release_drain(&mut lease, org).await.is_err() {
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

    /// One step of a drain: checks the pause switch, finds the
    /// organization's next chunk, takes a message for it and loads it.
    async fn drain_one(&self, channel: &WorkChannel, org: i64) -> Flow {
        let later = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!(org_id = org, error = %e, "{what} failed");
            Flow::Stop(Drained::HandBack, Some(Duration::from_secs(1)))
        };
        let mut conn = match self.db.conn().await {
            Ok(conn) => conn,
            Err(e) => return later("getting a database connection", &e),
        };
        // The pause switch: no new chunk starts while it holds.
        match pauses::holding(&mut conn, org).await {
            Ok(None) => {}
            Ok(Some(p)) => {
                tracing::info!(org_id = org, reason = %p.reason, "organization paused; its chunks wait");
                return Flow::Stop(Drained::Paused, None);
            }
            Err(e) => return later("reading the pause switch", &e),
        }
        // An all-or-nothing import that failed or was stopped is put back,
        // a batch at a time, before anything else of the organization loads.
        let batch = load::roll_back_batch(
            &mut conn,
            org,
            self.rollback_batch,
            Some(self.chunk_timeout),
        );
        match batch.await {
            Ok(None) => {}
            Ok(Some(RollbackStep::Progress { import_id, records })) => {
                tracing::debug!(org_id = org, %import_id, records, "rollback batch");
                return Flow::Go;
            }
            Ok(Some(RollbackStep::Finished {
                import_id,
                state,
                records,
            })) => {
                tracing::info!(org_id = org, %import_id, records, state = %state, "rollback finished");
                return Flow::Go;
            }
            Err(e) => return later("a rollback batch", &e),
        }
        let next = match chunks::next_pending(&mut conn, org).await {
            Ok(next) => next,
            Err(e) => return later("finding the next chunk", &e),
        };
        drop(conn);
        let Some((chunk_id, not_before)) = next else {
            // Nothing left to load: what the queue still holds are
            // duplicates, or messages of chunks loaded meanwhile.
            return match channel.take_chunk(org).await {
                Ok(Some(t)) => {
                    let _ = t.ack().await;
                    Flow::Go
                }
                Ok(None) => Flow::Stop(Drained::HandBack, None),
                Err(e) => later("taking a chunk message", &e),
            };
        };
        if let Some(at) = not_before.filter(|at| *at > Utc::now()) {
            return Flow::Stop(Drained::WakeAt(at), None);
        }
        let taken = match channel.take_chunk(org).await {
            Ok(Some(t)) if t.message.is_err() => {
                tracing::error!(org_id = org, "dead-lettering an unreadable chunk message");
                let _ = t.dead_letter().await;
                return Flow::Go;
            }
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(org_id = org, error = %e, "taking a chunk message failed");
                return Flow::Stop(Drained::HandBack, None);
            }
        };
        match self.load(channel, chunk_id, taken).await {
            Step::Next => Flow::Go,
            Step::Pause(wait) => Flow::Stop(Drained::HandBack, Some(wait)),
            Step::WakeAt(at) => Flow::Stop(Drained::WakeAt(at), None),
        }
    }
}
