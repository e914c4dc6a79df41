//! The queue monitor and the speed of imports: with two organizations and a
//! paused one, GetQueueMonitor shows the queued imports in order, the
//! waiting chunks and then the chunk a worker holds; a SIGKILLed worker
//! process leaves the live workers once its heartbeat expires, its drain
//! shows as stalled, and another worker resumes the import; during a
//! 100k-row import GetImport carries rows per second and an estimated end.

use std::time::{Duration, Instant};

use anyhow::Context;
use passare_imports_cli::client::Client;
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

const ORG: i64 = 1042;
const OTHER: i64 = 2001;
const PAUSED: i64 = 2002;

async fn monitor(client: &mut Client) -> anyhow::Result<pb::GetQueueMonitorResponse> {
    Ok(client
        .get_queue_monitor(pb::GetQueueMonitorRequest::default())
        .await?
        .into_inner())
}

fn queue_of(m: &pb::GetQueueMonitorResponse, org: i64) -> Option<&pb::OrganizationQueue> {
    m.organizations
        .iter()
        .find(|o| o.organization_id == org.to_string())
}

/// A queued import of `rows` generated rows (analysed in the test process,
/// so StartImport queues it while no worker runs).
async fn queued(
    env: &TestEnv,
    client: &mut Client,
    org: i64,
    rows: u64,
    seed: u64,
) -> anyhow::Result<String> {
    let id = env
        .generated_draft(client, org, pb::FailurePolicy::ImportValidRows, rows, seed)
        .await?;
    env.analyse_now(&id).await?;
    let started = start(client, &id).await?;
    anyhow::ensure!(
        matches!(
            state(&started),
            pb::ImportState::Queued | pb::ImportState::Paused
        ),
        "{started:?}"
    );
    Ok(id)
}

