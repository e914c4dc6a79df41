//! Messages are wake-ups, the database is the truth: chunks whose messages the
//! broker lost are still loaded, in order, once the workers' sweep announces
//! their organization.

use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_whose_messages_were_lost_are_still_loaded() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 1_000,
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
            5_000,
            8,
        )
        .await?;
    // No worker runs yet: analysed here, the import queues at once.
    env.analyse_now(&id).await?;
    start(&mut client, &id).await?;

    // The broker loses every message of the import before any worker runs.
    let broker = broker::Broker::connect(&env).await?;
    broker.purge_notices().await?;
    broker.close().await?;

    let _worker = env.start_worker_with(|c| c.worker_sweep_secs = 1).await?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(done.state, pb::ImportState::Completed as i32);
    let p = done.progress.unwrap_or_default();
    assert_eq!((p.rows_created, p.chunks_done), (5_000, 5));
    assert_cases_are(
        &env.db,
        1042,
        &all_written_by(&generated_rows(5_000, 8), uuid::Uuid::parse_str(&id)?),
    )
    .await?;
    let chunks = chunks_of(&env.db, &id).await?;
    assert_eq!(chunks.len(), 5);
    assert_loaded_in_order(&chunks, None)?;
    assert_serial_per_org(&chunk_intervals(&env.db).await?)?;
    env.finish().await
}
