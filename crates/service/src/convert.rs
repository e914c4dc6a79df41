//! Conversions between stored models and the API's messages: the one place
//! where proto types meet the domain.

use chrono::{DateTime, FixedOffset};
use passare_imports_domain::analysis::{AnalysisReport, FileAnalysis, Finding};
use passare_imports_domain::catalog::{ImportTypeDef, RefTarget};
use passare_imports_domain::{
    FailurePolicy, FileFormat, FileState, FindingKind, ImportState, RowProblem,
};
use passare_imports_proto::v1 as pb;
use passare_imports_store::entities::{
    audit_events, chunk_failures, import_events, import_files, import_pauses, imports,
};
use passare_imports_store::results::RowErrorRow;

/// An import with everything its message shows.
#[derive(Debug, Clone)]
pub struct ImportView {
    pub import: imports::Model,
    pub files: Vec<FileView>,
    pub queue_position: u64,
    /// The pause holding the import's organization, when the import is
    /// queued or running.
    pub pause: Option<import_pauses::Model>,
    /// The latest failed chunk attempts, and how many there are in all.
    pub chunk_failures: Vec<chunk_failures::Model>,
    pub chunk_failure_count: i64,
    /// Every step of the import, oldest first.
    pub timeline: Vec<import_events::Model>,
    pub organization_name: String,
}

#[derive(Debug, Clone)]
pub struct FileView {
    pub file: import_files::Model,
    /// Structural problems (invalid files) or the first row errors.
    pub problems: Vec<RowProblem>,
}

