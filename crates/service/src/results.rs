//! Row-level results of a file, read back from what was stored: the rows
//! still failed in their original columns (with the edits people made), the
//! records the file wrote, corrections coming back as a file, and the retry
//! files that run the still-failed rows again as a new attempt.

use std::collections::HashMap;

use futures::StreamExt;
use passare_imports_domain::catalog::{self, ImportTypeDef, normalize_header};
use passare_imports_domain::results::{RecordFile, SafeCsv, numbered_records, restore};
use passare_imports_store::entities::{import_files, imports};
use passare_imports_store::loader::{file_mapping, written_columns};
use passare_imports_store::repo::{self, Requester};
use passare_imports_store::results::{self, Retry, RetryFile};
use tokio::sync::mpsc;

use crate::app::App;
use crate::error::{ApiError, FieldViolation};

/// Bytes per message of a download.
pub const DOWNLOAD_CHUNK: usize = 256 * 1024;

/// A file of an import as its results read it.
pub struct FileResults {
    pub file: import_files::Model,
    pub def: &'static ImportTypeDef,
    /// The file's headers, as it was read.
    pub headers: Vec<String>,
    /// The header position of each canonical column the file has.
    pub position_of: HashMap<&'static str, usize>,
    pub delimiter: u8,
}

impl FileResults {
    pub fn of(file: import_files::Model) -> Result<Self, ApiError> {
        let def = catalog::find(&file.import_type).ok_or_else(|| {
            ApiError::Internal(format!(
                "file {} has unknown type {}",
                file.id, file.import_type
            ))
        })?;
        let headers: Vec<String> = serde_json::from_value(file.headers.clone())
            .map_err(|e| ApiError::Internal(format!("headers of file {}: {e}", file.id)))?;
        let mapping = file_mapping(def, &file)?;
        let position_of = mapping
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.map(|c| (c, i)))
            .collect();
        let delimiter = file.delimiter.bytes().next().unwrap_or(b',');
        Ok(Self {
            file,
            def,
            headers,
            position_of,
            delimiter,
        })
    }

    /// The header position of a canonical column; INVALID_ARGUMENT when the
    /// type has no such column or the file has no header for it.
    pub fn position(&self, field: &str, column: &str) -> Result<usize, ApiError> {
        let Some(c) = self.def.column(column) else {
            return Err(ApiError::invalid(
                field,
                format!(
                    "{column:?} is not a column of {}; its columns are {}",
                    self.def.display_name,
                    self.def
                        .columns
                        .iter()
                        .map(|c| c.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        self.position_of.get(c.name).copied().ok_or_else(|| {
            ApiError::invalid(
                field,
                format!(
                    "{} has no header for {column}; only its own columns can be edited",
                    self.file.file_name
                ),
            )
        })
    }
}

/// A failed row as it would be tried again.
pub struct FailedRow {
    pub row: u64,
    pub cells: Vec<String>,
    pub reasons: String,
}

/// The still-failed rows one chunk found, read from the bytes that chunk
/// loaded (the file's, or a retry's), with the file's edits applied.
async fn failed_rows_of_chunk(
    app: &App,
    f: &FileResults,
    edits: &HashMap<i64, Vec<(String, String)>>,
    chunk_id: i64,
) -> Result<Vec<FailedRow>, ApiError> {
    let open = results::open_failed_rows(&app.db, chunk_id).await?;
    let Some(chunk) = repo::chunks_by_id(app.db.orm(), &[chunk_id]).await?.pop() else {
        return Ok(Vec::new());
    };
    let key = chunk
        .data_key
        .as_deref()
        .or(f.file.data_key.as_deref())
        .unwrap_or(&f.file.storage_key);
    let bytes = app
        .files
        .read_range(key, chunk.byte_start as u64, chunk.byte_end as u64)
        .await?;
    let numbers: Option<Vec<u64>> = chunk
        .row_numbers
        .as_ref()
        .map(|r| r.iter().map(|n| (*n).max(0) as u64).collect());
    let (delimiter, first_row) = (f.delimiter, chunk.first_row.max(0) as u64);
    let records = tokio::task::spawn_blocking(move || {
        numbered_records(&bytes, delimiter, first_row, numbers.as_deref())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("reading failed rows: {e}")))?
    .map_err(|e| ApiError::Internal(format!("reading failed rows: {e}")))?;
    let mut by_row: HashMap<u64, Vec<String>> = records.into_iter().collect();
    let width = f.headers.len();
    let mut out = Vec::with_capacity(open.len());
    for (row, reasons) in open {
        let mut cells = by_row.remove(&(row as u64)).unwrap_or_default();
        cells.resize(width.max(cells.len()), String::new());
        for (column, value) in edits.get(&row).into_iter().flatten() {
            if let Some(&i) = f.position_of.get(column.as_str()) {
                cells[i] = value.clone();
            }
        }
        out.push(FailedRow {
            row: row as u64,
            cells,
            reasons,
        });
    }
    Ok(out)
}

/// Streams a CSV built by `fill` in messages of at most [`DOWNLOAD_CHUNK`]
/// bytes; the receiver ends when the file does, or with the first error.
fn stream_csv<F, Fut>(fill: F) -> mpsc::Receiver<Result<Vec<u8>, ApiError>>
where
    F: FnOnce(CsvSink) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<CsvSink, ApiError>> + Send,
{
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let sink = CsvSink {
            csv: SafeCsv::new(),
            tx: tx.clone(),
        };
        match fill(sink).await {
            Ok(mut sink) => {
                let _ = sink.flush(true).await;
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
            }
        }
    });
    rx
}

/// Where a download's CSV is written; full messages go out as they fill.
pub struct CsvSink {
    csv: SafeCsv,
    tx: mpsc::Sender<Result<Vec<u8>, ApiError>>,
}

impl CsvSink {
    async fn record<I, S>(&mut self, cells: I) -> Result<(), ApiError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.csv
            .record(cells)
            .map_err(|e| ApiError::Internal(format!("writing a result file: {e}")))?;
        self.flush(false).await
    }

    async fn flush(&mut self, all: bool) -> Result<(), ApiError> {
        if self.csv.len() < DOWNLOAD_CHUNK && !all {
            return Ok(());
        }
        let bytes = self
            .csv
            .take()
            .map_err(|e| ApiError::Internal(format!("writing a result file: {e}")))?;
        for piece in bytes.chunks(DOWNLOAD_CHUNK) {
            if self.tx.send(Ok(piece.to_vec())).await.is_err() {
                return Err(ApiError::Internal("the download was cancelled".into()));
            }
        }
        Ok(())
    }
}

/// The FAILED_ROWS file: `row`, the file's own headers, `error`; one record
/// per still-failed row, in row order, with its edits.
pub fn failed_rows_csv(app: App, f: FileResults) -> mpsc::Receiver<Result<Vec<u8>, ApiError>> {
    stream_csv(move |mut sink| async move {
        sink.record(
            std::iter::once("row")
                .chain(f.headers.iter().map(String::as_str))
                .chain(std::iter::once("error")),
        )
        .await?;
        let edits = results::edits_of(&app.db, f.file.id).await?;
        for chunk_id in results::chunks_with_open_errors(&app.db, f.file.id).await? {
            for r in failed_rows_of_chunk(&app, &f, &edits, chunk_id).await? {
                let row = r.row.to_string();
                sink.record(
                    std::iter::once(row.as_str())
                        .chain(r.cells.iter().map(String::as_str))
                        .chain(std::iter::once(r.reasons.as_str())),
                )
                .await?;
            }
        }
        Ok(sink)
    })
}

/// The WRITTEN_ROWS file: `row`, `outcome` (created or updated),
/// `record_key` (the key columns joined by `+`), then the stored columns;
/// one record per record the file is the last writer of.
pub fn written_rows_csv(
    app: App,
    f: FileResults,
    organization_id: i64,
) -> mpsc::Receiver<Result<Vec<u8>, ApiError>> {
    stream_csv(move |mut sink| async move {
        let columns = written_columns(f.def);
        // Stored values of sensitive columns (SSNs) are masked, as wherever
        // they are shown; the FAILED_ROWS file keeps the raw cells, which a
        // correction must send back whole.
        let sensitive: Vec<bool> = columns
            .iter()
            .map(|c| f.def.column(c).is_some_and(|c| c.sensitive))
            .collect();
        sink.record(
            ["row", "outcome", "record_key"]
                .into_iter()
                .chain(columns.iter().copied()),
        )
        .await?;
        let mut rows = results::written_rows(&app.db, f.def, organization_id, f.file.id);
        while let Some(row) = rows.next().await {
            let row = row?;
            let head = [
                row.row.to_string(),
                if row.created { "created" } else { "updated" }.to_string(),
                row.key.join("+"),
            ];
            let values = row.values.iter().zip(&sensitive).map(|(v, masked)| {
                let v = v.as_deref().unwrap_or("");
                if *masked {
                    passare_imports_domain::mask(v)
                } else {
                    v.to_string()
                }
            });
            sink.record(head.into_iter().chain(values)).await?;
        }
        Ok(sink)
    })
}

/// Reads a corrected failed-rows file into edits (row, column, value): its
/// `row` column names the failed row; every other header must be one of the
/// file's own (matched like headers are) or `error` (ignored).
pub fn corrections(f: &FileResults, bytes: &[u8]) -> Result<Vec<(i64, String, String)>, ApiError> {
    let text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)).map_err(
        |_| {
            ApiError::invalid(
                "content",
                "is not UTF-8 text; save the corrected file as CSV UTF-8",
            )
        },
    )?;
    let first_line = text.lines().next().unwrap_or_default();
    let delimiter = passare_imports_domain::scan::sniff_delimiter(first_line.as_bytes());
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| ApiError::invalid("content", format!("has no readable header: {e}")))?
        .clone();
    let mut row_at = None;
    let mut columns: Vec<Option<&'static str>> = Vec::with_capacity(headers.len());
    let mut unknown = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let wanted = normalize_header(h);
        if wanted == "row" {
            row_at = Some(i);
            columns.push(None);
            continue;
        }
        if wanted == "error" {
            columns.push(None);
            continue;
        }
        let own = f
            .headers
            .iter()
            .position(|x| normalize_header(x) == wanted)
            .and_then(|p| {
                f.position_of
                    .iter()
                    .find(|(_, at)| **at == p)
                    .map(|(c, _)| *c)
            });
        match own {
            Some(column) => columns.push(Some(column)),
            None if f.headers.iter().any(|x| normalize_header(x) == wanted) => columns.push(None),
            None => {
                unknown.push(h.to_string());
                columns.push(None);
            }
        }
    }
    let Some(row_at) = row_at else {
        return Err(ApiError::invalid(
            "content",
            "has no `row` column: upload the FAILED_ROWS download, corrected, with its `row` column",
        ));
    };
    if !unknown.is_empty() {
        return Err(ApiError::invalid(
            "content",
            format!(
                "has headers that {} does not have: {}",
                f.file.file_name,
                unknown.join(", ")
            ),
        ));
    }
    let mut edits = Vec::new();
    let mut violations = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record =
            record.map_err(|e| ApiError::invalid("content", format!("record {}: {e}", n + 1)))?;
        let Some(row) = record
            .get(row_at)
            .and_then(|r| restore(r.trim()).parse::<i64>().ok())
        else {
            violations.push(FieldViolation {
                field: format!("content.records[{}].row", n + 1),
                description: format!(
                    "{:?} is not a row number",
                    record.get(row_at).unwrap_or_default()
                ),
            });
            continue;
        };
        for (i, column) in columns.iter().enumerate() {
            if let Some(column) = column {
                let value = record.get(i).map(restore).unwrap_or_default();
                edits.push((row, column.to_string(), value.to_string()));
            }
        }
    }
    if !violations.is_empty() {
        return Err(ApiError::InvalidArgument {
            reason: "INVALID_FIELD",
            message: format!(
                "the corrected file has {} records without a row number",
                violations.len()
            ),
            violations,
        });
    }
    Ok(edits)
}

