//! Files in a local (or mounted) directory: the default store, for one
//! machine (or a directory every host mounts).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use tokio::fs;
use tokio::io::{AsyncRead, AsyncWriteExt};

use crate::{FileStore, FileWriter, PARTIAL_MARK, StorageError, StoredObject, check_key};

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
        check_key(key)?;
        Ok(self.root.join(Path::new(key)))
    }
}

pub(crate) fn io_err(key: &str) -> impl FnOnce(io::Error) -> StorageError + '_ {
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

/// Bytes `start..end` of a file (fewer when it ends sooner), read on the
/// calling thread in as few reads as the kernel allows: a chunk's range is
/// read in one blocking task, not in tokio's 2 MiB steps (each its own hop
/// to the blocking pool and its own copy), which took as long as parsing
/// the chunk when the worker's cores were busy.
fn read_range_of(path: &Path, start: u64, end: u64) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path)?;
    file.seek(io::SeekFrom::Start(start))?;
    let len = end.saturating_sub(start);
    let mut buf = Vec::with_capacity(usize::try_from(len).map_err(io::Error::other)?);
    file.take(len).read_to_end(&mut buf)?;
    Ok(buf)
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
        let path = self.path(key)?;
        let read = tokio::task::spawn_blocking(move || read_range_of(&path, start, end))
            .await
            .map_err(|e| StorageError::Io {
                key: key.to_string(),
                source: io::Error::other(format!("reading task: {e}")),
            })?;
        let buf = read.map_err(io_err(key))?;
        if (buf.len() as u64) != end.saturating_sub(start) {
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
