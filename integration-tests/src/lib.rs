//! Test harness: each test gets its own PostgreSQL database, its own queue
//! prefix (queues expire when unused, so a crashed test leaves nothing that
//! matters) and its own storage directory, and starts the real server, workers
//! and gateway against the real PostgreSQL and RabbitMQ on this machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use anyhow::Context;
use passare_imports_app::identity::{Auth, Claims};
use passare_imports_app::{App, Config};
use passare_imports_cli::client::{self, Client};
use passare_imports_proto::v1 as pb;
use passare_imports_store::Db;
use passare_imports_worker::Worker;
use tokio_util::sync::CancellationToken;

pub mod files;
pub use passare_imports_cli::generate;

/// The PostgreSQL server the tests use (trust auth on this machine).
pub fn postgres_server() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
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

/// A user for tokens.
pub struct User<'a> {
    pub id: &'a str,
    pub super_admin: bool,
    pub developer: bool,
    /// The organization of a user who is neither super admin nor developer.
    pub org: Option<i64>,
}

pub const ADMIN: User<'static> = User {
    id: "admin-1",
    super_admin: true,
    developer: false,
    org: None,
};

/// A Passare developer (the `developer` claim, without super admin).
pub const DEVELOPER: User<'static> = User {
    id: "dev-1",
    super_admin: false,
    developer: true,
    org: None,
};

/// A user of organization 1042 who is neither super admin nor developer.
pub const MEMBER: User<'static> = User {
    id: "member-1",
    super_admin: false,
    developer: false,
    org: Some(1042),
};

/// One test's world.
pub struct TestEnv {
    pub config: Config,
    pub db: Db,
    pub grpc_addr: SocketAddr,
    pub shutdown: CancellationToken,
    database: String,
    _storage: tempfile::TempDir,
    sources: tempfile::TempDir,
    workers: Vec<Child>,
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
        }
    }
}

impl TestEnv {
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        init_tracing();
        let unique = format!(
            "{}_{}",
            chrono::Utc::now().format("%Y%m%d%H%M%S"),
            uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .get(..12)
                .unwrap_or_default()
        );
        let database = format!("pi_test_{unique}");
        let storage = tempfile::tempdir()?;
        let mut config = Config {
            database_url: format!("{}/{database}", postgres_server()),
            database_max_connections: 6,
            amqp_url: amqp_url(),
            queue_prefix: format!("test.{unique}"),
            queue_expires_ms: Some(120_000),
            storage_dir: storage.path().to_path_buf(),
            jwt_secret: format!("test-secret-{unique}"),
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
        if let Some(configure) = options.configure {
            configure(&mut config);
        }
        config.validate()?;
        passare_imports_store::migrate(&config.database_url)
            .await
            .context("PostgreSQL must run on 127.0.0.1:5432 (see scripts/services.sh)")?;
        let db = Db::connect(&config.database_url, 4).await?;
        passare_imports_store::organizations::ensure_demo(
            &mut *db.conn().await?,
            1042,
            "Riverside Funeral Home",
            generate::DEMO_SETUP,
        )
        .await?;

        let shutdown = CancellationToken::new();
        let app = App::build(config.clone(), shutdown.clone()).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let grpc_addr = listener.local_addr()?;
        tokio::spawn(passare_imports_grpc::serve(app, listener, shutdown.clone()));
        for _ in 0..options.in_process_workers {
            let worker = Worker::build(&config).await?;
            tokio::spawn(worker.run(shutdown.clone()));
        }
        Ok(Self {
            config,
            db,
            grpc_addr,
            shutdown,
            database,
            _storage: storage,
            sources: tempfile::tempdir()?,
            workers: Vec::new(),
        })
    }

