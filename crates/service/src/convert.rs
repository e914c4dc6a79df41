//! Conversions between stored models and the API's messages: the one place
//! where proto types meet the domain.

use chrono::{DateTime, FixedOffset};
use passare_imports_domain::{FailurePolicy, FileFormat, FileState, ImportState, RowProblem};
use passare_imports_proto::v1 as pb;
use passare_imports_store::entities::{import_files, imports};

/// An import with everything its message shows.
#[derive(Debug, Clone)]
pub struct ImportView {
    pub import: imports::Model,
    pub files: Vec<FileView>,
    pub queue_position: u64,
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
}

pub fn file(v: &FileView) -> pb::ImportFile {
    let f = &v.file;
    let headers: Vec<String> = serde_json::from_value(f.headers.clone()).unwrap_or_default();
    let mapped = passare_imports_domain::catalog::find(&f.import_type)
        .map(|def| def.map_headers(&headers))
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
            state: state.map_or(pb::ImportState::Unspecified, import_state) as i32,
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
        }
    }
}
