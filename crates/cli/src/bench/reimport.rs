//! `bench --reimports`: the same organization imports its cases again,
//! on the services that just loaded them — the same file (every row
//! unchanged), then a file whose every row changed, then another change as
//! an all-or-nothing import (which keeps before-images to roll back). Each
//! is timed like the first journey (upload, analysis on its own, start →
//! completed) and set against `\copy` of the same file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use passare_imports_proto::v1 as pb;

use super::{BenchArgs, Services};
use crate::client;

/// One re-import: what it was and what it took.
pub(super) struct Reimport {
    name: &'static str,
    upload: Duration,
    analysis: Duration,
    load: Duration,
}

/// The benchmark's file with `opened_on` (its last column) set to `day` on
/// every row: the same keys, every record changed.
fn changed_copy(csv: &Path, day: &str) -> anyhow::Result<PathBuf> {
    let out = csv.with_extension(format!("opened-{day}.csv"));
    let mut reader = csv::Reader::from_path(csv)?;
    let mut writer = csv::Writer::from_path(&out)?;
    writer.write_record(reader.headers()?)?;
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record)? {
        let last = record.len().saturating_sub(1);
        let row: Vec<&str> = record
            .iter()
            .enumerate()
            .map(|(i, v)| if i == last { day } else { v })
            .collect();
        writer.write_record(&row)?;
    }
    writer.flush()?;
    Ok(out)
}

/// Imports `csv` into the demo organization with `policy` and checks the
/// analysis and the outcome say `(created, updated, unchanged)`.
async fn reimport(
    api: &mut client::Client,
    (name, csv, policy): (&'static str, &Path, pb::FailurePolicy),
    want: (u64, u64, u64),
) -> anyhow::Result<Reimport> {
    let began = Instant::now();
    let import_id = api
        .create_import(pb::CreateImportRequest {
            organization_id: "1042".into(),
            failure_policy: policy as i32,
            note: format!("benchmark: {name}"),
            request_id: String::new(),
        })
        .await
        .map_err(client::describe)?
        .into_inner()
        .import
        .context("no import")?
        .id;
    client::upload(api, &import_id, csv, "cases", None).await?;
    let upload = began.elapsed();
    let analysis_began = Instant::now();
    let report = client::analyze(api, &import_id).await?;
    let analysis = analysis_began.elapsed();
    let said = (
        report.would_create as u64,
        report.would_update as u64,
        report.would_leave_unchanged as u64,
    );
    if said != want {
        bail!("{name}: the analysis says (created, updated, unchanged) = {said:?}, not {want:?}");
    }
    let load_began = Instant::now();
    api.start_import(pb::StartImportRequest {
        import_id: import_id.clone(),
        failure_policy: 0,
    })
    .await
    .map_err(client::describe)?;
    let done = client::watch(api, &import_id, None).await?;
    let load = load_began.elapsed();
    let p = done.progress.unwrap_or_default();
    let did = (
        p.rows_created as u64,
        p.rows_updated as u64,
        p.rows_unchanged as u64,
    );
    if did != want {
        bail!("{name}: the import did (created, updated, unchanged) = {did:?}, not {want:?}");
    }
    Ok(Reimport {
        name,
        upload,
        analysis,
        load,
    })
}

/// The three re-imports, in order, on `services` (whose organization holds
/// the file's rows).
pub(super) async fn run(
    args: &BenchArgs,
    services: &Services,
    csv: &Path,
) -> anyhow::Result<Vec<Reimport>> {
    let rows = args.rows;
    let changed = changed_copy(csv, "2026-01-02")?;
    let changed_again = changed_copy(csv, "2026-01-03")?;
    let mut api = services.client().await?;
    let valid_rows = pb::FailurePolicy::ImportValidRows;
    let mut out = Vec::new();
    for (scenario, want) in [
        (
            ("same file again (all unchanged)", csv, valid_rows),
            (0, 0, rows),
        ),
        (
            ("every row changed", changed.as_path(), valid_rows),
            (0, rows, 0),
        ),
        (
            (
                "every row changed, all-or-nothing",
                changed_again.as_path(),
                pb::FailurePolicy::StopOnFirstError,
            ),
            (0, rows, 0),
        ),
    ] {
        out.push(reimport(&mut api, scenario, want).await?);
    }
    for path in [changed, changed_again] {
        let _ = std::fs::remove_file(path);
    }
    Ok(out)
}

/// PostgreSQL's own floor for a re-import that changes every row: one
/// `UPDATE` statement through psql setting a column of every row of the
/// `\copy` baseline's table (the file's columns and key, narrower than a
/// stored record). No update path can beat it by much: each updated row is
/// a new row version and a new key index entry.
pub(super) fn update_baseline(url: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    super::psql(
        url,
        "UPDATE cases_copy_baseline SET opened_on = DATE '2026-01-02'",
    )?;
    Ok(t.elapsed())
}

/// Prints the re-imports next to `\copy` of the same file and PostgreSQL's
/// own update of every row ([`update_baseline`]).
pub(super) fn print(reimports: &[Reimport], rows: u64, copy: Duration, floor: Duration) {
    println!(
        "-- re-imports of the same organization (upload + start → completed; analysis on its own)"
    );
    println!(
        "{:<36} {:>7.2} s  ({:.2}× copy; one UPDATE statement of every row of the \\copy table)",
        "psql UPDATE of every row",
        floor.as_secs_f64(),
        floor.as_secs_f64() / copy.as_secs_f64(),
    );
    for r in reimports {
        let journey = r.upload + r.load;
        println!(
            "{:<36} {:>7.2} s  ({:.2}× copy; upload {:.2} s, load {:.2} s)  analysis {:.2} s ({:.0} rows/s)",
            r.name,
            journey.as_secs_f64(),
            journey.as_secs_f64() / copy.as_secs_f64(),
            r.upload.as_secs_f64(),
            r.load.as_secs_f64(),
            r.analysis.as_secs_f64(),
            rows as f64 / r.analysis.as_secs_f64()
        );
    }
}

pub(super) fn json(reimports: &[Reimport], rows: u64, copy: Duration) -> serde_json::Value {
    reimports
        .iter()
        .map(|r| {
            let journey = r.upload + r.load;
            serde_json::json!({
                "scenario": r.name,
                "journey_s": journey.as_secs_f64(),
                "ratio_to_copy": journey.as_secs_f64() / copy.as_secs_f64(),
                "upload_s": r.upload.as_secs_f64(),
                "load_s": r.load.as_secs_f64(),
                "analysis_s": r.analysis.as_secs_f64(),
                "analysis_rows_s": rows as f64 / r.analysis.as_secs_f64(),
            })
        })
        .collect()
}
