//! One chunk's rows: the raw bytes of its records become an Arrow record batch
//! of typed, normalised columns (one per column of the import type, plus the
//! row number), with every failing row located and explained.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{Date32Builder, Int64Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, Date32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use chrono::NaiveDate;
use csv::{ByteRecord, ReaderBuilder};

use crate::catalog::{ImportTypeDef, RowCheck};
use crate::model::{RowProblem, excerpt, mask};
use crate::scan::is_blank;
use crate::values::{ValueKind, parse_date, parse_email, parse_enum};

/// Name of the row-number column of a parsed batch.
pub const ROW_COLUMN: &str = "row_number";

/// A chunk after parsing.
#[derive(Debug)]
pub struct ParsedChunk {
    /// `row_number` (Int64) then every column of the type, in catalog order:
    /// Date32 for dates, Utf8 otherwise; null where the value is missing or failed.
    pub batch: RecordBatch,
    /// Per batch row: true when the row passed every check.
    pub valid: Vec<bool>,
    /// Every problem found, in row order.
    pub problems: Vec<RowProblem>,
}

impl ParsedChunk {
    pub fn failed_rows(&self) -> u64 {
        self.valid.iter().filter(|v| !**v).count() as u64
    }

    pub fn valid_rows(&self) -> u64 {
        self.valid.iter().filter(|v| **v).count() as u64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("reading the chunk's records failed: {0}")]
    Csv(#[from] csv::Error),
    #[error("building the chunk's columns failed: {0}")]
    Arrow(#[from] ArrowError),
}

/// Where and how a chunk's records are laid out.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLayout<'a> {
    pub def: &'static ImportTypeDef,
    pub headers: &'a [String],
    pub delimiter: u8,
    pub first_row: u64,
    /// Dates after this day fail `NotInFuture` checks.
    pub today: NaiveDate,
    /// The organization's setup records the type's references point to.
    pub setup: &'a SetupIndex,
}

/// Ids of an organization's setup records (locations, staff users, …) by the
/// lower-cased value a reference matches, one map per referenced column.
#[derive(Debug, Clone, Default)]
pub struct SetupIndex {
    ids: HashMap<&'static str, HashMap<String, i64>>,
}

impl SetupIndex {
    /// Records that `value` of the reference in `column` names record `id`.
    pub fn insert(&mut self, column: &'static str, value: &str, id: i64) {
        self.ids
            .entry(column)
            .or_default()
            .entry(value.to_lowercase())
            .or_insert(id);
    }

