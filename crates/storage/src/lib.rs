//! Durable storage of uploaded files. The service speaks to [`FileStore`]
//! only, so object storage can replace the local directory without touching
//! uploads or workers. Writes are atomic: a file is visible under its key only
//! after [`FileWriter::commit`].

use std::io;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use tokio::fs;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

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
    /// Left behind only when the writing process died mid-write.
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

/// Files in a local (or mounted) directory.
#[derive(Debug, Clone)]
pub struct LocalFileStore {
    root: PathBuf,
}

impl LocalFileStore {
    pub async fn new(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        fs::create_dir_all(&root)
            .await
            .map_err(|source| StorageError::Io {
                key: root.display().to_string(),
                source,
            })?;
        Ok(Self { root })
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        let rel = Path::new(key);
        let plain = !key.is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(StorageError::BadKey(key.to_string()));
        }
        Ok(self.root.join(rel))
    }
}

fn io_err(key: &str) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| {
        if source.kind() == io::ErrorKind::NotFound {
            StorageError::NotFound(key.to_string())
        } else {
            StorageError::Io {
                key: key.to_string(),
                source,
            }
        }
    }
}

struct LocalWriter {
    key: String,
    tmp: PathBuf,
    dest: PathBuf,
    file: Option<fs::File>,
    size: u64,
}

#[async_trait]
impl FileWriter for LocalWriter {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let key = self.key.clone();
        let file = self.file.as_mut().ok_or_else(|| StorageError::Io {
            key: key.clone(),
            source: io::Error::other("writer already committed"),
        })?;
        file.write_all(bytes).await.map_err(io_err(&key))?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        let key = self.key.clone();
        if let Some(mut file) = self.file.take() {
            file.flush().await.map_err(io_err(&key))?;
            file.sync_all().await.map_err(io_err(&key))?;
        }
        fs::rename(&self.tmp, &self.dest)
            .await
            .map_err(io_err(&key))?;
        Ok(self.size)
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            // Not committed: the partial upload must not survive.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[async_trait]
impl FileStore for LocalFileStore {
    async fn create(&self, key: &str) -> Result<Box<dyn FileWriter>, StorageError> {
        let dest = self.path(key)?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).await.map_err(io_err(key))?;
        }
        let mut tmp = dest.clone().into_os_string();
        tmp.push(format!("{PARTIAL_MARK}{}", uuid::Uuid::new_v4()));
        let tmp = PathBuf::from(tmp);
        let file = fs::File::create(&tmp).await.map_err(io_err(key))?;
        Ok(Box::new(LocalWriter {
            key: key.to_string(),
            tmp,
            dest,
            file: Some(file),
            size: 0,
        }))
    }

    async fn open(&self, key: &str) -> Result<Pin<Box<dyn AsyncRead + Send>>, StorageError> {
        let file = fs::File::open(self.path(key)?).await.map_err(io_err(key))?;
        Ok(Box::pin(tokio::io::BufReader::with_capacity(
            256 * 1024,
            file,
        )))
    }

    async fn read_range(&self, key: &str, start: u64, end: u64) -> Result<Bytes, StorageError> {
        let mut file = fs::File::open(self.path(key)?).await.map_err(io_err(key))?;
        file.seek(io::SeekFrom::Start(start))
            .await
            .map_err(io_err(key))?;
        let len = end.saturating_sub(start);
        let mut buf = Vec::with_capacity(len as usize);
        (&mut file)
            .take(len)
            .read_to_end(&mut buf)
            .await
            .map_err(io_err(key))?;
        if (buf.len() as u64) != len {
            return Err(StorageError::Io {
                key: key.to_string(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "wanted bytes {start}..{end}, the file ended after {}",
                        start + buf.len() as u64
                    ),
                ),
            });
        }
        Ok(Bytes::from(buf))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match fs::remove_file(self.path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(key)(e)),
        }
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<StoredObject, StorageError>> {
        // Walking a directory tree is blocking work: it runs on the blocking
        // pool and hands objects over a bounded channel, so memory stays flat.
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            for found in walk(&root, &prefix) {
                if tx.blocking_send(found).is_err() {
                    return; // the caller stopped listening
                }
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }
}

