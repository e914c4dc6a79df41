//! The RPCs tests make over and over, each in one place: start, stop, pause
//! and resume, reading and following an import until a condition holds,
//! chunk failures, result downloads and row edits. Each returns the
//! service's answer as it is; judging it is the test's business.

use std::time::Duration;

use anyhow::Context;
use passare_imports_cli::client::{self, Client};
use passare_imports_proto::v1 as pb;
use tokio_stream::StreamExt;

use crate::pages;

/// The state of an import, as the enum.
pub fn state(import: &pb::Import) -> pb::ImportState {
    pb::ImportState::try_from(import.state).unwrap_or(pb::ImportState::Unspecified)
}

/// Whether an import's state is final.
pub fn is_terminal(import: &pb::Import) -> bool {
    client::is_terminal(import.state)
}

/// Chunks of the import done so far (from its progress).
pub fn chunks_done(import: &pb::Import) -> i32 {
    import.progress.as_ref().map_or(0, |p| p.chunks_done)
}

pub async fn get(client: &mut Client, import_id: &str) -> anyhow::Result<pb::Import> {
    client
        .get_import(pb::GetImportRequest {
            import_id: import_id.into(),
        })
        .await?
        .into_inner()
        .import
        .context("no import")
}

/// StartImport, as the call answers it: for an import never analysed, the
/// draft with its analysis queued (`analysis_job.start_when_done`).
pub async fn request_start(
    client: &mut Client,
    import_id: &str,
) -> Result<pb::Import, tonic::Status> {
    client
        .start_import(pb::StartImportRequest {
            import_id: import_id.into(),
            failure_policy: 0,
        })
        .await?
        .into_inner()
        .import
        .ok_or_else(|| tonic::Status::internal("no import"))
}

