//! Graceful shutdown: a worker told to stop (SIGTERM) mid-import finishes the
//! chunk in hand, hands everything else back to the broker and exits; another
//! worker completes the import with exactly the source rows.

use std::time::Duration;

use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_mid_import_hands_its_work_back() -> anyhow::Result<()> {
    let mut env = TestEnv::start(Options {
        chunk_rows: 1_000,
        worker_concurrency: 1,
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let id = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::StopOnFirstError,
            40_000,
            4,
        )
        .await?;
    let first = env.spawn_worker_process()?;
    start(&mut client, &id).await?;
    // Wait until the first worker is part-way through.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = count(&env.db, "SELECT count(*) FROM chunks WHERE state = 'done'").await?;
        if done >= 3 {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the worker made no progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(first.to_string())
        .status()?;
    anyhow::ensure!(status.success());
    let exited = env.wait_worker_exit(first, Duration::from_secs(30))?;
    assert!(
        exited.success(),
        "the worker did not exit cleanly: {exited:?}"
    );
    let after_stop = count(&env.db, "SELECT count(*) FROM chunks WHERE state = 'done'").await?;
    assert!(
        after_stop < 40,
        "the import finished before the worker was stopped; make it larger"
    );
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM chunks WHERE state NOT IN ('queued', 'done')"
        )
        .await?,
        0
    );

    env.spawn_worker_process()?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(done.state, pb::ImportState::Completed as i32);
    let p = done.progress.unwrap_or_default();
    assert_eq!(
        (p.rows_created, p.rows_failed, p.chunks_done),
        (40_000, 0, 40)
    );
    assert_eq!(count(&env.db, "SELECT count(*) FROM cases").await?, 40_000);
    let workers = count(&env.db, "SELECT count(DISTINCT worker) FROM chunks").await?;
    assert_eq!(workers, 2, "both workers loaded chunks");
    env.finish().await
}
