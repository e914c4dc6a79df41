//! Stopping and pausing: a stopped queued import never starts, a running one
//! stops after the chunk in hand — keeping what it committed, or leaving
//! nothing behind when it is all-or-nothing; the pause switch holds across
//! worker restarts and under a global pause (workers told that a paused
//! organization has work start nothing), shows on every queued and running
//! import, and resume continues exactly where work stopped — the recorded
//! chunk start times say no chunk started between the pause and the resume.

use std::time::Duration;

use anyhow::Context;
use passare_imports_cli::client::Client;
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_store::sqlx;
use tonic_types::StatusExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_keeps_a_queued_import_from_starting_and_ends_a_running_one_after_its_chunk()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 500,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let running = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            40_000,
            1,
        )
        .await?;
    let queued = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            2_000,
            2,
        )
        .await?;
    start(&mut client, &running).await?;
    wait_until(&mut client, &running, Duration::from_secs(60), |i| {
        chunks_done(i) >= 3
    })
    .await?;
    let waiting = start(&mut client, &queued).await?;
    assert_eq!(state(&waiting), pb::ImportState::Queued);
    assert_eq!(
        waiting.queue_position, 1,
        "one import of the organization runs before it"
    );

    // A queued import never starts.
    let stopped = stop(&mut client, &queued, "wrong file").await?;
    assert_eq!(state(&stopped), pb::ImportState::Stopped);
    let by = stopped.stopped_by.clone().context("who stopped it")?;
    assert_eq!(
        (by.id.as_str(), by.email.as_str()),
        ("admin-1", "admin-1@passare.com")
    );
    assert_eq!(stopped.stop_reason, "wrong file");
    assert!(stopped.stop_time.is_some() && stopped.end_time.is_some());
    assert!(stopped.start_time.is_none(), "it never started");
    assert_eq!(stopped.files[0].state, pb::FileState::Stopped as i32);
    // Stopping again changes nothing.
    let again = stop(&mut client, &queued, "twice").await?;
    assert_eq!(
        (again.stop_time, again.stop_reason.as_str()),
        (stopped.stop_time, "wrong file")
    );

    // A running import stops after the chunk in hand; what it committed stays.
    let ended = stop(&mut client, &running, "client asked to wait").await?;
    assert_eq!(state(&ended), pb::ImportState::Stopped);
    let p = ended.progress.unwrap_or_default();
    assert!(
        p.chunks_done >= 3 && p.chunks_done < p.chunks_total,
        "stopped mid-way: {p:?}"
    );
    assert_eq!(p.rows_created, i64::from(p.chunks_done) * 500);
    assert_eq!(rows_of(&env.db, &running).await?, p.rows_created);
    assert_eq!(
        p.rows_rolled_back, 0,
        "import-valid-rows keeps what it wrote"
    );
    // Nothing moves after the stop returned.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = get(&mut client, &running).await?;
    assert_eq!(later.progress, ended.progress);
    assert_eq!(rows_of(&env.db, &running).await?, p.rows_created);
    let states = chunk_states(&env.db, &running).await?;
    assert_eq!(
        states,
        vec![
            ("done".to_string(), i64::from(p.chunks_done)),
            (
                "skipped".to_string(),
                i64::from(p.chunks_total - p.chunks_done)
            ),
        ]
    );
    let stop_time = ended.stop_time.context("stop time")?;
    let last_finish: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT max(finished_at) FROM chunks WHERE import_id = $1::uuid AND state = 'done'",
    )
    .bind(&running)
    .fetch_one(env.db.pool())
    .await?;
    assert!(
        last_finish.timestamp_micros()
            <= stop_time.seconds * 1_000_000 + i64::from(stop_time.nanos / 1_000),
        "no chunk finished after the stop"
    );
    assert_eq!(rows_of(&env.db, &queued).await?, 0);
    assert_eq!(
        chunk_states(&env.db, &queued).await?,
        vec![("skipped".to_string(), 4)]
    );

    // A finished import cannot be stopped; an unknown one is not found.
    assert_eq!(
        state(&stop(&mut client, &running, "").await?),
        pb::ImportState::Stopped
    );
    let small = env
        .generated_draft(&mut client, 1042, pb::FailurePolicy::ImportValidRows, 10, 3)
        .await?;
    start(&mut client, &small).await?;
    wait_terminal(&mut client, &small).await?;
    let refused = stop(&mut client, &small, "too late")
        .await
        .err()
        .context("a completed import cannot be stopped")?;
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        refused
            .get_error_details()
            .error_info()
            .map(|i| i.reason.as_str()),
        Some("IMPORT_FINISHED")
    );
    let missing = stop(&mut client, &uuid::Uuid::now_v7().to_string(), "")
        .await
        .err()
        .context("unknown import")?;
    assert_eq!(missing.code(), tonic::Code::NotFound);
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_an_all_or_nothing_import_leaves_nothing_behind() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 500,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let first = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            1_000,
            1,
        )
        .await?;
    start(&mut client, &first).await?;
    wait_terminal(&mut client, &first).await?;
    let before = cases_fingerprint(&env, 1042).await?;

    // Updates the 1,000 cases and adds 29,000.
    let strict = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::StopOnFirstError,
            30_000,
            2,
        )
        .await?;
    start(&mut client, &strict).await?;
    wait_until(&mut client, &strict, Duration::from_secs(60), |i| {
        chunks_done(i) >= 4
    })
    .await?;
    let stopping = stop(&mut client, &strict, "wrong organization").await?;
    // The workers put back what it wrote, then it is stopped.
    assert_eq!(state(&stopping), pb::ImportState::RollingBack);
    let rollback = stopping.rollback.unwrap_or_default();
    assert_eq!(rollback.ends_as, pb::ImportState::Stopped as i32);
    assert!(stopping.rollback_time.is_none() && rollback.start_time.is_some());
    let stopped = wait_terminal(&mut client, &strict).await?;
    assert_eq!(state(&stopped), pb::ImportState::Stopped);
    assert!(stopped.rollback_time.is_some());
    let rollback = stopped.rollback.unwrap_or_default();
    let p = stopped.progress.unwrap_or_default();
    assert!(
        p.chunks_done >= 4 && p.chunks_done < p.chunks_total,
        "{p:?}"
    );
    assert_eq!(
        (p.rows_created, p.rows_updated, p.rows_unchanged),
        (0, 0, 0)
    );
    let wrote: i64 = sqlx::query_scalar(
        "SELECT sum(rows_created + rows_updated)::bigint FROM chunks WHERE import_id = $1::uuid",
    )
    .bind(&strict)
    .fetch_one(env.db.pool())
    .await?;
    assert!(
        wrote > 1_000,
        "it had written the updates and more: {wrote}"
    );
    assert_eq!(p.rows_rolled_back, wrote);
    assert_eq!(
        (rollback.records_done, rollback.records_total),
        (wrote, wrote)
    );
    assert_eq!(rows_of(&env.db, &strict).await?, 0);
    assert_eq!(
        cases_fingerprint(&env, 1042).await?,
        before,
        "the organization's cases are exactly as before the stopped import"
    );
    assert_eq!(before_images(&env.db).await?, 0);

    // A draft that never ran is stopped without a rollback: nothing was written.
    let draft = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::StopOnFirstError,
            10,
            3,
        )
        .await?;
    let abandoned = stop(&mut client, &draft, "not needed").await?;
    assert_eq!(state(&abandoned), pb::ImportState::Stopped);
    assert!(
        abandoned.rollback_time.is_none() && abandoned.start_time.is_none(),
        "{:?} {:?}",
        abandoned.rollback_time,
        abandoned.start_time
    );
    assert_eq!(abandoned.files[0].state, pb::FileState::Stopped as i32);
    let steps: Vec<&str> = abandoned.timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(steps, vec!["created", "file_added", "stopped"]);
    env.finish().await
}

