//! One chunk's rows: the raw bytes of its records become an Arrow record batch
//! of typed, normalised columns (one per column of the import type, plus the
//! row number), with every failing row located and explained ([`parse_chunk`]).
//! References are resolved in a second step ([`ParsedChunk::finish`]) against
//! the records the chunk names, which the caller looks up in one query per
//! reference.

mod checks;
mod parse;
mod references;
#[cfg(test)]
mod rules_tests;

use std::borrow::Cow;
use std::fmt::Write;

use arrow_array::builder::StringBuilder;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{ArrowError, DataType, TimeUnit};
use chrono::NaiveDate;

use crate::catalog::ImportTypeDef;
use crate::model::{FindingKind, RowProblem};
use crate::transform::{Bound, RuleEffect};
use crate::values::{ValueKind, format_cents};

pub use parse::parse_chunk;
pub use references::{RefHit, ReferenceIndex, ReferenceLookup, lookup_form};

/// Name of the row-number column of a parsed batch.
pub const ROW_COLUMN: &str = "row_number";

/// Money columns: exact decimals with two places.
pub const MONEY_PRECISION: u8 = 14;
pub const MONEY_SCALE: i8 = 2;

/// Longest value of a key column, and of any other column, that is stored.
pub const MAX_KEY_CHARS: usize = 256;
pub const MAX_VALUE_CHARS: usize = 10_000;

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
    /// What each transform rule changed, with samples (only when the layout
    /// asked for `rule_samples`).
    pub rule_effects: Vec<RuleEffect>,
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

    /// The text of a cell (see [`cell_text`]); `None` when missing. Looks
    /// the column up by name: a loop over rows looks it up once with
    /// [`ParsedChunk::column`].
    pub fn text(&self, column: &str, i: usize) -> Option<String> {
        self.column(column).and_then(|a| cell_text(a, i))
    }

    /// The texts of one column at the given batch rows (`None` where
    /// missing, and everywhere when the batch has no such column).
    pub fn texts(
        &self,
        column: &str,
        rows: impl IntoIterator<Item = usize>,
    ) -> Vec<Option<String>> {
        let array = self.column(column);
        rows.into_iter()
            .map(|i| array.and_then(|a| cell_text(a, i)))
            .collect()
    }

    /// A column of the batch by name (an `Arc`, cheap to clone).
    pub fn column(&self, name: &str) -> Option<&ArrayRef> {
        self.batch.column_by_name(name)
    }

    /// The row's key as text, one part per key column; `None` when a part is
    /// missing. A loop over rows uses [`ParsedChunk::keys`].
    pub fn key(&self, def: &ImportTypeDef, i: usize) -> Option<Vec<String>> {
        self.keys(def).get(i)
    }

    /// The key columns of `def`, looked up once for a loop over rows.
    pub fn keys(&self, def: &ImportTypeDef) -> Keys {
        Keys(
            def.key_columns
                .iter()
                .map(|k| self.column(k).cloned())
                .collect(),
        )
    }
}

/// The key columns of a chunk, looked up by name once ([`ParsedChunk::keys`]).
pub struct Keys(Vec<Option<ArrayRef>>);

impl Keys {
    /// Row `i`'s key as text, one part per key column; `None` when a part is
    /// missing.
    pub fn get(&self, i: usize) -> Option<Vec<String>> {
        let parts = self.parts(i)?;
        Some(parts.into_iter().map(Cow::into_owned).collect())
    }

    /// [`Keys::get`] borrowed from the chunk's string columns.
    pub fn parts(&self, i: usize) -> Option<Vec<Cow<'_, str>>> {
        self.0
            .iter()
            .map(|a| a.as_ref().and_then(|a| cell_str(a, i)))
            .collect()
    }

    /// A hash of row `i`'s key, its parts kept apart (`a`+`bc` and `ab`+`c`
    /// differ); `None` when a part is missing. Equal keys hash alike; equal
    /// hashes are compared by [`Keys::parts`].
    pub fn hash(&self, i: usize) -> Option<u64> {
        // Each part is hashed on its own, seeded with the hash of the parts
        // before it.
        self.0.iter().try_fold(0, |seed, a| {
            let part = cell_str(a.as_ref()?, i)?;
            Some(twox_hash::XxHash3_64::oneshot_with_seed(
                seed,
                part.as_bytes(),
            ))
        })
    }

    /// Row `i`'s key as one text, its parts joined with `+` (as findings,
    /// results and the analysis's scratch tables name a record); a one-part
    /// key borrowed as it is.
    pub fn joined(&self, i: usize) -> Option<Cow<'_, str>> {
        let mut parts = self.parts(i)?;
        Some(match parts.len() {
            1 => parts.pop().unwrap_or_default(),
            _ => Cow::Owned(parts.join("+")),
        })
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
    /// The transform rules of the file's profile, bound to its header; the
    /// records' fields go through them before parsing.
    pub rules: Option<&'a Bound>,
    /// Changed records each rule keeps as before/after samples (analysis).
    pub rule_samples: usize,
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

