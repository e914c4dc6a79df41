//! `passare-imports work` child processes of a test's service: started with
//! the test's configuration, stopped with SIGTERM (graceful) or SIGKILL
//! (a crash), and waited for. Nothing here reads the database or the broker.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::service::Config;
use passare_imports_storage::StorageKind;

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

/// Sends SIGTERM to a process.
fn terminate(pid: u32) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "kill -TERM {pid} failed: {status}");
    Ok(())
}

/// Waits for a child to exit, at most `within`; kills it past that.
fn wait_or_kill(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Worker processes of one test, each stopped and reaped when the test
/// ends (SIGKILLed if the test is dropped without finishing).
#[derive(Default)]
pub struct WorkerProcesses {
    children: Vec<Child>,
}

impl WorkerProcesses {
    /// Starts a `passare-imports work` process with `env`; returns its pid.
    pub fn spawn(&mut self, env: Vec<(String, String)>) -> anyhow::Result<u32> {
        self.spawn_command("work", env)
    }

    /// Starts `passare-imports <command>` (`work`, `gateway`, `serve`) with
    /// `env`; returns its pid.
    pub fn spawn_command(
        &mut self,
        command: &str,
        env: Vec<(String, String)>,
    ) -> anyhow::Result<u32> {
        let child = Command::new(binary()?)
            .arg(command)
            .envs(env)
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting a `passare-imports {command}` process"))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    fn take(&mut self, pid: u32) -> anyhow::Result<Child> {
        let index = self
            .children
            .iter()
            .position(|w| w.id() == pid)
            .context("no such worker process")?;
        Ok(self.children.remove(index))
    }

    /// Kills a worker process with SIGKILL (no chance to finish anything)
    /// and reaps it.
    pub fn kill(&mut self, pid: u32) -> anyhow::Result<()> {
        let mut child = self.take(pid)?;
        // Reaped even when the kill fails (it had exited already).
        let killed = child.kill();
        child.wait()?;
        killed?;
        Ok(())
    }

    /// Asks a worker process to stop, as an orchestrator would (SIGTERM).
    pub fn terminate(&self, pid: u32) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.children.iter().any(|w| w.id() == pid),
            "no such worker process"
        );
        terminate(pid)
    }

    /// Waits for a worker process to exit; kills it and fails past `within`.
    pub fn wait_exit(&mut self, pid: u32, within: Duration) -> anyhow::Result<ExitStatus> {
        let mut child = self.take(pid)?;
        wait_or_kill(&mut child, within)
            .with_context(|| format!("worker {pid} did not exit within {within:?}"))
    }

    /// Asks every process to stop (SIGTERM), then waits for each at most
    /// `within` and kills what is left.
    pub fn stop_all(&mut self, within: Duration) {
        for w in &self.children {
            let _ = terminate(w.id());
        }
        for w in &mut self.children {
            wait_or_kill(w, within);
        }
        self.children.clear();
    }
}

impl Drop for WorkerProcesses {
    fn drop(&mut self) {
        for w in &mut self.children {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// Environment of a worker process of the service `c` configures.
pub fn child_env(c: &Config) -> Vec<(String, String)> {
    let pairs = [
        ("IMPORTS_DATABASE_URL", c.database_url.clone()),
        (
            "IMPORTS_DATABASE_MAX_CONNECTIONS",
            (2 * c.worker_concurrency + 2).to_string(),
        ),
        ("IMPORTS_AMQP_URL", c.amqp_url.clone()),
        ("IMPORTS_QUEUE_PREFIX", c.queue_prefix.clone()),
        (
            "IMPORTS_QUEUE_EXPIRES_MS",
            c.queue_expires_ms.unwrap_or(120_000).to_string(),
        ),
        ("IMPORTS_STORAGE_DIR", c.storage_dir.display().to_string()),
        (
            "IMPORTS_STORAGE",
            match c.storage {
                StorageKind::Local => "local",
                StorageKind::S3 => "s3",
            }
            .to_string(),
        ),
        ("IMPORTS_S3_BUCKET", c.s3_bucket.clone()),
        ("IMPORTS_S3_PREFIX", c.s3_prefix.clone()),
        ("IMPORTS_S3_MAX_RETRIES", c.s3_max_retries.to_string()),
        (
            "IMPORTS_S3_RETRY_TIMEOUT_SECS",
            c.s3_retry_timeout_secs.to_string(),
        ),
        ("IMPORTS_JWT_SECRET", c.jwt_secret.clone()),
        ("IMPORTS_CHUNK_ROWS", c.chunk_rows.to_string()),
        (
            "IMPORTS_WORKER_CONCURRENCY",
            c.worker_concurrency.to_string(),
        ),
        (
            "IMPORTS_RETRY_MAX_ATTEMPTS",
            c.retry_max_attempts.to_string(),
        ),
        ("IMPORTS_RETRY_BASE_MS", c.retry_base_ms.to_string()),
        (
            "IMPORTS_RETRY_MAX_DELAY_MS",
            c.retry_max_delay_ms.to_string(),
        ),
        ("IMPORTS_CHUNK_TIMEOUT_MS", c.chunk_timeout_ms.to_string()),
        (
            "IMPORTS_ROLLBACK_BATCH_ROWS",
            c.rollback_batch_rows.to_string(),
        ),
        ("IMPORTS_WORKER_SWEEP_SECS", c.worker_sweep_secs.to_string()),
        (
            "IMPORTS_WORKER_HEARTBEAT_SECS",
            c.worker_heartbeat_secs.to_string(),
        ),
        (
            "IMPORTS_WORKER_HEARTBEAT_EXPIRY_SECS",
            c.worker_heartbeat_expiry_secs.to_string(),
        ),
        (
            "IMPORTS_WORKER_DRAIN_MAX_SECS",
            c.worker_drain_max_secs.to_string(),
        ),
        (
            "IMPORTS_ANALYSIS_MEMORY_KEYS",
            c.analysis_memory_keys.to_string(),
        ),
        (
            "IMPORTS_ANALYSIS_LEASE_SECS",
            c.analysis_lease_secs.to_string(),
        ),
        (
            "IMPORTS_LOG",
            std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
        ),
        // Many processes of many tests run at once: no ops listener unless a
        // test asks for one on an address of its own.
        ("IMPORTS_SERVER_OPS_ADDR", "off".into()),
        ("IMPORTS_GATEWAY_OPS_ADDR", "off".into()),
        ("IMPORTS_WORKER_OPS_ADDR", "off".into()),
    ];
    let optional = [
        ("IMPORTS_S3_ENDPOINT", &c.s3_endpoint),
        ("IMPORTS_S3_REGION", &c.s3_region),
        ("IMPORTS_S3_ACCESS_KEY_ID", &c.s3_access_key_id),
        ("IMPORTS_S3_SECRET_ACCESS_KEY", &c.s3_secret_access_key),
    ];
    let set = optional
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.clone()?)));
    pairs
        .into_iter()
        .chain(set)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}
