//! `passare-imports bench`: generates N Cases rows, imports them end to end
//! through a server and a worker started as child processes (fresh database,
//! own queues), then loads the same file with `psql \copy` into a table of the
//! same shape, and prints both wall times, their ratio, rows/s and the peak
//! memory (VmHWM) of the server and the worker. With `--tenants N`, the same
//! rows are then imported again spread over N organizations ([`tenants`]);
//! with `--costs`, again without record events and without the raw archive
//! ([`costs`]), and the file parsed with and without a rule set ([`rules`]);
//! with `--reimports`, the same organization imports the file again
//! unchanged, changed, and changed all-or-nothing ([`reimport`]); with `--storage s3`, again with the file store in an S3
//! bucket, and both load times are printed ([`storage`]). With `--mixed
//! CASES`, one import of all twelve types generated for CASES cases, timed
//! per type ([`mixed`]).

mod costs;
mod mixed;
mod reimport;
mod rules;
mod storage;
mod tenants;

pub use storage::BenchStorage;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use passare_imports_app::config::Config;
use passare_imports_proto::v1 as pb;

use crate::client;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Server of PostgreSQL to use; the benchmark database is dropped and recreated.
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/passare_imports_bench"
    )]
    pub database_url: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// Working directory for the generated file and uploads.
    #[arg(long, default_value = "/tmp/passare-imports-bench")]
    pub workdir: PathBuf,
    /// Rows per chunk (the service's default).
    #[arg(long, default_value_t = 25_000)]
    pub chunk_rows: u64,
    /// Also import `rows` spread over this many organizations (`rows / N`
    /// each, started side by side) and print it next to the single import.
    #[arg(long, default_value_t = 0)]
    pub tenants: u64,
    /// Worker processes (`passare-imports work`, each with the default
    /// `IMPORTS_WORKER_CONCURRENCY`).
    #[arg(long, default_value_t = 1)]
    pub workers: u32,
    /// Also import the file again with record events off, then with the
    /// raw archive off, and print what each adds to the load.
    #[arg(long)]
    pub costs: bool,
    /// Also import the file again into the same organization: unchanged,
    /// every row changed, and changed again as an all-or-nothing import.
    #[arg(long)]
    pub reimports: bool,
    /// Also import all twelve types at once into a new organization: this
    /// many cases with their related rows (basic information, veterans,
    /// family, events, contracts, payments) and, in proportion, rolodex,
    /// price list, client service types, checks and bank transactions; the
    /// load time of each type is printed. 0: off.
    #[arg(long, default_value_t = 0)]
    pub mixed: u64,
    /// Also write every figure of the run (times, ratios, rows/s, peak
    /// memory, percentiles) to this file as JSON, to compare runs.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// `s3`: also import the file with the file store in an S3 bucket
    /// (`IMPORTS_S3_ENDPOINT`, `IMPORTS_S3_REGION` and credentials from the
    /// environment) and print its load time next to the local directory's.
    #[arg(long, value_enum, default_value_t = BenchStorage::Local)]
    pub storage: BenchStorage,
    /// The bucket of `--storage s3`; each run writes under a prefix of its own.
    #[arg(
        long,
        env = "IMPORTS_S3_BUCKET",
        default_value = "passare-imports-bench"
    )]
    pub s3_bucket: String,
    /// Create the bucket first with an unsigned request, as S3-compatible
    /// test servers (moto) accept: for a local trial, not for AWS.
    #[arg(long)]
    pub s3_create_bucket: bool,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        for c in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.workdir)?;
    let csv = generate(&args)?;
    let services = Services::start(&args).await?;
    let mut api = services.client().await?;
    let figures = journey(&args, &mut api, &csv).await;
    let uploads = match &figures {
        Ok(_) => Some(compare_uploads(&services, &mut api, &csv).await),
        Err(_) => None,
    };
    let server_peak = peak_rss_kib(services.server_pid);
    let worker_peak = services
        .worker_pids
        .iter()
        .filter_map(|p| peak_rss_kib(*p))
        .max();
    let again = match &figures {
        Ok(_) if args.reimports => Some(reimport::run(&args, &services, &csv).await),
        _ => None,
    };
    let spread = match &figures {
        Ok(_) if args.tenants > 0 => Some(tenants::run(&args, &services).await),
        _ => None,
    };
    let all_types = match &figures {
        Ok(_) if args.mixed > 0 => Some(mixed::run(&args, &services).await),
        _ => None,
    };
    drop(services);
    let figures = figures?;
    let on_s3 = match args.storage {
        BenchStorage::S3 => Some(storage::run(&args, &csv).await?),
        BenchStorage::Local => None,
    };
    let copy = copy_baseline(&args.database_url, &csv)?;
    figures.print(args.rows, copy, server_peak, worker_peak);
    let bytes = std::fs::metadata(&csv)?.len();
    let mut json = serde_json::json!({
        "rows": args.rows,
        "file_bytes": bytes,
        "chunk_rows": args.chunk_rows,
        "workers": args.workers,
        "copy_s": copy.as_secs_f64(),
        "single": figures.json(args.rows, copy),
        "peak_rss_kib": { "server": server_peak, "worker": worker_peak },
    });
    if let Some(uploads) = uploads {
        let uploads = uploads?;
        uploads.print(bytes);
        json["uploads"] = uploads.json(bytes);
    }
    if let Some(on_s3) = on_s3 {
        on_s3.print(args.rows, &figures);
        json["storage"] = on_s3.json(&figures);
    }
    if let Some(again) = again {
        let again = again?;
        let floor = reimport::update_baseline(&args.database_url)?;
        reimport::print(&again, args.rows, copy, floor);
        json["reimports"] = reimport::json(&again, args.rows, copy);
        json["update_floor_s"] = floor.as_secs_f64().into();
    }
    if let Some(spread) = spread {
        let spread = spread?;
        spread.print(figures.end_to_end);
        json["tenants"] = spread.json();
    }
    if let Some(all_types) = all_types {
        let all_types = all_types?;
        all_types.print();
        json["mixed"] = all_types.json();
    }
    if args.costs {
        let costs = costs::run(&args, &csv).await?;
        costs.print(args.rows);
        json["costs"] = costs.json();
        let rules = rules::run(&csv, args.chunk_rows)?;
        rules.print(args.rows);
        json["rules"] = rules.json(args.rows);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}

