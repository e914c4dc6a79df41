//! `passare-imports`: every process of the service (serve, work, gateway),
//! its operations (migrate, demo-org, token, stop, pause, resume, pauses,
//! failures) and developer tools (generate, import with progress bars, bench).

use passare_imports_cli::allocator::{self, Tuning};
use passare_imports_cli::{bench, client, generate, load, ops};

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use passare_imports_app::config::Process;
use passare_imports_app::identity::{Auth, Claims};
use passare_imports_app::observability::Ops;
use passare_imports_app::observability::api::ApiProbe;
use passare_imports_app::{App, Config};
use passare_imports_worker::Worker;
use passare_imports_worker::telemetry::WorkerProbe;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "passare-imports",
    version,
    about = "Passare Imports: moves client data into Passare"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the database if missing and apply pending migrations.
    Migrate,
    /// Run the gRPC server (IMPORTS_GRPC_ADDR).
    Serve,
    /// Run a chunk worker.
    Work,
    /// Run the grpc-web gateway for browsers (IMPORTS_GATEWAY_ADDR).
    Gateway,
    /// Create an organization with locations, staff users, GL and bank accounts, for demos and tests.
    DemoOrg {
        #[arg(long, default_value_t = 1042)]
        id: i64,
        #[arg(long, default_value = "Riverside Funeral Home")]
        name: String,
    },
    /// Print a signed bearer token for grpcurl and scripts.
    Token {
        #[arg(long, default_value = "dev-1")]
        user_id: String,
        #[arg(long, default_value = "Developer")]
        name: String,
        #[arg(long, default_value = "developer@passare.com")]
        email: String,
        /// Issue a token without the super-admin claim.
        #[arg(long)]
        not_super_admin: bool,
        /// Add the developer claim (sees backtraces of failed chunks).
        #[arg(long)]
        developer: bool,
        /// The organization of a user who is neither super admin nor developer.
        #[arg(long)]
        org: Option<i64>,
        #[arg(long, default_value_t = 12)]
        ttl_hours: u64,
    },
    /// Write a synthetic Cases CSV (deterministic for a seed).
    Generate {
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the import types as the README lists them (Markdown).
    Catalog,
    /// Run the retention job once: delete the uploaded files and row-level
    /// results of imports that ended more than IMPORTS_RETENTION_DAYS ago.
    Purge,
    /// Import a file through the API and follow its progress.
    Import(client::ImportArgs),
    /// Benchmark an end-to-end import against PostgreSQL's own COPY.
    Bench(bench::BenchArgs),
    /// Fairness under load: an import's duration and a super admin's
    /// GetImport p99, idle and while a plain user floods watches and downloads.
    Load(load::LoadArgs),
    /// Stop, pause and resume imports; list pauses and chunk failures.
    #[command(flatten)]
    Op(ops::Op),
}

/// Cancels on Ctrl-C or SIGTERM.
/// What a serving command needs: the app, a listener on `addr`, and the
/// signal that stops it.
async fn serving(
    config: &Config,
    addr: std::net::SocketAddr,
) -> anyhow::Result<(App, tokio::net::TcpListener, CancellationToken)> {
    let shutdown = shutdown_on_signal();
    let app = App::build(config.clone(), shutdown.clone()).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    Ok((app, listener, shutdown))
}

fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        cancel.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}

/// Runs a client command, which needs no server configuration; hands any
/// other command back.
async fn client_command(command: Command) -> anyhow::Result<Option<Command>> {
    match command {
        Command::Generate { rows, seed, out } => generate::write_cases(&out, rows, seed)?,
        Command::Catalog => print!("{}", passare_imports_domain::catalog::markdown()),
        Command::Import(args) => client::run(args).await?,
        Command::Bench(args) => bench::run(args).await?,
        Command::Load(args) => load::run(args).await?,
        Command::Op(op) => ops::run(op).await?,
        other => return Ok(Some(other)),
    }
    Ok(None)
}

fn main() -> anyhow::Result<()> {
    let tuning = allocator::tune();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(tuning))
}

