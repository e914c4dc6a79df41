//! Traces: with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a receiver in this
//! test, a server and a worker process export spans over OTLP/HTTP; the
//! StartImport call (continuing the caller's own trace context), the
//! analysis it queued, the notice, the drain and every chunk's phases of
//! that import share one trace id, from both services; a RetryFailedRows
//! call's retry chunks join that call's trace.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use passare_imports_cli::client;
use passare_imports_integration_tests::broker;
use passare_imports_integration_tests::scrapes::free_addr;
use passare_imports_integration_tests::table_lock::TableLock;
use passare_imports_integration_tests::*;
use passare_imports_proto::v1 as pb;
use prost::Message;

const ORG: i64 = 1042;
/// The caller's own trace (W3C `traceparent`): the import's work joins it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The trace of a RetryFailedRows call.
const RETRY_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

/// A received span: service, name, trace id.
type Received = Arc<Mutex<Vec<(String, String, String)>>>;

async fn export(State(received): State<Received>, body: Bytes) -> Vec<u8> {
    if let Ok(request) = ExportTraceServiceRequest::decode(body) {
        let mut got = Vec::new();
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref()?.value.clone())
                .and_then(|v| match v {
                    Value::StringValue(s) => Some(s),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    let trace: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                    got.push((service.clone(), span.name, trace));
                }
            }
        }
        if let Ok(mut all) = received.lock() {
            all.extend(got);
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

/// An OTLP/HTTP receiver on a free local port; returns its address.
async fn receiver(received: Received) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/v1/traces", post(export))
        .with_state(received);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// A test service whose server and worker processes export spans to a
/// receiver of this test; returns the service, a client of its server and
/// what the receiver got.
async fn traced_service(options: Options) -> anyhow::Result<(TestEnv, client::Client, Received)> {
    let received: Received = Arc::default();
    let otlp = receiver(received.clone()).await?;
    let mut env = TestEnv::start(Options {
        in_process_workers: 0,
        ..options
    })
    .await?;
    env.organization(ORG).await?;
    let otel = |name: &str| {
        vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
                format!("http://{otlp}"),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "100".to_string()),
            ("OTEL_SERVICE_NAME".to_string(), name.to_string()),
        ]
    };
    let grpc = free_addr()?;
    let mut server_env = otel("passare-imports-server");
    server_env.push(("IMPORTS_GRPC_ADDR".into(), grpc.to_string()));
    env.spawn_listening("serve", server_env, grpc).await?;
    let worker_ops = free_addr()?;
    let mut worker_env = otel("passare-imports-worker");
    worker_env.push(("IMPORTS_WORKER_OPS_ADDR".into(), worker_ops.to_string()));
    env.spawn_listening("work", worker_env, worker_ops).await?;
    let client = client::connect(&format!("http://{grpc}"), &env.token(&ADMIN)).await?;
    Ok((env, client, received))
}

/// A request carrying the caller's trace context for `trace_id`.
fn in_trace<T>(message: T, trace_id: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01").parse()?,
    );
    Ok(request)
}

