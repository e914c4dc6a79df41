//! The record events' relay (docs/record-events.md): one worker at a time
//! (an advisory lock held on a session of its own; the others stand by)
//! publishes the outbox in commit order to the records exchange — one
//! message per outbox row, a chunk's events of one outcome — confirmed, then
//! deletes what the broker confirmed. Woken by a PostgreSQL notice when
//! a write adds events, and every second regardless. While writes keep
//! adding events (a load's chunks, one after the other) it waits for them
//! to pause, at most [`LATEST`], and then publishes what gathered: the
//! relay's reads, publishing and deletes take the two cores from the load
//! as little as they can while it runs. A lost broker or
//! database connection ends the round; the events stay in the outbox and
//! the next round publishes them again (consumers de-duplicate by event id).

use std::time::Duration;

use passare_imports_queue::records::{OutgoingEvent, RecordChannel};
use passare_imports_store::analysis_jobs::Waiting;
use passare_imports_store::events::{self, StoredBatch};
use passare_imports_store::locks;
use tokio_util::sync::CancellationToken;

use crate::Worker;

/// Outbox rows (one chunk's events of one outcome each, about 300 bytes a
/// record) per confirmed round...
const BATCH: i64 = 10;
/// ...and records per round, whatever the chunk size: the round's payloads
/// (about 6 MB here) are held while they are published, so the relay's
/// memory does not grow with `IMPORTS_CHUNK_ROWS`. A batch larger than this
/// goes alone.
const ROUND_EVENTS: i64 = 20_000;
/// How long writes must add no events before the relay publishes...
const QUIET: Duration = Duration::from_millis(500);
/// ...and the longest it waits for that once events are ready.
const LATEST: Duration = Duration::from_secs(10);
/// Longest wait between two looks at the outbox.
const POLL: Duration = Duration::from_secs(1);
/// Wait before trying again after a failure, or for the lock.
const STANDBY: Duration = Duration::from_secs(2);

impl Worker {
    /// Until `shutdown`: relays record events while this worker holds the
    /// relay lock, standing by while another does.
    pub(crate) async fn relay(self, shutdown: CancellationToken) {
        if !self.record_events {
            return;
        }
        while !shutdown.is_cancelled() {
            if let Err(e) = self.relay_round(&shutdown).await {
                tracing::warn!(error = %e, "record event relay interrupted; the outbox keeps the events");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(STANDBY) => {}
            }
        }
    }

    /// One round: takes the lock (or returns), connects to the broker, and
    /// publishes until something fails or the worker stops.
    async fn relay_round(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut lock = self.db.conn().await?;
        if !locks::try_relay(&mut lock).await? {
            return Ok(());
        }
        let relayed = self.relay_holding_lock(shutdown).await;
        // Closing the session releases the lock, whatever state it is in.
        lock.close_on_drop();
        relayed
    }

    async fn relay_holding_lock(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let label = format!("passare-imports worker {} record events", self.name);
        let conn = passare_imports_queue::connect(&self.queue, &label).await?;
        let channel = RecordChannel::open(&self.queue, &conn).await?;
        let mut notices = Waiting::listen_to(&self.db, events::CHANNEL).await.ok();
        tracing::info!(worker = %self.name, "relaying record events");
        let result = loop {
            if shutdown.is_cancelled() {
                break Ok(());
            }
            let mut conn = self.db.conn().await?;
            let ready = events::ready(&mut conn, BATCH, ROUND_EVENTS).await;
            // The round's payloads grew the connection's read buffer.
            passare_imports_store::sqlx::Connection::shrink_buffers(&mut *conn);
            drop(conn);
            let events::Ready {
                batches: batch,
                more,
            } = ready?;
            if batch.is_empty() {
                let notice = async {
                    match notices.as_mut() {
                        Some(n) => n.next().await.is_ok(),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => break Ok(()),
                    _ = notice => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            } else {
                if let Err(e) = self.publish(&channel, &batch).await {
                    break Err(e);
                }
                if more {
                    // A backlog: publish on.
                    continue;
                }
            }
            settle(notices.as_mut(), shutdown).await;
        };
        let _ = conn.close(200, "relay stopping".into()).await;
        result
    }

    async fn publish(&self, channel: &RecordChannel, batch: &[StoredBatch]) -> anyhow::Result<()> {
        let outgoing: Vec<OutgoingEvent<'_>> = batch
            .iter()
            .map(|b| OutgoingEvent {
                routing_key: b.routing_key(),
                message_id: b.batch_id.to_string(),
                body: &b.payload,
            })
            .collect();
        channel.publish(&outgoing).await?;
        let ids: Vec<i64> = batch.iter().map(|b| b.id).collect();
        events::published(&mut *self.db.conn().await?, &ids).await?;
        let records: u64 = batch.iter().map(|b| b.events.max(0) as u64).sum();
        metrics::counter!(passare_imports_app::observability::names::RECORD_EVENTS)
            .increment(records);
        Ok(())
    }
}

/// Waits until writes have added no events for [`QUIET`], at most
/// [`LATEST`]: a load's chunks notify one after the other, and their events
/// are published together once it pauses or ends. Without notices (the
/// listener could not connect), returns at once.
async fn settle(notices: Option<&mut Waiting>, shutdown: &CancellationToken) {
    let Some(notices) = notices else { return };
    let latest = tokio::time::Instant::now() + LATEST;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(latest) => return,
            _ = tokio::time::sleep(QUIET) => return,
            notice = notices.next() => if notice.is_err() { return },
        }
    }
}
