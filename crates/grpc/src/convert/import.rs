//! An import as the API shows it: its state (PAUSED while a pause holds a
//! queued or running import), files with their progress and header mapping,
//! totals, analysis report, pause, stop, failures and timeline.

use passare_imports_app::views::{FileView, ImportView};
use passare_imports_domain::analysis::{AnalysisReport, FileAnalysis, Finding};
use passare_imports_domain::{FileFormat, RowProblem};
use passare_imports_proto::v1 as pb;
use passare_imports_store::entities::import_files;
use passare_imports_store::load::{file_mapping, file_profile};
use passare_imports_store::states::{FailurePolicy, FileState, ImportState};

use super::records::{analysis_job, chunk_failure, pause, timeline_event};
use super::{finding_kind, import_state, policy_to_pb, timestamp};

fn file_state(s: FileState) -> pb::FileState {
    match s {
        FileState::Ready => pb::FileState::Ready,
        FileState::Invalid => pb::FileState::Invalid,
        FileState::Queued => pb::FileState::Queued,
        FileState::Running => pb::FileState::Running,
        FileState::Completed => pb::FileState::Completed,
        FileState::CompletedWithErrors => pb::FileState::CompletedWithErrors,
        FileState::Failed => pb::FileState::Failed,
        FileState::Stopped => pb::FileState::Stopped,
    }
}

fn file_format(f: Option<FileFormat>) -> pb::FileFormat {
    match f {
        None => pb::FileFormat::Unspecified,
        Some(FileFormat::Csv) => pb::FileFormat::Csv,
        Some(FileFormat::Tsv) => pb::FileFormat::Tsv,
        Some(FileFormat::Xlsx) => pb::FileFormat::Xlsx,
    }
}

pub fn problem(p: &RowProblem) -> pb::RowProblem {
    pb::RowProblem {
        row: p.row as i64,
        column: p.column.clone(),
        value: p.value.clone(),
        reason: p.reason.clone(),
        kind: finding_kind(p.kind) as i32,
    }
}

fn finding(f: &Finding, policy: FailurePolicy) -> pb::Finding {
    pb::Finding {
        kind: finding_kind(f.kind) as i32,
        severity: if f.blocks(policy.stops_on_first_error()) {
            pb::Severity::Blocking
        } else {
            pb::Severity::Warning
        } as i32,
        count: f.count as i64,
        message: f.message.clone(),
        samples: f.samples.iter().map(problem).collect(),
        file_names: f.files.clone(),
    }
}

fn file_analysis(f: &FileAnalysis, policy: FailurePolicy) -> pb::FileAnalysis {
    pb::FileAnalysis {
        file_id: f.file_id.to_string(),
        file_name: f.file_name.clone(),
        import_type: f.import_type.clone(),
        rows: f.rows as i64,
        format: file_format(FileFormat::parse(&f.format)) as i32,
        encoding: f.encoding.clone(),
        delimiter: f.delimiter.clone(),
        sheet_name: f.sheet_name.clone().unwrap_or_default(),
        columns: f
            .columns
            .iter()
            .map(|(header, column)| pb::ColumnMapping {
                header: header.clone(),
                column: column.clone(),
            })
            .collect(),
        load_order: f.load_order,
        would_create: f.would_create as i64,
        would_update: f.would_update as i64,
        would_leave_unchanged: f.would_leave_unchanged as i64,
        rows_failing: f.rows_failing as i64,
        findings: f.findings.iter().map(|x| finding(x, policy)).collect(),
        would_skip_stale: f.would_skip_stale as i64,
        profile: f.profile.as_ref().map(super::applied),
        rule_effects: f.rule_effects.iter().map(super::rule_effect).collect(),
    }
}

/// The report as the API shows it, for `policy`; `stale` when the import's
/// files changed since.
pub fn analysis(r: &AnalysisReport, policy: FailurePolicy, stale: bool) -> pb::AnalysisReport {
    let sum = |get: fn(&FileAnalysis) -> u64| r.files.iter().map(get).sum::<u64>() as i64;
    pb::AnalysisReport {
        analyze_time: Some(prost_types::Timestamp {
            seconds: r.analyzed_at.timestamp(),
            nanos: r.analyzed_at.timestamp_subsec_nanos() as i32,
        }),
        duration_ms: r.duration_ms as i64,
        blocking: stale || r.blocks(policy.stops_on_first_error()),
        stale,
        files: r.files.iter().map(|f| file_analysis(f, policy)).collect(),
        findings: r.findings.iter().map(|f| finding(f, policy)).collect(),
        would_create: sum(|f| f.would_create),
        would_update: sum(|f| f.would_update),
        would_leave_unchanged: sum(|f| f.would_leave_unchanged),
        rows_failing: sum(|f| f.rows_failing),
        would_skip_stale: sum(|f| f.would_skip_stale),
    }
}

