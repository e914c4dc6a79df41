//! Analysis under a memory budget: keys beyond the budget go to a scratch
//! table in PostgreSQL, and the report is exactly the one of an analysis
//! that kept every key in memory. Peak memory of a large analysis with and
//! without the budget is printed (never asserted).

use std::fmt::Write as _;

use passare_imports_integration_tests::files::{self, NewFile};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

/// Cases files with `rows` distinct keys each, a second file overlapping the
/// first, and keys repeated within a chunk, across chunks and across files.
fn files_with_repeats(rows: usize) -> Vec<NewFile> {
    let header = "case_number,deceased_first_name,deceased_last_name\n";
    let mut first = String::from(header);
    for i in 0..rows {
        let _ = writeln!(first, "A{i},Ann,Lee{i}");
        if i % 97 == 5 {
            // Repeats: the row just written (same chunk), and an early one
            // (an earlier chunk, held in memory or spilled).
            let _ = writeln!(first, "A{i},Ann,Again");
            let _ = writeln!(first, "A{},Ann,Early", i / 3);
        }
    }
    let mut second = String::from(header);
    for i in 0..rows / 2 {
        let _ = writeln!(second, "B{i},Bob,Ray");
        if i % 53 == 1 {
            let _ = writeln!(second, "A{},Bob,Twice", i * 2);
            let _ = writeln!(second, "B{i},Bob,Again");
        }
    }
    vec![
        NewFile::new("first.csv", "cases", first),
        NewFile::new("second.csv", "cases", second),
    ]
}

/// The report without what differs between two runs on the same files
/// (times, file ids).
fn comparable(mut report: pb::AnalysisReport) -> pb::AnalysisReport {
    report.analyze_time = None;
    report.duration_ms = 0;
    for f in &mut report.files {
        f.file_id.clear();
    }
    report
}

