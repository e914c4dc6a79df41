//! The errors of the use cases, as the API reports them: each names its
//! kind (invalid argument, not found, failed precondition, …), a stable
//! reason and the details a client needs to render it (field violations,
//! preconditions). The gRPC adapter maps each kind to its status code in
//! one table; nothing here knows gRPC. Internal errors keep their cause for
//! the logs and show none of it to callers.

use passare_imports_queue::QueueError;
use passare_imports_storage::StorageError;
use passare_imports_store::StoreError;

/// Domain of every ErrorInfo this service sends.
pub const ERROR_DOMAIN: &str = "imports.passare.com";

/// A field of the request that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// A precondition that does not hold: its type, its subject, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precondition {
    pub kind: String,
    pub subject: String,
    pub description: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidArgument {
        reason: &'static str,
        message: String,
        violations: Vec<FieldViolation>,
    },
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{message}")]
    FailedPrecondition {
        reason: &'static str,
        message: String,
        preconditions: Vec<Precondition>,
        violations: Vec<FieldViolation>,
        /// Machine-readable facts for the ErrorInfo's metadata (the committed
        /// offset of an upload a part did not follow, say).
        info: Vec<(&'static str, String)>,
    },
    /// The request reuses an idempotency key (`request_id`) with other
    /// parameters; the violations name the fields that differ.
    #[error("{message}")]
    AlreadyExists {
        reason: &'static str,
        message: String,
        violations: Vec<FieldViolation>,
    },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// A cap on concurrent calls (uploads, watch streams, downloads) is
    /// reached: `key` is the configuration key of the cap, `subject` who
    /// hit it (`users/<id>` or `server`).
    #[error("{message}")]
    Quota {
        key: &'static str,
        subject: String,
        message: String,
    },
    /// A watch stream reached its longest duration; the client watches again.
    #[error("{0}")]
    WatchEnded(String),
    /// A bound on time was passed: an idle upload (`UPLOAD_IDLE`), a unary
    /// call over its deadline (`CALL_TIMEOUT`), a stream whose client
    /// stopped reading (`STREAM_STALLED`).
    #[error("{message}")]
    DeadlineExceeded {
        reason: &'static str,
        message: String,
    },
    #[error("{0}")]
    Unavailable(String),
    /// A concurrent change; the call may be retried as it is.
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A request field that is missing or malformed.
    pub fn invalid(field: &str, description: impl Into<String>) -> Self {
        let description = description.into();
        ApiError::InvalidArgument {
            reason: "INVALID_FIELD",
            message: format!("{field}: {description}"),
            violations: vec![FieldViolation {
                field: field.into(),
                description,
            }],
        }
    }

    pub fn not_found(kind: &'static str, id: impl ToString) -> Self {
        ApiError::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    /// A state that does not allow the call, with one precondition naming it.
    pub fn precondition(
        reason: &'static str,
        message: impl Into<String>,
        kind: &str,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        ApiError::FailedPrecondition {
            reason,
            message: message.into(),
            preconditions: vec![Precondition {
                kind: kind.into(),
                subject: subject.into(),
                description: description.into(),
            }],
            violations: vec![],
            info: vec![],
        }
    }

    /// The stable, machine-readable reason of the error.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::InvalidArgument { reason, .. }
            | ApiError::FailedPrecondition { reason, .. }
            | ApiError::AlreadyExists { reason, .. }
            | ApiError::DeadlineExceeded { reason, .. } => reason,
            ApiError::NotFound { .. } => "NOT_FOUND",
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::PermissionDenied(_) => "NOT_SUPER_ADMIN",
            ApiError::ResourceExhausted(_) | ApiError::Quota { .. } => "LIMIT_REACHED",
            ApiError::WatchEnded(_) => "WATCH_ENDED",
            ApiError::Unavailable(_) => "DEPENDENCY_UNAVAILABLE",
            ApiError::Aborted(_) => "CONCURRENT_CHANGE",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    /// What a caller is told: the message, except for internal errors,
    /// whose cause stays in the logs.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Internal(_) => "internal error; the service logged the details".to_string(),
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::Unavailable("the database is unavailable; try again".into())
        } else {
            tracing::error!(error = %e, "database error");
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        tracing::warn!(error = %e, "broker unavailable");
        ApiError::Unavailable("the message broker is unavailable; try again".into())
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        if let StorageError::Unavailable { .. } = e {
            tracing::warn!(error = %e, "file storage unavailable");
            ApiError::Unavailable("the file storage is unavailable; try again".into())
        } else {
            tracing::error!(error = %e, "file storage error");
            ApiError::Internal(e.to_string())
        }
    }
}

