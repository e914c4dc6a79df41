//! Lost database connections: every session of the test's database is cut
//! four times, each time while a chunk is being written; the broken writes
//! are retried and the import completes with exactly the file's rows, each
//! once and with the file's values; the attempts the cuts broke are listed
//! by ListChunkFailures with what a developer needs to tell why.

use std::time::Duration;

use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

/// Cuts of every connection, each while a chunk is being written.
const CUTS: usize = 4;

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

    // Every cut lands while a chunk is being written: the test waits for a
    // session holding the organization's write fence and cuts every session
    // of this test's database (only this one: other tests run beside it) in
    // the same statement.
    let mut cuts = Vec::new();
    for _ in 0..CUTS {
        tokio::time::sleep(Duration::from_millis(300)).await;
        anyhow::ensure!(
            !is_terminal(&get(&mut client, &id).await?),
            "the import ended after {} cuts; make it larger",
            cuts.len()
        );
        cuts.push(
            env.cut_connections_mid_write(1042, Duration::from_secs(30))
                .await?,
        );
    }
    let cut: i64 = cuts.iter().map(|c| c.cut).sum();
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
    // Every stored row is the file's, written once by this import.
    let import_id = uuid::Uuid::parse_str(&id)?;
    assert_cases_are(
        &env.db,
        1042,
        &all_written_by(&generated_rows(30_000, 21), import_id),
    )
    .await?;
    assert_serial_per_org(&chunk_intervals(&env.db).await?)?;

    // The chunk attempts the cuts broke are on record, as transient
    // failures of this worker, each retried.
    // Read as a developer: backtraces and cause chains are theirs alone.
    let mut developer = env.client_as(&DEVELOPER).await?;
    let failures = chunk_failures(&mut developer, &id).await?;
    println!(
        "{} cuts, each while a chunk was written ({cut} sessions in all); {} chunk failures recorded",
        cuts.len(),
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
    // A cut breaks the write in flight (unless it was committing in that
    // instant): at least one broken write is on record, and never more than
    // one per cut.
    assert!(
        !failures.is_empty(),
        "{} chunk writes were cut, and no failure was recorded",
        cuts.len()
    );
    assert!(
        failures.len() <= cuts.len(),
        "{} failures for {} cuts: {failures:#?}",
        failures.len(),
        cuts.len()
    );

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
        // Broken while writing: the attempt had read and parsed its rows.
        assert!(
            f.read_start_time.is_some() && f.write_start_time.is_some(),
            "{f:?}"
        );
    }
    env.finish().await
}
