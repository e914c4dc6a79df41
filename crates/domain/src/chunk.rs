//! One chunk's rows: the raw bytes of its records become an Arrow record batch
//! of typed, normalised columns (one per column of the import type, plus the
//! row number), with every failing row located and explained. References are
//! resolved in a second step ([`ParsedChunk::finish`]) against the records the
//! chunk names, which the caller looks up in one query per reference.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, TimeUnit};
use chrono::NaiveDate;
use csv::{ByteRecord, ReaderBuilder};
use sha2::{Digest, Sha256};

use crate::catalog::{ImportTypeDef, RefTarget, ReferenceDef, RowCheck};
use crate::model::{FindingKind, RowProblem, excerpt, mask};
use crate::normal::{parse_bool, parse_datetime, parse_money};
use crate::scan::is_blank;
use crate::values::{ValueKind, format_cents, normalise_text, parse_date};

/// Name of the row-number column of a parsed batch.
pub const ROW_COLUMN: &str = "row_number";
/// Money columns: exact decimals with two places.
pub const MONEY_PRECISION: u8 = 14;
pub const MONEY_SCALE: i8 = 2;

/// A chunk after parsing.
#[derive(Debug)]
pub struct ParsedChunk {
    /// `row_number` (Int64) then every column of the type, in catalog order
    /// (see [`arrow_type`]); after [`ParsedChunk::finish`], one Int64 column per
    /// reference that stores an id. Null where the value is missing or failed.
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

    /// Row number of batch row `i`.
    pub fn row_number(&self, i: usize) -> u64 {
        row_numbers(&self.batch).map_or(0, |r| r.value(i) as u64)
    }

    /// Fails row `i` with a problem.
    pub fn fail(
        &mut self,
        i: usize,
        kind: FindingKind,
        column: &str,
        value: String,
        reason: String,
    ) {
        if let Some(v) = self.valid.get_mut(i) {
            *v = false;
        }
        let row = self.row_number(i);
        self.problems.push(RowProblem {
            row,
            column: column.into(),
            value,
            reason,
            kind,
        });
    }

    /// The text of a cell (see [`cell_text`]); `None` when missing.
    pub fn text(&self, column: &str, i: usize) -> Option<String> {
        self.batch
            .column_by_name(column)
            .and_then(|a| cell_text(a, i))
    }

    /// The row's key as text, one part per key column; `None` when a part is missing.
    pub fn key(&self, def: &ImportTypeDef, i: usize) -> Option<Vec<String>> {
        def.key_columns.iter().map(|k| self.text(k, i)).collect()
    }

    /// Distinct values of each of `def`'s references among the valid rows, in
    /// the form the lookup matches (lower case for setup).
    pub fn reference_values(&self, def: &ImportTypeDef) -> Vec<Vec<String>> {
        def.references
            .iter()
            .map(|r| {
                let mut seen: Vec<String> = (0..self.batch.num_rows())
                    .filter(|i| self.valid[*i])
                    .filter_map(|i| self.text(r.column, i))
                    .map(|v| lookup_form(r, &v))
                    .collect();
                seen.sort_unstable();
                seen.dedup();
                seen
            })
            .collect()
    }

    /// Resolves the references, adds their id columns, and fails rows whose
    /// key repeats an earlier row of the chunk or that flag a second row of
    /// one group (see [`RowCheck::OneFlaggedPer`]).
    pub fn finish(
        &mut self,
        def: &ImportTypeDef,
        lookup: &dyn ReferenceLookup,
    ) -> Result<(), ChunkError> {
        let n = self.batch.num_rows();
        let mut fields: Vec<Field> = self
            .batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut columns: Vec<ArrayRef> = self.batch.columns().to_vec();
        for r in def.references {
            let mut ids = Int64Builder::with_capacity(n);
            for i in 0..n {
                let Some(value) = self.text(r.column, i) else {
                    ids.append_null();
                    continue;
                };
                if !self.valid[i] {
                    ids.append_null();
                    continue;
                }
                match lookup.find(r, &lookup_form(r, &value)) {
                    None => {
                        ids.append_null();
                        self.fail(
                            i,
                            FindingKind::UnresolvedReference,
                            r.column,
                            excerpt(&value),
                            format!("no {} matches {value:?}", r.describes),
                        );
                    }
                    Some(hit) => {
                        match hit.id {
                            Some(id) => ids.append_value(id),
                            None => ids.append_null(),
                        }
                        for (j, (mine, theirs)) in r.agrees.iter().enumerate() {
                            let ours = self.text(mine, i);
                            let stored = hit.agrees.get(j).cloned().flatten();
                            if let (Some(ours), Some(stored)) = (ours, stored)
                                && ours != stored
                            {
                                self.fail(
                                    i,
                                    FindingKind::Constraint,
                                    mine,
                                    excerpt(&ours),
                                    format!(
                                        "{} {value:?} belongs to {theirs} {stored:?}, not {ours:?}",
                                        r.describes
                                    ),
                                );
                            }
                        }
                    }
                }
            }
            if let Some(name) = r.store_id_as {
                fields.push(Field::new(name, DataType::Int64, true));
                columns.push(Arc::new(ids.finish()));
            }
        }
        self.batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        self.check_duplicate_keys(def);
        self.check_flags(def);
        self.problems.sort_by_key(|p| p.row);
        Ok(())
    }

