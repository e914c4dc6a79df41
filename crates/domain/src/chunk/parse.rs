//! Parsing a chunk's records: the CSV fields of each column become one typed
//! Arrow array (dates, date-times, exact money, booleans, normalised text),
//! every value that does not parse is a located problem, and the row checks
//! of the type run over the whole batch.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::builder::{Int64Builder, StringBuilder};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use csv::{ByteRecord, ReaderBuilder, StringRecord};
use sha2::{Digest, Sha256};

use super::checks::check_rows;
use super::{
    ChunkError, ChunkLayout, MAX_KEY_CHARS, MAX_VALUE_CHARS, MONEY_PRECISION, MONEY_SCALE,
    ParsedChunk, ROW_COLUMN, arrow_type, cell_text, days_since_epoch,
};
use crate::catalog::{ColumnDef, ImportTypeDef};
use crate::file::scan::is_blank;
use crate::model::{FindingKind, RowProblem, excerpt, mask};
use crate::transform::{Bound, RuleEffect};
use crate::values::{
    ValueKind, normalise_text, parse_bool, parse_date, parse_datetime, parse_money,
};

/// Parses the records of one chunk.
pub fn parse_chunk(bytes: &[u8], layout: ChunkLayout<'_>) -> Result<ParsedChunk, ChunkError> {
    let def = layout.def;
    let raw = read_records(bytes, &layout)?;
    let mut failures = Failures {
        rows: &raw.rows,
        valid: raw.unreadable.iter().map(|bad| !bad).collect(),
        problems: raw.problems,
    };
    let mut fields = vec![Field::new(ROW_COLUMN, DataType::Int64, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(raw.rows.clone())];
    for (col, values) in def.columns.iter().zip(&raw.values) {
        for (i, bad) in raw.unreadable.iter().enumerate() {
            if col.required && values.is_null(i) && !bad {
                let reason = format!("{} is required", col.name);
                failures.fail(i, col, "", reason, FindingKind::Constraint);
            }
        }
        fields.push(Field::new(col.name, arrow_type(col.kind), true));
        columns.push(typed_column(def, col, values, &mut failures)?);
    }
    let mut batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    if let Some(d) = def.derived_key {
        batch = derive_key(batch, d.column, d.from)?;
    }
    let Failures {
        mut valid,
        mut problems,
        ..
    } = failures;
    check_rows(&batch, def, layout.today, &mut valid, &mut problems);
    problems.sort_by_key(|p| p.row);
    Ok(ParsedChunk {
        batch,
        valid,
        problems,
        rule_effects: raw.effects,
    })
}

/// The fields of a chunk's records, per column of the type, before parsing.
struct RawRecords {
    rows: Int64Array,
    /// One array per column of the type: the trimmed text, null when empty.
    values: Vec<StringArray>,
    /// Per record: a field could not be stored at all (not UTF-8, NUL, too long).
    unreadable: Vec<bool>,
    problems: Vec<RowProblem>,
    effects: Vec<RuleEffect>,
}

/// Reads the CSV records of a chunk into text columns, skipping blank
/// records (they keep their row number but carry no row). With transform
/// rules, each record's fields go through them first.
fn read_records(bytes: &[u8], layout: &ChunkLayout<'_>) -> Result<RawRecords, ChunkError> {
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
    let mut out = Columns {
        values: def.columns.iter().map(|_| StringBuilder::new()).collect(),
        limits: def.columns.iter().map(|c| char_limit(def, c)).collect(),
        rows: Int64Builder::new(),
        problems: Vec::new(),
        unreadable: Vec::new(),
        effects: layout
            .rules
            .map(|r| r.program.effects())
            .unwrap_or_default(),
        rule_fields: Vec::new(),
    };
    let mut record = ByteRecord::new();
    let mut next_row = layout.first_row;
    let mut index = 0usize;
    while reader.read_byte_record(&mut record)? {
        let row = match layout.row_numbers {
            Some(numbers) => numbers.get(index).copied().unwrap_or(next_row),
            None => next_row,
        };
        next_row += 1;
        index += 1;
        if is_blank(&record) {
            continue;
        }
        out.rows.append_value(row as i64);
        let bad = match layout.rules {
            // The whole record checked at once (UTF-8 — by csv, an ASCII
            // record in one pass — and NUL), not field by field; a record
            // that fails is checked field by field to name its bad cells.
            None => match StringRecord::from_byte_record(std::mem::take(&mut record)) {
                Ok(text) => {
                    let nul_free = !text.as_byte_record().as_slice().contains(&0);
                    let bad = out.fields(def, row, |ci| Cell::Text {
                        text: sources[ci].and_then(|i| text.get(i)).unwrap_or_default(),
                        nul_free,
                    });
                    record = text.into_byte_record();
                    bad
                }
                Err(e) => {
                    record = e.into_byte_record();
                    out.fields(def, row, |ci| {
                        Cell::Bytes(sources[ci].and_then(|i| record.get(i)).unwrap_or_default())
                    })
                }
            },
            Some(rules) => out.transformed(layout, rules, &sources, &record, row),
        };
        out.unreadable.push(bad);
    }
    Ok(RawRecords {
        rows: out.rows.finish(),
        values: out.values.iter_mut().map(|b| b.finish()).collect(),
        unreadable: out.unreadable,
        problems: out.problems,
        effects: out.effects,
    })
}

/// The text columns being built from a chunk's records.
struct Columns {
    values: Vec<StringBuilder>,
    /// The most characters each column's value may have ([`char_limit`]).
    limits: Vec<usize>,
    rows: Int64Builder,
    problems: Vec<RowProblem>,
    unreadable: Vec<bool>,
    effects: Vec<RuleEffect>,
    /// The fields the transform rules run over, kept from one record to the
    /// next so their strings are reused rather than allocated per field.
    rule_fields: Vec<Option<String>>,
}

impl Columns {
    /// Appends one record's field per column (`field(column index)`);
    /// true when a field could not be stored.
    fn fields<'f>(
        &mut self,
        def: &ImportTypeDef,
        row: u64,
        field: impl Fn(usize) -> Cell<'f>,
    ) -> bool {
        let mut bad = false;
        for (ci, col) in def.columns.iter().enumerate() {
            let field = field(ci);
            match storable_text(field, self.limits[ci]) {
                Ok(None) => self.values[ci].append_null(),
                Ok(Some(text)) => self.values[ci].append_value(text),
                Err(reason) => {
                    bad = true;
                    self.values[ci].append_null();
                    self.problems.push(RowProblem {
                        row,
                        column: col.name.into(),
                        value: shown(col.sensitive, &String::from_utf8_lossy(field.bytes())),
                        reason,
                        kind: FindingKind::TypeError,
                    });
                }
            }
        }
        bad
    }

    /// Runs the transform rules over one record, then appends its columns.
    fn transformed(
        &mut self,
        layout: &ChunkLayout<'_>,
        rules: &Bound,
        sources: &[Option<usize>],
        record: &ByteRecord,
        row: u64,
    ) -> bool {
        let def = layout.def;
        let program = &rules.program;
        let columns = def.columns.len();
        let mut bad = false;
        let mut fields = std::mem::take(&mut self.rule_fields);
        let at = sources.iter().copied().chain(rules.sources.iter().copied());
        fields.resize(at.clone().count(), None);
        for (f, source) in at.enumerate() {
            let raw = source.and_then(|i| record.get(i)).unwrap_or_default();
            match std::str::from_utf8(raw).map(str::trim) {
                Ok("") => fields[f] = None,
                Ok(text) => match &mut fields[f] {
                    Some(kept) => {
                        kept.clear();
                        kept.push_str(text);
                    }
                    empty => *empty = Some(text.to_string()),
                },
                Err(_) => {
                    bad = true;
                    fields[f] = None;
                    let column = match def.columns.get(f) {
                        Some(c) => c.name.to_string(),
                        None => program.source_headers()[f - columns].clone(),
                    };
                    self.problems.push(RowProblem {
                        row,
                        column,
                        value: excerpt(&String::from_utf8_lossy(raw)),
                        reason: "is not valid UTF-8 (if the file is Windows-1252, upload it with that encoding)".into(),
                        kind: FindingKind::TypeError,
                    });
                }
            }
        }
        let mut issues = Vec::new();
        let samples = (layout.rule_samples > 0).then_some((
            self.effects.as_mut_slice(),
            row,
            layout.rule_samples,
        ));
        program.run(&mut fields, layout.today, &mut issues, samples);
        for issue in issues {
            bad = true;
            self.problems.push(RowProblem {
                row,
                column: issue.column,
                value: issue.value,
                reason: issue.reason,
                kind: issue.kind,
            });
        }
        bad |= self.fields(def, row, |ci| Cell::Text {
            text: fields[ci].as_deref().unwrap_or_default(),
            nul_free: false,
        });
        self.rule_fields = fields;
        bad
    }
}