/// The regular files under `root` whose key starts with `prefix`; symbolic
/// links are neither followed nor listed.
fn walk(root: &Path, prefix: &str) -> impl Iterator<Item = Result<StoredObject, StorageError>> {
    // Start from the deepest folder the prefix names, not the whole root.
    let folder = match prefix.rfind('/') {
        Some(end) => root.join(&prefix[..end]),
        None => root.to_path_buf(),
    };
    let root = root.to_path_buf();
    let prefix = prefix.to_string();
    walkdir::WalkDir::new(folder)
        .follow_links(false)
        .into_iter()
        .filter_map(move |entry| {
            let entry = match entry {
                Ok(entry) => entry,
                // A folder that does not exist (yet) holds nothing.
                Err(e) if e.io_error().map(io::Error::kind) == Some(io::ErrorKind::NotFound) => {
                    return None;
                }
                Err(e) => {
                    let key = e.path().unwrap_or(&root).display().to_string();
                    return Some(Err(StorageError::Io {
                        key,
                        source: e.into(),
                    }));
                }
            };
            if !entry.file_type().is_file() {
                return None;
            }
            let key = entry
                .path()
                .strip_prefix(&root)
                .ok()?
                .components()
                .map(|c| c.as_os_str().to_str())
                .collect::<Option<Vec<_>>>()?
                .join("/");
            if !key.starts_with(&prefix) {
                return None;
            }
            Some(
                entry
                    .metadata()
                    .map_err(|e| StorageError::Io {
                        key: key.clone(),
                        source: e.into(),
                    })
                    .map(|meta| StoredObject {
                        partial: key.contains(PARTIAL_MARK),
                        size: meta.len(),
                        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        key,
                    }),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, LocalFileStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFileStore::new(dir.path()).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn committed_files_read_back_whole_and_by_range() -> Result<(), StorageError> {
        let (_dir, store) = store().await;
        let mut w = store.create("imports/a/file.csv").await?;
        w.write(b"hello ").await?;
        w.write(b"world").await?;
        assert_eq!(w.commit().await?, 11);
        assert_eq!(
            &store.read_range("imports/a/file.csv", 6, 11).await?[..],
            b"world"
        );
        let mut all = Vec::new();
        store
            .open("imports/a/file.csv")
            .await?
            .read_to_end(&mut all)
            .await
            .map_err(io_err("x"))?;
        assert_eq!(all, b"hello world");
        assert!(store.read_range("imports/a/file.csv", 6, 20).await.is_err());
        store.delete("imports/a/file.csv").await?;
        assert!(matches!(
            store.open("imports/a/file.csv").await,
            Err(StorageError::NotFound(_))
        ));
        Ok(())
    }

    #[tokio::test]
    async fn an_uncommitted_write_leaves_nothing() -> Result<(), StorageError> {
        let (dir, store) = store().await;
        let mut w = store.create("x/partial.csv").await?;
        w.write(b"half").await?;
        drop(w);
        let left = std::fs::read_dir(dir.path().join("x"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(left, 0);
        Ok(())
    }

    #[tokio::test]
    async fn listing_finds_committed_and_partial_objects_under_a_prefix() -> Result<(), StorageError>
    {
        use futures::TryStreamExt;
        let (_dir, store) = store().await;
        for key in ["imports/a/one", "imports/b/two.csv", "uploads/u/part"] {
            let mut w = store.create(key).await?;
            w.write(b"bytes").await?;
            w.commit().await?;
        }
        let mut half = store.create("imports/a/three").await?;
        half.write(b"half").await?;
        let mut found: Vec<StoredObject> = store.list("imports/").try_collect().await?;
        found.sort_by(|a, b| a.key.cmp(&b.key));
        let keys: Vec<(&str, bool)> = found.iter().map(|o| (o.key.as_str(), o.partial)).collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        assert_eq!(keys[0], ("imports/a/one", false));
        assert!(keys[1].0.starts_with("imports/a/three.partial-") && keys[1].1);
        assert_eq!(keys[2], ("imports/b/two.csv", false));
        assert_eq!(found[2].size, 5);
        // A partial write's key deletes it like any key.
        store.delete(&found[1].key).await?;
        drop(half);
        let all: Vec<StoredObject> = store.list("").try_collect().await?;
        assert_eq!(all.len(), 3);
        let none: Vec<StoredObject> = store.list("nothing/here/").try_collect().await?;
        assert!(none.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let (_dir, store) = store().await;
        for key in ["../etc/passwd", "/abs", "", "a/../../b"] {
            assert!(
                matches!(store.create(key).await, Err(StorageError::BadKey(_))),
                "{key}"
            );
        }
    }
}
