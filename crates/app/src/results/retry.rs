//! Building the retry of an import's still-failed rows: per file with open
//! errors, a retry file holding exactly those rows (with their edits) in the
//! file's own columns, cut into chunks whose records keep their original row
//! numbers; then queued as the import's next attempt.

use passare_imports_domain::results::RecordFile;
use passare_imports_store::entities::imports as import_rows;
use passare_imports_store::imports;
use passare_imports_store::results::{self, Retry, RetryFile};
use passare_imports_store::{PgConnection, Requester, files};

use super::files::{FileResults, failed_rows_of_chunk};
use crate::app::App;
use crate::error::ApiError;
use crate::observability::traces;

/// Builds the retry file of every file with still-failed rows and queues
/// them as the import's next attempt; with `dead`, only the rows of those
/// dead-lettered chunks (a requeue). Retry files of a refused retry are
/// deleted again.
pub(crate) async fn build_and_queue(
    app: &App,
    conn: &mut PgConnection,
    import: &import_rows::Model,
    by: &Requester,
    dead: Option<&[i64]>,
) -> Result<Retry, ApiError> {
    let built_at = results::now(conn).await?;
    let mut planned = Vec::new();
    let mut all = files::of_import(conn, import.id).await?;
    for file_id in results::files_with_open_errors(conn, import.id).await? {
        let Some(at) = all.iter().position(|f| f.id == file_id) else {
            continue;
        };
        let f = FileResults::of(all.swap_remove(at))?;
        if let Some(file) = retry_file(app, conn, import, &f, dead).await? {
            planned.push(file);
        }
    }
    // The retry's chunks join this call's trace (when traces are on): set
    // before they are queued, so no worker loads one without it.
    if !planned.is_empty()
        && let Some(traceparent) = traces::traceparent_of(&tracing::Span::current())
    {
        imports::set_trace_context(conn, import.id, &traceparent).await?;
    }
    let outcome = results::queue_retry(conn, import.id, &planned, built_at, by, dead).await?;
    if !matches!(outcome, Retry::Queued { .. }) {
        for p in &planned {
            app.files.delete(&p.data_key).await.ok();
        }
    }
    Ok(outcome)
}

/// Writes the retry file of one file and says where its chunks are.
async fn retry_file(
    app: &App,
    conn: &mut PgConnection,
    import: &import_rows::Model,
    f: &FileResults,
    dead: Option<&[i64]>,
) -> Result<Option<RetryFile>, ApiError> {
    let writing = |e: csv::Error| ApiError::Internal(format!("writing a retry file: {e}"));
    let edits = results::edits_of(conn, f.file.id).await?;
    let mut out =
        RecordFile::new(f.delimiter, &f.headers, app.config.chunk_rows).map_err(writing)?;
    let mut rows = Vec::new();
    let chunks = results::chunks_with_open_errors(conn, f.file.id).await?;
    let chunks: Vec<i64> = match dead {
        Some(dead) => chunks.into_iter().filter(|c| dead.contains(c)).collect(),
        None => chunks,
    };
    if chunks.is_empty() {
        return Ok(None);
    }
    for chunk_id in chunks {
        for r in failed_rows_of_chunk(app, conn, f, &edits, chunk_id).await? {
            out.record(&r.cells).map_err(writing)?;
            rows.push(r.row as i64);
        }
    }
    let (bytes, chunks) = out.finish().map_err(writing)?;
    // Unique per call: a concurrent retry of the same import that is
    // refused deletes only its own file.
    let data_key = format!(
        "imports/{}/{}.retry-{}-{}.csv",
        import.id,
        f.file.id,
        import.attempt + 1,
        uuid::Uuid::now_v7().simple()
    );
    let mut writer = app.files.create(&data_key).await?;
    writer.write(&bytes).await?;
    writer.commit().await?;
    Ok(Some(RetryFile {
        file_id: f.file.id,
        data_key,
        chunks,
        rows,
    }))
}
