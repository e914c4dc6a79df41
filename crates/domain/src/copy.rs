//! Encodes the valid rows of a parsed chunk in PostgreSQL's COPY text format,
//! the fastest way into the staging table.

use arrow_array::{Array, Date32Array, Int64Array, RecordBatch, StringArray};

use crate::chunk::date_from_days;

/// Appends every row of `batch` whose `valid` flag is set, all columns in
/// batch order, to `out` as COPY text (tab-separated, `\N` for null).
pub fn encode_copy_text(batch: &RecordBatch, valid: &[bool], out: &mut Vec<u8>) {
    enum Col<'a> {
        Int(&'a Int64Array),
        Text(&'a StringArray),
        Date(&'a Date32Array),
        Other,
    }
    let cols: Vec<Col<'_>> = batch
        .columns()
        .iter()
        .map(|c| {
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
    for (row, keep) in valid.iter().enumerate().take(batch.num_rows()) {
        if !keep {
            continue;
        }
        for (i, col) in cols.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            match col {
                Col::Int(a) if a.is_valid(row) => {
                    out.extend_from_slice(a.value(row).to_string().as_bytes())
                }
                Col::Text(a) if a.is_valid(row) => escape_into(a.value(row), out),
                Col::Date(a) if a.is_valid(row) => out.extend_from_slice(
                    date_from_days(a.value(row))
                        .format("%Y-%m-%d")
                        .to_string()
                        .as_bytes(),
                ),
                _ => out.extend_from_slice(b"\\N"),
            }
        }
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
    fn escapes_specials_writes_nulls_and_skips_invalid_rows() {
        let rows: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some("a\tb\\c\nd"), None, Some("x")]));
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![Some(0), Some(1), None]));
        let batch = RecordBatch::try_from_iter([("r", rows), ("t", text), ("d", dates)])
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        encode_copy_text(&batch, &[true, false, true], &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "1\ta\\tb\\\\c\\nd\t1970-01-01\n3\tx\t\\N\n"
        );
    }
}
