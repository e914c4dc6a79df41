//! One caller cannot starve the others: watch streams and result downloads
//! are capped per user and per process (RESOURCE_EXHAUSTED naming the cap's
//! key, with QuotaFailure details) while another user still gets through; a
//! download whose client stops reading is cut and holds no connection of
//! the read pool meanwhile; a watch on a draft ends at its longest
//! duration with a status that says to watch again; a ListImports page is
//! capped.

use std::time::Duration;

use futures::StreamExt;
use passare_imports_cli::client::{BearerToken, Client};
use passare_imports_integration_tests::files;
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_proto::v1::import_service_client::ImportServiceClient;
use tonic::Code;
use tonic::codec::Streaming;
use tonic_types::StatusExt;

/// MEMBER's organization.
const ORG: i64 = 1042;

/// Another user of the same organization, with the same rights as MEMBER.
const OTHER_MEMBER: User<'static> = User {
    id: "member-2",
    super_admin: false,
    developer: false,
    org: Some(1042),
};

fn caps(config: &mut Config) {
    config.max_watches_per_user = 2;
    config.max_concurrent_watches = 4;
    config.max_downloads_per_user = 1;
    config.max_concurrent_downloads = 2;
    config.stream_stall_secs = 2;
    config.database_read_connections = 1;
}

fn short_watches(config: &mut Config) {
    config.watch_max_secs = 2;
}

/// (code, ErrorInfo reason, ErrorInfo `limit`, QuotaFailure subjects).
fn refusal(status: &tonic::Status) -> (Code, String, String, Vec<String>) {
    let details = status.get_error_details();
    let info = details.error_info();
    (
        status.code(),
        info.map(|i| i.reason.clone()).unwrap_or_default(),
        info.and_then(|i| i.metadata.get("limit").cloned())
            .unwrap_or_default(),
        details
            .quota_failure()
            .map(|q| q.violations.iter().map(|v| v.subject.clone()).collect())
            .unwrap_or_default(),
    )
}

/// Opens a watch and reads its snapshot; the stream stays open.
async fn watch(
    client: &mut Client,
    import_id: &str,
) -> Result<Streaming<pb::WatchImportResponse>, tonic::Status> {
    let mut stream = client
        .watch_import(pb::WatchImportRequest {
            import_id: import_id.into(),
        })
        .await?
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("no snapshot within 10 s"))??;
    assert_eq!(
        first.map(|e| e.kind),
        Some(pb::WatchEventKind::Snapshot as i32)
    );
    Ok(stream)
}

