//! Draining one organization under its lease: first the rollback of an
//! all-or-nothing import that failed or was stopped, a batch at a time; then
//! its chunks, one at a time in the database's order, until nothing is left,
//! the pause switch holds, the next chunk waits for its retry, or the time
//! slice ends. The notice that woke the drain is all the broker says: the
//! chunks, their order and their state are in PostgreSQL.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use passare_imports_queue::WorkChannel;
use passare_imports_store::load::{self, RollbackStep};
use passare_imports_store::{chunks, locks, pauses, turns, workers};
use tokio_util::sync::CancellationToken;

use crate::Step;
use crate::Worker;
use crate::chunk::ReadAhead;

/// Why a drain ended.
pub(crate) enum Drained {
    /// Nothing is left, the time slice ran out, or the worker stops: hand the
    /// organization back if it still has work.
    HandBack,
    /// The organization is paused: its chunks wait for the resume.
    Paused,
    /// Another worker holds the organization's drain lease and will see its
    /// chunks.
    Busy,
    /// The next chunk waits for its retry time.
    WakeAt(DateTime<Utc>),
}

/// Smallest rollback batch: a batch that outlasts the chunk timeout is tried
/// again a quarter the size, down to this (the database is slow, not the
/// rollback too large); batches that pass grow back to the configured size.
const MIN_ROLLBACK_BATCH: i64 = 10;

/// What the drain does after one look at the organization.
enum Flow {
    Go,
    /// Stop draining, after waiting this long when given.
    Stop(Drained, Option<Duration>),
}

impl Worker {
    /// Loads an organization's chunks while holding its drain lease, in the
    /// database's order. Stops when the organization is paused, when its next
    /// chunk waits for a retry, when nothing is left, or after `drain_max`
    /// (then the organization goes to the back of the notice queue, behind
    /// every other organization waiting: a fair share of the workers).
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
        if let Err(e) = workers::drain_taken(&mut lease, org, &self.name).await {
            tracing::debug!(org_id = org, error = %e, "recording the drain for the monitor failed");
        }
        let _busy = self.activity.busy();
        let deadline = Instant::now() + self.drain_max;
        let mut rollback_batch = self.rollback_batch;
        let mut read_ahead = None;
        let (ended, pause) = loop {
            if shutdown.is_cancelled() || Instant::now() >= deadline || !channel.is_open() {
                break (Drained::HandBack, None);
            }
            let step = self.drain_one(channel, org, &mut rollback_batch, &mut read_ahead);
            if let Flow::Stop(ended, pause) = step.await {
                break (ended, pause);
            }
        };
        if let Some(wait) = pause {
            tokio::time::sleep(wait).await;
        }
        if let Err(e) = workers::drain_released(&mut lease, org, &self.name).await {
            tracing::debug!(org_id = org, error = %e, "recording the drain's end failed");
        }
        if locks::release_drain(&mut lease, org).await.is_err() {
            // The session is broken; closing it releases the lock.
            lease.close_on_drop();
        }
        drop(lease);
        // The drain counts as ended before it looks for work left, so a notice
        // published before the count went up is answered by that look (and
        // dropped by whichever worker receives it), and one published after
        // carries the new count.
        let mut conn = match self.db.conn().await {
            Ok(conn) => Some(conn),
            Err(e) => {
                tracing::warn!(org_id = org, error = %e, "no database connection after the drain");
                None
            }
        };
        if let Some(conn) = conn.as_mut()
            && let Err(e) = turns::drain_ended(conn, org).await
        {
            tracing::debug!(org_id = org, error = %e, "counting the drain's end failed");
        }
        if let (Drained::HandBack, Some(mut conn)) = (&ended, conn) {
            // Work left, or started after our last look (whose notice another
            // worker dropped while we held the lease): announce it again. Read
            // after the lease is released, so nothing committed before the
            // read is missed and anything after it has a notice of its own.
            let left = chunks::waiting_organizations(&mut conn, Duration::ZERO, Some(org)).await;
            drop(conn);
            match left {
                Ok(orgs) if orgs.is_empty() => {}
                Ok(orgs) => self.hand_back(channel, &orgs).await,
                // The sweep announces it if it has work.
                Err(e) => tracing::warn!(org_id = org, error = %e, "checking for work left failed"),
            }
        }
        ended
    }

    /// One step of a drain: checks the pause switch, puts back a batch of a
    /// rollback, or finds the organization's next chunk and loads it.
    async fn drain_one(
        &self,
        channel: &WorkChannel,
        org: i64,
        rollback_batch: &mut i64,
        read_ahead: &mut Option<ReadAhead>,
    ) -> Flow {
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
        let rows = *rollback_batch;
        match load::roll_back_batch(&mut conn, org, rows, Some(self.chunk_timeout)).await {
            Ok(None) => {}
            Ok(Some(RollbackStep::Progress { import_id, records })) => {
                tracing::debug!(org_id = org, %import_id, records, batch = rows, "rollback batch");
                *rollback_batch = (rows * 2).min(self.rollback_batch);
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
            Err(e) if e.kind() == "timeout" && rows > MIN_ROLLBACK_BATCH => {
                *rollback_batch = (rows / 4).max(MIN_ROLLBACK_BATCH);
                tracing::warn!(
                    org_id = org,
                    batch = rows,
                    next = *rollback_batch,
                    "a rollback batch outlasted the chunk timeout; trying a smaller one"
                );
                return Flow::Go;
            }
            Err(e) => return later("a rollback batch", &e),
        }
        let next = match chunks::next_pending(&mut conn, org).await {
            Ok(next) => next,
            Err(e) => return later("finding the next chunk", &e),
        };
        let Some(&(chunk_id, not_before)) = next.first() else {
            return Flow::Stop(Drained::HandBack, None);
        };
        if let Some(at) = not_before.filter(|at| *at > Utc::now()) {
            return Flow::Stop(Drained::WakeAt(at), None);
        }
        // The chunk after it is read and parsed while this one is checked
        // and written (the read-ahead of the previous step, if it was this
        // chunk's, is used by its attempt).
        let ahead = std::mem::take(read_ahead);
        if let Some(&(after, None)) = next.get(1).filter(|_| self.read_ahead) {
            match load::load_job(&mut conn, after).await {
                Ok(Some(job)) => *read_ahead = Some(ReadAhead::start(self.files.clone(), job)),
                Ok(None) => {}
                Err(e) => tracing::debug!(org_id = org, error = %e, "no read-ahead"),
            }
        }
        if let Err(e) = workers::chunk_taken(&mut conn, org, &self.name, chunk_id).await {
            tracing::debug!(org_id = org, error = %e, "recording the chunk for the monitor failed");
        }
        drop(conn);
        match self.load(channel, chunk_id, ahead).await {
            Step::Next => Flow::Go,
            Step::Pause(wait) => Flow::Stop(Drained::HandBack, Some(wait)),
            Step::WakeAt(at) => Flow::Stop(Drained::WakeAt(at), None),
        }
    }
}
