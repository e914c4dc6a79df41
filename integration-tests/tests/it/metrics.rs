//! Operating the service: every process (server, gateway, worker) serves
//! Prometheus metrics and probes on its ops listener. During an import of
//! a paused organization the backlog shows on the server's scrape; once it
//! ran, the worker's counters agree with the database, its phase histograms
//! have observations, the backlog is back to zero, and every metric the
//! Grafana dashboard queries exists in a scrape.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use anyhow::Context;
use passare_imports_app::observability::names;
use passare_imports_cli::client;
use passare_imports_integration_tests::scrapes::{Metrics, free_addr, http_get};
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;

const ORG: i64 = 1042;
const ROWS: u64 = 12_000;
const CHUNK_ROWS: u64 = 1_000;

/// The ops listeners of the test's processes.
struct Processes {
    server: SocketAddr,
    gateway: SocketAddr,
    worker: SocketAddr,
    grpc: SocketAddr,
}

async fn spawn_all(env: &mut TestEnv) -> anyhow::Result<Processes> {
    let p = Processes {
        server: free_addr()?,
        gateway: free_addr()?,
        worker: free_addr()?,
        grpc: free_addr()?,
    };
    let var = |k: &str, v: SocketAddr| (k.to_string(), v.to_string());
    env.spawn_listening(
        "serve",
        vec![
            var("IMPORTS_GRPC_ADDR", p.grpc),
            var("IMPORTS_SERVER_OPS_ADDR", p.server),
        ],
        p.grpc,
    )
    .await?;
    let gateway_addr = free_addr()?;
    env.spawn_listening(
        "gateway",
        vec![
            var("IMPORTS_GATEWAY_ADDR", gateway_addr),
            var("IMPORTS_GATEWAY_OPS_ADDR", p.gateway),
        ],
        p.gateway,
    )
    .await?;
    env.spawn_listening(
        "work",
        vec![var("IMPORTS_WORKER_OPS_ADDR", p.worker)],
        p.worker,
    )
    .await?;
    Ok(p)
}

