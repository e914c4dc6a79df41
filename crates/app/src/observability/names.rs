//! Every metric the service exports, in one place: the code records through
//! these names, the dashboard (`docs/grafana/passare-imports.json`) and
//! docs/operations.md use them. Labels are bounded: import types (twelve),
//! outcomes, phases, states, and organizations only for the
//! `IMPORTS_METRICS_TOP_ORGANIZATIONS` with the largest backlog; never an
//! import, file or user.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Chunks settled by a worker, by `kind` (import type) and `outcome`
/// (`loaded`, `failed`: given up, `retried`: a retry scheduled, `skipped`:
/// its import had ended).
pub const CHUNKS: &str = "passare_imports_chunks_total";
/// Time of one chunk's phase (`read`, `parse`, `check`, `write`), seconds.
pub const CHUNK_PHASE_SECONDS: &str = "passare_imports_chunk_phase_seconds";
/// Rows of loaded chunks by `kind` and `outcome` (`created`, `updated`,
/// `unchanged`, `failed`, `stale`).
pub const ROWS: &str = "passare_imports_rows_total";
/// Chunks published to the dead-letter queue, by `kind`.
pub const DEAD_LETTERED: &str = "passare_imports_dead_lettered_total";
/// Worker slots by `state` (`busy`: draining an organization, `idle`).
pub const WORKER_SLOTS: &str = "passare_imports_worker_slots";
/// Analyses run, by `outcome` (`done`, `failed`).
pub const ANALYSES: &str = "passare_imports_analyses_total";
/// Time of one analysis, seconds.
pub const ANALYSIS_SECONDS: &str = "passare_imports_analysis_duration_seconds";
/// Bytes of files received, by `route` (`stream`: UploadFile, `resumable`:
/// WriteUploadPart).
pub const UPLOAD_BYTES: &str = "passare_imports_upload_bytes_total";
/// Uploads this process is receiving now.
pub const UPLOADS_ACTIVE: &str = "passare_imports_uploads_active";
/// WatchImport streams this process holds open.
pub const WATCH_STREAMS: &str = "passare_imports_watch_streams_open";
/// Result downloads this process streams now.
pub const DOWNLOADS_ACTIVE: &str = "passare_imports_downloads_active";
/// Imports by `state` (read from PostgreSQL at each scrape of a server or
/// gateway).
pub const IMPORTS: &str = "passare_imports_imports";
/// Chunks waiting to load, over every organization.
pub const WAITING_CHUNKS: &str = "passare_imports_waiting_chunks";
/// Age of the oldest waiting chunk (since it was queued or its retry came
/// due), seconds; 0 when none waits.
pub const OLDEST_WAITING_SECONDS: &str = "passare_imports_oldest_waiting_chunk_age_seconds";
/// Waiting chunks of one `organization` (the largest backlogs only).
pub const ORGANIZATION_WAITING_CHUNKS: &str = "passare_imports_organization_waiting_chunks";
/// Age of one `organization`'s oldest waiting chunk, seconds.
pub const ORGANIZATION_OLDEST_WAITING_SECONDS: &str =
    "passare_imports_organization_oldest_waiting_chunk_age_seconds";
/// Dead letters not yet requeued or discarded.
pub const DEAD_LETTERS: &str = "passare_imports_dead_letters";
/// Workers whose heartbeat is current.
pub const LIVE_WORKERS: &str = "passare_imports_live_workers";
/// Record events published to the records exchange (confirmed).
pub const RECORD_EVENTS: &str = "passare_imports_record_events_published_total";
/// Scrapes whose database gauges could not be read (the last values stay).
pub const SCRAPE_ERRORS: &str = "passare_imports_metrics_refresh_errors_total";

/// Every metric name, for the test that checks a scrape and the dashboard.
pub const ALL: &[&str] = &[
    CHUNKS,
    CHUNK_PHASE_SECONDS,
    ROWS,
    DEAD_LETTERED,
    WORKER_SLOTS,
    ANALYSES,
    ANALYSIS_SECONDS,
    UPLOAD_BYTES,
    UPLOADS_ACTIVE,
    WATCH_STREAMS,
    DOWNLOADS_ACTIVE,
    IMPORTS,
    WAITING_CHUNKS,
    OLDEST_WAITING_SECONDS,
    ORGANIZATION_WAITING_CHUNKS,
    ORGANIZATION_OLDEST_WAITING_SECONDS,
    DEAD_LETTERS,
    LIVE_WORKERS,
    RECORD_EVENTS,
    SCRAPE_ERRORS,
];

/// Gives every metric its help text and unit.
pub fn describe() {
    describe_counter!(
        CHUNKS,
        Unit::Count,
        "Chunks settled, by import type and outcome"
    );
    describe_histogram!(
        CHUNK_PHASE_SECONDS,
        Unit::Seconds,
        "Time of a chunk's read, parse, check and write phases"
    );
    describe_counter!(
        ROWS,
        Unit::Count,
        "Rows of settled chunks, by import type and outcome"
    );
    describe_counter!(
        DEAD_LETTERED,
        Unit::Count,
        "Chunks published to the dead-letter queue"
    );
    describe_gauge!(WORKER_SLOTS, Unit::Count, "Worker slots, busy or idle");
    describe_counter!(ANALYSES, Unit::Count, "Analyses run, by outcome");
    describe_histogram!(ANALYSIS_SECONDS, Unit::Seconds, "Time of one analysis");
    describe_counter!(UPLOAD_BYTES, Unit::Bytes, "Bytes of files received");
    describe_gauge!(UPLOADS_ACTIVE, Unit::Count, "Uploads being received");
    describe_gauge!(WATCH_STREAMS, Unit::Count, "WatchImport streams open");
    describe_gauge!(DOWNLOADS_ACTIVE, Unit::Count, "Result downloads streaming");
    describe_gauge!(IMPORTS, Unit::Count, "Imports by state");
    describe_gauge!(WAITING_CHUNKS, Unit::Count, "Chunks waiting to load");
    describe_gauge!(
        OLDEST_WAITING_SECONDS,
        Unit::Seconds,
        "Age of the oldest waiting chunk"
    );
    describe_gauge!(
        ORGANIZATION_WAITING_CHUNKS,
        Unit::Count,
        "Waiting chunks of the organizations with the largest backlog"
    );
    describe_gauge!(
        ORGANIZATION_OLDEST_WAITING_SECONDS,
        Unit::Seconds,
        "Age of the oldest waiting chunk of the organizations with the largest backlog"
    );
    describe_gauge!(
        DEAD_LETTERS,
        Unit::Count,
        "Dead letters waiting for an operator"
    );
    describe_gauge!(
        LIVE_WORKERS,
        Unit::Count,
        "Workers with a current heartbeat"
    );
    describe_counter!(
        RECORD_EVENTS,
        Unit::Count,
        "Record events published, confirmed"
    );
    describe_counter!(
        SCRAPE_ERRORS,
        Unit::Count,
        "Scrapes whose database gauges could not be read"
    );
}
