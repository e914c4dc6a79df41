//! RabbitMQ for Passare Imports: the queue topology, confirmed publishing of
//! the notices that set workers on an organization's chunks, and the
//! dead-letter record of chunks given up. It knows nothing of the database:
//! the chunks and their order live there, and the per-organization fence
//! lives where rows are written (see docs/per-organization-concurrency.md).
//!
//! Topology: two quorum queues on the default exchange, however many
//! organizations there are:
//! - `{prefix}.notices` — notices "organization N has chunks waiting",
//!   published when an import starts, when a drain hands an organization
//!   back, when a pause is lifted and by the sweep; consumed by every worker
//!   slot (competing consumers, prefetch 1 per slot). A notice delivered
//!   `delivery_limit` times without being acknowledged (it kept killing
//!   workers) is dead-lettered.
//! - `{prefix}.dead` — chunks the workers gave up on, and dead-lettered
//!   notices, kept for inspection.
//!
//! Releases before this one kept a queue per organization
//! (`{prefix}.org.{org}`) and notices on `{prefix}.ready`;
//! [`WorkChannel::delete_legacy_queues`] removes them once (the worker's
//! topology migration).

mod dead;
pub mod records;

pub use dead::prune_dead;

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, ConnectionProperties, Consumer};
use passare_imports_domain::messages::DeadChunk;
use serde::Serialize;
use tokio::sync::Mutex;

pub use lapin::Connection;
pub use lapin::message::Delivery;
pub use passare_imports_domain::messages::OrgReady;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("rabbitmq: {0}")]
    Broker(#[from] lapin::Error),
    #[error("rabbitmq did not confirm the message published to {0}")]
    NotConfirmed(String),
    #[error("message on {queue} is not a known chunk message: {reason}")]
    BadMessage { queue: String, reason: String },
    #[error("rabbitmq did not answer within {0:?}")]
    Timeout(Duration),
}

/// How to reach the broker and name the queues.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub amqp_url: String,
    /// Prefix of every queue name; tests use a unique one each.
    pub prefix: String,
    /// Deliveries of one notice before it goes to the dead-letter queue (a
    /// notice that keeps killing workers stops circulating; the sweep
    /// announces the organization again a sweep later).
    pub delivery_limit: u32,
    /// Queues unused for this long are deleted by the broker (tests only: a
    /// production queue must never expire with messages in it).
    pub queue_expires: Option<Duration>,
}

impl QueueConfig {
    /// The queue an organization had in releases before the shared notice
    /// queue; only the topology migration still names it.
    pub fn legacy_org_queue(&self, organization_id: i64) -> String {
        format!("{}.org.{organization_id}", self.prefix)
    }

    pub fn notice_queue(&self) -> String {
        format!("{}.notices", self.prefix)
    }

    /// The notice queue of releases before this one; only the topology
    /// migration still names it.
    pub fn legacy_ready_queue(&self) -> String {
        format!("{}.ready", self.prefix)
    }

    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    fn queue_args(&self, dead_letter: bool) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        if dead_letter {
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongInt(self.delivery_limit.min(i32::MAX as u32) as i32),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(self.dead_queue().into()),
            );
        }
        if let Some(expires) = self.queue_expires {
            args.insert(
                "x-expires".into(),
                AMQPValue::LongInt(expires.as_millis().min(i32::MAX as u128) as i32),
            );
        }
        args
    }
}

/// Opens a connection named after this process, for the broker's management views.
pub async fn connect(config: &QueueConfig, name: &str) -> Result<Connection, QueueError> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Ok(Connection::connect(&config.amqp_url, props).await?)
}

/// Declares the queues every process needs (idempotent).
pub async fn declare_common(config: &QueueConfig, channel: &Channel) -> Result<(), QueueError> {
    declare(channel, &config.dead_queue(), config.queue_args(false)).await?;
    declare(channel, &config.notice_queue(), config.queue_args(true)).await?;
    Ok(())
}

async fn declare(channel: &Channel, name: &str, args: FieldTable) -> Result<(), QueueError> {
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await?;
    Ok(())
}

/// Longest wait for the broker to confirm what we published.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(15);

/// A publish counts only when the broker acked it and did not return it as
/// unroutable (the queue is missing).
fn confirmed(confirmation: lapin::Confirmation, queue: &str) -> Result<(), QueueError> {
    match confirmation {
        lapin::Confirmation::Ack(None) => Ok(()),
        _ => Err(QueueError::NotConfirmed(queue.to_string())),
    }
}

