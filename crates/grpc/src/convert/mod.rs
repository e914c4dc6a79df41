//! Conversions between the API's messages and the use cases' values: the
//! one place where proto types meet the rest of the service. Requests are
//! parsed here (ids, organizations, enums, times, free text), so a handler
//! receives typed values or an INVALID_ARGUMENT naming the field.

mod catalog;
mod header;
mod import;
mod monitor;
mod profiles;
mod records;

use chrono::DateTime;
use passare_imports_app::error::ApiError;
use passare_imports_app::identity::Caller;
use passare_imports_app::views::ImportView;
use passare_imports_domain::FindingKind;
use passare_imports_domain::catalog::{self as types, ImportTypeDef};
use passare_imports_proto::v1 as pb;
use passare_imports_store::Timestamp;
use passare_imports_store::states::{FailurePolicy, ImportState};
use uuid::Uuid;

pub use catalog::import_type;
pub use header::file_upload;
pub use import::{analysis, file, import, problem};
pub use monitor::{dead_letter, live_worker, monitor_rest, organization_queue};
pub use profiles::input as profile_input;
pub use profiles::{applied, profile, rule_effect, suggestion};
pub use records::{audit_event, chunk_failure, pause, row_error, upload};

pub fn timestamp<Tz: chrono::TimeZone>(t: &DateTime<Tz>) -> prost_types::Timestamp {
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
        ImportState::RollingBack => pb::ImportState::RollingBack,
    }
}

/// A terminal or draft state asked for by a request (QUEUED, RUNNING and
/// PAUSED are told apart by the pause switch; see `ListImports`).
pub fn import_state_from_pb(s: pb::ImportState) -> Result<ImportState, ApiError> {
    Ok(match s {
        pb::ImportState::Draft => ImportState::Draft,
        pb::ImportState::Queued => ImportState::Queued,
        pb::ImportState::Running => ImportState::Running,
        pb::ImportState::Completed => ImportState::Completed,
        pb::ImportState::CompletedWithErrors => ImportState::CompletedWithErrors,
        pb::ImportState::Failed => ImportState::Failed,
        pb::ImportState::Stopped => ImportState::Stopped,
        pb::ImportState::RollingBack => ImportState::RollingBack,
        pb::ImportState::Unspecified | pb::ImportState::Paused => {
            return Err(ApiError::invalid("state", "is not a stored state"));
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
        FindingKind::UnmappedValue => pb::FindingKind::UnmappedValue,
    }
}

/// A time of a request.
pub fn from_timestamp(t: &prost_types::Timestamp) -> Result<Timestamp, ApiError> {
    DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
        .map(|t| t.fixed_offset())
        .ok_or_else(|| ApiError::invalid("time", "is not a valid timestamp"))
}

/// A required id of a request.
pub fn uuid(field: &str, value: &str) -> Result<Uuid, ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    Uuid::parse_str(value.trim())
        .map_err(|_| ApiError::invalid(field, format!("{value:?} is not an import id")))
}

/// An optional id of a request: empty means none.
pub fn optional_uuid(field: &str, value: &str) -> Result<Option<Uuid>, ApiError> {
    match value.trim() {
        "" => Ok(None),
        id => uuid(field, id).map(Some),
    }
}

/// A required organization of a request.
pub fn org(value: &str) -> Result<i64, ApiError> {
    match value.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ if value.trim().is_empty() => Err(ApiError::invalid("organization_id", "is required")),
        _ => Err(ApiError::invalid(
            "organization_id",
            format!("{value:?} is not an organization id"),
        )),
    }
}

/// An optional organization of a request: empty means none (every one).
pub fn optional_org(value: &str) -> Result<Option<i64>, ApiError> {
    match value.trim() {
        "" => Ok(None),
        v => org(v).map(Some),
    }
}

/// Free text of a request, trimmed, at most `max` characters.
pub fn bounded_text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    Ok(value.to_string())
}

/// An import type named by a request.
pub fn import_type_named(field: &str, key: &str) -> Result<&'static ImportTypeDef, ApiError> {
    types::find(key).ok_or_else(|| {
        let known = types::CATALOG
            .iter()
            .map(|t| t.key)
            .collect::<Vec<_>>()
            .join(", ");
        ApiError::invalid(
            field,
            format!("{key:?} is not an import type; known types: {known}"),
        )
    })
}

/// The import as the caller is shown it: developer details (backtraces and
/// cause chains of failed chunk attempts) only for developers.
pub fn shown(who: &Caller, view: &ImportView) -> pb::Import {
    let mut shown = import(view);
    if !who.sees_developer_details() {
        for f in &mut shown.chunk_failures {
            redact(f);
        }
    }
    shown
}

/// Strips what only developers see from a failed chunk attempt.
pub fn redact(f: &mut pb::ChunkFailure) {
    f.backtrace.clear();
    f.causes.clear();
}
