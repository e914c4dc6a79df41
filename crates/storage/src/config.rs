//! Which file store a process opens, and how it reaches S3.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::StorageError;

/// Where uploaded files live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// A local (or mounted) directory: one machine.
    #[default]
    Local,
    /// An S3 bucket, or an S3-compatible service's: any number of hosts.
    S3,
}

/// How to open the file store (`open_store`).
#[derive(Debug, Clone, Default)]
pub struct StorageConfig {
    pub kind: StorageKind,
    /// The directory of the local store.
    pub dir: PathBuf,
    pub s3: S3Config,
}

/// An S3 bucket. Unset credentials and region come from the usual AWS
/// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`), then from the
/// instance or container credentials the AWS environment provides.
#[derive(Clone, Default)]
pub struct S3Config {
    pub bucket: String,
    /// Folder of the bucket every key goes under (`""`: the bucket's root).
    pub prefix: String,
    /// Endpoint of an S3-compatible service (`http://` allowed); AWS's when unset.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    /// Never logged.
    pub secret_access_key: Option<String>,
    /// Never logged.
    pub session_token: Option<String>,
    /// Retries of one request that failed for a transient reason
    /// (connection, 5xx, throttling), with exponential backoff.
    pub max_retries: usize,
    /// Longest one request keeps being retried.
    pub retry_timeout: Duration,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("max_retries", &self.max_retries)
            .field("retry_timeout", &self.retry_timeout)
            .finish()
    }
}

impl StorageConfig {
    /// Checks what can be checked without asking the store.
    pub fn validate(&self) -> Result<(), StorageError> {
        let bad = |m: String| Err(StorageError::Config(m));
        match self.kind {
            StorageKind::Local if self.dir.as_os_str().is_empty() => {
                bad("IMPORTS_STORAGE_DIR must not be empty".into())
            }
            StorageKind::Local => Ok(()),
            StorageKind::S3 => self.s3.validate(),
        }
    }
}

impl S3Config {
    fn validate(&self) -> Result<(), StorageError> {
        let bad = |m: String| Err(StorageError::Config(m));
        let b = &self.bucket;
        let bucket_chars = b
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !(3..=63).contains(&b.len()) || !bucket_chars || b.starts_with(['-', '.']) {
            return bad(format!(
                "IMPORTS_STORAGE=s3 needs IMPORTS_S3_BUCKET, a bucket name of 3 to 63 lowercase letters, digits, '-' or '.' (got {b:?})"
            ));
        }
        let p = &self.prefix;
        if !p.is_empty()
            && (p.starts_with('/')
                || p.ends_with('/')
                || p.split('/').any(|s| s.is_empty() || s == "." || s == ".."))
        {
            return bad(format!(
                "IMPORTS_S3_PREFIX must be folder names joined by '/', without a leading or trailing '/' (got {p:?})"
            ));
        }
        if let Some(e) = &self.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return bad(format!(
                "IMPORTS_S3_ENDPOINT must be an http:// or https:// URL (got {e:?})"
            ));
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return bad(
                "set both IMPORTS_S3_ACCESS_KEY_ID and IMPORTS_S3_SECRET_ACCESS_KEY, or neither (then the AWS variables are used)"
                    .into(),
            );
        }
        if self.retry_timeout.is_zero() || self.max_retries > 100 {
            return bad(
                "IMPORTS_S3_RETRY_TIMEOUT_SECS must be at least 1 and IMPORTS_S3_MAX_RETRIES at most 100"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(bucket: &str, prefix: &str) -> StorageConfig {
        StorageConfig {
            kind: StorageKind::S3,
            dir: PathBuf::new(),
            s3: S3Config {
                bucket: bucket.into(),
                prefix: prefix.into(),
                retry_timeout: Duration::from_secs(10),
                ..S3Config::default()
            },
        }
    }

    #[test]
    fn bucket_and_prefix_are_checked() {
        assert!(s3("imports-bucket", "").validate().is_ok());
        assert!(s3("imports-bucket", "passare/imports").validate().is_ok());
        for (bucket, prefix) in [
            ("", ""),
            ("Upper", ""),
            ("ok-bucket", "/x"),
            ("ok-bucket", "x/"),
            ("ok-bucket", "a//b"),
            ("ok-bucket", "a/../b"),
        ] {
            assert!(
                matches!(s3(bucket, prefix).validate(), Err(StorageError::Config(_))),
                "{bucket} {prefix}"
            );
        }
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let mut config = s3("imports-bucket", "");
        config.s3.access_key_id = Some("AKIDEXAMPLE".into());
        config.s3.secret_access_key = Some("very-secret-key".into());
        config.s3.session_token = Some("very-secret-token".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
