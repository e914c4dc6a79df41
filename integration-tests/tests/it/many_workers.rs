//! Many workers, many organizations: three worker processes share four
//! organizations that each start three imports at once. Each organization's
//! chunks run one at a time and in start order; the organizations run side by
//! side; an all-or-nothing import that fails late is rolled back while the
//! next import of its organization still runs; and no organization is left
//! waiting while a worker is idle.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_store::sqlx::{self, Row};

const WORKERS: usize = 3;
const CHUNK_ROWS: u64 = 500;
/// The organization whose all-or-nothing import fails late.
const ROLLBACK_ORG: i64 = 2002;
const ANNEX: &str = "Annex Chapel";
/// Longest a waiting organization may find a worker idle (see [`waits`]).
const IDLE_LIMIT: Duration = Duration::from_secs(5);

/// `n` generated rows whose case numbers are `{prefix}00001`….
fn rows_for(prefix: &str, n: u64, seed: u64) -> Vec<CaseValues> {
    let mut rows = generated_rows(n, seed);
    for (i, r) in rows.iter_mut().enumerate() {
        r[0] = format!("{prefix}{:05}", i + 1);
    }
    rows
}

/// One import of the test and what must become of it.
struct Plan {
    org: i64,
    label: &'static str,
    policy: pb::FailurePolicy,
    rows: Vec<CaseValues>,
    /// 1-based rows that fail (an invalid date), under IMPORT_VALID_ROWS.
    bad_rows: Vec<usize>,
    id: String,
}

impl Plan {
    fn new(org: i64, label: &'static str, rows: Vec<CaseValues>) -> Self {
        Self {
            org,
            label,
            policy: pb::FailurePolicy::ImportValidRows,
            rows,
            bad_rows: Vec::new(),
            id: String::new(),
        }
    }

    fn chunks(&self) -> i32 {
        (self.rows.len() as u64).div_ceil(CHUNK_ROWS) as i32
    }
}

/// A chunk that ran (done, or failed and rolled back), with when it was queued.
#[derive(Debug, Clone)]
struct Run {
    interval: Interval,
    queued: DateTime<Utc>,
}

async fn runs(db: &passare_imports_store::Db) -> anyhow::Result<Vec<Run>> {
    let rows = sqlx::query(
        "SELECT c.import_id, c.organization_id, i.queue_seq, c.queued_at, c.started_at,
                c.finished_at, c.worker
           FROM chunks c JOIN imports i ON i.id = c.import_id
          WHERE c.started_at IS NOT NULL AND c.finished_at IS NOT NULL
          ORDER BY c.started_at",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Run {
                interval: Interval {
                    import_id: r.try_get("import_id")?,
                    organization_id: r.try_get("organization_id")?,
                    queue_seq: r.try_get("queue_seq")?,
                    started: r.try_get("started_at")?,
                    finished: r.try_get("finished_at")?,
                    worker: r
                        .try_get::<Option<String>, _>("worker")?
                        .unwrap_or_default(),
                },
                queued: r.try_get("queued_at")?,
            })
        })
        .collect()
}

/// What [`waits`] found.
#[derive(Debug, Default)]
struct Waits {
    /// Longest wait of an organization for its next chunk: (org, length).
    max_gap: (i64, Duration),
    /// Longest stretch within any wait during which fewer chunks than worker
    /// slots were running: (org, from, length).
    max_idle: (i64, Option<DateTime<Utc>>, Duration),
}

