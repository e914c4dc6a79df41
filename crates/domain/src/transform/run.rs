//! Running a compiled rule set over one record's fields.

use std::sync::Arc;

use chrono::{Datelike, Months, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use super::LetterCase;
use super::Test;
use super::compile::{Check, Op, Program, key};
use crate::catalog::normalize_header;
use crate::model::{FindingKind, excerpt, mask};

/// A rule that failed a record: the field, its value (masked when
/// sensitive) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleIssue {
    pub column: String,
    pub value: String,
    pub reason: String,
    pub kind: FindingKind,
}

/// What one rule did over the records analysed: how many it changed and
/// the first few of them, before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEffect {
    /// The rule's position in its set, from 1.
    pub rule: usize,
    pub summary: String,
    pub rows_changed: u64,
    pub examples: Vec<RuleExample>,
}

/// One record a rule changed: the fields it read and wrote, before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleExample {
    pub row: u64,
    pub before: Vec<(String, String)>,
    pub after: Vec<(String, String)>,
}

/// A program bound to a file's header: where each source field is.
#[derive(Debug, Clone)]
pub struct Bound {
    pub program: Arc<Program>,
    /// Per source field, the position of its header in the file.
    pub sources: Vec<Option<usize>>,
}

impl Program {
    /// Binds the program to a file's headers.
    pub fn bind(self: &Arc<Self>, headers: &[String]) -> Bound {
        let sources = self
            .sources
            .iter()
            .map(|s| {
                let wanted = normalize_header(s);
                headers.iter().position(|h| normalize_header(h) == wanted)
            })
            .collect();
        Bound {
            program: Arc::clone(self),
            sources,
        }
    }

    /// Fields of a record: the type's columns, then the source headers.
    pub fn field_count(&self) -> usize {
        self.def.columns.len() + self.sources.len()
    }

    /// The source headers the rules read.
    pub fn source_headers(&self) -> &[String] {
        &self.sources
    }

