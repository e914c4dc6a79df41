//! A small consumer of Passare Imports' record events, the shape another
//! Passare service follows (docs/record-events.md): its own durable queue
//! bound to the records exchange by a routing pattern, each message a batch
//! of events decoded from protobuf, acknowledged once its events are
//! applied, events de-duplicated by id.
//!
//! ```sh
//! cargo run -p passare-imports-cli --example record_consumer -- \
//!     --queue crm.imports --bind '1042.#' --bind '*.rolodex.*'
//! ```
//!
//! `AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`) and
//! `IMPORTS_QUEUE_PREFIX` (default `passare.imports`) say where the
//! exchange is.

use std::collections::{HashSet, VecDeque};

use anyhow::Context;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use passare_imports_proto::events::v1::{RecordEvent, RecordEventBatch, RecordOutcome};
use prost::Message;

/// Event ids remembered for de-duplication (the relay delivers at least
/// once; a real service keeps them with what it applied).
const REMEMBERED: usize = 100_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut queue, mut patterns) = (String::from("record-consumer"), Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--queue" => queue = args.next().context("--queue needs a name")?,
            "--bind" => patterns.push(args.next().context("--bind needs a pattern")?),
            other => anyhow::bail!("unknown argument {other}; use --queue NAME --bind PATTERN…"),
        }
    }
    if patterns.is_empty() {
        patterns.push("#".into());
    }
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let prefix = std::env::var("IMPORTS_QUEUE_PREFIX").unwrap_or_else(|_| "passare.imports".into());
    let exchange = format!("{prefix}.records");

    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    // The same declaration as the relay's: whichever runs first creates it.
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    // A quorum queue: it keeps the events while this service is down or the
    // broker restarts.
    let mut queue_args = FieldTable::default();
    queue_args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.as_str().into(), options, queue_args)
        .await?;
    for pattern in &patterns {
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                pattern.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    channel.basic_qos(100, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "record-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    eprintln!("consuming {exchange} by {patterns:?} into {queue}");

    let mut seen = HashSet::new();
    let mut order = VecDeque::new();
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        let batch = match RecordEventBatch::decode(delivery.data.as_slice()) {
            Ok(batch) => batch,
            Err(e) => {
                eprintln!("not a RecordEventBatch ({e}); skipped");
                delivery.ack(BasicAckOptions::default()).await?;
                continue;
            }
        };
        for event in batch.events {
            if !seen.insert(event.event_id.clone()) {
                eprintln!("duplicate {} skipped", event.event_id);
                continue;
            }
            apply(&delivery.routing_key.to_string(), &event);
            order.push_back(event.event_id);
            if order.len() > REMEMBERED
                && let Some(old) = order.pop_front()
            {
                seen.remove(&old);
            }
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
    Ok(())
}

/// What this service does with an event: here, prints it.
fn apply(routing_key: &str, e: &RecordEvent) {
    let key: Vec<String> = e
        .key
        .iter()
        .map(|k| format!("{}={}", k.column, k.value))
        .collect();
    let outcome = match RecordOutcome::try_from(e.outcome) {
        Ok(RecordOutcome::Created) => "created",
        Ok(RecordOutcome::Updated) => "updated",
        _ => "?",
    };
    let changes: Vec<String> = e
        .changes
        .iter()
        .map(|c| format!("{}={}", c.column, c.value.as_deref().unwrap_or("∅")))
        .collect();
    println!(
        "[{routing_key}] {outcome} {} {} (import {} row {}): {}",
        e.import_type,
        key.join(","),
        e.import_id,
        e.row,
        changes.join(" ")
    );
}
