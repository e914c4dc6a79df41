//! Another Passare service listening to record events, as
//! docs/record-events.md tells one to: a durable queue of its own bound to
//! the records exchange by a routing pattern, messages decoded as
//! `passare.imports.events.v1.RecordEventBatch`, one event each.

use std::time::{Duration, Instant};

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use passare_imports_proto::events::v1 as ev;
use passare_imports_queue::records::{RecordChannel, exchange};
use passare_imports_queue::{self as queue};
use prost::Message;

use crate::test_env::TestEnv;

/// A queue bound to the records exchange.
pub struct Subscriber {
    conn: lapin::Connection,
    channel: lapin::Channel,
    queue: String,
}

/// One event as delivered, with the message (batch) it came in.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub routing_key: String,
    /// The message's id: its batch's.
    pub message_id: String,
    pub batch_id: String,
    pub event: ev::RecordEvent,
}

impl Subscriber {
    /// A quorum queue (it survives a broker restart) bound by `pattern`
    /// (`1042.#`, `*.cases.updated`, …).
    pub async fn bind(env: &TestEnv, pattern: &str) -> anyhow::Result<Self> {
        let config = env.config.queue();
        let conn = queue::connect(&config, "integration test subscriber").await?;
        // Declares the exchange as the relay does, whichever comes first.
        drop(RecordChannel::open(&config, &conn).await?);
        let channel = conn.create_channel().await?;
        let name = format!(
            "{}.subscriber.{}",
            config.prefix,
            uuid::Uuid::new_v4().simple()
        );
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        args.insert("x-expires".into(), AMQPValue::LongUInt(600_000));
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                args,
            )
            .await?;
        channel
            .queue_bind(
                name.as_str().into(),
                exchange(&config).as_str().into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(Self {
            conn,
            channel,
            queue: name,
        })
    }

    /// Takes what arrives until `want` events came, or nothing more came for
    /// `quiet` after at least `within` passed.
    pub async fn collect(
        &self,
        want: usize,
        within: Duration,
        quiet: Duration,
    ) -> anyhow::Result<Vec<Delivered>> {
        let start = Instant::now();
        let mut last = Instant::now();
        let mut got = Vec::new();
        loop {
            let message = self
                .channel
                .basic_get(self.queue.as_str().into(), BasicGetOptions::default())
                .await?;
            match message {
                Some(m) => {
                    let d = m.delivery;
                    let batch = ev::RecordEventBatch::decode(d.data.as_slice())?;
                    let message_id = d
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    for event in batch.events {
                        got.push(Delivered {
                            routing_key: d.routing_key.to_string(),
                            message_id: message_id.clone(),
                            batch_id: batch.batch_id.clone(),
                            event,
                        });
                    }
                    d.ack(BasicAckOptions::default()).await?;
                    last = Instant::now();
                }
                None => {
                    let waited = start.elapsed();
                    if (got.len() >= want && last.elapsed() >= quiet)
                        || waited >= within + quiet && last.elapsed() >= quiet
                    {
                        return Ok(got);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Connects again to the same queue (after a broker restart closed the
    /// connection; the quorum queue kept its messages).
    pub async fn reconnect(&mut self, env: &TestEnv) -> anyhow::Result<()> {
        let config = env.config.queue();
        self.conn = queue::connect(&config, "integration test subscriber").await?;
        self.channel = self.conn.create_channel().await?;
        Ok(())
    }

    pub async fn close(self) -> anyhow::Result<()> {
        let _ = self.channel.close(200, "done".into()).await;
        self.conn.close(200, "done".into()).await?;
        Ok(())
    }
}
