//! The configurable limits refuse what exceeds them, naming the limit and
//! its setting: files per import (RESOURCE_EXHAUSTED), rows per file and
//! bytes per file (INVALID_ARGUMENT; the refused file is not kept), and
//! uploads one user runs at once (RESOURCE_EXHAUSTED for that user only).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use passare_imports_cli::client::{self, Client};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

const MAX_FILES: u64 = 3;
const MAX_ROWS: u64 = 17;
const MAX_BYTES: u64 = 2_345;
const MAX_UPLOADS: usize = 2;

/// Longest any single call may take.
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// A second super admin: another user with the same rights as ADMIN.
const OTHER_ADMIN: User<'static> = User {
    id: "admin-2",
    super_admin: true,
    developer: false,
    org: None,
};

fn files_limit(config: &mut Config) {
    config.max_files_per_import = MAX_FILES;
}

fn rows_limit(config: &mut Config) {
    config.max_rows_per_file = MAX_ROWS;
}

fn bytes_limit(config: &mut Config) {
    config.max_file_bytes = MAX_BYTES;
}

fn uploads_limit(config: &mut Config) {
    config.max_uploads_per_user = MAX_UPLOADS;
}

/// A test's service with one limit set.
async fn env(configure: fn(&mut Config)) -> anyhow::Result<TestEnv> {
    TestEnv::start(Options {
        configure: Some(configure),
        ..Options::default()
    })
    .await
}

/// Whether `text` holds `n` as a number of its own (not inside another).
fn names_number(text: &str, n: impl ToString) -> bool {
    let n = n.to_string();
    text.split(|c: char| !c.is_ascii_digit()).any(|w| w == n)
}

/// `rows` valid cases whose numbers start with `prefix`.
fn cases(prefix: &str, rows: u64) -> Vec<u8> {
    let mut out = String::from("case_number,deceased_first_name,deceased_last_name\n");
    for i in 1..=rows {
        out.push_str(&format!("{prefix}{i},Ann,Doe\n"));
    }
    out.into_bytes()
}

