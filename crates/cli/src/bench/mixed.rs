//! The mixed-import phase of `bench` (`--mixed CASES`): one import of a
//! new organization carrying all twelve import types, generated for CASES
//! cases with their related rows ([`crate::generate::mixed`]). It times the
//! upload, the analysis and start → completed, and, per type, the load of
//! its file: from the first chunk's start to the last chunk's end, as the
//! database recorded them.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use passare_imports_proto::v1 as pb;
use passare_imports_store::{Db, sqlx};

use super::{BenchArgs, Services, draft_of};
use crate::client;
use crate::generate::mixed::{MixedFile, write_mixed};

/// The organization of the phase, apart from the other phases' ones.
const ORG: i64 = 300_000;

/// One import type's file in the mixed import.
pub(super) struct TypeFigures {
    import_type: String,
    rows: i64,
    created: i64,
    /// From its first chunk's start to its last chunk's end.
    load: f64,
}

pub(super) struct MixedFigures {
    cases: u64,
    generated: Duration,
    uploaded: Duration,
    analysis: Duration,
    analysis_server_ms: i64,
    /// From StartImport until the import completed.
    loaded: Duration,
    types: Vec<TypeFigures>,
}

pub(super) async fn run(args: &BenchArgs, services: &Services) -> anyhow::Result<MixedFigures> {
    let dir = args
        .workdir
        .join(format!("mixed-{}-{}", args.mixed, args.seed));
    let t = Instant::now();
    let files = write_mixed(&dir, args.mixed, args.seed)
        .with_context(|| format!("generating the mixed set in {}", dir.display()))?;
    let generated = t.elapsed();
    let db = Db::connect(&args.database_url, 2).await?;
    passare_imports_store::organizations::ensure_demo(
        &mut *db.conn().await?,
        ORG,
        "Mixed import organization",
        crate::generate::DEMO_SETUP,
    )
    .await
    .context("setting up the mixed import's organization")?;
    let mut api = services.client().await?;
    let import_id = draft_of(&mut api, ORG, "benchmark: mixed import").await?;
    let t = Instant::now();
    for f in &files {
        let sent = client::upload(&mut api, &import_id, &f.path, f.import_type, None)
            .await
            .with_context(|| format!("uploading {}", f.path.display()))?;
        if sent.row_count as u64 != f.rows {
            bail!(
                "{} arrived with {} rows, not {}",
                f.path.display(),
                sent.row_count,
                f.rows
            );
        }
    }
    let uploaded = t.elapsed();
    let t = Instant::now();
    let report = client::analyze(&mut api, &import_id).await?;
    let analysis = t.elapsed();
    check_analysis(&report)?;
    let t = Instant::now();
    api.start_import(pb::StartImportRequest {
        import_id: import_id.clone(),
        failure_policy: 0,
    })
    .await
    .map_err(client::describe)
    .context("starting the mixed import")?;
    let bar = Some(indicatif::ProgressBar::hidden());
    let done = client::watch(&mut api, &import_id, bar).await?;
    let loaded = t.elapsed();
    check_outcome(&done, &files)?;
    let types = per_type(&db, &import_id, &done).await;
    db.close().await;
    Ok(MixedFigures {
        cases: args.mixed,
        generated,
        uploaded,
        analysis,
        analysis_server_ms: report.duration_ms,
        loaded,
        types: types?,
    })
}

/// An error naming every finding when the analysis blocks the import or
/// finds rows that would not be written.
fn check_analysis(report: &pb::AnalysisReport) -> anyhow::Result<()> {
    if !report.blocking && report.rows_failing == 0 {
        return Ok(());
    }
    let mut found: Vec<String> = report.findings.iter().map(|f| f.message.clone()).collect();
    for file in &report.files {
        for f in &file.findings {
            found.push(format!(
                "{} ({}): {}",
                file.file_name, file.import_type, f.message
            ));
        }
    }
    bail!(
        "the analysis of the mixed import {}, {} rows failing: {}",
        if report.blocking {
            "blocks it"
        } else {
            "does not block it"
        },
        report.rows_failing,
        found.join("; ")
    )
}

