//! The resumable upload over plain gRPC: the same bytes make the same file
//! whether streamed or sent in parts; parts commit in order (a re-sent part
//! is acknowledged, a gap refused with the committed offset, an overlap adds
//! only its new bytes); two clients sending parts at once cannot corrupt an
//! upload; any server replica takes any part; a wrong checksum attaches
//! nothing; abandoned uploads expire and their parts are deleted; the
//! streaming upload's limits hold; a reused request id is idempotent.

use std::time::Duration;

use passare_imports_integration_tests::files::{self, NewFile};
use passare_imports_integration_tests::resumable;
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_store::sqlx;
use sha2::{Digest, Sha256};
use tonic::Code;
use tonic_types::StatusExt;

const ORG: i64 = 1042;
/// Parts of 64 KiB, the smallest the service accepts, so files of a few
/// hundred KiB take several parts.
const PART: usize = 64 * 1024;

fn small_parts(config: &mut Config) {
    config.upload_part_bytes = PART as u64;
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// An XLSX workbook of Cases rows.
fn workbook(rows: u64) -> anyhow::Result<Vec<u8>> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["Case #", "First Name", "Last Name", "DOB"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, c as u16, *h)?;
    }
    for r in 1..=rows as u32 {
        sheet.write_string(r, 0, format!("W{r}"))?;
        sheet.write_string(r, 1, "Ann")?;
        sheet.write_string(r, 2, format!("Doe{r}"))?;
        sheet.write_string(r, 3, "1950-03-07")?;
    }
    Ok(book.save_to_buffer()?)
}

