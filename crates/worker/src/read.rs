//! Reading a chunk: its byte range from storage, parsed into Arrow on a
//! blocking thread (parsing is CPU work), each phase timed. Used for a
//! chunk's load (also ahead of its turn) and by the archive runner.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use passare_imports_domain::chunk::{ChunkLayout, ParsedChunk, parse_chunk};
use passare_imports_storage::FileStore;
use passare_imports_store::load::ChunkJob;

use tracing::Instrument;

use crate::failure::{ChunkError, Traced};
use crate::telemetry::{self, Phase};

/// Reads a chunk's byte range from storage and parses it into Arrow (on a
/// blocking thread: parsing is CPU work).
pub(crate) async fn read_and_parse(
    files: Arc<dyn FileStore>,
    job: &ChunkJob,
) -> Result<ParsedChunk, Traced> {
    let (start, end) = (job.chunk.byte_start as u64, job.chunk.byte_end as u64);
    let read_at = Instant::now();
    let bytes = files
        .read_range(job.data_key(), start, end)
        .instrument(tracing::info_span!("chunk.read"))
        .await?;
    telemetry::phase(Phase::Read, read_at.elapsed());
    let mapping = job.mapping.clone();
    let rules = job.rules.clone();
    let (def, delimiter, first_row) = (job.def, job.delimiter, job.chunk.first_row as u64);
    let row_numbers = job.row_numbers();
    let today = Utc::now().date_naive();
    let parse_span = tracing::info_span!("chunk.parse");
    let parsed = tokio::task::spawn_blocking(move || {
        let _in = parse_span.enter();
        let parse_at = Instant::now();
        let layout = ChunkLayout {
            def,
            mapping: &mapping,
            delimiter,
            first_row,
            row_numbers: row_numbers.as_deref(),
            today,
            rules: rules.as_ref(),
            rule_samples: 0,
        };
        let parsed = parse_chunk(&bytes, layout).map_err(|e| ChunkError::Parse(e.to_string()));
        telemetry::phase(Phase::Parse, parse_at.elapsed());
        parsed
    })
    .await
    .map_err(|e| ChunkError::Parse(e.to_string()))??;
    Ok(parsed)
}