    /// The columns some rule writes (a required column a rule fills needs
    /// no header of its own).
    pub fn written_columns(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for step in &self.steps {
            for w in step.op.fields().1 {
                let name = self.def.columns[w].name;
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        out
    }

    /// One empty effect per rule, to collect analysis samples into.
    pub fn effects(&self) -> Vec<RuleEffect> {
        self.steps
            .iter()
            .map(|s| RuleEffect {
                rule: s.number,
                summary: s.summary.clone(),
                rows_changed: 0,
                examples: Vec::new(),
            })
            .collect()
    }

    /// Runs every rule over one record's fields (see [`Program::field_count`]),
    /// in order. A rule that cannot do its work on this record adds an issue
    /// (the record then fails) and leaves its fields as they were. With
    /// `effects`, what each rule changed is counted and the first
    /// `samples` changes kept.
    pub fn run(
        &self,
        fields: &mut [Option<String>],
        today: NaiveDate,
        issues: &mut Vec<RuleIssue>,
        mut effects: Option<(&mut [RuleEffect], u64, usize)>,
    ) {
        for (si, step) in self.steps.iter().enumerate() {
            if let Some(check) = &step.when
                && !holds(check, fields[check.field].as_deref())
            {
                continue;
            }
            let before = effects.as_ref().map(|_| self.snapshot(&step.op, fields));
            if let Err((field, reason, kind)) = apply(&step.op, fields, today) {
                let value = fields[field].clone().unwrap_or_default();
                issues.push(RuleIssue {
                    column: self.name(field),
                    value: self.shown(field, &value),
                    reason: format!("{reason} (rule {}: {})", step.number, step.summary),
                    kind,
                });
                continue;
            }
            if let (Some((all, row, samples)), Some(before)) = (effects.as_mut(), before) {
                let after = self.snapshot(&step.op, fields);
                if before != after {
                    let effect = &mut all[si];
                    effect.rows_changed += 1;
                    if effect.examples.len() < *samples {
                        effect.examples.push(RuleExample {
                            row: *row,
                            before,
                            after,
                        });
                    }
                }
            }
        }
    }

    fn name(&self, field: usize) -> String {
        match self.def.columns.get(field) {
            Some(c) => c.name.to_string(),
            None => self.sources[field - self.def.columns.len()].clone(),
        }
    }

    fn shown(&self, field: usize, value: &str) -> String {
        if self.sensitive[field] {
            mask(value)
        } else {
            excerpt(value)
        }
    }

    /// The fields a step reads and writes, with their values as shown.
    fn snapshot(&self, op: &Op, fields: &[Option<String>]) -> Vec<(String, String)> {
        let (reads, writes) = op.fields();
        let mut out: Vec<(String, String)> = Vec::with_capacity(reads.len() + writes.len());
        for f in reads.into_iter().chain(writes) {
            let name = self.name(f);
            if !out.iter().any(|(n, _)| *n == name) {
                let value = fields[f].as_deref().unwrap_or_default();
                out.push((name, self.shown(f, value)));
            }
        }
        out
    }
}

fn holds(check: &Check, value: Option<&str>) -> bool {
    let value = value.map(str::trim).unwrap_or_default();
    let lowered = || key(value, false);
    match check.test {
        Test::Empty => value.is_empty(),
        Test::NotEmpty => !value.is_empty(),
        Test::Equals => check.values.first().is_some_and(|v| *v == lowered()),
        Test::NotEquals => check.values.first().is_none_or(|v| *v != lowered()),
        Test::OneOf => {
            let l = lowered();
            check.values.contains(&l)
        }
        Test::Matches => check.pattern.as_ref().is_some_and(|p| p.is_match(value)),
    }
}

type Failure = (usize, String, FindingKind);

/// Applies one step; on failure, the field at fault and why.
fn apply(op: &Op, fields: &mut [Option<String>], today: NaiveDate) -> Result<(), Failure> {
    match op {
        Op::Copy { from, to } => fields[*to] = fields[*from].clone(),
        Op::Map {
            from,
            to,
            table,
            default,
            keep_unmapped,
            match_case,
            known,
        } => {
            let Some(value) = fields[*from].clone() else {
                return Ok(());
            };
            fields[*to] = match table.get(&key(&value, *match_case)) {
                Some(mapped) => present(mapped.clone()),
                None if default.is_some() => default.clone().and_then(present),
                None if *keep_unmapped => Some(value),
                None => {
                    let reason = format!("is a value no rule maps (the rule maps {known})");
                    return Err((*from, reason, FindingKind::UnmappedValue));
                }
            };
        }
        Op::Default { field, value } => {
            if fields[*field]
                .as_deref()
                .is_none_or(|v| v.trim().is_empty())
            {
                fields[*field] = Some(value.clone());
            }
        }
        Op::Trim { field } => {
            if let Some(v) = &fields[*field] {
                fields[*field] = present(v.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
        Op::Case { field, to } => {
            if let Some(v) = &fields[*field] {
                fields[*field] = Some(change_case(v, *to));
            }
        }
        Op::Split {
            from,
            into,
            separator,
            from_end,
        } => {
            let pieces = split(fields[*from].as_deref(), separator, into.len(), *from_end);
            for (field, piece) in into.iter().zip(pieces) {
                fields[*field] = piece;
            }
        }
        Op::Join {
            from,
            separator,
            to,
        } => {
            let parts: Vec<&str> = from
                .iter()
                .filter_map(|f| fields[*f].as_deref().map(str::trim))
                .filter(|v| !v.is_empty())
                .collect();
            fields[*to] = present(parts.join(separator));
        }
        Op::Extract { from, pattern, to } => {
            let found = fields[*from].as_deref().and_then(|v| {
                let caps = pattern.captures(v)?;
                caps.get(1)
                    .or_else(|| caps.get(0))
                    .map(|m| m.as_str().to_string())
            });
            fields[*to] = found.and_then(present);
        }
        Op::Date {
            from,
            pattern,
            to,
            with_time,
            two_digit_year,
        } => {
            let Some(value) = fields[*from].as_deref().map(str::trim) else {
                return Ok(());
            };
            if value.is_empty() {
                fields[*to] = None;
                return Ok(());
            }
            let text =
                read_date(value, pattern, *with_time, *two_digit_year, today).ok_or_else(|| {
                    let reason = format!("does not match the date pattern {pattern:?}");
                    (*from, reason, FindingKind::TypeError)
                })?;
            fields[*to] = Some(text);
        }
    }
    Ok(())
}

fn present(value: String) -> Option<String> {
    (!value.trim().is_empty()).then_some(value)
}

fn change_case(value: &str, to: LetterCase) -> String {
    match to {
        LetterCase::Upper => value.to_uppercase(),
        LetterCase::Lower => value.to_lowercase(),
        LetterCase::Title => {
            let mut out = String::with_capacity(value.len());
            let mut start = true;
            for c in value.chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.extend(c.to_lowercase());
                }
                start = c.is_whitespace() || c == '-' || c == '\'';
            }
            out
        }
    }
}

/// Splits into at most `n` pieces; missing pieces are empty. With
/// `from_end`, the pieces fill the fields from the last one back.
fn split(value: Option<&str>, separator: &str, n: usize, from_end: bool) -> Vec<Option<String>> {
    let value = value.map(str::trim).unwrap_or_default();
    let mut pieces: Vec<String> = if value.is_empty() {
        Vec::new()
    } else if separator.trim().is_empty() {
        let words: Vec<&str> = value.split_whitespace().collect();
        if words.len() <= n {
            words.iter().map(|w| w.to_string()).collect()
        } else if from_end {
            let (head, tail) = words.split_at(words.len() - (n - 1));
            std::iter::once(head.join(" "))
                .chain(tail.iter().map(|w| w.to_string()))
                .collect()
        } else {
            let (head, tail) = words.split_at(n - 1);
            head.iter()
                .map(|w| w.to_string())
                .chain(std::iter::once(tail.join(" ")))
                .collect()
        }
    } else if from_end {
        let mut p: Vec<String> = value.rsplitn(n, separator).map(str::to_string).collect();
        p.reverse();
        p
    } else {
        value.splitn(n, separator).map(str::to_string).collect()
    };
    let missing = n.saturating_sub(pieces.len());
    let mut out: Vec<Option<String>> = Vec::with_capacity(n);
    if from_end {
        out.extend(std::iter::repeat_n(None, missing));
    }
    out.extend(pieces.drain(..).map(|p| present(p.trim().to_string())));
    out.resize(n, None);
    out
}

/// A date read with `pattern`, as `YYYY-MM-DD` (or `YYYY-MM-DDTHH:MM:SS`).
fn read_date(
    value: &str,
    pattern: &str,
    with_time: bool,
    two_digit_year: bool,
    today: NaiveDate,
) -> Option<String> {
    let back = |d: NaiveDate| {
        if two_digit_year && d.year() > today.year() {
            d.checked_sub_months(Months::new(1200))
        } else {
            Some(d)
        }
    };
    if with_time {
        let t = NaiveDateTime::parse_from_str(value, pattern).ok()?;
        let d = back(t.date())?;
        Some(d.and_time(t.time()).format("%Y-%m-%dT%H:%M:%S").to_string())
    } else {
        let d = back(NaiveDate::parse_from_str(value, pattern).ok()?)?;
        Some(d.format("%Y-%m-%d").to_string())
    }
}