/// What a stored file is, whichever way it came.
fn as_stored(f: &pb::ImportFile) -> String {
    format!(
        "{} {} {} {} {} {} {} {:?} {:?}",
        f.size_bytes,
        f.sha256,
        f.format,
        f.row_count,
        f.encoding,
        f.delimiter,
        f.sheet_name,
        f.columns,
        f.problems
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bytes_make_the_same_file_whether_streamed_or_sent_in_parts() -> anyhow::Result<()>
{
    let env = TestEnv::start(Options {
        configure: Some(small_parts),
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let csv = cases_csv(3_000, 11)?;
    let cp1252: Vec<u8> = encoding_rs::WINDOWS_1252
        .encode(&String::from_utf8(cases_csv(500, 12)?)?.replace("Doe", "Doé"))
        .0
        .into_owned();
    let broken = b"case_number,deceased_first_name,deceased_last_name\nX1,Ann\n".to_vec();
    let files = [
        NewFile::new("cases.csv", "cases", csv),
        NewFile::new("latin.csv", "cases", cp1252),
        NewFile::new("book.xlsx", "cases", workbook(2_000)?),
        NewFile::new("broken.csv", "cases", broken),
    ];
    for file in &files {
        let streamed = files::draft_with_files(
            &mut client,
            ORG,
            pb::FailurePolicy::ImportValidRows,
            std::slice::from_ref(file),
        )
        .await?
        .1
        .remove(0);
        let draft =
            files::create_draft(&mut client, ORG, pb::FailurePolicy::ImportValidRows).await?;
        let parts = resumable::upload_in_parts(&mut client, &draft, file, PART)
            .await
            .map_err(passare_imports_cli::client::describe)?;
        assert_eq!(as_stored(&parts), as_stored(&streamed), "{}", file.name);
        assert_eq!(parts.sha256, sha256(&file.bytes), "{}", file.name);
    }
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_commit_in_order_and_a_client_can_always_resynchronise() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        configure: Some(small_parts),
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let file = NewFile::new("cases.csv", "cases", cases_csv(2_000, 3)?);
    let bytes = &file.bytes;
    let draft = files::create_draft(&mut client, ORG, pb::FailurePolicy::ImportValidRows).await?;
    let upload = resumable::begin(&mut client, &draft, &file, &sha256(bytes), "").await?;
    assert_eq!(upload.part_size_bytes, PART as i64);
    assert_eq!(upload.committed_bytes, 0);
    assert_eq!(upload.state, pb::UploadState::Active as i32);
    let id = upload.id.clone();

    assert_eq!(
        resumable::part(&mut client, &id, 0, &bytes[..PART]).await?,
        PART as i64
    );
    // The same part again: acknowledged, not written again.
    assert_eq!(
        resumable::part(&mut client, &id, 0, &bytes[..PART]).await?,
        PART as i64
    );
    assert_eq!(
        env.stored_parts(&id),
        1,
        "a re-sent part is not stored twice"
    );
    // A gap: refused with the committed offset, in the message and the details.
    let gap = resumable::part(&mut client, &id, 2 * PART, &bytes[2 * PART..3 * PART])
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a part past the committed offset was taken"))?;
    assert_eq!(gap.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&gap), "UPLOAD_OFFSET_MISMATCH");
    let committed = gap
        .get_error_details()
        .error_info()
        .and_then(|i| i.metadata.get("committed_bytes").cloned());
    assert_eq!(committed, Some(PART.to_string()));
    // After a reload: ask, then go on from there with an overlapping part
    // (its first half is committed already: only the rest is added).
    let asked = resumable::get(&mut client, &id).await?;
    assert_eq!(asked.committed_bytes, PART as i64);
    let half = PART / 2;
    let overlap = resumable::part(&mut client, &id, half, &bytes[half..half + PART]).await?;
    assert_eq!(overlap, (half + PART) as i64);
    // Not complete yet: refused with the committed offset.
    let early = resumable::complete(&mut client, &id)
        .await
        .err()
        .map(|s| (s.code(), error_reason(&s)));
    assert_eq!(
        early,
        Some((Code::FailedPrecondition, "UPLOAD_INCOMPLETE".into()))
    );
    resumable::send_from(&mut client, &id, bytes, half + PART, PART).await?;
    // Nothing follows the declared last byte.
    let past = resumable::part(&mut client, &id, bytes.len(), b"x")
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(
        past,
        Some(Code::InvalidArgument),
        "a part past the declared size"
    );
    let stored = resumable::complete(&mut client, &id).await?;
    assert_eq!(stored.sha256, sha256(bytes));
    assert_eq!(stored.row_count, 2_000);
    // Completing again returns the same file; the parts are gone.
    let again = resumable::complete(&mut client, &id).await?;
    assert_eq!(again.id, stored.id);
    let done = resumable::get(&mut client, &id).await?;
    assert_eq!(
        (done.state, done.file_id.as_str()),
        (pb::UploadState::Completed as i32, stored.id.as_str())
    );
    assert_eq!(env.stored_parts(&id), 0, "the parts were deleted");
    let import = get(&mut client, &draft).await?;
    assert_eq!(import.files.len(), 1);
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_past_the_declared_size_is_refused() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        configure: Some(small_parts),
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let mut file = NewFile::new("cases.csv", "cases", cases_csv(100, 3)?);
    let draft = files::create_draft(&mut client, ORG, pb::FailurePolicy::ImportValidRows).await?;
    let declared = file.bytes.clone();
    file.bytes.truncate(declared.len() - 10);
    let upload = resumable::begin(&mut client, &draft, &file, "", "").await?;
    let over = resumable::part(&mut client, &upload.id, 0, &declared)
        .await
        .err();
    assert_eq!(
        over.as_ref().map(|s| s.code()),
        Some(Code::InvalidArgument),
        "{over:?}"
    );
    assert_eq!(
        resumable::get(&mut client, &upload.id)
            .await?
            .committed_bytes,
        0
    );
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_sending_the_same_upload_at_once_store_it_whole() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        configure: Some(small_parts),
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let file = NewFile::new("cases.csv", "cases", cases_csv(6_000, 5)?);
    let draft = files::create_draft(&mut client, ORG, pb::FailurePolicy::ImportValidRows).await?;
    let upload = resumable::begin(&mut client, &draft, &file, &sha256(&file.bytes), "").await?;
    // Two tabs send the same file: each sends the part at the offset the
    // server says is committed, resynchronising whenever the other wins.
    let mut tabs = Vec::new();
    for tab in 0..2 {
        let mut c = env.client().await?;
        let (id, bytes) = (upload.id.clone(), file.bytes.clone());
        tabs.push(tokio::spawn(async move {
            let mut sent = 0usize;
            loop {
                let at = resumable::get(&mut c, &id).await?.committed_bytes as usize;
                if at >= bytes.len() {
                    return Ok::<_, anyhow::Error>(sent);
                }
                // Uneven part sizes, so the two tabs' parts overlap.
                let size = (PART / (tab + 1)).min(bytes.len() - at);
                match resumable::part(&mut c, &id, at, &bytes[at..at + size]).await {
                    Ok(_) => sent += size,
                    Err(s) if s.code() == Code::FailedPrecondition => {}
                    Err(s) => return Err(passare_imports_cli::client::describe(s)),
                }
            }
        }));
    }
    let mut sent = 0;
    for tab in tabs {
        sent += tab.await??;
    }
    // The committed parts tile the file: no gap, no overlap, whoever sent them.
    let parts: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT offset_bytes, length FROM upload_parts WHERE upload_id = $1::uuid ORDER BY offset_bytes",
    )
    .bind(&upload.id)
    .fetch_all(env.db.pool())
    .await?;
    let mut end = 0;
    for (offset, length) in &parts {
        assert_eq!(*offset, end, "parts {parts:?}");
        end += length;
    }
    assert_eq!(end, file.bytes.len() as i64);
    assert!(
        sent >= file.bytes.len(),
        "both tabs together sent the whole file"
    );
    assert_eq!(
        env.stored_parts(&upload.id),
        parts.len(),
        "refused parts were deleted"
    );
    let stored = resumable::complete(&mut client, &upload.id).await?;
    assert_eq!(stored.sha256, sha256(&file.bytes));
    assert_eq!(stored.size_bytes, file.bytes.len() as i64);
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_server_replica_takes_any_part() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        configure: Some(small_parts),
        ..Options::default()
    })
    .await?;
    let mut a = env.client().await?;
    let mut b = env.second_replica().await?;
    let file = NewFile::new("cases.csv", "cases", cases_csv(3_000, 8)?);
    let draft = files::create_draft(&mut a, ORG, pb::FailurePolicy::ImportValidRows).await?;
    let upload = resumable::begin(&mut a, &draft, &file, "", "").await?;
    for (i, piece) in file.bytes.chunks(PART).enumerate() {
        let replica = if i % 2 == 0 { &mut a } else { &mut b };
        resumable::part(replica, &upload.id, i * PART, piece).await?;
    }
    let stored = resumable::complete(&mut b, &upload.id).await?;
    assert_eq!(stored.sha256, sha256(&file.bytes));
    // The file loads like any other.
    start(&mut a, &draft).await?;
    let done = wait_terminal(&mut a, &draft).await?;
    assert_eq!(state(&done), pb::ImportState::Completed);
    assert_eq!(rows_of(&env.db, &draft).await?, 3_000);
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_checksum_attaches_nothing() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        configure: Some(small_parts),
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let file = NewFile::new("cases.csv", "cases", cases_csv(1_000, 9)?);
    let draft = files::create_draft(&mut client, ORG, pb::FailurePolicy::ImportValidRows).await?;
    let wrong = sha256(b"another file");
    let upload = resumable::begin(&mut client, &draft, &file, &wrong, "").await?;
    resumable::send_from(&mut client, &upload.id, &file.bytes, 0, PART).await?;
    let refused = resumable::complete(&mut client, &upload.id).await.err();
    let refused = refused.ok_or_else(|| anyhow::anyhow!("a wrong checksum was accepted"))?;
    assert_eq!(
        (refused.code(), error_reason(&refused).as_str()),
        (Code::InvalidArgument, "CHECKSUM_MISMATCH")
    );
    assert!(
        refused.message().contains(&sha256(&file.bytes)),
        "{}",
        refused.message()
    );
    let import = get(&mut client, &draft).await?;
    assert!(
        import.files.is_empty(),
        "nothing attached: {:?}",
        import.files
    );
    let ended = resumable::get(&mut client, &upload.id).await?;
    assert_eq!(ended.state, pb::UploadState::Aborted as i32);
    assert_eq!(env.stored_parts(&upload.id), 0);
    let stored: i64 = count(&env.db, "SELECT count(*) FROM import_files").await?;
    assert_eq!(stored, 0);
    env.finish().await
}