/// W3C trace context carried in a message's headers (`traceparent`,
/// `tracestate`), so the work a message causes joins the caller's trace.
pub type TraceHeaders = std::collections::HashMap<String, String>;

fn persistent(trace: &TraceHeaders) -> BasicProperties {
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(ShortString::from("application/json"));
    if trace.is_empty() {
        return properties;
    }
    let mut headers = FieldTable::default();
    for (k, v) in trace {
        headers.insert(k.as_str().into(), AMQPValue::LongString(v.as_str().into()));
    }
    properties.with_headers(headers)
}

/// The trace context a delivery carries (empty when none).
pub fn trace_headers(delivery: &Delivery) -> TraceHeaders {
    let mut out = TraceHeaders::new();
    if let Some(headers) = delivery.properties.headers() {
        for (k, v) in headers.inner() {
            let key = k.as_str();
            if (key == "traceparent" || key == "tracestate")
                && let AMQPValue::LongString(s) = v
            {
                out.insert(
                    key.to_string(),
                    String::from_utf8_lossy(s.as_bytes()).into_owned(),
                );
            }
        }
    }
    out
}

async fn publish_confirmed<T: Serialize>(
    channel: &Channel,
    queue: &str,
    message: &T,
    trace: &TraceHeaders,
) -> Result<lapin::PublisherConfirm, QueueError> {
    let body = serde_json::to_vec(message).map_err(|e| QueueError::BadMessage {
        queue: queue.to_string(),
        reason: e.to_string(),
    })?;
    Ok(channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &body,
            persistent(trace),
        )
        .await?)
}

/// Publishes with publisher confirms, from the API servers. One connection
/// per process, opened on first use and again after it is lost.
pub struct Publisher {
    config: QueueConfig,
    name: String,
    channel: Mutex<Option<(Connection, Channel)>>,
}

