//! Validating a rule set against its import type and compiling it into the
//! [`Program`] analysis and load run.

use std::collections::HashMap;
use std::fmt;

use chrono::format::{Item, StrftimeItems};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::{Action, Condition, LetterCase, MAX_MAP_ENTRIES, MAX_RULE_TEXT, MAX_RULES, Rule, Test};
use crate::catalog::{ImportTypeDef, normalize_header};
use crate::values::ValueKind;

/// Why a rule set cannot be saved: the rule (from 1; 0 for the set as a
/// whole), the field it concerns and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleError {
    pub rule: usize,
    pub field: String,
    pub reason: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rule == 0 {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "rule {}: {}", self.rule, self.reason)
        }
    }
}

/// A validated rule set, ready to run over records.
#[derive(Debug, Clone)]
pub struct Program {
    pub(super) def: &'static ImportTypeDef,
    /// The source headers the rules read, after the type's columns in a
    /// record's fields.
    pub(super) sources: Vec<String>,
    /// Per field: its values are masked in samples and problems.
    pub(super) sensitive: Vec<bool>,
    pub(super) steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub(super) struct Step {
    pub number: usize,
    pub summary: String,
    pub when: Option<Check>,
    pub op: Op,
}

#[derive(Debug, Clone)]
pub(super) struct Check {
    pub field: usize,
    pub test: Test,
    /// Compared values, as [`key`] compares them.
    pub values: Vec<String>,
    pub pattern: Option<Regex>,
}

#[derive(Debug, Clone)]
pub(super) enum Op {
    Copy {
        from: usize,
        to: usize,
    },
    Map {
        from: usize,
        to: usize,
        table: HashMap<String, String>,
        default: Option<String>,
        keep_unmapped: bool,
        match_case: bool,
        known: String,
    },
    Default {
        field: usize,
        value: String,
    },
    Trim {
        field: usize,
    },
    Case {
        field: usize,
        to: LetterCase,
    },
    Split {
        from: usize,
        into: Vec<usize>,
        separator: String,
        from_end: bool,
    },
    Join {
        from: Vec<usize>,
        separator: String,
        to: usize,
    },
    Extract {
        from: usize,
        pattern: Regex,
        to: usize,
    },
    Date {
        from: usize,
        pattern: String,
        to: usize,
        with_time: bool,
        two_digit_year: bool,
    },
}

impl Op {
    /// Fields the step reads and the fields it writes.
    pub(super) fn fields(&self) -> (Vec<usize>, Vec<usize>) {
        match self {
            Op::Copy { from, to }
            | Op::Map { from, to, .. }
            | Op::Extract { from, to, .. }
            | Op::Date { from, to, .. } => (vec![*from], vec![*to]),
            Op::Default { field, .. } | Op::Trim { field } | Op::Case { field, .. } => {
                (vec![*field], vec![*field])
            }
            Op::Split { from, into, .. } => (vec![*from], into.clone()),
            Op::Join { from, to, .. } => (from.clone(), vec![*to]),
        }
    }
}

/// Validates `rules` for `def`, whose fields are the type's columns and
/// `source_headers`; every problem found is returned, each with its rule.
pub fn compile(
    def: &'static ImportTypeDef,
    source_headers: &[String],
    rules: &[Rule],
) -> Result<Program, Vec<RuleError>> {
    let mut c = Compiler {
        def,
        sources: Vec::new(),
        errors: Vec::new(),
        rule: 0,
    };
    if rules.len() > MAX_RULES {
        c.fail("", format!("a rule set holds at most {MAX_RULES} rules"));
    }
    for h in source_headers {
        let name = h.trim();
        if name.is_empty() || name.chars().count() > MAX_RULE_TEXT {
            c.fail(
                h,
                format!("source headers are 1 to {MAX_RULE_TEXT} characters"),
            );
        } else if def.column_named(name).is_none() && !c.sources.iter().any(|s| same(s, name)) {
            c.sources.push(name.to_string());
        }
    }
    let mut steps = Vec::with_capacity(rules.len());
    for (i, rule) in rules.iter().enumerate().take(MAX_RULES) {
        c.rule = i + 1;
        let when = rule.when.as_ref().and_then(|w| c.check(w));
        if let Some(op) = c.op(&rule.action) {
            steps.push(Step {
                number: i + 1,
                summary: describe(&rule.action),
                when,
                op,
            });
        }
    }
    c.rule = 0;
    c.cycles(&steps);
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    let fields = def.columns.len() + c.sources.len();
    let mut sensitive: Vec<bool> = (0..fields)
        .map(|f| def.columns.get(f).is_some_and(|col| col.sensitive))
        .collect();
    // A source that feeds a sensitive column is masked like it.
    for step in &steps {
        let (reads, writes) = step.op.fields();
        if writes.iter().any(|w| sensitive[*w]) {
            for r in reads {
                sensitive[r] = true;
            }
        }
    }
    Ok(Program {
        def,
        sources: c.sources,
        sensitive,
        steps,
    })
}

fn same(a: &str, b: &str) -> bool {
    normalize_header(a) == normalize_header(b)
}

struct Compiler {
    def: &'static ImportTypeDef,
    sources: Vec<String>,
    errors: Vec<RuleError>,
    rule: usize,
}

impl Compiler {
    fn fail(&mut self, field: &str, reason: impl Into<String>) {
        self.errors.push(RuleError {
            rule: self.rule,
            field: field.to_string(),
            reason: reason.into(),
        });
    }

