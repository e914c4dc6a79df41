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
    PgConnection, StoreError, failures, files, imports as import_records, organizations, pauses,
    results, timeline,
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
}

#[derive(Debug, Clone)]
pub struct FileView {
    pub file: import_files::Model,
    /// Structural problems (invalid files) or the first row errors.
    pub problems: Vec<RowProblem>,
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
    let timeline = timeline::of_import(conn, import.id).await?;
    let organization_name = organizations::find(conn, import.organization_id)
        .await?
        .map(|o| o.name)
        .unwrap_or_default();
    let chunk_failure_count = failures::count_for_import(conn, import.id).await?;
    let around = Around {
        analysis_job,
        timeline,
        organization_name,
        chunk_failure_count,
    };
    view_with(conn, import, files, around).await
}

/// The views of a page of imports: timelines, organization names, failure
/// counts and analysis jobs of the whole page in one statement each; per import only
/// what few imports have (row errors of files with failed rows, the queue
/// place and pause of a queued or running import, the latest failures of
/// one that has some).
pub async fn views_of(
    conn: &mut PgConnection,
    imports: Vec<imports::Model>,
    mut files: Vec<import_files::Model>,
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
    let mut jobs = analysis_jobs::of_imports(conn, &ids).await?;
    let mut out = Vec::with_capacity(imports.len());
    for import in imports {
        let (mine, rest): (Vec<_>, Vec<_>) =
            files.into_iter().partition(|f| f.import_id == import.id);
        files = rest;
        let (timeline, others): (Vec<_>, Vec<_>) = timelines
            .into_iter()
            .partition(|e| e.import_id == import.id);
        timelines = others;
        let around = Around {
            analysis_job: jobs.remove(&import.id),
            timeline,
            organization_name: names
                .get(&import.organization_id)
                .cloned()
                .unwrap_or_default(),
            chunk_failure_count: counts.get(&import.id).copied().unwrap_or(0),
        };
        out.push(view_with(conn, import, mine, around).await?);
    }
    Ok(out)
}

/// What a view shows that a page of views reads in one go.
struct Around {
    analysis_job: Option<AnalysisJob>,
    timeline: Vec<import_events::Model>,
    organization_name: String,
    chunk_failure_count: u64,
}

async fn view_with(
    conn: &mut PgConnection,
    import: imports::Model,
    files: Vec<import_files::Model>,
    around: Around,
) -> Result<ImportView, StoreError> {
    let files = file_views(conn, files).await?;
    let queue_position = import_records::queue_position(conn, &import).await?;
    let pause = if matches!(import.state, ImportState::Queued | ImportState::Running) {
        pauses::holding(conn, import.organization_id).await?
    } else {
        None
    };
    let chunk_failures = if around.chunk_failure_count > 0 {
        let filter = failures::Filter {
            import_id: Some(import.id),
            organization_id: None,
        };
        failures::list(conn, &filter, None, FAILURES_SHOWN).await?
    } else {
        Vec::new()
    };
    Ok(ImportView {
        analysis_job: around.analysis_job,
        import,
        files,
        queue_position,
        pause,
        chunk_failures,
        chunk_failure_count: around.chunk_failure_count,
        timeline: around.timeline,
        organization_name: around.organization_name,
    })
}

/// Files with their structural problems, and the first row errors of the
/// files that have failed rows.
pub async fn file_views(
    conn: &mut PgConnection,
    files: Vec<import_files::Model>,
) -> Result<Vec<FileView>, StoreError> {
    let mut views = Vec::with_capacity(files.len());
    for file in files {
        let mut problems: Vec<RowProblem> =
            serde_json::from_value(file.problems.clone()).unwrap_or_default();
        if file.rows_failed > 0 {
            let errors = results::first_row_errors(conn, file.id, PROBLEMS_SHOWN).await?;
            problems.extend(errors.into_iter().map(|e| RowProblem {
                row: e.row_number as u64,
                column: e.column_name,
                value: e.value,
                kind: serde_json::from_value(serde_json::Value::String(e.kind)).unwrap_or_default(),
                reason: e.reason,
            }));
        }
        views.push(FileView { file, problems });
    }
    Ok(views)
}

/// Whether a file's structure keeps it from loading.
pub fn is_invalid(file: &import_files::Model) -> bool {
    file.state == FileState::Invalid
}