/// Waits until `/readyz` of `addr` answers 200 (a worker is ready once it
/// holds its broker connection).
async fn ready(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, body) = http_get(addr, "/readyz").await?;
        if status == 200 {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{addr} not ready within 30 s: {status} {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Counts of the import's chunks and its target rows, from PostgreSQL.
async fn stored(env: &TestEnv) -> anyhow::Result<(i64, i64)> {
    let mut conn = env.db.conn().await?;
    let chunks: i64 = passare_imports_store::sqlx::query_scalar(
        "SELECT count(*) FROM chunks WHERE organization_id = $1 AND state = 'done'",
    )
    .bind(ORG)
    .fetch_one(&mut *conn)
    .await?;
    let cases: i64 = passare_imports_store::sqlx::query_scalar(
        "SELECT count(*) FROM cases WHERE organization_id = $1",
    )
    .bind(ORG)
    .fetch_one(&mut *conn)
    .await?;
    Ok((chunks, cases))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_exports_metrics_that_agree_with_the_database() -> anyhow::Result<()> {
    let mut env = TestEnv::start(Options {
        chunk_rows: CHUNK_ROWS,
        worker_concurrency: 1,
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    env.organization(ORG).await?;
    let p = spawn_all(&mut env).await?;
    for addr in [p.server, p.gateway, p.worker] {
        let (status, body) = http_get(addr, "/livez").await?;
        assert_eq!((status, body.trim()), (200, "ok"), "{addr}");
        ready(addr).await?;
    }
    let mut client = client::connect(&format!("http://{}", p.grpc), &env.token(&ADMIN)).await?;

    // Paused: the chunks wait, and the server's scrape shows the backlog.
    pause(&mut client, Some(ORG), "metrics test").await?;
    let csv = cases_csv(ROWS, 7)?;
    let (id, _) = env
        .draft_with_file(
            &mut client,
            ORG,
            pb::FailurePolicy::ImportValidRows,
            "cases.csv",
            &csv,
        )
        .await?;
    start(&mut client, &id).await?;
    let chunks = (ROWS / CHUNK_ROWS) as f64;
    let waiting = Metrics::scrape(p.server).await?;
    assert_eq!(waiting.value(names::WAITING_CHUNKS, &[]), chunks);
    let org = ORG.to_string();
    let of_org = [("organization", org.as_str())];
    assert_eq!(
        waiting.value(names::ORGANIZATION_WAITING_CHUNKS, &of_org),
        chunks
    );
    // Queued before this scrape: waiting for some time already.
    assert!(waiting.value(names::OLDEST_WAITING_SECONDS, &[]) > 0.0);
    assert!(waiting.value(names::ORGANIZATION_OLDEST_WAITING_SECONDS, &of_org) > 0.0);
    assert_eq!(waiting.value(names::IMPORTS, &[("state", "queued")]), 1.0);
    assert_eq!(
        waiting.value(names::UPLOAD_BYTES, &[("route", "stream")]),
        csv.len() as f64,
        "the server counts the bytes it received"
    );
    assert_eq!(waiting.value(names::LIVE_WORKERS, &[]), 1.0);

    resume(&mut client, Some(ORG)).await?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:?}");

    // The worker's counters agree with the database.
    let (chunks_done, cases) = stored(&env).await?;
    assert_eq!(chunks_done as f64, chunks);
    let worker = Metrics::scrape(p.worker).await?;
    let cases_kind = ("kind", "cases");
    assert_eq!(
        worker.value(names::CHUNKS, &[cases_kind, ("outcome", "loaded")]),
        chunks_done as f64
    );
    assert_eq!(
        worker.value(names::ROWS, &[cases_kind, ("outcome", "created")]),
        cases as f64
    );
    assert_eq!(cases as u64, ROWS);
    for phase in ["read", "parse", "check", "write"] {
        assert!(
            worker.observations(names::CHUNK_PHASE_SECONDS, &[("phase", phase)]) >= chunks,
            "no {phase} observations"
        );
    }
    assert!(worker.observations(names::ANALYSIS_SECONDS, &[]) >= 1.0);
    assert_eq!(worker.value(names::ANALYSES, &[("outcome", "done")]), 1.0);
    assert_eq!(
        worker.value(names::WORKER_SLOTS, &[("state", "busy")])
            + worker.value(names::WORKER_SLOTS, &[("state", "idle")]),
        1.0
    );

    // The backlog is back to zero, on the server and the gateway alike.
    let server = Metrics::scrape(p.server).await?;
    let gateway = Metrics::scrape(p.gateway).await?;
    for m in [&server, &gateway] {
        assert_eq!(m.value(names::WAITING_CHUNKS, &[]), 0.0);
        assert_eq!(m.value(names::ORGANIZATION_WAITING_CHUNKS, &of_org), 0.0);
        assert_eq!(m.value(names::IMPORTS, &[("state", "completed")]), 1.0);
    }

    // Every metric the dashboard queries exists in a scrape.
    let scrapes = [&server, &gateway, &worker];
    let missing: Vec<String> = dashboard_metrics()?
        .into_iter()
        .filter(|name| !scrapes.iter().any(|m| m.has(name)))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics no process exports: {missing:?}"
    );
    env.finish().await
}

/// The metric names the Grafana dashboard's queries use.
fn dashboard_metrics() -> anyhow::Result<BTreeSet<String>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/grafana/passare-imports.json"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).context(path)?)?;
    let mut exprs = Vec::new();
    collect_exprs(&json, &mut exprs);
    anyhow::ensure!(!exprs.is_empty(), "the dashboard has no queries");
    let mut found = BTreeSet::new();
    for expr in exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("passare_imports_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            found.insert(base.to_string());
        }
    }
    Ok(found)
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_its_broker_is_live_but_not_ready() -> anyhow::Result<()> {
    let mut env = TestEnv::start(Options {
        in_process_workers: 0,
        ..Options::default()
    })
    .await?;
    let ops = free_addr()?;
    // Nothing listens there: the worker keeps retrying its connection.
    let nowhere = free_addr()?;
    env.spawn_listening(
        "work",
        vec![
            ("IMPORTS_WORKER_OPS_ADDR".into(), ops.to_string()),
            (
                "IMPORTS_AMQP_URL".into(),
                format!("amqp://guest:guest@{nowhere}/%2f"),
            ),
        ],
        ops,
    )
    .await?;
    let (status, _) = http_get(ops, "/livez").await?;
    assert_eq!(status, 200);
    let (status, body) = http_get(ops, "/readyz").await?;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no broker connection"), "{body}");
    let (status, _) = http_get(ops, "/nothing-here").await?;
    assert_eq!(status, 404);
    env.finish().await
}
