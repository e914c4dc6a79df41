//! The record events' relay (docs/record-events.md): one worker at a time
//! (an advisory lock held on a session of its own; the others stand by)
//! publishes the outbox in commit order to the records exchange, confirmed,
//! then deletes what the broker confirmed. Woken by a PostgreSQL notice when
//! a write adds events, and every second regardless. A lost broker or
//! database connection ends the round; the events stay in the outbox and
//! the next round publishes them again (consumers de-duplicate by event id).

use std::time::Duration;

use passare_imports_proto::events::v1 as ev;
use passare_imports_queue::records::{OutgoingEvent, RecordChannel};
use passare_imports_store::analysis_jobs::Waiting;
use passare_imports_store::events::{self, StoredEvent};
use passare_imports_store::locks;
use prost::Message;
use tokio_util::sync::CancellationToken;

use crate::Worker;

/// Events published per confirmed batch.
const BATCH: i64 = 1_000;
/// Longest wait between two looks at the outbox.
const POLL: Duration = Duration::from_secs(1);
/// Wait before trying again after a failure, or for the lock.
const STANDBY: Duration = Duration::from_secs(2);

/// The protobuf message of a stored event.
pub fn message(e: &StoredEvent) -> ev::RecordEvent {
    let def = passare_imports_domain::catalog::find(&e.import_type);
    let key_columns = def.map(|d| d.key_columns).unwrap_or_default();
    let values: Vec<String> = serde_json::from_value(e.record_key.clone()).unwrap_or_default();
    let key = values
        .into_iter()
        .enumerate()
        .map(|(i, value)| ev::KeyPart {
            column: key_columns.get(i).copied().unwrap_or_default().to_string(),
            value,
        })
        .collect();
    let changes = e
        .changes
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(column, v)| ev::ColumnValue {
                    column: column.clone(),
                    value: v.as_str().map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default();
    let outcome = match e.outcome.as_str() {
        "created" => ev::RecordOutcome::Created,
        _ => ev::RecordOutcome::Updated,
    };
    ev::RecordEvent {
        event_id: e.event_id.to_string(),
        organization_id: e.organization_id.to_string(),
        import_type: e.import_type.clone(),
        key,
        outcome: outcome as i32,
        import_id: e.import_id.to_string(),
        file_id: e.file_id.to_string(),
        row: e.row_number,
        attempt: e.attempt,
        changes,
        commit_time: Some(prost_types::Timestamp {
            seconds: e.committed_at.timestamp(),
            nanos: e.committed_at.timestamp_subsec_nanos() as i32,
        }),
    }
}

/// The routing key of an event: `{organization}.{import_type}.{outcome}`.
pub fn routing_key(e: &StoredEvent) -> String {
    format!("{}.{}.{}", e.organization_id, e.import_type, e.outcome)
}

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
            let batch = events::ready(&mut *self.db.conn().await?, BATCH).await?;
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
                continue;
            }
            if let Err(e) = self.publish(&channel, &batch).await {
                break Err(e);
            }
        };
        let _ = conn.close(200, "relay stopping".into()).await;
        result
    }

    async fn publish(&self, channel: &RecordChannel, batch: &[StoredEvent]) -> anyhow::Result<()> {
        let bodies: Vec<Vec<u8>> = batch.iter().map(|e| message(e).encode_to_vec()).collect();
        let outgoing: Vec<OutgoingEvent<'_>> = batch
            .iter()
            .zip(&bodies)
            .map(|(e, body)| OutgoingEvent {
                routing_key: routing_key(e),
                message_id: e.event_id.to_string(),
                body,
            })
            .collect();
        channel.publish(&outgoing).await?;
        let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
        events::published(&mut *self.db.conn().await?, &ids).await?;
        metrics::counter!(passare_imports_app::observability::names::RECORD_EVENTS)
            .increment(ids.len() as u64);
        Ok(())
    }
}
