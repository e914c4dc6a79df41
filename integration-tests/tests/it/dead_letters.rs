//! Dead letters: a chunk forced into the dead-letter queue (its table
//! locked past its retries) is listed, cannot be requeued while its import
//! runs, is requeued once the import ended — its rows load exactly once, as
//! the import's next attempt through the ordered queue — and the audit log
//! names who did it; a second requeue is harmless; its copy leaves the
//! broker's dead-letter queue. An all-or-nothing import's dead letter is
//! refused a requeue and discarded with a reason. Plain users may do
//! neither. Several dead chunks of one import make one new attempt;
//! RetryFailedRows takes an import's dead letters along; the CLI lists,
//! requeues and discards.

use std::time::Duration;

use passare_imports_cli::client::Client;
use passare_imports_integration_tests::broker::Broker;
use passare_imports_integration_tests::table_lock::{TableLock, wait_for_failure};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

const ORG: i64 = 1042;

fn options() -> Options {
    Options {
        chunk_rows: 100,
        retry_max_attempts: 3,
        retry_base_ms: 200,
        chunk_timeout_ms: 700,
        ..Options::default()
    }
}

async fn dead_letters(client: &mut Client, all: bool) -> anyhow::Result<Vec<pb::DeadLetter>> {
    Ok(client
        .list_dead_letters(pb::ListDeadLettersRequest {
            include_resolved: all,
            ..Default::default()
        })
        .await?
        .into_inner()
        .dead_letters)
}

async fn requeue(
    client: &mut Client,
    chunks: &[i64],
) -> Result<pb::RequeueDeadLettersResponse, tonic::Status> {
    Ok(client
        .requeue_dead_letters(pb::RequeueDeadLettersRequest {
            chunk_ids: chunks.to_vec(),
        })
        .await?
        .into_inner())
}