    /// Creates an organization with exactly the setup given.
    pub async fn organization_with(
        &self,
        id: i64,
        setup: passare_imports_store::organizations::OrgSetup<'_>,
    ) -> anyhow::Result<()> {
        passare_imports_store::organizations::ensure_demo(
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
        passare_imports_store::organizations::ensure_demo(
            &mut *self.db.conn().await?,
            id,
            &format!("Organization {id}"),
            generate::DEMO_SETUP,
        )
        .await?;
        Ok(())
    }

    pub fn token(&self, user: &User<'_>) -> String {
        self.token_with(user, chrono::Utc::now().timestamp() as u64 + 3600)
    }

    pub fn token_with(&self, user: &User<'_>, exp: u64) -> String {
        Auth::new(&self.config.jwt_secret)
            .issue(&Claims {
                sub: user.id.into(),
                name: format!("User {}", user.id),
                email: format!("{}@passare.com", user.id),
                super_admin: user.super_admin,
                developer: user.developer,
                org: user.org,
                exp,
                ..Claims::default()
            })
            .unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// A super admin's client.
    pub async fn client(&self) -> anyhow::Result<Client> {
        client::connect(&self.url(), &self.token(&ADMIN)).await
    }

    /// A client of a second server replica of this test's service (its own
    /// database pool and change listener).
    pub async fn second_replica(&self) -> anyhow::Result<Client> {
        let app = App::build(self.config.clone(), self.shutdown.clone()).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(passare_imports_grpc::serve(
            app,
            listener,
            self.shutdown.clone(),
        ));
        client::connect(&format!("http://{addr}"), &self.token(&ADMIN)).await
    }

    /// Environment of a child process of this test's service.
    pub fn child_env(&self) -> Vec<(String, String)> {
        let c = &self.config;
        vec![
            ("IMPORTS_DATABASE_URL".into(), c.database_url.clone()),
            (
                "IMPORTS_DATABASE_MAX_CONNECTIONS".into(),
                (2 * c.worker_concurrency + 2).to_string(),
            ),
            ("IMPORTS_AMQP_URL".into(), c.amqp_url.clone()),
            ("IMPORTS_QUEUE_PREFIX".into(), c.queue_prefix.clone()),
            (
                "IMPORTS_QUEUE_EXPIRES_MS".into(),
                c.queue_expires_ms.unwrap_or(120_000).to_string(),
            ),
            (
                "IMPORTS_STORAGE_DIR".into(),
                c.storage_dir.display().to_string(),
            ),
            ("IMPORTS_JWT_SECRET".into(), c.jwt_secret.clone()),
            ("IMPORTS_CHUNK_ROWS".into(), c.chunk_rows.to_string()),
            (
                "IMPORTS_WORKER_CONCURRENCY".into(),
                c.worker_concurrency.to_string(),
            ),
            (
                "IMPORTS_RETRY_MAX_ATTEMPTS".into(),
                c.retry_max_attempts.to_string(),
            ),
            ("IMPORTS_RETRY_BASE_MS".into(), c.retry_base_ms.to_string()),
            (
                "IMPORTS_RETRY_MAX_DELAY_MS".into(),
                c.retry_max_delay_ms.to_string(),
            ),
            (
                "IMPORTS_CHUNK_TIMEOUT_MS".into(),
                c.chunk_timeout_ms.to_string(),
            ),
            (
                "IMPORTS_WORKER_SWEEP_SECS".into(),
                c.worker_sweep_secs.to_string(),
            ),
            (
                "IMPORTS_WORKER_DRAIN_MAX_SECS".into(),
                c.worker_drain_max_secs.to_string(),
            ),
            (
                "IMPORTS_LOG".into(),
                std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
            ),
        ]
    }

    /// Starts a `passare-imports work` process of this test's service.
    pub fn spawn_worker_process(&mut self) -> anyhow::Result<u32> {
        let child = Command::new(binary()?)
            .arg("work")
            .envs(self.child_env())
            .stdout(Stdio::null())
            .spawn()
            .context("starting a worker process")?;
        let pid = child.id();
        self.workers.push(child);
        Ok(pid)
    }

    /// Kills a worker process with SIGKILL (no chance to finish anything)
    /// and reaps it.
    pub fn kill_worker_process(&mut self, pid: u32) -> anyhow::Result<()> {
        let index = self
            .workers
            .iter()
            .position(|w| w.id() == pid)
            .context("no such worker process")?;
        let mut child = self.workers.remove(index);
        // Reaped even when the kill fails (it had exited already).
        let killed = child.kill();
        child.wait()?;
        killed?;
        Ok(())
    }

    /// The name of this test's database.
    pub fn database_name(&self) -> &str {
        &self.database
    }

    /// Cuts every connection to this test's database but the caller's
    /// (`pg_terminate_backend`); returns how many were cut.
    pub async fn cut_database_connections(&self) -> anyhow::Result<i64> {
        let admin = Db::connect(&format!("{}/postgres", postgres_server()), 1).await?;
        let n: i64 = passare_imports_store::sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.database)
        .fetch_one(admin.pool())
        .await?;
        admin.close().await;
        Ok(n)
    }

    /// Waits for a worker process started by [`spawn_worker_process`] to exit.
    pub fn wait_worker_exit(
        &mut self,
        pid: u32,
        within: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let index = self
            .workers
            .iter()
            .position(|w| w.id() == pid)
            .context("no such worker process")?;
        let mut child = self.workers.remove(index);
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                anyhow::bail!("worker {pid} did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A draft import of `org` with one generated Cases file of `rows` rows
    /// (deterministic for `seed`); returns the import id.
    pub async fn generated_draft(
        &self,
        client: &mut Client,
        org: i64,
        policy: pb::FailurePolicy,
        rows: u64,
        seed: u64,
    ) -> anyhow::Result<String> {
        let name = format!("cases-{rows}-{seed}.csv");
        let (id, _) = self
            .draft_with_file(client, org, policy, &name, &cases_csv(rows, seed)?)
            .await?;
        Ok(id)
    }

    /// Creates an import, uploads `csv` as a Cases file; returns the import id.
    pub async fn draft_with_file(
        &self,
        client: &mut Client,
        org: i64,
        policy: pb::FailurePolicy,
        name: &str,
        csv: &[u8],
    ) -> anyhow::Result<(String, pb::ImportFile)> {
        let import_id = files::create_draft(client, org, policy).await?;
        let dir = self.sources.path().join(uuid::Uuid::new_v4().to_string());
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(name);
        std::fs::write(&path, csv)?;
        let file = client::upload(client, &import_id, &path, "cases", None).await?;
        Ok((import_id, file))
    }

    /// Stops in-process tasks and worker processes and drops the database.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        for w in &mut self.workers {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(w.id().to_string())
                .status();
        }
        for w in &mut self.workers {
            wait_or_kill(w, Duration::from_secs(15));
        }
        self.workers.clear();
        self.db.close().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop_database(&self.database).await;
        Ok(())
    }
}

fn wait_or_kill(child: &mut Child, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for w in &mut self.workers {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

async fn drop_database(name: &str) {
    let Ok(db) = Db::connect(&format!("{}/postgres", postgres_server()), 2).await else {
        return;
    };
    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    let _ = passare_imports_store::sqlx::query(passare_imports_store::sqlx::AssertSqlSafe(sql))
        .execute(db.pool())
        .await;
    db.close().await;
}

/// The `passare-imports` binary: `PASSARE_IMPORTS_BIN`, or the one built next
/// to this test (`cargo build -p passare-imports-cli` builds it).
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("PASSARE_IMPORTS_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> → target/<profile>/passare-imports
    let candidate = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("passare-imports"))
        .context("no target directory")?;
    anyhow::ensure!(
        candidate.exists(),
        "{} is missing: run `cargo build -p passare-imports-cli` first (scripts/test.sh does)",
        candidate.display()
    );
    Ok(candidate)
}

/// A Cases CSV of `rows` generated rows (deterministic for `seed`).
pub fn cases_csv(rows: u64, seed: u64) -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cases.csv");
    generate::write_cases(&path, rows, seed)?;
    Ok(std::fs::read(path)?)
}

/// Follows an import with WatchImport, returning every event.
pub async fn watch_all(
    client: &mut Client,
    import_id: &str,
) -> anyhow::Result<Vec<pb::WatchImportResponse>> {
    use tokio_stream::StreamExt;
    let mut stream = client
        .watch_import(pb::WatchImportRequest {
            import_id: import_id.into(),
        })
        .await?
        .into_inner();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while let Some(e) = tokio::time::timeout_at(deadline, stream.next()).await? {
        events.push(e?);
    }
    Ok(events)
}

pub async fn start(client: &mut Client, import_id: &str) -> Result<pb::Import, tonic::Status> {
    client
        .start_import(pb::StartImportRequest {
            import_id: import_id.into(),
            failure_policy: 0,
        })
        .await?
        .into_inner()
        .import
        .ok_or_else(|| tonic::Status::internal("no import"))
}

/// StopImport with a reason.
pub async fn stop(
    client: &mut Client,
    import_id: &str,
    reason: &str,
) -> Result<pb::Import, tonic::Status> {
    client
        .stop_import(pb::StopImportRequest {
            import_id: import_id.into(),
            reason: reason.into(),
        })
        .await?
        .into_inner()
        .import
        .ok_or_else(|| tonic::Status::internal("no import"))
}

/// PauseImports of one organization (`Some`) or of all (`None`).
pub async fn pause(
    client: &mut Client,
    org: Option<i64>,
    reason: &str,
) -> Result<pb::Pause, tonic::Status> {
    client
        .pause_imports(pb::PauseImportsRequest {
            organization_id: org.map(|o| o.to_string()).unwrap_or_default(),
            reason: reason.into(),
        })
        .await?
        .into_inner()
        .pause
        .ok_or_else(|| tonic::Status::internal("no pause"))
}

/// ResumeImports of one organization (`Some`) or of all (`None`).
pub async fn resume(
    client: &mut Client,
    org: Option<i64>,
) -> Result<pb::ResumeImportsResponse, tonic::Status> {
    Ok(client
        .resume_imports(pb::ResumeImportsRequest {
            organization_id: org.map(|o| o.to_string()).unwrap_or_default(),
        })
        .await?
        .into_inner())
}

/// Every failed chunk attempt of an import, newest first (all pages).
pub async fn chunk_failures(
    client: &mut Client,
    import_id: &str,
) -> anyhow::Result<Vec<pb::ChunkFailure>> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_chunk_failures(pb::ListChunkFailuresRequest {
                import_id: import_id.into(),
                organization_id: String::new(),
                page_size: 100,
                page_token,
            })
            .await?
            .into_inner();
        out.extend(page.chunk_failures);
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

/// Waits until `check` holds for the import (polling GetImport), for at most
/// `within`.
pub async fn wait_until(
    client: &mut Client,
    import_id: &str,
    within: Duration,
    check: impl Fn(&pb::Import) -> bool,
) -> anyhow::Result<pb::Import> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let import = get(client, import_id).await?;
        if check(&import) {
            return Ok(import);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "import {import_id} did not reach the awaited condition within {within:?}; it is {:?} with {:?}",
            pb::ImportState::try_from(import.state),
            import.progress
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Chunks of the import done so far (from its progress).
pub fn chunks_done(import: &pb::Import) -> i32 {
    import.progress.as_ref().map_or(0, |p| p.chunks_done)
}

pub async fn get(client: &mut Client, import_id: &str) -> anyhow::Result<pb::Import> {
    client
        .get_import(pb::GetImportRequest {
            import_id: import_id.into(),
        })
        .await?
        .into_inner()
        .import
        .context("no import")
}

/// Waits until the import reaches a terminal state.
pub async fn wait_terminal(client: &mut Client, import_id: &str) -> anyhow::Result<pb::Import> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let import = get(client, import_id).await?;
        if client::is_terminal(import.state) {
            return Ok(import);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "import {import_id} did not finish"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A chunk's recorded time interval.
#[derive(Debug, Clone)]
pub struct Interval {
    pub import_id: uuid::Uuid,
    pub organization_id: i64,
    pub queue_seq: i64,
    pub started: chrono::DateTime<chrono::Utc>,
    pub finished: chrono::DateTime<chrono::Utc>,
    pub worker: String,
}

/// Every done chunk's (start, finish) in the test database, by start time.
pub async fn chunk_intervals(db: &Db) -> anyhow::Result<Vec<Interval>> {
    use passare_imports_store::sqlx::Row;
    let rows = passare_imports_store::sqlx::query(
        "SELECT c.import_id, c.organization_id, i.queue_seq, c.started_at, c.finished_at, c.worker
           FROM chunks c JOIN imports i ON i.id = c.import_id
          WHERE c.state = 'done' ORDER BY c.started_at",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Interval {
                import_id: r.try_get("import_id")?,
                organization_id: r.try_get("organization_id")?,
                queue_seq: r.try_get("queue_seq")?,
                started: r.try_get("started_at")?,
                finished: r.try_get("finished_at")?,
                worker: r
                    .try_get::<Option<String>, _>("worker")?
                    .unwrap_or_default(),
            })
        })
        .collect()
}

