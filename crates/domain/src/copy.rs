//! Encodes the valid rows of a parsed chunk in PostgreSQL's COPY text format,
//! the fastest way into the staging table.

use arrow_array::{Array, Date32Array, Int64Array, RecordBatch, StringArray};

use std::io::Write;

use chrono::Datelike;

use crate::chunk::date_from_days;

/// Appends one COPY text line (tab-separated, `\N` for null) per row in
/// `rows`: `prefix`, the values of `columns` (by name, in that order), then
/// `suffix`. Prefix and suffix are already-encoded constant columns, each
/// ending or starting with its tab.
pub fn encode_copy_rows(
    batch: &RecordBatch,
    columns: &[&str],
    rows: impl Iterator<Item = usize>,
    prefix: &[u8],
    suffix: &[u8],
    out: &mut Vec<u8>,
) {
    enum Col<'a> {
        Int(&'a Int64Array),
        Text(&'a StringArray),
        Date(&'a Date32Array),
        Other,
    }
    let cols: Vec<Col<'_>> = columns
        .iter()
        .map(|name| {
            let Some(c) = batch.column_by_name(name) else {
                return Col::Other;
            };
            let any = c.as_any();
            if let Some(a) = any.downcast_ref::<Int64Array>() {
                Col::Int(a)
            } else if let Some(a) = any.downcast_ref::<StringArray>() {
                Col::Text(a)
            } else if let Some(a) = any.downcast_ref::<Date32Array>() {
                Col::Date(a)
            } else {
                Col::Other
            }
        })
        .collect();
    for row in rows.filter(|r| *r < batch.num_rows()) {
        out.extend_from_slice(prefix);
        for (i, col) in cols.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            match col {
                Col::Int(a) if a.is_valid(row) => {
                    let _ = write!(out, "{}", a.value(row));
                }
                Col::Text(a) if a.is_valid(row) => escape_into(a.value(row), out),
                Col::Date(a) if a.is_valid(row) => {
                    let d = date_from_days(a.value(row));
                    let _ = write!(out, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
                }
                _ => out.extend_from_slice(b"\\N"),
            }
        }
        out.extend_from_slice(suffix);
        out.push(b'\n');
    }
}

fn escape_into(value: &str, out: &mut Vec<u8>) {
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::ArrayRef;

    use super::*;

    #[test]
    fn escapes_specials_writes_nulls_and_only_the_chosen_rows_and_columns() {
        let rows: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some("a\tb\\c\nd"), None, Some("x")]));
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![Some(0), Some(1), None]));
        let batch = RecordBatch::try_from_iter([("r", rows), ("t", text), ("d", dates)])
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        encode_copy_rows(
            &batch,
            &["t", "d", "r"],
            [0, 2].into_iter(),
            b"42\t",
            b"\tz",
            &mut out,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "42\ta\\tb\\\\c\\nd\t1970-01-01\t1\tz\n42\tx\t\\N\t3\tz\n"
        );
    }
}
