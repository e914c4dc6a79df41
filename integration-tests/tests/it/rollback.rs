//! An all-or-nothing rollback too large for one transaction under the chunk
//! timeout still finishes: the workers put the import back in batches, each
//! its own transaction, the import shows ROLLING_BACK with its progress, a
//! worker killed in the middle of a batch costs nothing but that batch, and
//! the organization ends exactly as it was before the import.

use std::time::{Duration, Instant};

use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_store::load;

const ORG: i64 = 1042;
const ROWS: u64 = 100_000;
const CHUNK_ROWS: u64 = 2_000;
/// Each statement of a chunk write or of a rollback batch (IMPORTS_CHUNK_TIMEOUT_MS).
const CHUNK_TIMEOUT_MS: u64 = 1_000;
const BATCH: u64 = 1_000;

fn small_batches(c: &mut Config) {
    c.rollback_batch_rows = BATCH;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_too_large_for_one_transaction_finishes_in_batches_through_a_worker_kill()
-> anyhow::Result<()> {
    let mut env = TestEnv::start(Options {
        chunk_rows: CHUNK_ROWS,
        chunk_timeout_ms: CHUNK_TIMEOUT_MS,
        worker_concurrency: 1,
        in_process_workers: 0,
        configure: Some(small_batches),
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let mut worker = env.spawn_worker_process()?;

    let first = env
        .generated_draft(
            &mut client,
            ORG,
            pb::FailurePolicy::ImportValidRows,
            ROWS,
            1,
        )
        .await?;
    start(&mut client, &first).await?;
    let done = wait_terminal_within(&mut client, &first, Duration::from_secs(300)).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:?}");
    let before = cases_fingerprint(&env, ORG).await?;

    // The second import updates every case; a row of its last chunk names a
    // location that exists when the import is analysed and is gone when the
    // chunk loads, so it fails after writing everything else.
    let (second, _) = env
        .started_with_a_late_failure(
            &mut client,
            ORG,
            pb::FailurePolicy::StopOnFirstError,
            &cases_csv(ROWS, 2)?,
            (ROWS - 100) as usize,
        )
        .await?;

    // Rolling back, with progress: kill the worker in the middle of a batch.
    let rolling = wait_until(&mut client, &second, Duration::from_secs(300), |i| {
        i.rollback.as_ref().is_some_and(|r| r.records_done > 0)
    })
    .await?;
    assert_eq!(state(&rolling), pb::ImportState::RollingBack);
    let total = rolling.rollback.as_ref().map_or(0, |r| r.records_total);
    assert!(
        total > (ROWS - CHUNK_ROWS) as i64 * 9 / 10,
        "it wrote almost every row: {total}"
    );
    let batch = env
        .wait_for_chunk_write(ORG, Duration::from_secs(30))
        .await?;
    env.kill_worker_process(worker)?;
    let killed_at = get(&mut client, &second).await?;
    assert_eq!(state(&killed_at), pb::ImportState::RollingBack);
    let done_at_kill = killed_at.rollback.as_ref().map_or(0, |r| r.records_done);
    assert!(done_at_kill < total, "the kill landed mid-rollback");
    env.wait_session_end(batch.pid).await?;

    // What the batches are for: under a statement timeout that one batch
    // keeps well within, the whole rest in one transaction does not finish
    // (and, failing, changes nothing), while one batch does. The timeout is
    // a tenth of the chunk timeout: since before-images are typed rows, each
    // statement of this test's whole rollback (100,000 records) can finish
    // within the chunk timeout on this machine kind, so at this size the
    // chunk timeout itself no longer tells one transaction from batches.
    let timeout = Duration::from_millis(CHUNK_TIMEOUT_MS / 10);
    let mut conn = env.db.conn().await?;
    let one_go = load::roll_back_batch(&mut conn, ORG, i64::MAX, Some(timeout)).await;
    drop(conn);
    let refused = one_go.as_ref().err().map(|e| e.to_string());
    assert!(
        refused
            .as_ref()
            .is_some_and(|e| e.contains("statement timeout")),
        "the rest of the rollback ({} records) fit in one transaction of {timeout:?}: {one_go:?}",
        total - done_at_kill
    );
    let unchanged = get(&mut client, &second).await?;
    assert_eq!(
        unchanged.rollback.as_ref().map_or(0, |r| r.records_done),
        done_at_kill
    );
    let mut conn = env.db.conn().await?;
    let one_batch = load::roll_back_batch(&mut conn, ORG, BATCH as i64, Some(timeout)).await;
    drop(conn);
    assert!(
        matches!(
            one_batch,
            Ok(Some(load::RollbackStep::Progress { records, .. }))
                if records > 0 && records <= BATCH as i64
        ),
        "one batch of {BATCH} under {timeout:?}: {one_batch:?}"
    );

    let restarted = Instant::now();
    worker = env.spawn_worker_process()?;
    let failed = wait_terminal_within(&mut client, &second, Duration::from_secs(300)).await?;
    println!(
        "rollback of {total} records in batches of {BATCH}: killed after {done_at_kill}, finished {:.1} s after a new worker started",
        restarted.elapsed().as_secs_f64()
    );
    assert_eq!(state(&failed), pb::ImportState::Failed, "{failed:?}");
    assert!(failed.rollback_time.is_some());
    let rollback = failed.rollback.unwrap_or_default();
    assert_eq!(
        (rollback.records_done, rollback.records_total),
        (total, total)
    );
    assert_eq!(rollback.ends_as, pb::ImportState::Failed as i32);
    assert_eq!(
        cases_fingerprint(&env, ORG).await?,
        before,
        "the cases are exactly as before the failed import"
    );
    assert_eq!(before_images(&env.db).await?, 0);
    let steps: Vec<String> = failed.timeline.iter().map(|t| t.kind.clone()).collect();
    let tail: Vec<&str> = steps
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["failed", "rolling_back", "rolled_back"], "{steps:?}");

    // The organization goes on: the next import runs once the rollback ended.
    let third = env
        .generated_draft(
            &mut client,
            ORG,
            pb::FailurePolicy::ImportValidRows,
            1_000,
            3,
        )
        .await?;
    start(&mut client, &third).await?;
    let third = wait_terminal(&mut client, &third).await?;
    assert_eq!(state(&third), pb::ImportState::Completed);
    env.kill_worker_process(worker)?;
    env.finish().await
}

/// A type's before-image is its whole record: the `_undo` table has the
/// import, then exactly the target table's columns with their types, and
/// the image the update keeps names every one of them. A migration adding a
/// column to a target table without its `_undo` table fails here, not in
/// the rollback of a production import.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_keeps_its_whole_record_as_a_before_image() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    async fn columns(env: &TestEnv, table: &str) -> anyhow::Result<Vec<(String, String)>> {
        Ok(passare_imports_store::sqlx::query_as(
            "SELECT column_name::text, format_type(atttypid, atttypmod)
               FROM information_schema.columns c
               JOIN pg_attribute a ON a.attrelid = c.table_name::regclass AND a.attname = c.column_name
              WHERE c.table_schema = current_schema() AND c.table_name = $1
              ORDER BY c.ordinal_position",
        )
        .bind(table)
        .fetch_all(env.db.pool())
        .await?)
    }
    for def in passare_imports_domain::catalog::CATALOG {
        let record = columns(&env, def.target_table).await?;
        assert!(!record.is_empty(), "no table {}", def.target_table);
        let undo = columns(&env, &load::undo_table(def)).await?;
        let mut expected = vec![("import_id".to_string(), "uuid".to_string())];
        expected.extend(record.iter().cloned());
        assert_eq!(undo, expected, "{}'s before-image table", def.key);
        let mut imaged: Vec<&str> = load::imaged_columns(def);
        imaged.sort_unstable();
        let mut stored: Vec<&str> = record.iter().map(|(name, _)| name.as_str()).collect();
        stored.sort_unstable();
        assert_eq!(imaged, stored, "{}'s before-image columns", def.key);
    }
    env.finish().await
}
