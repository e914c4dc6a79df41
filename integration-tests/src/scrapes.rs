//! Reading a process's ops listener as Prometheus and a probe would: plain
//! HTTP GETs, the metrics parsed by a Prometheus text-format parser.

use std::net::SocketAddr;

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus_parse::{Sample, Scrape, Value};

/// A local address nobody listens on now (bound, then released).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// `GET http://{addr}{path}`: the status and the body as text.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let uri: http::Uri = format!("http://{addr}{path}").parse()?;
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), client.get(uri))
        .await
        .with_context(|| format!("GET {path} on {addr} took over 10 s"))??;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// One scrape of a process's `/metrics`, parsed.
pub struct Metrics {
    pub scrape: Scrape,
}

impl Metrics {
    pub async fn scrape(addr: SocketAddr) -> anyhow::Result<Self> {
        let (status, body) = http_get(addr, "/metrics").await?;
        anyhow::ensure!(status == 200, "/metrics on {addr}: {status} {body}");
        let lines = body.lines().map(|l| Ok(l.to_string()));
        let scrape = Scrape::parse(lines).context("parsing the Prometheus text")?;
        Ok(Self { scrape })
    }

    /// The samples of `metric` whose labels include every pair of `labels`.
    pub fn samples<'a>(
        &'a self,
        metric: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.scrape.samples.iter().filter(move |s| {
            s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
    }

    /// The sum of the counter or gauge samples of `metric` with `labels`.
    pub fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(metric, labels)
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                _ => 0.0,
            })
            .sum()
    }

    /// Observations of the histogram `metric` with `labels` (its `+Inf`
    /// bucket).
    pub fn observations(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(metric, labels)
            .map(|s| match &s.value {
                Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
                _ => 0.0,
            })
            .sum()
    }

    /// Whether the scrape has any sample of `metric` (a histogram's name or
    /// one of its `_bucket`, `_sum`, `_count` series).
    pub fn has(&self, metric: &str) -> bool {
        self.scrape.samples.iter().any(|s| {
            s.metric == metric
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| s.metric == format!("{metric}{suffix}"))
        })
    }
}