    /// Two rows of one chunk with the same key cannot both be written: the later
    /// one fails, naming the earlier.
    fn check_duplicate_keys(&mut self, def: &ImportTypeDef) {
        let mut seen: HashMap<Vec<String>, u64> = HashMap::with_capacity(self.batch.num_rows());
        for i in 0..self.batch.num_rows() {
            // A row that failed already claims no key.
            if !self.valid[i] {
                continue;
            }
            let Some(key) = self.key(def, i) else {
                continue;
            };
            if let Some(first) = seen.get(&key) {
                let reason = format!("duplicate key: the same key is already at row {first}");
                self.fail(
                    i,
                    FindingKind::DuplicateInFile,
                    &def.key_columns.join("+"),
                    excerpt(&key.join("+")),
                    reason,
                );
            } else {
                let row = self.row_number(i);
                seen.insert(key, row);
            }
        }
    }

    fn check_flags(&mut self, def: &ImportTypeDef) {
        for check in def.row_checks {
            let RowCheck::OneFlaggedPer { group, flag } = *check else {
                continue;
            };
            let mut first: HashMap<String, u64> = HashMap::new();
            for i in 0..self.batch.num_rows() {
                if !self.valid[i] || self.text(flag, i).as_deref() != Some("true") {
                    continue;
                }
                let Some(g) = self.text(group, i) else {
                    continue;
                };
                if let Some(row) = first.get(&g) {
                    let reason = format!("{group} {g:?} already has {flag} at row {row}");
                    self.fail(i, FindingKind::Constraint, flag, "true".into(), reason);
                } else {
                    let row = self.row_number(i);
                    first.insert(g, row);
                }
            }
        }
    }
}

/// The form in which a reference's value is matched: setup names ignore case,
/// record keys match exactly.
pub fn lookup_form(r: &ReferenceDef, value: &str) -> String {
    match r.target {
        RefTarget::Setup { .. } => value.to_lowercase(),
        RefTarget::Records { .. } => value.to_string(),
    }
}

/// The record a reference names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefHit {
    /// Id of a setup record, stored when the reference asks for it.
    pub id: Option<i64>,
    /// The referenced record's values of the reference's `agrees` columns.
    pub agrees: Vec<Option<String>>,
}

/// Finds what a reference's value names.
pub trait ReferenceLookup: Sync {
    /// `value` is in [`lookup_form`].
    fn find(&self, r: &ReferenceDef, value: &str) -> Option<RefHit>;
}

/// Records found for the values of a chunk's references, by reference column
/// and value in [`lookup_form`].
#[derive(Debug, Clone, Default)]
pub struct ReferenceIndex {
    hits: HashMap<&'static str, HashMap<String, RefHit>>,
}

impl ReferenceIndex {
    pub fn insert(&mut self, r: &ReferenceDef, value: &str, hit: RefHit) {
        self.hits
            .entry(r.column)
            .or_default()
            .entry(lookup_form(r, value))
            .or_insert(hit);
    }
}

