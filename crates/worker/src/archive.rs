//! The raw archive writer (docs/archive.md): a loaded chunk's rows, as the
//! Arrow batch the worker parsed, with their provenance, written as one
//! Parquet object; each file's original bytes copied beside them. Right
//! after a chunk's commit the writing worker archives it from memory
//! ([`Worker::archive_now`]); every worker's [`Worker::archive_runner`]
//! takes what is still due — a failed write (with backoff), a worker that
//! died first, a rolled-back import whose archived rows must go — reading
//! and parsing the chunk again and taking its failed rows from the
//! database. Archiving never holds up a load, and a failure is retried and
//! shown on the import, never lost.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use chrono::Utc;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use passare_imports_app::archive::FileArchive;
use passare_imports_domain::chunk::ROW_COLUMN;
use passare_imports_storage::{FileStore, StorageError};
use passare_imports_store::archive;
use passare_imports_store::load::{self, ChunkJob};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::{RetryPolicy, Worker};

/// How long after a chunk's commit the runner may take it when its writer
/// has not archived it (the writer died): the writer normally takes well
/// under a second.
pub const GRACE: Duration = Duration::from_secs(60);

/// Chunks or files the runner claims per round.
const BATCH: i64 = 8;

/// How often the runner looks for work due.
const POLL: Duration = Duration::from_secs(2);

/// Why an archive write failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("encoding Parquet: {0}")]
    Encode(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Store(#[from] passare_imports_store::StoreError),
    #[error("reading the chunk again: {0}")]
    Read(String),
}

/// Whose rows a chunk's Parquet holds.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub organization_id: i64,
    pub import_id: uuid::Uuid,
    pub file_id: uuid::Uuid,
    /// The import's attempt (1, then one more per RetryFailedRows).
    pub attempt: i32,
}

/// The chunk's rows as Parquet: `_organization_id`, `_import_id`,
/// `_file_id`, `_attempt`, `_row_number`, `_outcome` (`loaded` or
/// `failed`), `_error` (the first reason a failed row has), then every
/// parsed column with its Arrow type (null where a value was missing or
/// failed).
pub fn encode(
    batch: &RecordBatch,
    p: &Provenance,
    failed: &HashMap<i64, String>,
) -> Result<Bytes, ArchiveError> {
    let n = batch.num_rows();
    let rows = batch
        .column_by_name(ROW_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or_else(|| ArchiveError::Encode("the batch has no row numbers".into()))?;
    let outcome: StringArray = rows
        .iter()
        .map(|r| {
            Some(if r.is_some_and(|r| failed.contains_key(&r)) {
                "failed"
            } else {
                "loaded"
            })
        })
        .collect();
    let error: StringArray = rows
        .iter()
        .map(|r| r.and_then(|r| failed.get(&r)).map(String::as_str))
        .collect();
    let text = |v: String| {
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            v.as_str(),
            n,
        ))) as ArrayRef
    };
    let mut fields = vec![
        Field::new("_organization_id", DataType::Int64, false),
        Field::new("_import_id", DataType::Utf8, false),
        Field::new("_file_id", DataType::Utf8, false),
        Field::new("_attempt", DataType::Int64, false),
        Field::new("_row_number", DataType::Int64, false),
        Field::new("_outcome", DataType::Utf8, false),
        Field::new("_error", DataType::Utf8, true),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![p.organization_id; n])),
        text(p.import_id.to_string()),
        text(p.file_id.to_string()),
        Arc::new(Int64Array::from(vec![i64::from(p.attempt); n])),
        Arc::new(rows.clone()),
        Arc::new(outcome),
        Arc::new(error),
    ];
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if field.name() != ROW_COLUMN {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let out = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| ArchiveError::Encode(e.to_string()))?;
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by("passare-imports raw archive".into());
    for (field, column) in schema.fields().iter().zip(out.columns()) {
        let path = ColumnPath::from(field.name().as_str());
        props = props.set_column_dictionary_enabled(path, repeats(column.as_ref()));
    }
    let props = props.build();
    let mut bytes = Vec::with_capacity(64 * 1024);
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, Some(props))
        .map_err(|e| ArchiveError::Encode(e.to_string()))?;
    writer
        .write(&out)
        .map_err(|e| ArchiveError::Encode(e.to_string()))?;
    writer
        .close()
        .map_err(|e| ArchiveError::Encode(e.to_string()))?;
    Ok(Bytes::from(bytes))
}

/// Rows of a column sampled to tell whether its values repeat.
const DICTIONARY_SAMPLE: usize = 1024;