/// Waits (bounded) until spans of every `(service, name)` of `want` with
/// `trace_id` were received; returns how many `chunk` spans the worker
/// sent in that trace.
async fn wait_for_spans(
    received: &Received,
    trace_id: &str,
    want: &[(&str, &str)],
) -> anyhow::Result<usize> {
    // The batch exporters send within a few hundred milliseconds.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let of_trace: Vec<(String, String)> = received
            .lock()
            .map(|all| {
                all.iter()
                    .filter(|(_, _, trace)| trace == trace_id)
                    .map(|(service, name, _)| (service.clone(), name.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let missing: Vec<_> = want
            .iter()
            .filter(|(s, n)| !of_trace.iter().any(|(a, b)| a == s && b == n))
            .collect();
        if missing.is_empty() {
            return Ok(of_trace
                .iter()
                .filter(|(s, n)| s == "passare-imports-worker" && n == "chunk")
                .count());
        }
        if Instant::now() > deadline {
            let seen: BTreeMap<(String, String), usize> = received
                .lock()
                .map(|all| {
                    let mut m = BTreeMap::new();
                    for (s, n, t) in all.iter() {
                        *m.entry((s.clone(), format!("{n} {}", &t[..8.min(t.len())])))
                            .or_default() += 1;
                    }
                    m
                })
                .unwrap_or_default();
            anyhow::bail!("spans of trace {trace_id} missing: {missing:?}; received {seen:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_is_one_trace_across_the_server_and_the_worker() -> anyhow::Result<()> {
    let (env, mut client, received) = traced_service(Options {
        chunk_rows: 500,
        ..Options::default()
    })
    .await?;
    let (id, _) = env
        .draft_with_file(
            &mut client,
            ORG,
            pb::FailurePolicy::ImportValidRows,
            "cases.csv",
            &cases_csv(2_000, 31)?,
        )
        .await?;
    let start = pb::StartImportRequest {
        import_id: id.clone(),
        failure_policy: 0,
    };
    client.start_import(in_trace(start, TRACE_ID)?).await?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(state(&done), pb::ImportState::Completed, "{done:?}");

    let want = [
        ("passare-imports-server", "start_import"),
        ("passare-imports-worker", "analysis"),
        ("passare-imports-worker", "drain"),
        ("passare-imports-worker", "chunk"),
        ("passare-imports-worker", "chunk.parse"),
        ("passare-imports-worker", "chunk.check"),
        ("passare-imports-worker", "chunk.write"),
    ];
    let chunks = wait_for_spans(&received, TRACE_ID, &want).await?;
    assert!(
        chunks >= 4,
        "one chunk span per chunk of the import: {chunks}"
    );
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_of_failed_rows_joins_the_retry_calls_trace() -> anyhow::Result<()> {
    let (env, mut client, received) = traced_service(Options {
        chunk_rows: 50,
        ..Options::default()
    })
    .await?;
    let mut rows = generated_rows(200, 7);
    rows[10][5] = "2024-13-01".into();
    let (id, _) = env
        .draft_with_file(
            &mut client,
            ORG,
            pb::FailurePolicy::ImportValidRows,
            "cases.csv",
            &cases_csv_of(&rows),
        )
        .await?;
    let start = pb::StartImportRequest {
        import_id: id.clone(),
        failure_policy: 0,
    };
    client.start_import(in_trace(start, TRACE_ID)?).await?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(
        state(&done),
        pb::ImportState::CompletedWithErrors,
        "{done:?}"
    );

    // The row is still wrong: the retry fails it again, in the retry's trace.
    let retry = pb::RetryFailedRowsRequest {
        import_id: id.clone(),
    };
    client
        .retry_failed_rows(in_trace(retry, RETRY_TRACE_ID)?)
        .await?;
    let again = wait_terminal(&mut client, &id).await?;
    assert_eq!(
        state(&again),
        pb::ImportState::CompletedWithErrors,
        "{again:?}"
    );
    let want = [
        ("passare-imports-server", "retry_failed_rows"),
        ("passare-imports-worker", "chunk"),
        ("passare-imports-worker", "chunk.write"),
    ];
    let chunks = wait_for_spans(&received, RETRY_TRACE_ID, &want).await?;
    assert_eq!(chunks, 1, "the retry's one chunk, in the retry's trace");
    env.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_carries_its_imports_trace_context() -> anyhow::Result<()> {
    let (env, mut client, received) = traced_service(Options {
        chunk_rows: 100,
        retry_max_attempts: 2,
        retry_base_ms: 200,
        chunk_timeout_ms: 700,
        ..Options::default()
    })
    .await?;
    let (id, _) = env
        .draft_with_file(
            &mut client,
            ORG,
            pb::FailurePolicy::ImportValidRows,
            "cases.csv",
            &cases_csv(200, 7)?,
        )
        .await?;
    // The first chunk cannot write (the table is locked) and is given up.
    let lock = TableLock::take(&env).await?;
    let start = pb::StartImportRequest {
        import_id: id.clone(),
        failure_policy: 0,
    };
    client.start_import(in_trace(start, TRACE_ID)?).await?;
    let broker = broker::Broker::connect(&env).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (dead, trace) = loop {
        match broker.take_dead_letter_traced().await {
            Ok(got) => break got,
            Err(e) if Instant::now() > deadline => return Err(e.context("no dead letter")),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    lock.release().await?;
    let passare_imports_domain::messages::DeadChunk::V1 { chunk, .. } = dead;
    let passare_imports_domain::messages::ChunkMessage::V1 { import_id, .. } = chunk;
    assert_eq!(import_id.to_string(), id);
    let parent = trace.get("traceparent").cloned().unwrap_or_default();
    assert!(
        parent.starts_with(&format!("00-{TRACE_ID}-")),
        "the dead letter's traceparent: {trace:?}"
    );
    broker.close().await?;
    wait_for_spans(
        &received,
        TRACE_ID,
        &[("passare-imports-worker", "chunk.dead_letter")],
    )
    .await?;
    let done = wait_terminal(&mut client, &id).await?;
    assert_eq!(
        state(&done),
        pb::ImportState::CompletedWithErrors,
        "{done:?}"
    );
    env.finish().await
}