async fn audited(
    client: &mut Client,
    import_id: &str,
    action: &str,
) -> anyhow::Result<Vec<pb::AuditEvent>> {
    Ok(client
        .list_audit_events(pb::ListAuditEventsRequest {
            import_id: import_id.into(),
            action: action.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .events)
}

/// An import of 300 rows whose first chunk is dead-lettered (the cases
/// table is locked past its three attempts); returns it with the lock still
/// held, so its other chunks wait.
async fn with_a_dead_chunk(
    env: &TestEnv,
    client: &mut Client,
    policy: pb::FailurePolicy,
    seed: u64,
) -> anyhow::Result<(String, TableLock)> {
    let id = env.generated_draft(client, ORG, policy, 300, seed).await?;
    files::analyze(client, &id).await?;
    let lock = TableLock::take(env).await?;
    start(client, &id).await?;
    let mut developer = env.client_as(&DEVELOPER).await?;
    wait_for_failure(
        &mut developer,
        &id,
        0,
        pb::ChunkFailureOutcome::DeadLettered,
    )
    .await?;
    Ok((id, lock))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_requeued_once_and_loaded_exactly_once() -> anyhow::Result<()> {
    let env = TestEnv::start(options()).await?;
    let mut client = env.client().await?;
    let broker = Broker::connect(&env).await?;
    let (id, lock) =
        with_a_dead_chunk(&env, &mut client, pb::FailurePolicy::ImportValidRows, 7).await?;

    let waiting = dead_letters(&mut client, false).await?;
    assert_eq!(waiting.len(), 1, "{waiting:#?}");
    let dead = &waiting[0];
    assert_eq!((dead.import_id.as_str(), dead.chunk_seq), (id.as_str(), 0));
    assert_eq!((dead.first_row, dead.last_row, dead.attempts), (1, 100, 3));
    assert_eq!(dead.outcome, pb::ChunkFailureOutcome::DeadLettered as i32);
    assert_eq!(
        dead.resolution,
        pb::DeadLetterResolution::Unspecified as i32
    );
    let monitor = client
        .get_queue_monitor(pb::GetQueueMonitorRequest::default())
        .await?
        .into_inner();
    assert_eq!(monitor.totals.map(|t| t.dead_lettered_chunks), Some(1));
    assert_eq!(
        broker.dead_messages().await?,
        1,
        "its copy waits in the broker"
    );

    // While the import runs, a requeue is refused: its other chunks go on.
    let early = requeue(&mut client, &[dead.chunk_id])
        .await
        .expect_err("still running");
    assert_eq!(early.code(), tonic::Code::FailedPrecondition);
    assert_eq!(error_reason(&early), "IMPORT_STILL_RUNNING");
    lock.release().await?;
    let ended = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&ended), pb::ImportState::CompletedWithErrors);
    assert_eq!(count(&env.db, "SELECT count(*) FROM cases").await?, 200);

    // Plain users may neither list nor requeue.
    let mut member = env.client_as(&MEMBER).await?;
    for denied in [
        member
            .list_dead_letters(pb::ListDeadLettersRequest::default())
            .await
            .err(),
        requeue(&mut member, &[dead.chunk_id]).await.err(),
    ] {
        assert_eq!(
            denied.map(|s| s.code()),
            Some(tonic::Code::PermissionDenied)
        );
    }

    let done = requeue(&mut client, &[dead.chunk_id]).await?;
    assert_eq!(done.requeued_chunk_ids, vec![dead.chunk_id]);
    assert_eq!(done.imports.first().map(|i| i.attempt), Some(2));
    let finished = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&finished), pb::ImportState::Completed, "{finished:?}");
    assert_eq!(finished.attempt, 2);
    assert_eq!(count(&env.db, "SELECT count(*) FROM cases").await?, 300);
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM (SELECT DISTINCT case_number FROM cases
               WHERE case_number BETWEEN 'C00000001' AND 'C00000100') k"
        )
        .await?,
        100,
        "the dead chunk's rows, loaded once"
    );

    let all = dead_letters(&mut client, true).await?;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].resolution, pb::DeadLetterResolution::Requeued as i32);
    assert_eq!(all[0].requeued_attempt, 2);
    assert_eq!(
        all[0].resolved_by.as_ref().map(|u| u.id.as_str()),
        Some(ADMIN.id)
    );
    assert!(dead_letters(&mut client, false).await?.is_empty());
    let audit = audited(&mut client, &id, "requeue_dead_letters").await?;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        audit[0].actor.as_ref().map(|u| u.id.as_str()),
        Some(ADMIN.id)
    );
    assert!(
        audit[0].details.contains(&dead.chunk_id.to_string()),
        "{}",
        audit[0].details
    );
    wait_until_empty(&broker).await?;

    // Again: nothing happens, and the answer says why.
    let again = requeue(&mut client, &[dead.chunk_id]).await?;
    assert!(again.requeued_chunk_ids.is_empty());
    assert_eq!(again.already_resolved_chunk_ids, vec![dead.chunk_id]);
    assert_eq!(get(&mut client, &id).await?.attempt, 2);
    let unknown = requeue(&mut client, &[dead.chunk_id + 10_000])
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    // A chunk that loaded is no dead letter.
    let loaded = count(
        &env.db,
        &format!("SELECT min(id) FROM chunks WHERE import_id = '{id}' AND seq = 1"),
    )
    .await?;
    let alive = requeue(&mut client, &[loaded])
        .await
        .expect_err("not dead-lettered");
    assert_eq!(alive.code(), tonic::Code::FailedPrecondition);
    assert_eq!(error_reason(&alive), "NOT_A_DEAD_LETTER");
    broker.close().await?;
    env.finish().await
}

