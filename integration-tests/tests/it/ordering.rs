//! One organization at a time: chunks of one organization never overlap, its
//! imports run in the order they were started, and other organizations run
//! alongside — with one worker process or several; and what makes it so, the
//! organization's drain lease: while someone else holds it, no chunk of the
//! organization starts, however often workers are told it has work.

use std::time::Duration;

use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

/// Starts two imports of org 1042 together and one of org 2001, waits for all,
/// and checks the recorded chunk intervals.
async fn run_three_imports(env: &TestEnv) -> anyhow::Result<Vec<Interval>> {
    env.organization(2001).await?;
    let mut client = env.client().await?;
    let a1 = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            12_000,
            1,
        )
        .await?;
    let a2 = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            12_000,
            2,
        )
        .await?;
    let b1 = env
        .generated_draft(
            &mut client,
            2001,
            pb::FailurePolicy::ImportValidRows,
            12_000,
            3,
        )
        .await?;
    let (mut c1, mut c2, mut c3) = (client.clone(), client.clone(), client.clone());
    let (r1, r2, r3) = tokio::join!(
        start(&mut c1, &a1),
        start(&mut c2, &a2),
        start(&mut c3, &b1)
    );
    r1?;
    r2?;
    r3?;
    for id in [&a1, &a2, &b1] {
        let done = wait_terminal(&mut client, id).await?;
        assert_eq!(done.state, pb::ImportState::Completed as i32, "{id}");
    }
    // The second file has other names for the same case numbers: 12,000 cases each org.
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM cases WHERE organization_id = 1042"
        )
        .await?,
        12_000
    );
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM cases WHERE organization_id = 2001"
        )
        .await?,
        12_000
    );
    let intervals = chunk_intervals(&env.db).await?;
    assert_eq!(intervals.len(), 36, "12 chunks per import");
    assert_serial_per_org(&intervals)?;
    // Both imports of 1042 ran, whole, one after the other.
    let a_imports: Vec<uuid::Uuid> = intervals
        .iter()
        .filter(|i| i.organization_id == 1042)
        .map(|i| i.import_id)
        .collect();
    let switches = a_imports.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(
        switches, 1,
        "the imports of one organization interleaved: {a_imports:?}"
    );
    assert!(
        orgs_overlap(&intervals, 1042, 2001),
        "organization 2001 waited for 1042: {intervals:#?}"
    );
    // The values say the same: 1042 holds the file of the import that ran
    // second (rows both files hold identically left to the first), 2001 its
    // own file.
    let (ran_first, ran_second) = match a_imports.first() {
        Some(first) if first.to_string() == a1 => ((&a1, 1), (&a2, 2)),
        _ => ((&a2, 2), (&a1, 1)),
    };
    let first_rows = generated_rows(12_000, ran_first.1);
    let second_rows = generated_rows(12_000, ran_second.1);
    assert_cases_are(
        &env.db,
        1042,
        &after_two_imports(
            (&first_rows, ran_first.0.parse()?),
            (&second_rows, ran_second.0.parse()?),
        ),
    )
    .await?;
    assert_cases_are(
        &env.db,
        2001,
        &all_written_by(&generated_rows(12_000, 3), b1.parse()?),
    )
    .await?;
    Ok(intervals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_of_one_organization_never_overlap_while_other_organizations_run_alongside()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 1_000,
        worker_concurrency: 2,
        in_process_workers: 1,
        ..Options::default()
    })
    .await?;
    run_three_imports(&env).await?;
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_worker_processes_the_same_holds() -> anyhow::Result<()> {
    let mut env = TestEnv::start(Options {
        chunk_rows: 1_000,
        worker_concurrency: 1,
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    env.spawn_worker_process()?;
    env.spawn_worker_process()?;
    let intervals = run_three_imports(&env).await?;
    let mut workers: Vec<&str> = intervals.iter().map(|i| i.worker.as_str()).collect();
    workers.sort_unstable();
    workers.dedup();
    assert_eq!(
        workers.len(),
        2,
        "both worker processes loaded chunks: {workers:?}"
    );
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_drain_lease_keeps_an_organizations_chunks_waiting_while_another_runs()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 1_000,
        worker_concurrency: 2,
        in_process_workers: 1,
        // The sweep re-announces the waiting organization every second:
        // workers keep trying for its lease while the test holds it.
        sweep_secs: 1,
        ..Options::default()
    })
    .await?;
    env.organization(2001).await?;
    let mut client = env.client().await?;
    let waiting = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            5_000,
            31,
        )
        .await?;
    let other = env
        .generated_draft(
            &mut client,
            2001,
            pb::FailurePolicy::ImportValidRows,
            10_000,
            32,
        )
        .await?;

    // The test holds 1042's drain lease, as a worker draining it would.
    let lease = DrainLease::hold(&env, 1042).await?;
    start(&mut client, &waiting).await?;
    start(&mut client, &other).await?;
    let other_done = wait_terminal(&mut client, &other).await?;
    assert_eq!(other_done.state, pb::ImportState::Completed as i32);
    assert_eq!(other_done.progress.unwrap_or_default().rows_created, 10_000);
    // Told again that 1042 has work (besides the sweep's notices), the
    // worker still starts none of it.
    let broker = broker::Broker::connect(&env).await?;
    broker.announce(1042).await?;
    broker.wait_notices_taken(Duration::from_secs(30)).await?;
    broker.close().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = get(&mut client, &waiting).await?;
    assert_eq!(state(&held), pb::ImportState::Queued, "{held:?}");
    assert_eq!(chunks_done(&held), 0);
    let chunks = chunks_of(&env.db, &waiting).await?;
    assert_eq!(chunks.len(), 5);
    assert!(
        chunks
            .iter()
            .all(|c| c.state == "queued" && c.started.is_none()),
        "a chunk started while the lease was held: {chunks:#?}"
    );

    // Released, the waiting import is loaded, chunk after chunk in order.
    let released_at = chrono::Utc::now();
    lease.release().await?;
    let done = wait_terminal_within(&mut client, &waiting, Duration::from_secs(60)).await?;
    assert_eq!(done.state, pb::ImportState::Completed as i32);
    assert_eq!(done.progress.unwrap_or_default().rows_created, 5_000);
    assert_loaded_in_order(&chunks_of(&env.db, &waiting).await?, Some(released_at))?;
    assert_cases_are(
        &env.db,
        1042,
        &all_written_by(&generated_rows(5_000, 31), waiting.parse()?),
    )
    .await?;
    assert_cases_are(
        &env.db,
        2001,
        &all_written_by(&generated_rows(10_000, 32), other.parse()?),
    )
    .await?;
    assert_serial_per_org(&chunk_intervals(&env.db).await?)?;
    env.finish().await
}
