//! The orphan sweep: stored bytes that no record points at (an upload that
//! failed after its bytes were stored, a part of an upload nobody knows, a
//! write cut short by a killed process) are deleted once old enough; every
//! recorded file, converted copy and live upload part stays, and so does
//! anything written recently.

use std::path::Path;
use std::time::{Duration, SystemTime};

use passare_imports_integration_tests::files::{self, NewFile};
use passare_imports_integration_tests::resumable;
use passare_imports_integration_tests::service::sweep_orphans;
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_storage::{FileStore, LocalFileStore};
use uuid::Uuid;

const ORG: i64 = 1042;
const DAY: Duration = Duration::from_secs(86_400);

/// Makes the object under `key` look last written `age` ago.
fn age(storage: &Path, key: &str, age: Duration) -> anyhow::Result<()> {
    let file = std::fs::File::options()
        .write(true)
        .open(storage.join(key))?;
    file.set_modified(SystemTime::now() - age)?;
    Ok(())
}

/// Every key under `storage`, sorted.
fn keys(storage: &Path) -> anyhow::Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else {
                out.push(
                    path.strip_prefix(root)?
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(storage, storage, &mut out)?;
    out.sort();
    Ok(out)
}

#[tokio::test]
async fn the_orphan_sweep_deletes_only_old_bytes_no_record_points_at() -> anyhow::Result<()> {
    let env = TestEnv::start(Options::default()).await?;
    env.organization(ORG).await?;
    let mut client = env.client().await?;
    let storage = env.config.storage_dir.clone();
    let store = LocalFileStore::new(&storage).await?;

    // Recorded: a Windows-1252 file (stored with its UTF-8 conversion) in a
    // draft, and a live resumable upload with one part.
    let generated = String::from_utf8(cases_csv(5, 5)?)?;
    let lines: Vec<&str> = generated.lines().collect();
    let first = lines[..3].join("\n") + "\n";
    let (legacy, _, _) = encoding_rs::WINDOWS_1252.encode(&first);
    let (import_id, _) = files::draft_with_files(
        &mut client,
        ORG,
        pb::FailurePolicy::ImportValidRows,
        &[NewFile::new("legacy.csv", "cases", legacy.into_owned()).encoding("windows-1252")],
    )
    .await?;
    let more = [&lines[..1], &lines[3..]].concat().join("\n") + "\n";
    let second = NewFile::new("more.csv", "cases", more.into_bytes());
    let upload = resumable::begin(
        &mut client,
        &import_id,
        &second,
        "",
        &Uuid::now_v7().to_string(),
    )
    .await?;
    resumable::part(&mut client, &upload.id, 0, &second.bytes[..10]).await?;
    let recorded = keys(&storage)?;
    assert_eq!(
        recorded.len(),
        3,
        "original, conversion and part: {recorded:?}"
    );

    // Orphans: bytes stored for an upload that failed before its record
    // (in a real import's folder and in a folder of no import), a part of an
    // upload nobody knows, and a write cut short by a killed process.
    let orphans = [
        format!("imports/{import_id}/{}", Uuid::now_v7()),
        format!("imports/{}/{}.utf8.csv", Uuid::now_v7(), Uuid::now_v7()),
        format!(
            "uploads/{}/00000000000000000000-{}",
            Uuid::now_v7(),
            Uuid::now_v7().simple()
        ),
    ];
    for key in &orphans {
        let mut writer = store.create(key).await?;
        writer.write(b"case_number\nX1\n").await?;
        writer.commit().await?;
    }
    let mut cut = store
        .create(&format!("imports/{import_id}/{}", Uuid::now_v7()))
        .await?;
    cut.write(b"case_number\nhalf a fi").await?;
    // The process dies: the writer never commits and never cleans up.
    std::mem::forget(cut);
    // A young orphan: its record may still be on its way.
    let young = format!("imports/{import_id}/{}", Uuid::now_v7());
    let mut writer = store.create(&young).await?;
    writer.write(b"case_number\nY1\n").await?;
    writer.commit().await?;

    let everything = keys(&storage)?;
    assert_eq!(everything.len(), 8, "{everything:?}");
    for key in everything.iter().filter(|k| **k != young) {
        age(&storage, key, 2 * DAY)?;
    }
    let partial = everything
        .iter()
        .find(|k| k.contains(".partial-"))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no partial write in {everything:?}"))?;

    let swept = sweep_orphans(&env.config, DAY).await?;
    assert_eq!((swept.orphans, swept.partial), (3, 1), "{swept:?}");
    assert_eq!(swept.bytes, 3 * 15 + 21);
    let mut left = recorded.clone();
    left.push(young.clone());
    left.sort();
    assert_eq!(keys(&storage)?, left);
    assert!(!left.contains(&partial));

    // A second round finds nothing; the young orphan goes once old enough.
    assert_eq!(sweep_orphans(&env.config, DAY).await?, Default::default());
    age(&storage, &young, 2 * DAY)?;
    let swept = sweep_orphans(&env.config, DAY).await?;
    assert_eq!((swept.orphans, swept.partial, swept.bytes), (1, 0, 15));
    assert_eq!(keys(&storage)?, recorded);

    // What stayed is whole: the upload completes and both files import.
    resumable::send_from(&mut client, &upload.id, &second.bytes, 10, 64 * 1024).await?;
    resumable::complete(&mut client, &upload.id).await?;
    start(&mut client, &import_id).await?;
    let done = wait_terminal(&mut client, &import_id).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:?}");
    assert_eq!(done.progress.map(|p| p.rows_created), Some(5));
    env.finish().await
}

