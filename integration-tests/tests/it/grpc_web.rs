//! The admin frontend's path: grpc-web through the gateway, driven by a real
//! grpc-web client (connect-es under Node), plus the CORS preflight a browser
//! sends first.

use std::path::PathBuf;
use std::process::Stdio;

use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client_dir() -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("grpc-web");
    anyhow::ensure!(
        dir.join("node_modules").exists()
            && dir.join("gen/passare/imports/v1/imports_pb.js").exists(),
        "the grpc-web client is not installed: run `npm ci --prefix integration-tests/grpc-web && npm --prefix integration-tests/grpc-web run generate` (scripts/test.sh does)"
    );
    Ok(dir)
}

async fn node(dir: &std::path::Path, env: &[(&str, String)]) -> anyhow::Result<(bool, Vec<Value>)> {
    let out = tokio::process::Command::new("node")
        .arg(dir.join("watch.mjs"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await?;
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<Value>, _>>()?;
    if !out.status.success() {
        eprintln!("node stderr: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok((out.status.success(), lines))
}

/// Sends one raw HTTP/1.1 request, as a browser would, and returns the
/// lower-cased response.
async fn http(addr: std::net::SocketAddr, request: String) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).to_lowercase())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_web_client_gets_and_follows_an_import_through_the_gateway() -> anyhow::Result<()> {
    let dir = client_dir()?;
    let env = TestEnv::start(Options {
        chunk_rows: 1_000,
        ..Options::default()
    })
    .await?;
    let gateway = env.grpc_web_gateway().await?;

    let preflight = |origin: &str| {
        format!(
            "OPTIONS /passare.imports.v1.ImportService/WatchImport HTTP/1.1\r\nHost: {gateway}\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization,content-type,x-grpc-web\r\n\
             Connection: close\r\n\r\n"
        )
    };
    let allowed = http(gateway, preflight("http://localhost:3000")).await?;
    assert!(
        allowed.contains("access-control-allow-origin: http://localhost:3000"),
        "{allowed}"
    );
    assert!(
        allowed.contains("authorization") && allowed.contains("x-grpc-web"),
        "{allowed}"
    );
    let foreign = http(gateway, preflight("https://evil.example")).await?;
    assert!(
        !foreign.contains("access-control-allow-origin"),
        "{foreign}"
    );
    // An actual call: the status travels in headers the page may read.
    let call = http(
        gateway,
        format!(
            "POST /passare.imports.v1.ImportService/ListImports HTTP/1.1\r\nHost: {gateway}\r\nOrigin: http://localhost:3000\r\n\
             Content-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: 5\r\nConnection: close\r\n\r\n\0\0\0\0\0"
        ),
    )
    .await?;
    assert!(call.contains("grpc-status: 16"), "{call}");
    let exposed = call
        .lines()
        .find(|l| l.starts_with("access-control-expose-headers:"))
        .unwrap_or_default();
    for header in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(header), "{header} not exposed: {call}");
    }

    let mut client = env.client().await?;
    let id = env
        .generated_draft(
            &mut client,
            1042,
            pb::FailurePolicy::ImportValidRows,
            8_000,
            9,
        )
        .await?;
    let base = vec![
        ("GATEWAY_URL", format!("http://{gateway}")),
        ("IMPORT_ID", id.clone()),
        ("TIMEOUT_MS", "120000".to_string()),
    ];
    let mut run = base.clone();
    run.push(("IMPORTS_TOKEN", env.token(&ADMIN)));
    run.push(("START", "1".to_string()));
    let (ok, lines) = node(&dir, &run).await?;
    assert!(ok, "{lines:?}");
    let calls: Vec<&str> = lines.iter().filter_map(|l| l["call"].as_str()).collect();
    assert_eq!(calls.first(), Some(&"GetImport"), "{lines:?}");
    assert_eq!(lines[0]["state"], "IMPORT_STATE_DRAFT");
    assert_eq!(calls.get(1), Some(&"StartImport"));
    assert_eq!(calls.last(), Some(&"done"));
    let watch: Vec<&Value> = lines
        .iter()
        .filter(|l| l["call"] == "WatchImport")
        .collect();
    assert!(watch.len() >= 2, "{lines:?}");
    assert_eq!(watch[0]["kind"], pb::WatchEventKind::Snapshot as i32);
    for pair in watch.windows(2) {
        assert!(
            pair[0]["rowsProcessed"].as_i64() <= pair[1]["rowsProcessed"].as_i64(),
            "{pair:?}"
        );
    }
    let last = watch.last().copied().cloned().unwrap_or_default();
    assert_eq!(last["state"], pb::ImportState::Completed as i32, "{last}");
    assert_eq!(last["rowsImported"], 8_000);
    assert_eq!(
        (last["chunksDone"].as_i64(), last["chunksTotal"].as_i64()),
        (Some(8), Some(8))
    );

    let mut anonymous = base;
    anonymous.push(("EXPECT_UNAUTHENTICATED", "1".to_string()));
    let (ok, lines) = node(&dir, &anonymous).await?;
    assert!(
        ok,
        "a call without a token must be Unauthenticated: {lines:?}"
    );
    env.finish().await
}
