//! `bench --costs`, transform rules: what a rule set costs per 1M rows.
//! Rules run while a chunk is parsed — in analysis and again in the load,
//! on one core each — so the benchmark parses every chunk of the file as a
//! worker does, once without rules and once with a typical vendor
//! profile's rule set, and prints the difference.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use passare_imports_domain::catalog::CASES;
use passare_imports_domain::chunk::{ChunkLayout, parse_chunk};
use passare_imports_domain::file::scan::{ScanOptions, scan};
use passare_imports_domain::transform::{Bound, Rule, compile};

/// A vendor profile's rules over the Cases columns of the generated file:
/// trims and cases names, maps status words, defaults the type, reads
/// dates with a pattern where they are in one, under conditions.
fn rule_set() -> anyhow::Result<Vec<Rule>> {
    Ok(serde_json::from_value(serde_json::json!([
        {"action": {"op": "trim", "column": "deceased_last_name"}},
        {"action": {"op": "case", "column": "deceased_last_name", "to": "title"}},
        {"action": {"op": "map_values", "column": "case_status",
                    "values": [["Active", "open"], ["Done", "closed"], ["Void", "cancelled"]],
                    "keep_unmapped": true}},
        {"when": {"column": "case_type", "test": "empty"},
         "action": {"op": "default", "column": "case_type", "value": "at_need"}},
        {"when": {"column": "date_of_death", "test": "matches", "values": ["^\\d{2}/\\d{2}/\\d{4}$"]},
         "action": {"op": "date", "column": "date_of_death", "pattern": "%m/%d/%Y"}},
        {"action": {"op": "extract", "column": "case_number", "pattern": "^(\\S+)", "into": "case_number"}}
    ]))?)
}

pub(super) struct RuleFigures {
    rules: usize,
    without: Duration,
    with: Duration,
}

/// Parses every chunk of `csv` without and with the rule set.
pub(super) fn run(csv: &Path, chunk_rows: u64) -> anyhow::Result<RuleFigures> {
    let bytes = std::fs::read(csv)?;
    let options = ScanOptions {
        explicit: &[],
        provided: &[],
        delimiter: Some(b','),
        chunk_rows,
    };
    let report = scan(&bytes[..], &CASES, &options)?;
    let mapping = CASES.map_headers(&report.headers);
    let rules = rule_set()?;
    let program = compile(&CASES, &[], &rules)
        .map_err(|e| anyhow::anyhow!("the benchmark's rule set: {e:?}"))?;
    let bound = Arc::new(program).bind(&report.headers);
    let parse_all = |rules: Option<&Bound>| -> anyhow::Result<Duration> {
        let began = Instant::now();
        for c in &report.chunks {
            let layout = ChunkLayout {
                def: &CASES,
                mapping: &mapping,
                delimiter: report.delimiter,
                first_row: c.first_row,
                row_numbers: None,
                today: Utc::now().date_naive(),
                rules,
                rule_samples: 0,
            };
            let chunk = bytes
                .get(c.start as usize..c.end as usize)
                .ok_or_else(|| anyhow::anyhow!("chunk {} is outside the file", c.seq))?;
            parse_chunk(chunk, layout)?;
        }
        Ok(began.elapsed())
    };
    let without = parse_all(None)?;
    let with = parse_all(Some(&bound))?;
    Ok(RuleFigures {
        rules: rules.len(),
        without,
        with,
    })
}

impl RuleFigures {
    fn per_million(&self, rows: u64) -> f64 {
        (self.with.as_secs_f64() - self.without.as_secs_f64()) * 1_000_000.0 / rows.max(1) as f64
    }

    pub(super) fn print(&self, rows: u64) {
        println!(
            "-- transform rules ({} rules, parsing every chunk as a worker does, one core)",
            self.rules
        );
        println!(
            "parse without rules {:.1?}, with {:.1?}: the rule set adds {:.2} s per 1M rows to the analysis and again to the load",
            self.without,
            self.with,
            self.per_million(rows)
        );
    }

    pub(super) fn json(&self, rows: u64) -> serde_json::Value {
        serde_json::json!({
            "rules": self.rules,
            "parse_without_s": self.without.as_secs_f64(),
            "parse_with_s": self.with.as_secs_f64(),
            "seconds_per_million_rows": self.per_million(rows),
        })
    }
}
