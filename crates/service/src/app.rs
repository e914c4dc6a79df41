//! Shared state of a server process: database, file storage, broker publisher,
//! change notifications, configuration and token validation.

use std::sync::Arc;

use passare_imports_domain::RowProblem;
use passare_imports_queue::Publisher;
use passare_imports_storage::{FileStore, LocalFileStore};
use passare_imports_store::entities::imports;
use passare_imports_store::{Db, StoreError, control, failures, history, repo};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::Auth;
use crate::config::Config;
use crate::convert::{FileView, ImportView};
use crate::events::EventHub;

/// Row errors shown with each file in `Import` messages.
pub const PROBLEMS_SHOWN: u64 = 20;

/// Failed chunk attempts shown in `Import` messages.
pub const FAILURES_SHOWN: u64 = 10;

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub db: Db,
    pub files: Arc<dyn FileStore>,
    pub publisher: Arc<Publisher>,
    pub events: EventHub,
    pub auth: Arc<Auth>,
}

impl App {
    /// Connects to PostgreSQL and opens storage; the broker is reached on
    /// first publish. Background tasks stop with `shutdown`.
    pub async fn build(config: Config, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let db = Db::connect(&config.database_url, config.database_max_connections).await?;
        let files = LocalFileStore::new(&config.storage_dir).await?;
        let publisher = Publisher::new(
            config.queue(),
            format!("passare-imports server {}", crate::worker::worker_name()),
        );
        let events = EventHub::start(db.clone(), shutdown);
        let auth = Auth::new(&config.jwt_secret);
        Ok(Self {
            config: Arc::new(config),
            db,
            files: Arc::new(files),
            publisher: Arc::new(publisher),
            events,
            auth: Arc::new(auth),
        })
    }

    /// An import with its files, problems and queue position.
    pub async fn import_view(&self, id: Uuid) -> Result<Option<ImportView>, StoreError> {
        let Some(import) = repo::find_import(self.db.orm(), id).await? else {
            return Ok(None);
        };
        let files = repo::import_files(self.db.orm(), id).await?;
        Ok(Some(self.view_of(import, files).await?))
    }

    /// Everything an import's message shows, around its stored row and files.
    pub async fn view_of(
        &self,
        import: imports::Model,
        files: Vec<passare_imports_store::entities::import_files::Model>,
    ) -> Result<ImportView, StoreError> {
        let files = self.file_views(files).await?;
        let queue_position = repo::queue_position(self.db.orm(), &import).await?;
        let pause = if matches!(import.state.as_str(), "queued" | "running") {
            control::pause_of(&self.db, import.organization_id).await?
        } else {
            None
        };
        let chunk_failure_count = failures::count_for_import(&self.db, import.id).await?;
        let chunk_failures = if chunk_failure_count > 0 {
            failures::list(
                &self.db,
                &failures::Filter {
                    import_id: Some(import.id),
                    organization_id: None,
                },
                None,
                FAILURES_SHOWN,
            )
            .await?
        } else {
            Vec::new()
        };
        let timeline = history::timeline(self.db.orm(), import.id).await?;
        let organization_name = repo::organization(self.db.orm(), import.organization_id)
            .await?
            .map(|o| o.name)
            .unwrap_or_default();
        Ok(ImportView {
            import,
            files,
            queue_position,
            pause,
            chunk_failures,
            chunk_failure_count,
            timeline,
            organization_name,
        })
    }

    pub async fn file_views(
        &self,
        files: Vec<passare_imports_store::entities::import_files::Model>,
    ) -> Result<Vec<FileView>, StoreError> {
        let mut views = Vec::with_capacity(files.len());
        for file in files {
            let mut problems: Vec<RowProblem> =
                serde_json::from_value(file.problems.clone()).unwrap_or_default();
            if file.rows_failed > 0 {
                problems.extend(
                    repo::first_row_errors(self.db.orm(), file.id, PROBLEMS_SHOWN)
                        .await?
                        .into_iter()
                        .map(|e| RowProblem {
                            row: e.row_number as u64,
                            column: e.column_name,
                            value: e.value,
                            kind: serde_json::from_value(serde_json::Value::String(e.kind))
                                .unwrap_or_default(),
                            reason: e.reason,
                        }),
                );
            }
            views.push(FileView { file, problems });
        }
        Ok(views)
    }
}