/// Builds the retry file of every file with still-failed rows and queues
/// them as the import's next attempt.
pub async fn retry(app: &App, import: &imports::Model, by: &Requester) -> Result<Retry, ApiError> {
    let built_at = results::now(&app.db).await?;
    let attempt = import.attempt + 1;
    let mut planned = Vec::new();
    let mut files = repo::import_files(app.db.orm(), import.id).await?;
    for file_id in results::files_with_open_errors(&app.db, import.id).await? {
        let Some(at) = files.iter().position(|f| f.id == file_id) else {
            continue;
        };
        let file = files.swap_remove(at);
        let f = FileResults::of(file)?;
        let edits = results::edits_of(&app.db, f.file.id).await?;
        let mut out = RecordFile::new(f.delimiter, &f.headers, app.config.chunk_rows)
            .map_err(|e| ApiError::Internal(format!("writing a retry file: {e}")))?;
        let mut rows = Vec::new();
        for chunk_id in results::chunks_with_open_errors(&app.db, f.file.id).await? {
            for r in failed_rows_of_chunk(app, &f, &edits, chunk_id).await? {
                out.record(&r.cells)
                    .map_err(|e| ApiError::Internal(format!("writing a retry file: {e}")))?;
                rows.push(r.row as i64);
            }
        }
        let (bytes, chunks) = out
            .finish()
            .map_err(|e| ApiError::Internal(format!("writing a retry file: {e}")))?;
        // Unique per call: a concurrent retry of the same import that is
        // refused deletes only its own file.
        let data_key = format!(
            "imports/{}/{}.retry-{attempt}-{}.csv",
            import.id,
            f.file.id,
            uuid::Uuid::now_v7().simple()
        );
        let mut writer = app.files.create(&data_key).await?;
        writer.write(&bytes).await?;
        writer.commit().await?;
        planned.push(RetryFile {
            file_id: f.file.id,
            data_key,
            chunks,
            rows,
        });
    }
    let outcome = results::queue_retry(&app.db, import.id, &planned, built_at, by).await?;
    if !matches!(outcome, Retry::Queued { .. }) {
        for p in &planned {
            app.files.delete(&p.data_key).await.ok();
        }
    }
    Ok(outcome)
}
