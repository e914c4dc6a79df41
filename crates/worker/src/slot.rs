//! A worker slot and the sweep: a slot takes "organization ready" notices
//! one at a time and drains the organization each names; the sweep
//! re-announces organizations whose chunks have waited, so a lost notice,
//! an unpublished message or a worker that died never leaves one stuck.

use chrono::{DateTime, Utc};
use passare_imports_queue::{self as queue, QueueError, WorkChannel};
use passare_imports_store::{chunks, turns};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Worker;
use crate::drain::Drained;

impl Worker {
    pub(crate) async fn run_slot(
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
                Some(notice) if turns::is_redundant(&self.db, &notice).await => {
                    tracing::debug!(org_id = notice.organization_id(), turn = ?notice.turn(), "dropping a notice a drain has answered since");
                }
                Some(notice) => {
                    let org = notice.organization_id();
                    match self
                        .drain(&channel, org, &shutdown)
                        .instrument(drain_span(&delivery, org))
                        .await
                    {
                        Drained::HandBack | Drained::Paused | Drained::Busy => {}
                        Drained::WakeAt(at) => self.wake_later(&channel, org, at, &shutdown),
                    }
                }
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

    /// Every `sweep_every`, re-announces the organizations whose chunks have
    /// waited a while: a notice dropped while another worker held the lease,
    /// a message the broker never took, a worker that died with its lease —
    /// none of them leaves an organization stuck.
    pub(crate) async fn sweep(&self, channel: WorkChannel, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.sweep_every) => {}
            }
            let waiting = match self.db.conn().await {
                Ok(mut conn) => {
                    chunks::waiting_organizations(&mut conn, self.sweep_every, None).await
                }
                Err(e) => Err(e),
            };
            match waiting {
                Ok(orgs) => self.hand_back(&channel, &orgs).await,
                Err(e) => tracing::warn!(error = %e, "sweep could not read waiting chunks"),
            }
            if !channel.is_open() {
                break;
            }
        }
        channel.close().await;
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
        let (channel, shutdown, db) = (channel.clone(), shutdown.clone(), self.db.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(wait) => {
                    for notice in turns::announcing(&db, &[org]).await {
                        if let Err(e) = channel.notify_ready(&notice).await {
                            tracing::debug!(org_id = org, error = %e, "announcing a retry failed; the sweep will");
                        }
                    }
                }
            }
        });
    }

    /// Announces the organizations again, for any worker slot to drain.
    pub(crate) async fn hand_back(&self, channel: &WorkChannel, orgs: &[i64]) {
        for notice in turns::announcing(&self.db, orgs).await {
            if let Err(e) = channel.notify_ready(&notice).await {
                let org = notice.organization_id();
                tracing::warn!(org_id = org, error = %e, "re-announcing the organization failed");
            }
        }
    }
}

/// The span of a drain: a child of the trace of the call whose notice woke
/// it (the notice's headers carry its context), if any.
fn drain_span(delivery: &queue::Delivery, org: i64) -> tracing::Span {
    let span = tracing::info_span!(
        "drain",
        otel.kind = "consumer",
        org_id = org,
        trace_id = tracing::field::Empty,
    );
    let carrier = queue::trace_headers(delivery);
    passare_imports_app::observability::traces::continue_trace(&span, &carrier);
    span
}