/// Follows an import and returns every event until it ends.
async fn watch_events(mut client: Client, id: String) -> anyhow::Result<Vec<pb::Import>> {
    Ok(watch_all(&mut client, &id)
        .await?
        .into_iter()
        .filter_map(|e| e.import)
        .collect())
}

/// Announces `orgs` to the workers (a ready notice each, as a start or a
/// resume publishes), waits until a worker has taken every notice, and gives
/// it a moment to act on them.
async fn wake_workers(env: &TestEnv, orgs: &[i64]) -> anyhow::Result<()> {
    let broker = broker::Broker::connect(env).await?;
    for org in orgs {
        broker.announce(*org).await?;
    }
    broker.wait_notices_taken(Duration::from_secs(30)).await?;
    broker.close().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

/// Checks from the recorded chunk times that exactly `before` chunks of the
/// import started before `resumed_at` and every other one at or after it.
async fn started_only_after_the_resume(
    env: &TestEnv,
    import_id: &str,
    before: usize,
    resumed_at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let chunks = chunks_of(&env.db, import_id).await?;
    let (early, late): (Vec<_>, Vec<_>) = chunks
        .iter()
        .partition(|c| c.started.is_some_and(|t| t < resumed_at));
    anyhow::ensure!(
        early.len() == before,
        "{} chunks of {import_id} started before the resume, {before} expected: {early:#?}",
        early.len()
    );
    anyhow::ensure!(
        late.iter()
            .all(|c| c.state == "done" && c.started.is_some_and(|t| t >= resumed_at)),
        "chunks of {import_id} not loaded after the resume: {late:#?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pause_switch_holds_across_worker_restarts_and_resume_continues_where_work_stopped()
-> anyhow::Result<()> {
    let mut env = TestEnv::start(Options {
        chunk_rows: 500,
        worker_concurrency: 2,
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    env.organization(2001).await?;
    let worker = env.spawn_worker_process()?;
    let mut client = env.client().await?;
    let held = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            25_000,
            1,
        )
        .await?;
    let other = env
        .generated_draft(
            &mut client,
            2001,
            pb::FailurePolicy::ImportValidRows,
            10_000,
            2,
        )
        .await?;
    let watcher = tokio::spawn(watch_events(client.clone(), held.clone()));
    start(&mut client, &held).await?;
    wait_until(&mut client, &held, Duration::from_secs(60), |i| {
        chunks_done(i) >= 2
    })
    .await?;

    // Pause one organization: the chunk in hand finishes, nothing new starts.
    let paused = pause(&mut client, Some(1042), "checking the client's data").await?;
    assert_eq!(paused.organization_id, "1042");
    let shown = wait_until(&mut client, &held, Duration::from_secs(10), |i| {
        state(i) == pb::ImportState::Paused
    })
    .await?;
    let pause_shown = shown.pause.clone().context("the pause is shown")?;
    assert_eq!(pause_shown.reason, "checking the client's data");
    assert_eq!(
        pause_shown.paused_by.map(|u| u.id),
        Some("admin-1".to_string())
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    anyhow::ensure!(
        env.chunk_write_in_flight(1042).await?.is_none(),
        "a chunk of the paused organization is being written"
    );
    let settled = chunks_done(&get(&mut client, &held).await?);

    // The other organization is not paused and finishes meanwhile.
    start(&mut client, &other).await?;
    let other_done = wait_terminal(&mut client, &other).await?;
    assert_eq!(other_done.state, pb::ImportState::Completed as i32);

    // A worker killed and started again while paused starts nothing, even
    // when it is told the organization has work.
    env.kill_worker_process(worker)?;
    env.spawn_worker_process()?;
    wake_workers(&env, &[1042]).await?;
    let still = get(&mut client, &held).await?;
    assert_eq!(state(&still), pb::ImportState::Paused);
    assert_eq!(
        chunks_done(&still),
        settled,
        "no chunk started while paused"
    );

    // Every organization paused, for another reason; an import started now
    // queues and shows the pause too.
    pause(&mut client, None, "deploying a fix").await?;
    let pauses = client
        .list_pauses(pb::ListPausesRequest {})
        .await?
        .into_inner()
        .pauses;
    let scopes: Vec<&str> = pauses.iter().map(|p| p.organization_id.as_str()).collect();
    assert_eq!(
        scopes,
        vec!["", "1042"],
        "the pause of every organization first"
    );
    let queued = env
        .generated_draft(
            &mut client,
            2001,
            pb::FailurePolicy::ImportValidRows,
            1_000,
            3,
        )
        .await?;
    let queued_view = start(&mut client, &queued).await?;
    assert_eq!(state(&queued_view), pb::ImportState::Paused);
    assert_eq!(
        queued_view.pause.map(|p| p.reason),
        Some("deploying a fix".to_string())
    );

    // Lifting one organization's pause leaves the pause of every one: told
    // that both organizations have work, the worker starts nothing.
    let lifted = resume(&mut client, Some(1042)).await?;
    assert_eq!(
        lifted.lifted.map(|p| p.reason),
        Some("checking the client's data".to_string())
    );
    wake_workers(&env, &[1042, 2001]).await?;
    let held_now = get(&mut client, &held).await?;
    assert_eq!(state(&held_now), pb::ImportState::Paused);
    assert_eq!(
        held_now.pause.as_ref().map(|p| p.reason.clone()),
        Some("deploying a fix".to_string())
    );
    assert_eq!(chunks_done(&held_now), settled);
    assert_eq!(chunks_done(&get(&mut client, &queued).await?), 0);

    // Resuming every organization continues exactly where work stopped.
    let resumed_at = chrono::Utc::now();
    let all = resume(&mut client, None).await?;
    assert!(all.pauses.is_empty(), "{:?}", all.pauses);
    let done = wait_terminal(&mut client, &held).await?;
    assert_eq!(done.state, pb::ImportState::Completed as i32);
    let p = done.progress.unwrap_or_default();
    assert_eq!((p.rows_created, p.chunks_done), (25_000, 50));
    assert_eq!(rows_of(&env.db, &held).await?, 25_000);
    let queued_done = wait_terminal(&mut client, &queued).await?;
    assert_eq!(queued_done.state, pb::ImportState::Completed as i32);

    // From the recorded chunk times: the chunks done before the pause took
    // effect are the only ones that started before the resume; every other
    // chunk of both imports started after it.
    started_only_after_the_resume(&env, &held, settled as usize, resumed_at).await?;
    started_only_after_the_resume(&env, &queued, 0, resumed_at).await?;
    let paused_at = shown
        .pause
        .and_then(|p| p.pause_time)
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32))
        .context("pause time")?;
    let intervals = chunk_intervals(&env.db).await?;
    let held_id: uuid::Uuid = held.parse()?;
    let during: Vec<&Interval> = intervals
        .iter()
        // A chunk taken in the instant the pause was committed is in hand.
        .filter(|i| {
            i.import_id == held_id && i.started > paused_at + chrono::Duration::milliseconds(200)
        })
        .filter(|i| i.started < resumed_at)
        .collect();
    assert!(
        during.is_empty(),
        "chunks started while paused: {during:#?}"
    );
    assert_serial_per_org(&intervals)?;

    // Watchers saw the pause and the end.
    let events = tokio::time::timeout(Duration::from_secs(30), watcher).await???;
    let seen: Vec<pb::ImportState> = events.iter().map(state).collect();
    let paused_seen = seen.iter().position(|s| *s == pb::ImportState::Paused);
    assert!(paused_seen.is_some(), "{seen:?}");
    assert_eq!(seen.last(), Some(&pb::ImportState::Completed));

    // Bad requests are told apart.
    let no_reason = pause(&mut client, Some(1042), "  ")
        .await
        .err()
        .context("a pause needs a reason")?;
    assert_eq!(no_reason.code(), tonic::Code::InvalidArgument);
    let unknown = pause(&mut client, Some(999_999), "x")
        .await
        .err()
        .context("no such organization")?;
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let nothing = resume(&mut client, Some(1042)).await?;
    assert!(
        nothing.lifted.is_none(),
        "resuming what is not paused changes nothing"
    );
    env.finish().await
}