/// StartImport, then — for an import whose analysis the call queued — the
/// import as soon as a worker has analysed and queued it (or failed it), as
/// a client following the import sees it. Waits at most two minutes.
pub async fn start(client: &mut Client, import_id: &str) -> Result<pb::Import, tonic::Status> {
    let mut import = request_start(client, import_id).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while state(&import) == pb::ImportState::Draft
        && import
            .analysis_job
            .as_ref()
            .is_some_and(|j| j.start_when_done)
    {
        if tokio::time::Instant::now() > deadline {
            return Err(tonic::Status::deadline_exceeded(format!(
                "import {import_id} was still a draft two minutes after StartImport queued its analysis"
            )));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        import = client
            .get_import(pb::GetImportRequest {
                import_id: import_id.into(),
            })
            .await?
            .into_inner()
            .import
            .ok_or_else(|| tonic::Status::internal("no import"))?;
    }
    Ok(import)
}

/// StopImport with a reason.
pub async fn stop(
    client: &mut Client,
    import_id: &str,
    reason: &str,
) -> Result<pb::Import, tonic::Status> {
    client
        .stop_import(pb::StopImportRequest {
            import_id: import_id.into(),
            reason: reason.into(),
        })
        .await?
        .into_inner()
        .import
        .ok_or_else(|| tonic::Status::internal("no import"))
}

/// PauseImports of one organization (`Some`) or of all (`None`).
pub async fn pause(
    client: &mut Client,
    org: Option<i64>,
    reason: &str,
) -> Result<pb::Pause, tonic::Status> {
    client
        .pause_imports(pb::PauseImportsRequest {
            organization_id: org.map(|o| o.to_string()).unwrap_or_default(),
            reason: reason.into(),
        })
        .await?
        .into_inner()
        .pause
        .ok_or_else(|| tonic::Status::internal("no pause"))
}

/// ResumeImports of one organization (`Some`) or of all (`None`).
pub async fn resume(
    client: &mut Client,
    org: Option<i64>,
) -> Result<pb::ResumeImportsResponse, tonic::Status> {
    Ok(client
        .resume_imports(pb::ResumeImportsRequest {
            organization_id: org.map(|o| o.to_string()).unwrap_or_default(),
        })
        .await?
        .into_inner())
}

/// Follows an import with WatchImport, returning every event (at most
/// 300 s).
pub async fn watch_all(
    client: &mut Client,
    import_id: &str,
) -> anyhow::Result<Vec<pb::WatchImportResponse>> {
    let mut stream = client
        .watch_import(pb::WatchImportRequest {
            import_id: import_id.into(),
        })
        .await?
        .into_inner();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while let Some(e) = tokio::time::timeout_at(deadline, stream.next()).await? {
        events.push(e?);
    }
    Ok(events)
}

/// Waits until `check` holds for the import (polling GetImport), for at most
/// `within`.
pub async fn wait_until(
    client: &mut Client,
    import_id: &str,
    within: Duration,
    check: impl Fn(&pb::Import) -> bool,
) -> anyhow::Result<pb::Import> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let import = get(client, import_id).await?;
        if check(&import) {
            return Ok(import);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "import {import_id} did not reach the awaited condition within {within:?}; it is {:?} with {:?}",
            state(&import),
            import.progress
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the import reaches a terminal state (at most 300 s).
pub async fn wait_terminal(client: &mut Client, import_id: &str) -> anyhow::Result<pb::Import> {
    wait_terminal_within(client, import_id, Duration::from_secs(300)).await
}

/// Waits until the import reaches a terminal state, at most `within`.
pub async fn wait_terminal_within(
    client: &mut Client,
    import_id: &str,
    within: Duration,
) -> anyhow::Result<pb::Import> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let import = get(client, import_id).await?;
        if is_terminal(&import) {
            return Ok(import);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "import {import_id} did not finish within {within:?}; it is {:?} with {:?}",
            state(&import),
            import.progress
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every failed chunk attempt of an import, newest first (all pages).
pub async fn chunk_failures(
    client: &mut Client,
    import_id: &str,
) -> anyhow::Result<Vec<pb::ChunkFailure>> {
    pages::collect_all(
        client,
        pb::ListChunkFailuresRequest {
            import_id: import_id.into(),
            organization_id: String::new(),
            page_size: 100,
            page_token: String::new(),
        },
    )
    .await
}

/// A result file as `DownloadResults` streamed it.
#[derive(Debug, Default)]
pub struct Download {
    /// From the first message.
    pub file_name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub messages: usize,
    /// File names or content types sent after the first message (there
    /// should be none).
    pub later_names: Vec<(String, String)>,
    /// The largest chunk one message carried.
    pub largest_chunk: usize,
}

/// Streams a result file to its end (at most 60 s).
pub async fn download(
    client: &mut Client,
    import_id: &str,
    file_id: &str,
    kind: pb::ResultKind,
) -> Result<Download, tonic::Status> {
    let mut stream = client
        .download_results(pb::DownloadResultsRequest {
            import_id: import_id.into(),
            file_id: file_id.into(),
            kind: kind as i32,
        })
        .await?
        .into_inner();
    let mut out = Download::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Some(message) = tokio::time::timeout_at(deadline, stream.next())
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("the download did not end within 60 s"))?
    {
        let message = message?;
        if out.messages == 0 {
            out.file_name = message.file_name;
            out.content_type = message.content_type;
        } else if !message.file_name.is_empty() || !message.content_type.is_empty() {
            out.later_names
                .push((message.file_name, message.content_type));
        }
        out.largest_chunk = out.largest_chunk.max(message.chunk.len());
        out.bytes.extend(message.chunk);
        out.messages += 1;
    }
    Ok(out)
}

/// UpdateRows of one row: (column, value) cells.
pub async fn update_row(
    client: &mut Client,
    import_id: &str,
    file_id: &str,
    row: i64,
    cells: &[(&str, &str)],
) -> Result<pb::UpdateRowsResponse, tonic::Status> {
    Ok(client
        .update_rows(pb::UpdateRowsRequest {
            import_id: import_id.into(),
            file_id: file_id.into(),
            rows: vec![pb::RowEdit {
                row,
                cells: cells
                    .iter()
                    .map(|(c, v)| (c.to_string(), v.to_string()))
                    .collect(),
            }],
        })
        .await?
        .into_inner())
}

/// The `reason` of a refused call's google.rpc ErrorInfo; empty when it
/// has none.
pub fn error_reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|e| e.reason.clone())
        .unwrap_or_default()
}
