//! What a server or gateway process reports: the calls it holds open
//! (uploads, watch streams, downloads) and the gauges of the whole service
//! read from PostgreSQL at each scrape (imports by state, backlog, dead
//! letters, live workers). Every API process reports the same database
//! gauges; dashboards take their `max` across instances.

use std::collections::HashSet;
use std::sync::Mutex;

use chrono::Utc;
use metrics::gauge;
use passare_imports_store::monitor;
use tokio_util::sync::CancellationToken;

use super::ProcessProbe;
use super::names;
use crate::App;

/// The probe of a server or gateway process.
pub struct ApiProbe {
    app: App,
    shutdown: CancellationToken,
    /// Label values set at an earlier scrape, set to 0 once they are gone
    /// (a state no import is in any more, an organization off the top).
    reported: Mutex<Reported>,
}

#[derive(Default)]
struct Reported {
    states: HashSet<String>,
    organizations: HashSet<i64>,
}

impl ApiProbe {
    pub fn new(app: App, shutdown: CancellationToken) -> Self {
        Self {
            app,
            shutdown,
            reported: Mutex::default(),
        }
    }

    fn open_calls(&self) {
        let limits = &self.app.limits;
        gauge!(names::UPLOADS_ACTIVE).set(limits.uploads.in_use() as f64);
        gauge!(names::WATCH_STREAMS).set(limits.watches.in_use() as f64);
        gauge!(names::DOWNLOADS_ACTIVE).set(limits.downloads.in_use() as f64);
    }

    async fn database_gauges(&self) -> anyhow::Result<()> {
        let top = self.app.config.metrics_top_organizations;
        let mut conn = self.app.db.read_conn().await?;
        let g = monitor::gauges(&mut conn, top).await?;
        drop(conn);
        let now = Utc::now();
        let age = |since: Option<chrono::DateTime<Utc>>| {
            since.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
        };
        gauge!(names::WAITING_CHUNKS).set(g.waiting_chunks as f64);
        gauge!(names::OLDEST_WAITING_SECONDS).set(age(g.oldest_waiting));
        gauge!(names::DEAD_LETTERS).set(g.dead_lettered_chunks as f64);
        gauge!(names::LIVE_WORKERS).set(g.live_workers as f64);
        let mut reported = self
            .reported
            .lock()
            .map_err(|_| anyhow::anyhow!("the reported label set is poisoned"))?;
        let mut states = HashSet::new();
        for (state, count) in &g.imports_by_state {
            gauge!(names::IMPORTS, "state" => state.clone()).set(*count as f64);
            states.insert(state.clone());
        }
        for gone in reported.states.difference(&states) {
            gauge!(names::IMPORTS, "state" => gone.clone()).set(0.0);
        }
        // States stay reported (as 0): there are few of them.
        reported.states.extend(states);
        let mut organizations = HashSet::new();
        for (org, waiting, oldest) in &g.top_organizations {
            let label = org.to_string();
            gauge!(names::ORGANIZATION_WAITING_CHUNKS, "organization" => label.clone())
                .set(*waiting as f64);
            gauge!(names::ORGANIZATION_OLDEST_WAITING_SECONDS, "organization" => label)
                .set(age(*oldest));
            organizations.insert(*org);
        }
        for gone in reported.organizations.difference(&organizations) {
            let label = gone.to_string();
            gauge!(names::ORGANIZATION_WAITING_CHUNKS, "organization" => label.clone()).set(0.0);
            gauge!(names::ORGANIZATION_OLDEST_WAITING_SECONDS, "organization" => label).set(0.0);
        }
        // An organization off the top shows 0 once, then is forgotten here;
        // its series ends (goes stale) in Prometheus.
        reported.organizations = organizations;
        Ok(())
    }
}

#[async_trait::async_trait]
impl ProcessProbe for ApiProbe {
    async fn ready(&self) -> Result<(), String> {
        if self.shutdown.is_cancelled() {
            return Err("shutting down".into());
        }
        self.app
            .db
            .ping()
            .await
            .map_err(|e| format!("the database does not answer: {e}"))
    }

    async fn refresh(&self) {
        self.open_calls();
        if let Err(e) = self.database_gauges().await {
            metrics::counter!(names::SCRAPE_ERRORS).increment(1);
            tracing::warn!(error = %e, "reading the metrics' database gauges failed; the last values are shown");
        }
    }
}
