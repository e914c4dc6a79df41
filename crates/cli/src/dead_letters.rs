//! Dead letters from a terminal: `dead-letters` lists them,
//! `requeue-dead-letters` runs their rows again as their import's next
//! attempt, `discard-dead-letters` marks them handled (docs/monitoring.md).

use passare_imports_proto::v1 as pb;

use crate::client::{self, Client};

fn when(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

fn resolution(d: &pb::DeadLetter) -> String {
    let by = d
        .resolved_by
        .as_ref()
        .map(|u| u.name.as_str())
        .unwrap_or("");
    match pb::DeadLetterResolution::try_from(d.resolution) {
        Ok(pb::DeadLetterResolution::Requeued) => {
            format!("requeued by {by} as attempt {}", d.requeued_attempt)
        }
        Ok(pb::DeadLetterResolution::Discarded) => format!("discarded by {by}: {}", d.note),
        _ => "waiting".into(),
    }
}

/// Prints the dead letters, newest first.
pub async fn list(mut api: Client, org: Option<i64>, all: bool, limit: i32) -> anyhow::Result<()> {
    let letters = api
        .list_dead_letters(pb::ListDeadLettersRequest {
            organization_id: org.map(|o| o.to_string()).unwrap_or_default(),
            include_resolved: all,
            page_size: limit,
            ..Default::default()
        })
        .await
        .map_err(client::describe)?
        .into_inner()
        .dead_letters;
    if letters.is_empty() {
        println!("no dead letter{}", if all { "" } else { " waiting" });
    }
    for d in &letters {
        println!(
            "chunk {} · org {} · import {} · {} rows {}-{} · {} attempts · {} {} · {} · {}",
            d.chunk_id,
            d.organization_id,
            d.import_id,
            d.file_name,
            d.first_row,
            d.last_row,
            d.attempts,
            d.error_kind,
            d.message,
            when(&d.dead_time),
            resolution(d)
        );
    }
    Ok(())
}

pub async fn requeue(mut api: Client, chunk_ids: Vec<i64>) -> anyhow::Result<()> {
    let done = api
        .requeue_dead_letters(pb::RequeueDeadLettersRequest { chunk_ids })
        .await
        .map_err(client::describe)?
        .into_inner();
    println!("requeued chunks {:?}", done.requeued_chunk_ids);
    for i in &done.imports {
        println!("import {} queued as attempt {}", i.id, i.attempt);
    }
    if !done.already_resolved_chunk_ids.is_empty() {
        println!(
            "already handled, left as they were: {:?}",
            done.already_resolved_chunk_ids
        );
    }
    Ok(())
}

pub async fn discard(mut api: Client, chunk_ids: Vec<i64>, reason: String) -> anyhow::Result<()> {
    let done = api
        .discard_dead_letters(pb::DiscardDeadLettersRequest { chunk_ids, reason })
        .await
        .map_err(client::describe)?
        .into_inner();
    println!("discarded chunks {:?}", done.discarded_chunk_ids);
    if !done.already_resolved_chunk_ids.is_empty() {
        println!(
            "already handled, left as they were: {:?}",
            done.already_resolved_chunk_ids
        );
    }
    Ok(())
}