/// Peak resident memory of this process so far, in KiB (`VmHWM`).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak so the next reading covers what follows (Linux).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Analyses `files` in a world whose analysis keeps at most `budget` keys in
/// memory; returns the report and the peak memory of the analysis call.
async fn analyse_with_budget(
    files: &[NewFile],
    configure: fn(&mut passare_imports_app::config::Config),
    chunk_rows: u64,
) -> anyhow::Result<(pb::AnalysisReport, Option<u64>)> {
    let env = TestEnv::start(Options {
        chunk_rows,
        configure: Some(configure),
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let (id, _) =
        files::draft_with_files(&mut client, 1042, pb::FailurePolicy::ImportValidRows, files)
            .await?;
    reset_peak_rss();
    let report = files::analyze(&mut client, &id).await?;
    let peak = peak_rss_kib();
    let leftovers = count(
        &env.db,
        "SELECT count(*) FROM pg_class WHERE relname LIKE 'analysis\\_%' AND relpersistence = 't'",
    )
    .await?;
    env.finish().await?;
    anyhow::ensure!(leftovers == 0, "a scratch table outlived its analysis");
    Ok((report, peak))
}

fn tiny(config: &mut passare_imports_app::config::Config) {
    config.analysis_memory_keys = 7;
}

fn all_in_memory(config: &mut passare_imports_app::config::Config) {
    config.analysis_memory_keys = 100_000_000;
}

fn none_in_memory(config: &mut passare_imports_app::config::Config) {
    config.analysis_memory_keys = 0;
}

/// Thousands of keys, repeated within chunks, across chunks and across
/// files: the analysis that spills beyond 7 keys (and the one that keeps
/// none in memory) reports exactly what the in-memory analysis reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_key_budget_gives_the_findings_of_the_in_memory_analysis() -> anyhow::Result<()> {
    let files = files_with_repeats(3_000);
    let (memory, _) = analyse_with_budget(&files, all_in_memory, 400).await?;
    let (spilled, _) = analyse_with_budget(&files, tiny, 400).await?;
    let (none, _) = analyse_with_budget(&files, none_in_memory, 400).await?;
    let in_file =
        files::finding(&memory, "first.csv", pb::FindingKind::DuplicateInFile).map(|f| f.count);
    assert_eq!(in_file, Some(62), "keys repeated within first.csv");
    let across =
        files::finding(&memory, "second.csv", pb::FindingKind::DuplicateInRequest).map(|f| f.count);
    assert_eq!(across, Some(29), "keys of second.csv repeating first.csv");
    assert!(memory.rows_failing > 60, "{}", memory.rows_failing);
    assert_eq!(comparable(spilled), comparable(memory.clone()));
    assert_eq!(comparable(none), comparable(memory));
    Ok(())
}

/// Cases, their next of kin, contracts and payments against them in one
/// import: every payment refers to a contract of the import's earlier file
/// (which must agree on the case), a contract's payments add up against its
/// total, and a case has one next of kin.
fn contracts_and_payments(contracts: usize) -> Vec<NewFile> {
    let mut cases = String::from("case_number,deceased_first_name,deceased_last_name\n");
    let mut contract =
        String::from("contract_number,case_number,contract_date,total,contract_type,status\n");
    let mut payments =
        String::from("contract_number,paid_on,amount,method,reference,case_number\n");
    for i in 0..contracts {
        let _ = writeln!(cases, "C{i},Ann,Lee{i}");
        let _ = writeln!(contract, "K{i},C{i},2026-01-16,$100.00,at need,signed");
        // Two payments each; every 7th contract is paid above its total,
        // every 11th payment names another case than its contract's.
        let second = if i % 7 == 3 { "$60.00" } else { "$40.00" };
        let case = if i % 11 == 5 {
            format!("C{}", i + 1)
        } else {
            format!("C{i}")
        };
        let _ = writeln!(payments, "K{i},2026-01-20,$60.00,check,R{i}a,C{i}");
        let _ = writeln!(payments, "K{i},2026-02-01,{second},card,R{i}b,{case}");
    }
    // A payment against a contract the import does not have.
    let _ = writeln!(payments, "K-none,2026-02-01,$10.00,cash,R-none,C0");
    // A next of kin per case, and for every 13th case a second one, after
    // all the first ones (other chunks).
    let mut family = String::from("case_number,first_name,last_name,relationship,next of kin\n");
    for i in 0..contracts {
        let _ = writeln!(family, "C{i},Rob,Lee{i},son,yes");
    }
    for i in (4..contracts).step_by(13) {
        let _ = writeln!(family, "C{i},Sue,Lee{i},daughter,yes");
    }
    vec![
        NewFile::new("cases.csv", "cases", cases),
        NewFile::new("family.csv", "family_and_friends", family),
        NewFile::new("contracts.csv", "contract_information", contract),
        NewFile::new("payments.csv", "payments", payments),
    ]
}

/// Records of earlier files that later files refer to (contracts for
/// payments), the running sums of payments and the cases flagged with a next
/// of kin, kept beyond the budget in the scratch tables: references, the
/// columns that must agree, the totals payments add up against and the one
/// next of kin per case give the report of the analysis that kept
/// everything in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_earlier_files_beyond_the_budget_give_the_same_findings() -> anyhow::Result<()> {
    let files = contracts_and_payments(600);
    let (memory, _) = analyse_with_budget(&files, all_in_memory, 100).await?;
    let (spilled, _) = analyse_with_budget(&files, tiny, 100).await?;
    let (none, _) = analyse_with_budget(&files, none_in_memory, 100).await?;
    let kinds: Vec<(String, i32, i64)> = memory
        .files
        .iter()
        .flat_map(|f| {
            f.findings
                .iter()
                .map(|x| (f.file_name.clone(), x.kind, x.count))
        })
        .collect();
    println!("findings of the in-memory analysis: {kinds:?}");
    let payments = |k: pb::FindingKind| files::finding(&memory, "payments.csv", k).map(|f| f.count);
    // 55 payments naming another case than their contract's (every 11th),
    // and 78 contracts paid above their total (every 7th, less the 8 whose
    // second payment failed for its case).
    let constraint = pb::FindingKind::Constraint as i32;
    for n in [55, 78] {
        assert!(
            kinds.contains(&("payments.csv".into(), constraint, n)),
            "{n} constraint findings: {kinds:?}"
        );
    }
    assert_eq!(payments(pb::FindingKind::UnresolvedReference), Some(1));
    // 46 cases with a second next of kin.
    assert_eq!(
        files::finding(&memory, "family.csv", pb::FindingKind::Constraint).map(|f| f.count),
        Some(46)
    );
    assert_eq!(comparable(spilled), comparable(memory.clone()));
    assert_eq!(comparable(none), comparable(memory));
    Ok(())
}

/// Peak memory of the analysis of 300,000 distinct keys with every key in
/// memory and with a budget of 10,000 keys (printed, not asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_memory_of_a_large_analysis_with_and_without_a_budget() -> anyhow::Result<()> {
    fn budget(config: &mut passare_imports_app::config::Config) {
        config.analysis_memory_keys = 10_000;
    }
    let files = files_with_repeats(200_000);
    let rows: usize = 200_000 + 100_000;
    let (memory, unbounded) = analyse_with_budget(&files, all_in_memory, 10_000).await?;
    let (spilled, bounded) = analyse_with_budget(&files, budget, 10_000).await?;
    println!(
        "analysis of {rows} rows: peak RSS {} KiB with every key in memory, {} KiB with 10,000 keys in memory (durations {} ms, {} ms)",
        unbounded.unwrap_or_default(),
        bounded.unwrap_or_default(),
        memory.duration_ms,
        spilled.duration_ms
    );
    assert_eq!(comparable(spilled), comparable(memory));
    Ok(())
}