impl Publisher {
    pub fn new(config: QueueConfig, name: impl Into<String>) -> Self {
        Self {
            config,
            name: name.into(),
            channel: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Announces organizations whose chunks wait (an import started, a pause
    /// lifted), confirmed; each notice carries the turn the store read after
    /// the work was committed (`turns::announcing` in the store).
    pub async fn announce(&self, notices: &[OrgReady]) -> Result<(), QueueError> {
        self.announce_traced(notices, &TraceHeaders::new()).await
    }

    /// [`Publisher::announce`], carrying the caller's trace context.
    pub async fn announce_traced(
        &self,
        notices: &[OrgReady],
        trace: &TraceHeaders,
    ) -> Result<(), QueueError> {
        let mut guard = self.channel.lock().await;
        let result = tokio::time::timeout(PUBLISH_TIMEOUT, async {
            let channel = self.channel_locked(&mut guard).await?;
            for notice in notices {
                notify_ready(&self.config, &channel, notice, trace).await?;
            }
            Ok(())
        })
        .await
        .unwrap_or(Err(QueueError::Timeout(PUBLISH_TIMEOUT)));
        if result.is_err() {
            *guard = None;
        }
        result
    }

    async fn channel_locked(
        &self,
        guard: &mut Option<(Connection, Channel)>,
    ) -> Result<Channel, QueueError> {
        Ok(match guard {
            Some((conn, channel)) if conn.status().connected() && channel.status().connected() => {
                channel.clone()
            }
            _ => {
                let conn = connect(&self.config, &self.name).await?;
                let channel = conn.create_channel().await?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await?;
                declare_common(&self.config, &channel).await?;
                *guard = Some((conn, channel.clone()));
                channel
            }
        })
    }
}

/// Publishes a ready notice for an organization and waits for its confirm.
async fn notify_ready(
    config: &QueueConfig,
    channel: &Channel,
    notice: &OrgReady,
    trace: &TraceHeaders,
) -> Result<(), QueueError> {
    let ready = config.notice_queue();
    confirmed(
        publish_confirmed(channel, &ready, notice, trace)
            .await?
            .await?,
        &ready,
    )
}

/// One worker slot's channel: consumes ready notices, announces
/// organizations again, and records chunks given up.
#[derive(Clone)]
pub struct WorkChannel {
    config: QueueConfig,
    channel: Channel,
}

impl WorkChannel {
    pub async fn open(config: QueueConfig, connection: &Connection) -> Result<Self, QueueError> {
        let channel = connection.create_channel().await?;
        channel.basic_qos(1, BasicQosOptions::default()).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        declare_common(&config, &channel).await?;
        Ok(Self { config, channel })
    }

    pub fn is_open(&self) -> bool {
        self.channel.status().connected()
    }

    /// Starts consuming ready notices (prefetch 1).
    pub async fn consume_ready(&self, tag: &str) -> Result<Consumer, QueueError> {
        Ok(self
            .channel
            .basic_consume(
                self.config.notice_queue().as_str().into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?)
    }

    /// Deletes the queues of releases before the shared notice queue — the
    /// old notice queue and the queue of each of `orgs` — with whatever
    /// messages they still hold (wake-ups: the chunks themselves are in the
    /// database); returns how many messages went with them. A queue that does
    /// not exist is no error.
    pub async fn delete_legacy_queues(&self, orgs: &[i64]) -> Result<u64, QueueError> {
        let names = std::iter::once(self.config.legacy_ready_queue())
            .chain(orgs.iter().map(|org| self.config.legacy_org_queue(*org)));
        let mut messages = 0;
        for name in names {
            messages += u64::from(
                self.channel
                    .queue_delete(
                        name.as_str().into(),
                        lapin::options::QueueDeleteOptions::default(),
                    )
                    .await?,
            );
        }
        Ok(messages)
    }

    /// Publishes a ready notice for an organization (confirmed).
    pub async fn notify_ready(&self, notice: &OrgReady) -> Result<(), QueueError> {
        tokio::time::timeout(
            PUBLISH_TIMEOUT,
            notify_ready(&self.config, &self.channel, notice, &TraceHeaders::new()),
        )
        .await
        .map_err(|_| QueueError::Timeout(PUBLISH_TIMEOUT))?
    }

    /// Publishes a chunk the workers gave up on to the dead-letter queue, for
    /// inspection (confirmed), with the trace context of the attempt that
    /// gave up (`trace`, empty when traces are off) in its headers.
    pub async fn dead_letter(
        &self,
        dead: &DeadChunk,
        trace: &TraceHeaders,
    ) -> Result<(), QueueError> {
        let queue = self.config.dead_queue();
        tokio::time::timeout(PUBLISH_TIMEOUT, async {
            confirmed(
                publish_confirmed(&self.channel, &queue, dead, trace)
                    .await?
                    .await?,
                &queue,
            )
        })
        .await
        .map_err(|_| QueueError::Timeout(PUBLISH_TIMEOUT))?
    }

    pub async fn close(&self) {
        let _ = self.channel.close(200, "worker stopping".into()).await;
    }
}

/// Reads a ready notice; `None` for a message that is not one (it is dropped).
pub fn parse_ready(delivery: &Delivery) -> Option<OrgReady> {
    serde_json::from_slice::<OrgReady>(&delivery.data).ok()
}

/// Next delivery from a consumer, `None` when the consumer ended.
pub async fn next_delivery(consumer: &mut Consumer) -> Option<Result<Delivery, QueueError>> {
    consumer.next().await.map(|r| r.map_err(QueueError::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_share_the_prefix() {
        let c = QueueConfig {
            amqp_url: String::new(),
            prefix: "t1".into(),
            delivery_limit: 5,
            queue_expires: None,
        };
        assert_eq!(c.legacy_org_queue(42), "t1.org.42");
        assert_eq!(c.notice_queue(), "t1.notices");
        assert_eq!(c.legacy_ready_queue(), "t1.ready");
        assert_eq!(c.dead_queue(), "t1.dead");
        assert!(c.queue_args(true).inner().contains_key("x-delivery-limit"));
        assert!(!c.queue_args(false).inner().contains_key("x-delivery-limit"));
    }

    #[test]
    fn messages_carry_the_trace_context_in_their_headers() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let trace = TraceHeaders::from([("traceparent".to_string(), parent.to_string())]);
        let props = persistent(&trace);
        let headers = props.headers().as_ref().map(|h| h.inner().clone());
        let value = headers.and_then(|h| h.get("traceparent").cloned());
        assert_eq!(value, Some(AMQPValue::LongString(parent.into())));
        assert!(persistent(&TraceHeaders::new()).headers().is_none());
    }
}