impl ReferenceLookup for ReferenceIndex {
    fn find(&self, r: &ReferenceDef, value: &str) -> Option<RefHit> {
        self.hits.get(r.column)?.get(value).cloned()
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
    /// Canonical column of each field of a record, `None` for ignored fields
    /// (see [`ImportTypeDef::map_headers_with`]).
    pub mapping: &'a [Option<&'static str>],
    pub delimiter: u8,
    pub first_row: u64,
    /// The row number of each record, when the records are not consecutive
    /// rows of a file (a retry of failed rows); `first_row` is then unused.
    pub row_numbers: Option<&'a [u64]>,
    /// Dates after this day fail `NotInFuture` checks.
    pub today: NaiveDate,
}

/// The Arrow type holding a kind's parsed values.
pub fn arrow_type(kind: ValueKind) -> DataType {
    match kind {
        ValueKind::Date => DataType::Date32,
        ValueKind::DateTime => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ValueKind::Money => DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE),
        ValueKind::Bool => DataType::Boolean,
        _ => DataType::Utf8,
    }
}

/// Parses the records of one chunk.
pub fn parse_chunk(bytes: &[u8], layout: ChunkLayout<'_>) -> Result<ParsedChunk, ChunkError> {
    let def = layout.def;
    let sources: Vec<Option<usize>> = def
        .columns
        .iter()
        .map(|c| layout.mapping.iter().position(|m| *m == Some(c.name)))
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
    let mut unreadable: Vec<bool> = Vec::new();
    let mut index = 0usize;
    while reader.read_byte_record(&mut record)? {
        let this_row = match layout.row_numbers {
            Some(numbers) => numbers.get(index).copied().unwrap_or(row),
            None => row,
        };
        row += 1;
        index += 1;
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
                Err(_) => Some(
                    "is not valid UTF-8 (if the file is Windows-1252, upload it with that encoding)"
                        .to_string(),
                ),
            };
            if let Some(reason) = unstorable {
                bad = true;
                raw[ci].append_null();
                problems.push(RowProblem {
                    row: this_row,
                    column: col.name.into(),
                    value: shown(col.sensitive, &String::from_utf8_lossy(field)),
                    reason,
                    kind: FindingKind::TypeError,
                });
            }
        }
        unreadable.push(bad);
    }

    let rows = rows.finish();
    let raw: Vec<StringArray> = raw.iter_mut().map(|b| b.finish()).collect();
    let mut valid: Vec<bool> = unreadable.iter().map(|bad| !bad).collect();
    let mut fields = vec![Field::new(ROW_COLUMN, DataType::Int64, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(rows.clone())];
    for (col, values) in def.columns.iter().zip(&raw) {
        let mut fail = |i: usize, value: &str, reason: String, kind: FindingKind| {
            valid[i] = false;
            problems.push(RowProblem {
                row: rows.value(i) as u64,
                column: col.name.into(),
                value: shown(col.sensitive, value),
                reason,
                kind,
            });
        };
        let derived = def.derived_key.is_some_and(|d| d.column == col.name);
        for (i, bad) in unreadable.iter().enumerate() {
            if col.required && values.is_null(i) && !bad {
                fail(
                    i,
                    "",
                    format!("{} is required", col.name),
                    FindingKind::Constraint,
                );
            }
        }
        let array: ArrayRef = match col.kind {
            ValueKind::Date => {
                let mut b = Date32Builder::with_capacity(values.len());
                for (i, v) in values.iter().enumerate() {
                    match v.map(parse_date) {
                        None => b.append_null(),
                        Some(Ok(d)) => b.append_value(days_since_epoch(d)),
                        Some(Err(reason)) => {
                            b.append_null();
                            fail(i, v.unwrap_or_default(), reason, FindingKind::TypeError);
                        }
                    }
                }
                Arc::new(b.finish())
            }
            ValueKind::DateTime => {
                let mut b = TimestampMicrosecondBuilder::with_capacity(values.len());
                for (i, v) in values.iter().enumerate() {
                    match v.map(parse_datetime) {
                        None => b.append_null(),
                        Some(Ok(t)) => b.append_value(t),
                        Some(Err(reason)) => {
                            b.append_null();
                            fail(i, v.unwrap_or_default(), reason, FindingKind::TypeError);
                        }
                    }
                }
                Arc::new(b.finish().with_timezone("UTC"))
            }
            ValueKind::Money => {
                let mut b = Decimal128Builder::with_capacity(values.len());
                for (i, v) in values.iter().enumerate() {
                    match v.map(parse_money) {
                        None => b.append_null(),
                        Some(Ok(cents))
                            if cents.unsigned_abs() < 10u64.pow(MONEY_PRECISION as u32) =>
                        {
                            b.append_value(i128::from(cents))
                        }
                        Some(Ok(_)) => {
                            b.append_null();
                            fail(
                                i,
                                v.unwrap_or_default(),
                                "is too large an amount (at most 999,999,999,999.99)".into(),
                                FindingKind::TypeError,
                            );
                        }
                        Some(Err(reason)) => {
                            b.append_null();
                            fail(i, v.unwrap_or_default(), reason, FindingKind::TypeError);
                        }
                    }
                }
                Arc::new(
                    b.finish()
                        .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)?,
                )
            }
            ValueKind::Bool => {
                let mut b = BooleanBuilder::with_capacity(values.len());
                for (i, v) in values.iter().enumerate() {
                    match v.map(parse_bool) {
                        None => b.append_null(),
                        Some(Ok(x)) => b.append_value(x),
                        Some(Err(reason)) => {
                            b.append_null();
                            fail(i, v.unwrap_or_default(), reason, FindingKind::TypeError);
                        }
                    }
                }
                Arc::new(b.finish())
            }
            ValueKind::Text if !def.key_columns.contains(&col.name) || col.required || derived => {
                Arc::new(values.clone())
            }
            // An optional key part that is missing is stored as '' so the key stays whole.
            ValueKind::Text => Arc::new(
                values
                    .iter()
                    .map(|v| Some(v.unwrap_or_default()))
                    .collect::<StringArray>(),
            ),
            kind => {
                let mut b = StringBuilder::with_capacity(values.len(), values.len() * 12);
                for (i, v) in values.iter().enumerate() {
                    match v.map(|v| normalise_text(kind, v)) {
                        None => b.append_null(),
                        Some(Ok(normal)) => b.append_value(normal),
                        Some(Err(reason)) => {
                            b.append_null();
                            fail(i, v.unwrap_or_default(), reason, FindingKind::TypeError);
                        }
                    }
                }
                Arc::new(b.finish())
            }
        };
        fields.push(Field::new(col.name, arrow_type(col.kind), true));
        columns.push(array);
    }
    let mut batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    if let Some(d) = def.derived_key {
        batch = derive_key(batch, d.column, d.from)?;
    }
    check_rows(&batch, def, layout.today, &mut valid, &mut problems);
    problems.sort_by_key(|p| p.row);
    Ok(ParsedChunk {
        batch,
        valid,
        problems,
    })
}