/// The same file uploaded twice into fresh drafts: by the streaming gRPC
/// upload, and by the resumable upload over grpc-web through the gateway,
/// as the admin frontend sends it.
struct UploadFigures {
    streaming: Duration,
    resumable_web: Duration,
    parts: u64,
}

async fn compare_uploads(
    services: &Services,
    api: &mut client::Client,
    csv: &Path,
) -> anyhow::Result<UploadFigures> {
    let streamed_into = draft(api, "benchmark: streaming upload").await?;
    let t = Instant::now();
    let streamed = client::upload(api, &streamed_into, csv, "cases", None).await?;
    let streaming = t.elapsed();
    let web_into = draft(api, "benchmark: resumable upload").await?;
    let mut web = crate::web_client::connect(
        &format!("http://127.0.0.1:{}", services.gateway_port),
        &services.token()?,
    )?;
    let t = Instant::now();
    let (sent, parts) =
        crate::web_client::upload_in_parts(&mut web, &web_into, csv, "cases").await?;
    let resumable_web = t.elapsed();
    if sent.sha256 != streamed.sha256 || sent.row_count != streamed.row_count {
        bail!(
            "the two uploads differ: {} rows, sha256 {} streamed; {} rows, sha256 {} in parts",
            streamed.row_count,
            streamed.sha256,
            sent.row_count,
            sent.sha256
        );
    }
    Ok(UploadFigures {
        streaming,
        resumable_web,
        parts,
    })
}