/// Whether a column's values repeat enough for a Parquet dictionary to pay:
/// its first [`DICTIONARY_SAMPLE`] rows hold at most a quarter as many
/// distinct values (provenance, codes, statuses). Names, keys and row
/// numbers, different on every row, are written plainly: interning each of
/// their values into a dictionary as large as the column was half the
/// archive's CPU. Types not sampled keep the dictionary, Parquet's default.
fn repeats(column: &dyn Array) -> bool {
    fn distinct<V: Hash + Eq>(values: impl Iterator<Item = Option<V>>) -> usize {
        values.take(DICTIONARY_SAMPLE).collect::<HashSet<_>>().len()
    }
    let sampled = column.len().min(DICTIONARY_SAMPLE);
    let found = match column.data_type() {
        DataType::Utf8 => column.as_string_opt::<i32>().map(|a| distinct(a.iter())),
        DataType::Int64 => column
            .as_primitive_opt::<Int64Type>()
            .map(|a| distinct(a.iter())),
        DataType::Int32 => column
            .as_primitive_opt::<Int32Type>()
            .map(|a| distinct(a.iter())),
        DataType::Date32 => column
            .as_primitive_opt::<Date32Type>()
            .map(|a| distinct(a.iter())),
        DataType::Timestamp(TimeUnit::Microsecond, _) => column
            .as_primitive_opt::<TimestampMicrosecondType>()
            .map(|a| distinct(a.iter())),
        DataType::Decimal128(..) => column
            .as_primitive_opt::<Decimal128Type>()
            .map(|a| distinct(a.iter())),
        _ => None,
    };
    found.is_none_or(|d| d * 4 <= sampled)
}

/// The first reason of each failed row of a parsed chunk.
pub fn failed_rows(problems: &[passare_imports_domain::model::RowProblem]) -> HashMap<i64, String> {
    let mut failed = HashMap::new();
    for p in problems {
        failed
            .entry(p.row as i64)
            .or_insert_with(|| p.reason.clone());
    }
    failed
}

/// Where a chunk's file goes in the archive.
fn place<'a>(prefix: &'a str, job: &'a ChunkJob) -> FileArchive<'a> {
    let started = job.import.started_at.map(|t| t.with_timezone(&Utc));
    FileArchive {
        prefix,
        organization_id: job.import.organization_id,
        import_type: job.def.key,
        date: started.unwrap_or_else(Utc::now).date_naive(),
        import_id: job.import.id,
        file_id: job.file.id,
    }
}

fn provenance(job: &ChunkJob) -> Provenance {
    Provenance {
        organization_id: job.import.organization_id,
        import_id: job.import.id,
        file_id: job.file.id,
        attempt: job.import.attempt,
    }
}

/// Stores `bytes` under `key` (visible only once complete).
async fn store(files: &dyn FileStore, key: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let mut writer = files.create(key).await?;
    writer.write(bytes).await?;
    writer.commit().await?;
    Ok(())
}

/// What the archive of this worker needs.
#[derive(Clone)]
pub struct ArchiveSettings {
    pub prefix: String,
    pub retry: RetryPolicy,
    pub retention_days: u32,
    /// Chunks this worker archives from memory at once ([`IN_MEMORY`]),
    /// shared by its clones.
    pub slots: Arc<tokio::sync::Semaphore>,
}

/// Chunks a worker archives from memory at once. Each holds its batch and
/// its Parquet encoder's buffers (megabytes for 25,000 rows); a chunk
/// written while both are busy goes to the runner at once instead,
/// which reads it again — so a load that outruns the archive on a busy
/// machine neither waits for it nor piles batches up in memory.
pub const IN_MEMORY: usize = 2;

/// A slot to archive a chunk from memory, and when the runner should take
/// the chunk if its writer does not archive it: after [`GRACE`] when the
/// writer holds a slot, at once when it does not. `None` with the archive
/// off.
pub(crate) fn archive_slot(
    settings: Option<&ArchiveSettings>,
) -> Option<(Option<tokio::sync::OwnedSemaphorePermit>, Duration)> {
    let settings = settings?;
    let slot = settings.slots.clone().try_acquire_owned().ok();
    let after = if slot.is_some() {
        GRACE
    } else {
        Duration::ZERO
    };
    Some((slot, after))
}

impl ArchiveSettings {
    /// When a write that has failed `attempts` times before this one is
    /// tried again.
    fn next_attempt(&self, attempts: i32) -> chrono::DateTime<Utc> {
        let delay = self.retry.delay_after((attempts + 1).max(1) as u32);
        Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default()
    }
}

