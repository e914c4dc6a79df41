//! Durable storage of uploaded files. The service speaks to [`FileStore`]
//! only: a local directory ([`LocalFileStore`], the default for one machine)
//! or S3 and S3-compatible object storage ([`S3FileStore`]), chosen by
//! [`open_store`] from the configuration. Writes are atomic: a file is
//! visible under its key only after [`FileWriter::commit`].

use std::io;
use std::path::{Component, Path};
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use tokio::io::AsyncRead;

mod config;
mod local;
mod s3;
#[cfg(test)]
mod tests;

pub use config::{S3Config, StorageConfig, StorageKind};
pub use local::LocalFileStore;
pub use s3::{S3FileStore, create_bucket_unsigned};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no stored file under key {0}")]
    NotFound(String),
    #[error("storage key {0} is not a relative path of plain names")]
    BadKey(String),
    #[error("stored file {key} ends at byte {ends}, before the wanted range {start}..{end}")]
    Truncated {
        key: String,
        start: u64,
        end: u64,
        ends: u64,
    },
    #[error("storage i/o failed for {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: io::Error,
    },
    /// The object store did not answer, or answered with a server error or
    /// throttling, after its own retries: another attempt later may succeed.
    #[error("object storage unavailable for {key}: {message}")]
    Unavailable { key: String, message: String },
    /// The object store refused the request for good (credentials,
    /// permissions, a missing bucket, an unsupported operation).
    #[error("object storage refused {key}: {message}")]
    Refused { key: String, message: String },
    #[error("storage configuration: {0}")]
    Config(String),
}

impl StorageError {
    /// Whether another attempt may succeed, as for a lost database
    /// connection: local i/o errors and an unavailable object store.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StorageError::Io { .. } | StorageError::Unavailable { .. }
        )
    }
}

/// Whether `key` is a relative path of plain names (no `..`, no root, not
/// empty): the only keys either store takes.
pub(crate) fn check_key(key: &str) -> Result<(), StorageError> {
    let plain = !key.is_empty()
        && !key.ends_with('/')
        && Path::new(key)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if plain {
        Ok(())
    } else {
        Err(StorageError::BadKey(key.to_string()))
    }
}

/// The file store the configuration names: the local directory (created if
/// missing), or the S3 bucket, whose client (retries included) it builds
/// and checks with one listing: a bucket that does not exist or refuses the
/// credentials stops the process at start with a clear message, while a
/// store that does not answer is only logged (the process rides out an
/// outage as at any other time).
pub async fn open_store(config: &StorageConfig) -> Result<Arc<dyn FileStore>, StorageError> {
    config.validate()?;
    Ok(match config.kind {
        StorageKind::Local => Arc::new(LocalFileStore::new(&config.dir).await?),
        StorageKind::S3 => {
            let store = S3FileStore::new(&config.s3)?;
            store.check(&config.s3.bucket).await?;
            Arc::new(store)
        }
    })
}

/// What marks the bytes of a write that was never committed: a writer
/// writes beside its key, under a name holding this mark, until it commits.
pub const PARTIAL_MARK: &str = ".partial-";

/// One stored object, as [`FileStore::list`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Its key; for a partial write, the key of its temporary bytes (which
    /// [`FileStore::delete`] takes like any key).
    pub key: String,
    pub size: u64,
    /// When it was last written.
    pub modified: SystemTime,
    /// The bytes of a write never committed: readable under no file's key.
    /// Left behind only when the writing process died mid-write. Always
    /// false in S3, where an unfinished write is an incomplete multipart
    /// upload, never listed (the bucket's lifecycle rule removes it).
    pub partial: bool,
}

/// A file being written. Dropped without `commit`, it leaves nothing behind.
#[async_trait]
pub trait FileWriter: Send {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError>;
    /// Makes the file durable and visible under its key; returns its size.
    async fn commit(self: Box<Self>) -> Result<u64, StorageError>;
}

/// Where uploaded files live.
#[async_trait]
pub trait FileStore: Send + Sync + 'static {
    async fn create(&self, key: &str) -> Result<Box<dyn FileWriter>, StorageError>;
    /// A reader over the whole file.
    async fn open(&self, key: &str) -> Result<Pin<Box<dyn AsyncRead + Send>>, StorageError>;
    /// The bytes in `[start, end)`.
    async fn read_range(&self, key: &str, start: u64, end: u64) -> Result<Bytes, StorageError>;
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Every object whose key starts with `prefix` (a folder such as
    /// `imports/`), partial writes included, in no particular order. The
    /// listing streams: a store of millions of objects is never held whole.
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<StoredObject, StorageError>>;
}
