//! Files in an S3 bucket (AWS, or an S3-compatible service such as MinIO,
//! Ceph or moto), through the `object_store` crate: what lets servers and
//! workers on many hosts share the uploaded files.
//!
//! A write buffers its first part in memory; a file smaller than a part is
//! stored with one PUT at commit, a larger one streams as a multipart upload
//! (parts of [`PART_BYTES`], two in flight) completed at commit, so it is
//! visible only then. A writer dropped uncommitted aborts its upload. An
//! upload whose process died stays incomplete and invisible: the bucket's
//! lifecycle rule `AbortIncompleteMultipartUpload` removes it
//! (docs/deployment.md). Requests that fail for a transient reason
//! (connection, 5xx, throttling) are retried by `object_store` with
//! exponential backoff (`IMPORTS_S3_MAX_RETRIES`,
//! `IMPORTS_S3_RETRY_TIMEOUT_SECS`); what still fails is
//! [`StorageError::Unavailable`], transient like a lost database connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::{FileStore, FileWriter, S3Config, StorageError, StoredObject, check_key};

/// Size of one part of a multipart upload (S3 takes 5 MiB to 5 GiB, and at
/// most 10,000 parts: 80 GB per file).
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts of one upload sent at once. A writer holds at most this many parts
/// plus the one it fills: 24 MiB, times the uploads a server takes at once
/// (`IMPORTS_MAX_CONCURRENT_UPLOADS`).
const PARTS_IN_FLIGHT: usize = 2;

/// An S3 bucket, under an optional prefix.
#[derive(Debug, Clone)]
pub struct S3FileStore {
    store: Arc<AmazonS3>,
    /// `""` or the prefix with its trailing `/`.
    prefix: String,
}

impl S3FileStore {
    /// A client of the bucket `config` names (nothing is sent yet).
    pub fn new(config: &S3Config) -> Result<Self, StorageError> {
        // TLS through rustls with ring, as the rest of the service; the
        // process-wide default may already be installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(15),
                base: 2.0,
            },
            max_retries: config.max_retries,
            retry_timeout: config.retry_timeout,
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_retry(retry);
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token);
        }
        let store = builder
            .build()
            .map_err(|e| StorageError::Config(format!("the S3 client: {e}")))?;
        let prefix = if config.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", config.prefix)
        };
        Ok(Self {
            store: Arc::new(store),
            prefix,
        })
    }

    /// Lists the bucket once (the first page under the prefix): see
    /// [`crate::open_store`].
    pub async fn check(&self, bucket: &str) -> Result<(), StorageError> {
        let root = ObjectPath::from(self.prefix.trim_end_matches('/'));
        let first = self.store.list(Some(&root)).next().await;
        match first.transpose().map_err(storage_err(bucket)) {
            Ok(_) => Ok(()),
            Err(StorageError::Unavailable { message, .. }) => {
                tracing::warn!(bucket, error = %message, "the S3 bucket does not answer yet; going on, storage calls will retry");
                Ok(())
            }
            Err(StorageError::NotFound(_)) => Err(StorageError::Config(format!(
                "the S3 bucket {bucket} does not exist (IMPORTS_S3_BUCKET, IMPORTS_S3_ENDPOINT, IMPORTS_S3_REGION)"
            ))),
            Err(e) => Err(StorageError::Config(format!(
                "the S3 bucket {bucket} cannot be used: {e}"
            ))),
        }
    }

    fn path(&self, key: &str) -> Result<ObjectPath, StorageError> {
        check_key(key)?;
        ObjectPath::parse(format!("{}{key}", self.prefix))
            .map_err(|_| StorageError::BadKey(key.to_string()))
    }
}

/// An `object_store` error as the service sees it: missing, refused for
/// good, or unavailable (after the client's own retries).
fn storage_err(key: &str) -> impl FnOnce(object_store::Error) -> StorageError + '_ {
    move |e| {
        use object_store::Error as E;
        let key = key.to_string();
        match e {
            E::NotFound { .. } => StorageError::NotFound(key),
            E::InvalidPath { .. } => StorageError::BadKey(key),
            E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::UnknownConfigurationKey { .. } => StorageError::Refused {
                key,
                message: e.to_string(),
            },
            other => {
                let message = other.to_string();
                match status_in(&message) {
                    Some(404) => StorageError::NotFound(key),
                    // Timeouts and throttling pass; other client errors do not.
                    Some(status)
                        if (400..500).contains(&status) && status != 408 && status != 429 =>
                    {
                        StorageError::Refused { key, message }
                    }
                    _ => StorageError::Unavailable { key, message },
                }
            }
        }
    }
}

/// The HTTP status an `object_store` error reports in its message
/// ("… non-2xx status code: 403 Forbidden …"): the crate does not expose
/// the status of its generic errors otherwise.
fn status_in(message: &str) -> Option<u16> {
    let (_, after) = message.split_once("status code: ")?;
    after.get(..3)?.parse().ok()
}

struct S3Writer {
    store: Arc<AmazonS3>,
    key: String,
    path: ObjectPath,
    /// The bytes before the first part is full.
    first: Vec<u8>,
    upload: Option<WriteMultipart>,
    size: u64,
}

