//! An import as every read shows it: its record and files, its first row
//! errors, its place in the queue, the pause holding it, its latest failed
//! chunk attempts, its timeline and its organization's name — read for the
//! caller, who sees another organization's import exactly like one that
//! does not exist.

use std::collections::HashMap;

use passare_imports_domain::RowProblem;
use passare_imports_domain::analysis::AnalysisReport;
use passare_imports_store::entities::{
    chunk_failures, import_events, import_files, import_pauses, imports,
};
use passare_imports_store::states::{FailurePolicy, FileState, ImportState};
use passare_imports_store::{
    PgConnection, StoreError, archive, failures, files, imports as import_records, organizations,
    pauses, rates, results, timeline,
};
use uuid::Uuid;

use crate::analysis::fingerprint;
use crate::error::ApiError;
use crate::identity::Caller;
use passare_imports_store::analysis_jobs::{self, AnalysisJob};

/// Row errors shown with each file in `Import` messages.
pub const PROBLEMS_SHOWN: u64 = 20;

/// Failed chunk attempts shown in `Import` messages.
pub const FAILURES_SHOWN: u64 = 10;

/// Chunks finished this long before a running import's latest one give its
/// speed (docs/monitoring.md).
pub const RATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// An import with everything its message shows.
#[derive(Debug, Clone)]
pub struct ImportView {
    pub import: imports::Model,
    pub files: Vec<FileView>,
    pub queue_position: u64,
    /// The pause holding the import's organization, when the import is
    /// queued or running.
    pub pause: Option<import_pauses::Model>,
    /// The latest failed chunk attempts, and how many there are in all.
    pub chunk_failures: Vec<chunk_failures::Model>,
    pub chunk_failure_count: u64,
    /// Every step of the import, oldest first.
    pub timeline: Vec<import_events::Model>,
    pub organization_name: String,
    /// The latest analysis asked for, while it waits, runs and after.
    pub analysis_job: Option<AnalysisJob>,
    /// While running: rows per second over [`RATE_WINDOW`] and the estimated
    /// end, once a chunk has finished.
    pub rate: Option<rates::ImportRate>,
    /// The raw archive's progress, once the import loaded something.
    pub archive: Option<archive::ImportArchive>,
}

#[derive(Debug, Clone)]
pub struct FileView {
    pub file: import_files::Model,
    /// Structural problems (invalid files) or the first row errors.
    pub problems: Vec<RowProblem>,
    /// Profiles matching the header of a file uploaded without one (filled
    /// in the upload's response only).
    pub suggestions: Vec<crate::profiles::Suggestion>,
}

impl ImportView {
    /// The stored analysis and whether the files changed since it ran.
    pub fn analysis(&self) -> Option<(AnalysisReport, bool)> {
        let report: AnalysisReport = serde_json::from_value(self.import.analysis.clone()?).ok()?;
        let files: Vec<import_files::Model> = self.files.iter().map(|f| f.file.clone()).collect();
        let stale = report.fingerprint != fingerprint(&files);
        Some((report, stale))
    }

    pub fn policy(&self) -> FailurePolicy {
        self.import.failure_policy
    }

    /// A file of the import by id; NOT_FOUND when the import has none such.
    pub fn file(&self, id: Uuid) -> Result<&FileView, ApiError> {
        self.files
            .iter()
            .find(|f| f.file.id == id)
            .ok_or_else(|| ApiError::not_found("file", id))
    }
}

/// The import as `who` may see it: one of an organization the caller may
/// not see is NOT_FOUND exactly like one that does not exist.
pub async fn visible(
    conn: &mut PgConnection,
    who: &Caller,
    id: Uuid,
) -> Result<ImportView, ApiError> {
    // The job before the import: a job read as done comes with its report.
    let job = analysis_jobs::of_import(conn, id).await?;
    let import = visible_record(conn, who, id).await?;
    let files = files::of_import(conn, id).await?;
    Ok(view_of(conn, import, files, job).await?)
}

/// The import's record alone, as `who` may see it (see [`visible`]).
pub async fn visible_record(
    conn: &mut PgConnection,
    who: &Caller,
    id: Uuid,
) -> Result<imports::Model, ApiError> {
    import_records::find(conn, id)
        .await?
        .filter(|i| who.sees(i.organization_id))
        .ok_or_else(|| ApiError::not_found("import", id))
}

/// An import's view, whoever asks (the service's own reads).
pub async fn load(conn: &mut PgConnection, id: Uuid) -> Result<Option<ImportView>, StoreError> {
    // The job before the import: a job read as done comes with its report.
    let job = analysis_jobs::of_import(conn, id).await?;
    let Some(import) = import_records::find(conn, id).await? else {
        return Ok(None);
    };
    let files = files::of_import(conn, id).await?;
    Ok(Some(view_of(conn, import, files, job).await?))
}

