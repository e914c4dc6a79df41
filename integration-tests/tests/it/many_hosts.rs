//! Many hosts: two servers and two workers, each with a storage directory of
//! its own (as on different machines) and one S3 bucket (the moto test
//! server), sharing nothing else but PostgreSQL and RabbitMQ. An upload
//! begun on server A continues and completes on server B, imports are
//! analysed and started through B, loaded by both workers with each
//! organization's chunks one at a time and in start order, followed and
//! their results downloaded through A; nothing lands in any local directory.

use std::collections::BTreeSet;

use passare_imports_cli::client::{self, Client};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_storage::open_store;

const CHUNK_ROWS: u64 = 500;
/// Parts of the resumable upload (the smallest the server accepts).
const PART_BYTES: usize = 64 * 1024;

/// `n` generated rows whose case numbers are `{prefix}00001`….
fn rows_for(prefix: &str, n: u64, seed: u64) -> Vec<CaseValues> {
    let mut rows = generated_rows(n, seed);
    for (i, r) in rows.iter_mut().enumerate() {
        r[0] = format!("{prefix}{:05}", i + 1);
    }
    rows
}

struct Plan {
    org: i64,
    name: &'static str,
    rows: Vec<CaseValues>,
    /// 1-based rows with an invalid date: they fail, the rest loads.
    bad_rows: Vec<usize>,
    id: String,
    file_id: String,
}

impl Plan {
    fn new(org: i64, name: &'static str, rows: Vec<CaseValues>) -> Self {
        Self {
            org,
            name,
            rows,
            bad_rows: Vec::new(),
            id: String::new(),
            file_id: String::new(),
        }
    }
}

/// Uploads `file` in parts: begun and half sent through `first`, the rest
/// sent and completed through `second`.
async fn upload_across(
    first: &mut Client,
    second: &mut Client,
    import_id: &str,
    file: &files::NewFile,
) -> anyhow::Result<pb::ImportFile> {
    let upload = resumable::begin(first, import_id, file, "", "").await?;
    let half = (file.bytes.len() / 2 / PART_BYTES).max(1) * PART_BYTES;
    let mut sent = 0;
    for piece in file.bytes[..half].chunks(PART_BYTES) {
        sent = resumable::part(first, &upload.id, sent, piece).await? as usize;
    }
    assert_eq!(sent, half);
    // Server B knows the upload server A began, and where it stands.
    let seen = resumable::get(second, &upload.id).await?;
    assert_eq!(seen.committed_bytes, half as i64, "{seen:?}");
    resumable::send_from(second, &upload.id, &file.bytes, half, PART_BYTES).await?;
    Ok(resumable::complete(second, &upload.id).await?)
}

