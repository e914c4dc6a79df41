//! `passare-imports load`: fairness under load. Starts a server and a worker
//! (as `bench` does, loopback only, fresh database), imports the same
//! generated Cases file twice into two organizations — once idle, once while
//! a plain user of a third organization holds as many watch streams and
//! result downloads as it can — and prints, for each run, the import's
//! duration and the p50/p99 of a super admin's GetImport, and their ratios.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use passare_imports_proto::v1 as pb;
use tonic::Code;

use crate::bench::{BenchArgs, Services, draft_of};
use crate::client::{self, Client};

#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Rows of the measured import.
    #[arg(long, default_value_t = 100_000)]
    pub rows: u64,
    /// Watch streams the plain user keeps trying to hold.
    #[arg(long, default_value_t = 200)]
    pub watchers: usize,
    /// Downloads the plain user keeps trying to run.
    #[arg(long, default_value_t = 20)]
    pub downloaders: usize,
    /// Longest each measured import may take before the run gives up.
    #[arg(long, default_value_t = 600)]
    pub max_secs: u64,
    /// Server of PostgreSQL to use; the load database is dropped and recreated.
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/passare_imports_load"
    )]
    pub database_url: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    #[arg(long, default_value = "/tmp/passare-imports-load")]
    pub workdir: PathBuf,
}

/// The plain user's organization, and the two measured ones.
const PLAIN_ORG: i64 = 1042;
const IDLE_ORG: i64 = 2001;
const LOADED_ORG: i64 = 2002;

/// What one measured import showed.
struct Run {
    duration: Duration,
    p50: Duration,
    p99: Duration,
    samples: usize,
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.workdir)?;
    let bench = BenchArgs {
        rows: args.rows,
        seed: 11,
        database_url: args.database_url.clone(),
        amqp_url: args.amqp_url.clone(),
        workdir: args.workdir.clone(),
        chunk_rows: 10_000,
        tenants: 0,
        workers: 1,
        costs: false,
        reimports: false,
        mixed: 0,
        json: None,
        storage: crate::bench::BenchStorage::Local,
        s3_bucket: String::new(),
        s3_create_bucket: false,
    };
    let csv = args.workdir.join(format!("cases-{}.csv", args.rows));
    crate::generate::write_cases(&csv, args.rows, 11)?;
    let target = args.workdir.join("plain-user-target.csv");
    crate::generate::write_cases(&target, 20_000, 3)?;
    let services = Services::start_with(&bench, &[IDLE_ORG, LOADED_ORG], &[]).await?;
    let mut admin = services.client().await?;
    let limit = Duration::from_secs(args.max_secs);
    // What the plain user watches (a draft: a watch that never ends by
    // itself) and downloads (the written rows of a finished import).
    let (done, file) = import(&mut admin, PLAIN_ORG, &target, limit).await?;
    let watched = draft_of(&mut admin, PLAIN_ORG, "load: watched draft").await?;
    let idle = measured(&mut admin, IDLE_ORG, &csv, limit).await?;
    let plain = services
        .client_with(&services.token_of("plain-user", false, Some(PLAIN_ORG))?)
        .await?;
    let load = Load::start(&args, plain, watched, done, file);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = measured(&mut admin, LOADED_ORG, &csv, limit).await;
    let counts = load.stop().await;
    let loaded = loaded?;
    print(&args, &idle, &loaded, &counts);
    Ok(())
}

/// Creates, uploads, analyses and starts an import of `csv` into `org` and
/// follows it to its end; returns it and its file.
async fn import(
    admin: &mut Client,
    org: i64,
    csv: &std::path::Path,
    limit: Duration,
) -> anyhow::Result<(String, String)> {
    let (id, _) = started(admin, org, csv).await?;
    let done = tokio::time::timeout(
        limit,
        client::watch(admin, &id, None::<indicatif::ProgressBar>),
    )
    .await
    .context("the import did not end in time")??;
    let file = done
        .files
        .first()
        .context("the import has no file")?
        .id
        .clone();
    Ok((id, file))
}

/// A started import of `csv` into `org`, and when it was started.
async fn started(
    admin: &mut Client,
    org: i64,
    csv: &std::path::Path,
) -> anyhow::Result<(String, Instant)> {
    let id = draft_of(admin, org, "load test").await?;
    client::upload(admin, &id, csv, "cases", None).await?;
    client::analyze(admin, &id).await?;
    let began = Instant::now();
    admin
        .start_import(pb::StartImportRequest {
            import_id: id.clone(),
            failure_policy: 0,
        })
        .await
        .map_err(client::describe)?;
    Ok((id, began))
}

