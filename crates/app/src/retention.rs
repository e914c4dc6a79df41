//! The retention job: uploaded files and row-level results of imports that
//! ended more than `IMPORTS_RETENTION_DAYS` ago (and of drafts created that
//! long ago) are deleted; the history summary stays. With it runs the orphan
//! sweep: stored bytes no record points at (an upload that failed after its
//! bytes were stored, a process killed mid-write, a delete that failed) and
//! older than `IMPORTS_ORPHAN_MIN_AGE_SECS` are deleted. Every worker runs
//! both periodically; an advisory lock lets one at a time do the work.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::TryStreamExt;
use passare_imports_storage::{FileStore, StorageError, StoredObject};
use passare_imports_store::files::{KeyOwner, referenced_keys};
use passare_imports_store::{Db, StoreError, locks, results};
use tokio_util::sync::CancellationToken;

/// Imports purged per round; the next round takes the rest.
const BATCH: i64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Stored objects checked against the records per query.
const ORPHAN_BATCH: usize = 500;

/// Purges every import due, in batches; returns how many were purged. Does
/// nothing (and returns 0) while another process runs it.
pub async fn purge_due(
    db: &Db,
    files: &Arc<dyn FileStore>,
    retention_days: u64,
) -> Result<usize, RetentionError> {
    if retention_days == 0 {
        return Ok(0);
    }
    alone(db, purge_batches(db, files, retention_days)).await
}

/// Runs `work` while holding the housekeeping lock; `Default` (nothing
/// done) while another process holds it.
async fn alone<T: Default>(
    db: &Db,
    work: impl Future<Output = Result<T, RetentionError>>,
) -> Result<T, RetentionError> {
    let mut lock = db.conn().await?;
    if !locks::try_retention(&mut lock).await? {
        return Ok(T::default());
    }
    let result = work.await;
    if locks::release_retention(&mut lock).await.is_err() {
        // The session is broken; closing it releases the lock.
        lock.close_on_drop();
    }
    result
}

/// The raw archive's own retention ([`crate::archive::purge_expired`]),
/// under the housekeeping lock: one process at a time lists the archive.
pub async fn purge_archive(
    db: &Db,
    files: &dyn FileStore,
    prefix: &str,
    days: u32,
    min_age: Duration,
) -> Result<crate::archive::Expired, RetentionError> {
    alone(db, async {
        Ok(crate::archive::purge_expired(files, prefix, days, min_age).await?)
    })
    .await
}

/// What one orphan sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Committed objects no record points at.
    pub orphans: u64,
    /// Partial writes of processes that died mid-write.
    pub partial: u64,
    pub bytes: u64,
}

/// Deletes every stored object under `imports/` and `uploads/` that no
/// record points at and that nobody has written for `min_age`: the age
/// guard keeps bytes whose record is still being written (an upload is
/// stored, then read, then recorded) and writes still going on. Does
/// nothing while another process runs the housekeeping.
pub async fn sweep_orphans(
    db: &Db,
    files: &dyn FileStore,
    min_age: Duration,
) -> Result<Swept, RetentionError> {
    alone(db, async {
        let mut swept = Swept::default();
        for folder in ["imports/", "uploads/"] {
            sweep_folder(db, files, folder, min_age, &mut swept).await?;
        }
        Ok(swept)
    })
    .await
}

async fn sweep_folder(
    db: &Db,
    files: &dyn FileStore,
    folder: &str,
    min_age: Duration,
    swept: &mut Swept,
) -> Result<(), RetentionError> {
    let settled = std::time::SystemTime::now()
        .checked_sub(min_age)
        .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
    let mut listing = files.list(folder);
    let mut batch = Vec::with_capacity(ORPHAN_BATCH);
    loop {
        let next = listing.try_next().await?;
        let done = next.is_none();
        if let Some(object) = next.filter(|o| o.modified <= settled) {
            batch.push(object);
        }
        if batch.len() == ORPHAN_BATCH || (done && !batch.is_empty()) {
            delete_orphans(db, files, std::mem::take(&mut batch), swept).await?;
        }
        if done {
            return Ok(());
        }
    }
}

