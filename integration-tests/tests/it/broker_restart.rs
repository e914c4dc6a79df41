//! A RabbitMQ restart mid-import: the broker application is stopped while a
//! large import runs on a worker process and an in-process worker, an import
//! of another organization is started while it is down, and the broker comes
//! back. The server still queues the import (the workers' sweep announces
//! it), the workers reconnect on their own, the server's publisher reconnects
//! on its next publish, and every import completes with exactly its rows.
//!
//! Before it, 1,000 organizations (`RESTART_TENANTS`) have each imported: with
//! the broker's queues independent of the organizations, how long imports
//! take to flow again after the restart does not grow with them (printed).
//!
//! This test stops the machine's RabbitMQ for a few seconds, which disturbs
//! every other test using it: `scripts/test.sh` runs it alone, after the
//! others. It needs `rabbitmqctl` and the right to run it (root here).

use std::process::Command;
use std::time::{Duration, Instant};

use passare_imports_integration_tests::subscriber::Subscriber;
use passare_imports_integration_tests::tenants;
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

const BIG_ORG: i64 = 1042;
const BIG_ROWS: u64 = 60_000;
const BIG_SEED: u64 = 41;
const OTHER_ORG: i64 = 2001;
const OTHER_ROWS: u64 = 10_000;
const OTHER_SEED: u64 = 42;
const LATE_ORG: i64 = 2003;
const LATE_ROWS: u64 = 3_000;
const LATE_SEED: u64 = 43;
const CHUNK_ROWS: u64 = 1_000;
/// The first of the organizations that imported before the restart.
const TENANTS_FROM: i64 = 100_000;

/// `rabbitmqctl` with a bounded wait.
async fn rabbitmqctl(args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("rabbitmqctl")
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| anyhow::anyhow!("rabbitmqctl {args:?} did not return within 120 s"))?
    .map_err(|e| {
        anyhow::anyhow!(
            "this test needs rabbitmqctl (RabbitMQ's CLI) on the PATH and the right to run it: {e}"
        )
    })?;
    anyhow::ensure!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The broker application, stopped by this test; started again when the
/// guard drops, whatever happened in between (a failed assertion included).
struct StoppedBroker {
    stopped: bool,
}

impl StoppedBroker {
    async fn stop() -> anyhow::Result<Self> {
        // The guard exists before the command runs: a stop_app that fails
        // half-way is still undone.
        let guard = Self { stopped: true };
        rabbitmqctl(&["stop_app"]).await?;
        Ok(guard)
    }

    async fn start(mut self) -> anyhow::Result<()> {
        rabbitmqctl(&["start_app"]).await?;
        rabbitmqctl(&["--timeout", "120", "await_startup"]).await?;
        self.stopped = false;
        Ok(())
    }
}

impl Drop for StoppedBroker {
    fn drop(&mut self) {
        if !self.stopped {
            return;
        }
        eprintln!("restarting the RabbitMQ application the test stopped");
        for args in [
            &["start_app"][..],
            &["--timeout", "120", "await_startup"][..],
        ] {
            match Command::new("rabbitmqctl").args(args).status() {
                Ok(s) if s.success() => {}
                other => eprintln!("rabbitmqctl {args:?}: {other:?}"),
            }
        }
    }
}

/// Checks a completed import of a generated file into an organization that
/// had nothing before: exact counts, and every record with the file's values.
async fn assert_loaded(
    env: &TestEnv,
    done: &pb::Import,
    org: i64,
    rows: u64,
    seed: u64,
) -> anyhow::Result<()> {
    assert_eq!(done.state, pb::ImportState::Completed as i32, "{done:?}");
    let p = done.progress.unwrap_or_default();
    let chunks = rows.div_ceil(CHUNK_ROWS) as i32;
    let rows = rows as i64;
    assert_eq!(
        (
            p.rows_processed,
            p.rows_created,
            p.rows_updated,
            p.rows_unchanged,
            p.rows_failed,
            p.chunks_done,
            p.chunks_total
        ),
        (rows, rows, 0, 0, 0, chunks, chunks),
        "organization {org}"
    );
    let stored = stored_cases(&env.db, org).await?;
    assert_eq!(stored.len(), rows as usize, "organization {org}");
    let id = uuid::Uuid::parse_str(&done.id)?;
    for row in generated_rows(rows as u64, seed) {
        let s = stored
            .get(&row[0])
            .ok_or_else(|| anyhow::anyhow!("organization {org}: case {} is missing", row[0]))?;
        assert_eq!(s.values, normalized(&row), "organization {org}");
        assert_eq!(s.source_import_id, Some(id), "organization {org}");
    }
    Ok(())
}