    /// A field a rule reads: a column of the type or a source header.
    fn input(&mut self, name: &str) -> Option<usize> {
        if let Some(i) = self.column_index(name) {
            return Some(i);
        }
        if let Some(j) = self.sources.iter().position(|s| same(s, name)) {
            return Some(self.def.columns.len() + j);
        }
        self.fail(
            name,
            format!(
                "reads {name:?}, which is neither a column of {} nor one of the source headers",
                self.def.display_name
            ),
        );
        None
    }

    /// A field a rule writes: always a column of the type.
    fn output(&mut self, name: &str) -> Option<usize> {
        let found = self.column_index(name);
        if found.is_none() {
            self.fail(
                name,
                format!(
                    "writes {name:?}, which is not a column of {}",
                    self.def.display_name
                ),
            );
        }
        found
    }

    fn column_index(&self, name: &str) -> Option<usize> {
        let col = self.def.column_named(name)?;
        self.def.columns.iter().position(|c| c.name == col.name)
    }

    /// `into`, or the read field itself when `into` is empty.
    fn output_or(&mut self, into: &str, from: &str) -> Option<usize> {
        self.output(if into.trim().is_empty() { from } else { into })
    }

    fn text(&mut self, what: &str, value: &str, may_be_empty: bool) -> bool {
        let n = value.chars().count();
        let ok = n <= MAX_RULE_TEXT && (may_be_empty || !value.trim().is_empty());
        if !ok {
            let least = if may_be_empty { 0 } else { 1 };
            self.fail(
                what,
                format!("{what} must be {least} to {MAX_RULE_TEXT} characters"),
            );
        }
        ok
    }

    fn pattern(&mut self, field: &str, pattern: &str) -> Option<Regex> {
        if !self.text("pattern", pattern, false) {
            return None;
        }
        match RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .dfa_size_limit(1 << 20)
            .build()
        {
            Ok(re) => Some(re),
            Err(e) => {
                let reason =
                    format!("the pattern {pattern:?} is not a valid regular expression: {e}");
                self.fail(field, reason.lines().next().unwrap_or_default().to_string());
                None
            }
        }
    }

    fn check(&mut self, w: &Condition) -> Option<Check> {
        let field = self.input(&w.column)?;
        let values: Vec<String> = w.values.iter().map(|v| key(v, false)).collect();
        if w.values
            .iter()
            .any(|v| !self.text("a compared value", v, true))
        {
            return None;
        }
        let wanted = match w.test {
            Test::Equals | Test::NotEquals | Test::Matches => 1..=1,
            Test::OneOf => 1..=MAX_MAP_ENTRIES,
            Test::Empty | Test::NotEmpty => 0..=0,
        };
        if !wanted.contains(&values.len()) {
            self.fail(
                &w.column,
                format!(
                    "the condition {:?} takes {} to {} values, not {}",
                    w.test,
                    wanted.start(),
                    wanted.end(),
                    values.len()
                ),
            );
            return None;
        }
        let pattern = match w.test {
            Test::Matches => Some(self.pattern(&w.column, &w.values[0])?),
            _ => None,
        };
        Some(Check {
            field,
            test: w.test,
            values,
            pattern,
        })
    }

