//! The retention job: uploaded files and row-level results of imports that
//! ended more than `IMPORTS_RETENTION_DAYS` ago (and of drafts created that
//! long ago) are deleted; the history summary stays. Every worker runs it
//! periodically; an advisory lock lets one at a time do the work.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use passare_imports_storage::{FileStore, StorageError};
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
    let mut lock = db.conn().await?;
    if !locks::try_retention(&mut lock).await? {
        return Ok(0);
    }
    let result = purge_batches(db, files, retention_days).await;
    if locks::release_retention(&mut lock).await.is_err() {
        // The session is broken; closing it releases the lock.
        lock.close_on_drop();
    }
    result
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

/// The housekeeping of a worker until `shutdown`: every minute (or sooner
/// when uploads expire sooner), resumable uploads whose time ran out are
/// expired and their parts deleted; every `retention_every`, [`purge_due`].
pub async fn run(
    db: Db,
    files: Arc<dyn FileStore>,
    retention_days: u64,
    retention_every: Duration,
    upload_expiry: Duration,
    shutdown: CancellationToken,
) {
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
            next_purge = tokio::time::Instant::now() + retention_every;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
    }
}
