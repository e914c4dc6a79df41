//! A storage outage in the middle of an import: the object store (the S3
//! test server, behind a proxy the test cuts; see `proxy` for why not moto
//! itself) goes away for a few seconds while a worker loads chunks, then
//! comes back. Reads fail after the S3 client's own retries, the chunk
//! attempts fail as transient storage errors and are retried, and the import
//! completes with exactly the file's rows, each once.

use std::time::Duration;

use passare_imports_integration_tests::proxy::TcpProxy;
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

const ROWS: u64 = 20_000;
const SEED: u64 = 41;
/// How long the store stays away: longer than the S3 client's retries of
/// one request in tests (5 retries, jittered backoff from 100 ms: a second
/// or so), and well within a chunk's 10 attempts.
const OUTAGE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_outage_mid_import_is_retried_and_loses_nothing() -> anyhow::Result<()> {
    let proxy = TcpProxy::start(s3_server_addr()?).await?;
    let mut env = TestEnv::start(Options {
        s3: true,
        s3_via: Some(proxy.addr),
        chunk_rows: 500,
        worker_concurrency: 1,
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    env.spawn_worker_process()?;
    let mut client = env.client().await?;
    let id = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::StopOnFirstError,
            ROWS,
            SEED,
        )
        .await?;
    start(&mut client, &id).await?;
    wait_until(&mut client, &id, Duration::from_secs(60), |i| {
        chunks_done(i) >= 3
    })
    .await?;

    proxy.cut().await;
    tokio::time::sleep(OUTAGE).await;
    let during = get(&mut client, &id).await?;
    anyhow::ensure!(
        !is_terminal(&during),
        "the import ended during the outage; make it larger"
    );
    proxy.restore();
    assert!(
        proxy.turned_away() > 0,
        "nothing reached for the store during the outage"
    );

    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(
        done.state,
        pb::ImportState::Completed as i32,
        "{:?}",
        done.error
    );
    let p = done.progress.unwrap_or_default();
    let chunks = ROWS.div_ceil(500) as i32;
    assert_eq!(
        (p.rows_created, p.rows_failed, p.chunks_done),
        (ROWS as i64, 0, chunks)
    );
    let import_id = uuid::Uuid::parse_str(&id)?;
    assert_cases_are(
        &env.db,
        1042,
        &all_written_by(&generated_rows(ROWS, SEED), import_id),
    )
    .await?;
    assert_serial_per_org(&chunk_intervals(&env.db).await?)?;

    // The attempts the outage broke are on record as transient storage
    // failures, each retried.
    let mut developer = env.client_as(&DEVELOPER).await?;
    let failures = chunk_failures(&mut developer, &id).await?;
    println!(
        "{} connections turned away during a {OUTAGE:?} outage; {} chunk failures recorded",
        proxy.turned_away(),
        failures.len()
    );
    for f in &failures {
        println!(
            "  chunk {}, attempt {}, {}: {:?}",
            f.chunk_seq,
            f.attempt,
            f.error_kind,
            f.causes.first()
        );
    }
    assert!(!failures.is_empty(), "the outage broke no chunk attempt");
    for f in &failures {
        assert!(f.transient, "{f:?}");
        assert_eq!(f.error_kind, "storage_unavailable", "{f:?}");
        assert_eq!(
            f.outcome,
            pb::ChunkFailureOutcome::RetryScheduled as i32,
            "{f:?}"
        );
    }
    env.finish().await
}