/// Fills the empty cells of `column` with a hash of the row's `from` values:
/// `auto-` and 20 hex digits of their SHA-256, the same for the same values in
/// any file.
fn derive_key(batch: RecordBatch, column: &str, from: &[&str]) -> Result<RecordBatch, ArrowError> {
    let Some(index) = batch.schema().index_of(column).ok() else {
        return Ok(batch);
    };
    let n = batch.num_rows();
    let mut b = StringBuilder::with_capacity(n, n * 25);
    for i in 0..n {
        if let Some(v) = cell_text(batch.column(index), i) {
            b.append_value(v);
            continue;
        }
        let parts: Option<Vec<String>> = from
            .iter()
            .map(|c| batch.column_by_name(c).and_then(|a| cell_text(a, i)))
            .collect();
        match parts {
            Some(parts) => {
                let digest = Sha256::digest(parts.join("\u{1f}").as_bytes());
                let hex: String = digest.iter().take(10).map(|b| format!("{b:02x}")).collect();
                b.append_value(format!("auto-{hex}"));
            }
            None => b.append_null(),
        }
    }
    let mut columns = batch.columns().to_vec();
    columns[index] = Arc::new(b.finish());
    RecordBatch::try_new(batch.schema(), columns)
}

/// A cell as text: strings as they are, dates `YYYY-MM-DD`, date-times RFC
/// 3339 in UTC, money with two decimals, booleans `true`/`false`, integers in
/// decimal; `None` when null.
pub fn cell_text(array: &ArrayRef, i: usize) -> Option<String> {
    if i >= array.len() || array.is_null(i) {
        return None;
    }
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        Some(a.value(i).to_string())
    } else if let Some(a) = any.downcast_ref::<Date32Array>() {
        Some(date_from_days(a.value(i)).to_string())
    } else if let Some(a) = any.downcast_ref::<TimestampMicrosecondArray>() {
        chrono::DateTime::from_timestamp_micros(a.value(i))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    } else if let Some(a) = any.downcast_ref::<Decimal128Array>() {
        i64::try_from(a.value(i)).ok().map(format_cents)
    } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
        Some(a.value(i).to_string())
    } else {
        any.downcast_ref::<Int64Array>()
            .map(|a| a.value(i).to_string())
    }
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

