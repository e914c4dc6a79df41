//! The resumable upload as the admin frontend runs it: the page's own upload
//! client (`gateway/web/src/upload`, bundled for Node) talks grpc-web to a
//! real `passare-imports gateway` process. A 100 MB file survives the gateway
//! process being killed and restarted mid-upload (the client asks for the
//! committed offset and goes on, it does not start over), its SHA-256 is the
//! file's, and the import then loads exactly its rows. Every refusal a client
//! must handle reaches it over grpc-web with its code, reason and details.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use passare_imports_integration_tests::files::{self, NewFile};
use passare_imports_integration_tests::resumable;
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use passare_imports_store::sqlx;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

const ORG: i64 = 1042;
const OTHER_ORG: i64 = 2042;
/// Rows of the big file and the length of each row's notes: about 100 MB.
const ROWS: usize = 50_000;
const NOTES: usize = 2_000;

fn web_dir() -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gateway/web");
    anyhow::ensure!(
        dir.join("dist-node/upload-client.mjs").is_file(),
        "the upload client for Node is not built: run scripts/build-web.sh (scripts/setup.sh does)"
    );
    Ok(dir)
}

/// A free loopback address for a gateway process.
fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A rolodex of `ROWS` vendors with long notes: about 100 MB.
fn big_rolodex() -> Vec<u8> {
    let mut out = Vec::with_capacity(ROWS * (NOTES + 40));
    out.extend_from_slice(b"name,category,notes\n");
    let letters = b"abcdefghijklmnopqrstuvwxyz0123456789";
    for i in 0..ROWS {
        out.extend_from_slice(format!("Vendor {i:06},vendor,").as_bytes());
        out.extend((0..NOTES).map(|j| letters[(i * 7 + j * 13) % letters.len()]));
        out.push(b'\n');
    }
    out
}