pub async fn count(db: &Db, sql: &str) -> anyhow::Result<i64> {
    Ok(
        passare_imports_store::sqlx::query_scalar(passare_imports_store::sqlx::AssertSqlSafe(
            sql.to_string(),
        ))
        .fetch_one(db.pool())
        .await?,
    )
}

/// Fails when two chunks of one organization overlap in time, or when an
/// organization's imports did not run in the order they were queued.
pub fn assert_serial_per_org(intervals: &[Interval]) -> anyhow::Result<()> {
    let mut orgs: Vec<i64> = intervals.iter().map(|i| i.organization_id).collect();
    orgs.sort_unstable();
    orgs.dedup();
    for org in orgs {
        let mine: Vec<&Interval> = intervals
            .iter()
            .filter(|i| i.organization_id == org)
            .collect();
        for pair in mine.windows(2) {
            anyhow::ensure!(
                pair[0].finished <= pair[1].started,
                "organization {org}: a chunk started at {} before the previous one finished at {}",
                pair[1].started,
                pair[0].finished
            );
            anyhow::ensure!(
                pair[0].queue_seq <= pair[1].queue_seq,
                "organization {org}: import queued {} ran before import queued {}",
                pair[1].queue_seq,
                pair[0].queue_seq
            );
        }
    }
    Ok(())
}

