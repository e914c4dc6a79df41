//! Graceful shutdown: a worker told to stop (SIGTERM) while it writes a
//! chunk finishes that chunk, hands the organization back to the broker and
//! exits cleanly; a worker started afterwards takes the hand-back and
//! completes the import with exactly the file's rows. The sweep is set far
//! beyond the test's length, so only the hand-back can get the second worker
//! going.

use std::time::Duration;

use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

const ORG: i64 = 1042;
const ROWS: u64 = 40_000;
const SEED: u64 = 4;
const CHUNK_ROWS: u64 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_mid_import_hands_its_work_back() -> anyhow::Result<()> {
    let mut env = TestEnv::start(Options {
        chunk_rows: CHUNK_ROWS,
        worker_concurrency: 1,
        in_process_workers: 0,
        // No sweep within the test: a second worker learns of the
        // organization from the first one's hand-back or not at all.
        sweep_secs: 3_600,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let id = env
        .generated_draft(
            &mut client,
            ORG,
            pb::FailurePolicy::StopOnFirstError,
            ROWS,
            SEED,
        )
        .await?;
    let first = env.spawn_worker_process()?;
    start(&mut client, &id).await?;
    // Part-way through, and a chunk write in flight at the moment of the
    // signal.
    wait_until(&mut client, &id, Duration::from_secs(60), |i| {
        chunks_done(i) >= 3
    })
    .await?;
    let in_flight = env
        .wait_for_chunk_write(ORG, Duration::from_secs(30))
        .await?;
    env.terminate_worker_process(first)?;
    let exited = env.wait_worker_exit(first, Duration::from_secs(30))?;
    assert!(
        exited.success(),
        "the worker did not exit cleanly: {exited:?}"
    );
    // The chunk being written when the signal came was finished, not
    // abandoned; nothing was left half-done.
    let after_stop = count(&env.db, "SELECT count(*) FROM chunks WHERE state = 'done'").await?;
    println!(
        "SIGTERM with {} chunks done and one being written; {after_stop} done when the worker exited",
        in_flight.chunks_done
    );
    assert!(
        after_stop > in_flight.chunks_done,
        "the chunk in hand at SIGTERM was not finished: {} done before, {after_stop} after",
        in_flight.chunks_done
    );
    assert!(
        after_stop < ROWS.div_ceil(CHUNK_ROWS) as i64,
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
    let stopped_at = chrono::Utc::now();

    // Only the hand-back can wake this worker within the test.
    let second = env.spawn_worker_process()?;
    let done = wait_terminal_within(&mut client, &id, Duration::from_secs(120)).await?;
    assert_eq!(done.state, pb::ImportState::Completed as i32);
    let p = done.progress.unwrap_or_default();
    assert_eq!(
        (p.rows_created, p.rows_failed, p.chunks_done),
        (ROWS as i64, 0, ROWS.div_ceil(CHUNK_ROWS) as i32)
    );
    assert_eq!(
        count(&env.db, "SELECT count(*) FROM cases").await?,
        ROWS as i64
    );
    assert_cases_are(
        &env.db,
        ORG,
        &all_written_by(&generated_rows(ROWS, SEED), uuid::Uuid::parse_str(&id)?),
    )
    .await?;

    // The first worker loaded the chunks up to the stop, the second every
    // other one, after the first had exited.
    let chunks = chunks_of(&env.db, &id).await?;
    let name_of = |pid: u32| format!(":{pid}");
    for c in &chunks {
        let worker = c.worker.clone().unwrap_or_default();
        let started = c.started.unwrap_or_default();
        if (c.seq as i64) < after_stop {
            assert!(worker.ends_with(&name_of(first)), "{c:?}");
        } else {
            assert!(worker.ends_with(&name_of(second)), "{c:?}");
            assert!(started > stopped_at, "{c:?} started before the stop");
        }
    }
    let workers = count(&env.db, "SELECT count(DISTINCT worker) FROM chunks").await?;
    assert_eq!(workers, 2, "both workers loaded chunks");
    assert_serial_per_org(&chunk_intervals(&env.db).await?)?;
    env.finish().await
}
