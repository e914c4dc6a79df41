//! Result files streamed to a client: the still-failed rows with their
//! reasons (FAILED_ROWS) and the rows a file wrote (WRITTEN_ROWS), as CSV in
//! messages of at most [`DOWNLOAD_CHUNK`] bytes, formula cells neutralised.

use futures::StreamExt;
use passare_imports_domain::results::SafeCsv;
use passare_imports_store::load::written_columns;
use passare_imports_store::{records, results};
use tokio::sync::mpsc;

use super::files::{FileResults, failed_rows_of_chunk};
use crate::app::App;
use crate::error::ApiError;

/// Bytes per message of a download.
pub const DOWNLOAD_CHUNK: usize = 256 * 1024;

/// Streams a CSV built by `fill` in messages of at most [`DOWNLOAD_CHUNK`]
/// bytes; the receiver ends when the file does, or with the first error.
fn stream_csv<F, Fut>(fill: F) -> mpsc::Receiver<Result<Vec<u8>, ApiError>>
where
    F: FnOnce(CsvSink) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<CsvSink, ApiError>> + Send,
{
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let sink = CsvSink {
            csv: SafeCsv::new(),
            tx: tx.clone(),
        };
        match fill(sink).await {
            Ok(mut sink) => {
                let _ = sink.flush(true).await;
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
            }
        }
    });
    rx
}

/// Where a download's CSV is written; full messages go out as they fill.
pub struct CsvSink {
    csv: SafeCsv,
    tx: mpsc::Sender<Result<Vec<u8>, ApiError>>,
}

impl CsvSink {
    async fn record<I, S>(&mut self, cells: I) -> Result<(), ApiError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.csv
            .record(cells)
            .map_err(|e| ApiError::Internal(format!("writing a result file: {e}")))?;
        self.flush(false).await
    }

    async fn flush(&mut self, all: bool) -> Result<(), ApiError> {
        if self.csv.len() < DOWNLOAD_CHUNK && !all {
            return Ok(());
        }
        let bytes = self
            .csv
            .take()
            .map_err(|e| ApiError::Internal(format!("writing a result file: {e}")))?;
        for piece in bytes.chunks(DOWNLOAD_CHUNK) {
            if self.tx.send(Ok(piece.to_vec())).await.is_err() {
                return Err(ApiError::Internal("the download was cancelled".into()));
            }
        }
        Ok(())
    }
}

/// The FAILED_ROWS file: `row`, the file's own headers, `error`; one record
/// per still-failed row, in row order, with its edits. Staff, who correct
/// and send the file back, get the cells as they are; anyone else gets
/// sensitive columns (SSNs) masked, as everywhere they are shown.
pub fn failed_rows_csv(
    app: App,
    f: FileResults,
    raw: bool,
) -> mpsc::Receiver<Result<Vec<u8>, ApiError>> {
    stream_csv(move |mut sink| async move {
        let masked: Vec<bool> = (0..f.headers.len())
            .map(|i| {
                !raw && f.position_of.iter().any(|(column, at)| {
                    *at == i && f.def.column(column).is_some_and(|c| c.sensitive)
                })
            })
            .collect();
        sink.record(
            std::iter::once("row")
                .chain(f.headers.iter().map(String::as_str))
                .chain(std::iter::once("error")),
        )
        .await?;
        // Each read takes a connection of the read pool and gives it back
        // before its rows go to the client, who may be slow to read them.
        let (edits, chunk_ids) = {
            let mut conn = app.db.read_conn().await?;
            let edits = results::edits_of(&mut conn, f.file.id).await?;
            let chunks = results::chunks_with_open_errors(&mut conn, f.file.id).await?;
            (edits, chunks)
        };
        for chunk_id in chunk_ids {
            let rows = {
                let mut conn = app.db.read_conn().await?;
                failed_rows_of_chunk(&app, &mut conn, &f, &edits, chunk_id).await?
            };
            for r in rows {
                let cells = r.cells.iter().zip(&masked).map(|(cell, masked)| {
                    if *masked {
                        passare_imports_domain::mask(cell)
                    } else {
                        cell.clone()
                    }
                });
                sink.record(
                    std::iter::once(r.row.to_string())
                        .chain(cells)
                        .chain(std::iter::once(r.reasons.clone())),
                )
                .await?;
            }
        }
        Ok(sink)
    })
}

/// The WRITTEN_ROWS file: `row`, `outcome` (created or updated),
/// `record_key` (the key columns joined by `+`), then the stored columns;
/// one record per record the file is the last writer of.
pub fn written_rows_csv(
    app: App,
    f: FileResults,
    organization_id: i64,
) -> mpsc::Receiver<Result<Vec<u8>, ApiError>> {
    stream_csv(move |mut sink| async move {
        let columns = written_columns(f.def);
        // Stored values of sensitive columns (SSNs) are masked, as wherever
        // they are shown; the FAILED_ROWS file keeps the raw cells, which a
        // correction must send back whole.
        let sensitive: Vec<bool> = columns
            .iter()
            .map(|c| f.def.column(c).is_some_and(|c| c.sensitive))
            .collect();
        sink.record(
            ["row", "outcome", "record_key"]
                .into_iter()
                .chain(columns.iter().copied()),
        )
        .await?;
        let mut rows = records::written_rows(&app.db, f.def, organization_id, f.file.id);
        while let Some(row) = rows.next().await {
            let row = row?;
            let head = [
                row.row.to_string(),
                if row.created { "created" } else { "updated" }.to_string(),
                row.key.join("+"),
            ];
            let values = row.values.iter().zip(&sensitive).map(|(v, masked)| {
                let v = v.as_deref().unwrap_or("");
                if *masked {
                    passare_imports_domain::mask(v)
                } else {
                    v.to_string()
                }
            });
            sink.record(head.into_iter().chain(values)).await?;
        }
        Ok(sink)
    })
}