    pub fn find(&self, column: &str, value: &str) -> Option<i64> {
        self.ids.get(column)?.get(&value.to_lowercase()).copied()
    }
}

/// Parses the records of one chunk.
pub fn parse_chunk(bytes: &[u8], layout: ChunkLayout<'_>) -> Result<ParsedChunk, ChunkError> {
    let def = layout.def;
    let mapped = def.map_headers(layout.headers);
    let sources: Vec<Option<usize>> = def
        .columns
        .iter()
        .map(|c| mapped.iter().position(|m| *m == Some(c.name)))
        .collect();

    let mut reader = ReaderBuilder::new()
        .delimiter(layout.delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut raw: Vec<StringBuilder> = def.columns.iter().map(|_| StringBuilder::new()).collect();
    let mut rows = Int64Builder::new();
    let mut problems = Vec::new();
    let mut record = ByteRecord::new();
    let mut row = layout.first_row;
    let mut utf8_failed: Vec<bool> = Vec::new();
    while reader.read_byte_record(&mut record)? {
        let this_row = row;
        row += 1;
        if is_blank(&record) {
            continue;
        }
        rows.append_value(this_row as i64);
        let mut bad = false;
        for (ci, (col, source)) in def.columns.iter().zip(&sources).enumerate() {
            let field = source.and_then(|i| record.get(i)).unwrap_or_default();
            let is_key = def.key_columns.contains(&col.name);
            let unstorable = match std::str::from_utf8(field) {
                Ok(s) if s.trim().is_empty() => {
                    raw[ci].append_null();
                    None
                }
                Ok(s) => match unstorable(s.trim(), is_key) {
                    None => {
                        raw[ci].append_value(s.trim());
                        None
                    }
                    Some(reason) => Some(reason),
                },
                Err(_) => Some("not valid UTF-8".to_string()),
            };
            if let Some(reason) = unstorable {
                bad = true;
                raw[ci].append_null();
                problems.push(RowProblem {
                    row: this_row,
                    column: col.name.into(),
                    value: shown(col.sensitive, &String::from_utf8_lossy(field)),
                    reason,
                });
            }
        }
        utf8_failed.push(bad);
    }

    let rows = rows.finish();
    let raw: Vec<StringArray> = raw.iter_mut().map(|b| b.finish()).collect();
    let mut valid: Vec<bool> = utf8_failed.iter().map(|bad| !bad).collect();
    let mut fields = vec![Field::new(ROW_COLUMN, DataType::Int64, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(rows.clone())];
    for (col, values) in def.columns.iter().zip(&raw) {
        let mut fail = |i: usize, value: &str, reason: String| {
            valid[i] = false;
            problems.push(RowProblem {
                row: rows.value(i) as u64,
                column: col.name.into(),
                value: shown(col.sensitive, value),
                reason,
            });
        };
        for (i, utf8_bad) in utf8_failed.iter().enumerate() {
            if col.required && values.is_null(i) && !utf8_bad {
                fail(i, "", format!("{} is required", col.name));
            }
        }
        let (data_type, array): (DataType, ArrayRef) = match col.kind {
            ValueKind::Text => (DataType::Utf8, Arc::new(values.clone())),
            ValueKind::Date => {
                let mut b = Date32Builder::with_capacity(values.len());
                for (i, v) in values.iter().enumerate() {
                    match v.map(parse_date) {
                        None => b.append_null(),
                        Some(Ok(d)) => b.append_value(days_since_epoch(d)),
                        Some(Err(reason)) => {
                            b.append_null();
                            fail(i, v.unwrap_or_default(), reason);
                        }
                    }
                }
                (DataType::Date32, Arc::new(b.finish()))
            }
            ValueKind::Enum(options) => (
                DataType::Utf8,
                Arc::new(normalised(
                    values,
                    |v| parse_enum(v, options).map(str::to_string),
                    &mut fail,
                )),
            ),
            ValueKind::Email => (
                DataType::Utf8,
                Arc::new(normalised(values, parse_email, &mut fail)),
            ),
        };
        fields.push(Field::new(col.name, data_type, true));
        columns.push(array);
    }
    resolve_references(
        def,
        layout.setup,
        &raw,
        &rows,
        &mut valid,
        &mut problems,
        &mut fields,
        &mut columns,
    );
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;

    check_rows(&batch, def, layout.today, &mut valid, &mut problems);
    check_duplicate_keys(&batch, def, &mut valid, &mut problems);
    problems.sort_by_key(|p| p.row);
    Ok(ParsedChunk {
        batch,
        valid,
        problems,
    })
}

/// Adds one Int64 column per reference (named after the target column that
/// stores the id) and fails the rows whose reference names nothing.
#[allow(clippy::too_many_arguments)]
fn resolve_references(
    def: &ImportTypeDef,
    setup: &SetupIndex,
    raw: &[StringArray],
    rows: &Int64Array,
    valid: &mut [bool],
    problems: &mut Vec<RowProblem>,
    fields: &mut Vec<Field>,
    columns: &mut Vec<ArrayRef>,
) {
    for r in def.references {
        let Some(values) = def
            .columns
            .iter()
            .position(|c| c.name == r.column)
            .and_then(|i| raw.get(i))
        else {
            continue;
        };
        let mut ids = Int64Builder::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            match v.map(|v| (v, setup.find(r.column, v))) {
                None => ids.append_null(),
                Some((_, Some(id))) => ids.append_value(id),
                Some((v, None)) => {
                    ids.append_null();
                    valid[i] = false;
                    problems.push(RowProblem {
                        row: rows.value(i) as u64,
                        column: r.column.into(),
                        value: v.to_string(),
                        reason: format!("no {} matches {v:?}", r.describes),
                    });
                }
            }
        }
        fields.push(Field::new(r.store_id_as, DataType::Int64, true));
        columns.push(Arc::new(ids.finish()));
    }
}

/// Parses every present value of a text column into its normalised form;
/// failures are reported and become nulls.
fn normalised(
    values: &StringArray,
    parse: impl Fn(&str) -> Result<String, String>,
    fail: &mut impl FnMut(usize, &str, String),
) -> StringArray {
    let mut b = StringBuilder::with_capacity(values.len(), values.len() * 12);
    for (i, v) in values.iter().enumerate() {
        match v.map(&parse) {
            None => b.append_null(),
            Some(Ok(normal)) => b.append_value(normal),
            Some(Err(reason)) => {
                b.append_null();
                fail(i, v.unwrap_or_default(), reason);
            }
        }
    }
    b.finish()
}

/// Longest value of a key column, and of any other column, that is stored.
pub const MAX_KEY_CHARS: usize = 256;
pub const MAX_VALUE_CHARS: usize = 10_000;

/// Why a value cannot be stored as text, if it cannot.
fn unstorable(value: &str, is_key: bool) -> Option<String> {
    let limit = if is_key {
        MAX_KEY_CHARS
    } else {
        MAX_VALUE_CHARS
    };
    if value.contains('\0') {
        Some("contains a NUL character, which cannot be stored".into())
    } else if value.chars().count() > limit {
        Some(format!("is longer than {limit} characters"))
    } else {
        None
    }
}

fn shown(sensitive: bool, value: &str) -> String {
    if sensitive {
        mask(value)
    } else {
        excerpt(value)
    }
}

fn days_since_epoch(d: NaiveDate) -> i32 {
    d.signed_duration_since(NaiveDate::default()).num_days() as i32
}

/// The date a Date32 value stands for.
pub fn date_from_days(days: i32) -> NaiveDate {
    NaiveDate::default()
        .checked_add_signed(chrono::TimeDelta::days(i64::from(days)))
        .unwrap_or_default()
}

fn date_column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a Date32Array> {
    batch.column_by_name(name)?.as_any().downcast_ref()
}

fn row_numbers(batch: &RecordBatch) -> Option<&Int64Array> {
    batch.column_by_name(ROW_COLUMN)?.as_any().downcast_ref()
}

fn check_rows(
    batch: &RecordBatch,
    def: &ImportTypeDef,
    today: NaiveDate,
    valid: &mut [bool],
    problems: &mut Vec<RowProblem>,
) {
    let Some(rows) = row_numbers(batch) else {
        return;
    };
    let today = days_since_epoch(today);
    for check in def.row_checks {
        match *check {
            RowCheck::NotBefore { later, earlier } => {
                let (Some(l), Some(e)) = (date_column(batch, later), date_column(batch, earlier))
                else {
                    continue;
                };
                for (i, ok) in valid.iter_mut().enumerate() {
                    if l.is_valid(i) && e.is_valid(i) && l.value(i) < e.value(i) {
                        *ok = false;
                        problems.push(RowProblem {
                            row: rows.value(i) as u64,
                            column: later.into(),
                            value: date_from_days(l.value(i)).to_string(),
                            reason: format!(
                                "{later} is before {earlier} ({})",
                                date_from_days(e.value(i))
                            ),
                        });
                    }
                }
            }
            RowCheck::NotInFuture(column) => {
                let Some(d) = date_column(batch, column) else {
                    continue;
                };
                for (i, ok) in valid.iter_mut().enumerate() {
                    if d.is_valid(i) && d.value(i) > today {
                        *ok = false;
                        problems.push(RowProblem {
                            row: rows.value(i) as u64,
                            column: column.into(),
                            value: date_from_days(d.value(i)).to_string(),
                            reason: format!("{column} is in the future"),
                        });
                    }
                }
            }
        }
    }
}

/// Two rows of one chunk with the same key cannot both be written: the later
/// one fails, naming the earlier.
fn check_duplicate_keys(
    batch: &RecordBatch,
    def: &ImportTypeDef,
    valid: &mut [bool],
    problems: &mut Vec<RowProblem>,
) {
    let Some(rows) = row_numbers(batch) else {
        return;
    };
    let keys: Vec<&StringArray> = def
        .key_columns
        .iter()
        .filter_map(|k| batch.column_by_name(k)?.as_any().downcast_ref())
        .collect();
    if keys.len() != def.key_columns.len() {
        return;
    }
    let mut seen: HashMap<Vec<&str>, i64> = HashMap::with_capacity(batch.num_rows());
    for (i, ok) in valid.iter_mut().enumerate() {
        if keys.iter().any(|k| k.is_null(i)) {
            continue;
        }
        if !*ok {
            // A row that failed already claims no key.
            continue;
        }
        let key: Vec<&str> = keys.iter().map(|k| k.value(i)).collect();
        if let Some(first) = seen.get(&key) {
            *ok = false;
            problems.push(RowProblem {
                row: rows.value(i) as u64,
                column: def.key_columns.join("+"),
                value: key.join("+"),
                reason: format!("duplicate key: the same key is already at row {first}"),
            });
        } else {
            seen.insert(key, rows.value(i));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CASES;

    fn setup() -> SetupIndex {
        let mut s = SetupIndex::default();
        s.insert("location_name", "Main Chapel", 7);
        s.insert("director_email", "dana@x.com", 9);
        s
    }

    fn parse(text: &str, headers: &[&str]) -> ParsedChunk {
        let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        let layout = ChunkLayout {
            def: &CASES,
            headers: &headers,
            delimiter: b',',
            first_row: 10,
            today: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
            setup: &setup(),
        };
        parse_chunk(text.as_bytes(), layout).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn values_are_typed_and_normalised() {
        let p = parse(
            "C1,Ann,Lee,3/7/1950,2020-01-02,At Need,DANA@X.COM,main chapel\n",
            &[
                "Case #",
                "First Name",
                "Last Name",
                "DOB",
                "DOD",
                "Type",
                "Director",
                "Location",
            ],
        );
        assert_eq!(p.problems, vec![]);
        assert_eq!(p.valid, vec![true]);
        let dob = date_column(&p.batch, "date_of_birth").map(|a| date_from_days(a.value(0)));
        assert_eq!(dob, NaiveDate::from_ymd_opt(1950, 3, 7));
        let text = |name: &str| {
            p.batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .map(|a| a.value(0).to_string())
        };
        assert_eq!(text("case_type").as_deref(), Some("at_need"));
        assert_eq!(text("director_email").as_deref(), Some("dana@x.com"));
        let id = |name: &str| {
            p.batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                .map(|a| a.value(0))
        };
        assert_eq!(
            (id("location_id"), id("director_user_id")),
            (Some(7), Some(9))
        );
        assert_eq!(
            row_numbers(&p.batch).map(|r| r.value(0)),
            Some(10),
            "row numbers start at the chunk's first row"
        );
    }

    #[test]
    fn failing_rows_are_located_with_column_value_and_reason() {
        let p = parse(
            "C1,Ann,Lee,1950-01-01,1940-01-01,\n,,,,,\nC2,,Ray,notadate,,\nC1,Bo,Li,,2030-01-01,\nC5,Al,Bo,,,Nowhere\n",
            &[
                "case_number",
                "deceased_first_name",
                "deceased_last_name",
                "dob",
                "dod",
                "location",
            ],
        );
        assert_eq!(p.valid, vec![false, false, false, false]);
        let found: Vec<(u64, &str)> = p
            .problems
            .iter()
            .map(|x| (x.row, x.column.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (10, "date_of_death"),
                (12, "deceased_first_name"),
                (12, "date_of_birth"),
                (13, "date_of_death"),
                (14, "location_name")
            ]
        );
        assert_eq!(p.problems[2].value, "notadate");
    }

    #[test]
    fn a_key_repeated_in_a_chunk_fails_the_later_valid_row_only() {
        let p = parse(
            "C1,Ann,Lee\nC1,,Lee\nC1,Bo,Li\n",
            &["case_number", "deceased_first_name", "deceased_last_name"],
        );
        // Row 11 failed for its own reason and claims no key; row 12 repeats row 10.
        assert_eq!(p.valid, vec![true, false, false]);
        let dup = p.problems.iter().find(|x| x.row == 12).cloned();
        assert_eq!(dup.as_ref().map(|d| d.column.as_str()), Some("case_number"));
        assert!(dup.is_some_and(|d| d.reason.contains("row 10")));
    }

    #[test]
    fn values_postgres_cannot_store_fail_their_row_only() {
        let long_key = "K".repeat(300);
        let p = parse(
            &format!("C1,Ann\0e,Lee\n{long_key},Bo,Li\nC3,Cy,Do\n"),
            &["case_number", "deceased_first_name", "deceased_last_name"],
        );
        assert_eq!(p.valid, vec![false, false, true]);
        assert!(p.problems[0].reason.contains("NUL"), "{:?}", p.problems);
        assert!(!p.problems[0].value.contains('\0'));
        assert!(p.problems[1].reason.contains("longer than 256"));
        assert!(p.problems[1].value.chars().count() <= 201);
    }

    #[test]
    fn dates_round_trip_through_days() {
        for d in ["1900-02-28", "1969-12-31", "1970-01-01", "2024-02-29"] {
            let day = NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap_or_default();
            assert_eq!(date_from_days(days_since_epoch(day)), day);
        }
    }
}