/// Runs `tests/upload-node.mjs` with `vars`; calls `on_line` with each JSON
/// line as it is printed. Fails with the script's output when it fails.
async fn run_script<F>(vars: &[(&str, String)], mut on_line: F) -> anyhow::Result<Vec<Value>>
where
    F: AsyncFnMut(&Value) -> anyhow::Result<()>,
{
    let mut child = tokio::process::Command::new("node")
        .arg("tests/upload-node.mjs")
        .current_dir(web_dir()?)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting node")?;
    let stdout = child.stdout.take().context("node's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await? {
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            on_line(&value).await?;
            printed.push(value);
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(600), read)
        .await
        .context("upload-node.mjs did not finish within 10 minutes")??;
    let out = child.wait_with_output().await?;
    anyhow::ensure!(
        out.status.success(),
        "upload-node.mjs failed ({}): {printed:?}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(printed)
}

fn event<'a>(lines: &'a [Value], name: &str) -> anyhow::Result<&'a Value> {
    lines
        .iter()
        .find(|l| l["event"] == name)
        .with_context(|| format!("no {name} event in {lines:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_upload_survives_the_gateway_process_being_killed_and_restarted()
-> anyhow::Result<()> {
    let mut env = TestEnv::start(Options {
        chunk_rows: 10_000,
        ..Options::default()
    })
    .await?;
    env.organization(ORG).await?;
    let mut client = env.client().await?;
    let draft = files::create_draft(&mut client, ORG, pb::FailurePolicy::ImportValidRows).await?;
    let bytes = big_rolodex();
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("big-rolodex.csv");
    std::fs::write(&path, &bytes)?;

    let addr = free_addr()?;
    let mut gateway = env.spawn_gateway_process(addr).await?;
    let kill_at = bytes.len() * 2 / 5;
    let mut restarts = 0;
    let vars = [
        ("MODE", "resume".to_string()),
        ("GATEWAY_URL", format!("http://{addr}")),
        ("ADMIN_TOKEN", env.token(&ADMIN)),
        ("IMPORT_ID", draft.clone()),
        ("BIG_FILE", path.display().to_string()),
        ("KILL_AT", kill_at.to_string()),
    ];
    let lines = run_script(&vars, async |line| {
        if line["event"] == "kill" {
            // Mid-upload: the process dies with parts in flight, and a new
            // one takes its address a moment later.
            env.kill_worker_process(gateway)?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            gateway = env.spawn_gateway_process(addr).await?;
            restarts += 1;
        }
        Ok(())
    })
    .await?;
    assert_eq!(restarts, 1, "the gateway was killed once: {lines:?}");
    let kill = event(&lines, "kill")?;
    assert!(kill["committed"].as_u64() >= Some(kill_at as u64));
    let done = event(&lines, "done")?;
    assert_eq!(done["size"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(
        done["sha256"],
        Value::from(sha256.clone()),
        "the client's hash"
    );
    assert_eq!(
        done["serverSha256"],
        Value::from(sha256.clone()),
        "the stored file's hash"
    );
    assert!(
        done["waits"].as_u64() > Some(0),
        "the client waited out the outage: {done}"
    );
    // Resumed, not restarted: at most the parts in flight at the kill are sent twice.
    let sent = done["sentBytes"].as_u64().context("sentBytes")?;
    let part = 4 * 1024 * 1024;
    assert!(
        sent >= bytes.len() as u64 && sent <= bytes.len() as u64 + 2 * part,
        "sent {sent} bytes for a file of {}",
        bytes.len()
    );

    let imported = client
        .get_import(pb::GetImportRequest {
            import_id: draft.clone(),
        })
        .await?
        .into_inner()
        .import
        .context("no import")?;
    assert_eq!(imported.files.len(), 1);
    assert_eq!(imported.files[0].sha256, sha256);
    assert_eq!(imported.files[0].row_count, ROWS as i64);
    start(&mut client, &draft).await?;
    let finished = wait_terminal(&mut client, &draft).await?;
    assert_eq!(state(&finished), pb::ImportState::Completed, "{finished:?}");
    let (rows, names, notes): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT name), sum(length(notes))::bigint
           FROM rolodex_entries WHERE organization_id = $1",
    )
    .bind(ORG)
    .fetch_one(env.db.pool())
    .await?;
    assert_eq!(
        (rows, names, notes),
        (ROWS as i64, ROWS as i64, (ROWS * NOTES) as i64)
    );
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_of_the_resumable_upload_reaches_a_grpc_web_client() -> anyhow::Result<()> {
    let mut env = TestEnv::start(Options::default()).await?;
    env.organization(ORG).await?;
    env.organization(OTHER_ORG).await?;
    let mut admin = env.client().await?;
    let policy = pb::FailurePolicy::ImportValidRows;
    let draft = files::create_draft(&mut admin, ORG, policy).await?;
    let vendors = NewFile::new(
        "vendors.csv",
        "rolodex",
        b"name,category\nA,church\n".to_vec(),
    );
    // A started import, an expired upload, another organization's upload.
    let (started, _) =
        files::draft_with_files(&mut admin, ORG, policy, std::slice::from_ref(&vendors)).await?;
    start(&mut admin, &started).await?;
    let expired = resumable::begin(&mut admin, &draft, &vendors, "", "").await?;
    sqlx::query("UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = $1::uuid")
        .bind(&expired.id)
        .execute(env.db.pool())
        .await?;
    let theirs = files::create_draft(&mut admin, OTHER_ORG, policy).await?;
    let foreign = resumable::begin(&mut admin, &theirs, &vendors, "", "").await?;

    let addr = free_addr()?;
    env.spawn_gateway_process(addr).await?;
    let vars = [
        ("MODE", "checks".to_string()),
        ("GATEWAY_URL", format!("http://{addr}")),
        ("ADMIN_TOKEN", env.token(&ADMIN)),
        ("MEMBER_TOKEN", env.token(&MEMBER)),
        ("IMPORT_ID", draft.clone()),
        ("STARTED_ID", started),
        ("EXPIRED_ID", expired.id),
        ("FOREIGN_ID", foreign.id),
    ];
    let lines = run_script(&vars, async |_| Ok(())).await?;
    let outcome = |name: &str| -> (String, String) {
        lines
            .iter()
            .find(|l| l["check"] == name)
            .map(|l| {
                let text = |v: &Value| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                };
                (text(&l["code"]), text(&l["reason"]))
            })
            .unwrap_or_else(|| ("missing".into(), format!("{lines:?}")))
    };
    let refused = |code: &str, reason: &str| (code.to_string(), reason.to_string());
    let value = |name: &str| {
        lines
            .iter()
            .find(|l| l["check"] == name)
            .map(|l| l["value"].clone())
    };
    assert_eq!(outcome("first part").0, "OK");
    assert_eq!(value("first part"), Some(Value::from(20)));
    assert_eq!(
        value("part re-sent"),
        Some(Value::from(20)),
        "acknowledged, not rewritten"
    );
    assert_eq!(
        outcome("part with a gap"),
        refused("FailedPrecondition", "UPLOAD_OFFSET_MISMATCH")
    );
    let gap = lines
        .iter()
        .find(|l| l["check"] == "part with a gap")
        .context("gap")?;
    assert!(
        gap["preconditions"]
            .to_string()
            .contains("committed_bytes is 20"),
        "the committed offset is in the details: {gap}"
    );
    assert_eq!(value("committed offset"), Some(Value::from(20)));
    assert_eq!(outcome("past the declared size").0, "InvalidArgument");
    assert_eq!(outcome("no token").0, "Unauthenticated");
    assert_eq!(outcome("unknown upload").0, "NotFound");
    // A user of one organization learns nothing of another's upload: the
    // answer is exactly the one for an id that does not exist (plain users
    // never upload, docs/access-control.md, so both are PERMISSION_DENIED).
    assert_eq!(
        outcome("another organization's upload"),
        outcome("unknown upload, as a plain user"),
        "like an unknown one"
    );
    assert_eq!(
        outcome("another organization's upload").0,
        "PermissionDenied"
    );
    assert_eq!(
        outcome("expired upload"),
        refused("FailedPrecondition", "UPLOAD_EXPIRED")
    );
    assert_eq!(
        outcome("upload to a started import"),
        refused("FailedPrecondition", "IMPORT_NOT_DRAFT")
    );
    assert_eq!(
        outcome("wrong checksum"),
        refused("InvalidArgument", "CHECKSUM_MISMATCH")
    );
    assert_eq!(
        value("nothing attached"),
        Some(Value::from(0)),
        "nothing attached"
    );
    env.finish().await
}
