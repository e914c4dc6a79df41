//! One suite for every store: each test runs against the local directory
//! and against S3 (the moto server `scripts/test.sh` starts, at
//! `PASSARE_TEST_S3_ENDPOINT`; without that variable the S3 runs are skipped
//! with a message, and CI always sets it).

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use tokio::io::AsyncReadExt;

use crate::local::io_err;
use crate::*;

/// The variable naming the S3-compatible test server.
const ENDPOINT_VAR: &str = "PASSARE_TEST_S3_ENDPOINT";

struct Fixture {
    store: Arc<dyn FileStore>,
    /// Whether an uncommitted write is listed as a partial object.
    lists_partials: bool,
    _dir: Option<tempfile::TempDir>,
}

async fn local() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalFileStore::new(dir.path()).await.unwrap();
    Fixture {
        store: Arc::new(store),
        lists_partials: true,
        _dir: Some(dir),
    }
}

/// A store of a bucket of its own on the test server, under a prefix (so
/// the prefix is part of what is tested); `None` when no server is set.
async fn s3(test: &str) -> Option<Fixture> {
    let Ok(endpoint) = std::env::var(ENDPOINT_VAR) else {
        eprintln!(
            "skipping the S3 run of {test}: {ENDPOINT_VAR} is not set (scripts/test.sh starts moto and sets it)"
        );
        return None;
    };
    let simple = uuid::Uuid::new_v4().simple().to_string();
    let bucket = format!("pi-unit-{}", &simple[..16]);
    create_bucket_unsigned(&endpoint, &bucket).await.unwrap();
    let config = S3Config {
        bucket,
        prefix: "tenant/files".into(),
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        session_token: None,
        max_retries: 2,
        retry_timeout: Duration::from_secs(10),
    };
    let store = open_store(&StorageConfig {
        kind: StorageKind::S3,
        dir: Default::default(),
        s3: config,
    })
    .await
    .unwrap();
    Some(Fixture {
        store,
        lists_partials: false,
        _dir: None,
    })
}

/// Runs `suite` against the local store, then against S3 when available.
macro_rules! every_store {
    ($name:ident, $suite:ident) => {
        #[tokio::test]
        async fn $name() -> Result<(), StorageError> {
            $suite(&local().await).await?;
            if let Some(s3) = s3(stringify!($name)).await {
                $suite(&s3).await?;
            }
            Ok(())
        }
    };
}

every_store!(
    committed_files_read_back_whole_and_by_range,
    read_back_whole_and_by_range
);
every_store!(an_uncommitted_write_leaves_nothing, uncommitted_write);
every_store!(
    listing_finds_committed_and_partial_objects_under_a_prefix,
    listing
);
every_store!(keys_cannot_escape_the_root, bad_keys);
every_store!(files_larger_than_a_part_stream_in_parts, large_file);

async fn read_back_whole_and_by_range(f: &Fixture) -> Result<(), StorageError> {
    let store = &f.store;
    let mut w = store.create("imports/a/file.csv").await?;
    w.write(b"hello ").await?;
    w.write(b"world").await?;
    assert_eq!(w.commit().await?, 11);
    assert_eq!(
        &store.read_range("imports/a/file.csv", 6, 11).await?[..],
        b"world"
    );
    let mut all = Vec::new();
    store
        .open("imports/a/file.csv")
        .await?
        .read_to_end(&mut all)
        .await
        .map_err(io_err("x"))?;
    assert_eq!(all, b"hello world");
    assert!(store.read_range("imports/a/file.csv", 6, 20).await.is_err());
    assert!(
        store
            .read_range("imports/a/file.csv", 30, 40)
            .await
            .is_err()
    );
    store.delete("imports/a/file.csv").await?;
    assert!(matches!(
        store.open("imports/a/file.csv").await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        store.read_range("imports/a/file.csv", 0, 1).await,
        Err(StorageError::NotFound(_))
    ));
    // Deleting what is gone is no error.
    store.delete("imports/a/file.csv").await?;
    Ok(())
}

async fn uncommitted_write(f: &Fixture) -> Result<(), StorageError> {
    let mut w = f.store.create("x/partial.csv").await?;
    w.write(b"half").await?;
    drop(w);
    let left: Vec<StoredObject> = f.store.list("x/").try_collect().await?;
    assert!(left.is_empty(), "{left:?}");
    assert!(matches!(
        f.store.open("x/partial.csv").await,
        Err(StorageError::NotFound(_))
    ));
    Ok(())
}