/// Starts an import and polls it with GetImport as a super admin until it
/// ends: the import's duration (start to end) and the latency of every poll.
async fn measured(
    admin: &mut Client,
    org: i64,
    csv: &std::path::Path,
    limit: Duration,
) -> anyhow::Result<Run> {
    let (id, began) = started(admin, org, csv).await?;
    let mut latencies = Vec::new();
    loop {
        anyhow::ensure!(
            began.elapsed() < limit,
            "the measured import did not end in time"
        );
        let t = Instant::now();
        let import = admin
            .get_import(pb::GetImportRequest {
                import_id: id.clone(),
            })
            .await
            .map_err(client::describe)?
            .into_inner()
            .import
            .context("no import")?;
        latencies.push(t.elapsed());
        if client::is_terminal(import.state) {
            anyhow::ensure!(
                import.state == pb::ImportState::Completed as i32,
                "the measured import ended in state {}",
                import.state
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let duration = began.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok(Run {
        duration,
        p50: at(0.50),
        p99: at(0.99),
        samples: latencies.len(),
    })
}

/// What the plain user managed and was refused.
#[derive(Default)]
struct Counts {
    watches_opened: AtomicU64,
    watches_refused: AtomicU64,
    watches_ended: AtomicU64,
    downloads_done: AtomicU64,
    downloads_refused: AtomicU64,
    bytes: AtomicU64,
    other_errors: AtomicU64,
}

/// The plain user's tasks.
struct Load {
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(args: &LoadArgs, plain: Client, watched: String, done: String, file: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let mut tasks = Vec::new();
        for _ in 0..args.watchers {
            let (c, stop, counts, id) =
                (plain.clone(), stop.clone(), counts.clone(), watched.clone());
            tasks.push(tokio::spawn(watcher(c, stop, counts, id)));
        }
        for _ in 0..args.downloaders {
            let (c, stop, counts) = (plain.clone(), stop.clone(), counts.clone());
            let (id, file) = (done.clone(), file.clone());
            tasks.push(tokio::spawn(downloader(c, stop, counts, id, file)));
        }
        Self {
            stop,
            counts,
            tasks,
        }
    }

    async fn stop(self) -> Arc<Counts> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        self.counts
    }
}

/// Counts a refusal (RESOURCE_EXHAUSTED) or another error, then waits as
/// the status's RetryInfo asks (a well-behaved client), else 50 ms.
async fn refused(status: &tonic::Status, refusals: &AtomicU64, counts: &Counts) {
    use tonic_types::StatusExt;
    if status.code() == Code::ResourceExhausted {
        refusals.fetch_add(1, Ordering::Relaxed);
    } else {
        counts.other_errors.fetch_add(1, Ordering::Relaxed);
    }
    let wait = status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .unwrap_or(Duration::from_millis(50));
    tokio::time::sleep(wait).await;
}

async fn watcher(mut c: Client, stop: Arc<AtomicBool>, counts: Arc<Counts>, id: String) {
    while !stop.load(Ordering::Relaxed) {
        match c
            .watch_import(pb::WatchImportRequest {
                import_id: id.clone(),
            })
            .await
        {
            Ok(stream) => {
                counts.watches_opened.fetch_add(1, Ordering::Relaxed);
                let mut stream = stream.into_inner();
                while let Some(Ok(_)) = stream.next().await {}
                counts.watches_ended.fetch_add(1, Ordering::Relaxed);
            }
            Err(s) => refused(&s, &counts.watches_refused, &counts).await,
        }
    }
}

async fn downloader(
    mut c: Client,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    id: String,
    file: String,
) {
    while !stop.load(Ordering::Relaxed) {
        let request = pb::DownloadResultsRequest {
            import_id: id.clone(),
            file_id: file.clone(),
            kind: pb::ResultKind::WrittenRows as i32,
        };
        match c.download_results(request).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                while let Some(Ok(m)) = stream.next().await {
                    counts
                        .bytes
                        .fetch_add(m.chunk.len() as u64, Ordering::Relaxed);
                }
                counts.downloads_done.fetch_add(1, Ordering::Relaxed);
            }
            Err(s) => refused(&s, &counts.downloads_refused, &counts).await,
        }
    }
}

fn print(args: &LoadArgs, idle: &Run, loaded: &Run, counts: &Counts) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!("rows per measured import        {}", args.rows);
    println!(
        "plain user: {} watchers, {} downloaders on one connection",
        args.watchers, args.downloaders
    );
    println!(
        "  watch streams opened {} / refused {} (RESOURCE_EXHAUSTED)",
        n(&counts.watches_opened),
        n(&counts.watches_refused)
    );
    println!(
        "  downloads completed {} ({:.1} MB) / refused {}; other errors {}",
        n(&counts.downloads_done),
        n(&counts.bytes) as f64 / 1e6,
        n(&counts.downloads_refused),
        n(&counts.other_errors)
    );
    println!("                                idle        under load   ratio");
    println!(
        "import duration (start → end)   {:8.2} s  {:8.2} s   {:.2}×",
        idle.duration.as_secs_f64(),
        loaded.duration.as_secs_f64(),
        loaded.duration.as_secs_f64() / idle.duration.as_secs_f64()
    );
    println!(
        "GetImport p50 (super admin)     {:8.1} ms {:8.1} ms  {:.2}×",
        ms(idle.p50),
        ms(loaded.p50),
        ms(loaded.p50) / ms(idle.p50)
    );
    println!(
        "GetImport p99 (super admin)     {:8.1} ms {:8.1} ms  {:.2}×",
        ms(idle.p99),
        ms(loaded.p99),
        ms(loaded.p99) / ms(idle.p99)
    );
    println!(
        "GetImport samples               {:8}    {:8}",
        idle.samples, loaded.samples
    );
}
