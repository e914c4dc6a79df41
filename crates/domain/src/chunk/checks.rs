//! The checks of a type's rows that look at more than one value: the order
//! of two dates, dates in the future, money bounds, totals that must add up,
//! signs that must agree with a kind, and — across the rows of a chunk —
//! repeated keys and a second flagged row of one group.

use std::borrow::Cow;
use std::collections::HashMap;

use arrow_array::{Array, Date32Array, Decimal128Array, RecordBatch};
use chrono::NaiveDate;

use super::{ParsedChunk, cell_str, cell_text, date_from_days, days_since_epoch, row_numbers};
use crate::catalog::{ImportTypeDef, RowCheck};
use crate::model::{FindingKind, RowProblem, excerpt};
use crate::values::format_cents;

/// Runs the type's row checks over a parsed batch, failing the rows that break one.
pub(super) fn check_rows(
    batch: &RecordBatch,
    def: &ImportTypeDef,
    today: NaiveDate,
    valid: &mut [bool],
    problems: &mut Vec<RowProblem>,
) {
    let Some(rows) = row_numbers(batch) else {
        return;
    };
    let mut checker = Checker {
        batch,
        today: days_since_epoch(today),
        failed: Vec::new(),
    };
    for check in def.row_checks {
        checker.check(*check);
    }
    for (i, column, value, reason) in checker.failed {
        valid[i] = false;
        problems.push(RowProblem {
            row: rows.value(i) as u64,
            column: column.into(),
            value,
            reason,
            kind: FindingKind::Constraint,
        });
    }
}

/// Row checks over one batch; collects (row index, column, value, reason).
/// Each check looks its columns up once and then goes through the rows; a
/// failing row's values are rendered as text only when it fails.
struct Checker<'a> {
    batch: &'a RecordBatch,
    /// Today as days since 1970-01-01.
    today: i32,
    failed: Vec<(usize, &'static str, String, String)>,
}

impl<'a> Checker<'a> {
    fn check(&mut self, check: RowCheck) {
        match check {
            RowCheck::NotBefore { later, earlier } => self.order(later, earlier, false),
            RowCheck::After { later, earlier } => self.order(later, earlier, true),
            RowCheck::NotInFuture(column) => self.not_in_future(column),
            RowCheck::MinMoney {
                column,
                cents,
                strict,
            } => self.min_money(column, cents, strict),
            RowCheck::SumEquals {
                total,
                plus,
                minus,
                tolerance_cents,
            } => self.sum_equals(total, plus, minus, tolerance_cents),
            RowCheck::SignAgrees {
                kind,
                amount,
                negative,
                positive,
            } => self.sign_agrees(kind, amount, (negative, positive)),
            // Checked across rows by `ParsedChunk::finish` and the loader.
            RowCheck::OneFlaggedPer { .. } => {}
        }
    }

    fn rows(&self) -> std::ops::Range<usize> {
        0..self.batch.num_rows()
    }

    fn text(&self, name: &str, i: usize) -> String {
        self.batch
            .column_by_name(name)
            .and_then(|a| cell_text(a, i))
            .unwrap_or_default()
    }

    fn money(&self, name: &str) -> Option<&'a Decimal128Array> {
        self.batch.column_by_name(name)?.as_any().downcast_ref()
    }

    fn fail(&mut self, i: usize, column: &'static str, value: String, reason: String) {
        self.failed.push((i, column, value, reason));
    }

    fn order(&mut self, later: &'static str, earlier: &'static str, strict: bool) {
        let (Some(l), Some(e)) = (
            Ordinals::of(self.batch, later),
            Ordinals::of(self.batch, earlier),
        ) else {
            return;
        };
        for i in self.rows() {
            let (Some(l), Some(e)) = (l.at(i), e.at(i)) else {
                continue;
            };
            if l < e || (strict && l == e) {
                let reason = format!(
                    "{later} is {} {earlier} ({})",
                    if l < e { "before" } else { "the same as" },
                    self.text(earlier, i)
                );
                let value = self.text(later, i);
                self.fail(i, later, value, reason);
            }
        }
    }

    fn not_in_future(&mut self, column: &'static str) {
        let Some(d) = self
            .batch
            .column_by_name(column)
            .and_then(|a| a.as_any().downcast_ref::<Date32Array>())
        else {
            return;
        };
        for i in self.rows() {
            if d.is_valid(i) && d.value(i) > self.today {
                let value = date_from_days(d.value(i)).to_string();
                self.fail(i, column, value, format!("{column} is in the future"));
            }
        }
    }

    fn min_money(&mut self, column: &'static str, cents: i64, strict: bool) {
        let Some(a) = self.money(column) else {
            return;
        };
        let min = i128::from(cents);
        for i in self.rows() {
            let Some(v) = cents_at(a, i) else {
                continue;
            };
            if v < min || (strict && v == min) {
                let reason = format!(
                    "{column} must be {} {}",
                    if strict { "more than" } else { "at least" },
                    format_cents(cents)
                );
                let value = self.text(column, i);
                self.fail(i, column, value, reason);
            }
        }
    }

    fn sum_equals(
        &mut self,
        total: &'static str,
        plus: &[&str],
        minus: &[&str],
        tolerance_cents: i64,
    ) {
        let arrays = |names: &[&str]| -> Option<Vec<&'a Decimal128Array>> {
            names.iter().map(|c| self.money(c)).collect()
        };
        let (Some(t), Some(p), Some(m)) = (self.money(total), arrays(plus), arrays(minus)) else {
            return;
        };
        for i in self.rows() {
            let (Some(t), Some(p), Some(m)) = (
                cents_at(t, i),
                p.iter().map(|a| cents_at(a, i)).sum::<Option<i128>>(),
                m.iter().map(|a| cents_at(a, i)).sum::<Option<i128>>(),
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
                let value = self.text(total, i);
                self.fail(i, total, value, reason);
            }
        }
    }

    fn sign_agrees(
        &mut self,
        kind: &'static str,
        amount: &str,
        (negative, positive): (&str, &str),
    ) {
        let (Some(kinds), Some(amounts)) = (self.batch.column_by_name(kind), self.money(amount))
        else {
            return;
        };
        for i in self.rows() {
            let Some(k) = cell_str(kinds, i).filter(|k| !k.is_empty()) else {
                continue;
            };
            let Some(a) = cents_at(amounts, i) else {
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
                let k = k.into_owned();
                self.fail(i, kind, k, reason);
            }
        }
    }
}