/// Waits (up to two minutes) until `sql` counts at least `at_least`; returns
/// the moment it did.
async fn wait_for_count(
    env: &TestEnv,
    sql: &str,
    at_least: i64,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = count(&env.db, sql).await?;
        if n >= at_least {
            return Ok(chrono::Utc::now());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{n} (not {at_least}) after two minutes: {sql}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_import_is_survived_by_server_and_workers() -> anyhow::Result<()> {
    // Fail early and clearly when the broker cannot be controlled.
    rabbitmqctl(&["--timeout", "60", "await_startup"]).await?;

    let mut env = TestEnv::start(Options {
        chunk_rows: CHUNK_ROWS,
        worker_concurrency: 1,
        in_process_workers: 1,
        // The import started while the broker is down has no messages: the
        // sweep announces it.
        sweep_secs: 2,
        ..Options::default()
    })
    .await?;
    env.organization(OTHER_ORG).await?;
    env.organization(LATE_ORG).await?;
    env.spawn_worker_process()?;
    let tenants: i64 = std::env::var("RESTART_TENANTS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1_000);
    let imported = Instant::now();
    let orgs = TENANTS_FROM..TENANTS_FROM + tenants;
    tenants::start_many(&env, orgs.clone(), 4).await?;
    wait_for_count(
        &env,
        "SELECT count(*) FROM imports WHERE state = 'completed'",
        tenants,
    )
    .await?;
    assert_eq!(
        tenants::rolodex_rows(&env, orgs).await?,
        (3 * tenants, tenants)
    );
    println!(
        "{tenants} organizations imported before the restart, in {:.1?}",
        imported.elapsed()
    );
    let mut client = env.client().await?;
    // Another service listening to the Cases events of every organization.
    let mut subscriber = Subscriber::bind(&env, "*.cases.*").await?;
    let big = env
        .generated_draft(
            &mut client,
            BIG_ORG,
            pb::FailurePolicy::StopOnFirstError,
            BIG_ROWS,
            BIG_SEED,
        )
        .await?;
    let other = env
        .generated_draft(
            &mut client,
            OTHER_ORG,
            pb::FailurePolicy::StopOnFirstError,
            OTHER_ROWS,
            OTHER_SEED,
        )
        .await?;
    files::analyze(&mut client, &other).await?;
    let late = env
        .generated_draft(
            &mut client,
            LATE_ORG,
            pb::FailurePolicy::ImportValidRows,
            LATE_ROWS,
            LATE_SEED,
        )
        .await?;
    files::analyze(&mut client, &late).await?;

    start(&mut client, &big).await?;
    let running = wait_until(&mut client, &big, Duration::from_secs(120), |i| {
        chunks_done(i) >= 5
    })
    .await?;
    let began = Instant::now();
    let broker = StoppedBroker::stop().await?;
    let stopped_after = began.elapsed();
    let at_stop = get(&mut client, &big).await?;
    println!(
        "broker stopped (stop_app took {stopped_after:.1?}) with {} of {} chunks done ({} when asked)",
        chunks_done(&at_stop),
        BIG_ROWS.div_ceil(CHUNK_ROWS),
        chunks_done(&running)
    );
    anyhow::ensure!(
        !passare_imports_cli::client::is_terminal(at_stop.state),
        "the import ended before the broker stopped; make it larger"
    );

    // Starting an import while the broker is down still queues it.
    let asked = Instant::now();
    let queued = start(&mut client, &other).await?;
    let start_took = asked.elapsed();
    println!("StartImport with the broker down answered in {start_took:.1?}");
    assert_eq!(queued.state, pb::ImportState::Queued as i32, "{queued:?}");
    assert!(start_took < Duration::from_secs(20), "{start_took:?}");
    assert_eq!(
        count(
            &env.db,
            &format!(
                "SELECT count(*) FROM chunks WHERE import_id = '{other}' AND state = 'queued'"
            )
        )
        .await?,
        OTHER_ROWS.div_ceil(CHUNK_ROWS) as i64
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = get(&mut client, &big).await?;
    let restarting = Instant::now();
    broker.start().await?;
    let back_at = chrono::Utc::now();
    let down_for = began.elapsed();
    let restart_took = restarting.elapsed();
    // Imports flow again when a worker takes a chunk after the broker is
    // back (on a notice, or on its sweep every two seconds).
    let flowing = wait_for_count(
        &env,
        &format!(
            "SELECT count(*) FROM chunks WHERE started_at > '{}'::timestamptz",
            back_at.to_rfc3339()
        ),
        1,
    )
    .await?;
    println!(
        "broker back after {down_for:.1?} (start_app + await_startup took {restart_took:.1?}, \
         {} organizations had imported); {} chunks done meanwhile; imports flowing again {} ms after it was up",
        tenants + 3,
        chunks_done(&during) - chunks_done(&at_stop),
        (flowing - back_at).num_milliseconds()
    );

    // The server's publisher reconnects on its next publish: the import
    // started now has its notice published on a new connection, which the
    // broker lists under the server's name.
    start(&mut client, &late).await?;
    let server = format!(
        "passare-imports server {}",
        passare_imports_app::app::process_name()
    );
    let connections = rabbitmqctl(&["list_connections", "client_properties"]).await?;
    assert!(
        connections.contains(&server),
        "the server's publisher is connected again after the restart: {connections}"
    );

    let big_done = wait_terminal(&mut client, &big).await?;
    let other_done = wait_terminal(&mut client, &other).await?;
    let late_done = wait_terminal(&mut client, &late).await?;
    println!(
        "all imports ended {:.1?} after the broker stopped",
        began.elapsed()
    );
    assert_loaded(&env, &big_done, BIG_ORG, BIG_ROWS, BIG_SEED).await?;
    assert_loaded(&env, &other_done, OTHER_ORG, OTHER_ROWS, OTHER_SEED).await?;
    assert_loaded(&env, &late_done, LATE_ORG, LATE_ROWS, LATE_SEED).await?;
    assert_eq!(
        count(&env.db, "SELECT count(*) FROM cases").await?,
        (BIG_ROWS + OTHER_ROWS + LATE_ROWS) as i64
    );
    assert_eq!(before_images(&env.db).await?, 0);
    let intervals = chunk_intervals(&env.db).await?;
    assert_eq!(
        intervals.len() as u64,
        tenants as u64
            + BIG_ROWS.div_ceil(CHUNK_ROWS)
            + OTHER_ROWS.div_ceil(CHUNK_ROWS)
            + LATE_ROWS.div_ceil(CHUNK_ROWS)
    );
    assert_serial_per_org(&intervals)?;
    // One event per record created, across the restart: delivered at least
    // once, exactly once by event id.
    subscriber.reconnect(&env).await?;
    let cases = (BIG_ROWS + OTHER_ROWS + LATE_ROWS) as usize;
    let got = subscriber
        .collect(cases, Duration::from_secs(60), Duration::from_secs(2))
        .await?;
    let ids: std::collections::BTreeSet<&str> =
        got.iter().map(|d| d.event.event_id.as_str()).collect();
    let records: std::collections::BTreeSet<(&str, i64)> = got
        .iter()
        .map(|d| (d.event.import_id.as_str(), d.event.row))
        .collect();
    println!(
        "record events: {} delivered for {cases} records ({} delivered twice)",
        got.len(),
        got.len() - ids.len()
    );
    assert_eq!((ids.len(), records.len()), (cases, cases));
    // Both workers (the process and the one in this process) reconnected
    // and loaded chunks after the broker came back.
    let mut after: Vec<&str> = intervals
        .iter()
        .filter(|i| i.started > back_at)
        .map(|i| i.worker.as_str())
        .collect();
    after.sort_unstable();
    after.dedup();
    assert_eq!(
        after.len(),
        2,
        "workers that loaded chunks after the restart: {after:?}"
    );
    env.finish().await
}