/// An error unless the import completed with every row of every file created.
fn check_outcome(done: &pb::Import, files: &[MixedFile]) -> anyhow::Result<()> {
    let state = pb::ImportState::try_from(done.state)
        .map(|s| s.as_str_name())
        .unwrap_or("unknown");
    if done.state != pb::ImportState::Completed as i32 {
        let problems: Vec<String> =
            done.files
                .iter()
                .flat_map(|f| {
                    f.problems.iter().take(3).map(move |p| {
                        format!("{} row {} {}: {}", f.name, p.row, p.column, p.reason)
                    })
                })
                .collect();
        bail!(
            "the mixed import ended {state}: {:?}; {}",
            done.error.as_ref().map(|e| &e.message),
            problems.join("; ")
        );
    }
    let expected: u64 = files.iter().map(|f| f.rows).sum();
    let p = done.progress.unwrap_or_default();
    if p.rows_created as u64 != expected || p.rows_failed != 0 {
        bail!(
            "the mixed import created {} rows of {expected}, {} failed",
            p.rows_created,
            p.rows_failed
        );
    }
    Ok(())
}

/// Each file's rows and load time, in the order the files loaded.
async fn per_type(db: &Db, import_id: &str, done: &pb::Import) -> anyhow::Result<Vec<TypeFigures>> {
    let rows: Vec<(String, String, i64, f64)> = sqlx::query_as(
        "SELECT f.id::text, f.import_type, f.row_count,
                COALESCE(EXTRACT(EPOCH FROM max(c.finished_at) - min(c.started_at)), 0)::float8
           FROM import_files f LEFT JOIN chunks c ON c.file_id = f.id
          WHERE f.import_id = $1::uuid
          GROUP BY f.id, f.import_type, f.row_count
          ORDER BY min(c.started_at) NULLS LAST, f.position",
    )
    .bind(import_id)
    .fetch_all(db.pool())
    .await
    .context("reading the load time of each file")?;
    Ok(rows
        .into_iter()
        .map(|(id, import_type, rows, load)| {
            let created = done
                .files
                .iter()
                .find(|f| f.id == id)
                .and_then(|f| f.progress)
                .map_or(0, |p| p.rows_created);
            TypeFigures {
                import_type,
                rows,
                created,
                load,
            }
        })
        .collect())
}

impl MixedFigures {
    fn rows(&self) -> i64 {
        self.types.iter().map(|t| t.rows).sum()
    }

    pub(super) fn json(&self) -> serde_json::Value {
        let rows = self.rows() as f64;
        let types: Vec<serde_json::Value> = self
            .types
            .iter()
            .map(|t| {
                serde_json::json!({
                    "import_type": t.import_type,
                    "rows": t.rows,
                    "rows_created": t.created,
                    "load_s": t.load,
                    "rows_s": per_sec(t.rows, t.load),
                })
            })
            .collect();
        serde_json::json!({
            "cases": self.cases,
            "rows": self.rows(),
            "generate_s": self.generated.as_secs_f64(),
            "upload_s": self.uploaded.as_secs_f64(),
            "analysis_s": self.analysis.as_secs_f64(),
            "analysis_rows_s": rows / self.analysis.as_secs_f64(),
            "analysis_server_ms": self.analysis_server_ms,
            "start_to_completed_s": self.loaded.as_secs_f64(),
            "start_to_completed_rows_s": rows / self.loaded.as_secs_f64(),
            "types": types,
        })
    }

    pub(super) fn print(&self) {
        let rows = self.rows();
        println!(
            "mixed import, twelve types, {} cases, {rows} rows in all:",
            self.cases
        );
        println!(
            "  generated              {:.2} s",
            self.generated.as_secs_f64()
        );
        println!(
            "  upload                 {:.2} s",
            self.uploaded.as_secs_f64()
        );
        println!(
            "  analysis (dry run)     {:.2} s  ({:.0} rows/s; server-side {} ms)",
            self.analysis.as_secs_f64(),
            rows as f64 / self.analysis.as_secs_f64(),
            self.analysis_server_ms
        );
        println!(
            "  start → completed      {:.2} s  ({:.0} rows/s)",
            self.loaded.as_secs_f64(),
            rows as f64 / self.loaded.as_secs_f64()
        );
        println!(
            "  {:<22} {:>9} {:>9} {:>10}",
            "type", "rows", "load s", "rows/s"
        );
        for t in &self.types {
            println!(
                "  {:<22} {:>9} {:>9.2} {:>10.0}",
                t.import_type,
                t.rows,
                t.load,
                per_sec(t.rows, t.load)
            );
        }
    }
}

/// Rows per second, 0 when nothing was timed.
fn per_sec(rows: i64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        rows as f64 / seconds
    } else {
        0.0
    }
}
