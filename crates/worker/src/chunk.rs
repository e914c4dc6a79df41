//! One chunk: read its byte range from storage, parse it into Arrow,
//! check it against what is stored, and write it in the fenced transaction
//! (`store::load`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use chrono::{DateTime, Utc};
use passare_imports_app::observability::traces;
use passare_imports_domain::chunk::ParsedChunk;
use passare_imports_queue::WorkChannel;
use passare_imports_storage::FileStore;
use passare_imports_store::load::{self, ChunkJob, ChunkOutcome, ChunkWrite};
use passare_imports_store::sqlx::Postgres;
use passare_imports_store::sqlx::pool::PoolConnection;
use tracing::Instrument;

use crate::failure::{AttemptError, AttemptOf, ChunkError, Traced};
use crate::read::read_and_parse;
use crate::telemetry::{self, Phase};
use crate::{Step, Worker};

/// How far an attempt got, and what it was about.
#[derive(Debug, Default)]
struct Stamps {
    of: Option<AttemptOf>,
    read_started_at: Option<DateTime<Utc>>,
    write_started_at: Option<DateTime<Utc>>,
}

/// A chunk being read and parsed ahead, while the chunk before it of the
/// same organization is written: reading and parsing touch no stored record,
/// so they may run early; checks and the write still wait their turn.
pub(crate) struct ReadAhead {
    chunk_id: i64,
    parsed: tokio::task::JoinHandle<Result<ParsedChunk, Traced>>,
}

impl ReadAhead {
    /// Starts reading and parsing `job`'s chunk in the background.
    pub(crate) fn start(files: Arc<dyn FileStore>, job: ChunkJob) -> Self {
        Self {
            chunk_id: job.chunk.id,
            parsed: tokio::spawn(async move {
                let span = tracing::info_span!(
                    "chunk.read_ahead",
                    import_id = %job.import.id,
                    chunk = job.chunk.seq,
                    trace_id = tracing::field::Empty,
                );
                traces::continue_traceparent(&span, job.import.trace_context.as_deref());
                read_and_parse(files, &job).instrument(span).await
            }),
        }
    }
}

impl Worker {
    /// Loads one chunk (with what was read ahead for it, if anything); a
    /// failed attempt is handled by [`Worker::failed`].
    pub(crate) async fn load(
        &self,
        channel: &WorkChannel,
        chunk_id: i64,
        ahead: Option<ReadAhead>,
    ) -> Step {
        match self.process_chunk_with(chunk_id, ahead).await {
            Ok(ChunkOutcome::NotYourTurn) => {
                tracing::info!(
                    chunk_id,
                    "an earlier chunk of the organization is pending; retrying"
                );
                Step::Pause(Duration::from_millis(250))
            }
            Ok(outcome) => {
                tracing::debug!(chunk_id, ?outcome, "chunk settled");
                Step::Next
            }
            Err(e) => self.failed(channel, chunk_id, e).await,
        }
    }

    /// Reads, parses and writes one chunk, within twice the chunk timeout.
    /// Safe to call for a chunk that is already done or whose import ended:
    /// it then has no effect. A failure says how far the attempt got.
    pub async fn process_chunk(&self, chunk_id: i64) -> Result<ChunkOutcome, AttemptError> {
        self.process_chunk_with(chunk_id, None).await
    }

    /// [`Worker::process_chunk`], using the chunk's read-ahead if it has one.
    async fn process_chunk_with(
        &self,
        chunk_id: i64,
        ahead: Option<ReadAhead>,
    ) -> Result<ChunkOutcome, AttemptError> {
        let stamps = Mutex::new(Stamps::default());
        let limit = self.chunk_timeout * 2;
        let attempt = self.attempt(chunk_id, ahead, &stamps);
        let result = match tokio::time::timeout(limit, attempt).await {
            Ok(result) => result,
            Err(_) => Err(ChunkError::Timeout(limit).into()),
        };
        result.map_err(|error| {
            let s = stamps
                .lock()
                .map(|s| (s.of, s.read_started_at, s.write_started_at));
            let (of, read_started_at, write_started_at) = s.unwrap_or_default();
            AttemptError {
                error,
                of,
                read_started_at,
                write_started_at,
            }
        })
    }