/// Everything an import's message shows, around its stored row and files.
pub async fn view_of(
    conn: &mut PgConnection,
    import: imports::Model,
    files: Vec<import_files::Model>,
    analysis_job: Option<AnalysisJob>,
) -> Result<ImportView, StoreError> {
    let jobs = analysis_job.map(|j| (import.id, j)).into_iter().collect();
    let mut views = build(conn, vec![import], files, jobs).await?;
    views
        .pop()
        .ok_or_else(|| StoreError::Corrupt("a view of one import came back empty".into()))
}

/// The views of a page of imports: everything each message shows read for
/// the whole page in one statement per kind (timelines, organization names,
/// failure counts and latest failures, analysis jobs, queue places, pauses,
/// first row errors), whatever the page's size.
pub async fn views_of(
    conn: &mut PgConnection,
    imports: Vec<imports::Model>,
    files: Vec<import_files::Model>,
) -> Result<Vec<ImportView>, StoreError> {
    let ids: Vec<Uuid> = imports.iter().map(|i| i.id).collect();
    let jobs = analysis_jobs::of_imports(conn, &ids).await?;
    build(conn, imports, files, jobs).await
}

async fn build(
    conn: &mut PgConnection,
    imports: Vec<imports::Model>,
    files: Vec<import_files::Model>,
    mut jobs: HashMap<Uuid, AnalysisJob>,
) -> Result<Vec<ImportView>, StoreError> {
    let ids: Vec<Uuid> = imports.iter().map(|i| i.id).collect();
    let mut orgs: Vec<i64> = imports.iter().map(|i| i.organization_id).collect();
    orgs.sort_unstable();
    orgs.dedup();
    let mut timelines = timeline::of_imports(conn, &ids).await?;
    let names: HashMap<i64, String> = organizations::find_many(conn, &orgs)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let counts = failures::count_for_imports(conn, &ids).await?;
    let failing: Vec<Uuid> = counts.keys().copied().collect();
    let mut latest = if failing.is_empty() {
        HashMap::new()
    } else {
        failures::latest_for_imports(conn, &failing, FAILURES_SHOWN).await?
    };
    let places = import_records::queue_positions(conn, &ids).await?;
    let pauses = pauses::holding_many(conn, &orgs).await?;
    let running: Vec<Uuid> = imports
        .iter()
        .filter(|i| i.state == ImportState::Running)
        .map(|i| i.id)
        .collect();
    let mut speeds = rates::of_imports(conn, &running, RATE_WINDOW).await?;
    let mut archives = archive::of_imports(conn, &ids).await?;
    let mut files = file_views(conn, files).await?;
    let mut out = Vec::with_capacity(imports.len());
    for import in imports {
        let (mine, rest): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|f| f.file.import_id == import.id);
        files = rest;
        let (timeline, others): (Vec<_>, Vec<_>) = timelines
            .into_iter()
            .partition(|e| e.import_id == import.id);
        timelines = others;
        let pause = if matches!(import.state, ImportState::Queued | ImportState::Running) {
            pauses.get(&import.organization_id).cloned()
        } else {
            None
        };
        out.push(ImportView {
            analysis_job: jobs.remove(&import.id),
            rate: speeds.remove(&import.id),
            archive: archives.remove(&import.id),
            files: mine,
            queue_position: places.get(&import.id).copied().unwrap_or(0),
            pause,
            chunk_failures: latest.remove(&import.id).unwrap_or_default(),
            chunk_failure_count: counts.get(&import.id).copied().unwrap_or(0),
            timeline,
            organization_name: names
                .get(&import.organization_id)
                .cloned()
                .unwrap_or_default(),
            import,
        });
    }
    Ok(out)
}

/// Files with their structural problems, and the first row errors of the
/// files that have failed rows (read for all of them in one statement).
pub async fn file_views(
    conn: &mut PgConnection,
    files: Vec<import_files::Model>,
) -> Result<Vec<FileView>, StoreError> {
    let failing: Vec<Uuid> = files
        .iter()
        .filter(|f| f.rows_failed > 0)
        .map(|f| f.id)
        .collect();
    let mut errors = if failing.is_empty() {
        HashMap::new()
    } else {
        results::first_row_errors_of_files(conn, &failing, PROBLEMS_SHOWN).await?
    };
    Ok(files
        .into_iter()
        .map(|file| {
            let mut problems: Vec<RowProblem> =
                serde_json::from_value(file.problems.clone()).unwrap_or_default();
            problems.extend(
                errors
                    .remove(&file.id)
                    .unwrap_or_default()
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
            FileView {
                file,
                problems,
                suggestions: Vec::new(),
            }
        })
        .collect())
}

/// Whether a file's structure keeps it from loading.
pub fn is_invalid(file: &import_files::Model) -> bool {
    file.state == FileState::Invalid
}