/// A cell as text: strings as they are, dates `YYYY-MM-DD`, date-times RFC
/// 3339 in UTC, money with two decimals, booleans `true`/`false`, integers in
/// decimal; `None` when null.
pub fn cell_text(array: &ArrayRef, i: usize) -> Option<String> {
    cell_str(array, i).map(Cow::into_owned)
}

/// [`cell_text`] borrowed from a string column, for loops over rows that
/// only read the text.
pub fn cell_str(array: &ArrayRef, i: usize) -> Option<Cow<'_, str>> {
    if i >= array.len() || array.is_null(i) {
        return None;
    }
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        Some(Cow::Borrowed(a.value(i)))
    } else if let Some(a) = any.downcast_ref::<Date32Array>() {
        Some(Cow::Owned(date_from_days(a.value(i)).to_string()))
    } else if let Some(a) = any.downcast_ref::<TimestampMicrosecondArray>() {
        chrono::DateTime::from_timestamp_micros(a.value(i))
            .map(|t| Cow::Owned(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
    } else if let Some(a) = any.downcast_ref::<Decimal128Array>() {
        i64::try_from(a.value(i))
            .ok()
            .map(|c| Cow::Owned(format_cents(c)))
    } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
        Some(Cow::Owned(a.value(i).to_string()))
    } else {
        any.downcast_ref::<Int64Array>()
            .map(|a| Cow::Owned(a.value(i).to_string()))
    }
}

/// [`cell_text`] of every cell of a column, as one string array: a string
/// column as it is (shared, not copied); any other written out once, dates
/// straight into the array rather than into a string per cell.
pub fn column_texts(array: &ArrayRef) -> StringArray {
    let any = array.as_any();
    if let Some(strings) = any.downcast_ref::<StringArray>() {
        return strings.clone();
    }
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 12);
    match any.downcast_ref::<Date32Array>() {
        Some(dates) => {
            for days in dates.iter() {
                match days {
                    // Writing to a string builder cannot fail.
                    Some(days) => {
                        let date = date_from_days(days);
                        let mut digits = [0; 10];
                        match iso_date(date, &mut digits) {
                            Some(text) => out.append_value(text),
                            None => {
                                let _ = write!(out, "{date}");
                                out.append_value("");
                            }
                        }
                    }
                    None => out.append_null(),
                }
            }
        }
        None => {
            for i in 0..array.len() {
                out.append_option(cell_str(array, i));
            }
        }
    }
    out.finish()
}

