//! The one table from service errors to gRPC status codes, with google.rpc
//! details (ErrorInfo always; BadRequest or PreconditionFailure where they
//! apply). Internal errors are logged with their cause and returned without it.

use std::collections::HashMap;

use passare_imports_queue::QueueError;
use passare_imports_storage::StorageError;
use passare_imports_store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

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
    },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error("{0}")]
    Unavailable(String),
    /// A concurrent change; the call may be retried as it is.
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
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

    fn reason(&self) -> &'static str {
        match self {
            ApiError::InvalidArgument { reason, .. }
            | ApiError::FailedPrecondition { reason, .. } => reason,
            ApiError::NotFound { .. } => "NOT_FOUND",
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::PermissionDenied(_) => "NOT_SUPER_ADMIN",
            ApiError::ResourceExhausted(_) => "LIMIT_REACHED",
            ApiError::DeadlineExceeded(_) => "UPLOAD_IDLE",
            ApiError::Unavailable(_) => "DEPENDENCY_UNAVAILABLE",
            ApiError::Aborted(_) => "CONCURRENT_CHANGE",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument { .. } => Code::InvalidArgument,
            ApiError::NotFound { .. } => Code::NotFound,
            ApiError::FailedPrecondition { .. } => Code::FailedPrecondition,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::ResourceExhausted(_) => Code::ResourceExhausted,
            ApiError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Aborted(_) => Code::Aborted,
            ApiError::Internal(_) => Code::Internal,
        }
    }

    pub fn into_status(self) -> Status {
        let mut details = ErrorDetails::new();
        let mut metadata = HashMap::new();
        if let ApiError::NotFound { kind, id } = &self {
            metadata.insert("resource".to_string(), kind.to_string());
            metadata.insert("id".to_string(), id.clone());
        }
        details.set_error_info(self.reason(), ERROR_DOMAIN, metadata);
        match &self {
            ApiError::InvalidArgument { violations, .. } => {
                for v in violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
            }
            ApiError::FailedPrecondition {
                preconditions,
                violations,
                ..
            } => {
                for p in preconditions {
                    details.add_precondition_failure_violation(
                        p.kind.clone(),
                        p.subject.clone(),
                        p.description.clone(),
                    );
                }
                for v in violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
            }
            ApiError::Unavailable(_) => {
                details.set_retry_info(Some(std::time::Duration::from_secs(1)));
            }
            _ => {}
        }
        let message = match &self {
            ApiError::Internal(_) => "internal error; the service logged the details".to_string(),
            other => other.to_string(),
        };
        Status::with_error_details(self.code(), message, details)
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        e.into_status()
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

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        StoreError::from(e).into()
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
        tracing::error!(error = %e, "file storage error");
        ApiError::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precondition_failures_carry_structured_details() {
        let status = ApiError::FailedPrecondition {
            reason: "MISSING_PREREQUISITE",
            message: "organization 42 has no location; needed by cases.csv".into(),
            preconditions: vec![Precondition {
                kind: "PREREQUISITE".into(),
                subject: "organizations/42".into(),
                description: "has no location; needed by cases.csv".into(),
            }],
            violations: vec![],
        }
        .into_status();
        assert_eq!(status.code(), Code::FailedPrecondition);
        let details = status.get_error_details();
        assert_eq!(
            details.error_info().map(|i| i.reason.as_str()),
            Some("MISSING_PREREQUISITE")
        );
        assert_eq!(
            details.precondition_failure().map(|p| p.violations.len()),
            Some(1)
        );
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let status = ApiError::Internal("relation \"x\" does not exist".into()).into_status();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("relation"));
    }
}
