//! Taking handled chunks out of the dead-letter queue `{prefix}.dead`: the
//! messages present are fetched one by one without acknowledging them, the
//! handled chunks' messages are acknowledged (removed), and every other
//! message is handed back, in place, when the channel lets go of them.

use std::collections::HashSet;

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use passare_imports_domain::messages::{ChunkMessage, DeadChunk};

use crate::{QueueConfig, QueueError, connect};

/// The chunk a dead-letter message is about, if it is a chunk's.
fn chunk_of(data: &[u8]) -> Option<i64> {
    match serde_json::from_slice::<DeadChunk>(data).ok()? {
        DeadChunk::V1 {
            chunk: ChunkMessage::V1 { chunk_id, .. },
            ..
        } => Some(chunk_id),
    }
}

/// Removes the messages of `handled` chunks from the dead-letter queue;
/// returns how many it removed.
pub async fn prune_dead(config: &QueueConfig, handled: &HashSet<i64>) -> Result<u64, QueueError> {
    let conn = connect(config, "passare-imports dead-letter pruning").await?;
    let channel = conn.create_channel().await?;
    let name = config.dead_queue();
    let present = channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            Default::default(),
        )
        .await?
        .message_count();
    let mut kept = Vec::new();
    let mut removed = 0;
    for _ in 0..present {
        let Some(message) = channel
            .basic_get(name.as_str().into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        let delivery = message.delivery;
        if chunk_of(&delivery.data).is_some_and(|c| handled.contains(&c)) {
            delivery.ack(BasicAckOptions::default()).await?;
            removed += 1;
        } else {
            kept.push(delivery);
        }
    }
    for delivery in kept {
        delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await?;
    }
    let _ = channel.close(200, "pruned".into()).await;
    let _ = conn.close(200, "pruned".into()).await;
    Ok(removed)
}