/// "No organization waits while a worker is idle", measured from the
/// recorded chunk intervals.
///
/// For every organization, a wait is the time between the end of one of its
/// chunks and the start of its next one — counted from when that next chunk
/// was queued if later (an import started after the previous one ended was
/// not waiting) — and, before its first chunk, the time from its first
/// queued chunk to that chunk's start. The organization then had work and
/// none of it was running. Within each wait we look at how many chunks of
/// any organization were running; a stretch during which fewer than `slots`
/// (every worker slot) were running is a worker idle while this
/// organization waited. Such stretches are normal but short: the hand-off
/// of an organization from one worker to another (release the lease,
/// re-announce, another slot takes the notice and the lease) takes
/// milliseconds. A stretch longer than [`IDLE_LIMIT`] (5 s) is far above
/// that latency and far below the 60 s sweep this test configures, so it
/// catches an organization whose notice was lost and that only the sweep
/// would have got going again.
fn waits(runs: &[Run], slots: usize) -> Waits {
    let mut out = Waits::default();
    let mut orgs: Vec<i64> = runs.iter().map(|r| r.interval.organization_id).collect();
    orgs.sort_unstable();
    orgs.dedup();
    for org in orgs {
        let mut mine: Vec<&Run> = runs
            .iter()
            .filter(|r| r.interval.organization_id == org)
            .collect();
        mine.sort_by_key(|r| r.interval.started);
        let mut gaps = Vec::new();
        if let (Some(first), Some(queued)) = (mine.first(), mine.iter().map(|r| r.queued).min()) {
            gaps.push((queued, first.interval.started));
        }
        for pair in mine.windows(2) {
            let from = pair[0].interval.finished.max(pair[1].queued);
            gaps.push((from, pair[1].interval.started));
        }
        for (from, to) in gaps {
            if to <= from {
                continue;
            }
            let gap = (to - from).to_std().unwrap_or_default();
            if gap > out.max_gap.1 {
                out.max_gap = (org, gap);
            }
            // Running chunks are constant between consecutive boundaries.
            let mut points: Vec<DateTime<Utc>> = vec![from, to];
            for r in runs {
                for t in [r.interval.started, r.interval.finished] {
                    if t > from && t < to {
                        points.push(t);
                    }
                }
            }
            points.sort_unstable();
            points.dedup();
            let mut idle_since: Option<DateTime<Utc>> = None;
            for seg in points.windows(2) {
                let (t0, t1) = (seg[0], seg[1]);
                let running = runs
                    .iter()
                    .filter(|r| r.interval.started <= t0 && r.interval.finished >= t1)
                    .count();
                if running < slots {
                    let since = *idle_since.get_or_insert(t0);
                    let idle = (t1 - since).to_std().unwrap_or_default();
                    if idle > out.max_idle.2 {
                        out.max_idle = (org, Some(since), idle);
                    }
                } else {
                    idle_since = None;
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_workers_and_organizations_keep_one_chunk_per_organization_and_leave_no_one_waiting()
-> anyhow::Result<()> {
    let mut env = TestEnv::start(Options {
        chunk_rows: CHUNK_ROWS,
        worker_concurrency: 1,
        in_process_workers: 0,
        // Short slices: organizations rotate among the workers.
        drain_max_secs: 2,
        // Long enough that an organization waiting for the sweep shows.
        sweep_secs: 60,
        ..Options::default()
    })
    .await?;
    let orgs = [1042, 2001, ROLLBACK_ORG, 2003];
    for org in &orgs[1..] {
        env.organization(*org).await?;
    }
    // A location only the failing import's late row names; it goes away
    // between the analysis and the load (below).
    sqlx::query("INSERT INTO locations (organization_id, name) VALUES ($1, $2)")
        .bind(ROLLBACK_ORG)
        .bind(ANNEX)
        .execute(env.db.pool())
        .await?;
    for _ in 0..WORKERS {
        env.spawn_worker_process()?;
    }

    let mut plans: Vec<Plan> = Vec::new();
    for (n, org) in orgs.iter().enumerate() {
        let seed = 10 * n as u64;
        plans.push(Plan::new(*org, "A", rows_for("A", 6_000, seed + 1)));
        plans.push(Plan::new(*org, "B", rows_for("B", 4_000, seed + 2)));
        plans.push(Plan::new(*org, "C", rows_for("C", 4_000, seed + 3)));
    }
    // 2001's second import has two rows with an invalid date: they fail,
    // the rest is imported.
    {
        let p = &mut plans[4];
        assert_eq!((p.org, p.label), (2001, "B"));
        p.bad_rows = vec![1_234, 2_900];
        for row in p.bad_rows.clone() {
            p.rows[row - 1][5] = "not a date".into();
        }
    }
    // 2002's second import is all-or-nothing: its first 2,000 rows update
    // records of 2002's first import (other values), the next 2,000 are new,
    // and row 3,300 (chunk 7 of 8) names the location that will be gone.
    const BAD_ROW: usize = 3_300;
    {
        let p = &mut plans[7];
        assert_eq!((p.org, p.label), (ROLLBACK_ORG, "B"));
        p.policy = pb::FailurePolicy::StopOnFirstError;
        let mut rows = rows_for("A", 2_000, 99);
        rows.extend(rows_for("B", 2_000, 98));
        rows[BAD_ROW - 1][10] = ANNEX.into();
        p.rows = rows;
    }

    let mut client = env.client().await?;
    for p in plans.iter_mut() {
        let name = format!("{}-{}.csv", p.org, p.label);
        let (id, file) = env
            .draft_with_file(&mut client, p.org, p.policy, &name, &cases_csv_of(&p.rows))
            .await?;
        assert_eq!(file.row_count, p.rows.len() as i64, "{name}");
        let report = files::analyze(&mut client, &id).await?;
        assert!(
            !report.blocking,
            "{name} is blocked: {:?}",
            report.files.iter().map(|f| &f.findings).collect::<Vec<_>>()
        );
        assert_eq!(report.rows_failing, p.bad_rows.len() as i64, "{name}");
        p.id = id;
    }
    // Analysed with the location; loaded without it: the row fails only at
    // load, late in the import (a row analysis already rejects would keep
    // an all-or-nothing import from starting at all).
    let removed = sqlx::query("DELETE FROM locations WHERE organization_id = $1 AND name = $2")
        .bind(ROLLBACK_ORG)
        .bind(ANNEX)
        .execute(env.db.pool())
        .await?
        .rows_affected();
    assert_eq!(removed, 1);

    // The four organizations start together, each its three imports in turn.
    let began = std::time::Instant::now();
    let starts = orgs.iter().map(|org| {
        let mut c = client.clone();
        let ids: Vec<String> = plans
            .iter()
            .filter(|p| p.org == *org)
            .map(|p| p.id.clone())
            .collect();
        async move {
            for id in ids {
                let started = start(&mut c, &id).await?;
                anyhow::ensure!(
                    started.state == pb::ImportState::Queued as i32
                        || started.state == pb::ImportState::Running as i32,
                    "{id} did not start: {started:?}"
                );
            }
            anyhow::Ok(())
        }
    });
    futures::future::try_join_all(starts).await?;

    let mut ended = BTreeMap::new();
    for p in &plans {
        ended.insert(p.id.clone(), wait_terminal(&mut client, &p.id).await?);
    }
    let took = began.elapsed();

    // Every import in its expected state with exact counts.
    let first_of_2002 = plans[6].rows.clone();
    for p in &plans {
        let done = &ended[&p.id];
        let pr = done.progress.unwrap_or_default();
        let what = format!("{}-{}: {:?}", p.org, p.label, done);
        let total = p.rows.len() as i64;
        if p.policy == pb::FailurePolicy::StopOnFirstError {
            assert_eq!(done.state, pb::ImportState::Failed as i32, "{what}");
            let problem = done
                .error
                .as_ref()
                .and_then(|e| e.problem.clone())
                .unwrap_or_default();
            assert_eq!(
                (problem.row, problem.column.as_str(), problem.value.as_str()),
                (BAD_ROW as i64, "location_name", ANNEX),
                "{what}"
            );
            // Chunks 1–6 were written, then put back; chunk 7 failed; chunk 8
            // never ran.
            let written = (BAD_ROW as u64 / CHUNK_ROWS) as usize * CHUNK_ROWS as usize;
            let updated = p.rows[..2_000]
                .iter()
                .zip(&first_of_2002)
                .filter(|(b, a)| a != b)
                .count() as i64;
            let created = (written - 2_000) as i64;
            assert_eq!(
                (
                    pr.rows_processed,
                    pr.rows_created,
                    pr.rows_updated,
                    pr.rows_unchanged,
                    pr.rows_failed,
                    pr.rows_rolled_back
                ),
                (
                    written as i64 + CHUNK_ROWS as i64,
                    0,
                    0,
                    0,
                    1,
                    created + updated
                ),
                "{what}"
            );
            let states = count(
                &env.db,
                &format!(
                    "SELECT count(*) FILTER (WHERE state = 'done') * 10000
                          + count(*) FILTER (WHERE state = 'failed') * 100
                          + count(*) FILTER (WHERE state = 'skipped')
                       FROM chunks WHERE import_id = '{}'",
                    p.id
                ),
            )
            .await?;
            assert_eq!(
                states,
                6 * 10_000 + 100 + 1,
                "6 done, 1 failed, 1 skipped: {what}"
            );
            assert_eq!(
                count(
                    &env.db,
                    &format!(
                        "SELECT count(*) FROM cases WHERE source_import_id = '{}'",
                        p.id
                    )
                )
                .await?,
                0,
                "records of the failed import remain"
            );
        } else {
            let failed = p.bad_rows.len() as i64;
            let state = if failed > 0 {
                pb::ImportState::CompletedWithErrors
            } else {
                pb::ImportState::Completed
            };
            assert_eq!(done.state, state as i32, "{what}");
            assert_eq!(
                (
                    pr.rows_processed,
                    pr.rows_created,
                    pr.rows_updated,
                    pr.rows_unchanged,
                    pr.rows_failed,
                    pr.chunks_done,
                    pr.chunks_total
                ),
                (total, total - failed, 0, 0, failed, p.chunks(), p.chunks()),
                "{what}"
            );
            let rows: Vec<i64> = done.files[0].problems.iter().map(|x| x.row).collect();
            let expected: Vec<i64> = p.bad_rows.iter().map(|r| *r as i64).collect();
            assert_eq!(rows, expected, "{what}");
        }
    }
    assert_eq!(
        before_images(&env.db).await?,
        0,
        "before-images outlived their imports"
    );

    // Exactly the expected records, with their values and last writer: the
    // failed import's updates put back, its creations gone.
    for org in orgs {
        let mut expected: BTreeMap<String, (CaseValues, String)> = BTreeMap::new();
        for p in plans.iter().filter(|p| p.org == org) {
            if p.policy == pb::FailurePolicy::StopOnFirstError {
                continue;
            }
            for (i, row) in p.rows.iter().enumerate() {
                if !p.bad_rows.contains(&(i + 1)) {
                    expected.insert(row[0].clone(), (normalized(row), p.id.clone()));
                }
            }
        }
        let stored = stored_cases(&env.db, org).await?;
        assert_eq!(
            stored.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "organization {org}: case numbers"
        );
        for (key, (values, id)) in &expected {
            let s = &stored[key];
            assert_eq!(&s.values, values, "organization {org}, case {key}");
            assert_eq!(
                s.source_import_id.map(|u| u.to_string()).as_deref(),
                Some(id.as_str()),
                "organization {org}, case {key}"
            );
        }
    }

    // One chunk at a time per organization, imports in start order.
    let runs = runs(&env.db).await?;
    let intervals: Vec<Interval> = runs.iter().map(|r| r.interval.clone()).collect();
    let expected_runs: i32 = plans
        .iter()
        .map(|p| {
            if p.policy == pb::FailurePolicy::StopOnFirstError {
                (BAD_ROW as u64).div_ceil(CHUNK_ROWS) as i32
            } else {
                p.chunks()
            }
        })
        .sum();
    assert_eq!(intervals.len(), expected_runs as usize);
    assert_serial_per_org(&intervals)?;
    for org in orgs {
        let ids: Vec<&str> = plans
            .iter()
            .filter(|p| p.org == org)
            .map(|p| p.id.as_str())
            .collect();
        let order: Vec<String> = intervals
            .iter()
            .filter(|i| i.organization_id == org)
            .map(|i| i.import_id.to_string())
            .fold(Vec::new(), |mut v, id| {
                if v.last() != Some(&id) {
                    v.push(id);
                }
                v
            });
        assert_eq!(
            order, ids,
            "organization {org}: imports whole and in start order"
        );
        let others: Vec<i64> = orgs
            .iter()
            .copied()
            .filter(|o| *o != org && orgs_overlap(&intervals, org, *o))
            .collect();
        assert!(
            !others.is_empty(),
            "organization {org} ran alone: {intervals:#?}"
        );
    }
    let mut by_worker: BTreeMap<&str, usize> = BTreeMap::new();
    for i in &intervals {
        *by_worker.entry(i.worker.as_str()).or_default() += 1;
    }
    assert_eq!(
        by_worker.len(),
        WORKERS,
        "every worker process loaded chunks: {by_worker:?}"
    );

    // Hand-offs: consecutive chunks of an organization loaded by different
    // workers (the 2 s slices rotate organizations among the workers).
    let handoffs: usize = orgs
        .iter()
        .map(|org| {
            let mine: Vec<&Interval> = intervals
                .iter()
                .filter(|i| i.organization_id == *org)
                .collect();
            mine.windows(2)
                .filter(|w| w[0].worker != w[1].worker)
                .count()
        })
        .sum();

    let w = waits(&runs, WORKERS);
    println!(
        "{} chunks of {} imports in {took:.1?}; chunks by worker: {by_worker:?}; {handoffs} hand-offs of an organization between workers",
        intervals.len(),
        plans.len()
    );
    println!(
        "longest wait of an organization for its next chunk: {:.3?} (organization {})",
        w.max_gap.1, w.max_gap.0
    );
    println!(
        "longest time a worker slot was idle while an organization waited: {:.3?} (organization {}, from {:?})",
        w.max_idle.2, w.max_idle.0, w.max_idle.1
    );
    assert!(
        w.max_idle.2 <= IDLE_LIMIT,
        "organization {} waited {:?} from {:?} while a worker was idle",
        w.max_idle.0,
        w.max_idle.2,
        w.max_idle.1
    );
    env.finish().await
}

/// The criterion itself, on made-up intervals: a wait while every slot is
/// busy is fine, a wait while a slot idles longer than the limit is not.
#[test]
fn the_idle_while_waiting_criterion_tells_busy_from_idle() {
    let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default();
    let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
    let run = |org: i64, worker: &str, from: i64, to: i64| Run {
        interval: Interval {
            import_id: uuid::Uuid::nil(),
            organization_id: org,
            queue_seq: org,
            started: at(from),
            finished: at(to),
            worker: worker.into(),
        },
        queued: t0,
    };
    // Organization 4 waits 0–8 s, while two slots of two are busy all along.
    let busy = vec![
        run(1, "w1", 0, 8_000),
        run(2, "w2", 0, 8_000),
        run(4, "w1", 8_000, 9_000),
    ];
    let w = waits(&busy, 2);
    assert_eq!(w.max_gap, (4, Duration::from_secs(8)));
    assert_eq!(w.max_idle.2, Duration::ZERO);
    // The same wait, but worker 2 idles from 1 s to 8 s.
    let idle = vec![
        run(1, "w1", 0, 8_000),
        run(2, "w2", 0, 1_000),
        run(4, "w1", 8_000, 9_000),
    ];
    let w = waits(&idle, 2);
    assert_eq!((w.max_idle.0, w.max_idle.1), (4, Some(at(1_000))));
    assert_eq!(w.max_idle.2, Duration::from_secs(7));
    assert!(w.max_idle.2 > IDLE_LIMIT);
}