/// `date` as `YYYY-MM-DD`, written into `digits` as chrono writes a date of
/// the years 0 to 9999 (its formatter goes character by character, a
/// noticeable part of rendering a chunk's dates); `None` for other years,
/// which chrono writes with a sign.
fn iso_date(date: NaiveDate, digits: &mut [u8; 10]) -> Option<&str> {
    use chrono::Datelike;
    let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
    let put = |value: u32, out: &mut [u8]| {
        let mut value = value;
        for digit in out.iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(year, &mut digits[0..4]);
    digits[4] = b'-';
    put(date.month(), &mut digits[5..7]);
    digits[7] = b'-';
    put(date.day(), &mut digits[8..10]);
    std::str::from_utf8(digits).ok()
}

/// Days since 1970-01-01, as Date32 holds a date.
pub fn days_since_epoch(d: NaiveDate) -> i32 {
    d.signed_duration_since(NaiveDate::default()).num_days() as i32
}

/// The date a Date32 value stands for.
pub fn date_from_days(days: i32) -> NaiveDate {
    NaiveDate::default()
        .checked_add_signed(chrono::TimeDelta::days(i64::from(days)))
        .unwrap_or_default()
}

pub(crate) fn row_numbers(batch: &RecordBatch) -> Option<&Int64Array> {
    // The first column of every parsed batch; looked up by name otherwise.
    let first = batch.schema_ref().fields().first();
    let column = match first {
        Some(f) if f.name() == ROW_COLUMN => batch.column(0),
        _ => batch.column_by_name(ROW_COLUMN)?,
    };
    column.as_any().downcast_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{BANK_TRANSACTIONS, CASES, CONTRACT_INFORMATION, FAMILY_AND_FRIENDS};

    #[test]
    fn dates_are_written_as_chrono_writes_them() {
        use std::sync::Arc;

        let days = (-800_000..3_000_000).step_by(97).chain([
            -719_528,
            -719_529,
            2_932_896,
            2_932_897,
            i32::MIN,
            i32::MAX,
        ]);
        let dates: Date32Array = days.map(Some).chain([None]).collect();
        let texts = column_texts(&(Arc::new(dates.clone()) as ArrayRef));
        for (i, days) in dates.iter().enumerate() {
            match days {
                Some(days) => assert_eq!(texts.value(i), date_from_days(days).to_string()),
                None => assert!(texts.is_null(i)),
            }
        }
    }

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
        parse_bytes(def, text.as_bytes(), headers)
    }

    fn parse_bytes(def: &'static ImportTypeDef, bytes: &[u8], headers: &[&str]) -> ParsedChunk {
        let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        let mapping = def.map_headers(&headers);
        let layout = ChunkLayout {
            def,
            mapping: &mapping,
            delimiter: b',',
            first_row: 10,
            row_numbers: None,
            today: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
            rules: None,
            rule_samples: 0,
        };
        let mut p = parse_chunk(bytes, layout).unwrap();
        p.finish(def, &setup()).unwrap();
        p
    }

    fn parse(text: &str, headers: &[&str]) -> ParsedChunk {
        parse_as(&CASES, text, headers)
    }

    /// The headers of the bank-transaction rows these tests parse.
    const BANK_HEADERS: &[&str] = &[
        "account",
        "date",
        "amount",
        "description",
        "reference",
        "type",
    ];

    #[test]
    fn a_columns_texts_are_its_cells_as_text() {
        let p = parse_as(
            &BANK_TRANSACTIONS,
            "A1,1/2/2026,\"($1,234.50)\",Fee,,debit\nA1,,5,,R9,\nA1,0001-02-03,0,Interest,R8,credit\n",
            BANK_HEADERS,
        );
        let mut kinds = std::collections::BTreeSet::new();
        for column in p.batch.columns() {
            kinds.insert(column.data_type().to_string());
            let texts = column_texts(column);
            assert_eq!(texts.len(), column.len());
            for i in 0..column.len() {
                let text = texts.is_valid(i).then(|| texts.value(i).to_string());
                assert_eq!(
                    text,
                    cell_text(column, i),
                    "{:?} row {i}",
                    column.data_type()
                );
            }
        }
        // Text, dates, money and the row numbers, empty cells among them.
        assert!(kinds.len() >= 4, "{kinds:?}");
    }

    #[test]
    fn row_checks_fail_each_breaking_row_with_its_value_and_reason() {
        let p = parse(
            "C1,Ann,Lee,1950-01-01,2020-01-01\n\
             C2,Bob,Ray,2020-01-01,1950-01-01\n\
             C3,Cy,Do,,2999-01-01\n\
             C4,Di,Fu,2020-01-01,2020-01-01\n",
            &[
                "case",
                "first name",
                "last name",
                "date_of_birth",
                "date_of_death",
            ],
        );
        assert_eq!(p.valid, vec![true, false, false, true]);
        let problems: Vec<(u64, &str, &str, &str)> = p
            .problems
            .iter()
            .map(|e| {
                (
                    e.row,
                    e.column.as_str(),
                    e.value.as_str(),
                    e.reason.as_str(),
                )
            })
            .collect();
        assert_eq!(
            problems,
            vec![
                (
                    11,
                    "date_of_death",
                    "1950-01-01",
                    "date_of_death is before date_of_birth (2020-01-01)"
                ),
                (
                    12,
                    "date_of_death",
                    "2999-01-01",
                    "date_of_death is in the future"
                ),
            ]
        );
    }

    #[test]
    fn keys_by_part_and_joined() {
        let p = parse_as(
            &BANK_TRANSACTIONS,
            "A1,2026-01-03,-5,Fee,R9,debit\n",
            BANK_HEADERS,
        );
        let keys = p.keys(&BANK_TRANSACTIONS);
        assert_eq!(keys.get(0), Some(vec!["A1".to_string(), "R9".to_string()]));
        assert_eq!(keys.joined(0).as_deref(), Some("A1+R9"));
        assert_eq!(keys.get(1), None, "no such row");
        let one = parse("C1,Ann,Lee\n", &["case", "first name", "last name"]);
        let keys = one.keys(&CASES);
        assert!(matches!(keys.joined(0), Some(Cow::Borrowed("C1"))));
        assert_eq!(one.key(&CASES, 0), Some(vec!["C1".to_string()]));
    }

    #[test]
    fn money_booleans_and_derived_keys() {
        let p = parse_as(
            &BANK_TRANSACTIONS,
            "A1,1/2/2026,\"($1,234.50)\",Fee,,debit\nA1,2026-01-03,5,Interest,R9,debit\n",
            BANK_HEADERS,
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
        let dob = p
            .batch
            .column_by_name("date_of_birth")
            .and_then(|a| a.as_any().downcast_ref::<Date32Array>())
            .map(|a| date_from_days(a.value(0)));
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
    fn keys_repeat_only_when_every_part_is_equal() {
        let p = parse_as(
            &FAMILY_AND_FRIENDS,
            "C1,Ann,Lee,spouse,no\nC1,An,nLee,son,no\nC1,Ann,Lee,son,no\n\
             C2,Ann,Lee,son,no\nC1,An,nLee,son,no\nC1,Ann,Lee,son,no\n",
            &["case #", "first", "last", "relationship", "next of kin"],
        );
        // C1+Ann+Lee at rows 10, 12 and 15; C1+An+nLee (the same letters,
        // parted elsewhere) at 11 and 14; C2+Ann+Lee once.
        assert_eq!(
            p.valid,
            vec![true, true, false, true, false, false],
            "{:?}",
            p.problems
        );
        let repeats: Vec<(u64, &str, &str)> = p
            .problems
            .iter()
            .map(|x| (x.row, x.value.as_str(), x.reason.as_str()))
            .collect();
        let reason = |first| format!("duplicate key: the same key is already at row {first}");
        assert_eq!(
            repeats,
            vec![
                (12, "C1+Ann+Lee", reason(10).as_str()),
                (14, "C1+An+nLee", reason(11).as_str()),
                (15, "C1+Ann+Lee", reason(10).as_str()),
            ]
        );
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
    fn cells_that_are_not_utf8_fail_each_by_name_even_when_their_record_would_be() {
        let headers = &["case_number", "deceased_first_name", "deceased_last_name"];
        // "é" (C3 A9) split by a delimiter: the record's bytes, read as one
        // string, would be UTF-8; neither cell is. Then a lone byte, a
        // record of valid non-ASCII text, and NUL in a non-ASCII record.
        let p = parse_bytes(
            &CASES,
            b"C1,Ann\xc3,\xa9Lee\nC2,\xff,Li\nC3,Ren\xc3\xa9e,Do\nC4,Zo\xc3\xab\0,Li\n",
            headers,
        );
        assert_eq!(p.valid, vec![false, false, true, false]);
        let problems: Vec<(u64, &str, bool)> = p
            .problems
            .iter()
            .map(|x| (x.row, x.column.as_str(), x.reason.contains("UTF-8")))
            .collect();
        assert_eq!(
            problems,
            vec![
                (10, "deceased_first_name", true),
                (10, "deceased_last_name", true),
                (11, "deceased_first_name", true),
                (13, "deceased_first_name", false),
            ]
        );
        assert!(p.problems[3].reason.contains("NUL"), "{:?}", p.problems);
        let first = p.batch.column_by_name("deceased_first_name").unwrap();
        assert_eq!(cell_text(first, 2).as_deref(), Some("Renée"));
    }

    #[test]
    fn dates_round_trip_through_days() {
        for d in ["1900-02-28", "1969-12-31", "1970-01-01", "2024-02-29"] {
            let day = NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap_or_default();
            assert_eq!(date_from_days(days_since_epoch(day)), day);
        }
    }
}
