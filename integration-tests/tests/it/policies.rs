//! Failure policies give exactly the rows they promise: all-or-nothing
//! leaves no row of a failed import (and puts back what it updated);
//! import-valid-rows lands every valid row and counts every outcome, stale
//! rows included; a chunk that keeps failing is retried with backoff, then
//! dead-lettered, and the import fails or goes on by its policy — with every
//! attempt recorded for developers.

use std::time::Duration;

use anyhow::Context;
use passare_imports_cli::client::Client;
use passare_imports_domain::messages::DeadChunk;
use passare_imports_integration_tests::table_lock::{TableLock, wait_for_failure};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_store::sqlx;

async fn progress(client: &mut Client, id: &str) -> anyhow::Result<pb::Progress> {
    Ok(get(client, id).await?.progress.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_or_nothing_leaves_no_row_of_a_failed_import_and_puts_back_what_it_updated()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 500,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    // 2,000 cases exist before.
    let first = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            2_000,
            1,
        )
        .await?;
    start(&mut client, &first).await?;
    assert_eq!(
        wait_terminal(&mut client, &first).await?.state,
        pb::ImportState::Completed as i32
    );
    let before = cases_fingerprint(&env, 1042).await?;

    // The second import updates those 2,000 and adds 1,000; row 2,700 (the
    // sixth chunk) names a location that exists when the import is analysed
    // and is gone when its chunk loads.
    let (second, file) = env
        .started_with_a_late_failure(
            &mut client,
            1042,
            pb::FailurePolicy::StopOnFirstError,
            &cases_csv(3_000, 2)?,
            2_700,
        )
        .await?;
    let done = wait_terminal(&mut client, &second).await?;

    assert_eq!(done.state, pb::ImportState::Failed as i32);
    let error = done.error.context("a failed import says why")?;
    assert_eq!(error.reason, "ROW_FAILED");
    assert_eq!(error.file_name, "cases-update.csv");
    assert_eq!(error.file_id, file.id);
    let problem = error.problem.context("the first failing row")?;
    assert_eq!(
        (problem.row, problem.column.as_str()),
        (2_700, "location_name")
    );
    assert!(
        error.message.contains("cases-update.csv row 2700"),
        "{}",
        error.message
    );
    assert!(done.rollback_time.is_some());

    // Five chunks committed before the failure; none of it remains.
    let committed: (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), COALESCE(sum(rows_created), 0)::bigint, COALESCE(sum(rows_updated), 0)::bigint
           FROM chunks WHERE import_id = $1::uuid AND state = 'done'",
    )
    .bind(&second)
    .fetch_one(env.db.pool())
    .await?;
    assert_eq!(committed.0, 5, "five chunks were written before row 2,700");
    assert_eq!(committed.1, 500, "rows 2,001–2,500 were created");
    assert!(
        committed.2 > 1_900,
        "nearly every existing case changed: {committed:?}"
    );
    assert_eq!(
        cases_fingerprint(&env, 1042).await?,
        before,
        "the cases are exactly as before the failed import, provenance and timestamps included"
    );
    assert_eq!(
        count(
            &env.db,
            &format!("SELECT count(*) FROM cases WHERE source_import_id = '{second}'")
        )
        .await?,
        0
    );
    assert_eq!(before_images(&env.db).await?, 0);
    let p = done.progress.unwrap_or_default();
    assert_eq!(
        (p.rows_created, p.rows_updated, p.rows_unchanged),
        (0, 0, 0),
        "nothing of a rolled-back import counts as imported"
    );
    assert_eq!(p.rows_rolled_back, committed.1 + committed.2);
    assert_eq!(p.rows_failed, 1);
    let chunk_states: Vec<(String, i64)> = sqlx::query_as(
        "SELECT state, count(*) FROM chunks WHERE import_id = $1::uuid GROUP BY state ORDER BY state",
    )
    .bind(&second)
    .fetch_all(env.db.pool())
    .await?;
    assert_eq!(
        chunk_states,
        vec![("done".to_string(), 5), ("failed".to_string(), 1)]
    );
    env.finish().await
}