async fn delete_orphans(
    db: &Db,
    files: &dyn FileStore,
    batch: Vec<StoredObject>,
    swept: &mut Swept,
) -> Result<(), RetentionError> {
    let owned: Vec<(String, KeyOwner)> = batch
        .iter()
        .filter(|o| !o.partial)
        .filter_map(|o| KeyOwner::of(&o.key).map(|owner| (o.key.clone(), owner)))
        .collect();
    let kept = referenced_keys(&mut *db.conn().await?, &owned).await?;
    for object in batch.into_iter().filter(|o| !kept.contains(&o.key)) {
        match files.delete(&object.key).await {
            Ok(()) | Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(key = %object.key, bytes = object.size, partial = object.partial, "orphaned stored object deleted");
        if object.partial {
            swept.partial += 1;
        } else {
            swept.orphans += 1;
        }
        swept.bytes += object.size;
    }
    Ok(())
}

async fn purge_batches(
    db: &Db,
    files: &Arc<dyn FileStore>,
    retention_days: u64,
) -> Result<usize, RetentionError> {
    let cutoff = Utc::now() - chrono::Duration::days(retention_days.min(365_000) as i64);
    let mut purged = 0;
    loop {
        let due = results::due_for_purge(&mut *db.conn().await?, cutoff, BATCH).await?;
        if due.is_empty() {
            return Ok(purged);
        }
        for import_id in due {
            // The import's row stays locked while its files go, so no start,
            // upload, edit or retry races the purge; if deleting a file
            // fails, the transaction rolls back and the next round tries
            // again (a file already gone is no error).
            let Some(purge) = results::begin_purge(db, import_id, cutoff).await? else {
                continue;
            };
            for key in &purge.keys {
                match files.delete(key).await {
                    Ok(()) | Err(StorageError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let keys = purge.keys.len();
            purge.finish(retention_days).await?;
            tracing::info!(import_id = %import_id, files = keys, "import results purged");
            purged += 1;
        }
    }
}

/// When a worker's housekeeping runs, and what it keeps.
#[derive(Debug, Clone, Copy)]
pub struct Housekeeping {
    /// Days before an ended import's files and row-level results are deleted (0: never).
    pub retention_days: u64,
    /// How often the retention job and the orphan sweep run.
    pub retention_every: Duration,
    /// How long a resumable upload lives without a part.
    pub upload_expiry: Duration,
    /// How long stored bytes no record points at are left alone.
    pub orphan_min_age: Duration,
}

/// The housekeeping of a worker until `shutdown`: every minute (or sooner
/// when uploads expire sooner), resumable uploads whose time ran out are
/// expired and their parts deleted; every `retention_every`, [`purge_due`]
/// and [`sweep_orphans`].
pub async fn run(
    db: Db,
    files: Arc<dyn FileStore>,
    when: Housekeeping,
    shutdown: CancellationToken,
) {
    let Housekeeping {
        retention_days,
        retention_every,
        upload_expiry,
        orphan_min_age,
    } = when;
    let tick = Duration::from_secs(60)
        .min(retention_every)
        .min(upload_expiry)
        .max(Duration::from_secs(1));
    let mut next_purge = tokio::time::Instant::now();
    loop {
        match crate::uploads::resumable::expire_due(&db, files.as_ref()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(uploads = n, "resumable uploads expired"),
            Err(e) => tracing::warn!(error = %e, "expiring uploads failed; the next round retries"),
        }
        if tokio::time::Instant::now() >= next_purge {
            match purge_due(&db, &files, retention_days).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(imports = n, "retention: results purged"),
                Err(e) => tracing::warn!(error = %e, "retention round failed; next round retries"),
            }
            match sweep_orphans(&db, files.as_ref(), orphan_min_age).await {
                Ok(swept) if swept == Swept::default() => {}
                Ok(swept) => tracing::info!(
                    orphans = swept.orphans,
                    partial = swept.partial,
                    bytes = swept.bytes,
                    "orphan sweep: stored objects without a record deleted"
                ),
                Err(e) => tracing::warn!(error = %e, "orphan sweep failed; the next round retries"),
            }
            next_purge = tokio::time::Instant::now() + retention_every;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
    }
}