fn progress(f: &import_files::Model) -> pb::Progress {
    pb::Progress {
        rows_processed: f.rows_processed,
        rows_imported: f.rows_created + f.rows_updated + f.rows_unchanged,
        rows_failed: f.rows_failed,
        rows_created: f.rows_created,
        rows_updated: f.rows_updated,
        rows_unchanged: f.rows_unchanged,
        chunks_done: f.chunks_done,
        chunks_total: f.chunks_total,
        rows_total: f.row_count,
        rows_stale: f.rows_stale,
        rows_rolled_back: f.rows_rolled_back,
        rows_per_second: 0.0,
        estimated_completion_time: None,
    }
}

fn add(total: &mut pb::Progress, p: &pb::Progress) {
    total.rows_processed += p.rows_processed;
    total.rows_imported += p.rows_imported;
    total.rows_failed += p.rows_failed;
    total.rows_created += p.rows_created;
    total.rows_updated += p.rows_updated;
    total.rows_unchanged += p.rows_unchanged;
    total.chunks_done += p.chunks_done;
    total.chunks_total += p.chunks_total;
    total.rows_total += p.rows_total;
    total.rows_stale += p.rows_stale;
    total.rows_rolled_back += p.rows_rolled_back;
}

pub fn file(v: &FileView) -> pb::ImportFile {
    let f = &v.file;
    let headers: Vec<String> = serde_json::from_value(f.headers.clone()).unwrap_or_default();
    let mapped = passare_imports_domain::catalog::find(&f.import_type)
        .and_then(|def| file_mapping(def, f).ok())
        .unwrap_or_default();
    pb::ImportFile {
        id: f.id.to_string(),
        name: f.file_name.clone(),
        import_type: f.import_type.clone(),
        size_bytes: f.size_bytes,
        sha256: f.sha256.clone(),
        format: file_format(FileFormat::parse(&f.format)) as i32,
        row_count: f.row_count,
        state: file_state(f.state) as i32,
        progress: Some(progress(f)),
        problems: v.problems.iter().map(problem).collect(),
        columns: headers
            .iter()
            .enumerate()
            .map(|(i, h)| pb::ColumnMapping {
                header: h.clone(),
                column: mapped
                    .get(i)
                    .copied()
                    .flatten()
                    .unwrap_or_default()
                    .to_string(),
            })
            .collect(),
        create_time: Some(timestamp(&f.created_at)),
        encoding: f.encoding.clone(),
        sheet_name: f.sheet_name.clone().unwrap_or_default(),
        delimiter: f.delimiter.clone(),
        load_order: f.load_order,
        profile: file_profile(f)
            .ok()
            .flatten()
            .map(|p| super::applied(&p.version())),
        suggested_profiles: v.suggestions.iter().map(super::suggestion).collect(),
    }
}

/// The progress of all the files, with the import's speed and estimated end.
fn total_progress(v: &ImportView, files: &[pb::ImportFile]) -> pb::Progress {
    let mut total = pb::Progress::default();
    for f in files {
        if let Some(p) = &f.progress {
            add(&mut total, p);
        }
    }
    if let Some(rate) = &v.rate {
        total.rows_per_second = rate.rows_per_second;
        total.estimated_completion_time = rate
            .estimated_completion
            .map(|at| timestamp(&at.fixed_offset()));
    }
    total
}