pub fn timestamp(t: &DateTime<FixedOffset>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn import_state(s: ImportState) -> pb::ImportState {
    match s {
        ImportState::Draft => pb::ImportState::Draft,
        ImportState::Queued => pb::ImportState::Queued,
        ImportState::Running => pb::ImportState::Running,
        ImportState::Completed => pb::ImportState::Completed,
        ImportState::CompletedWithErrors => pb::ImportState::CompletedWithErrors,
        ImportState::Failed => pb::ImportState::Failed,
        ImportState::Stopped => pb::ImportState::Stopped,
    }
}

/// A terminal or draft state asked for by a request (QUEUED, RUNNING and
/// PAUSED are told apart by the pause switch; see `ListImports`).
pub fn import_state_from_pb(s: pb::ImportState) -> Result<ImportState, crate::error::ApiError> {
    Ok(match s {
        pb::ImportState::Draft => ImportState::Draft,
        pb::ImportState::Queued => ImportState::Queued,
        pb::ImportState::Running => ImportState::Running,
        pb::ImportState::Completed => ImportState::Completed,
        pb::ImportState::CompletedWithErrors => ImportState::CompletedWithErrors,
        pb::ImportState::Failed => ImportState::Failed,
        pb::ImportState::Stopped => ImportState::Stopped,
        pb::ImportState::Unspecified | pb::ImportState::Paused => {
            return Err(crate::error::ApiError::invalid(
                "state",
                "is not a stored state",
            ));
        }
    })
}

pub fn policy_to_pb(p: FailurePolicy) -> pb::FailurePolicy {
    match p {
        FailurePolicy::StopOnFirstError => pb::FailurePolicy::StopOnFirstError,
        FailurePolicy::ImportValidRows => pb::FailurePolicy::ImportValidRows,
    }
}

pub fn policy_from_pb(p: pb::FailurePolicy) -> Option<FailurePolicy> {
    match p {
        pb::FailurePolicy::Unspecified => None,
        pb::FailurePolicy::StopOnFirstError => Some(FailurePolicy::StopOnFirstError),
        pb::FailurePolicy::ImportValidRows => Some(FailurePolicy::ImportValidRows),
    }
}

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

pub fn finding_kind(k: FindingKind) -> pb::FindingKind {
    match k {
        FindingKind::Structure => pb::FindingKind::Structure,
        FindingKind::MissingColumn => pb::FindingKind::MissingColumn,
        FindingKind::UnknownColumn => pb::FindingKind::UnknownColumn,
        FindingKind::TypeError => pb::FindingKind::TypeError,
        FindingKind::Constraint => pb::FindingKind::Constraint,
        FindingKind::DuplicateInFile => pb::FindingKind::DuplicateInFile,
        FindingKind::DuplicateInRequest => pb::FindingKind::DuplicateInRequest,
        FindingKind::UnresolvedReference => pb::FindingKind::UnresolvedReference,
        FindingKind::MissingPrerequisite => pb::FindingKind::MissingPrerequisite,
        FindingKind::NotLoaded => pb::FindingKind::NotLoaded,
    }
}

fn finding(f: &Finding, policy: FailurePolicy) -> pb::Finding {
    pb::Finding {
        kind: finding_kind(f.kind) as i32,
        severity: if f.blocks(policy) {
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
        blocking: stale || r.blocks(policy),
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

impl ImportView {
    /// The stored analysis and whether the files changed since it ran.
    pub fn analysis(&self) -> Option<(AnalysisReport, bool)> {
        let report: AnalysisReport = serde_json::from_value(self.import.analysis.clone()?).ok()?;
        let files: Vec<import_files::Model> = self.files.iter().map(|f| f.file.clone()).collect();
        let stale = report.fingerprint != crate::analysis::fingerprint(&files);
        Some((report, stale))
    }

    pub fn policy(&self) -> FailurePolicy {
        FailurePolicy::parse(&self.import.failure_policy).unwrap_or(FailurePolicy::StopOnFirstError)
    }
}

/// One type of the catalog as the API shows it.
pub fn import_type(def: &ImportTypeDef) -> pb::ImportType {
    pb::ImportType {
        key: def.key.into(),
        display_name: def.display_name.into(),
        columns: def
            .columns
            .iter()
            .map(|c| pb::ColumnSpec {
                name: c.name.into(),
                kind: c.kind.name().into(),
                required: c.required,
                aliases: c.aliases.iter().map(|a| a.to_string()).collect(),
                values: c.kind.values().into_iter().map(String::from).collect(),
                sensitive: c.sensitive,
                description: c.kind.describe(),
            })
            .collect(),
        key_columns: def.key_columns.iter().map(|k| k.to_string()).collect(),
        references: def
            .references
            .iter()
            .map(|r| pb::ReferenceSpec {
                column: r.column.into(),
                describes: r.describes.into(),
                import_type: match r.target {
                    RefTarget::Records { type_key } => type_key.into(),
                    RefTarget::Setup { .. } => String::new(),
                },
            })
            .collect(),
        prerequisites: def
            .prerequisites
            .iter()
            .map(|p| p.missing.to_string())
            .collect(),
        dependencies: def.dependencies().into_iter().map(String::from).collect(),
        row_checks: def.row_checks.iter().map(|c| c.describe()).collect(),
        load_order: def.load_rank(),
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
        .and_then(|def| passare_imports_store::loader::file_mapping(def, f).ok())
        .unwrap_or_default();
    pb::ImportFile {
        id: f.id.to_string(),
        name: f.file_name.clone(),
        import_type: f.import_type.clone(),
        size_bytes: f.size_bytes,
        sha256: f.sha256.clone(),
        format: file_format(FileFormat::parse(&f.format)) as i32,
        row_count: f.row_count,
        state: FileState::parse(&f.state).map_or(pb::FileState::Unspecified, file_state) as i32,
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
    }
}

impl From<&ImportView> for pb::Import {
    fn from(v: &ImportView) -> Self {
        let i = &v.import;
        let files: Vec<pb::ImportFile> = v.files.iter().map(file).collect();
        let mut total = pb::Progress::default();
        for f in &files {
            if let Some(p) = &f.progress {
                add(&mut total, p);
            }
        }
        let state = ImportState::parse(&i.state);
        let paused =
            v.pause.is_some() && matches!(state, Some(ImportState::Queued | ImportState::Running));
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
                state.map_or(pb::ImportState::Unspecified, import_state)
            } as i32,
            failure_policy: FailurePolicy::parse(&i.failure_policy)
                .map_or(pb::FailurePolicy::Unspecified, policy_to_pb)
                as i32,
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
            queue_position: if state == Some(ImportState::Queued) {
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
            chunk_failure_count: v.chunk_failure_count.min(i32::MAX as i64) as i32,
            organization_name: v.organization_name.clone(),
            timeline: v.timeline.iter().map(timeline_event).collect(),
            attempt: i.attempt,
            results_purge_time: i.results_purged_at.as_ref().map(timestamp),
            // The background analysis comes with issue 10's worker job.
            analysis_job: None,
        }
    }
}

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

fn failure_outcome(outcome: &str) -> pb::ChunkFailureOutcome {
    match outcome {
        "retry_scheduled" => pb::ChunkFailureOutcome::RetryScheduled,
        "dead_lettered" => pb::ChunkFailureOutcome::DeadLettered,
        "failed" => pb::ChunkFailureOutcome::Failed,
        _ => pb::ChunkFailureOutcome::Unspecified,
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
        outcome: failure_outcome(&f.outcome) as i32,
        retry_time: f.retry_at.as_ref().map(timestamp),
        queue_time: Some(timestamp(&f.queued_at)),
        read_start_time: f.read_started_at.as_ref().map(timestamp),
        write_start_time: f.write_started_at.as_ref().map(timestamp),
        fail_time: Some(timestamp(&f.failed_at)),
    }
}

fn timeline_event(e: &import_events::Model) -> pb::TimelineEvent {
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