/// A money cell in cents; `None` when empty.
fn cents_at(a: &Decimal128Array, i: usize) -> Option<i128> {
    a.is_valid(i).then(|| a.value(i))
}

/// A date or date-time column's cells as numbers that order like the values.
#[derive(Clone, Copy)]
enum Ordinals<'a> {
    Dates(&'a Date32Array),
    Times(&'a arrow_array::TimestampMicrosecondArray),
}

impl<'a> Ordinals<'a> {
    fn of(batch: &'a RecordBatch, name: &str) -> Option<Self> {
        let any = batch.column_by_name(name)?.as_any();
        any.downcast_ref::<Date32Array>()
            .map(Ordinals::Dates)
            .or_else(|| any.downcast_ref().map(Ordinals::Times))
    }

    fn at(self, i: usize) -> Option<i64> {
        match self {
            Ordinals::Dates(a) => a.is_valid(i).then(|| i64::from(a.value(i))),
            Ordinals::Times(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

impl ParsedChunk {
    /// Two rows of one chunk with the same key cannot both be written: the later
    /// one fails, naming the earlier.
    pub(super) fn check_duplicate_keys(&mut self, def: &ImportTypeDef) {
        let keys = self.keys(def);
        // The valid rows by the hash of their key, so that rows of one key
        // sit together and only rows of one hash compare their parts: no
        // key is copied per row. A row that failed already claims no key.
        let mut hashed: Vec<(u64, usize)> = (0..self.batch.num_rows())
            .filter(|&i| self.valid[i])
            .filter_map(|i| keys.hash(i).map(|h| (h, i)))
            .collect();
        hashed.sort_unstable();
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        for group in hashed.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
            // Sorted by parts, then row: each row repeats the first of its
            // parts. Sorting, not a search among the group's earlier rows,
            // keeps a file whose keys were made to share a hash from costing
            // the square of its rows.
            let mut rows: Vec<(Vec<Cow<str>>, usize)> = group
                .iter()
                .filter_map(|&(_, i)| Some((keys.parts(i)?, i)))
                .collect();
            rows.sort_unstable();
            for same in rows.chunk_by(|a, b| a.0 == b.0) {
                let first = same[0].1;
                repeats.extend(same[1..].iter().map(|&(_, i)| (i, first)));
            }
        }
        repeats.sort_unstable();
        for (i, first) in repeats {
            let key = keys.joined(i).unwrap_or_default();
            let reason = format!(
                "duplicate key: the same key is already at row {}",
                self.row_number(first)
            );
            self.fail(
                i,
                FindingKind::DuplicateInFile,
                &def.key_columns.join("+"),
                excerpt(&key),
                reason,
            );
        }
    }

    /// At most one row of a group may carry a flag (one next of kin per case).
    pub(super) fn check_flags(&mut self, def: &ImportTypeDef) {
        for check in def.row_checks {
            let RowCheck::OneFlaggedPer { group, flag } = *check else {
                continue;
            };
            let mut first: HashMap<Cow<str>, u64> = HashMap::new();
            let (Some(flags), Some(groups)) =
                (self.column(flag).cloned(), self.column(group).cloned())
            else {
                continue;
            };
            for i in 0..self.batch.num_rows() {
                if !self.valid[i] || cell_str(&flags, i).as_deref() != Some("true") {
                    continue;
                }
                let Some(g) = cell_str(&groups, i) else {
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