impl UploadFigures {
    fn json(&self, bytes: u64) -> serde_json::Value {
        let mb_s = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
        serde_json::json!({
            "streaming_s": self.streaming.as_secs_f64(),
            "streaming_mb_s": mb_s(self.streaming),
            "resumable_web_s": self.resumable_web.as_secs_f64(),
            "resumable_web_mb_s": mb_s(self.resumable_web),
            "resumable_parts": self.parts,
        })
    }

    fn print(&self, bytes: u64) {
        let mb_s = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
        println!(
            "upload, streaming gRPC   {:.2} s  ({:.1} MB/s)",
            self.streaming.as_secs_f64(),
            mb_s(self.streaming)
        );
        println!(
            "upload, resumable        {:.2} s  ({:.1} MB/s; grpc-web through the gateway, {} parts)",
            self.resumable_web.as_secs_f64(),
            mb_s(self.resumable_web),
            self.parts
        );
        println!(
            "ratio resumable / streaming throughput  {:.2}",
            self.streaming.as_secs_f64() / self.resumable_web.as_secs_f64()
        );
    }
}

/// The benchmark's Cases file.
fn generate(args: &BenchArgs) -> anyhow::Result<PathBuf> {
    let csv = args
        .workdir
        .join(format!("cases-{}-{}.csv", args.rows, args.seed));
    let t = Instant::now();
    crate::generate::write_cases(&csv, args.rows, args.seed)?;
    let bytes = std::fs::metadata(&csv)?.len();
    println!(
        "generated {} rows ({:.1} MB) in {:.1?}",
        args.rows,
        bytes as f64 / 1e6,
        t.elapsed()
    );
    Ok(csv)
}

/// A server and a worker of the benchmark, as child processes on a fresh
/// database; stopped when dropped.
pub(crate) struct Services {
    pub(crate) port: u16,
    gateway_port: u16,
    secret: String,
    server_pid: u32,
    worker_pids: Vec<u32>,
    _children: Children,
}

impl Services {
    async fn start(args: &BenchArgs) -> anyhow::Result<Self> {
        Self::start_with(args, &[], &[]).await
    }

