//! A file of an import as its results read it: its type, headers and the
//! header position of each column, and its still-failed rows read back from
//! the bytes their chunk loaded, with the edits people made.

use std::collections::HashMap;

use passare_imports_domain::catalog::ImportTypeDef;
use passare_imports_domain::results::numbered_records;
use passare_imports_store::entities::{chunks, import_files};
use passare_imports_store::load::{file_mapping, file_type};
use passare_imports_store::{PgConnection, results};

use crate::app::App;
use crate::error::ApiError;

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
        let def = file_type(&file)?;
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
pub(super) async fn failed_rows_of_chunk(
    app: &App,
    conn: &mut PgConnection,
    f: &FileResults,
    edits: &HashMap<i64, Vec<(String, String)>>,
    chunk_id: i64,
) -> Result<Vec<FailedRow>, ApiError> {
    let open = results::open_failed_rows(conn, chunk_id).await?;
    let Some(chunk): Option<chunks::Model> =
        passare_imports_store::chunks::by_ids(conn, &[chunk_id])
            .await?
            .pop()
    else {
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