    fn op(&mut self, action: &Action) -> Option<Op> {
        match action {
            Action::Copy { from, to } => Some(Op::Copy {
                from: self.input(from)?,
                to: self.output(to)?,
            }),
            Action::MapValues {
                column,
                into,
                values,
                default,
                keep_unmapped,
                match_case,
            } => self.map(column, into, values, default, *keep_unmapped, *match_case),
            Action::Default { column, value } => {
                self.text("the default value", value, false);
                Some(Op::Default {
                    field: self.output(column)?,
                    value: value.trim().to_string(),
                })
            }
            Action::Trim { column } => Some(Op::Trim {
                field: self.output(column)?,
            }),
            Action::Case { column, to } => Some(Op::Case {
                field: self.output(column)?,
                to: *to,
            }),
            Action::Split {
                column,
                separator,
                into,
                from_end,
            } => {
                let from = self.input(column);
                if !(2..=20).contains(&into.len()) {
                    self.fail(column, "a split writes 2 to 20 columns");
                }
                let separator_ok =
                    !separator.is_empty() && self.text("the separator", separator, true);
                if separator.is_empty() {
                    self.fail(column, "a split needs a separator");
                }
                let into: Option<Vec<usize>> = into.iter().map(|c| self.output(c)).collect();
                (separator_ok && into.as_ref().is_some_and(|i| (2..=20).contains(&i.len())))
                    .then_some(())?;
                Some(Op::Split {
                    from: from?,
                    into: into?,
                    separator: separator.clone(),
                    from_end: *from_end,
                })
            }
            Action::Join {
                columns,
                separator,
                into,
            } => {
                if !(2..=20).contains(&columns.len()) {
                    self.fail(into, "a join reads 2 to 20 fields");
                }
                self.text("the separator", separator, true);
                let from: Option<Vec<usize>> = columns.iter().map(|c| self.input(c)).collect();
                Some(Op::Join {
                    from: from.filter(|f| (2..=20).contains(&f.len()))?,
                    separator: separator.clone(),
                    to: self.output(into)?,
                })
            }
            Action::Extract {
                column,
                pattern,
                into,
            } => Some(Op::Extract {
                from: self.input(column)?,
                pattern: self.pattern(column, pattern)?,
                to: self.output(into)?,
            }),
            Action::Date {
                column,
                pattern,
                into,
            } => self.date(column, pattern, into),
        }
    }

    fn map(
        &mut self,
        column: &str,
        into: &str,
        values: &[(String, String)],
        default: &Option<String>,
        keep_unmapped: bool,
        match_case: bool,
    ) -> Option<Op> {
        let from = self.input(column);
        let to = self.output_or(into, column);
        if values.len() > MAX_MAP_ENTRIES {
            self.fail(
                column,
                format!("a value map holds at most {MAX_MAP_ENTRIES} entries"),
            );
            return None;
        }
        if values.is_empty() && default.is_none() {
            self.fail(column, "the value map maps nothing and has no default");
        }
        if default.is_some() && keep_unmapped {
            self.fail(
                column,
                "a value map has a default or keeps unmapped values, not both",
            );
        }
        let mut table = HashMap::with_capacity(values.len());
        for (from_value, to_value) in values {
            if !self.text("a mapped value", from_value, true)
                || !self.text("a mapped value", to_value, true)
            {
                return None;
            }
            let k = key(from_value, match_case);
            if table.insert(k, to_value.trim().to_string()).is_some() {
                self.fail(column, format!("the value map names {from_value:?} twice"));
            }
        }
        if let Some(d) = default {
            self.text("the default value", d, true);
        }
        let mut known: Vec<&str> = values.iter().map(|(f, _)| f.as_str()).take(10).collect();
        if values.len() > 10 {
            known.push("…");
        }
        Some(Op::Map {
            from: from?,
            to: to?,
            table,
            default: default.as_ref().map(|d| d.trim().to_string()),
            keep_unmapped,
            match_case,
            known: known.join(", "),
        })
    }

