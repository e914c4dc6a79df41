//! Many tenants, bounded broker: however many organizations import, the
//! broker holds the same two queues; a long import of one organization does
//! not hold up another while a worker slot is free; with one slot, an
//! organization with many imports queued takes turns with one that has a
//! single import; and a deployment with the queues per organization of
//! earlier releases moves to the shared notice queue without losing work.
//!
//! `TENANTS` sets how many organizations the simulation runs (300 by
//! default in the suite, to keep CI short) and `CALLERS` how many callers
//! create and start their imports through the API side by side (4).

use std::time::{Duration, Instant};

use anyhow::Context;

use passare_imports_integration_tests::broker::Broker;
use passare_imports_integration_tests::files;
use passare_imports_integration_tests::tenants;
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_store::sqlx;

type Stamp = chrono::DateTime<chrono::Utc>;

/// Queues of this test's prefix, as the broker lists them.
async fn queues_of(prefix: &str) -> anyhow::Result<Vec<String>> {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(["list_queues", "--quiet", "--no-table-headers", "name"])
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("this test needs rabbitmqctl on the PATH: {e}"))?;
    anyhow::ensure!(out.status.success(), "rabbitmqctl list_queues failed");
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|n| n.starts_with(&format!("{prefix}.")))
        .map(str::to_string)
        .collect();
    names.sort();
    Ok(names)
}

