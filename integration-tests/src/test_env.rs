//! One test's world: its own PostgreSQL database, queue prefix (queues expire
//! when unused, so a crashed test leaves nothing that matters) and storage
//! directory, with the real server and in-process workers started on them,
//! and the worker processes it owns (started and stopped by `processes`).
//! Clients, data and database moments live in their own modules; this one
//! only builds and tears down the world.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::Once;
use std::time::Duration;

use anyhow::Context;
use passare_imports_storage::{StorageKind, create_bucket_unsigned};
use passare_imports_store::Db;
use passare_imports_store::organizations::{OrgSetup, ensure_demo};
use tokio_util::sync::CancellationToken;

use passare_imports_cli::generate;

use crate::processes::{WorkerProcesses, child_env};
use crate::service::{self, Config, InProcessWorker};

/// The PostgreSQL server the tests use (trust auth on this machine).
pub fn postgres_server() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The variable naming the S3-compatible server the S3 tests use (moto,
/// which `scripts/test.sh` starts and sets it for).
pub const S3_ENDPOINT_VAR: &str = "PASSARE_TEST_S3_ENDPOINT";

/// The S3-compatible test server (`http://127.0.0.1:PORT`).
pub fn s3_endpoint() -> anyhow::Result<String> {
    std::env::var(S3_ENDPOINT_VAR).with_context(|| {
        format!("{S3_ENDPOINT_VAR} must name the S3-compatible test server (scripts/test.sh starts moto and sets it)")
    })
}

/// The address of the S3-compatible test server.
pub fn s3_server_addr() -> anyhow::Result<SocketAddr> {
    let endpoint = s3_endpoint()?;
    let host = endpoint
        .strip_prefix("http://")
        .map(|h| h.trim_end_matches('/'))
        .with_context(|| format!("{S3_ENDPOINT_VAR}={endpoint} is not an http:// URL"))?;
    host.parse()
        .with_context(|| format!("{S3_ENDPOINT_VAR}={endpoint} is not http://IP:PORT"))
}

/// Logs only when asked: `TEST_LOG=debug cargo nextest run ...`.
fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// One test's world.
pub struct TestEnv {
    pub config: Config,
    pub db: Db,
    pub grpc_addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub(crate) database: String,
    _storage: tempfile::TempDir,
    pub(crate) sources: tempfile::TempDir,
    workers: WorkerProcesses,
    /// Whether [`TestEnv::finish`] dropped the database already.
    finished: bool,
}

/// How a test wants its processes.
#[derive(Clone, Copy)]
pub struct Options {
    /// Workers running inside the test process.
    pub in_process_workers: usize,
    pub chunk_rows: u64,
    pub worker_concurrency: usize,
    /// Attempts at a chunk failing for a transient reason (IMPORTS_RETRY_MAX_ATTEMPTS).
    pub retry_max_attempts: u32,
    /// First retry wait (IMPORTS_RETRY_BASE_MS); doubles up to 2 s in tests.
    pub retry_base_ms: u64,
    /// Longest a chunk write statement may take (IMPORTS_CHUNK_TIMEOUT_MS).
    pub chunk_timeout_ms: u64,
    /// How often workers re-announce waiting organizations (IMPORTS_WORKER_SWEEP_SECS).
    pub sweep_secs: u64,
    /// Longest a worker drains one organization (IMPORTS_WORKER_DRAIN_MAX_SECS).
    pub drain_max_secs: u64,
    /// Changes the configuration after the harness has filled it in and
    /// before it is validated (limits and other settings a test needs).
    pub configure: Option<fn(&mut Config)>,
    /// Stores files in a bucket of the test's own on the S3-compatible test
    /// server ([`s3_endpoint`]) instead of its storage directory.
    pub s3: bool,
    /// With `s3`, reaches the test server through this address (a
    /// [`TcpProxy`](crate::proxy::TcpProxy) in front of it) instead.
    pub s3_via: Option<SocketAddr>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            in_process_workers: 1,
            chunk_rows: 5_000,
            worker_concurrency: 2,
            retry_max_attempts: 10,
            retry_base_ms: 100,
            chunk_timeout_ms: 60_000,
            sweep_secs: 15,
            drain_max_secs: 300,
            configure: None,
            s3: false,
            s3_via: None,
        }
    }
}

/// A name no other test run uses: the start time (so that `scripts/test.sh`
/// can drop databases of crashed runs by age) and a random part.
fn unique_name() -> String {
    format!(
        "{}_{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..12)
            .unwrap_or_default()
    )
}