/// Files can be added, removed or analysed only while an import is a draft;
/// `rule` says which ("files can be added only to a draft import").
pub fn not_a_draft(state: impl std::fmt::Display, rule: &str) -> ApiError {
    ApiError::precondition(
        "IMPORT_NOT_DRAFT",
        format!("{rule}; this import is {state}"),
        "STATE",
        "import",
        format!("import is {state}, not draft"),
    )
}

/// Failed rows can be edited or retried only after an import completed with errors.
pub fn not_retryable(state: impl std::fmt::Display) -> ApiError {
    ApiError::precondition(
        "IMPORT_NOT_RETRYABLE",
        format!(
            "only an import that completed with errors can have its failed rows edited or retried; this import is {state}"
        ),
        "STATE",
        "import",
        format!("import is {state}, not completed_with_errors"),
    )
}

/// The retention job deleted what the call needs.
pub fn purged(import_id: uuid::Uuid) -> ApiError {
    ApiError::precondition(
        "RESULTS_PURGED",
        "the import's uploaded files and row-level results were deleted by the retention policy (IMPORTS_RETENTION_DAYS); its summary remains",
        "RETENTION",
        format!("imports/{import_id}"),
        "results purged",
    )
}

/// An import holds at most so many files.
pub fn too_many_files(max: u64) -> ApiError {
    ApiError::ResourceExhausted(format!(
        "an import may hold at most {max} files (IMPORTS_MAX_FILES_PER_IMPORT); start another import for the rest"
    ))
}

/// An import with no files can be neither analysed nor started.
pub fn no_files(doing: &str) -> ApiError {
    ApiError::precondition(
        "NO_FILES",
        format!("the import has no files; upload at least one before {doing}"),
        "FILES",
        "import",
        "no files uploaded",
    )
}

/// AIP-155: a request repeating a `request_id` must repeat its parameters.
/// `fields` pairs each parameter with whether it equals the first request's;
/// any that differs refuses the request (ALREADY_EXISTS, `REQUEST_ID_REUSED`,
/// the differing fields as BadRequest violations) instead of answering with
/// `first` (what the first request made: "import 0190…").
pub fn same_request(first: &str, fields: &[(&str, bool)]) -> Result<(), ApiError> {
    let differ: Vec<FieldViolation> = fields
        .iter()
        .filter(|(_, same)| !same)
        .map(|(name, _)| FieldViolation {
            field: name.to_string(),
            description: "differs from the first request with this request_id".into(),
        })
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    Err(ApiError::AlreadyExists {
        reason: "REQUEST_ID_REUSED",
        message: format!(
            "request_id was already used for {first} with other parameters ({})",
            differ
                .iter()
                .map(|v| v.field.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        violations: differ,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_show_their_cause() {
        let e = ApiError::Internal("relation \"x\" does not exist".into());
        assert_eq!(e.reason(), "INTERNAL");
        assert!(!e.public_message().contains("relation"));
    }

    #[test]
    fn invalid_fields_name_the_field() {
        let e = ApiError::invalid("header.delimiter", "is not a delimiter");
        assert_eq!(e.to_string(), "header.delimiter: is not a delimiter");
        assert_eq!(e.reason(), "INVALID_FIELD");
    }
}
