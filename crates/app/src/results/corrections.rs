//! A corrected failed-rows file coming back: its `row` column names the
//! failed row, its other headers are the file's own; each cell becomes an
//! edit of that row (apostrophes the download added are taken off again).

use passare_imports_domain::catalog::normalize_header;
use passare_imports_domain::file::scan::sniff_delimiter;
use passare_imports_domain::results::restore;

use super::files::FileResults;
use crate::error::{ApiError, FieldViolation};

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
    let delimiter = sniff_delimiter(first_line.as_bytes());
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| ApiError::invalid("content", format!("has no readable header: {e}")))?
        .clone();
    let (row_at, columns) = header_columns(f, &headers)?;
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

/// Where the corrected file's `row` column is, and the canonical column of
/// each of its headers (`None` for `row`, `error` and the file's headers
/// that map to no column). Headers the file does not have are refused.
fn header_columns(
    f: &FileResults,
    headers: &csv::StringRecord,
) -> Result<(usize, Vec<Option<&'static str>>), ApiError> {
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
        let at = f.headers.iter().position(|x| normalize_header(x) == wanted);
        if at.is_none() {
            unknown.push(h.to_string());
        }
        let own = at.and_then(|p| {
            f.position_of
                .iter()
                .find(|(_, position)| **position == p)
                .map(|(c, _)| *c)
        });
        columns.push(own);
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
    Ok((row_at, columns))
}