/// The configuration of a test's service: its own database, queue prefix
/// and storage directory, and the settings of `options`.
fn config_of(options: &Options, unique: &str, storage: &std::path::Path) -> anyhow::Result<Config> {
    let mut config = Config {
        database_url: format!("{}/pi_test_{unique}", postgres_server()),
        database_max_connections: 10,
        amqp_url: amqp_url(),
        queue_prefix: format!("test.{unique}"),
        queue_expires_ms: Some(120_000),
        storage_dir: storage.to_path_buf(),
        jwt_secret: format!("test-secret-of-{unique}-0123456789abcdef"),
        chunk_rows: options.chunk_rows,
        worker_concurrency: options.worker_concurrency,
        watch_poll_ms: 500,
        retry_max_attempts: options.retry_max_attempts,
        retry_base_ms: options.retry_base_ms,
        retry_max_delay_ms: 2_000.max(options.retry_base_ms),
        chunk_timeout_ms: options.chunk_timeout_ms,
        worker_sweep_secs: options.sweep_secs,
        worker_drain_max_secs: options.drain_max_secs,
        ..Config::default()
    };
    if options.s3 {
        let endpoint = match options.s3_via {
            Some(addr) => format!("http://{addr}"),
            None => s3_endpoint()?,
        };
        config.storage = StorageKind::S3;
        config.s3_bucket = format!("pi-test-{}", unique.replace('_', "-"));
        config.s3_endpoint = Some(endpoint);
        config.s3_region = Some("us-east-1".into());
        config.s3_access_key_id = Some("test".into());
        config.s3_secret_access_key = Some("test".into());
        config.s3_max_retries = 5;
        config.s3_retry_timeout_secs = 20;
    }
    if let Some(configure) = options.configure {
        configure(&mut config);
    }
    config.validate()?;
    Ok(config)
}

impl TestEnv {
    /// Creates the test's database (migrated, with organization 1042 set up
    /// as the demo organization), starts a server and `in_process_workers`
    /// workers on it.
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        init_tracing();
        let unique = unique_name();
        let storage = tempfile::tempdir()?;
        let config = config_of(&options, &unique, storage.path())?;
        if let Some(endpoint) = &config.s3_endpoint {
            create_bucket_unsigned(endpoint, &config.s3_bucket).await?;
        }
        service::migrate(&config.database_url)
            .await
            .context("PostgreSQL must run on 127.0.0.1:5432 (see scripts/services.sh)")?;
        let db = Db::connect(&config.database_url, 4).await?;
        ensure_demo(
            &mut *db.conn().await?,
            1042,
            "Riverside Funeral Home",
            generate::DEMO_SETUP,
        )
        .await?;