fn expire_fast(config: &mut Config) {
    config.upload_part_bytes = PART as u64;
    config.upload_expire_secs = 2;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_uploads_expire_and_their_parts_are_deleted() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        configure: Some(expire_fast),
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let file = NewFile::new("cases.csv", "cases", cases_csv(3_000, 10)?);
    let draft = files::create_draft(&mut client, ORG, pb::FailurePolicy::ImportValidRows).await?;
    let swept = resumable::begin(&mut client, &draft, &file, "", "").await?;
    resumable::part(&mut client, &swept.id, 0, &file.bytes[..PART]).await?;
    let read = resumable::begin(&mut client, &draft, &file, "", "").await?;
    resumable::part(&mut client, &read.id, 0, &file.bytes[..PART]).await?;
    assert_eq!(
        (env.stored_parts(&swept.id), env.stored_parts(&read.id)),
        (1, 1)
    );
    // The workers' housekeeping expires the first without anyone asking.
    let state_of = |id: String| {
        let pool = env.db.pool().clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT state FROM uploads WHERE id = $1::uuid")
                .bind(id)
                .fetch_one(&pool)
                .await
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while state_of(swept.id.clone()).await? != "expired" {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the sweep never expired the upload"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The parts go right after the record says expired.
    while env.stored_parts(&swept.id) > 0 {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the sweep expired the upload but did not delete its parts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Either way, an expired upload says so and takes no part.
    let late = resumable::part(&mut client, &read.id, PART, &file.bytes[PART..2 * PART])
        .await
        .err();
    assert_eq!(
        late.map(|s| (s.code(), error_reason(&s))),
        Some((Code::FailedPrecondition, "UPLOAD_EXPIRED".into()))
    );
    assert_eq!(
        resumable::get(&mut client, &read.id).await?.state,
        pb::UploadState::Expired as i32
    );
    assert_eq!(env.stored_parts(&read.id), 0);
    // The import shows nothing of them.
    assert!(get(&mut client, &draft).await?.files.is_empty());
    env.finish().await
}

fn tight_limits(config: &mut Config) {
    config.upload_part_bytes = PART as u64;
    config.max_uploads_per_user = 2;
    config.max_files_per_import = 2;
    config.max_file_bytes = 1_000_000;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_streaming_uploads_limits_hold_for_uploads_in_parts() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        configure: Some(tight_limits),
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let small = NewFile::new("cases.csv", "cases", cases_csv(100, 1)?);
    let big = NewFile::new("big.csv", "cases", vec![b'x'; 1_000_001]);
    let draft = files::create_draft(&mut client, ORG, pb::FailurePolicy::ImportValidRows).await?;
    let too_big = resumable::begin(&mut client, &draft, &big, "", "")
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(too_big, Some(Code::InvalidArgument), "file size");
    // Files per import count the uploads under way.
    files::upload(&mut client, &draft, &small).await?;
    let first = resumable::begin(&mut client, &draft, &small, "", "").await?;
    let third = resumable::begin(&mut client, &draft, &small, "", "")
        .await
        .err();
    assert_eq!(
        third.map(|s| (s.code(), error_reason(&s))),
        Some((Code::ResourceExhausted, "LIMIT_REACHED".into()))
    );
    // Uploads per user, across every server process.
    let other = files::create_draft(&mut client, ORG, pb::FailurePolicy::ImportValidRows).await?;
    resumable::begin(&mut env.second_replica().await?, &other, &small, "", "").await?;
    let over = resumable::begin(&mut client, &other, &small, "", "")
        .await
        .err();
    assert_eq!(
        over.map(|s| s.code()),
        Some(Code::ResourceExhausted),
        "uploads per user"
    );
    // An upload into an import that started meanwhile attaches nothing.
    let begun = files::create_draft(&mut client, ORG, pb::FailurePolicy::ImportValidRows).await?;
    files::upload(&mut client, &begun, &small).await?;
    client
        .abort_upload(pb::AbortUploadRequest {
            upload_id: first.id.clone(),
        })
        .await?;
    let late = resumable::begin(&mut client, &begun, &small, "", "").await?;
    resumable::send_from(&mut client, &late.id, &small.bytes, 0, PART).await?;
    start(&mut client, &begun).await?;
    let refused = resumable::complete(&mut client, &late.id).await.err();
    assert_eq!(
        refused.map(|s| (s.code(), error_reason(&s))),
        Some((Code::FailedPrecondition, "IMPORT_NOT_DRAFT".into()))
    );
    let not_draft = resumable::begin(&mut client, &begun, &small, "", "")
        .await
        .err();
    assert_eq!(
        not_draft.map(|s| error_reason(&s)),
        Some("IMPORT_NOT_DRAFT".into())
    );
    assert_eq!(get(&mut client, &begun).await?.files.len(), 1);
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_request_id_returns_the_same_upload_or_is_refused() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    let mut client = env.client().await?;
    let file = NewFile::new("cases.csv", "cases", cases_csv(100, 1)?);
    let draft = files::create_draft(&mut client, ORG, pb::FailurePolicy::ImportValidRows).await?;
    let key = uuid::Uuid::new_v4().to_string();
    let first = resumable::begin(&mut client, &draft, &file, "", &key).await?;
    let again = resumable::begin(&mut client, &draft, &file, "", &key).await?;
    assert_eq!(again.id, first.id);
    let renamed = NewFile::new("other.csv", "cases", file.bytes.clone());
    let refused = resumable::begin(&mut client, &draft, &renamed, "", &key)
        .await
        .err();
    let refused = refused.ok_or_else(|| anyhow::anyhow!("other parameters were accepted"))?;
    assert_eq!(refused.code(), Code::AlreadyExists);
    let fields: Vec<String> = refused
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default();
    assert_eq!(fields, vec!["header.file_name".to_string()]);
    env.finish().await
}