/// The broker's total memory, as `rabbitmqctl status` reports it.
async fn broker_memory() -> String {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(["status"])
        .output()
        .await;
    out.ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find(|l| l.starts_with("Total memory used"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "memory: n/a".into())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_organizations_share_two_queues() -> anyhow::Result<()> {
    let tenants: i64 = std::env::var("TENANTS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(300);
    let mut env = TestEnv::start(Options {
        in_process_workers: 0,
        worker_concurrency: 2,
        ..Options::default()
    })
    .await?;
    env.spawn_worker_process()?;
    env.spawn_worker_process()?;
    const FIRST: i64 = 100_000;
    let callers: usize = std::env::var("CALLERS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4);
    let began = Instant::now();
    tenants::start_many(&env, FIRST..FIRST + tenants, callers).await?;
    let all_started = began.elapsed();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let done = count(
            &env.db,
            "SELECT count(*) FROM imports WHERE state = 'completed'",
        )
        .await?;
        if done == tenants {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{done} of {tenants} imports completed after 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let total = began.elapsed();
    let memory = broker_memory().await;

    // Exact rows: three per organization, each its own.
    let (rows, orgs) = tenants::rolodex_rows(&env, FIRST..FIRST + tenants).await?;
    assert_eq!((rows, orgs), (3 * tenants, tenants));
    // The broker holds the same two queues as with one organization.
    let queues = queues_of(&env.config.queue_prefix).await?;
    let prefix = &env.config.queue_prefix;
    // (The dead-letter queue may have expired already: test queues expire
    // when unused, `IMPORTS_QUEUE_EXPIRES_MS`.)
    let bounded = [format!("{prefix}.dead"), format!("{prefix}.notices")];
    assert!(
        queues.contains(&bounded[1]) && queues.iter().all(|q| bounded.contains(q)),
        "the queues do not grow with the organizations: {queues:?}"
    );
    // Queued → completed (the loading), and StartImport → completed (its
    // analysis in a worker included).
    let spans: Vec<(f64, f64)> = sqlx::query_as(
        "SELECT EXTRACT(EPOCH FROM (i.finished_at - i.queued_at))::float8,
                EXTRACT(EPOCH FROM (i.finished_at - j.requested_at))::float8
           FROM imports i JOIN analysis_jobs j ON j.import_id = i.id",
    )
    .fetch_all(env.db.pool())
    .await?;
    let sorted = |pick: fn(&(f64, f64)) -> f64| {
        let mut v: Vec<f64> = spans.iter().map(pick).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (lags, whole) = (sorted(|s| s.0), sorted(|s| s.1));
    println!(
        "{tenants} organizations, 4 worker slots: all started in {all_started:.1?}, all completed in {total:.1?}; \
         queued → completed p50 {:.3} s, p99 {:.3} s, max {:.3} s; \
         StartImport → completed p50 {:.3} s, p99 {:.3} s; queues {}; broker {memory}",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or_default(),
        percentile(&whole, 0.5),
        percentile(&whole, 0.99),
        queues.len()
    );
    env.finish().await
}

/// When an import's first chunk started and its last finished.
async fn span_of(env: &TestEnv, id: &str) -> anyhow::Result<(Option<Stamp>, Option<Stamp>)> {
    Ok(sqlx::query_as(
        "SELECT min(started_at), max(finished_at) FROM chunks WHERE import_id = $1::uuid",
    )
    .bind(id)
    .fetch_one(env.db.pool())
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_import_holds_up_no_other_organization_while_a_slot_is_free() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 1_000,
        worker_concurrency: 2,
        ..Options::default()
    })
    .await?;
    env.organization(2001).await?;
    let mut client = env.client().await?;
    let long = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            60_000,
            3,
        )
        .await?;
    start(&mut client, &long).await?;
    wait_until(&mut client, &long, Duration::from_secs(120), |i| {
        chunks_done(i) >= 3
    })
    .await?;
    let asked = chrono::Utc::now();
    let short = tenants::start_small(&mut client, 2001).await?;
    let short_done = wait_terminal(&mut client, &short).await?;
    let long_done = wait_terminal(&mut client, &long).await?;
    assert_eq!(state(&short_done), pb::ImportState::Completed);
    assert_eq!(state(&long_done), pb::ImportState::Completed);
    let (short_start, short_end) = span_of(&env, &short).await?;
    let (_, long_end) = span_of(&env, &long).await?;
    let (short_start, short_end, long_end) = short_start
        .zip(short_end)
        .zip(long_end)
        .map(|((a, b), c)| (a, b, c))
        .context("no chunk finished")?;
    println!(
        "the other organization's import started {} ms after StartImport, while the long one ran for {} ms more",
        (short_start - asked).num_milliseconds(),
        (long_end - short_end).num_milliseconds()
    );
    assert!(
        short_end < long_end,
        "the small import of another organization ran beside the long one, not after it"
    );
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_slot_organizations_take_turns() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 1_000,
        worker_concurrency: 1,
        // A short time slice: the organization with many imports goes to
        // the back of the notice queue every second.
        drain_max_secs: 1,
        ..Options::default()
    })
    .await?;
    env.organization(2001).await?;
    let mut client = env.client().await?;
    // Each start announces organization 1042 once more: five notices of it
    // are queued before organization 2001's. The first drain of 1042 answers
    // them all (see "Turns" in docs/per-organization-concurrency.md), so the
    // other four are dropped and 2001 waits one time slice, not five.
    let mut many = Vec::new();
    for seed in 0..5 {
        let id = env
            .generated_draft(
                &mut client,
                1042,
                pb::FailurePolicy::ImportValidRows,
                20_000,
                30 + seed,
            )
            .await?;
        many.push(id);
    }
    for id in &many {
        start(&mut client, id).await?;
    }
    wait_until(&mut client, &many[0], Duration::from_secs(120), |i| {
        chunks_done(i) >= 1
    })
    .await?;
    let before = drains_ended(&env, 1042).await?;
    let one = tenants::start_small(&mut client, 2001).await?;
    // 1042's drains that end before 2001's first chunk starts: the one in
    // hand when 2001 started, and at most one more (when it ended and
    // announced 1042 again before 2001's notice was published). Polled: no
    // drain of 1042 can end while 2001's drain holds the only slot, and the
    // next one lasts a second after it.
    let waited = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let ended = drains_ended(&env, 1042).await?;
            let (started, _) = span_of(&env, &one).await?;
            if started.is_some() {
                return anyhow::Ok(ended - before);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await??;
    let one_done = wait_terminal(&mut client, &one).await?;
    assert_eq!(state(&one_done), pb::ImportState::Completed);
    let mut last_of_many = None;
    for id in &many {
        let done = wait_terminal(&mut client, id).await?;
        assert_eq!(state(&done), pb::ImportState::Completed);
        last_of_many = span_of(&env, id).await?.1;
    }
    let (_, one_end) = span_of(&env, &one).await?;
    let (last, one_end) = last_of_many.zip(one_end).context("no chunk finished")?;
    println!(
        "the organization with one import waited {waited} time slice(s) of the one with five, \
         and finished {} s before it",
        (last - one_end).num_seconds()
    );
    assert!(
        waited <= 2,
        "an organization with one import waits one time slice, not one per notice of another: {waited}"
    );
    assert!(one_end < last);
    env.finish().await
}

/// How many drains of `org` have ended (`drain_turns`).
async fn drains_ended(env: &TestEnv, org: i64) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COALESCE((SELECT drains_ended FROM drain_turns WHERE organization_id = $1), 0)",
    )
    .bind(org)
    .fetch_one(env.db.pool())
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queues_of_an_earlier_release_are_moved_without_losing_work() -> anyhow::Result<()> {
    let mut env = TestEnv::start(Options {
        chunk_rows: 1_000,
        in_process_workers: 0,
        // Only the move's announcement can get the import going.
        sweep_secs: 3_600,
        ..Options::default()
    })
    .await?;
    env.organization(2001).await?;
    let mut client = env.client().await?;
    // An earlier import of another organization: its old queue exists. No
    // worker runs yet: both imports are analysed here and queue at once.
    let (earlier, _) = files::draft_with_files(
        &mut client,
        2001,
        pb::FailurePolicy::ImportValidRows,
        &[tenants::rolodex(2001)],
    )
    .await?;
    env.analyse_now(&earlier).await?;
    start(&mut client, &earlier).await?;
    let id = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            5_000,
            9,
        )
        .await?;
    env.analyse_now(&id).await?;
    start(&mut client, &id).await?;
    // As an upgrade finds the broker: the notices of this release were never
    // published (the old servers published to the old queues instead).
    let broker = Broker::connect(&env).await?;
    broker.purge_notices().await?;
    broker.legacy_topology(&[1042, 2001], 5).await?;
    let prefix = env.config.queue_prefix.clone();
    let legacy = [
        format!("{prefix}.ready"),
        format!("{prefix}.org.1042"),
        format!("{prefix}.org.2001"),
    ];
    for q in &legacy {
        assert!(
            broker.queue_exists(q).await?,
            "{q} is there before the move"
        );
    }

    env.spawn_worker_process()?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::Completed);
    assert_eq!(done.progress.map(|p| p.rows_imported), Some(5_000));
    let first = wait_terminal(&mut client, &earlier).await?;
    assert_eq!(state(&first), pb::ImportState::Completed);
    for q in &legacy {
        assert!(!broker.queue_exists(q).await?, "{q} is gone after the move");
    }
    let (orgs, messages): (i64, i64) = sqlx::query_as(
        "SELECT organizations, legacy_messages FROM broker_topology WHERE queue_prefix = $1",
    )
    .bind(&prefix)
    .fetch_one(env.db.pool())
    .await?;
    // Two organizations' queues of five chunk messages, and two old notices.
    assert_eq!((orgs, messages), (2, 12));
    broker.close().await?;
    env.finish().await
}