/// The import and sequence of a chunk.
async fn chunk_of(env: &TestEnv, chunk_id: i64) -> anyhow::Result<(uuid::Uuid, i32)> {
    let mut conn = env.db.conn().await?;
    Ok(
        passare_imports_store::sqlx::query_as("SELECT import_id, seq FROM chunks WHERE id = $1")
            .bind(chunk_id)
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// Runs `passare-imports <args>` against the test's server as a super admin.
fn cli(env: &TestEnv, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(binary()?)
        .args(args)
        .args(["--server", &env.url(), "--token", &env.token(&ADMIN)])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_shows_queues_in_order_and_the_chunk_in_hand() -> anyhow::Result<()> {
    let mut env = TestEnv::start(Options {
        chunk_rows: 1_000,
        worker_concurrency: 1,
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    env.organization(OTHER).await?;
    env.organization(PAUSED).await?;
    let mut client = env.client().await?;
    pause(&mut client, Some(PAUSED), "maintenance").await?;

    let first = queued(&env, &mut client, ORG, 20_000, 1).await?;
    let second = queued(&env, &mut client, ORG, 2_000, 2).await?;
    let other = queued(&env, &mut client, OTHER, 3_000, 3).await?;
    let held = queued(&env, &mut client, PAUSED, 1_000, 4).await?;

    // Before any worker: everything waits, in start order.
    let m = monitor(&mut client).await?;
    let q = queue_of(&m, ORG).context("organization 1042 is not shown")?;
    assert_eq!(q.queued_import_ids, vec![first.clone(), second.clone()]);
    assert_eq!(q.waiting_chunks, 22);
    assert!(q.running_chunk.is_none(), "{q:?}");
    assert!(q.oldest_waiting_time.is_some());
    let o = queue_of(&m, OTHER).context("organization 2001 is not shown")?;
    assert_eq!(
        (o.queued_import_ids.clone(), o.waiting_chunks),
        (vec![other.clone()], 3)
    );
    let p = queue_of(&m, PAUSED).context("the paused organization is not shown")?;
    assert!(p.paused && p.waiting_chunks == 1 && p.queued_import_ids == vec![held.clone()]);
    let totals = m.totals.unwrap_or_default();
    assert_eq!((totals.queued_imports, totals.waiting_chunks), (4, 26));
    assert_eq!(totals.live_workers, 0);

    // The CLI's table (stdout is a pipe: plain lines).
    let table = cli(&env, &["queues"])?;
    let row = |org: i64| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{org} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        row(ORG).contains(" 22 ") && row(ORG).contains(&first[..8]),
        "{table}"
    );
    assert!(row(PAUSED).contains("paused"), "{table}");
    assert!(table.contains("queued 4 · waiting chunks 26"), "{table}");
    assert_eq!(cli(&env, &["workers"])?.trim(), "no live worker");

    // Only staff see it.
    let mut member = env.client_as(&MEMBER).await?;
    let denied = member
        .get_queue_monitor(pb::GetQueueMonitorRequest::default())
        .await
        .expect_err("a plain user must not see the monitor");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    // A worker: the chunk it holds for 1042 is one of the first import's.
    let pid = env.spawn_worker_process()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (q, workers) = loop {
        let m = monitor(&mut client).await?;
        if let Some(q) = queue_of(&m, ORG)
            && q.running_chunk.as_ref().is_some_and(|c| c.chunk_id > 0)
        {
            break (q.clone(), m.workers);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no chunk of 1042 shown in hand: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let held_chunk = q.running_chunk.clone().unwrap_or_default();
    let (import_of_chunk, _) = chunk_of(&env, held_chunk.chunk_id).await?;
    assert_eq!(
        import_of_chunk.to_string(),
        first,
        "the first import loads first"
    );
    assert_eq!(q.running_import_id, first);
    assert!(!held_chunk.stalled);
    let worker = workers
        .iter()
        .find(|w| w.pid == pid as i32)
        .context("the worker process is not among the live workers")?;
    assert_eq!(held_chunk.worker, worker.id);
    assert_eq!(worker.slots, 1);
    let listed = cli(&env, &["workers"])?;
    assert!(listed.contains(&worker.id), "{listed}");

    for id in [&first, &second, &other] {
        let done = wait_terminal(&mut client, id).await?;
        assert_eq!(state(&done), pb::ImportState::Completed, "{done:?}");
    }
    let m = monitor(&mut client).await?;
    assert!(
        queue_of(&m, ORG).is_none() && queue_of(&m, OTHER).is_none(),
        "{m:?}"
    );
    let p = queue_of(&m, PAUSED).context("the paused organization is not shown")?;
    assert_eq!((p.waiting_chunks, p.paused), (1, true));
    let loaded: i64 = m.throughput.iter().map(|t| t.rows).sum();
    assert_eq!(
        loaded, 25_000,
        "rows of the last minutes: {:?}",
        m.throughput
    );
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_leaves_the_live_workers_and_its_stalled_work_resumes() -> anyhow::Result<()>
{
    let mut env = TestEnv::start(Options {
        chunk_rows: 1_000,
        worker_concurrency: 1,
        in_process_workers: 0,
        sweep_secs: 2,
        configure: Some(|c| {
            c.worker_heartbeat_secs = 1;
            c.worker_heartbeat_expiry_secs = 3;
        }),
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let id = queued(&env, &mut client, ORG, 30_000, 7).await?;
    let pid = env.spawn_worker_process()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let name = loop {
        let m = monitor(&mut client).await?;
        if let Some(c) = queue_of(&m, ORG).and_then(|q| q.running_chunk.clone())
            && c.chunk_id > 0
            && chunks_done(&get(&mut client, &id).await?) >= 2
        {
            break c.worker;
        }
        anyhow::ensure!(Instant::now() < deadline, "the worker never held a chunk");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    env.kill_worker_process(pid)?;
    let killed_at = Instant::now();

    // Gone from the live workers once its heartbeat expires; its drain stalled.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let workers = client
            .list_workers(pb::ListWorkersRequest {})
            .await?
            .into_inner()
            .workers;
        if workers.iter().all(|w| w.id != name) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the killed worker is still listed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "killed worker left the live workers {:.1} s after SIGKILL (expiry 3 s)",
        killed_at.elapsed().as_secs_f64()
    );
    let m = monitor(&mut client).await?;
    let q = queue_of(&m, ORG).context("organization 1042 is not shown")?;
    let stalled = q
        .running_chunk
        .clone()
        .context("the dead worker's drain is not shown")?;
    assert!(stalled.stalled && stalled.worker == name, "{stalled:?}");
    assert!(q.waiting_chunks > 0);
    assert_eq!(m.totals.unwrap_or_default().stalled_drains, 1);

    // Another worker takes the organization over and finishes the import.
    let second = env.spawn_worker_process()?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:?}");
    assert_eq!(done.progress.unwrap_or_default().rows_created, 30_000);
    // The drain ends a moment after the last chunk committed (it looks for
    // more work first).
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = monitor(&mut client).await?;
        if queue_of(&m, ORG).is_none() {
            break m;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the organization is still shown: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(m.totals.unwrap_or_default().stalled_drains, 0);
    assert!(m.workers.iter().any(|w| w.pid == second as i32));
    env.finish().await
}

fn seconds(t: &prost_types::Timestamp) -> f64 {
    t.seconds as f64 + f64::from(t.nanos) / 1e9
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_import_shows_rows_per_second_and_its_estimated_end() -> anyhow::Result<()> {
    const ROWS: u64 = 100_000;
    let env = TestEnv::start(Options {
        chunk_rows: 5_000,
        worker_concurrency: 1,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let id = env
        .generated_draft(
            &mut client,
            ORG,
            pb::FailurePolicy::ImportValidRows,
            ROWS,
            11,
        )
        .await?;
    start(&mut client, &id).await?;
    let mut at_half: Option<(f64, f64)> = None;
    let mut seen = 0;
    let done = loop {
        let i = get(&mut client, &id).await?;
        if is_terminal(&i) {
            break i;
        }
        let p = i.progress.unwrap_or_default();
        if state(&i) == pb::ImportState::Running && p.chunks_done > 0 {
            anyhow::ensure!(
                p.rows_per_second > 0.0 && p.rows_per_second < 10_000_000.0,
                "implausible speed {} with {p:?}",
                p.rows_per_second
            );
            let end = p
                .estimated_completion_time
                .context("a running import with finished chunks has no estimate")?;
            seen += 1;
            if at_half.is_none() && p.rows_processed * 2 >= ROWS as i64 {
                at_half = Some((seconds(&end), p.rows_per_second));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:?}");
    assert!(seen > 0, "no running read showed a speed");
    let ended = seconds(&done.end_time.context("no end time")?);
    if let Some((estimate, speed)) = at_half {
        println!(
            "at 50 %: {speed:.0} rows/s, estimated end off by {:+.2} s (estimate minus actual)",
            estimate - ended
        );
    }
    // Finished imports carry no speed.
    assert_eq!(done.progress.unwrap_or_default().rows_per_second, 0.0);
    env.finish().await
}

/// Runs `passare-imports queues --watch --every 1` for `secs` seconds, on a
/// terminal (a pseudo-terminal from util-linux's `script`) or on a pipe;
/// returns what it printed.
fn watch_for(env: &TestEnv, secs: f64, on_terminal: bool) -> anyhow::Result<String> {
    let bin = binary()?;
    let args = format!(
        "{} queues --watch --every 1 --server {} --token {}",
        bin.display(),
        env.url(),
        env.token(&ADMIN)
    );
    let mut command = if on_terminal {
        let mut c = std::process::Command::new("script");
        c.args(["-qfec", &args, "/dev/null"]);
        c
    } else {
        let mut c = std::process::Command::new("sh");
        c.args(["-c", &format!("exec {args}")]);
        c
    };
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("running `script` (util-linux) for a terminal")?;
    std::thread::sleep(Duration::from_secs_f64(secs));
    let pid = child.id().to_string();
    std::process::Command::new("kill").arg(&pid).status()?;
    let out = child.wait_with_output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_watch_redraws_in_place_on_a_terminal_and_prints_lines_otherwise()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    queued(&env, &mut client, ORG, 10, 1).await?;
    let clear = "\x1b[2J";

    let terminal = tokio::task::block_in_place(|| watch_for(&env, 4.0, true))?;
    assert!(
        terminal.matches(clear).count() >= 2,
        "on a terminal every refresh clears the screen and redraws: {terminal:?}"
    );
    assert!(terminal.contains(&format!("{ORG} ")), "{terminal:?}");

    let piped = tokio::task::block_in_place(|| watch_for(&env, 4.0, false))?;
    assert!(
        !piped.contains('\x1b'),
        "no escape codes on a pipe: {piped:?}"
    );
    assert!(
        piped.matches(&format!("\n{ORG} ")).count() >= 2,
        "on a pipe the table is printed again: {piped:?}"
    );
    env.finish().await
}
