//! The record events' exchange: `{prefix}.records`, a durable topic
//! exchange other services bind their own queues to, by routing key
//! `{organization}.{import_type}.{outcome}` (docs/record-events.md).

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

use crate::{PUBLISH_TIMEOUT, QueueConfig, QueueError};

/// The exchange's name for `config`.
pub fn exchange(config: &QueueConfig) -> String {
    format!("{}.records", config.prefix)
}

/// One event ready to go.
pub struct OutgoingEvent<'a> {
    pub routing_key: String,
    /// The event's stable id, as the AMQP `message_id`.
    pub message_id: String,
    pub body: &'a [u8],
}

/// A confirmed channel to the records exchange.
pub struct RecordChannel {
    channel: Channel,
    exchange: String,
}

impl RecordChannel {
    /// Opens a channel on `connection`, in confirm mode, and declares the
    /// exchange (idempotent).
    pub async fn open(config: &QueueConfig, connection: &Connection) -> Result<Self, QueueError> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let exchange = exchange(config);
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(Self { channel, exchange })
    }

    pub fn is_open(&self) -> bool {
        self.channel.status().connected()
    }

    /// Publishes `events` (persistent, protobuf) and waits until the broker
    /// confirmed every one; an error means some may not have arrived, and
    /// the caller publishes them again (consumers de-duplicate by id).
    pub async fn publish(&self, events: &[OutgoingEvent<'_>]) -> Result<(), QueueError> {
        let run = async {
            let mut confirms = Vec::with_capacity(events.len());
            for e in events {
                let properties = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type(ShortString::from("application/x-protobuf"))
                    .with_type(ShortString::from(
                        "passare.imports.events.v1.RecordEventBatch",
                    ))
                    .with_message_id(ShortString::from(e.message_id.as_str()));
                let confirm = self
                    .channel
                    .basic_publish(
                        self.exchange.as_str().into(),
                        e.routing_key.as_str().into(),
                        BasicPublishOptions::default(),
                        e.body,
                        properties,
                    )
                    .await?;
                confirms.push(confirm);
            }
            for confirm in confirms {
                if !confirm.await?.is_ack() {
                    return Err(QueueError::NotConfirmed(self.exchange.clone()));
                }
            }
            Ok(())
        };
        tokio::time::timeout(PUBLISH_TIMEOUT, run)
            .await
            .unwrap_or(Err(QueueError::Timeout(PUBLISH_TIMEOUT)))
    }
}