/// Whether some chunk of `a` and some chunk of `b` ran at the same time.
pub fn orgs_overlap(intervals: &[Interval], a: i64, b: i64) -> bool {
    intervals
        .iter()
        .filter(|x| x.organization_id == a)
        .any(|x| {
            intervals
                .iter()
                .filter(|y| y.organization_id == b)
                .any(|y| x.started < y.finished && y.started < x.finished)
        })
}

/// One Cases record as tests compare it: the 13 columns of
/// [`generate::CASES_HEADER`] in that order, dates as `YYYY-MM-DD`, a missing
/// value as the empty string.
pub type CaseValues = [String; 13];

/// A date of a generated file (`YYYY-MM-DD` or `M/D/YYYY`) as `YYYY-MM-DD`.
pub fn iso_date(text: &str) -> String {
    let parts: Vec<&str> = text.split('/').collect();
    match parts.as_slice() {
        [m, d, y] => format!(
            "{y}-{:02}-{:02}",
            m.parse::<u32>().unwrap_or_default(),
            d.parse::<u32>().unwrap_or_default()
        ),
        _ => text.to_string(),
    }
}

/// A row as written to a file, with its dates as stored.
pub fn normalized(row: &CaseValues) -> CaseValues {
    let mut out = row.clone();
    for i in [5, 6, 12] {
        out[i] = iso_date(&out[i]);
    }
    out
}

