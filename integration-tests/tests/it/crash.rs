//! Crashes: the only worker process is killed with SIGKILL, again and again,
//! each time while it is writing a chunk (after a random one to three chunks,
//! the test waits for a session holding the organization's write fence and
//! kills at once),
//! during an all-or-nothing import that updates records of an earlier import
//! and creates new ones; a new worker is started each time. Nothing is lost,
//! nothing is written twice, and the import ends with exactly what its file
//! says — its before-images gone.

use std::time::{Duration, Instant};

use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use rand::Rng;

const ORG: i64 = 1042;
const FIRST_ROWS: u64 = 10_000;
const FIRST_SEED: u64 = 101;
const SECOND_ROWS: u64 = 40_000;
const SECOND_SEED: u64 = 202;
const CHUNK_ROWS: u64 = 1_000;
const MIN_KILLS: usize = 4;
/// Kills stop here: every kill returns the ready notice to the broker, and a
/// test should not lean on the delivery limit of chunk messages either.
const MAX_KILLS: usize = 8;

/// What a kill hit.
#[derive(Debug)]
struct Kill {
    after: Duration,
    chunks_done_before: i32,
    /// The chunk write in flight when the kill was sent.
    write: WriteInFlight,
    /// Whether that write was lost with the worker (rolled back), rather
    /// than committed in the instant before the kill.
    write_lost: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_again_and_again_loses_nothing_and_duplicates_nothing() -> anyhow::Result<()>
{
    let mut env = TestEnv::start(Options {
        chunk_rows: CHUNK_ROWS,
        worker_concurrency: 1,
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let mut worker = env.spawn_worker_process()?;

    // The records the all-or-nothing import will partly update.
    let first = env
        .generated_draft(
            &mut client,
            ORG,
            pb::FailurePolicy::ImportValidRows,
            FIRST_ROWS,
            FIRST_SEED,
        )
        .await?;
    start(&mut client, &first).await?;
    let done = wait_terminal(&mut client, &first).await?;
    assert_eq!(done.state, pb::ImportState::Completed as i32, "{done:?}");
    assert_eq!(
        done.progress.unwrap_or_default().rows_created,
        FIRST_ROWS as i64
    );

    // What the second file implies: the generator numbers cases by row
    // (C00000001…), so its first FIRST_ROWS rows have the first file's keys,
    // with other values (another seed) except where both seeds happened to
    // draw the same row.
    let first_rows = generated_rows(FIRST_ROWS, FIRST_SEED);
    let second_rows = generated_rows(SECOND_ROWS, SECOND_SEED);
    let expect_updated = first_rows
        .iter()
        .zip(&second_rows)
        .filter(|(a, b)| {
            assert_eq!(a[0], b[0], "the generator numbers cases by row");
            a != b
        })
        .count() as i64;
    let expect_unchanged = FIRST_ROWS as i64 - expect_updated;
    let expect_created = (SECOND_ROWS - FIRST_ROWS) as i64;
    assert!(
        expect_updated > FIRST_ROWS as i64 * 9 / 10,
        "another seed changes almost every overlapping row ({expect_updated})"
    );
    let chunks_total = SECOND_ROWS.div_ceil(CHUNK_ROWS) as i32;

    let second = env
        .generated_draft(
            &mut client,
            ORG,
            pb::FailurePolicy::StopOnFirstError,
            SECOND_ROWS,
            SECOND_SEED,
        )
        .await?;
    start(&mut client, &second).await?;
    let started = Instant::now();

    let mut rng = rand::rng();
    let mut kills: Vec<Kill> = Vec::new();
    let mut undo_seen = 0;
    let mut done_at_last_kill = 0;
    while kills.len() < MAX_KILLS {
        // A random one to three chunks between kills, not a random pause:
        // the kills land mid-import however fast this machine writes.
        let wanted = done_at_last_kill + rng.random_range(1..=3);
        let now = wait_until(&mut client, &second, Duration::from_secs(60), |i| {
            is_terminal(i) || chunks_done(i) >= wanted
        })
        .await?;
        if is_terminal(&now) {
            break;
        }
        undo_seen = undo_seen.max(before_images(&env.db).await?);
        // Aim at a write: the kill goes out as soon as a chunk write is seen
        // in flight.
        let Ok(write) = env.wait_for_chunk_write(ORG, Duration::from_secs(20)).await else {
            anyhow::ensure!(
                is_terminal(&get(&mut client, &second).await?),
                "the import neither ended nor wrote a chunk for 20 s"
            );
            break;
        };
        env.kill_worker_process(worker)?;
        env.wait_session_end(write.pid).await?;
        // Only a kill before the import ended counts as landing mid-import.
        let after = get(&mut client, &second).await?;
        if is_terminal(&after) {
            break;
        }
        let done_now = count(
            &env.db,
            &format!(
                "SELECT count(*) FROM chunks WHERE organization_id = {ORG} AND state = 'done'"
            ),
        )
        .await?;
        done_at_last_kill = chunks_done(&after);
        kills.push(Kill {
            after: started.elapsed(),
            chunks_done_before: chunks_done(&now),
            write,
            write_lost: done_now == write.chunks_done,
        });
        worker = env.spawn_worker_process()?;
    }
    println!(
        "{} kills landed mid-import, each while a chunk was written ({} of those writes lost with the worker):",
        kills.len(),
        kills.iter().filter(|k| k.write_lost).count()
    );
    for k in &kills {
        println!(
            "  at {:>6.2?} after the start, {:>2} chunks done, write by session {} {}",
            k.after,
            k.chunks_done_before,
            k.write.pid,
            if k.write_lost {
                "lost"
            } else {
                "committed first"
            }
        );
    }
    assert!(
        kills.len() >= MIN_KILLS,
        "only {} kills landed before the import ended; make the import larger: {kills:?}",
        kills.len()
    );
    assert!(
        kills.iter().any(|k| k.chunks_done_before > 0),
        "no kill came after the import had begun: {kills:?}"
    );
    assert!(
        kills.iter().any(|k| k.write_lost),
        "no kill broke a chunk write: {kills:?}"
    );

    // Wait for the end, watching the before-images while the import runs.
    let deadline = Instant::now() + Duration::from_secs(300);
    let done = loop {
        let now = get(&mut client, &second).await?;
        if is_terminal(&now) {
            break now;
        }
        undo_seen = undo_seen.max(before_images(&env.db).await?);
        anyhow::ensure!(
            Instant::now() < deadline,
            "the import did not finish: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "import ended {:?} after its start; at most {undo_seen} before-images were kept",
        started.elapsed()
    );
    assert_eq!(done.state, pb::ImportState::Completed as i32, "{done:?}");
    let p = done.progress.unwrap_or_default();
    assert_eq!(
        (
            p.rows_processed,
            p.rows_created,
            p.rows_updated,
            p.rows_unchanged,
            p.rows_failed,
            p.rows_stale,
            p.rows_rolled_back
        ),
        (
            SECOND_ROWS as i64,
            expect_created,
            expect_updated,
            expect_unchanged,
            0,
            0,
            0
        )
    );
    assert_eq!(
        (p.chunks_done, p.chunks_total),
        (chunks_total, chunks_total)
    );
    assert_eq!(
        count(
            &env.db,
            &format!("SELECT count(*) FROM chunks WHERE import_id = '{second}' AND state = 'done'")
        )
        .await?,
        chunks_total as i64
    );
    assert_eq!(
        count(&env.db, "SELECT count(*) FROM row_errors").await?,
        0,
        "no row failed"
    );

    // Exactly one record per case number, each with the second file's values.
    assert_eq!(
        count(&env.db, "SELECT count(*) FROM cases").await?,
        SECOND_ROWS as i64
    );
    assert_eq!(
        count(&env.db, "SELECT count(DISTINCT case_number) FROM cases").await?,
        SECOND_ROWS as i64
    );
    let stored = stored_cases(&env.db, ORG).await?;
    assert_eq!(stored.len(), SECOND_ROWS as usize);
    let (first_id, second_id) = (
        uuid::Uuid::parse_str(&first)?,
        uuid::Uuid::parse_str(&second)?,
    );
    let mut checked_updates = 0;
    for (i, row) in second_rows.iter().enumerate() {
        let s = stored
            .get(&row[0])
            .ok_or_else(|| anyhow::anyhow!("case {} is missing", row[0]))?;
        assert_eq!(s.values, normalized(row), "case {}", row[0]);
        let unchanged = (i as u64) < FIRST_ROWS && first_rows[i] == *row;
        // An identical row is left alone, provenance included.
        let writer = if unchanged { first_id } else { second_id };
        assert_eq!(s.source_import_id, Some(writer), "case {}", row[0]);
        if (i as u64) < FIRST_ROWS && !unchanged {
            assert_ne!(
                normalized(&first_rows[i]),
                s.values,
                "case {} was not updated",
                row[0]
            );
            checked_updates += 1;
        }
    }
    assert_eq!(checked_updates, expect_updated);

    // While it ran (its updates all come in its first chunks), the import
    // kept exactly one before-image per record it updated, kills or not.
    assert_eq!(
        undo_seen, expect_updated,
        "before-images kept while the import ran"
    );
    assert_eq!(
        before_images(&env.db).await?,
        0,
        "before-images outlived the completed import"
    );
    let intervals = chunk_intervals(&env.db).await?;
    assert_eq!(
        intervals.len(),
        (FIRST_ROWS.div_ceil(CHUNK_ROWS) + SECOND_ROWS.div_ceil(CHUNK_ROWS)) as usize
    );
    assert_serial_per_org(&intervals)?;
    env.finish().await
}