/// An upload's status, bounded in time.
async fn upload(
    client: &mut Client,
    import_id: &str,
    name: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<Result<pb::ImportFile, tonic::Status>> {
    Ok(tokio::time::timeout(
        CALL_LIMIT,
        files::upload(
            client,
            import_id,
            &files::NewFile::new(name, "cases", bytes),
        ),
    )
    .await?)
}

fn file_names(import: &pb::Import) -> Vec<String> {
    let mut names: Vec<String> = import.files.iter().map(|f| f.name.clone()).collect();
    names.sort();
    names
}

/// Names of what is stored for an import (uploads in progress end in
/// `.partial-<uuid>`).
fn stored(storage: &Path, import_id: &str) -> anyhow::Result<Vec<String>> {
    let dir = storage.join("imports").join(import_id);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_holds_at_most_the_configured_number_of_files() -> anyhow::Result<()> {
    let env = env(files_limit).await?;
    let mut client = env.client().await?;
    let id = files::create_draft(&mut client, 1042, pb::FailurePolicy::ImportValidRows).await?;
    let mut kept = Vec::new();
    for i in 1..=MAX_FILES {
        let name = format!("cases-{i}.csv");
        let file = upload(&mut client, &id, &name, cases(&format!("F{i}-"), 2))
            .await?
            .map_err(client::describe)?;
        kept.push(file);
    }

    let refused = upload(&mut client, &id, "one-too-many.csv", cases("X-", 2))
        .await?
        .err()
        .context("the file past the limit is refused")?;
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        names_number(refused.message(), MAX_FILES)
            && refused.message().contains("IMPORTS_MAX_FILES_PER_IMPORT"),
        "{}",
        refused.message()
    );
    let import = get(&mut client, &id).await?;
    assert_eq!(import.files.len() as u64, MAX_FILES);
    assert!(!file_names(&import).contains(&"one-too-many.csv".to_string()));
    assert_eq!(
        stored(&env.config.storage_dir, &id)?.len() as u64,
        MAX_FILES,
        "the refused file's bytes are not kept"
    );

    // The limit counts the files the import holds now.
    client
        .remove_file(pb::RemoveFileRequest {
            import_id: id.clone(),
            file_id: kept[0].id.clone(),
        })
        .await?;
    upload(&mut client, &id, "replacement.csv", cases("R-", 2))
        .await?
        .map_err(client::describe)?;
    assert_eq!(get(&mut client, &id).await?.files.len() as u64, MAX_FILES);
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_holds_at_most_the_configured_number_of_rows() -> anyhow::Result<()> {
    let env = env(rows_limit).await?;
    let mut client = env.client().await?;
    let id = files::create_draft(&mut client, 1042, pb::FailurePolicy::ImportValidRows).await?;
    let at_limit = upload(&mut client, &id, "at-limit.csv", cases("A", MAX_ROWS))
        .await?
        .map_err(client::describe)?;
    assert_eq!(at_limit.row_count as u64, MAX_ROWS);

    let refused = upload(&mut client, &id, "too-long.csv", cases("B", MAX_ROWS + 1))
        .await?
        .err()
        .context("a file with one row too many is refused")?;
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        names_number(refused.message(), MAX_ROWS)
            && refused.message().contains("IMPORTS_MAX_ROWS_PER_FILE"),
        "{}",
        refused.message()
    );
    let import = get(&mut client, &id).await?;
    assert_eq!(file_names(&import), vec!["at-limit.csv".to_string()]);
    assert_eq!(
        stored(&env.config.storage_dir, &id)?,
        vec![at_limit.id.clone()],
        "only the accepted file's bytes are stored"
    );
    env.finish().await
}

/// A valid Cases CSV of exactly `size` bytes (at least 60).
fn cases_of_size(size: usize) -> anyhow::Result<Vec<u8>> {
    let header = "case_number,deceased_first_name,deceased_last_name\n";
    let mut out = header.to_string();
    let mut i = 0;
    // Whole rows while a full one (at most 30 bytes) still fits, then one
    // row whose last name takes up the rest.
    while size - out.len() > 60 {
        i += 1;
        out.push_str(&format!("S{i},Ann,Doe\n"));
    }
    i += 1;
    let start = format!("S{i},Ann,");
    let pad = size
        .checked_sub(out.len() + start.len() + 1)
        .context("too small")?;
    out.push_str(&start);
    out.push_str(&"D".repeat(pad));
    out.push('\n');
    anyhow::ensure!(out.len() == size);
    Ok(out.into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_holds_at_most_the_configured_number_of_bytes() -> anyhow::Result<()> {
    let env = env(bytes_limit).await?;
    let mut client = env.client().await?;
    let id = files::create_draft(&mut client, 1042, pb::FailurePolicy::ImportValidRows).await?;
    let limit = MAX_BYTES as usize;
    let at_limit = upload(&mut client, &id, "at-limit.csv", cases_of_size(limit)?)
        .await?
        .map_err(client::describe)?;
    assert_eq!(at_limit.size_bytes as u64, MAX_BYTES);

    let refused = upload(&mut client, &id, "too-big.csv", cases_of_size(limit + 1)?)
        .await?
        .err()
        .context("a file one byte too big is refused")?;
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        names_number(refused.message(), MAX_BYTES),
        "{}",
        refused.message()
    );
    let import = get(&mut client, &id).await?;
    assert_eq!(file_names(&import), vec!["at-limit.csv".to_string()]);
    assert_eq!(
        stored(&env.config.storage_dir, &id)?,
        vec![at_limit.id.clone()]
    );
    env.finish().await
}

/// An upload whose request stream stays open until its sender is used up.
struct OpenUpload {
    tx: mpsc::Sender<pb::UploadFileRequest>,
    rest: Vec<u8>,
    call: tokio::task::JoinHandle<Result<pb::ImportFile, tonic::Status>>,
}

impl OpenUpload {
    /// Sends the header and the first bytes, and keeps the stream open.
    async fn begin(client: &Client, import_id: &str, name: &str) -> anyhow::Result<Self> {
        let bytes = cases(&format!("{name}-"), 3);
        let (head, rest) = bytes.split_at(20);
        let (tx, rx) = mpsc::channel(4);
        tx.send(pb::UploadFileRequest {
            payload: Some(pb::upload_file_request::Payload::Header(pb::FileHeader {
                import_id: import_id.into(),
                file_name: format!("{name}.csv"),
                import_type: "cases".into(),
                declared_size_bytes: bytes.len() as i64,
                ..Default::default()
            })),
        })
        .await?;
        tx.send(pb::UploadFileRequest {
            payload: Some(pb::upload_file_request::Payload::Chunk(head.to_vec())),
        })
        .await?;
        let mut client = client.clone();
        let call = tokio::spawn(async move {
            client
                .upload_file(ReceiverStream::new(rx))
                .await
                .map(|r| r.into_inner().file.unwrap_or_default())
        });
        Ok(Self {
            tx,
            rest: rest.to_vec(),
            call,
        })
    }

    /// Sends the rest and closes the stream; returns the upload's outcome.
    async fn finish(self) -> anyhow::Result<Result<pb::ImportFile, tonic::Status>> {
        self.tx
            .send(pb::UploadFileRequest {
                payload: Some(pb::upload_file_request::Payload::Chunk(self.rest)),
            })
            .await?;
        drop(self.tx);
        Ok(tokio::time::timeout(CALL_LIMIT, self.call).await??)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_runs_at_most_the_configured_number_of_uploads_at_once() -> anyhow::Result<()> {
    let env = env(uploads_limit).await?;
    let mut admin = env.client().await?;
    let mut other = env.client_as(&OTHER_ADMIN).await?;
    let id = files::create_draft(&mut admin, 1042, pb::FailurePolicy::ImportValidRows).await?;
    // Room for every file this test uploads.
    let second = files::create_draft(&mut admin, 1042, pb::FailurePolicy::ImportValidRows).await?;

    let mut open = Vec::new();
    for i in 0..MAX_UPLOADS {
        open.push(OpenUpload::begin(&admin, &id, &format!("open-{i}")).await?);
    }
    // The server holds both: each has started writing its file.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let partial = stored(&env.config.storage_dir, &id)?
            .iter()
            .filter(|n| n.contains(".partial-"))
            .count();
        if partial == MAX_UPLOADS {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the open uploads did not start: {:?}",
            stored(&env.config.storage_dir, &id)?
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let refused = upload(&mut admin, &second, "third.csv", cases("T", 2))
        .await?
        .err()
        .context("a third upload of the same user is refused")?;
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        names_number(refused.message(), MAX_UPLOADS)
            && refused.message().contains("IMPORTS_MAX_UPLOADS_PER_USER"),
        "{}",
        refused.message()
    );

    // Another user is not held back by the first one's uploads.
    upload(&mut other, &second, "other-user.csv", cases("O", 2))
        .await?
        .map_err(client::describe)?;

    // The open uploads finish normally, and then the first user may upload again.
    for u in open {
        u.finish().await?.map_err(client::describe)?;
    }
    upload(&mut admin, &second, "after.csv", cases("N", 2))
        .await?
        .map_err(client::describe)?;

    assert_eq!(
        file_names(&get(&mut admin, &id).await?),
        vec!["open-0.csv".to_string(), "open-1.csv".to_string()]
    );
    assert_eq!(
        file_names(&get(&mut admin, &second).await?),
        vec!["after.csv".to_string(), "other-user.csv".to_string()]
    );
    env.finish().await
}