impl Worker {
    /// Archives a chunk just written, from the batch in memory, in the
    /// background; a failure is recorded for the runner to retry.
    pub(crate) fn archive_now(
        &self,
        job: &ChunkJob,
        batch: RecordBatch,
        failed: HashMap<i64, String>,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) {
        let Some(settings) = self.archive.clone() else {
            return;
        };
        let key = place(&settings.prefix, job).chunk_key(job.chunk.seq, job.chunk.id);
        // A chunk is written once: its archive has not been tried before.
        let (p, chunk_id, attempts) = (provenance(job), job.chunk.id, 0);
        let worker = self.clone();
        tokio::spawn(async move {
            let encoded = tokio::task::spawn_blocking(move || encode(&batch, &p, &failed)).await;
            let written = match encoded {
                Ok(Ok(bytes)) => store(worker.files.as_ref(), &key, &bytes)
                    .await
                    .map_err(Into::into),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(ArchiveError::Encode(e.to_string())),
            };
            drop(slot);
            worker
                .archive_settled(chunk_id, attempts, &settings, written)
                .await;
        });
    }

    /// Records how a chunk's archive went.
    async fn archive_settled(
        &self,
        chunk_id: i64,
        attempts: i32,
        settings: &ArchiveSettings,
        written: Result<(), ArchiveError>,
    ) {
        let recorded = match self.db.conn().await {
            Ok(mut conn) => match &written {
                Ok(()) => archive::chunk_done(&mut conn, chunk_id, true).await,
                Err(e) => {
                    let at = settings.next_attempt(attempts);
                    tracing::warn!(chunk_id, error = %e, retry_at = %at, "archiving a chunk failed; it is tried again");
                    archive::chunk_failed(&mut conn, chunk_id, &e.to_string(), at)
                        .await
                        .map(|_| ())
                }
            },
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            // The chunk stays due: the runner takes it after its grace.
            tracing::warn!(chunk_id, error = %e, "recording a chunk's archive failed");
        }
    }

