//! Transform rules run through the chunk parser, as analysis and load run them.

use std::sync::Arc;

use chrono::NaiveDate;

use super::{ChunkLayout, parse_chunk};
use crate::catalog::{CASES, ROLODEX};
use crate::model::FindingKind;
use crate::transform::*;

fn rules(json: serde_json::Value) -> Vec<Rule> {
    serde_json::from_value(json).expect("rules")
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 29).unwrap_or_default()
}

/// Parses `csv` (header first) as `def` through `rules` read from `json`.
fn parse(
    def: &'static crate::catalog::ImportTypeDef,
    sources: &[&str],
    json: serde_json::Value,
    csv: &str,
) -> crate::chunk::ParsedChunk {
    let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    let program = Arc::new(compile(def, &sources, &rules(json)).expect("valid rules"));
    let (header, body) = csv.split_once('\n').unwrap_or_default();
    let headers: Vec<String> = header.split(',').map(str::to_string).collect();
    let mapping = def.map_headers(&headers);
    let bound = program.bind(&headers);
    let layout = ChunkLayout {
        def,
        mapping: &mapping,
        delimiter: b',',
        first_row: 1,
        row_numbers: None,
        today: today(),
        rules: Some(&bound),
        rule_samples: 2,
    };
    parse_chunk(body.as_bytes(), layout).expect("parsed")
}

#[test]
fn a_vendor_export_becomes_cases() {
    let parsed = parse(
        &CASES,
        &["Full Name", "Case No", "State"],
        serde_json::json!([
            {"action": {"op": "copy", "from": "Case No", "to": "case_number"}},
            {"action": {"op": "split", "column": "Full Name", "separator": " ",
                        "into": ["deceased_first_name", "deceased_last_name"], "from_end": true}},
            {"action": {"op": "date", "column": "date_of_death", "pattern": "%m-%d-%y"}},
            {"action": {"op": "date", "column": "date_of_birth", "pattern": "%m-%d-%y"}},
            {"action": {"op": "map_values", "column": "State", "into": "case_status",
                        "values": [["Done", "closed"], ["Working", "open"]], "default": "closed"}},
            {"when": {"column": "case_type", "test": "empty"},
             "action": {"op": "default", "column": "case_type", "value": "at_need"}},
            {"action": {"op": "case", "column": "deceased_last_name", "to": "title"}}
        ]),
        "Case No,Full Name,DOD,DOB,State\nV-1,Mary Ann SMITH,03-04-25,01-02-45,Done\nV-2,Cher,12-31-24,,Pending\n",
    );
    assert!(
        parsed.problems.iter().all(|p| p.row == 2),
        "{:?}",
        parsed.problems
    );
    assert_eq!(parsed.text("case_number", 0).as_deref(), Some("V-1"));
    assert_eq!(
        parsed.text("deceased_first_name", 0).as_deref(),
        Some("Mary Ann")
    );
    assert_eq!(
        parsed.text("deceased_last_name", 0).as_deref(),
        Some("Smith")
    );
    assert_eq!(
        parsed.text("date_of_death", 0).as_deref(),
        Some("2025-03-04")
    );
    // A two-digit year is never in the future.
    assert_eq!(
        parsed.text("date_of_birth", 0).as_deref(),
        Some("1945-01-02")
    );
    assert_eq!(parsed.text("case_status", 0).as_deref(), Some("closed"));
    assert_eq!(parsed.text("case_status", 1).as_deref(), Some("closed"));
    assert_eq!(parsed.text("case_type", 0).as_deref(), Some("at_need"));
    // One word fills the last field from the end; the first stays empty
    // and the row fails as missing a required value.
    assert_eq!(
        parsed.text("deceased_last_name", 1).as_deref(),
        Some("Cher")
    );
    assert!(!parsed.valid[1]);
    let split = &parsed.rule_effects[1];
    assert_eq!(split.rows_changed, 2);
    assert_eq!(
        split.examples[0].after,
        vec![
            ("Full Name".to_string(), "Mary Ann SMITH".to_string()),
            ("deceased_first_name".to_string(), "Mary Ann".to_string()),
            ("deceased_last_name".to_string(), "SMITH".to_string()),
        ]
    );
}

#[test]
fn a_value_no_rule_maps_fails_its_row() {
    let parsed = parse(
        &ROLODEX,
        &[],
        serde_json::json!([
            {"action": {"op": "map_values", "column": "category",
                        "values": [["Flowers", "florist"], ["Church", "church"]]}}
        ]),
        "name,category\nRoses,FLOWERS\nCandles Inc,Candles\n",
    );
    assert_eq!(parsed.text("category", 0).as_deref(), Some("florist"));
    assert!(parsed.valid[0]);
    assert!(!parsed.valid[1]);
    let p = &parsed.problems[0];
    assert_eq!(
        (p.row, p.kind, p.value.as_str()),
        (2, FindingKind::UnmappedValue, "Candles")
    );
    assert!(p.reason.contains("no rule maps"), "{}", p.reason);
}