/// The broker's dead-letter queue empties (the prune runs after the call).
async fn wait_until_empty(broker: &Broker) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while broker.dead_messages().await? > 0 {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the handled chunk's message is still in the dead-letter queue"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_or_nothing_dead_letter_is_refused_a_requeue_and_discarded() -> anyhow::Result<()> {
    let env = TestEnv::start(options()).await?;
    let mut client = env.client().await?;
    let broker = Broker::connect(&env).await?;
    let (id, lock) =
        with_a_dead_chunk(&env, &mut client, pb::FailurePolicy::StopOnFirstError, 8).await?;
    lock.release().await?;
    assert_eq!(
        state(&wait_terminal(&mut client, &id).await?),
        pb::ImportState::Failed
    );
    let dead = dead_letters(&mut client, false).await?;
    let chunk = dead.first().map(|d| d.chunk_id).unwrap_or_default();

    let refused = requeue(&mut client, &[chunk])
        .await
        .expect_err("all or nothing");
    assert_eq!(error_reason(&refused), "ALL_OR_NOTHING_IMPORT");
    let no_reason = client
        .discard_dead_letters(pb::DiscardDeadLettersRequest {
            chunk_ids: vec![chunk],
            reason: " ".into(),
        })
        .await
        .expect_err("a discard says why");
    assert_eq!(no_reason.code(), tonic::Code::InvalidArgument);
    let discarded = client
        .discard_dead_letters(pb::DiscardDeadLettersRequest {
            chunk_ids: vec![chunk],
            reason: "the client sent a corrected file as a new import".into(),
        })
        .await?
        .into_inner();
    assert_eq!(discarded.discarded_chunk_ids, vec![chunk]);
    let all = dead_letters(&mut client, true).await?;
    assert_eq!(
        all[0].resolution,
        pb::DeadLetterResolution::Discarded as i32
    );
    assert!(all[0].note.contains("corrected file"));
    assert_eq!(
        audited(&mut client, &id, "discard_dead_letters")
            .await?
            .len(),
        1
    );
    let monitor = client
        .get_queue_monitor(pb::GetQueueMonitorRequest::default())
        .await?
        .into_inner();
    assert_eq!(monitor.totals.map(|t| t.dead_lettered_chunks), Some(0));
    wait_until_empty(&broker).await?;
    broker.close().await?;
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_dead_letters_of_one_import_make_one_new_attempt() -> anyhow::Result<()> {
    let env = TestEnv::start(options()).await?;
    let mut client = env.client().await?;
    let (id, lock) =
        with_a_dead_chunk(&env, &mut client, pb::FailurePolicy::ImportValidRows, 9).await?;
    wait_for_failure(&mut client, &id, 1, pb::ChunkFailureOutcome::DeadLettered).await?;
    lock.release().await?;
    assert_eq!(
        state(&wait_terminal(&mut client, &id).await?),
        pb::ImportState::CompletedWithErrors
    );
    assert_eq!(count(&env.db, "SELECT count(*) FROM cases").await?, 100);

    // The organization filter.
    let of = |org: i64| pb::ListDeadLettersRequest {
        organization_id: org.to_string(),
        ..Default::default()
    };
    let ours = client.list_dead_letters(of(ORG)).await?.into_inner();
    let mut chunks: Vec<i64> = ours.dead_letters.iter().map(|d| d.chunk_id).collect();
    chunks.sort_unstable();
    assert_eq!(chunks.len(), 2, "{ours:#?}");
    let others = client.list_dead_letters(of(ORG + 1)).await?.into_inner();
    assert!(others.dead_letters.is_empty(), "{others:#?}");
    // Paged newest first, one at a time.
    let first = client
        .list_dead_letters(pb::ListDeadLettersRequest {
            page_size: 1,
            ..of(ORG)
        })
        .await?
        .into_inner();
    let second = client
        .list_dead_letters(pb::ListDeadLettersRequest {
            page_size: 1,
            page_token: first.next_page_token.clone(),
            ..of(ORG)
        })
        .await?
        .into_inner();
    let paged: Vec<i64> = [&first, &second]
        .iter()
        .flat_map(|p| p.dead_letters.iter().map(|d| d.chunk_id))
        .collect();
    assert_eq!(paged, vec![chunks[1], chunks[0]]);
    assert!(second.next_page_token.is_empty(), "{second:#?}");

    let done = requeue(&mut client, &chunks).await?;
    assert_eq!(done.imports.len(), 1, "one import, one new attempt");
    assert_eq!(done.imports[0].attempt, 2);
    let finished = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&finished), pb::ImportState::Completed, "{finished:?}");
    assert_eq!(finished.attempt, 2);
    assert_eq!(count(&env.db, "SELECT count(*) FROM cases").await?, 300);
    assert_eq!(
        count(
            &env.db,
            "SELECT count(*) FROM (SELECT DISTINCT case_number FROM cases) k"
        )
        .await?,
        300,
        "every row loaded once"
    );
    let all = dead_letters(&mut client, true).await?;
    assert!(
        all.iter().all(
            |d| d.resolution == pb::DeadLetterResolution::Requeued as i32
                && d.requeued_attempt == 2
        ),
        "{all:#?}"
    );
    let audit = audited(&mut client, &id, "requeue_dead_letters").await?;
    assert_eq!(audit.len(), 1, "one audit event for the one attempt");
    env.finish().await
}