/// The most characters a column's value may have: a key's, or any value's.
fn char_limit(def: &ImportTypeDef, col: &ColumnDef) -> usize {
    if def.key_columns.contains(&col.name) {
        MAX_KEY_CHARS
    } else {
        MAX_VALUE_CHARS
    }
}

/// A record's field as [`storable_text`] takes it.
#[derive(Debug, Clone, Copy)]
enum Cell<'f> {
    /// Bytes not yet known to be UTF-8.
    Bytes(&'f [u8]),
    /// Text, and whether it is known to hold no NUL.
    Text { text: &'f str, nul_free: bool },
}

impl<'f> Cell<'f> {
    fn bytes(self) -> &'f [u8] {
        match self {
            Cell::Bytes(bytes) => bytes,
            Cell::Text { text, .. } => text.as_bytes(),
        }
    }
}

/// A field as stored text: `None` when empty after trimming; an error when
/// it is not UTF-8, holds NUL or is longer than `limit` characters.
fn storable_text(field: Cell<'_>, limit: usize) -> Result<Option<&str>, String> {
    let (text, nul_free) = match field {
        Cell::Bytes(bytes) => (
            std::str::from_utf8(bytes).map_err(|_| {
                "is not valid UTF-8 (if the file is Windows-1252, upload it with that encoding)"
                    .to_string()
            })?,
            false,
        ),
        Cell::Text { text, nul_free } => (text, nul_free),
    };
    let text = trim(text);
    if text.is_empty() {
        return Ok(None);
    }
    if !nul_free && text.contains('\0') {
        Err("contains a NUL character, which cannot be stored".into())
    } else if text.len() > limit && text.chars().count() > limit {
        Err(format!("is longer than {limit} characters"))
    } else {
        Ok(Some(text))
    }
}

