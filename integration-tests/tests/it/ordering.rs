//! One organization at a time: chunks of one organization never overlap, its
//! imports run in the order they were started, and other organizations run
//! alongside — with one worker process or several.

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