/// A small Cases file with `source_updated_at`.
fn stamped(rows: &[(&str, &str, &str)]) -> Vec<u8> {
    let mut out =
        String::from("case_number,deceased_first_name,deceased_last_name,source_updated_at\n");
    for (case, first, at) in rows {
        out.push_str(&format!("{case},{first},Doe,{at}\n"));
    }
    out.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_valid_rows_counts_every_outcome_and_stale_rows_leave_newer_data()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    let jan = "2026-01-01T00:00:00Z";
    let (first, _) = env
        .draft_with_file(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            "first.csv",
            &stamped(&[
                ("C1", "Ann", jan),
                ("C2", "Ben", jan),
                ("C3", "Cal", jan),
                ("C4", "Dee", jan),
                ("C5", "Eve", jan),
            ]),
        )
        .await?;
    start(&mut client, &first).await?;
    assert_eq!(
        wait_terminal(&mut client, &first).await?.state,
        pb::ImportState::Completed as i32
    );

    let (dec, feb) = ("2025-12-01T00:00:00Z", "2026-02-01T00:00:00Z");
    let (second, _) = env
        .draft_with_file(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            "second.csv",
            &stamped(&[
                ("C1", "Ann", feb),      // same values, newer: unchanged
                ("C2", "Benjamin", feb), // changed, newer: updated
                ("C3", "Calvin", dec),   // changed, older: stale
                ("C4", "Deirdre", ""),   // changed, no time: updated
                ("C5", "Eve", dec),      // same values, older: stale
                ("C6", "Fay", feb),      // new: created
                ("C7", "Gus", "not a time"),
            ]),
        )
        .await?;
    let report = files::analyze(&mut client, &second).await?;
    assert_eq!(
        (
            report.would_create,
            report.would_update,
            report.would_leave_unchanged,
            report.would_skip_stale,
            report.rows_failing
        ),
        (1, 2, 1, 2, 1),
        "{report:#?}"
    );
    start(&mut client, &second).await?;
    let done = wait_terminal(&mut client, &second).await?;
    assert_eq!(done.state, pb::ImportState::CompletedWithErrors as i32);
    let p = done.progress.unwrap_or_default();
    assert_eq!(
        (
            p.rows_created,
            p.rows_updated,
            p.rows_unchanged,
            p.rows_stale,
            p.rows_failed,
            p.rows_processed
        ),
        (1, 2, 1, 2, 1, 7)
    );
    let file = done.files.first().context("one file")?;
    assert_eq!(file.progress.as_ref().map(|p| p.rows_stale), Some(2));
    assert_eq!(
        file.problems.first().map(|p| (p.row, p.column.as_str())),
        Some((7, "source_updated_at"))
    );

    let stored: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT case_number, deceased_first_name,
                to_char(source_updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                COALESCE(source_import_id::text, '')
           FROM cases WHERE organization_id = 1042 ORDER BY case_number",
    )
    .fetch_all(env.db.pool())
    .await?;
    let row = |c: &str, n: &str, at: &str, by: &str| {
        (c.to_string(), n.to_string(), at.to_string(), by.to_string())
    };
    assert_eq!(
        stored,
        vec![
            row("C1", "Ann", "2026-01-01", &first),
            row("C2", "Benjamin", "2026-02-01", &second),
            row("C3", "Cal", "2026-01-01", &first),
            row("C4", "Deirdre", "2026-01-01", &second),
            row("C5", "Eve", "2026-01-01", &first),
            row("C6", "Fay", "2026-02-01", &second),
        ],
        "stale rows left the newer records alone; unchanged ones kept their provenance"
    );
    env.finish().await
}