/// [`str::trim`], on ASCII first: a cell's ends are nearly always ASCII, and
/// Unicode's trim decodes and classifies each end's characters. What the
/// ASCII trim leaves is trimmed again by Unicode's rules only when an end is
/// not ASCII or is a vertical tab (white space to Unicode, not to ASCII).
fn trim(text: &str) -> &str {
    let text = text.trim_ascii();
    let plain = |b: Option<&u8>| b.is_none_or(|b| b.is_ascii() && *b != 0x0b);
    let bytes = text.as_bytes();
    if plain(bytes.first()) && plain(bytes.last()) {
        text
    } else {
        text.trim()
    }
}

/// Failed rows of a chunk being parsed, with their problems.
struct Failures<'a> {
    rows: &'a Int64Array,
    valid: Vec<bool>,
    problems: Vec<RowProblem>,
}

impl Failures<'_> {
    fn fail(&mut self, i: usize, col: &ColumnDef, value: &str, reason: String, kind: FindingKind) {
        self.valid[i] = false;
        self.problems.push(RowProblem {
            row: self.rows.value(i) as u64,
            column: col.name.into(),
            value: shown(col.sensitive, value),
            reason,
            kind,
        });
    }

    /// Parses every present cell of a column, handing each result to `emit`
    /// in row order; a value that does not parse is a type error of its row
    /// and a null.
    fn each_parsed<'v, T>(
        &mut self,
        col: &ColumnDef,
        values: &'v StringArray,
        parse: impl Fn(&'v str) -> Result<T, String>,
        mut emit: impl FnMut(Option<T>),
    ) {
        for (i, v) in values.iter().enumerate() {
            emit(match v.map(&parse) {
                None => None,
                Some(Ok(x)) => Some(x),
                Some(Err(reason)) => {
                    let value = v.unwrap_or_default();
                    self.fail(i, col, value, reason, FindingKind::TypeError);
                    None
                }
            });
        }
    }

    /// [`Failures::each_parsed`] collected, for a typed Arrow array.
    fn parse_cells<T>(
        &mut self,
        col: &ColumnDef,
        values: &StringArray,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Vec<Option<T>> {
        let mut out = Vec::with_capacity(values.len());
        self.each_parsed(col, values, parse, |x| out.push(x));
        out
    }

    /// [`Failures::each_parsed`] written straight into a string array (a
    /// normalised text borrows from its cell where it can).
    fn parse_texts<'v>(
        &mut self,
        col: &ColumnDef,
        values: &'v StringArray,
        parse: impl Fn(&'v str) -> Result<Cow<'v, str>, String>,
    ) -> StringArray {
        let mut out = StringBuilder::with_capacity(values.len(), values.value_data().len());
        self.each_parsed(col, values, parse, |x| out.append_option(x));
        out.finish()
    }
}

