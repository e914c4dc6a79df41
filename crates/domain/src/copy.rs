//! Encodes rows of a parsed chunk in PostgreSQL's binary COPY format, the
//! fastest way into a table: the server takes integers, dates and UUIDs as
//! they are instead of parsing their text.

use arrow_array::{Array, Date32Array, Int64Array, RecordBatch, StringArray};

/// Days from 1970-01-01 (Arrow's Date32 epoch) to 2000-01-01 (PostgreSQL's).
const PG_EPOCH_DAYS: i32 = 10_957;
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// A value that is the same for every row of a COPY.
#[derive(Debug, Clone, Copy)]
pub enum Constant {
    Int8(i64),
    Uuid([u8; 16]),
}

impl Constant {
    fn write(self, out: &mut Vec<u8>) {
        match self {
            Constant::Int8(v) => {
                out.extend_from_slice(&8i32.to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            Constant::Uuid(v) => {
                out.extend_from_slice(&16i32.to_be_bytes());
                out.extend_from_slice(&v);
            }
        }
    }
}

/// Writes a whole binary COPY stream for `rows`: per row, the `prefix`
/// constants, the values of `columns` (by name, in that order; Int64 as
/// `bigint`, Utf8 as `text`, Date32 as `date`), then the `suffix` constants.
/// The COPY's column list must name the same columns in the same order.
pub fn encode_copy_binary(
    batch: &RecordBatch,
    columns: &[&str],
    rows: impl Iterator<Item = usize>,
    prefix: &[Constant],
    suffix: &[Constant],
    out: &mut Vec<u8>,
) {
    enum Col<'a> {
        Int(&'a Int64Array),
        Text(&'a StringArray),
        Date(&'a Date32Array),
        Missing,
    }
    let cols: Vec<Col<'_>> = columns
        .iter()
        .map(|name| {
            let Some(c) = batch.column_by_name(name) else {
                return Col::Missing;
            };
            let any = c.as_any();
            if let Some(a) = any.downcast_ref::<Int64Array>() {
                Col::Int(a)
            } else if let Some(a) = any.downcast_ref::<StringArray>() {
                Col::Text(a)
            } else if let Some(a) = any.downcast_ref::<Date32Array>() {
                Col::Date(a)
            } else {
                Col::Missing
            }
        })
        .collect();
    let fields = (prefix.len() + cols.len() + suffix.len()) as i16;

    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&0i32.to_be_bytes()); // flags
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension
    for row in rows.filter(|r| *r < batch.num_rows()) {
        out.extend_from_slice(&fields.to_be_bytes());
        for c in prefix {
            c.write(out);
        }
        for col in &cols {
            match col {
                Col::Int(a) if a.is_valid(row) => {
                    out.extend_from_slice(&8i32.to_be_bytes());
                    out.extend_from_slice(&a.value(row).to_be_bytes());
                }
                Col::Text(a) if a.is_valid(row) => {
                    let v = a.value(row).as_bytes();
                    out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    out.extend_from_slice(v);
                }
                Col::Date(a) if a.is_valid(row) => {
                    out.extend_from_slice(&4i32.to_be_bytes());
                    out.extend_from_slice(&(a.value(row) - PG_EPOCH_DAYS).to_be_bytes());
                }
                _ => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        for c in suffix {
            c.write(out);
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::ArrayRef;

    use super::*;

    #[test]
    fn writes_header_chosen_rows_nulls_constants_and_trailer() {
        let rows: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some("ab"), None, None]));
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![
            Some(PG_EPOCH_DAYS + 1),
            Some(0),
            None,
        ]));
        let batch = RecordBatch::try_from_iter([("r", rows), ("t", text), ("d", dates)])
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        encode_copy_binary(
            &batch,
            &["t", "d", "r"],
            [0, 2].into_iter(),
            &[Constant::Int8(42)],
            &[Constant::Uuid([7; 16])],
            &mut out,
        );
        let mut expected = SIGNATURE.to_vec();
        expected.extend_from_slice(&[0; 8]);
        for (t, d, r) in [(Some(&b"ab"[..]), Some(1i32), 1i64), (None, None, 3)] {
            expected.extend_from_slice(&5i16.to_be_bytes());
            expected.extend_from_slice(&8i32.to_be_bytes());
            expected.extend_from_slice(&42i64.to_be_bytes());
            match t {
                Some(t) => {
                    expected.extend_from_slice(&(t.len() as i32).to_be_bytes());
                    expected.extend_from_slice(t);
                }
                None => expected.extend_from_slice(&(-1i32).to_be_bytes()),
            }
            match d {
                Some(d) => {
                    expected.extend_from_slice(&4i32.to_be_bytes());
                    expected.extend_from_slice(&d.to_be_bytes());
                }
                None => expected.extend_from_slice(&(-1i32).to_be_bytes()),
            }
            expected.extend_from_slice(&8i32.to_be_bytes());
            expected.extend_from_slice(&r.to_be_bytes());
            expected.extend_from_slice(&16i32.to_be_bytes());
            expected.extend_from_slice(&[7; 16]);
        }
        expected.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(out, expected);
    }
}
