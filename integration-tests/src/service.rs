//! The one seam between the harness and the service crate: migrating,
//! building and serving the app (gRPC and grpc-web), in-process workers,
//! signing tokens and running the retention job. Tests and the other harness
//! modules call these, never the service crate itself, so that when the
//! service's crates move or are renamed only this file follows.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use passare_imports_app::App;
use passare_imports_app::identity::Auth;
use passare_imports_storage::open_store;
use passare_imports_store::Db;
use passare_imports_store::load::ChunkOutcome;
use passare_imports_worker::Worker;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use passare_imports_app::Config;
pub use passare_imports_app::identity::Claims;

/// Creates the database if missing and applies every migration.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    Ok(passare_imports_store::migrate(database_url).await?)
}

/// Builds an app of `config` and serves plain gRPC on a free local port
/// until `shutdown`; returns the address.
pub async fn serve_grpc(
    config: &Config,
    shutdown: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let app = App::build(config.clone(), shutdown.clone()).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(passare_imports_grpc::serve(app, listener, shutdown.clone()));
    Ok(addr)
}

/// Builds an app of `config` and serves it through the grpc-web gateway on a
/// free local port until `shutdown`; returns the address.
pub async fn serve_grpc_web(
    config: &Config,
    shutdown: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let app = App::build(config.clone(), shutdown.clone()).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(passare_imports_gateway::serve(
        app,
        listener,
        shutdown.clone(),
    ));
    Ok(addr)
}

/// A worker running inside the test process until its own token (a child of
/// the test's shutdown) is cancelled.
pub struct InProcessWorker {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcessWorker {
    /// Builds a worker of `config` and runs it until `stop` (or a parent of
    /// it) is cancelled.
    pub async fn start(config: &Config, stop: CancellationToken) -> anyhow::Result<Self> {
        let worker = Worker::build(config).await?;
        let task = tokio::spawn(worker.run(stop.clone()));
        Ok(Self { stop, task })
    }

    /// Stops the worker as SIGTERM would (the chunk in hand is finished) and
    /// waits for it, at most 30 s.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .context("the worker did not stop within 30 s")???;
        Ok(())
    }
}

/// Processes one chunk as a worker would on a delivery of its message (a
/// redelivery, when the chunk was loaded already).
pub async fn process_chunk(config: &Config, chunk_id: i64) -> anyhow::Result<ChunkOutcome> {
    let worker = Worker::build(config).await?;
    let outcome = worker.process_chunk(chunk_id).await?;
    worker.db.close().await;
    Ok(outcome)
}

/// A bearer token with `claims`, signed with `secret` (HS256) for the
/// issuer and audience every test service expects.
pub fn sign(secret: &str, claims: &Claims) -> anyhow::Result<String> {
    let config = Config {
        jwt_secret: secret.to_string(),
        ..Config::default()
    };
    Ok(Auth::from_config(&config)?.issue(claims)?)
}

/// Runs the orphan sweep once, as a worker does every retention round,
/// deleting what no record points at and nobody has written for `min_age`.
pub async fn sweep_orphans(
    config: &Config,
    min_age: std::time::Duration,
) -> anyhow::Result<passare_imports_app::retention::Swept> {
    let db = Db::connect(&config.database_url, 2).await?;
    let store = open_store(&config.storage()).await?;
    let swept = passare_imports_app::retention::sweep_orphans(&db, &*store, min_age).await;
    db.close().await;
    Ok(swept?)
}

/// Runs the retention job once, as a worker does every sweep, with
/// `retention_days`; returns how many imports it purged.
pub async fn purge_due(config: &Config, retention_days: u64) -> anyhow::Result<usize> {
    let db = Db::connect(&config.database_url, 2).await?;
    let store = open_store(&config.storage()).await?;
    let purged = passare_imports_app::retention::purge_due(&db, &store, retention_days).await;
    db.close().await;
    Ok(purged?)
}

/// Analyses a draft inside the test process exactly as a worker's analysis
/// job does (the report stored with the import, on behalf of the user who
/// created the draft), for tests that start
/// imports while no worker runs: StartImport then queues at once.
pub async fn analyse_now(config: &Config, import_id: &str) -> anyhow::Result<()> {
    analyse_in_process(config, import_id, 0).await.map(drop)
}

/// [`analyse_now`] on a pool of two connections of which `held` are taken
/// (by the test) while it runs; returns the report stored.
pub async fn analyse_in_process(
    config: &Config,
    import_id: &str,
    held: usize,
) -> anyhow::Result<passare_imports_domain::analysis::AnalysisReport> {
    use passare_imports_app::analysis::{Analyser, AnalysisSettings, analyze};
    let db = Db::connect(&config.database_url, 2).await?;
    let store = open_store(&config.storage()).await?;
    let id = uuid::Uuid::parse_str(import_id)?;
    let import = passare_imports_store::imports::find(&mut *db.conn().await?, id)
        .await?
        .with_context(|| format!("no import {import_id}"))?;
    let ctx = Analyser {
        db: &db,
        files: &*store,
        settings: AnalysisSettings::of(config),
    };
    // On behalf of the user who created the draft, as if they had asked.
    let by = passare_imports_store::Requester {
        id: import.requested_by_id.clone(),
        name: import.requested_by_name.clone(),
        email: import.requested_by_email.clone(),
    };
    let mut taken = Vec::with_capacity(held);
    for _ in 0..held {
        taken.push(db.conn().await?);
    }
    let analysed = analyze(ctx, &import, &by, None).await;
    drop(taken);
    db.close().await;
    analysed.map_err(|e| anyhow::anyhow!("analysing {import_id}: {e}"))
}