/// The Arrow array of one column: its text parsed as the column's kind.
fn typed_column(
    def: &ImportTypeDef,
    col: &ColumnDef,
    values: &StringArray,
    failures: &mut Failures<'_>,
) -> Result<ArrayRef, ArrowError> {
    let derived = def.derived_key.is_some_and(|d| d.column == col.name);
    Ok(match col.kind {
        ValueKind::Date => {
            let days = failures.parse_cells(col, values, |v| parse_date(v).map(days_since_epoch));
            Arc::new(Date32Array::from(days))
        }
        ValueKind::DateTime => {
            let micros = failures.parse_cells(col, values, parse_datetime);
            Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC"))
        }
        ValueKind::Money => {
            let cents = failures.parse_cells(col, values, money);
            Arc::new(
                Decimal128Array::from(cents)
                    .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)?,
            )
        }
        ValueKind::Bool => Arc::new(BooleanArray::from(
            failures.parse_cells(col, values, parse_bool),
        )),
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
        kind => Arc::new(failures.parse_texts(col, values, |v| normalise_text(kind, v))),
    })
}

/// An amount of money in cents, within what the money columns hold.
fn money(text: &str) -> Result<i128, String> {
    let cents = parse_money(text)?;
    if cents.unsigned_abs() < 10u64.pow(MONEY_PRECISION as u32) {
        Ok(i128::from(cents))
    } else {
        Err("is too large an amount (at most 999,999,999,999.99)".into())
    }
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

/// A value as problems show it: masked when the column is sensitive.
fn shown(sensitive: bool, value: &str) -> String {
    if sensitive {
        mask(value)
    } else {
        excerpt(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_trimmed_as_unicode_trims_them() {
        let cells = [
            "",
            " ",
            "a",
            " a b ",
            "\t\r\n a \x0c",
            "\x0b",
            "\x0ba\x0b",
            " \x0b a \x0b ",
            "\u{a0}a\u{3000}",
            " \u{2003} a \u{85}",
            "a\u{a0} ",
            "é",
            " é ",
            " \u{1f}a\u{1f} ",
        ];
        for cell in cells {
            assert_eq!(trim(cell), cell.trim(), "{cell:?}");
        }
    }
}
