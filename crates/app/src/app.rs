//! What the use cases share in one server process: configuration, the
//! database, file storage, the broker publisher, change notifications, token
//! validation and the caps on long calls of this process.

use std::sync::Arc;

use passare_imports_queue::Publisher;
use passare_imports_storage::{FileStore, open_store};
use passare_imports_store::Db;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::events::EventHub;
use crate::identity::Auth;
use crate::limits::Limits;

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub db: Db,
    pub files: Arc<dyn FileStore>,
    pub publisher: Arc<Publisher>,
    pub events: EventHub,
    pub auth: Arc<Auth>,
    pub limits: Limits,
}

impl App {
    /// What an analysis run by this process reads and writes with.
    pub fn analyser(&self) -> crate::analysis::Analyser<'_> {
        crate::analysis::Analyser {
            db: &self.db,
            files: self.files.as_ref(),
            settings: crate::analysis::AnalysisSettings::of(&self.config),
        }
    }

    /// Connects to PostgreSQL and opens storage; the broker is reached on
    /// first publish. Background tasks stop with `shutdown`.
    pub async fn build(config: Config, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let db = Db::connect(&config.database_url, config.database_max_connections)
            .await?
            .with_read_pool(
                &config.database_url,
                config.database_read_connections,
                std::time::Duration::from_millis(config.read_statement_timeout_ms),
            )?;
        let files = open_store(&config.storage()).await?;
        let publisher = Publisher::new(
            config.queue(),
            format!("passare-imports server {}", process_name()),
        );
        let events = EventHub::start(db.clone(), shutdown);
        let auth = Auth::from_config(&config)?;
        let limits = Limits::new(&config);
        Ok(Self {
            config: Arc::new(config),
            db,
            files,
            publisher: Arc::new(publisher),
            events,
            auth: Arc::new(auth),
            limits,
        })
    }
}

/// The host this process runs on.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into())
}

/// `host:pid`: how this process names itself to the broker and on the
/// chunks it loads.
pub fn process_name() -> String {
    format!("{}:{}", host_name(), std::process::id())
}