#[test]
fn a_date_that_does_not_match_its_pattern_is_a_type_error() {
    let parsed = parse(
        &CASES,
        &[],
        serde_json::json!([{"action": {"op": "date", "column": "date_of_death", "pattern": "%m-%d-%y"}}]),
        "case_number,first name,last name,dod\nC1,A,B,2025-03-04\n",
    );
    assert!(!parsed.valid[0]);
    assert!(parsed.problems[0].reason.contains("%m-%d-%y"));
}

#[test]
fn join_extract_trim_and_conditions() {
    let parsed = parse(
        &ROLODEX,
        &["Org", "Dept", "Ref"],
        serde_json::json!([
            {"action": {"op": "join", "columns": ["Org", "Dept"], "separator": " - ", "into": "name"}},
            {"action": {"op": "trim", "column": "name"}},
            {"when": {"column": "Ref", "test": "matches", "values": ["^WEB"]},
             "action": {"op": "extract", "column": "Ref", "pattern": "WEB:(\\S+)", "into": "website"}},
            {"when": {"column": "Org", "test": "one_of", "values": ["st mark", "st luke"]},
             "action": {"op": "default", "column": "category", "value": "church"}},
            {"action": {"op": "default", "column": "category", "value": "vendor"}}
        ]),
        "Org,Dept,Ref\nSt  Mark,,WEB:stmark.org\nAcme,Sales,other\n",
    );
    assert_eq!(parsed.problems, vec![]);
    assert_eq!(parsed.text("name", 0).as_deref(), Some("St Mark"));
    assert_eq!(parsed.text("website", 0).as_deref(), Some("stmark.org"));
    assert_eq!(parsed.text("category", 0).as_deref(), Some("church"));
    assert_eq!(parsed.text("name", 1).as_deref(), Some("Acme - Sales"));
    assert_eq!(parsed.text("website", 1), None);
    assert_eq!(parsed.text("category", 1).as_deref(), Some("vendor"));
}

fn refused(def: &'static crate::catalog::ImportTypeDef, json: serde_json::Value) -> Vec<String> {
    match compile(def, &["Full Name".to_string()], &rules(json)) {
        Ok(_) => panic!("rules accepted"),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn invalid_rules_are_refused_with_their_reason() {
    let e = refused(
        &CASES,
        serde_json::json!([{"action": {"op": "copy", "from": "Nick Name", "to": "suffix"}}]),
    );
    assert!(e[0].starts_with("rule 1: reads \"Nick Name\""), "{e:?}");
    let e = refused(
        &CASES,
        serde_json::json!([{"action": {"op": "copy", "from": "Full Name", "to": "nickname"}}]),
    );
    assert!(e[0].contains("not a column of Cases"), "{e:?}");
    let e = refused(
        &CASES,
        serde_json::json!([{"action": {"op": "extract", "column": "Full Name", "pattern": "(", "into": "suffix"}}]),
    );
    assert!(e[0].contains("not a valid regular expression"), "{e:?}");
    let e = refused(
        &CASES,
        serde_json::json!([{"action": {"op": "date", "column": "opened_on", "pattern": "%m-%q"}}]),
    );
    assert!(e[0].contains("date pattern"), "{e:?}");
    let e = refused(
        &CASES,
        serde_json::json!([{"action": {"op": "date", "column": "suffix", "pattern": "%m-%d-%y"}}]),
    );
    assert!(e[0].contains("not a date column"), "{e:?}");
    let e = refused(
        &CASES,
        serde_json::json!([
            {"action": {"op": "copy", "from": "suffix", "to": "deceased_middle_name"}},
            {"action": {"op": "join", "columns": ["deceased_middle_name", "Full Name"], "separator": " ", "into": "suffix"}}
        ]),
    );
    assert!(
        e[0].contains("from itself (deceased_middle_name → suffix → deceased_middle_name)"),
        "{e:?}"
    );
    let e = refused(
        &CASES,
        serde_json::json!([{"action": {"op": "map_values", "column": "case_type", "values": [["A", "at_need"], ["a", "pre_need"]]}}]),
    );
    assert!(e[0].contains("names \"a\" twice"), "{e:?}");
    let e = refused(
        &CASES,
        serde_json::json!([{"action": {"op": "split", "column": "Full Name", "separator": "", "into": ["suffix"]}}]),
    );
    assert_eq!(e.len(), 2, "{e:?}");
}