    /// Until `shutdown`: archives what is due, and runs the archive's
    /// retention every `retention_every`.
    pub(crate) async fn archive_runner(self, shutdown: CancellationToken) {
        let Some(settings) = self.archive.clone() else {
            return;
        };
        let mut next_purge = tokio::time::Instant::now();
        loop {
            if let Err(e) = self.archive_due_chunks(&settings).await {
                tracing::warn!(error = %e, "the archive runner could not read its work; next round retries");
            }
            if let Err(e) = self.archive_due_originals(&settings).await {
                tracing::warn!(error = %e, "the archive runner could not read its originals; next round retries");
            }
            if tokio::time::Instant::now() >= next_purge {
                self.purge_archive(&settings).await;
                next_purge = tokio::time::Instant::now() + self.housekeeping.retention_every;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn purge_archive(&self, settings: &ArchiveSettings) {
        let purged = passare_imports_app::retention::purge_archive(
            &self.db,
            self.files.as_ref(),
            &settings.prefix,
            settings.retention_days,
            self.housekeeping.orphan_min_age,
        )
        .await;
        match purged {
            Ok(e) if e.objects == 0 => {}
            Ok(e) => tracing::info!(
                objects = e.objects,
                bytes = e.bytes,
                "archive retention: expired objects deleted"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "archive retention failed; the next round retries")
            }
        }
    }

    async fn archive_due_chunks(&self, settings: &ArchiveSettings) -> Result<(), ArchiveError> {
        let claimed = archive::claim_chunks(&mut *self.db.conn().await?, BATCH).await?;
        for (chunk_id, attempts) in claimed {
            let written = self.archive_again(settings, chunk_id).await;
            if let Ok(false) = written {
                // Withdrawn: recorded as such.
                continue;
            }
            self.archive_settled(chunk_id, attempts, settings, written.map(|_| ()))
                .await;
        }
        Ok(())
    }

    /// Archives a due chunk by reading and parsing it again, or deletes its
    /// archive when its import was rolled back; `false` when withdrawn.
    async fn archive_again(
        &self,
        settings: &ArchiveSettings,
        chunk_id: i64,
    ) -> Result<bool, ArchiveError> {
        let mut conn = self.db.conn().await?;
        let Some(job) = load::load_job(&mut conn, chunk_id).await? else {
            return Ok(false);
        };
        let key = place(&settings.prefix, &job).chunk_key(job.chunk.seq, job.chunk.id);
        if job.import.rolled_back_at.is_some() {
            match self.files.delete(&key).await {
                Ok(()) | Err(StorageError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            archive::chunk_done(&mut conn, chunk_id, false).await?;
            return Ok(false);
        }
        let failed = archive::chunk_row_errors(&mut conn, job.file.id, chunk_id).await?;
        drop(conn);
        let parsed = crate::read::read_and_parse(self.files.clone(), &job)
            .await
            .map_err(|e| ArchiveError::Read(e.error.to_string()))?;
        let p = provenance(&job);
        let bytes = tokio::task::spawn_blocking(move || encode(&parsed.batch, &p, &failed))
            .await
            .map_err(|e| ArchiveError::Encode(e.to_string()))??;
        store(self.files.as_ref(), &key, &bytes).await?;
        Ok(true)
    }

    async fn archive_due_originals(&self, settings: &ArchiveSettings) -> Result<(), ArchiveError> {
        let claimed = archive::claim_originals(&mut *self.db.conn().await?, BATCH).await?;
        for (file_id, attempts) in claimed {
            let copied = self.archive_original(settings, file_id).await;
            let mut conn = self.db.conn().await?;
            match copied {
                Ok(()) => archive::original_done(&mut conn, file_id).await?,
                Err(e) => {
                    let at = settings.next_attempt(attempts);
                    tracing::warn!(%file_id, error = %e, retry_at = %at, "archiving an original failed; it is tried again");
                    archive::original_failed(&mut conn, file_id, &e.to_string(), at).await?;
                }
            }
        }
        Ok(())
    }

    /// Copies a file's original bytes into the archive, streaming.
    async fn archive_original(
        &self,
        settings: &ArchiveSettings,
        file_id: uuid::Uuid,
    ) -> Result<(), ArchiveError> {
        let mut conn = self.db.conn().await?;
        let Some((job_file, import)) = archive::file_and_import(&mut conn, file_id).await? else {
            return Ok(());
        };
        drop(conn);
        let started = import.started_at.map(|t| t.with_timezone(&Utc));
        let at = FileArchive {
            prefix: &settings.prefix,
            organization_id: import.organization_id,
            import_type: &job_file.import_type,
            date: started.unwrap_or_else(Utc::now).date_naive(),
            import_id: import.id,
            file_id,
        };
        let key = at.original_key(&job_file.file_name);
        let mut reader = self.files.open(&job_file.storage_key).await?;
        let mut writer = self.files.create(&key).await?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader
                .read(&mut buf)
                .await
                .map_err(|source| StorageError::Io {
                    key: job_file.storage_key.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            writer.write(&buf[..n]).await?;
        }
        writer.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_written_while_every_slot_is_busy_is_left_to_the_runner_at_once() {
        assert!(archive_slot(None).is_none());
        let settings = ArchiveSettings {
            prefix: "archive".into(),
            retry: RetryPolicy {
                max_attempts: u32::MAX,
                base: Duration::from_secs(1),
                max_delay: Duration::from_secs(60),
            },
            retention_days: 0,
            slots: Arc::new(tokio::sync::Semaphore::new(IN_MEMORY)),
        };
        let held: Vec<_> = (0..IN_MEMORY)
            .map(|_| archive_slot(Some(&settings)).expect("archive on"))
            .collect();
        assert!(
            held.iter()
                .all(|(slot, after)| slot.is_some() && *after == GRACE)
        );
        let (slot, after) = archive_slot(Some(&settings)).expect("archive on");
        assert!(slot.is_none());
        assert_eq!(after, Duration::ZERO);
        // A slot given back (its chunk archived) is taken by the next chunk.
        drop(held);
        let (slot, after) = archive_slot(Some(&settings)).expect("archive on");
        assert!(slot.is_some());
        assert_eq!(after, GRACE);
    }

    #[test]
    fn only_columns_whose_values_repeat_get_a_dictionary() {
        use parquet::basic::Encoding;
        use parquet::file::reader::{FileReader, SerializedFileReader};

        let n = 3_000;
        let numbers: Int64Array = (2..n as i64 + 2).collect();
        let keys: StringArray = (0..n).map(|i| Some(format!("C-{i:06}"))).collect();
        let statuses: StringArray = (0..n)
            .map(|i| (i % 5 != 0).then_some(["open", "closed", "pending"][i % 3]))
            .collect();
        let batch = RecordBatch::try_from_iter([
            (ROW_COLUMN, Arc::new(numbers) as ArrayRef),
            ("case_number", Arc::new(keys) as ArrayRef),
            ("case_status", Arc::new(statuses) as ArrayRef),
        ])
        .expect("a batch");
        let p = Provenance {
            organization_id: 1042,
            import_id: uuid::Uuid::from_u128(1),
            file_id: uuid::Uuid::from_u128(2),
            attempt: 1,
        };
        let failed = HashMap::from([(7, "a reason".to_string())]);
        let bytes = encode(&batch, &p, &failed).expect("encoded");
        let reader = SerializedFileReader::new(bytes).expect("a Parquet file");
        let group = reader.metadata().row_group(0);
        let dictionary = |name: &str| {
            let column = (0..group.num_columns())
                .map(|i| group.column(i))
                .find(|c| c.column_path().string() == name)
                .expect("the column");
            column.encodings().any(|e| e == Encoding::RLE_DICTIONARY)
        };
        for name in [
            "_organization_id",
            "_import_id",
            "_file_id",
            "_outcome",
            "case_status",
        ] {
            assert!(dictionary(name), "{name} repeats: a dictionary");
        }
        for name in ["_row_number", "case_number"] {
            assert!(!dictionary(name), "{name} is unique: no dictionary");
        }
        assert_eq!(group.num_rows(), n as i64);
    }
}