/// The rows [`cases_csv`]`(rows, seed)` holds, in file order, as written
/// (dates not normalized; see [`normalized`]).
pub fn generated_rows(rows: u64, seed: u64) -> Vec<CaseValues> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (1..=rows)
        .map(|i| generate::case_row(&mut rng, i))
        .collect()
}

/// A Cases CSV of the given rows (whose values hold no delimiter or quote).
pub fn cases_csv_of(rows: &[CaseValues]) -> Vec<u8> {
    let mut out = generate::CASES_HEADER.join(",");
    out.push('\n');
    for r in rows {
        out.push_str(&r.join(","));
        out.push('\n');
    }
    out.into_bytes()
}

/// A stored case: its values and the import that last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCase {
    pub values: CaseValues,
    pub source_import_id: Option<uuid::Uuid>,
}

/// Every case of an organization, by case number, with the location and
/// director it refers to by name and e-mail.
pub async fn stored_cases(
    db: &Db,
    organization_id: i64,
) -> anyhow::Result<std::collections::BTreeMap<String, StoredCase>> {
    use passare_imports_store::sqlx::Row;
    let rows = passare_imports_store::sqlx::query(
        "SELECT c.case_number, c.deceased_first_name, COALESCE(c.deceased_middle_name, '') AS middle,
                c.deceased_last_name, COALESCE(c.suffix, '') AS suffix,
                COALESCE(to_char(c.date_of_birth, 'YYYY-MM-DD'), '') AS dob,
                COALESCE(to_char(c.date_of_death, 'YYYY-MM-DD'), '') AS dod,
                COALESCE(c.case_type, '') AS case_type, COALESCE(c.case_status, '') AS case_status,
                COALESCE(c.disposition, '') AS disposition, COALESCE(l.name, '') AS location,
                COALESCE(s.email, '') AS director, COALESCE(to_char(c.opened_on, 'YYYY-MM-DD'), '') AS opened,
                c.source_import_id
           FROM cases c
           LEFT JOIN locations l ON l.id = c.location_id
           LEFT JOIN staff_users s ON s.id = c.director_user_id
          WHERE c.organization_id = $1",
    )
    .bind(organization_id)
    .fetch_all(db.pool())
    .await?;
    let mut out = std::collections::BTreeMap::new();
    for r in rows {
        let mut values: CaseValues = Default::default();
        for (i, v) in values.iter_mut().enumerate() {
            *v = r.try_get::<String, _>(i)?;
        }
        let key = values[0].clone();
        let stored = StoredCase {
            values,
            source_import_id: r.try_get("source_import_id")?,
        };
        anyhow::ensure!(
            out.insert(key.clone(), stored).is_none(),
            "case {key} is stored twice"
        );
    }
    Ok(out)
}

