//! The one table from the use cases' errors to gRPC status codes, with
//! google.rpc details: an ErrorInfo always (domain, reason, metadata);
//! BadRequest field violations and PreconditionFailure where they apply;
//! RetryInfo on UNAVAILABLE. Internal errors show none of their cause.

use std::collections::HashMap;

use passare_imports_app::error::{ApiError, ERROR_DOMAIN};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// How long a caller refused for a cap is asked to wait (RetryInfo).
pub const QUOTA_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// The status code of each kind of error.
fn code(e: &ApiError) -> Code {
    match e {
        ApiError::InvalidArgument { .. } => Code::InvalidArgument,
        ApiError::NotFound { .. } => Code::NotFound,
        ApiError::FailedPrecondition { .. } => Code::FailedPrecondition,
        ApiError::AlreadyExists { .. } => Code::AlreadyExists,
        ApiError::Unauthenticated(_) => Code::Unauthenticated,
        ApiError::PermissionDenied(_) => Code::PermissionDenied,
        ApiError::ResourceExhausted(_) | ApiError::Quota { .. } => Code::ResourceExhausted,
        ApiError::WatchEnded(_) => Code::Unavailable,
        ApiError::DeadlineExceeded { .. } => Code::DeadlineExceeded,
        ApiError::Unavailable(_) => Code::Unavailable,
        ApiError::Aborted(_) => Code::Aborted,
        ApiError::Internal(_) => Code::Internal,
    }
}

/// The status a client receives for an error.
pub fn status(e: ApiError) -> Status {
    let mut details = ErrorDetails::new();
    let mut metadata = HashMap::new();
    match &e {
        ApiError::NotFound { kind, id } => {
            metadata.insert("resource".to_string(), kind.to_string());
            metadata.insert("id".to_string(), id.clone());
        }
        ApiError::FailedPrecondition { info, .. } => {
            metadata.extend(info.iter().map(|(k, v)| (k.to_string(), v.clone())));
        }
        ApiError::Quota { key, .. } => {
            metadata.insert("limit".to_string(), key.to_string());
        }
        ApiError::WatchEnded(_) => {
            metadata.insert("limit".to_string(), "IMPORTS_WATCH_MAX_SECS".to_string());
        }
        _ => {}
    }
    details.set_error_info(e.reason(), ERROR_DOMAIN, metadata);
    match &e {
        ApiError::InvalidArgument { violations, .. }
        | ApiError::AlreadyExists { violations, .. } => {
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
        ApiError::Quota {
            key,
            subject,
            message,
        } => {
            details.add_quota_failure_violation(subject.clone(), format!("{key}: {message}"));
            // A slot frees when a stream ends: ask clients to wait a moment
            // rather than retry at once.
            details.set_retry_info(Some(QUOTA_RETRY));
        }
        ApiError::WatchEnded(_) => {
            // Nothing is wrong: watch again at once.
            details.set_retry_info(Some(std::time::Duration::ZERO));
        }
        _ => {}
    }
    Status::with_error_details(code(&e), e.public_message(), details)
}

#[cfg(test)]
mod tests {
    use passare_imports_app::error::Precondition;

    use super::*;

    #[test]
    fn precondition_failures_carry_structured_details() {
        let s = status(ApiError::FailedPrecondition {
            reason: "MISSING_PREREQUISITE",
            message: "organization 42 has no location; needed by cases.csv".into(),
            preconditions: vec![Precondition {
                kind: "PREREQUISITE".into(),
                subject: "organizations/42".into(),
                description: "has no location; needed by cases.csv".into(),
            }],
            violations: vec![],
            info: vec![],
        });
        assert_eq!(s.code(), Code::FailedPrecondition);
        let details = s.get_error_details();
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
        let s = status(ApiError::Internal("relation \"x\" does not exist".into()));
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("relation"));
    }
}
