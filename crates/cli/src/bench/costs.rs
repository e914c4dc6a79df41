//! `bench --costs`: what record events and the raw archive add to a load.
//! The same file is imported again on fresh services three times — with
//! everything on, with record events off, with the archive off — and the
//! time from StartImport to completed of each is printed, with how long
//! the events' outbox took to drain after the import completed.

use std::path::Path;
use std::time::{Duration, Instant};

use passare_imports_store::{Db, sqlx};

use super::{BenchArgs, Services, journey};

pub(super) struct CostFigures {
    all_on: Duration,
    events_off: Duration,
    archive_off: Duration,
    /// From completed until the relay had published every event.
    outbox_drained: Duration,
}

/// StartImport → completed of one journey on fresh services with `settings`.
async fn load_time(
    args: &BenchArgs,
    csv: &Path,
    settings: &[(&'static str, &str)],
) -> anyhow::Result<(Duration, Services)> {
    let services = Services::start_with(args, &[], settings).await?;
    let mut api = services.client().await?;
    let figures = journey(args, &mut api, csv).await?;
    Ok((figures.end_to_end - figures.uploaded, services))
}

pub(super) async fn run(args: &BenchArgs, csv: &Path) -> anyhow::Result<CostFigures> {
    let (all_on, services) = load_time(args, csv, &[]).await?;
    let db = Db::connect(&args.database_url, 2).await?;
    let completed = Instant::now();
    loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM record_events")
            .fetch_one(&mut *db.conn().await?)
            .await?;
        if left == 0 {
            break;
        }
        anyhow::ensure!(
            completed.elapsed() < Duration::from_secs(1_800),
            "the record events' outbox still holds {left} events after 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let outbox_drained = completed.elapsed();
    db.close().await;
    drop(services);
    let (events_off, services) =
        load_time(args, csv, &[("IMPORTS_RECORD_EVENTS", "false")]).await?;
    drop(services);
    let (archive_off, services) = load_time(args, csv, &[("IMPORTS_ARCHIVE", "false")]).await?;
    drop(services);
    Ok(CostFigures {
        all_on,
        events_off,
        archive_off,
        outbox_drained,
    })
}

impl CostFigures {
    /// How much longer the load is with the feature on, as a share of the
    /// load without it.
    fn cost(with: Duration, without: Duration) -> f64 {
        (with.as_secs_f64() - without.as_secs_f64()) / without.as_secs_f64() * 100.0
    }

    pub(super) fn print(&self, rows: u64) {
        let per_million = |d: Duration| d.as_secs_f64() * 1_000_000.0 / rows as f64;
        println!("-- costs (StartImport → completed, fresh services each)");
        println!("everything on            {:.1?}", self.all_on);
        println!(
            "record events off        {:.1?}  (events add {:+.0} %, {:.1} s per 1M rows; outbox drained {:.1?} after completed)",
            self.events_off,
            Self::cost(self.all_on, self.events_off),
            per_million(self.all_on.saturating_sub(self.events_off)),
            self.outbox_drained
        );
        println!(
            "raw archive off          {:.1?}  (archive adds {:+.0} %, {:.1} s per 1M rows)",
            self.archive_off,
            Self::cost(self.all_on, self.archive_off),
            per_million(self.all_on.saturating_sub(self.archive_off))
        );
    }

    pub(super) fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "all_on_s": self.all_on.as_secs_f64(),
            "events_off_s": self.events_off.as_secs_f64(),
            "archive_off_s": self.archive_off.as_secs_f64(),
            "events_cost_pct": Self::cost(self.all_on, self.events_off),
            "archive_cost_pct": Self::cost(self.all_on, self.archive_off),
            "outbox_drained_s": self.outbox_drained.as_secs_f64(),
        })
    }
}
