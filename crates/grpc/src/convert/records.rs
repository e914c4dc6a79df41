//! Records shown in lists: pauses, failed chunk attempts, timeline steps,
//! row errors and audit events.

use passare_imports_domain::FindingKind;
use passare_imports_proto::v1 as pb;
use passare_imports_store::entities::{
    audit_events, chunk_failures, import_events, import_pauses, uploads,
};
use passare_imports_store::results::RowErrorRow;
use passare_imports_store::states::{FailureOutcome, UploadState};

use super::{finding_kind, timestamp};

pub fn pause(p: &import_pauses::Model) -> pb::Pause {
    pb::Pause {
        organization_id: p.organization_id.map(|o| o.to_string()).unwrap_or_default(),
        reason: p.reason.clone(),
        paused_by: Some(pb::User {
            id: p.paused_by_id.clone(),
            name: p.paused_by_name.clone(),
            email: p.paused_by_email.clone(),
        }),
        pause_time: Some(timestamp(&p.paused_at)),
    }
}

fn failure_outcome(outcome: FailureOutcome) -> pb::ChunkFailureOutcome {
    match outcome {
        FailureOutcome::RetryScheduled => pb::ChunkFailureOutcome::RetryScheduled,
        FailureOutcome::DeadLettered => pb::ChunkFailureOutcome::DeadLettered,
        FailureOutcome::Failed => pb::ChunkFailureOutcome::Failed,
    }
}

/// A failed chunk attempt as the API shows it.
pub fn chunk_failure(f: &chunk_failures::Model, file_name: &str) -> pb::ChunkFailure {
    pb::ChunkFailure {
        id: f.id.to_string(),
        import_id: f.import_id.to_string(),
        organization_id: f.organization_id.to_string(),
        file_id: f.file_id.to_string(),
        file_name: file_name.to_string(),
        chunk_seq: f.chunk_seq,
        first_row: f.first_row,
        last_row: f.last_row,
        attempt: f.attempt,
        error_kind: f.error_kind.clone(),
        transient: f.transient,
        message: f.message.clone(),
        causes: serde_json::from_value(f.causes.clone()).unwrap_or_default(),
        backtrace: f.backtrace.clone(),
        worker_host: f.worker_host.clone(),
        worker_pid: f.worker_pid,
        outcome: failure_outcome(f.outcome) as i32,
        retry_time: f.retry_at.as_ref().map(timestamp),
        queue_time: Some(timestamp(&f.queued_at)),
        read_start_time: f.read_started_at.as_ref().map(timestamp),
        write_start_time: f.write_started_at.as_ref().map(timestamp),
        fail_time: Some(timestamp(&f.failed_at)),
    }
}

pub(super) fn timeline_event(e: &import_events::Model) -> pb::TimelineEvent {
    pb::TimelineEvent {
        kind: e.kind.clone(),
        time: Some(timestamp(&e.at)),
        actor: e.actor_id.as_ref().map(|id| pb::User {
            id: id.clone(),
            name: e.actor_name.clone().unwrap_or_default(),
            email: e.actor_email.clone().unwrap_or_default(),
        }),
        detail: e.detail.clone(),
    }
}

/// A row error as the API shows it (its value was masked when recorded).
pub fn row_error(e: &RowErrorRow) -> pb::RowError {
    pb::RowError {
        file_id: e.file_id.to_string(),
        file_name: e.file_name.clone(),
        row: e.row,
        column: e.column.clone(),
        value: e.value.clone(),
        reason: e.reason.clone(),
        kind: serde_json::from_value::<FindingKind>(serde_json::Value::String(e.kind.clone()))
            .map_or(pb::FindingKind::Unspecified, finding_kind) as i32,
        attempt: e.attempt,
        open: e.open,
    }
}

pub fn audit_event(e: &audit_events::Model) -> pb::AuditEvent {
    pb::AuditEvent {
        id: e.id.to_string(),
        time: Some(timestamp(&e.at)),
        actor: Some(pb::User {
            id: e.actor_id.clone(),
            name: e.actor_name.clone(),
            email: e.actor_email.clone(),
        }),
        action: e.action.clone(),
        organization_id: e.organization_id.map(|o| o.to_string()).unwrap_or_default(),
        import_id: e.import_id.map(|i| i.to_string()).unwrap_or_default(),
        request_id: e.request_id.clone(),
        details: e.details.to_string(),
    }
}

/// A resumable upload as the API shows it.
pub fn upload(u: &uploads::Model, part_size: u64) -> pb::Upload {
    pb::Upload {
        id: u.id.to_string(),
        import_id: u.import_id.to_string(),
        file_name: u.file_name.clone(),
        import_type: u.import_type.clone(),
        declared_size_bytes: u.declared_size,
        declared_sha256: u.declared_sha256.clone().unwrap_or_default(),
        committed_bytes: u.committed_bytes,
        part_size_bytes: part_size as i64,
        state: match u.state {
            UploadState::Active | UploadState::Completing => pb::UploadState::Active,
            UploadState::Completed => pb::UploadState::Completed,
            UploadState::Aborted => pb::UploadState::Aborted,
            UploadState::Expired => pb::UploadState::Expired,
        } as i32,
        create_time: Some(timestamp(&u.created_at)),
        update_time: Some(timestamp(&u.updated_at)),
        expire_time: Some(timestamp(&u.expires_at)),
        file_id: u.file_id.map(|f| f.to_string()).unwrap_or_default(),
    }
}

/// A background analysis as `Import.analysis_job` shows it.
pub fn analysis_job(j: &passare_imports_store::analysis_jobs::AnalysisJob) -> pb::AnalysisJob {
    let state = match j.state.as_str() {
        "queued" => pb::AnalysisJobState::Queued,
        "running" => pb::AnalysisJobState::Running,
        "done" => pb::AnalysisJobState::Done,
        "failed" => pb::AnalysisJobState::Failed,
        _ => pb::AnalysisJobState::Unspecified,
    };
    let at = |t: &chrono::DateTime<chrono::Utc>| super::timestamp(&t.fixed_offset());
    pb::AnalysisJob {
        state: state as i32,
        rows_done: j.rows_done,
        rows_total: j.rows_total,
        request_time: Some(at(&j.requested_at)),
        start_time: j.started_at.as_ref().map(at),
        end_time: j.ended_at.as_ref().map(at),
        start_when_done: j.start_when_done,
        error: j.error.clone().unwrap_or_default(),
        requested_by: Some(pb::User {
            id: j.requested_by_id.clone(),
            name: j.requested_by_name.clone(),
            email: j.requested_by_email.clone(),
        }),
    }
}