/// RetryFailedRows runs a dead chunk's rows with the others: its dead
/// letter is marked requeued into that attempt and leaves the broker, and a
/// later requeue of it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_the_failed_rows_takes_the_dead_letters_along() -> anyhow::Result<()> {
    let env = TestEnv::start(options()).await?;
    let mut client = env.client().await?;
    let broker = Broker::connect(&env).await?;
    let (id, lock) =
        with_a_dead_chunk(&env, &mut client, pb::FailurePolicy::ImportValidRows, 10).await?;
    lock.release().await?;
    wait_terminal(&mut client, &id).await?;
    let chunk = dead_letters(&mut client, false)
        .await?
        .first()
        .map(|d| d.chunk_id)
        .unwrap_or_default();

    client
        .retry_failed_rows(pb::RetryFailedRowsRequest {
            import_id: id.clone(),
        })
        .await?;
    let finished = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&finished), pb::ImportState::Completed, "{finished:?}");
    assert_eq!(count(&env.db, "SELECT count(*) FROM cases").await?, 300);
    assert!(dead_letters(&mut client, false).await?.is_empty());
    let all = dead_letters(&mut client, true).await?;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].resolution, pb::DeadLetterResolution::Requeued as i32);
    assert_eq!(all[0].requeued_attempt, 2);
    assert_eq!(
        all[0].resolved_by.as_ref().map(|u| u.id.as_str()),
        Some(ADMIN.id)
    );
    let monitor = client
        .get_queue_monitor(pb::GetQueueMonitorRequest::default())
        .await?
        .into_inner();
    assert_eq!(monitor.totals.map(|t| t.dead_lettered_chunks), Some(0));
    wait_until_empty(&broker).await?;

    let again = requeue(&mut client, &[chunk]).await?;
    assert_eq!(again.already_resolved_chunk_ids, vec![chunk]);
    assert_eq!(get(&mut client, &id).await?.attempt, 2);
    broker.close().await?;
    env.finish().await
}

/// Runs `passare-imports <args>` against the test's server as a super
/// admin: its exit status and output.
fn cli(env: &TestEnv, args: &[&str]) -> anyhow::Result<(bool, String)> {
    let out = std::process::Command::new(binary()?)
        .args(args)
        .args(["--server", &env.url(), "--token", &env.token(&ADMIN)])
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_refuses_and_discards_dead_letters() -> anyhow::Result<()> {
    let env = TestEnv::start(options()).await?;
    let mut client = env.client().await?;
    let (id, lock) =
        with_a_dead_chunk(&env, &mut client, pb::FailurePolicy::StopOnFirstError, 11).await?;
    lock.release().await?;
    wait_terminal(&mut client, &id).await?;
    let chunk = dead_letters(&mut client, false)
        .await?
        .first()
        .map(|d| d.chunk_id.to_string())
        .unwrap_or_default();

    let org = ORG.to_string();
    let (ok, listed) = cli(&env, &["dead-letters", "--org", &org])?;
    assert!(ok, "{listed}");
    assert!(
        listed.contains(&format!("chunk {chunk} ")) && listed.contains("waiting"),
        "{listed}"
    );
    let (ok, refused) = cli(&env, &["requeue-dead-letters", &chunk])?;
    assert!(!ok, "an all-or-nothing import is not requeued: {refused}");
    let (ok, discarded) = cli(
        &env,
        &["discard-dead-letters", "--reason", "sent again", &chunk],
    )?;
    assert!(ok, "{discarded}");
    assert!(
        discarded.contains(&format!("discarded chunks [{chunk}]")),
        "{discarded}"
    );
    let (_, waiting) = cli(&env, &["dead-letters"])?;
    assert!(waiting.contains("no dead letter waiting"), "{waiting}");
    let (_, all) = cli(&env, &["dead-letters", "--all"])?;
    assert!(
        all.contains("discarded by") && all.contains("sent again"),
        "{all}"
    );
    env.finish().await
}