#[async_trait]
impl FileWriter for S3Writer {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.size += bytes.len() as u64;
        if let Some(upload) = self.upload.as_mut() {
            upload
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(storage_err(&self.key))?;
            upload.write(bytes);
            return Ok(());
        }
        self.first.extend_from_slice(bytes);
        if self.first.len() >= PART_BYTES {
            let started = self
                .store
                .put_multipart(&self.path)
                .await
                .map_err(storage_err(&self.key))?;
            let mut upload = WriteMultipart::new_with_chunk_size(started, PART_BYTES);
            upload.put(Bytes::from(std::mem::take(&mut self.first)));
            self.upload = Some(upload);
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        let key = self.key.clone();
        match self.upload.take() {
            Some(upload) => {
                upload.finish().await.map_err(storage_err(&key))?;
            }
            None => {
                let bytes = Bytes::from(std::mem::take(&mut self.first));
                self.store
                    .put(&self.path, PutPayload::from(bytes))
                    .await
                    .map_err(storage_err(&key))?;
            }
        }
        Ok(self.size)
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // Not committed: the parts sent so far must not survive.
        if let Some(upload) = self.upload.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(error = %e, "aborting an unfinished multipart upload failed; the bucket's lifecycle rule will remove it");
                }
            });
        }
    }
}

#[async_trait]
impl FileStore for S3FileStore {
    async fn create(&self, key: &str) -> Result<Box<dyn FileWriter>, StorageError> {
        Ok(Box::new(S3Writer {
            store: self.store.clone(),
            key: key.to_string(),
            path: self.path(key)?,
            first: Vec::new(),
            upload: None,
            size: 0,
        }))
    }

    async fn open(&self, key: &str) -> Result<Pin<Box<dyn AsyncRead + Send>>, StorageError> {
        let got = self
            .store
            .get(&self.path(key)?)
            .await
            .map_err(storage_err(key))?;
        let bytes = got.into_stream().map_err(io::Error::other);
        Ok(Box::pin(tokio::io::BufReader::with_capacity(
            256 * 1024,
            tokio_util::io::StreamReader::new(bytes),
        )))
    }

    async fn read_range(&self, key: &str, start: u64, end: u64) -> Result<Bytes, StorageError> {
        let path = self.path(key)?;
        if end <= start {
            return Ok(Bytes::new());
        }
        let bytes = self.store.get_range(&path, start..end).await.map_err(|e| {
            match status_in(&e.to_string()) {
                // A range past the end of the object, as the local store
                // reports a file shorter than the range.
                Some(416) => StorageError::Io {
                    key: key.to_string(),
                    source: io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()),
                },
                _ => storage_err(key)(e),
            }
        })?;
        if (bytes.len() as u64) != end - start {
            return Err(StorageError::Io {
                key: key.to_string(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "wanted bytes {start}..{end}, the object ended after {}",
                        start + bytes.len() as u64
                    ),
                ),
            });
        }
        Ok(bytes)
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.store.delete(&self.path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_err(key)(e)),
        }
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<StoredObject, StorageError>> {
        // object_store lists whole folders: list the deepest folder the
        // prefix names and keep the keys that start with it, as the local
        // store does.
        let folder = match prefix.rfind('/') {
            Some(end) => format!("{}{}", self.prefix, &prefix[..end]),
            None => self.prefix.trim_end_matches('/').to_string(),
        };
        let folder = match ObjectPath::parse(&folder) {
            Ok(folder) => folder,
            Err(_) => return futures::stream::empty().boxed(),
        };
        let root = self.prefix.clone();
        let wanted = prefix.to_string();
        self.store
            .list(Some(&folder))
            .filter_map(move |found| {
                let root = root.clone();
                let wanted = wanted.clone();
                async move {
                    let meta = match found {
                        Ok(meta) => meta,
                        Err(e) => return Some(Err(storage_err(&wanted)(e))),
                    };
                    let key = meta.location.as_ref().strip_prefix(&root)?.to_string();
                    key.starts_with(&wanted).then(|| {
                        Ok(StoredObject {
                            key,
                            size: meta.size,
                            modified: SystemTime::from(meta.last_modified),
                            partial: false,
                        })
                    })
                }
            })
            .boxed()
    }
}

/// Creates `bucket` on the S3-compatible test server at `endpoint`
/// (`http://host:port`) with one unsigned `PUT /{bucket}`, as moto accepts;
/// a bucket that exists already is fine. For tests and the benchmark only:
/// production buckets are made (with their lifecycle rule) by operations.
pub async fn create_bucket_unsigned(endpoint: &str, bucket: &str) -> Result<(), StorageError> {
    let failed = |message: String| StorageError::Unavailable {
        key: bucket.to_string(),
        message,
    };
    let host = endpoint
        .strip_prefix("http://")
        .map(|h| h.trim_end_matches('/'))
        .ok_or_else(|| StorageError::Config(format!("{endpoint} is not an http:// URL")))?;
    let mut conn = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| failed(format!("connecting to {host}: {e}")))?;
    let request = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes())
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.split_whitespace().nth(1).unwrap_or_default();
    if status == "200" || answer.contains("BucketAlreadyOwnedByYou") {
        Ok(())
    } else {
        Err(failed(format!(
            "creating the bucket: {}",
            answer.lines().next().unwrap_or_default()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::status_in;

    #[test]
    fn statuses_are_read_from_messages() {
        let m = "Generic S3 error: Error performing GET http://x/b?list-type=2 in 2ms - Server returned non-2xx status code: 404 Not Found: <Error><Code>NoSuchBucket</Code></Error>";
        assert_eq!(status_in(m), Some(404));
        assert_eq!(status_in("HTTP error: error sending request"), None);
    }
}