/// An import as the API shows it.
pub fn import(v: &ImportView) -> pb::Import {
    let i = &v.import;
    let files: Vec<pb::ImportFile> = v.files.iter().map(file).collect();
    let total = total_progress(v, &files);
    let state = i.state;
    let paused = v.pause.is_some() && matches!(state, ImportState::Queued | ImportState::Running);
    let error = i.error.as_ref().map(|e| pb::ImportError {
        reason: e["reason"].as_str().unwrap_or_default().to_string(),
        message: e["message"].as_str().unwrap_or_default().to_string(),
        file_id: e["file_id"].as_str().unwrap_or_default().to_string(),
        file_name: e["file_name"].as_str().unwrap_or_default().to_string(),
        problem: serde_json::from_value::<RowProblem>(e["problem"].clone())
            .ok()
            .map(|p| problem(&p)),
    });
    pb::Import {
        id: i.id.to_string(),
        organization_id: i.organization_id.to_string(),
        state: if paused {
            pb::ImportState::Paused
        } else {
            import_state(state)
        } as i32,
        failure_policy: policy_to_pb(i.failure_policy) as i32,
        note: i.note.clone(),
        requested_by: Some(pb::User {
            id: i.requested_by_id.clone(),
            name: i.requested_by_name.clone(),
            email: i.requested_by_email.clone(),
        }),
        create_time: Some(timestamp(&i.created_at)),
        queue_time: i.queued_at.as_ref().map(timestamp),
        start_time: i.started_at.as_ref().map(timestamp),
        end_time: i.finished_at.as_ref().map(timestamp),
        update_time: Some(timestamp(&i.updated_at)),
        files,
        progress: Some(total),
        error,
        queue_position: if state == ImportState::Queued {
            v.queue_position.min(i32::MAX as u64) as i32
        } else {
            0
        },
        analysis: v
            .analysis()
            .map(|(r, stale)| analysis(&r, v.policy(), stale)),
        pause: v.pause.as_ref().filter(|_| paused).map(pause),
        stopped_by: i.stopped_by_id.as_ref().map(|id| pb::User {
            id: id.clone(),
            name: i.stopped_by_name.clone().unwrap_or_default(),
            email: i.stopped_by_email.clone().unwrap_or_default(),
        }),
        stop_time: i.stopped_at.as_ref().map(timestamp),
        stop_reason: i.stop_reason.clone().unwrap_or_default(),
        rollback_time: i.rolled_back_at.as_ref().map(timestamp),
        archive: v
            .archive
            .as_ref()
            .and_then(|a| archive(a, i.rolled_back_at.is_some())),
        rollback: i.rollback_started_at.as_ref().map(|start| pb::Rollback {
            records_done: i.rollback_records_done,
            records_total: i.rollback_records_total,
            start_time: Some(timestamp(start)),
            ends_as: if i.stopped_by_id.is_some() {
                pb::ImportState::Stopped
            } else {
                pb::ImportState::Failed
            } as i32,
        }),
        chunk_failures: v
            .chunk_failures
            .iter()
            .map(|f| {
                let name = v
                    .files
                    .iter()
                    .find(|x| x.file.id == f.file_id)
                    .map(|x| x.file.file_name.as_str())
                    .unwrap_or_default();
                chunk_failure(f, name)
            })
            .collect(),
        chunk_failure_count: v.chunk_failure_count.min(i32::MAX as u64) as i32,
        organization_name: v.organization_name.clone(),
        timeline: v.timeline.iter().map(timeline_event).collect(),
        attempt: i.attempt,
        results_purge_time: i.results_purged_at.as_ref().map(timestamp),
        analysis_job: v.analysis_job.as_ref().map(analysis_job),
    }
}

/// The raw archive of an import; unset while nothing was archived or due.
fn archive(
    a: &passare_imports_store::archive::ImportArchive,
    rolled_back: bool,
) -> Option<pb::ImportArchive> {
    let touched = a.chunks_archived + a.originals_archived + a.pending > 0;
    if !touched {
        return None;
    }
    let state = match (a.pending > 0, a.failed_attempts > 0) {
        (true, true) => pb::ArchiveState::Retrying,
        (true, false) => pb::ArchiveState::Pending,
        (false, _) if rolled_back => pb::ArchiveState::Withdrawn,
        (false, _) => pb::ArchiveState::Archived,
    };
    let count = |n: i64| n.clamp(0, i64::from(i32::MAX)) as i32;
    Some(pb::ImportArchive {
        state: state as i32,
        chunks_archived: count(a.chunks_archived),
        files_archived: count(a.originals_archived),
        pending: count(a.pending),
        failed_attempts: count(a.failed_attempts),
        last_error: a.last_error.clone().unwrap_or_default(),
        next_attempt_time: a
            .next_attempt
            .filter(|_| a.pending > 0)
            .map(|at| timestamp(&at.fixed_offset())),
    })
}