        let shutdown = CancellationToken::new();
        let grpc_addr = service::serve_grpc(&config, &shutdown).await?;
        for _ in 0..options.in_process_workers {
            // Dropping the handle leaves the worker running until the test's
            // shutdown.
            drop(InProcessWorker::start(&config, shutdown.child_token()).await?);
        }
        Ok(Self {
            config,
            db,
            grpc_addr,
            shutdown,
            database: format!("pi_test_{unique}"),
            _storage: storage,
            sources: tempfile::tempdir()?,
            workers: WorkerProcesses::default(),
            finished: false,
        })
    }

    /// Starts another worker inside the test process; it stops with the
    /// test or when [`InProcessWorker::stop`] is called (dropping the handle
    /// leaves it running).
    pub async fn start_worker(&self) -> anyhow::Result<InProcessWorker> {
        InProcessWorker::start(&self.config, self.shutdown.child_token()).await
    }

    /// Starts a worker inside the test process with a configuration changed
    /// by `configure` (a shorter sweep, say).
    pub async fn start_worker_with(
        &self,
        configure: impl FnOnce(&mut Config),
    ) -> anyhow::Result<InProcessWorker> {
        let mut config = self.config.clone();
        configure(&mut config);
        InProcessWorker::start(&config, self.shutdown.child_token()).await
    }

    /// Creates an organization with exactly the setup given.
    pub async fn organization_with(&self, id: i64, setup: OrgSetup<'_>) -> anyhow::Result<()> {
        ensure_demo(
            &mut *self.db.conn().await?,
            id,
            &format!("Organization {id}"),
            setup,
        )
        .await?;
        Ok(())
    }

    /// Creates an organization with the demo setup (locations, staff, GL and
    /// bank accounts).
    pub async fn organization(&self, id: i64) -> anyhow::Result<()> {
        self.organization_with(id, generate::DEMO_SETUP).await
    }

    /// Analyses a draft in the test process, as a worker would, so that
    /// StartImport queues it at once while no worker runs.
    pub async fn analyse_now(&self, import_id: &str) -> anyhow::Result<()> {
        crate::service::analyse_now(&self.config, import_id).await
    }

    /// [`TestEnv::analyse_now`] on a pool of two connections of which
    /// `held` are busy while it runs; returns the report.
    pub async fn analyse_in_process(
        &self,
        import_id: &str,
        held: usize,
    ) -> anyhow::Result<passare_imports_domain::analysis::AnalysisReport> {
        crate::service::analyse_in_process(&self.config, import_id, held).await
    }

    /// Environment of a worker process of this test's service.
    pub fn child_env(&self) -> Vec<(String, String)> {
        child_env(&self.config)
    }

    /// Starts a `passare-imports work` process of this test's service;
    /// returns its pid.
    pub fn spawn_worker_process(&mut self) -> anyhow::Result<u32> {
        let env = self.child_env();
        self.workers.spawn(env)
    }

    /// Starts a `passare-imports work` process with `extra` variables on
    /// top of this test's environment (a storage directory of its own, say);
    /// returns its pid.
    pub fn spawn_worker_process_with(
        &mut self,
        extra: Vec<(String, String)>,
    ) -> anyhow::Result<u32> {
        let mut env = self.child_env();
        env.extend(extra);
        self.workers.spawn(env)
    }

    /// Kills a worker process with SIGKILL (no chance to finish anything)
    /// and reaps it.
    pub fn kill_worker_process(&mut self, pid: u32) -> anyhow::Result<()> {
        self.workers.kill(pid)
    }

    /// Starts a `passare-imports gateway` process of this test's service
    /// on `addr` and waits until it accepts connections; returns its pid.
    /// [`Self::kill_worker_process`] kills it like any process of the test.
    pub async fn spawn_gateway_process(&mut self, addr: SocketAddr) -> anyhow::Result<u32> {
        let env = vec![("IMPORTS_GATEWAY_ADDR".into(), addr.to_string())];
        self.spawn_listening("gateway", env, addr).await
    }

    /// Starts `passare-imports <command>` of this test's service with
    /// `extra` variables on top of its environment, and waits until `addr`
    /// accepts connections; returns its pid.
    pub async fn spawn_listening(
        &mut self,
        command: &str,
        extra: Vec<(String, String)>,
        addr: SocketAddr,
    ) -> anyhow::Result<u32> {
        let mut env = self.child_env();
        env.extend(extra);
        let pid = self.workers.spawn_command(command, env)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the {command} process did not listen on {addr} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(pid)
    }

    /// Asks a worker process to stop, as an orchestrator would (SIGTERM).
    pub fn terminate_worker_process(&self, pid: u32) -> anyhow::Result<()> {
        self.workers.terminate(pid)
    }

    /// Waits for a worker process to exit; kills it and fails past `within`.
    pub fn wait_worker_exit(&mut self, pid: u32, within: Duration) -> anyhow::Result<ExitStatus> {
        self.workers.wait_exit(pid, within)
    }

    /// The name of this test's database.
    pub fn database_name(&self) -> &str {
        &self.database
    }

    /// Stops in-process tasks and worker processes and drops the database.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.workers.stop_all(Duration::from_secs(15));
        self.db.close().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop_database(&self.database).await;
        self.finished = true;
        Ok(())
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Worker processes are killed when `workers` drops.
        self.shutdown.cancel();
        if self.finished {
            return;
        }
        // A test that failed (an error returned or a panic) before `finish`
        // still drops its database: on a thread of its own, since this may
        // run inside the test's runtime while it unwinds.
        let name = self.database.clone();
        let dropped = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(drop_database(&name));
            }
        });
        let _ = dropped.join();
    }
}

/// A connection pool to the server's `postgres` database, for what a test
/// does outside its own database (dropping it, cutting its sessions).
pub(crate) async fn admin_db() -> anyhow::Result<Db> {
    Ok(Db::connect(&format!("{}/postgres", postgres_server()), 2).await?)
}

async fn drop_database(name: &str) {
    let Ok(db) = admin_db().await else {
        return;
    };
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    let _ = passare_imports_store::sqlx::query(passare_imports_store::sqlx::AssertSqlSafe(sql))
        .execute(db.pool())
        .await;
    db.close().await;
}