    fn date(&mut self, column: &str, pattern: &str, into: &str) -> Option<Op> {
        let from = self.input(column);
        let to = self.output_or(into, column)?;
        if !self.text("the date pattern", pattern, false) {
            return None;
        }
        let kind = self.def.columns[to].kind;
        if !matches!(kind, ValueKind::Date | ValueKind::DateTime) {
            self.fail(
                into,
                format!("{} is not a date column", self.def.columns[to].name),
            );
            return None;
        }
        if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
            self.fail(
                column,
                format!("{pattern:?} is not a date pattern (see docs/transform-rules.md)"),
            );
            return None;
        }
        let has = |specs: &[&str]| specs.iter().any(|s| pattern.contains(s));
        if !(has(&["%Y", "%y"]) && has(&["%m", "%b", "%B", "%h"]) && has(&["%d", "%e"])) {
            self.fail(
                column,
                format!("the date pattern {pattern:?} needs a year (%Y or %y), a month (%m or %b) and a day (%d)"),
            );
            return None;
        }
        Some(Op::Date {
            from: from?,
            pattern: pattern.to_string(),
            to,
            with_time: has(&["%H", "%I", "%M"]),
            two_digit_year: pattern.contains("%y"),
        })
    }

    /// Refuses fields derived, directly or through other rules, from themselves.
    fn cycles(&mut self, steps: &[Step]) {
        let fields = self.def.columns.len() + self.sources.len();
        let mut edges: Vec<Vec<usize>> = vec![Vec::new(); fields];
        for step in steps {
            let (reads, writes) = step.op.fields();
            for r in &reads {
                for w in &writes {
                    if r != w && !edges[*r].contains(w) {
                        edges[*r].push(*w);
                    }
                }
            }
        }
        // Depth-first search with colours: 0 unseen, 1 on the path, 2 done.
        let mut colour = vec![0u8; fields];
        let mut path = Vec::new();
        for start in 0..fields {
            if colour[start] == 0
                && let Some(cycle) = visit(start, &edges, &mut colour, &mut path)
            {
                let names: Vec<String> = cycle.iter().map(|f| self.name(*f)).collect();
                self.fail(
                    &names[0],
                    format!(
                        "the rules derive {} from itself ({}); remove one of these steps",
                        names[0],
                        names.join(" → ")
                    ),
                );
                return;
            }
        }
    }

    fn name(&self, field: usize) -> String {
        match self.def.columns.get(field) {
            Some(c) => c.name.to_string(),
            None => self.sources[field - self.def.columns.len()].clone(),
        }
    }
}

fn visit(
    at: usize,
    edges: &[Vec<usize>],
    colour: &mut [u8],
    path: &mut Vec<usize>,
) -> Option<Vec<usize>> {
    colour[at] = 1;
    path.push(at);
    for &next in &edges[at] {
        if colour[next] == 1 {
            let from = path.iter().position(|p| *p == next).unwrap_or(0);
            let mut cycle = path[from..].to_vec();
            cycle.push(next);
            return Some(cycle);
        }
        if colour[next] == 0
            && let Some(c) = visit(next, edges, colour, path)
        {
            return Some(c);
        }
    }
    path.pop();
    colour[at] = 2;
    None
}

/// How a value map looks a value up.
pub(super) fn key(value: &str, match_case: bool) -> String {
    if match_case {
        value.to_string()
    } else {
        value
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    }
}

/// One line saying what a rule does, for analysis samples.
fn describe(action: &Action) -> String {
    match action {
        Action::Copy { from, to } => format!("copy {from} into {to}"),
        Action::MapValues {
            column,
            into,
            values,
            default,
            ..
        } => {
            let target = if into.is_empty() { column } else { into };
            let otherwise = default
                .as_ref()
                .map(|d| format!(", otherwise {d:?}"))
                .unwrap_or_default();
            format!(
                "map {} values of {column} into {target}{otherwise}",
                values.len()
            )
        }
        Action::Default { column, value } => format!("default {column} to {value:?}"),
        Action::Trim { column } => format!("trim {column}"),
        Action::Case { column, to } => format!("{to:?} case {column}").to_lowercase(),
        Action::Split {
            column,
            separator,
            into,
            ..
        } => format!("split {column} at {separator:?} into {}", into.join(", ")),
        Action::Join { columns, into, .. } => format!("join {} into {into}", columns.join(", ")),
        Action::Extract {
            column,
            pattern,
            into,
        } => format!("extract {pattern:?} from {column} into {into}"),
        Action::Date {
            column,
            pattern,
            into,
        } => {
            let target = if into.is_empty() { column } else { into };
            format!("read {column} as a date {pattern:?} into {target}")
        }
    }
}