    async fn attempt(
        &self,
        chunk_id: i64,
        ahead: Option<ReadAhead>,
        stamps: &Mutex<Stamps>,
    ) -> Result<ChunkOutcome, Traced> {
        let started_at = Utc::now();
        let mut conn = self.db.conn().await?;
        let Some(job) = load::load_job(&mut conn, chunk_id).await? else {
            return Ok(ChunkOutcome::Gone);
        };
        if job.chunk.state != passare_imports_store::ChunkState::Queued {
            return Ok(ChunkOutcome::AlreadyDone);
        }
        let span = chunk_span(&job);
        self.attempt_job(job, conn, ahead, stamps, started_at)
            .instrument(span)
            .await
    }

    /// The attempt at a chunk whose job is read, in the chunk's span.
    async fn attempt_job(
        &self,
        job: ChunkJob,
        mut conn: PoolConnection<Postgres>,
        ahead: Option<ReadAhead>,
        stamps: &Mutex<Stamps>,
        started_at: chrono::DateTime<Utc>,
    ) -> Result<ChunkOutcome, Traced> {
        let chunk_id = job.chunk.id;
        let stamp = |f: &dyn Fn(&mut Stamps)| {
            if let Ok(mut s) = stamps.lock() {
                f(&mut s);
            }
        };
        stamp(&|s| {
            s.of = Some(AttemptOf {
                import_id: job.import.id,
                organization_id: job.import.organization_id,
                file_id: job.file.id,
                seq: job.chunk.seq,
                kind: job.def.key,
                attempts_before: job.chunk.attempts,
            });
            s.read_started_at = Some(Utc::now());
        });
        let read_at = Instant::now();
        // The chunk read and parsed while the one before it was written,
        // when the drain could; else now. A read-ahead that failed is done
        // again here, where its failure is recorded like any other.
        let ahead = match ahead.filter(|a| a.chunk_id == chunk_id) {
            Some(a) => a.parsed.await.ok().and_then(Result::ok),
            None => None,
        };
        let mut parsed = match ahead {
            Some(parsed) => parsed,
            None => read_and_parse(self.files.clone(), &job).await?,
        };
        // References resolve against what is stored: earlier files of the
        // import were loaded before this one (files load in dependency order).
        let org = job.import.organization_id;
        let check_at = Instant::now();
        let check = tracing::info_span!("chunk.check");
        // The keys the import already wrote are checked by the write, behind
        // the fence, with the same lookup that sorts new rows from stored.
        load::check_against_stored(&mut conn, org, job.def, &mut parsed, None)
            .instrument(check)
            .await?;
        let parsed_at = Instant::now();
        telemetry::phase(Phase::Check, parsed_at - check_at);
        stamp(&|s| s.write_started_at = Some(Utc::now()));
        let archive = crate::archive::archive_slot(self.archive.as_ref());
        let write = ChunkWrite {
            job: &job,
            parsed: &mut parsed,
            started_at,
            worker: &self.name,
            statement_timeout: Some(self.chunk_timeout),
            archive_after: archive.as_ref().map(|(_, after)| *after),
            record_events: self.record_events,
        };
        let outcome = load::write_chunk(&mut conn, write)
            .instrument(tracing::info_span!("chunk.write"))
            .await?;
        telemetry::phase(Phase::Write, parsed_at.elapsed());
        telemetry::settled(job.def.key, &outcome);
        if let (ChunkOutcome::Written(_), Some((Some(slot), _))) = (&outcome, archive) {
            let failed = crate::archive::failed_rows(&parsed.problems);
            self.archive_now(&job, parsed.batch.clone(), failed, slot);
        }
        tracing::info!(
            import_id = %job.import.id, org_id = org, file_id = %job.file.id,
            chunk = job.chunk.seq, ?outcome,
            read_parse_ms = (parsed_at - read_at).as_millis() as u64,
            write_ms = parsed_at.elapsed().as_millis() as u64,
            "chunk processed"
        );
        Ok(outcome)
    }
}

/// The span of one chunk's attempt: a child of the trace of the call that
/// started its import (whichever notice woke the worker), with the import,
/// organization and chunk, and the trace id, for the logs.
fn chunk_span(job: &ChunkJob) -> tracing::Span {
    let span = tracing::info_span!(
        "chunk",
        import_id = %job.import.id,
        org_id = job.import.organization_id,
        chunk = job.chunk.seq,
        chunk_id = job.chunk.id,
        trace_id = tracing::field::Empty,
    );
    traces::continue_traceparent(&span, job.import.trace_context.as_deref());
    span
}
