//! What operators see of a process (docs/operations.md): Prometheus metrics
//! and liveness and readiness probes on the ops listener every long-running
//! process has (`IMPORTS_SERVER_OPS_ADDR`, `IMPORTS_GATEWAY_OPS_ADDR`,
//! `IMPORTS_WORKER_OPS_ADDR`).
//!
//! - [`names`]: every metric, its labels and what it means;
//! - [`listener`]: the HTTP listener (`/metrics`, `/livez`, `/readyz`);
//! - [`api`]: what a server or gateway process reports: its open calls and
//!   the gauges read from PostgreSQL at each scrape;
//! - [`traces`]: OpenTelemetry spans over OTLP, and the trace context carried
//!   from a call to the work it causes.

pub mod api;
pub mod listener;
pub mod names;
pub mod traces;

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use listener::{ProcessProbe, serve};

use crate::config::{Config, Process};

/// A process's metrics, ready to be served once the process is built.
pub struct Ops {
    process: Process,
    addr: std::net::SocketAddr,
    handle: PrometheusHandle,
}

impl Ops {
    /// Installs the metrics recorder when `process` has an ops listener
    /// (`None` when its address is `off`: nothing is recorded then).
    pub fn prepare(config: &Config, process: Process) -> anyhow::Result<Option<Self>> {
        let Some(addr) = config.ops_addr(process)? else {
            tracing::info!(
                key = process.ops_key(),
                "ops listener off: no metrics or probes"
            );
            return Ok(None);
        };
        Ok(Some(Self {
            process,
            addr,
            handle: install_recorder()?,
        }))
    }

    /// Serves `/metrics`, `/livez` and `/readyz` with `probe`'s answers.
    pub async fn serve(self, probe: impl ProcessProbe) -> anyhow::Result<std::net::SocketAddr> {
        serve(
            self.addr,
            self.process.ops_key(),
            self.handle,
            std::sync::Arc::new(probe),
        )
        .await
    }
}

/// Upper bounds (seconds) of the duration histograms: a chunk phase takes
/// milliseconds to minutes, an analysis up to tens of minutes.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1800.0,
];

/// Installs this process's metrics recorder (once, before anything counts)
/// and describes every metric; the handle renders the text a scrape gets.
/// Histograms are Prometheus histograms (buckets above), never summaries,
/// so they can be aggregated across processes.
fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .upkeep_timeout(Duration::from_secs(5))
        .install_recorder()?;
    names::describe();
    // Histograms keep their samples until upkeep folds them in; without the
    // exporter's own listener the process runs it.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}
