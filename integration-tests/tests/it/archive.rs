//! The raw archive: the Parquet objects of an import, read back with
//! pyarrow, hold exactly its rows with their provenance (loaded and failed
//! rows told apart, with the reason) and their types; the archived
//! original hashes to the upload's sha256. An archive location that cannot
//! be written never holds up the import: the failure shows on the import
//! and is retried until it succeeds. An all-or-nothing import that is
//! rolled back has its archived rows deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use passare_imports_cli::client::Client;
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use serde_json::Value;

const ORG: i64 = 1042;

/// A Cases CSV of `rows` generated rows whose date of birth is not a date
/// in the rows at the indexes of `bad`.
fn cases_with_bad_dates(rows: u64, seed: u64, bad: &[usize]) -> Vec<u8> {
    let mut values = generated_rows(rows, seed);
    for &i in bad {
        values[i][5] = "not-a-date".into();
    }
    cases_csv_of(&values)
}

/// The import once its archive is in `want` state (at most 60 s).
async fn archive_reaches(
    client: &mut Client,
    id: &str,
    want: pb::ArchiveState,
) -> anyhow::Result<pb::ImportArchive> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let import = get(client, id).await?;
        if let Some(a) = import.archive.filter(|a| a.state == want as i32) {
            return Ok(a);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the archive of {id} did not reach {want:?} within 60 s: {:?}",
            get(client, id).await?.archive
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What pyarrow reads of the import's archive under `storage`.
fn read_with_pyarrow(storage: &Path, import_id: &str) -> anyhow::Result<Value> {
    let python = std::env::var("PASSARE_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/passare-imports/venv/bin/python")
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/read_archive.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(storage.join("archive"))
        .arg(import_id)
        .output()
        .with_context(|| format!("running {python} (scripts/setup.sh installs it with pyarrow)"))?;
    anyhow::ensure!(
        out.status.success(),
        "read_archive.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

async fn row_errors(client: &mut Client, id: &str) -> anyhow::Result<BTreeSet<i64>> {
    let errors = client
        .list_row_errors(pb::ListRowErrorsRequest {
            import_id: id.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(errors.row_errors.iter().map(|e| e.row).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_holds_exactly_the_loaded_rows_with_their_provenance() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 1_000,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let csv = cases_with_bad_dates(2_500, 11, &[6, 1_700]);
    let (id, file) = env
        .draft_with_file(
            &mut client,
            ORG,
            pb::FailurePolicy::ImportValidRows,
            "cases.csv",
            &csv,
        )
        .await?;
    start(&mut client, &id).await?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(
        state(&done),
        pb::ImportState::CompletedWithErrors,
        "{done:?}"
    );
    let archive = archive_reaches(&mut client, &id, pb::ArchiveState::Archived).await?;
    assert_eq!((archive.chunks_archived, archive.files_archived), (3, 1));

    let read = read_with_pyarrow(&env.config.storage_dir, &id)?;
    assert_eq!(read["parquet_files"], 3);
    let columns = &read["columns"];
    for (column, arrow_type) in [
        ("_organization_id", "int64"),
        ("_import_id", "string"),
        ("_file_id", "string"),
        ("_attempt", "int64"),
        ("_row_number", "int64"),
        ("_outcome", "string"),
        ("_error", "string"),
        ("case_number", "string"),
        ("date_of_birth", "date32[day]"),
    ] {
        assert_eq!(columns[column], arrow_type, "{column}: {columns}");
    }
    let rows = read["rows"].as_array().context("no rows")?;
    assert_eq!(rows.len(), 2_500, "every row of the file, once");
    let mut outcomes: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for r in rows {
        assert_eq!(r["_organization_id"], ORG);
        assert_eq!(r["_import_id"], id.as_str());
        assert_eq!(r["_file_id"], file.id.as_str());
        assert_eq!(r["_attempt"], 1);
        let outcome = r["_outcome"].as_str().unwrap_or_default().to_string();
        assert_eq!(r["_error"].is_null(), outcome == "loaded", "{r}");
        outcomes
            .entry(outcome)
            .or_default()
            .insert(r["_row_number"].as_i64().unwrap_or_default());
    }
    let failed = outcomes.remove("failed").unwrap_or_default();
    assert_eq!(
        failed,
        row_errors(&mut client, &id).await?,
        "the failed rows are the row errors"
    );
    assert_eq!(failed.len(), 2);
    let loaded = outcomes.remove("loaded").unwrap_or_default();
    assert_eq!(loaded.len(), 2_498);
    assert!(outcomes.is_empty(), "only loaded and failed: {outcomes:?}");
    let partitions = read["partitions"].to_string();
    assert!(
        partitions.contains(&format!("organization={ORG}/import_type=cases/date=")),
        "{partitions}"
    );
    assert_eq!(
        read["originals"][&file.id],
        file.sha256.as_str(),
        "the archived original is the upload"
    );
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_that_cannot_be_written_never_holds_up_the_import_and_is_retried()
-> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 1_000,
        configure: Some(|c| c.archive_retry_secs = 1),
        ..Options::default()
    })
    .await?;
    // A file where the archive's folder should be: every write under it fails.
    let blocker = env.config.storage_dir.join("archive");
    std::fs::write(&blocker, b"not a folder")?;
    let mut client = env.client().await?;
    let (id, _) = env
        .draft_with_file(
            &mut client,
            ORG,
            pb::FailurePolicy::ImportValidRows,
            "cases.csv",
            &cases_csv(2_000, 12)?,
        )
        .await?;
    start(&mut client, &id).await?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(
        state(&done),
        pb::ImportState::Completed,
        "the load goes on: {done:?}"
    );
    let failing = archive_reaches(&mut client, &id, pb::ArchiveState::Retrying).await?;
    assert!(
        failing.pending >= 2 && !failing.last_error.is_empty(),
        "{failing:?}"
    );
    assert!(failing.next_attempt_time.is_some());

    std::fs::remove_file(&blocker)?;
    let archived = archive_reaches(&mut client, &id, pb::ArchiveState::Archived).await?;
    assert_eq!(
        (
            archived.chunks_archived,
            archived.files_archived,
            archived.pending
        ),
        (2, 1, 0)
    );
    let read = read_with_pyarrow(&env.config.storage_dir, &id)?;
    assert_eq!(read["rows"].as_array().map(Vec::len), Some(2_000));
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_import_leaves_no_rows_in_the_archive() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        chunk_rows: 500,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    // Row 2,700 (the sixth chunk) fails as it loads: five chunks were
    // written, and archived, before the import failed and was rolled back.
    let (id, _) = env
        .started_with_a_late_failure(
            &mut client,
            ORG,
            pb::FailurePolicy::StopOnFirstError,
            &cases_csv(3_000, 13)?,
            2_700,
        )
        .await?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::Failed, "{done:?}");
    assert!(done.rollback_time.is_some());
    let withdrawn = archive_reaches(&mut client, &id, pb::ArchiveState::Withdrawn).await?;
    assert_eq!((withdrawn.chunks_archived, withdrawn.pending), (0, 0));
    let read = read_with_pyarrow(&env.config.storage_dir, &id)?;
    assert_eq!(read["parquet_files"], 0, "{read}");

    // A writing worker archives a chunk on a task of its own; its record of
    // having stored the rows can come after the rollback withdrew them. The
    // chunk then stays due, and the runner deletes its rows again.
    let chunk: i64 = passare_imports_store::sqlx::query_scalar(
        "SELECT id FROM chunks WHERE import_id = $1::uuid ORDER BY seq LIMIT 1",
    )
    .bind(&id)
    .fetch_one(env.db.pool())
    .await?;
    passare_imports_store::archive::chunk_done(&mut *env.db.conn().await?, chunk, true).await?;
    let withdrawn = archive_reaches(&mut client, &id, pb::ArchiveState::Withdrawn).await?;
    assert_eq!((withdrawn.chunks_archived, withdrawn.pending), (0, 0));
    env.finish().await
}