async fn run(tuning: Tuning) -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Some(command) = client_command(cli.command).await? else {
        return Ok(());
    };
    // One TLS crypto provider for every client of the process (the broker,
    // the object store, the OTLP exporter), chosen once: ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = Config::load()?;
    let process = match command {
        Command::Serve => Some(Process::Server),
        Command::Gateway => Some(Process::Gateway),
        Command::Work => Some(Process::Worker),
        _ => None,
    };
    // Kept to the end: dropping it flushes the last spans.
    let _tracing = passare_imports_app::observability::traces::init(&config, process)?;
    tracing::debug!(?config, "configuration");
    tracing::debug!(?tuning, "memory allocator");
    match command {
        Command::Migrate => {
            passare_imports_store::migrate(&config.database_url).await?;
            println!("migrations applied");
        }
        Command::Serve => {
            let ops = Ops::prepare(&config, Process::Server)?;
            let (app, listener, shutdown) = serving(&config, config.grpc_addr).await?;
            if let Some(ops) = ops {
                ops.serve(ApiProbe::new(app.clone(), shutdown.clone()))
                    .await?;
            }
            passare_imports_grpc::serve(app, listener, shutdown).await?;
        }
        Command::Gateway => {
            let ops = Ops::prepare(&config, Process::Gateway)?;
            let (app, listener, shutdown) = serving(&config, config.gateway_addr).await?;
            if let Some(ops) = ops {
                ops.serve(ApiProbe::new(app.clone(), shutdown.clone()))
                    .await?;
            }
            passare_imports_gateway::serve(app, listener, shutdown).await?;
        }
        Command::Work => {
            let ops = Ops::prepare(&config, Process::Worker)?;
            let shutdown = shutdown_on_signal();
            let worker = Worker::build(&config).await?;
            if let Some(ops) = ops {
                ops.serve(WorkerProbe::new(worker.clone(), shutdown.clone()))
                    .await?;
            }
            worker.run(shutdown).await?;
        }
        Command::Purge => purge(&config).await?,
        Command::DemoOrg { id, name } => {
            let db = passare_imports_store::Db::connect(&config.database_url, 2).await?;
            passare_imports_store::organizations::ensure_demo(
                &mut *db.conn().await?,
                id,
                &name,
                generate::DEMO_SETUP,
            )
            .await?;
            println!("organization {id} ({name}) is ready");
        }
        Command::Token {
            user_id,
            name,
            email,
            not_super_admin,
            developer,
            org,
            ttl_hours,
        } => {
            let now = chrono::Utc::now().timestamp() as u64;
            let token = Auth::from_config(&config)?.issue(&Claims {
                sub: user_id,
                name,
                email,
                super_admin: !not_super_admin,
                developer,
                org,
                exp: now + ttl_hours * 3600,
                iat: now,
                ..Default::default()
            })?;
            println!("{token}");
        }
        Command::Generate { .. }
        | Command::Catalog
        | Command::Import(_)
        | Command::Bench(_)
        | Command::Load(_)
        | Command::Op(_) => {}
    }
    Ok(())
}

/// Runs the retention job and the orphan sweep once, as workers do every round.
async fn purge(config: &Config) -> anyhow::Result<()> {
    let db = passare_imports_store::Db::connect(&config.database_url, 2).await?;
    let files = passare_imports_storage::open_store(&config.storage()).await?;
    let purged =
        passare_imports_app::retention::purge_due(&db, &files, config.retention_days).await?;
    println!(
        "{purged} imports purged (retention {} days)",
        config.retention_days
    );
    let min_age = std::time::Duration::from_secs(config.orphan_min_age_secs);
    let swept = passare_imports_app::retention::sweep_orphans(&db, files.as_ref(), min_age).await?;
    println!(
        "{} orphaned objects and {} partial writes deleted ({} bytes; untouched for {}s or more)",
        swept.orphans, swept.partial, swept.bytes, config.orphan_min_age_secs
    );
    Ok(())
}