/// Retries `open` for up to 10 s while it is refused for a cap (a closed
/// stream frees its slot once the server notices the client left).
async fn eventually<T, F, Fut>(mut open: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match open().await {
            Err(s)
                if s.code() == Code::ResourceExhausted
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// A service without workers, configured by `configure`, a super admin's
/// client and a draft of MEMBER's organization (whose watch never ends by
/// itself).
async fn with_draft(configure: fn(&mut Config)) -> anyhow::Result<(TestEnv, Client, String)> {
    let env = TestEnv::start(Options {
        in_process_workers: 0,
        configure: Some(configure),
        ..Options::default()
    })
    .await?;
    env.organization(ORG).await?;
    let mut admin = env.client().await?;
    let draft = files::create_draft(&mut admin, ORG, pb::FailurePolicy::ImportValidRows).await?;
    Ok((env, admin, draft))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_are_capped_per_user_and_per_process() -> anyhow::Result<()> {
    let (env, mut admin, draft) = with_draft(caps).await?;
    let mut member = env.client_as(&MEMBER).await?;
    let first = watch(&mut member, &draft).await?;
    let _second = watch(&mut member, &draft).await?;
    let over = watch(&mut member, &draft).await.err();
    assert_eq!(
        over.as_ref().map(refusal),
        Some((
            Code::ResourceExhausted,
            "LIMIT_REACHED".into(),
            "IMPORTS_MAX_WATCHES_PER_USER".into(),
            vec!["users/member-1".into()]
        )),
        "{over:?}"
    );
    assert_eq!(
        over.as_ref().and_then(|s| s
            .get_error_details()
            .retry_info()
            .and_then(|r| r.retry_delay)),
        Some(Duration::from_secs(1)),
        "the refusal asks the client to wait a moment"
    );
    assert!(
        over.is_some_and(|s| s.message().contains("IMPORTS_MAX_WATCHES_PER_USER")),
        "the message names the cap"
    );
    // Another user still watches.
    let mut other = env.client_as(&OTHER_MEMBER).await?;
    let _third = watch(&mut other, &draft).await?;
    let _fourth = watch(&mut admin, &draft).await?;
    // The process serves 4 at most, whoever asks.
    let full = watch(&mut env.client_as(&DEVELOPER).await?, &draft)
        .await
        .err();
    assert_eq!(
        full.as_ref().map(refusal),
        Some((
            Code::ResourceExhausted,
            "LIMIT_REACHED".into(),
            "IMPORTS_MAX_CONCURRENT_WATCHES".into(),
            vec!["server".into()]
        )),
        "{full:?}"
    );
    // A closed stream gives its slot back.
    drop(first);
    eventually(|| {
        let (mut c, d) = (member.clone(), draft.clone());
        async move { watch(&mut c, &d).await }
    })
    .await?;
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_a_draft_ends_at_its_longest_duration() -> anyhow::Result<()> {
    let (env, _admin, draft) = with_draft(short_watches).await?;
    let mut member = env.client_as(&MEMBER).await?;
    let began = std::time::Instant::now();
    let mut stream = watch(&mut member, &draft).await?;
    let end = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .map_err(|_| anyhow::anyhow!("the watch on a draft did not end within 10 s"))?;
    let took = began.elapsed();
    let status = end.err();
    assert_eq!(
        status.as_ref().map(|s| {
            let (code, reason, limit, _) = refusal(s);
            (code, reason, limit)
        }),
        Some((
            Code::Unavailable,
            "WATCH_ENDED".into(),
            "IMPORTS_WATCH_MAX_SECS".into()
        )),
        "{status:?}"
    );
    assert_eq!(
        status.and_then(|s| s
            .get_error_details()
            .retry_info()
            .and_then(|r| r.retry_delay)),
        Some(Duration::ZERO),
        "watch again at once"
    );
    assert!(took >= Duration::from_secs(2), "{took:?}");
    println!("a watch on a draft ended after {took:?} (IMPORTS_WATCH_MAX_SECS = 2)");
    // Watching again works.
    watch(&mut member, &draft).await?;
    env.finish().await
}

/// A client of `user` whose HTTP/2 windows are the protocol's smallest
/// default, so the server can send little before the client reads.
async fn narrow_client(env: &TestEnv, user: &User<'_>) -> anyhow::Result<Client> {
    let channel = tonic::transport::Channel::from_shared(env.url())?
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await?;
    let header = format!("Bearer {}", env.token(user)).parse()?;
    Ok(ImportServiceClient::with_interceptor(
        channel,
        BearerToken::new(header),
    ))
}

fn download_request(import_id: &str, file_id: &str) -> pb::DownloadResultsRequest {
    pb::DownloadResultsRequest {
        import_id: import_id.into(),
        file_id: file_id.into(),
        kind: pb::ResultKind::WrittenRows as i32,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_capped_and_a_stalled_one_is_cut_without_holding_a_connection()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        configure: Some(caps),
        ..Options::default()
    })
    .await?;
    env.organization(ORG).await?;
    let mut admin = env.client().await?;
    let rows = 25_000;
    let import_id = env
        .generated_draft(&mut admin, ORG, pb::FailurePolicy::ImportValidRows, rows, 7)
        .await?;
    files::analyze(&mut admin, &import_id).await?;
    start(&mut admin, &import_id).await?;
    let done = tokio::time::timeout(
        Duration::from_secs(240),
        wait_terminal(&mut admin, &import_id),
    )
    .await??;
    assert_eq!(done.state, pb::ImportState::Completed as i32);
    let file_id = done.files[0].id.clone();
    let whole = download(
        &mut admin,
        &import_id,
        &file_id,
        pb::ResultKind::WrittenRows,
    )
    .await?;
    println!("the written-rows file is {} bytes", whole.bytes.len());

    // MEMBER starts a download, reads one message and stops reading.
    let mut member = narrow_client(&env, &MEMBER).await?;
    let mut stalled = member
        .download_results(download_request(&import_id, &file_id))
        .await?
        .into_inner();
    let mut received = stalled.message().await?.map_or(0, |m| m.chunk.len());
    // A second download of the same user is refused, naming the cap.
    let over = member
        .download_results(download_request(&import_id, &file_id))
        .await
        .err();
    assert_eq!(
        over.as_ref().map(refusal),
        Some((
            Code::ResourceExhausted,
            "LIMIT_REACHED".into(),
            "IMPORTS_MAX_DOWNLOADS_PER_USER".into(),
            vec!["users/member-1".into()]
        )),
        "{over:?}"
    );
    // Another user still downloads the whole file, and lists imports on
    // the read pool of one connection: the stalled download holds none.
    let again = download(
        &mut admin,
        &import_id,
        &file_id,
        pb::ResultKind::WrittenRows,
    )
    .await?;
    assert_eq!(again.bytes.len(), whole.bytes.len());
    let listed = tokio::time::timeout(
        Duration::from_secs(5),
        admin.list_imports(pb::ListImportsRequest::default()),
    )
    .await??
    .into_inner();
    assert_eq!(listed.imports.len(), 1);
    // Past the stall bound the stalled download is cut: what was buffered
    // arrives, then DEADLINE_EXCEEDED, never the whole file.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut end = None;
    while let Some(message) = stalled.next().await {
        match message {
            Ok(m) => received += m.chunk.len(),
            Err(s) => {
                end = Some(s);
                break;
            }
        }
    }
    assert_eq!(
        end.as_ref().map(|s| {
            let (code, reason, _, _) = refusal(s);
            (code, reason)
        }),
        Some((Code::DeadlineExceeded, "STREAM_STALLED".into())),
        "{end:?}"
    );
    assert!(
        received < whole.bytes.len(),
        "{received} of {}",
        whole.bytes.len()
    );
    println!(
        "the stalled download was cut after {received} of {} bytes",
        whole.bytes.len()
    );
    // Its slot is free again.
    let member = env.client_as(&MEMBER).await?;
    let after = eventually(|| {
        let (mut c, i, f) = (member.clone(), import_id.clone(), file_id.clone());
        async move { download(&mut c, &i, &f, pb::ResultKind::WrittenRows).await }
    })
    .await?;
    assert_eq!(after.bytes.len(), whole.bytes.len());
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_imports_page_is_capped() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    env.organization(ORG).await?;
    let mut admin = env.client().await?;
    for _ in 0..105 {
        files::create_draft(&mut admin, ORG, pb::FailurePolicy::ImportValidRows).await?;
    }
    let page = admin
        .list_imports(pb::ListImportsRequest {
            page_size: 1_000,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(page.imports.len(), 100, "the page size is capped at 100");
    assert!(!page.next_page_token.is_empty());
    let rest = admin
        .list_imports(pb::ListImportsRequest {
            page_size: 1_000,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(rest.imports.len(), 5);
    assert!(rest.next_page_token.is_empty());
    env.finish().await
}

/// Scans (sequential and index) PostgreSQL counted on each of `tables`.
async fn scans(env: &TestEnv, tables: &[&str]) -> anyhow::Result<Vec<i64>> {
    let mut out = Vec::new();
    for table in tables {
        let n: Option<i64> = passare_imports_store::sqlx::query_scalar(
            "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = $1",
        )
        .bind(*table)
        .fetch_optional(env.db.pool())
        .await?;
        out.push(n.unwrap_or_default());
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_imports_page_reads_its_children_in_batches() -> anyhow::Result<()> {
    let (env, mut admin, _) = with_draft(caps).await?;
    for _ in 1..30 {
        files::create_draft(&mut admin, ORG, pb::FailurePolicy::ImportValidRows).await?;
    }
    // Per-import reads would scan these once per import of the page.
    let tables = ["import_events", "organizations", "chunk_failures"];
    // PostgreSQL publishes a backend's counts when it has been idle a
    // moment (at most about 10 s): wait until they no longer move.
    let settled = || async {
        let mut last = scans(&env, &tables).await?;
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = scans(&env, &tables).await?;
            if now == last {
                return Ok::<_, anyhow::Error>(now);
            }
            last = now;
        }
        Ok(last)
    };
    tokio::time::sleep(Duration::from_secs(11)).await;
    let before = settled().await?;
    let page = admin
        .list_imports(pb::ListImportsRequest::default())
        .await?
        .into_inner();
    assert_eq!(page.imports.len(), 30);
    assert!(page.imports.iter().all(|i| !i.timeline.is_empty()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut after = scans(&env, &tables).await?;
    while after == before && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = scans(&env, &tables).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = scans(&env, &tables).await?;
    let delta: Vec<i64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    println!("scans of {tables:?} for one page of 30 imports: {delta:?}");
    assert!(delta[0] >= 1, "the page read the timelines: {delta:?}");
    assert!(
        delta.iter().all(|d| *d <= 2),
        "one statement per table for the whole page, not one per import: {delta:?}"
    );
    env.finish().await
}
