//! The queue monitor and live workers as the API shows them.

use chrono::{DateTime, Utc};
use passare_imports_app::monitor::{Monitor, QueueView, WorkerView};
use passare_imports_proto::v1 as pb;
use passare_imports_store::workers::Drain;

fn at(t: &DateTime<Utc>) -> prost_types::Timestamp {
    super::timestamp(&t.fixed_offset())
}

/// One organization's queue.
pub fn organization_queue(v: &QueueView) -> pb::OrganizationQueue {
    let q = &v.queue;
    pb::OrganizationQueue {
        organization_id: q.organization_id.to_string(),
        organization_name: q.organization_name.clone(),
        running_import_id: q.running_import.map(|i| i.to_string()).unwrap_or_default(),
        running_chunk: v.drain.as_ref().map(|d| pb::HeldChunk {
            worker: d.worker.clone(),
            chunk_id: d.chunk_id.unwrap_or(0),
            drain_start_time: Some(at(&d.drain_started_at)),
            chunk_start_time: d.chunk_started_at.as_ref().map(at),
            stalled: d.stalled,
        }),
        queued_import_ids: q.queued_imports.iter().map(|i| i.to_string()).collect(),
        waiting_chunks: q.waiting_chunks,
        oldest_waiting_time: q.oldest_waiting.as_ref().map(at),
        failed_chunks: q.failed_chunks,
        dead_lettered_chunks: q.dead_lettered_chunks,
        paused: q.paused,
        last_activity_time: q.last_activity.as_ref().map(at),
    }
}

fn drain(d: &Drain) -> pb::WorkerDrain {
    pb::WorkerDrain {
        organization_id: d.organization_id.to_string(),
        chunk_id: d.chunk_id.unwrap_or(0),
        chunk_start_time: d.chunk_started_at.as_ref().map(at),
    }
}

/// A live worker with what it holds.
pub fn live_worker(v: &WorkerView) -> pb::LiveWorker {
    let w = &v.worker;
    pb::LiveWorker {
        id: w.name.clone(),
        host: w.host.clone(),
        pid: w.pid,
        slots: w.slots,
        start_time: Some(at(&w.started_at)),
        last_heartbeat_time: Some(at(&w.heartbeat_at)),
        drains: v.drains.iter().map(drain).collect(),
    }
}

/// The totals, throughput and workers of the monitor (its organizations are
/// paged by the handler).
pub fn monitor_rest(
    m: &Monitor,
) -> (
    pb::QueueTotals,
    Vec<pb::LiveWorker>,
    Vec<pb::ThroughputPoint>,
) {
    let t = &m.totals;
    let slots: i64 = m.workers.iter().map(|w| i64::from(w.worker.slots)).sum();
    let busy: i64 = m.workers.iter().map(|w| w.drains.len() as i64).sum();
    let totals = pb::QueueTotals {
        organizations: t.organizations,
        running_imports: t.running_imports,
        queued_imports: t.queued_imports,
        waiting_chunks: t.waiting_chunks,
        dead_lettered_chunks: t.dead_lettered_chunks,
        stalled_drains: m.stalled_drains,
        live_workers: m.workers.len() as i64,
        slots,
        busy_slots: busy,
    };
    let workers = m.workers.iter().map(live_worker).collect();
    let throughput = m
        .throughput
        .iter()
        .map(|(minute, rows)| pb::ThroughputPoint {
            minute: Some(at(minute)),
            rows: *rows,
        })
        .collect();
    (totals, workers, throughput)
}

/// A dead letter as the API shows it.
pub fn dead_letter(d: &passare_imports_store::dead_letters::DeadLetter) -> pb::DeadLetter {
    let resolution = match d.resolution.as_deref() {
        Some("requeued") => pb::DeadLetterResolution::Requeued,
        Some("discarded") => pb::DeadLetterResolution::Discarded,
        _ => pb::DeadLetterResolution::Unspecified,
    };
    let outcome = if d.outcome == "dead_lettered" {
        pb::ChunkFailureOutcome::DeadLettered
    } else {
        pb::ChunkFailureOutcome::Failed
    };
    pb::DeadLetter {
        chunk_id: d.chunk_id,
        import_id: d.import_id.to_string(),
        organization_id: d.organization_id.to_string(),
        file_id: d.file_id.to_string(),
        file_name: d.file_name.clone(),
        chunk_seq: d.chunk_seq,
        first_row: d.first_row,
        last_row: d.last_row,
        attempts: d.attempts,
        error_kind: d.error_kind.clone(),
        message: d.message.clone(),
        outcome: outcome as i32,
        dead_time: Some(at(&d.dead_at)),
        resolution: resolution as i32,
        resolve_time: d.resolved_at.as_ref().map(at),
        resolved_by: d.resolved_by_id.as_ref().map(|id| pb::User {
            id: id.clone(),
            name: d.resolved_by_name.clone().unwrap_or_default(),
            email: d.resolved_by_email.clone().unwrap_or_default(),
        }),
        note: d.resolution_note.clone(),
        requeued_attempt: d.requeued_attempt.unwrap_or(0),
    }
}