async fn listing(f: &Fixture) -> Result<(), StorageError> {
    let store = &f.store;
    for key in ["imports/a/one", "imports/b/two.csv", "uploads/u/part"] {
        let mut w = store.create(key).await?;
        w.write(b"bytes").await?;
        w.commit().await?;
    }
    let mut half = store.create("imports/a/three").await?;
    half.write(b"half").await?;
    let mut found: Vec<StoredObject> = store.list("imports/").try_collect().await?;
    found.sort_by(|a, b| a.key.cmp(&b.key));
    let keys: Vec<(&str, bool)> = found.iter().map(|o| (o.key.as_str(), o.partial)).collect();
    let committed: Vec<_> = keys.iter().filter(|(_, partial)| !partial).collect();
    assert_eq!(
        committed,
        [&("imports/a/one", false), &("imports/b/two.csv", false)]
    );
    let two = found.iter().find(|o| o.key == "imports/b/two.csv");
    assert_eq!(two.map(|o| o.size), Some(5));
    let partials: Vec<&StoredObject> = found.iter().filter(|o| o.partial).collect();
    if f.lists_partials {
        assert_eq!(partials.len(), 1, "{keys:?}");
        assert!(partials[0].key.starts_with("imports/a/three.partial-"));
        // A partial write's key deletes it like any key.
        store.delete(&partials[0].key).await?;
    } else {
        assert!(partials.is_empty(), "{keys:?}");
    }
    drop(half);
    let all: Vec<StoredObject> = store.list("").try_collect().await?;
    assert_eq!(all.len(), 3, "{all:?}");
    // A prefix that is not a whole folder name matches like a string.
    let some: Vec<StoredObject> = store.list("imports/b/tw").try_collect().await?;
    assert_eq!(some.len(), 1);
    let none: Vec<StoredObject> = store.list("nothing/here/").try_collect().await?;
    assert!(none.is_empty());
    Ok(())
}

async fn bad_keys(f: &Fixture) -> Result<(), StorageError> {
    for key in ["../etc/passwd", "/abs", "", "a/../../b"] {
        assert!(
            matches!(f.store.create(key).await, Err(StorageError::BadKey(_))),
            "{key}"
        );
    }
    Ok(())
}

async fn large_file(f: &Fixture) -> Result<(), StorageError> {
    // Two and a half parts, written in pieces of odd sizes.
    let total = crate::s3::PART_BYTES * 5 / 2;
    let bytes: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let mut w = f.store.create("imports/big/file.bin").await?;
    for piece in bytes.chunks(1_000_003) {
        w.write(piece).await?;
    }
    assert_eq!(w.commit().await?, total as u64);
    let at = crate::s3::PART_BYTES as u64 - 10;
    let range = f
        .store
        .read_range("imports/big/file.bin", at, at + 20)
        .await?;
    assert_eq!(&range[..], &bytes[at as usize..at as usize + 20]);
    let mut all = Vec::new();
    f.store
        .open("imports/big/file.bin")
        .await?
        .read_to_end(&mut all)
        .await
        .map_err(io_err("x"))?;
    assert!(all == bytes, "the file read back differs");
    f.store.delete("imports/big/file.bin").await?;
    Ok(())
}

/// A store nobody answers for: after the client's retries, every operation
/// fails as `Unavailable`, which is transient (the worker retries the
/// chunk, a call answers UNAVAILABLE).
#[tokio::test]
async fn an_unreachable_object_store_is_a_transient_error() -> Result<(), StorageError> {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(io_err("port"))?;
    // Opening it only warns: a store may be away when a process starts.
    let store = open_store(&StorageConfig {
        kind: StorageKind::S3,
        dir: Default::default(),
        s3: S3Config {
            bucket: "nobody-home".into(),
            endpoint: Some(format!("http://{closed}")),
            region: Some("us-east-1".into()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            max_retries: 1,
            retry_timeout: Duration::from_secs(2),
            ..S3Config::default()
        },
    })
    .await?;
    let read = store.read_range("imports/a/file.csv", 0, 10).await;
    assert!(
        matches!(&read, Err(e @ StorageError::Unavailable { .. }) if e.is_transient()),
        "{read:?}"
    );
    let mut w = store.create("imports/a/file.csv").await?;
    w.write(b"bytes").await?;
    let written = w.commit().await;
    assert!(
        matches!(written, Err(StorageError::Unavailable { .. })),
        "{written:?}"
    );
    let listed: Result<Vec<StoredObject>, _> = store.list("imports/").try_collect().await;
    assert!(
        matches!(listed, Err(StorageError::Unavailable { .. })),
        "{listed:?}"
    );
    Ok(())
}

/// A bucket that does not exist stops the process at start, naming it.
#[tokio::test]
async fn a_missing_bucket_is_refused_at_start() -> Result<(), StorageError> {
    let Ok(endpoint) = std::env::var(ENDPOINT_VAR) else {
        eprintln!("skipping a_missing_bucket_is_refused_at_start: {ENDPOINT_VAR} is not set");
        return Ok(());
    };
    let opened = open_store(&StorageConfig {
        kind: StorageKind::S3,
        dir: Default::default(),
        s3: S3Config {
            bucket: "pi-unit-never-created".into(),
            endpoint: Some(endpoint),
            region: Some("us-east-1".into()),
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
            max_retries: 1,
            retry_timeout: Duration::from_secs(5),
            ..S3Config::default()
        },
    })
    .await;
    assert!(
        matches!(&opened, Err(StorageError::Config(m)) if m.contains("pi-unit-never-created") && m.contains("does not exist")),
        "{:?}",
        opened.err()
    );
    Ok(())
}