/// Files under `dir`, at any depth.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_and_two_workers_share_only_the_database_the_broker_and_the_bucket()
-> anyhow::Result<()> {
    let mut env = TestEnv::start(Options {
        s3: true,
        chunk_rows: CHUNK_ROWS,
        worker_concurrency: 1,
        in_process_workers: 0,
        // Short slices: organizations move between the two workers.
        drain_max_secs: 2,
        ..Options::default()
    })
    .await?;
    for org in [2001, 2002] {
        env.organization(org).await?;
    }
    let hosts = tempfile::tempdir()?;
    let own_dir = |host: &str| {
        (
            "IMPORTS_STORAGE_DIR".to_string(),
            hosts.path().join(host).display().to_string(),
        )
    };
    let (a_addr, b_addr) = (scrapes::free_addr()?, scrapes::free_addr()?);
    for (host, addr) in [("server-a", a_addr), ("server-b", b_addr)] {
        let extra = vec![
            ("IMPORTS_GRPC_ADDR".to_string(), addr.to_string()),
            own_dir(host),
        ];
        env.spawn_listening("serve", extra, addr).await?;
    }
    for host in ["worker-1", "worker-2"] {
        env.spawn_worker_process_with(vec![own_dir(host)])?;
    }
    // Both workers are up (their heartbeat rows) before any work exists,
    // so that either may take any of it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count(&env.db, "SELECT count(*) FROM workers").await? < 2 {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the two workers did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let token = env.token(&ADMIN);
    let mut a = client::connect(&format!("http://{a_addr}"), &token).await?;
    let mut b = client::connect(&format!("http://{b_addr}"), &token).await?;

    // 1042 imports twice (loaded one after the other, in start order);
    // 2001 and 2002 once each, side by side; 2001's file has two bad rows.
    let mut plans = vec![
        Plan::new(1042, "1042-first.csv", rows_for("F", 3_000, 1)),
        Plan::new(2001, "2001.csv", rows_for("G", 3_000, 2)),
        Plan::new(1042, "1042-second.csv", rows_for("S", 2_500, 3)),
        Plan::new(2002, "2002.csv", rows_for("H", 3_000, 4)),
    ];
    plans[1].bad_rows = vec![777, 2_222];
    for row in plans[1].bad_rows.clone() {
        plans[1].rows[row - 1][5] = "not a date".into();
    }

    // Uploaded through A: the first file in parts continued on B, the
    // others streamed to A. Analysed and started through B.
    for (i, p) in plans.iter_mut().enumerate() {
        let id = files::create_draft(&mut a, p.org, pb::FailurePolicy::ImportValidRows).await?;
        let file = files::NewFile::new(p.name, "cases", cases_csv_of(&p.rows));
        let stored = if i == 0 {
            upload_across(&mut a, &mut b, &id, &file).await?
        } else {
            files::upload(&mut a, &id, &file).await?
        };
        assert_eq!(stored.row_count, p.rows.len() as i64, "{}", p.name);
        let report = files::analyze(&mut b, &id).await?;
        assert!(!report.blocking, "{} is blocked: {report:?}", p.name);
        assert_eq!(report.rows_failing, p.bad_rows.len() as i64, "{}", p.name);
        p.id = id;
        p.file_id = stored.id;
    }
    for p in &plans {
        start(&mut b, &p.id).await?;
    }

    // Followed through A.
    for p in &plans {
        let done = wait_terminal(&mut a, &p.id).await?;
        let (state, failed) = if p.bad_rows.is_empty() {
            (pb::ImportState::Completed, 0)
        } else {
            (
                pb::ImportState::CompletedWithErrors,
                p.bad_rows.len() as i64,
            )
        };
        assert_eq!(done.state, state as i32, "{}: {:?}", p.name, done.error);
        let progress = done.progress.unwrap_or_default();
        let total = p.rows.len() as i64;
        assert_eq!(
            (progress.rows_created, progress.rows_failed),
            (total - failed, failed),
            "{}",
            p.name
        );
    }

    // Both workers loaded chunks; each organization's ran one at a time,
    // its imports in start order.
    let intervals = chunk_intervals(&env.db).await?;
    assert_serial_per_org(&intervals)?;
    let workers: BTreeSet<&str> = intervals.iter().map(|i| i.worker.as_str()).collect();
    assert_eq!(workers.len(), 2, "chunks were loaded by {workers:?}");

    // Exactly the files' rows, each written by its import.
    for org in [1042, 2001, 2002] {
        let mut expected = Vec::new();
        for p in plans.iter().filter(|p| p.org == org) {
            let import = uuid::Uuid::parse_str(&p.id)?;
            for (i, row) in p.rows.iter().enumerate() {
                if !p.bad_rows.contains(&(i + 1)) {
                    expected.push((row.clone(), import));
                }
            }
        }
        assert_cases_are(&env.db, org, &expected).await?;
    }

    // Results downloaded through A: the failed rows (read back from the
    // stored file) and the written rows.
    let lines = |bytes: &[u8]| {
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
    };
    let failed = download(
        &mut a,
        &plans[1].id,
        &plans[1].file_id,
        pb::ResultKind::FailedRows,
    )
    .await?;
    assert_eq!(lines(&failed.bytes), 1 + plans[1].bad_rows.len());
    let text = String::from_utf8_lossy(&failed.bytes);
    assert!(text.contains("G00777") && text.contains("G02222"), "{text}");
    let written = download(
        &mut a,
        &plans[0].id,
        &plans[0].file_id,
        pb::ResultKind::WrittenRows,
    )
    .await?;
    assert_eq!(lines(&written.bytes), 1 + plans[0].rows.len());

    // Every file is in the bucket; no host wrote a byte of its own.
    let store = open_store(&env.config.storage()).await?;
    use futures::TryStreamExt;
    let objects: Vec<_> = store.list("imports/").try_collect().await?;
    assert!(objects.len() >= plans.len(), "{objects:?}");
    let local = files_under(hosts.path());
    assert!(local.is_empty(), "files in local directories: {local:?}");
    env.finish().await
}