/// Every key of the store under `imports/` and `uploads/`, sorted.
async fn stored_keys(store: &dyn FileStore) -> anyhow::Result<Vec<String>> {
    use futures::TryStreamExt;
    let mut out = Vec::new();
    for folder in ["imports/", "uploads/"] {
        let found: Vec<_> = store.list(folder).try_collect().await?;
        out.extend(found.into_iter().map(|o| o.key));
    }
    out.sort();
    Ok(out)
}

/// The same sweep over S3: orphans go, recorded files and live upload
/// parts stay. S3 has no partial writes to find (an unfinished write is an
/// incomplete multipart upload, which listings never show), and objects
/// cannot be aged, so the sweep runs with no minimum age.
#[tokio::test]
async fn the_orphan_sweep_works_the_same_on_s3() -> anyhow::Result<()> {
    let env = TestEnv::start(Options {
        s3: true,
        ..Options::default()
    })
    .await?;
    let mut client = env.client().await?;
    let store = passare_imports_storage::open_store(&env.config.storage()).await?;
    // Eight generated rows: five in a recorded file, three in a live upload.
    let generated = String::from_utf8(cases_csv(8, 5)?)?;
    let lines: Vec<&str> = generated.lines().collect();
    let first = lines[..6].join("\n") + "\n";
    let (import_id, _) = files::draft_with_files(
        &mut client,
        ORG,
        pb::FailurePolicy::ImportValidRows,
        &[NewFile::new("cases.csv", "cases", first.into_bytes())],
    )
    .await?;
    let more = [&lines[..1], &lines[6..]].concat().join("\n") + "\n";
    let second = NewFile::new("more.csv", "cases", more.into_bytes());
    let upload = resumable::begin(&mut client, &import_id, &second, "", "").await?;
    resumable::part(&mut client, &upload.id, 0, &second.bytes[..10]).await?;
    let recorded = stored_keys(&*store).await?;
    assert_eq!(recorded.len(), 2, "the file and the part: {recorded:?}");

    let orphans = [
        format!("imports/{import_id}/{}", Uuid::now_v7()),
        format!(
            "uploads/{}/00000000000000000000-{}",
            Uuid::now_v7(),
            Uuid::now_v7().simple()
        ),
    ];
    for key in &orphans {
        let mut writer = store.create(key).await?;
        writer.write(b"case_number\nX1\n").await?;
        writer.commit().await?;
    }
    let mut cut = store
        .create(&format!("imports/{import_id}/{}", Uuid::now_v7()))
        .await?;
    cut.write(b"case_number\nhalf a fi").await?;
    drop(cut);
    assert_eq!(stored_keys(&*store).await?.len(), 4);

    let swept = sweep_orphans(&env.config, Duration::ZERO).await?;
    assert_eq!(
        (swept.orphans, swept.partial, swept.bytes),
        (2, 0, 30),
        "{swept:?}"
    );
    assert_eq!(stored_keys(&*store).await?, recorded);

    resumable::send_from(&mut client, &upload.id, &second.bytes, 10, 64 * 1024).await?;
    resumable::complete(&mut client, &upload.id).await?;
    start(&mut client, &import_id).await?;
    let done = wait_terminal(&mut client, &import_id).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:?}");
    assert_eq!(done.progress.map(|p| p.rows_created), Some(8));
    env.finish().await
}
