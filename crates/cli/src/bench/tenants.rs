//! The many-organizations phase of `bench` (`--tenants N`): the same number
//! of rows as the single import, spread over N organizations that each
//! import `rows / N` new Cases, started side by side as the nightly flow
//! starts them. It prints the total time and throughput next to the single
//! organization's, and the spread of "queued → completed" per organization.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use passare_imports_proto::v1 as pb;
use passare_imports_store::{Db, sqlx};

use super::{BenchArgs, Services, draft_of};
use crate::client;

/// The first organization of the phase (the single import uses 1042).
const FIRST_ORG: i64 = 200_000;
/// Clients creating and starting imports side by side.
const CALLERS: usize = 4;
/// How long the phase may take before the benchmark gives up.
const PATIENCE: Duration = Duration::from_secs(3 * 3600);

pub(super) struct TenantFigures {
    orgs: u64,
    rows_each: u64,
    /// From the first upload until every import was started.
    started: Duration,
    /// From the first upload until every import completed.
    completed: Duration,
    lag_p50: f64,
    lag_p99: f64,
}

pub(super) async fn run(args: &BenchArgs, services: &Services) -> anyhow::Result<TenantFigures> {
    let orgs = args.tenants;
    let rows_each = args.rows / orgs;
    if rows_each == 0 {
        bail!("--tenants {orgs} is more than --rows {}", args.rows);
    }
    let csv = args
        .workdir
        .join(format!("cases-{rows_each}-{}.csv", args.seed));
    crate::generate::write_cases(&csv, rows_each, args.seed)?;
    let db = Db::connect(&args.database_url, 2).await?;
    let last = FIRST_ORG + orgs as i64;
    for org in FIRST_ORG..last {
        passare_imports_store::organizations::ensure_demo(
            &mut *db.conn().await?,
            org,
            &format!("Organization {org}"),
            crate::generate::DEMO_SETUP,
        )
        .await?;
    }
    let t = Instant::now();
    let mut clients = Vec::with_capacity(CALLERS);
    for _ in 0..CALLERS {
        clients.push(services.client().await?);
    }
    let csv = csv.as_path();
    futures::future::try_join_all(clients.iter_mut().enumerate().map(|(i, api)| async move {
        for org in (FIRST_ORG..last).skip(i).step_by(CALLERS) {
            start_one(api, org, csv).await?;
        }
        anyhow::Ok(())
    }))
    .await?;
    let started = t.elapsed();
    wait_all_ended(&db, orgs).await?;
    let completed = t.elapsed();
    let (created, failed): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM cases WHERE organization_id >= $1),
                (SELECT count(*) FROM imports WHERE organization_id >= $1 AND state <> 'completed')",
    )
    .bind(FIRST_ORG)
    .fetch_one(db.pool())
    .await?;
    if failed > 0 || created as u64 != orgs * rows_each {
        bail!(
            "{failed} imports did not complete; {created} cases stored, not {}",
            orgs * rows_each
        );
    }
    let mut lags: Vec<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM (finished_at - queued_at))::float8 FROM imports
          WHERE organization_id >= $1",
    )
    .bind(FIRST_ORG)
    .fetch_all(db.pool())
    .await?;
    lags.sort_by(f64::total_cmp);
    let at = |p: f64| lags[((lags.len() - 1) as f64 * p).round() as usize];
    Ok(TenantFigures {
        orgs,
        rows_each,
        started,
        completed,
        lag_p50: at(0.5),
        lag_p99: at(0.99),
    })
}

/// Draft, upload and start one organization's import (its analysis runs
/// within StartImport, as for a user who did not analyse first).
async fn start_one(api: &mut client::Client, org: i64, csv: &Path) -> anyhow::Result<()> {
    let id = draft_of(api, org, "benchmark: many organizations").await?;
    client::upload(api, &id, csv, "cases", None).await?;
    api.start_import(pb::StartImportRequest {
        import_id: id,
        failure_policy: 0,
    })
    .await
    .map_err(client::describe)
    .with_context(|| format!("starting the import of organization {org}"))?;
    Ok(())
}

async fn wait_all_ended(db: &Db, orgs: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ended: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM imports
              WHERE organization_id >= $1
                AND state IN ('completed', 'completed_with_errors', 'failed', 'stopped')",
        )
        .bind(FIRST_ORG)
        .fetch_one(db.pool())
        .await?;
        if ended as u64 >= orgs {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{ended} of {orgs} imports ended within {PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl TenantFigures {
    pub(super) fn json(&self) -> serde_json::Value {
        let rows = (self.orgs * self.rows_each) as f64;
        serde_json::json!({
            "organizations": self.orgs,
            "rows_each": self.rows_each,
            "all_started_s": self.started.as_secs_f64(),
            "all_completed_s": self.completed.as_secs_f64(),
            "rows_s": rows / self.completed.as_secs_f64(),
            "queued_to_completed_p50_s": self.lag_p50,
            "queued_to_completed_p99_s": self.lag_p99,
        })
    }

    pub(super) fn print(&self, single: Duration) {
        let rows = (self.orgs * self.rows_each) as f64;
        println!(
            "{} organizations × {} rows, {} rows in all:",
            self.orgs,
            self.rows_each,
            self.orgs * self.rows_each
        );
        println!(
            "  all started            {:.2} s  (draft, upload and StartImport of each, {CALLERS} callers)",
            self.started.as_secs_f64()
        );
        println!(
            "  all completed          {:.2} s  ({:.0} rows/s; one organization: {:.0} rows/s)",
            self.completed.as_secs_f64(),
            rows / self.completed.as_secs_f64(),
            rows / single.as_secs_f64()
        );
        println!(
            "  queued → completed     p50 {:.3} s, p99 {:.3} s per organization",
            self.lag_p50, self.lag_p99
        );
    }
}