fn seconds(t: &Option<prost_types::Timestamp>) -> f64 {
    t.as_ref()
        .map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_failing_past_the_retry_limit_is_dead_lettered_and_the_import_goes_on_by_its_policy()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 100,
        retry_max_attempts: 3,
        retry_base_ms: 200,
        chunk_timeout_ms: 700,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;

    // Import valid rows: the first chunk cannot write (the table is locked),
    // fails three times and is given up; the import goes on without it.
    let valid = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            300,
            7,
        )
        .await?;
    files::analyze(&mut client, &valid).await?;
    let lock = TableLock::take(&env).await?;
    start(&mut client, &valid).await?;
    // Failures are read as a developer: backtraces and cause chains are
    // theirs alone (a super admin sees the rest).
    let mut developer = env.client_as(&DEVELOPER).await?;
    let failures = wait_for_failure(
        &mut developer,
        &valid,
        0,
        pb::ChunkFailureOutcome::DeadLettered,
    )
    .await?;
    lock.release().await?;
    let done = wait_terminal(&mut client, &valid).await?;
    assert_eq!(done.state, pb::ImportState::CompletedWithErrors as i32);
    let p = done.progress.unwrap_or_default();
    assert_eq!(
        (
            p.rows_created,
            p.rows_failed,
            p.chunks_done,
            p.rows_processed
        ),
        (200, 100, 3, 300)
    );
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM cases WHERE case_number BETWEEN 'C00000001' AND 'C00000100'"
        )
        .await?,
        0,
        "the dead chunk's rows are not written"
    );
    assert_eq!(count(&env.db, "SELECT count(*) FROM cases").await?, 200);
    let not_loaded = &done.files[0].problems;
    assert_eq!(not_loaded.first().map(|p| p.row), Some(1));
    assert!(
        not_loaded
            .iter()
            .all(|p| p.kind == pb::FindingKind::NotLoaded as i32 && p.reason.contains("3 attempts")),
        "{not_loaded:#?}"
    );
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM row_errors WHERE kind = 'not_loaded'"
        )
        .await?,
        100
    );

    // Every attempt of the first chunk is there, oldest last.
    let mut first: Vec<&pb::ChunkFailure> = failures.iter().filter(|f| f.chunk_seq == 0).collect();
    first.reverse();
    let outcomes: Vec<(i32, i32)> = first.iter().map(|f| (f.attempt, f.outcome)).collect();
    assert_eq!(
        outcomes,
        vec![
            (1, pb::ChunkFailureOutcome::RetryScheduled as i32),
            (2, pb::ChunkFailureOutcome::RetryScheduled as i32),
            (3, pb::ChunkFailureOutcome::DeadLettered as i32),
        ]
    );
    for (i, f) in first.iter().enumerate() {
        assert_eq!(f.error_kind, "timeout", "{f:#?}");
        assert!(f.transient);
        assert_eq!((f.first_row, f.last_row), (1, 100));
        assert_eq!(f.file_name, done.files[0].name);
        assert_eq!(f.import_id, valid);
        assert_eq!(f.organization_id, "1042");
        assert!(f.worker_pid > 0 && !f.worker_host.is_empty());
        assert!(f.message.contains("statement timeout"), "{}", f.message);
        assert!(!f.causes.is_empty() && !f.backtrace.is_empty());
        let (queued, read, write, failed) = (
            seconds(&f.queue_time),
            seconds(&f.read_start_time),
            seconds(&f.write_start_time),
            seconds(&f.fail_time),
        );
        assert!(
            queued <= read && read <= write && write <= failed,
            "timestamps in order: {f:#?}"
        );
        assert!(failed - write >= 0.6, "the write waited for its timeout");
        if f.outcome == pb::ChunkFailureOutcome::RetryScheduled as i32 {
            let due = seconds(&f.retry_time);
            // 200 ms doubling, plus up to as much again of jitter.
            let base = 0.2 * f64::from(1 << i);
            assert!(
                due - failed >= base - 0.05 && due - failed <= 2.0 * base + 0.05,
                "attempt {}: retry after {:.3}s",
                f.attempt,
                due - failed
            );
            let next = first[i + 1];
            assert!(
                seconds(&next.read_start_time) >= due - 0.01,
                "the next attempt waited for its retry time"
            );
        } else {
            assert!(f.retry_time.is_none());
        }
    }
    let all = chunk_failures(&mut developer, &valid).await?;
    let shown = get(&mut developer, &valid).await?;
    let admin_view = get(&mut client, &valid).await?;
    assert!(
        admin_view
            .chunk_failures
            .iter()
            .all(|f| f.backtrace.is_empty() && f.causes.is_empty()),
        "a super admin who is not a developer sees no backtraces"
    );
    assert_eq!(shown.chunk_failure_count as usize, all.len());
    assert_eq!(
        shown.chunk_failures.first().map(|f| f.id.clone()),
        all.first().map(|f| f.id.clone()),
        "GetImport shows the latest failures"
    );

    // The dead-letter queue holds the chunk, with its last error.
    let broker = broker::Broker::connect(&env).await?;
    let dead = broker.take_dead_letter().await?;
    let DeadChunk::V1 {
        chunk,
        attempts,
        error_kind,
        ..
    } = dead;
    let passare_imports_domain::messages::ChunkMessage::V1 { import_id, seq, .. } = chunk;
    assert_eq!(
        (import_id.to_string(), seq, attempts, error_kind.as_str()),
        (valid.clone(), 0, 3, "timeout")
    );
    broker.close().await?;

    // All or nothing: two chunks commit, then a chunk is given up: the
    // import fails and the two chunks' rows are rolled back.
    env.organization(2001).await?;
    let strict = env
        .generated_draft(
            &mut client,
            2001,
            pb::FailurePolicy::StopOnFirstError,
            6_000,
            8,
        )
        .await?;
    files::analyze(&mut client, &strict).await?;
    start(&mut client, &strict).await?;
    wait_until(&mut client, &strict, Duration::from_secs(60), |i| {
        chunks_done(i) >= 2
    })
    .await?;
    // Hold the import, then block its next chunk the way a concurrent
    // writer would: an uncommitted record with a key of that chunk.
    pause(
        &mut client,
        Some(2001),
        "hold the import while its next key is taken",
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let next_seq = chunks_done(&get(&mut client, &strict).await?);
    let mut blocker = env.db.pool().acquire().await?;
    sqlx::query("BEGIN").execute(&mut *blocker).await?;
    sqlx::query(
        "INSERT INTO cases (organization_id, case_number, deceased_first_name, deceased_last_name)
         VALUES (2001, $1, 'Held', 'Back')",
    )
    .bind(format!("C{:08}", next_seq * 100 + 1))
    .execute(&mut *blocker)
    .await?;
    resume(&mut client, Some(2001)).await?;
    let done = wait_terminal(&mut client, &strict).await?;
    sqlx::query("ROLLBACK").execute(&mut *blocker).await?;
    drop(blocker);
    assert_eq!(done.state, pb::ImportState::Failed as i32);
    let error = done.error.clone().context("why it failed")?;
    assert_eq!(error.reason, "CHUNK_FAILED");
    assert!(
        error.message.contains("could not be loaded") && error.message.contains("rows "),
        "{}",
        error.message
    );
    let written = progress(&mut client, &strict).await?;
    assert_eq!(
        written.rows_rolled_back,
        i64::from(next_seq) * 100,
        "every chunk before the blocked one was written, then rolled back: {written:?}"
    );
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM cases WHERE organization_id = 2001"
        )
        .await?,
        0,
        "nothing of the failed all-or-nothing import remains"
    );
    assert!(done.rollback_time.is_some());
    let strict_failures = chunk_failures(&mut client, &strict).await?;
    assert_eq!(
        strict_failures.first().map(|f| f.outcome),
        Some(pb::ChunkFailureOutcome::DeadLettered as i32)
    );
    env.finish().await
}