    /// The services, with organization 1042 and `orgs` set up as demo
    /// organizations, and `settings` (`IMPORTS_*` pairs) on top of the
    /// benchmark's own.
    pub(crate) async fn start_with(
        args: &BenchArgs,
        orgs: &[i64],
        settings: &[(&'static str, &str)],
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let port = free_port()?;
        let gateway_port = free_port()?;
        let secret = format!("bench-{}", uuid::Uuid::new_v4());
        let uploads = args.workdir.join("uploads");
        let _ = std::fs::remove_dir_all(&uploads);
        let env: Vec<(&str, String)> = vec![
            ("IMPORTS_STORAGE", "local".into()),
            ("IMPORTS_DATABASE_URL", args.database_url.clone()),
            ("IMPORTS_AMQP_URL", args.amqp_url.clone()),
            (
                "IMPORTS_QUEUE_PREFIX",
                format!("bench.{}", uuid::Uuid::new_v4().simple()),
            ),
            ("IMPORTS_QUEUE_EXPIRES_MS", "600000".into()),
            ("IMPORTS_STORAGE_DIR", uploads.display().to_string()),
            ("IMPORTS_GRPC_ADDR", format!("127.0.0.1:{port}")),
            ("IMPORTS_GATEWAY_ADDR", format!("127.0.0.1:{gateway_port}")),
            ("IMPORTS_JWT_SECRET", secret.clone()),
            ("IMPORTS_CHUNK_ROWS", args.chunk_rows.to_string()),
            // Warnings only, unless the caller's IMPORTS_LOG asks for more
            // (the processes' logs are kept in the work directory).
            (
                "IMPORTS_LOG",
                std::env::var("IMPORTS_LOG").unwrap_or_else(|_| "warn".into()),
            ),
            // Several workers on one host: no ops listeners to collide.
            ("IMPORTS_SERVER_OPS_ADDR", "off".into()),
            ("IMPORTS_GATEWAY_OPS_ADDR", "off".into()),
            ("IMPORTS_WORKER_OPS_ADDR", "off".into()),
        ];
        let env: Vec<(&str, String)> = env
            .into_iter()
            .chain(settings.iter().map(|(k, v)| (*k, v.to_string())))
            .collect();
        let command = |sub: &str| {
            let mut c = Command::new(&exe);
            c.arg(sub).envs(env.iter().map(|(k, v)| (*k, v.as_str())));
            c
        };
        reset_database(&args.database_url)?;
        for sub in ["migrate", "demo-org"] {
            let out = command(sub).output()?;
            if !out.status.success() {
                bail!("{sub} failed: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        for org in orgs {
            let out = command("demo-org")
                .args([
                    "--id",
                    &org.to_string(),
                    "--name",
                    &format!("Organization {org}"),
                ])
                .output()?;
            if !out.status.success() {
                bail!("demo-org failed: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        // Each process logs (stderr) to its own file in the work directory,
        // kept after the run (the last run's, per process).
        let log = |name: &str| -> anyhow::Result<Stdio> {
            Ok(std::fs::File::create(args.workdir.join(format!("{name}.log")))?.into())
        };
        let spawn = |sub: &str, name: &str| -> anyhow::Result<Child> {
            Ok(command(sub)
                .stdout(Stdio::null())
                .stderr(log(name)?)
                .spawn()?)
        };
        let server = spawn("serve", "serve")?;
        let server_pid = server.id();
        let mut children = Children(vec![server]);
        let mut worker_pids = Vec::new();
        for n in 0..args.workers.max(1) {
            let worker = spawn("work", &format!("work-{n}"))?;
            worker_pids.push(worker.id());
            children.0.push(worker);
        }
        children.0.push(spawn("gateway", "gateway")?);
        Ok(Self {
            port,
            gateway_port,
            secret,
            server_pid,
            worker_pids,
            _children: children,
        })
    }

    /// A super admin's token for this run's services.
    fn token(&self) -> anyhow::Result<String> {
        self.token_of("bench", true, None)
    }

    /// A token of user `sub`: a super admin, or a plain user of `org`.
    pub(crate) fn token_of(
        &self,
        sub: &str,
        super_admin: bool,
        org: Option<i64>,
    ) -> anyhow::Result<String> {
        let claims = passare_imports_app::identity::Claims {
            sub: sub.into(),
            name: format!("User {sub}"),
            email: format!("{sub}@passare.com"),
            super_admin,
            org,
            exp: chrono::Utc::now().timestamp() as u64 + 3600,
            iat: 0,
            ..Default::default()
        };
        Ok(passare_imports_app::identity::Auth::from_config(&Config {
            jwt_secret: self.secret.clone(),
            ..Config::default()
        })?
        .issue(&claims)?)
    }

    /// A super admin's client, once the server answers.
    pub(crate) async fn client(&self) -> anyhow::Result<client::Client> {
        self.client_with(&self.token()?).await
    }

    /// A client sending `token`, once the server answers.
    pub(crate) async fn client_with(&self, token: &str) -> anyhow::Result<client::Client> {
        let token = token.to_string();
        let url = format!("http://127.0.0.1:{}", self.port);
        for _ in 0..100 {
            if let Ok(c) = client::connect(&url, &token).await {
                return Ok(c);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the server did not start")
    }
}

/// What one benchmark run measured.
struct Figures {
    uploaded: Duration,
    analysis: Duration,
    analysis_server_ms: i64,
    end_to_end: Duration,
    /// From a chunk's commit to the WatchImport event that shows it, p50 and
    /// p95 over the import's chunks, in milliseconds.
    watch_latency: (f64, f64),
}

/// The watch latency of an import: for each chunk, from the end of its
/// write (`chunks.finished_at`) to the first event whose count of chunks
/// done includes it; p50 and p95 over the chunks, in milliseconds.
async fn watch_latency(
    database_url: &str,
    import_id: &str,
    arrivals: &[(i32, chrono::DateTime<chrono::Utc>)],
) -> anyhow::Result<(f64, f64)> {
    use passare_imports_store::sqlx;
    let db = passare_imports_store::Db::connect(database_url, 1).await?;
    let finished: Vec<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT finished_at FROM chunks WHERE import_id = $1::uuid AND finished_at IS NOT NULL
          ORDER BY finished_at",
    )
    .bind(import_id)
    .fetch_all(db.pool())
    .await?;
    db.close().await;
    let mut latencies: Vec<f64> = finished
        .iter()
        .enumerate()
        .filter_map(|(k, at)| {
            let (_, seen) = arrivals.iter().find(|(n, _)| *n as usize > k)?;
            Some((*seen - *at).num_microseconds()? as f64 / 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Ok((at(0.5), at(0.95)))
}

/// A draft import of the demo organization; returns its id.
async fn draft(api: &mut client::Client, note: &str) -> anyhow::Result<String> {
    draft_of(api, 1042, note).await
}

/// A draft import of organization `org`; returns its id.
pub(crate) async fn draft_of(
    api: &mut client::Client,
    org: i64,
    note: &str,
) -> anyhow::Result<String> {
    Ok(api
        .create_import(pb::CreateImportRequest {
            organization_id: org.to_string(),
            failure_policy: pb::FailurePolicy::ImportValidRows as i32,
            note: note.into(),
            request_id: String::new(),
        })
        .await
        .map_err(client::describe)?
        .into_inner()
        .import
        .context("no import")?
        .id)
}

/// Create, upload, analyse (timed on its own), start and follow to the end.
async fn journey(
    args: &BenchArgs,
    api: &mut client::Client,
    csv: &Path,
) -> anyhow::Result<Figures> {
    let t0 = Instant::now();
    let import_id = draft(api, "benchmark").await?;
    client::upload(api, &import_id, csv, "cases", None).await?;
    let uploaded = t0.elapsed();
    // The dry run, timed on its own: every row parsed and checked against
    // the organization's stored records, nothing written.
    let analysis_began = Instant::now();
    let report = client::analyze(api, &import_id).await?;
    let analysis = analysis_began.elapsed();
    if report.would_create as u64 != args.rows {
        bail!(
            "analysis says {} rows would be created, not {}",
            report.would_create,
            args.rows
        );
    }
    let t1 = Instant::now();
    api.start_import(pb::StartImportRequest {
        import_id: import_id.clone(),
        failure_policy: 0,
    })
    .await
    .map_err(client::describe)?;
    // When each count of chunks done reached this client.
    let mut arrivals: Vec<(i32, chrono::DateTime<chrono::Utc>)> = Vec::new();
    let done = client::watch_with(api, &import_id, None::<indicatif::ProgressBar>, |i| {
        let chunks = i.progress.as_ref().map_or(0, |p| p.chunks_done);
        arrivals.push((chunks, chrono::Utc::now()));
    })
    .await?;
    // Upload plus load; the analysis, a separate step a user may skip or
    // repeat, is reported on its own.
    let end_to_end = uploaded + t1.elapsed();
    let p = done.progress.unwrap_or_default();
    if p.rows_created as u64 != args.rows {
        bail!(
            "the import created {} rows, not {}",
            p.rows_created,
            args.rows
        );
    }
    let watch_latency = watch_latency(&args.database_url, &import_id, &arrivals).await?;
    Ok(Figures {
        uploaded,
        analysis,
        analysis_server_ms: report.duration_ms,
        end_to_end,
        watch_latency,
    })
}

impl Figures {
    fn json(&self, rows: u64, copy: Duration) -> serde_json::Value {
        let per_sec = |d: Duration| rows as f64 / d.as_secs_f64();
        serde_json::json!({
            "end_to_end_s": self.end_to_end.as_secs_f64(),
            "end_to_end_rows_s": per_sec(self.end_to_end),
            "upload_s": self.uploaded.as_secs_f64(),
            "start_to_completed_s": (self.end_to_end - self.uploaded).as_secs_f64(),
            "analysis_s": self.analysis.as_secs_f64(),
            "analysis_rows_s": per_sec(self.analysis),
            "analysis_server_ms": self.analysis_server_ms,
            "ratio_to_copy": self.end_to_end.as_secs_f64() / copy.as_secs_f64(),
            "watch_latency_p50_ms": self.watch_latency.0,
            "watch_latency_p95_ms": self.watch_latency.1,
        })
    }

    fn print(&self, rows: u64, copy: Duration, server_peak: Option<u64>, worker_peak: Option<u64>) {
        let ratio = self.end_to_end.as_secs_f64() / copy.as_secs_f64();
        let mib = |k: Option<u64>| {
            k.map_or("n/a".to_string(), |k| {
                format!("{:.1} MiB", k as f64 / 1024.0)
            })
        };
        let per_sec = |d: Duration| rows as f64 / d.as_secs_f64();
        println!("rows                     {rows}");
        println!(
            "end to end (service)     {:.2} s  ({:.0} rows/s)",
            self.end_to_end.as_secs_f64(),
            per_sec(self.end_to_end)
        );
        println!(
            "  upload                 {:.2} s",
            self.uploaded.as_secs_f64()
        );
        println!(
            "analysis (dry run)       {:.2} s  ({:.0} rows/s; server-side {} ms)",
            self.analysis.as_secs_f64(),
            per_sec(self.analysis),
            self.analysis_server_ms
        );
        println!(
            "  start → completed      {:.2} s",
            (self.end_to_end - self.uploaded).as_secs_f64()
        );
        println!(
            "psql \\copy baseline      {:.2} s  ({:.0} rows/s)",
            copy.as_secs_f64(),
            per_sec(copy)
        );
        println!("ratio end to end / copy  {ratio:.2}");
        println!(
            "watch latency            p50 {:.0} ms, p95 {:.0} ms  (chunk commit → WatchImport event)",
            self.watch_latency.0, self.watch_latency.1
        );
        println!("peak memory server       {}", mib(server_peak));
        println!("peak memory worker       {}", mib(worker_peak));
    }
}

pub(crate) fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        // The generated files mix ISO and US (M/D/YYYY) dates, as the service accepts.
        .env("PGDATESTYLE", "ISO, MDY")
        .output()
        .context("running psql (Debian package postgresql-client)")?;
    if !out.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn reset_database(url: &str) -> anyhow::Result<()> {
    let (server, name) = url
        .rsplit_once('/')
        .context("database URL has no database name")?;
    psql(
        &format!("{server}/postgres"),
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    )
}

/// Loads the file with `psql \copy` into an empty table shaped like `cases`.
fn copy_baseline(url: &str, csv: &std::path::Path) -> anyhow::Result<Duration> {
    psql(
        url,
        "DROP TABLE IF EXISTS cases_copy_baseline;
         CREATE TABLE cases_copy_baseline (
            organization_id bigint NOT NULL DEFAULT 1042, case_number text NOT NULL,
            deceased_first_name text NOT NULL, deceased_middle_name text, deceased_last_name text NOT NULL,
            suffix text, date_of_birth date, date_of_death date, case_type text, case_status text,
            disposition text, location_name text, director_email text, opened_on date,
            PRIMARY KEY (organization_id, case_number));
         SET datestyle = 'ISO, MDY';",
    )?;
    let t = Instant::now();
    psql(
        url,
        &format!(
            "\\copy cases_copy_baseline (case_number, deceased_first_name, deceased_middle_name, deceased_last_name, suffix, date_of_birth, date_of_death, case_type, case_status, disposition, location_name, director_email, opened_on) FROM '{}' WITH (FORMAT csv, HEADER true)",
            csv.display()
        ),
    )?;
    Ok(t.elapsed())
}
