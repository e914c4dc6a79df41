//! The ops listener: `GET /metrics` (Prometheus text format), `GET /livez`
//! (the process answers: its runtime is not wedged) and `GET /readyz` (it
//! can do its work: the database answers, the worker holds a broker
//! connection, it is not shutting down). Plain HTTP/1.1 on an address of its
//! own, so probes and scrapes never queue behind gRPC calls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

/// Longest a probe or a scrape's database reads may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a process tells the ops listener.
#[async_trait::async_trait]
pub trait ProcessProbe: Send + Sync + 'static {
    /// Why the process cannot take work now, or `Ok` when it can.
    async fn ready(&self) -> Result<(), String>;
    /// Brings the gauges this process reports up to date before a scrape.
    async fn refresh(&self) {}
}

#[derive(Clone)]
struct Ops {
    handle: PrometheusHandle,
    probe: Arc<dyn ProcessProbe>,
}

/// Binds `addr` (failing at once, naming `key`, when it is taken) and serves
/// the ops routes until the process ends: probes must answer while a
/// stopping process finishes its work (ready then says it is stopping).
pub async fn serve(
    addr: SocketAddr,
    key: &str,
    handle: PrometheusHandle,
    probe: Arc<dyn ProcessProbe>,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the ops listener {addr} ({key}; `off` disables it)"))?;
    let bound = listener.local_addr()?;
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(live))
        .route("/readyz", get(ready))
        .with_state(Ops { handle, probe });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the ops listener stopped");
        }
    });
    tracing::info!(addr = %bound, "ops listener (/metrics, /livez, /readyz)");
    Ok(bound)
}

async fn metrics(State(ops): State<Ops>) -> Response {
    if tokio::time::timeout(PROBE_TIMEOUT, ops.probe.refresh())
        .await
        .is_err()
    {
        metrics::counter!(super::names::SCRAPE_ERRORS).increment(1);
        tracing::warn!("the scrape's database gauges took over 3 s; the last values are shown");
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        ops.handle.render(),
    )
        .into_response()
}

async fn live() -> &'static str {
    "ok\n"
}

async fn ready(State(ops): State<Ops>) -> Response {
    match tokio::time::timeout(PROBE_TIMEOUT, ops.probe.ready()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the readiness checks took over 3 s\n",
        )
            .into_response(),
    }
}
