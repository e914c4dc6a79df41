//! Where the raw archive puts things, and its own retention (docs/archive.md).
//! Keys are Hive-style partitions, so warehouse tools (pyarrow, Spark,
//! Athena, DuckDB) read a prefix as one table:
//!
//! ```text
//! {prefix}/organization={org}/import_type={type}/date={YYYY-MM-DD}/import={import}/file={file}/
//!     chunk={seq:06}-{chunk id}.parquet     the chunk's rows with their provenance
//!     _original.{ext}                       the file's bytes as uploaded
//! ```
//!
//! The date is the day (UTC) the import started loading, so one import's
//! files sit together. The original's name starts with `_`, which dataset
//! readers skip.

use chrono::{NaiveDate, Utc};
use futures::TryStreamExt;
use passare_imports_storage::{FileStore, StorageError};
use uuid::Uuid;

/// Where one file of an import goes in the archive.
#[derive(Debug, Clone)]
pub struct FileArchive<'a> {
    pub prefix: &'a str,
    pub organization_id: i64,
    pub import_type: &'a str,
    pub date: NaiveDate,
    pub import_id: Uuid,
    pub file_id: Uuid,
}

impl FileArchive<'_> {
    fn folder(&self) -> String {
        format!(
            "{}/organization={}/import_type={}/date={}/import={}/file={}",
            self.prefix,
            self.organization_id,
            self.import_type,
            self.date.format("%Y-%m-%d"),
            self.import_id,
            self.file_id
        )
    }

    /// The Parquet object of one chunk.
    pub fn chunk_key(&self, seq: i32, chunk_id: i64) -> String {
        format!("{}/chunk={seq:06}-{chunk_id}.parquet", self.folder())
    }

    /// The original bytes, with the extension of the uploaded name (plain
    /// letters and digits only; none otherwise).
    pub fn original_key(&self, file_name: &str) -> String {
        let ext = file_name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .filter(|e| {
                !e.is_empty() && e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric())
            });
        match ext {
            Some(ext) => format!("{}/_original.{ext}", self.folder()),
            None => format!("{}/_original", self.folder()),
        }
    }
}

/// What the archive's retention deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    pub objects: u64,
    pub bytes: u64,
}

/// Deletes every archived object of a date partition older than `days`
/// (0 keeps everything), and partial writes older than `min_age` (a worker
/// died mid-write). Streams the listing: the archive is never held whole.
pub async fn purge_expired(
    files: &dyn FileStore,
    prefix: &str,
    days: u32,
    min_age: std::time::Duration,
) -> Result<Expired, StorageError> {
    let today = Utc::now().date_naive();
    let settled = std::time::SystemTime::now()
        .checked_sub(min_age)
        .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
    let mut expired = Expired::default();
    let mut listing = files.list(&format!("{prefix}/"));
    while let Some(object) = listing.try_next().await? {
        let old = days > 0
            && partition_date(&object.key)
                .is_some_and(|d| (today - d).num_days() > i64::from(days));
        let stale_partial = object.partial && object.modified <= settled;
        if old || stale_partial {
            match files.delete(&object.key).await {
                Ok(()) | Err(StorageError::NotFound(_)) => {
                    expired.objects += 1;
                    expired.bytes += object.size;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(expired)
}

/// The `date=` partition of an archive key.
fn partition_date(key: &str) -> Option<NaiveDate> {
    key.split('/')
        .find_map(|part| part.strip_prefix("date="))
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hive_partitions_and_the_original_is_hidden_from_dataset_readers() {
        let a = FileArchive {
            prefix: "archive",
            organization_id: 1042,
            import_type: "cases",
            date: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap_or_default(),
            import_id: Uuid::nil(),
            file_id: Uuid::nil(),
        };
        let chunk = a.chunk_key(3, 77);
        assert!(chunk.starts_with("archive/organization=1042/import_type=cases/date=2026-11-29/"));
        assert!(chunk.ends_with("/chunk=000003-77.parquet"));
        assert!(
            a.original_key("Cases 2026.XLSX")
                .ends_with("/_original.xlsx")
        );
        assert!(a.original_key("no-extension").ends_with("/_original"));
        assert!(a.original_key("evil.../../x").ends_with("/_original"));
        assert_eq!(
            partition_date(&chunk),
            NaiveDate::from_ymd_opt(2026, 11, 29)
        );
    }
}