fn money_column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a Decimal128Array> {
    batch.column_by_name(name)?.as_any().downcast_ref()
}

/// A date or date-time cell as a number that orders like the value.
fn ordinal(batch: &RecordBatch, name: &str, i: usize) -> Option<i64> {
    let array = batch.column_by_name(name)?;
    if array.is_null(i) {
        return None;
    }
    if let Some(a) = array.as_any().downcast_ref::<Date32Array>() {
        Some(i64::from(a.value(i)))
    } else {
        array
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .map(|a| a.value(i))
    }
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
    let text = |name: &str, i: usize| batch.column_by_name(name).and_then(|a| cell_text(a, i));
    let mut fail = |valid: &mut [bool], i: usize, column: &str, value: String, reason: String| {
        valid[i] = false;
        problems.push(RowProblem {
            row: rows.value(i) as u64,
            column: column.into(),
            value,
            reason,
            kind: FindingKind::Constraint,
        });
    };
    for check in def.row_checks {
        for i in 0..batch.num_rows() {
            match *check {
                RowCheck::NotBefore { later, earlier } | RowCheck::After { later, earlier } => {
                    let strict = matches!(check, RowCheck::After { .. });
                    let (Some(l), Some(e)) = (ordinal(batch, later, i), ordinal(batch, earlier, i))
                    else {
                        continue;
                    };
                    if l < e || (strict && l == e) {
                        let reason = format!(
                            "{later} is {} {earlier} ({})",
                            if l < e { "before" } else { "the same as" },
                            text(earlier, i).unwrap_or_default()
                        );
                        fail(valid, i, later, text(later, i).unwrap_or_default(), reason);
                    }
                }
                RowCheck::NotInFuture(column) => {
                    let Some(d) = date_column(batch, column) else {
                        continue;
                    };
                    if d.is_valid(i) && d.value(i) > today {
                        let reason = format!("{column} is in the future");
                        fail(
                            valid,
                            i,
                            column,
                            date_from_days(d.value(i)).to_string(),
                            reason,
                        );
                    }
                }
                RowCheck::MinMoney {
                    column,
                    cents,
                    strict,
                } => {
                    let Some(a) = money_column(batch, column) else {
                        continue;
                    };
                    if a.is_null(i) {
                        continue;
                    }
                    let v = a.value(i);
                    let min = i128::from(cents);
                    if v < min || (strict && v == min) {
                        let reason = format!(
                            "{column} must be {} {}",
                            if strict { "more than" } else { "at least" },
                            format_cents(cents)
                        );
                        fail(
                            valid,
                            i,
                            column,
                            text(column, i).unwrap_or_default(),
                            reason,
                        );
                    }
                }
                RowCheck::SumEquals {
                    total,
                    plus,
                    minus,
                    tolerance_cents,
                } => {
                    let get = |c: &str| {
                        money_column(batch, c).and_then(|a| a.is_valid(i).then(|| a.value(i)))
                    };
                    let (Some(t), Some(p), Some(m)) = (
                        get(total),
                        plus.iter().map(|c| get(c)).sum::<Option<i128>>(),
                        minus.iter().map(|c| get(c)).sum::<Option<i128>>(),
                    ) else {
                        continue;
                    };
                    let expected = p - m;
                    if (t - expected).abs() > i128::from(tolerance_cents) {
                        let reason = format!(
                            "{total} is not {} (= {}{})",
                            i64::try_from(expected)
                                .map(format_cents)
                                .unwrap_or_default(),
                            plus.join(" + "),
                            minus.iter().map(|m| format!(" − {m}")).collect::<String>()
                        );
                        fail(valid, i, total, text(total, i).unwrap_or_default(), reason);
                    }
                }
                RowCheck::SignAgrees {
                    kind,
                    amount,
                    negative,
                    positive,
                } => {
                    let (Some(k), Some(a)) = (
                        text(kind, i),
                        money_column(batch, amount).and_then(|a| a.is_valid(i).then(|| a.value(i))),
                    ) else {
                        continue;
                    };
                    if (k == negative && a >= 0) || (k == positive && a <= 0) {
                        let reason = format!(
                            "{kind} {k} needs {} {amount}",
                            if k == negative {
                                "a negative"
                            } else {
                                "a positive"
                            }
                        );
                        fail(valid, i, kind, k, reason);
                    }
                }
                // Checked across rows by `ParsedChunk::finish` and the loader.
                RowCheck::OneFlaggedPer { .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{BANK_TRANSACTIONS, CASES, CONTRACT_INFORMATION, FAMILY_AND_FRIENDS};

    fn setup() -> ReferenceIndex {
        let mut s = ReferenceIndex::default();
        let hit = |id| RefHit {
            id: Some(id),
            agrees: vec![],
        };
        s.insert(&CASES.references[0], "Main Chapel", hit(7));
        s.insert(&CASES.references[1], "dana@x.com", hit(9));
        s.insert(&BANK_TRANSACTIONS.references[0], "a1", hit(3));
        for case in ["C1", "C2"] {
            s.insert(&FAMILY_AND_FRIENDS.references[0], case, RefHit::default());
            s.insert(&CONTRACT_INFORMATION.references[0], case, RefHit::default());
        }
        s
    }

    fn parse_as(def: &'static ImportTypeDef, text: &str, headers: &[&str]) -> ParsedChunk {
        let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        let mapping = def.map_headers(&headers);
        let layout = ChunkLayout {
            def,
            mapping: &mapping,
            delimiter: b',',
            first_row: 10,
            row_numbers: None,
            today: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
        };
        let mut p = parse_chunk(text.as_bytes(), layout).unwrap_or_else(|e| panic!("{e}"));
        p.finish(def, &setup()).unwrap_or_else(|e| panic!("{e}"));
        p
    }

    fn parse(text: &str, headers: &[&str]) -> ParsedChunk {
        parse_as(&CASES, text, headers)
    }

    #[test]
    fn money_booleans_and_derived_keys() {
        let p = parse_as(
            &BANK_TRANSACTIONS,
            "A1,1/2/2026,\"($1,234.50)\",Fee,,debit\nA1,2026-01-03,5,Interest,R9,debit\n",
            &[
                "account",
                "date",
                "amount",
                "description",
                "reference",
                "type",
            ],
        );
        assert_eq!(p.text("amount", 0).as_deref(), Some("-1234.50"));
        let reference = p.text("reference", 0).unwrap_or_default();
        assert!(
            reference.starts_with("auto-") && reference.len() == 25,
            "{reference}"
        );
        assert_eq!(p.text("reference", 1).as_deref(), Some("R9"));
        assert_eq!(
            p.valid,
            vec![true, false],
            "a debit needs a negative amount"
        );
        assert_eq!(p.problems[0].column, "type");

        let c = parse_as(
            &CONTRACT_INFORMATION,
            "K1,C1,2026-01-01,110.00,100,10,0\nK2,C1,2026-01-01,50,100,10,0\nK3,C1,2026-01-01,-5,,,\n",
            &[
                "contract_number",
                "case_number",
                "contract_date",
                "total",
                "subtotal",
                "tax",
                "discount",
            ],
        );
        assert_eq!(c.valid, vec![true, false, false]);
        assert!(c.problems[0].reason.contains("110.00"), "{:?}", c.problems);
        assert_eq!(c.problems[0].kind, FindingKind::Constraint);
    }

    #[test]
    fn one_next_of_kin_per_case_within_a_chunk() {
        let p = parse_as(
            &FAMILY_AND_FRIENDS,
            "C1,Ann,Lee,spouse,yes\nC1,Bo,Lee,son,y\nC2,Cy,Do,Daughter,1\nC1,Di,Lee,child,no\n",
            &["case #", "first", "last", "relationship", "next of kin"],
        );
        assert_eq!(p.valid, vec![true, false, true, true]);
        assert!(p.problems[0].reason.contains("row 10"), "{:?}", p.problems);
        assert_eq!(p.text("relationship", 2).as_deref(), Some("child"));
        assert_eq!(p.text("is_next_of_kin", 3).as_deref(), Some("false"));
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
        assert_eq!(
            p.problems.iter().map(|x| x.kind).collect::<Vec<_>>(),
            vec![]
        );
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
