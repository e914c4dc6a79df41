//! Lost database connections: every session of the test's database is cut
//! several times mid-import; the service retries and the import completes
//! with exactly the source rows, each once; the attempts the cuts broke are
//! listed by ListChunkFailures with what a developer needs to tell why.

use std::time::Duration;

use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_database_connections_are_retried_and_lose_nothing() -> anyhow::Result<()> {
    let mut env = TestEnv::start(Options {
        chunk_rows: 500,
        worker_concurrency: 1,
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    let worker_pid = env.spawn_worker_process()?;
    let mut client = env.client().await?;
    let id = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::StopOnFirstError,
            30_000,
            21,
        )
        .await?;
    start(&mut client, &id).await?;

    // Only this test's database: other tests run beside this one.
    let admin =
        passare_imports_store::Db::connect(&format!("{}/postgres", postgres_server()), 2).await?;
    let database = env
        .config
        .database_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut cut = 0;
    // Sessions cut inside a transaction that had written something: a chunk
    // write (the only writer of the test's database while the import runs).
    let mut writes_cut = 0;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        // Each cut waits (at most 2 s) for a moment when a chunk write is
        // open, so that cuts meet chunk attempts, not only idle sessions.
        let aim_until = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let aiming = tokio::time::Instant::now() < aim_until;
            let (n, writing): (i64, i64) = passare_imports_store::sqlx::query_as(
                "SELECT count(pg_terminate_backend(a.pid)), COALESCE(max(w.n), 0)
                   FROM pg_stat_activity a,
                        (SELECT count(*) AS n FROM pg_stat_activity
                          WHERE datname = $1 AND backend_xid IS NOT NULL) w
                  WHERE a.datname = $1 AND a.pid <> pg_backend_pid() AND (w.n > 0 OR NOT $2)",
            )
            .bind(&database)
            .bind(aiming)
            .fetch_one(admin.pool())
            .await?;
            if n > 0 || !aiming {
                cut += n;
                writes_cut += writing;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    admin.close().await;
    assert!(cut > 0, "no connection was cut");

    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(
        done.state,
        pb::ImportState::Completed as i32,
        "{:?}",
        done.error
    );
    let p = done.progress.unwrap_or_default();
    assert_eq!(
        (p.rows_created, p.rows_failed, p.chunks_done),
        (30_000, 0, 60)
    );
    assert_eq!(count(&env.db, "SELECT count(*) FROM cases").await?, 30_000);
    assert_eq!(
        count(&env.db, "SELECT count(DISTINCT case_number) FROM cases").await?,
        30_000
    );
    assert_serial_per_org(&chunk_intervals(&env.db).await?)?;

    // The chunk attempts the cuts broke are on record, as transient
    // failures of this worker, each retried.
    // Read as a developer: backtraces and cause chains are theirs alone.
    let mut developer = env.client_as(&DEVELOPER).await?;
    let failures = chunk_failures(&mut developer, &id).await?;
    println!(
        "{cut} sessions cut, {writes_cut} of them inside a chunk write; {} chunk failures recorded",
        failures.len()
    );
    for f in &failures {
        let ms = |seconds: i64, nanos: i32| seconds * 1_000 + i64::from(nanos) / 1_000_000;
        let retry_ms = f.retry_time.as_ref().map_or(0, |t| ms(t.seconds, t.nanos));
        let failed_ms = f.fail_time.as_ref().map_or(0, |t| ms(t.seconds, t.nanos));
        println!(
            "  chunk {} (rows {}–{}), attempt {}, {}: retry due {} ms after the failure was recorded; {:?}",
            f.chunk_seq,
            f.first_row,
            f.last_row,
            f.attempt,
            f.error_kind,
            retry_ms - failed_ms,
            f.causes.first()
        );
    }
    if writes_cut > 0 {
        assert!(
            !failures.is_empty(),
            "{writes_cut} chunk writes were cut, and no failure was recorded"
        );
    }
    // Otherwise every cut found the worker between two chunks (its pool
    // just reconnects and nothing fails), and the completed import with its
    // exact rows above is all there is to check.

    // Each chunk's failed attempts are numbered 1, 2, … without a gap.
    let mut attempts: std::collections::BTreeMap<i32, Vec<i32>> = Default::default();
    for f in &failures {
        attempts.entry(f.chunk_seq).or_default().push(f.attempt);
    }
    for (seq, mut numbers) in attempts {
        numbers.sort_unstable();
        let expected: Vec<i32> = (1..=numbers.len() as i32).collect();
        assert_eq!(numbers, expected, "attempts of chunk {seq}");
    }
    for f in &failures {
        assert_eq!(f.import_id, id, "{f:?}");
        assert_eq!(f.organization_id, "1042", "{f:?}");
        assert!(f.transient, "{f:?}");
        assert_eq!(
            f.outcome,
            pb::ChunkFailureOutcome::RetryScheduled as i32,
            "{f:?}"
        );
        assert!(f.retry_time.is_some(), "{f:?}");
        assert!(
            ["database_connection", "database_busy"].contains(&f.error_kind.as_str()),
            "{f:?}"
        );
        assert!(f.attempt >= 1, "{f:?}");
        assert_eq!(f.worker_pid, worker_pid as i32, "{f:?}");
        assert!(!f.worker_host.is_empty(), "{f:?}");
        assert!(!f.message.is_empty(), "{f:?}");
        assert!(
            !f.causes.is_empty() && f.causes.iter().all(|c| !c.is_empty()),
            "{f:?}"
        );
        assert!(!f.backtrace.is_empty(), "{f:?}");
        assert!(f.first_row <= f.last_row, "{f:?}");
        // The chunk's own rows: 500 per chunk, numbered from 1.
        assert_eq!(
            (f.first_row, f.last_row),
            (
                i64::from(f.chunk_seq) * 500 + 1,
                i64::from(f.chunk_seq) * 500 + 500
            ),
            "{f:?}"
        );
        assert_eq!(f.file_name, "cases-30000-21.csv", "{f:?}");
    }
    env.finish().await
}