/// A fingerprint of an organization's cases, every column included
/// (provenance and timestamps too): equal fingerprints, equal records.
pub async fn cases_fingerprint(env: &TestEnv, org: i64) -> anyhow::Result<String> {
    Ok(passare_imports_store::sqlx::query_scalar(
        "SELECT COALESCE(md5(string_agg(t::text, '|' ORDER BY case_number)), 'none')
           FROM cases t WHERE organization_id = $1",
    )
    .bind(org)
    .fetch_one(env.db.pool())
    .await?)
}

/// A result file as `DownloadResults` streamed it.
#[derive(Debug, Default)]
pub struct Download {
    /// From the first message.
    pub file_name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub messages: usize,
    /// File names or content types sent after the first message (there
    /// should be none).
    pub later_names: Vec<(String, String)>,
    /// The largest chunk one message carried.
    pub largest_chunk: usize,
}

/// Streams a result file to its end (at most 60 s).
pub async fn download(
    client: &mut Client,
    import_id: &str,
    file_id: &str,
    kind: pb::ResultKind,
) -> Result<Download, tonic::Status> {
    use tokio_stream::StreamExt;
    let mut stream = client
        .download_results(pb::DownloadResultsRequest {
            import_id: import_id.into(),
            file_id: file_id.into(),
            kind: kind as i32,
        })
        .await?
        .into_inner();
    let mut out = Download::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Some(message) = tokio::time::timeout_at(deadline, stream.next())
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("the download did not end within 60 s"))?
    {
        let message = message?;
        if out.messages == 0 {
            out.file_name = message.file_name;
            out.content_type = message.content_type;
        } else if !message.file_name.is_empty() || !message.content_type.is_empty() {
            out.later_names
                .push((message.file_name, message.content_type));
        }
        out.largest_chunk = out.largest_chunk.max(message.chunk.len());
        out.bytes.extend(message.chunk);
        out.messages += 1;
    }
    Ok(out)
}

/// UpdateRows of one row: (column, value) cells.
pub async fn update_row(
    client: &mut Client,
    import_id: &str,
    file_id: &str,
    row: i64,
    cells: &[(&str, &str)],
) -> Result<pb::UpdateRowsResponse, tonic::Status> {
    Ok(client
        .update_rows(pb::UpdateRowsRequest {
            import_id: import_id.into(),
            file_id: file_id.into(),
            rows: vec![pb::RowEdit {
                row,
                cells: cells
                    .iter()
                    .map(|(c, v)| (c.to_string(), v.to_string()))
                    .collect(),
            }],
        })
        .await?
        .into_inner())
}
