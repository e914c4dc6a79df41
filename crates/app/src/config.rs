//! Configuration: defaults, then an optional TOML file (`IMPORTS_CONFIG_FILE`),
//! then environment variables `IMPORTS_<KEY>`. Validated once at start; every
//! key is documented in the README.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use passare_imports_domain::file::decode::WorkbookLimits;
use passare_imports_queue::QueueConfig;
use passare_imports_storage::{S3Config, StorageConfig, StorageError, StorageKind};
use serde::{Deserialize, Serialize};

/// Shortest HS256 secret accepted: 256 bits, as RFC 7518 §3.2 requires.
pub const MIN_SECRET_BYTES: usize = 32;

/// The default of `IMPORTS_ANALYSIS_MEMORY_KEYS`: the most entries a hash
/// table of 2^21 slots holds (it fills them to 7/8). A map sized for a
/// million entries gets those 2^21 slots anyway (the next power of two
/// above a million's 8/7), so this many entries cost the analysis no more
/// memory than a million did, and a file of 3M keys spills 1.2M of them to
/// PostgreSQL instead of 2M.
pub const DEFAULT_ANALYSIS_MEMORY_KEYS: usize = (1 << 21) / 8 * 7;

#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// PostgreSQL connection URL.
    pub database_url: String,
    /// Connections per process in the PostgreSQL pool (writes, workers, short reads).
    pub database_max_connections: u32,
    /// Connections per process in the separate pool of long reads and
    /// streams (watch streams, downloads, lists), so writes and workers never
    /// wait behind readers.
    pub database_read_connections: u32,
    /// Longest one statement of the read pool may run, milliseconds.
    pub read_statement_timeout_ms: u64,
    /// RabbitMQ connection URL.
    pub amqp_url: String,
    /// Prefix of every queue name.
    pub queue_prefix: String,
    /// Deliveries of a chunk message before it goes to the dead-letter queue.
    pub queue_delivery_limit: u32,
    /// Queues unused this long are deleted by the broker (tests only; unset in production).
    pub queue_expires_ms: Option<u64>,
    /// Address of the gRPC server (`serve`).
    pub grpc_addr: SocketAddr,
    /// Address of the grpc-web gateway (`gateway`).
    pub gateway_addr: SocketAddr,
    /// Comma-separated origins the browser frontend is served from; `*` allows any.
    pub gateway_allowed_origins: String,
    /// Built Operations Center page the gateway serves beside grpc-web
    /// (`npm run build` in gateway/web); grpc-web alone when it is missing.
    pub gateway_web_dir: PathBuf,
    /// Where uploaded files live: `local` (the directory `storage_dir`, one
    /// machine) or `s3` (the bucket `s3_bucket`, shared by every host).
    pub storage: StorageKind,
    /// Directory of uploaded files (`storage = local`).
    pub storage_dir: PathBuf,
    /// The S3 bucket of `storage = s3`.
    pub s3_bucket: String,
    /// Folder of the bucket every key goes under; empty: the bucket's root.
    pub s3_prefix: String,
    /// Endpoint of an S3-compatible service (MinIO, Ceph, moto; `http://`
    /// allowed); unset: AWS's (or `AWS_ENDPOINT`).
    pub s3_endpoint: Option<String>,
    /// The bucket's region; unset: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    pub s3_region: Option<String>,
    /// Access key; unset: `AWS_ACCESS_KEY_ID`, then the instance's or
    /// container's credentials.
    pub s3_access_key_id: Option<String>,
    /// Secret key (with `s3_access_key_id`); unset: `AWS_SECRET_ACCESS_KEY`. Never logged.
    pub s3_secret_access_key: Option<String>,
    /// Session token of temporary credentials; unset: `AWS_SESSION_TOKEN`. Never logged.
    pub s3_session_token: Option<String>,
    /// Retries of one S3 request that failed for a transient reason
    /// (connection, 5xx, throttling), with exponential backoff from 100 ms
    /// up to 15 s; then the storage error is transient, like a lost database.
    pub s3_max_retries: usize,
    /// Longest one S3 request keeps being retried, seconds.
    pub s3_retry_timeout_secs: u64,
    /// HS256 secret that signs bearer tokens, at least 32 bytes; may be
    /// empty when `jwt_public_key_file` is set. Never logged.
    pub jwt_secret: String,
    /// PEM file of the RSA (RS256) or Ed25519 (EdDSA) public key of
    /// Passare's identity service, whose tokens this service verifies.
    pub jwt_public_key_file: Option<PathBuf>,
    /// The `iss` every token must carry.
    pub jwt_issuer: String,
    /// The `aud` every token must carry (or include).
    pub jwt_audience: String,
    /// Longest a token may live, from `iat` (or from now) to `exp`, seconds.
    pub jwt_max_lifetime_secs: u64,
    /// Rows per chunk (25,000 by default: measured in the README, Benchmark →
    /// Chunk size).
    pub chunk_rows: u64,
    /// Chunks a worker process loads at once (each for a different organization).
    pub worker_concurrency: usize,
    /// Longest time a worker keeps draining one organization before handing it back.
    pub worker_drain_max_secs: u64,
    /// Whether a drain reads and parses an organization's next chunk while
    /// the one before it is written.
    pub worker_read_ahead: bool,
    /// How often a worker re-announces organizations whose chunks have waited this long.
    pub worker_sweep_secs: u64,
    /// How often a worker writes its heartbeat row (the queue monitor's live
    /// workers), seconds.
    pub worker_heartbeat_secs: u64,
    /// A worker whose last heartbeat is older than this is dead: the monitor
    /// drops it and shows its drain as stalled, seconds.
    pub worker_heartbeat_expiry_secs: u64,
    /// Attempts at a chunk that fails for a transient reason before it is
    /// dead-lettered (the import then fails or goes on, by its policy).
    pub retry_max_attempts: u32,
    /// Wait before the second attempt; each further wait doubles, plus jitter.
    pub retry_base_ms: u64,
    /// Longest wait between two attempts (before jitter, which adds up to as much again).
    pub retry_max_delay_ms: u64,
    /// Longest a chunk's write may take (each statement, lock waits included);
    /// past it the attempt fails as a transient `timeout` and is retried.
    pub chunk_timeout_ms: u64,
    /// Records an all-or-nothing rollback puts back per transaction (each
    /// statement limited like a chunk's write, by `chunk_timeout_ms`).
    pub rollback_batch_rows: u64,
    /// Uploads one server process accepts at the same time.
    pub max_concurrent_uploads: usize,
    /// An upload that sends nothing for this long is abandoned.
    pub upload_idle_secs: u64,
    /// Largest part of a resumable upload, in bytes (what the server asks clients to send).
    pub upload_part_bytes: u64,
    /// A resumable upload that receives no part for this long expires and its parts are deleted.
    pub upload_expire_secs: u64,
    /// Largest accepted upload, in bytes.
    pub max_file_bytes: u64,
    /// Largest UTF-8 CSV a conversion (workbook, UTF-16, Windows-1252) may
    /// write; beyond it the file is refused.
    pub max_converted_bytes: u64,
    /// Bytes all parts of a workbook may inflate to (declared and actual).
    pub xlsx_max_uncompressed_bytes: u64,
    /// Largest inflated-to-compressed ratio of a workbook part over 1 MiB.
    pub xlsx_max_compression_ratio: u64,
    /// Cells a worksheet may declare (its dimension), list, or span with data.
    pub xlsx_max_cells: u64,
    /// Shared strings a workbook may declare or list.
    pub xlsx_max_shared_strings: u64,
    /// Bytes of a workbook's shared-strings part (held in memory while read).
    pub xlsx_max_shared_strings_bytes: u64,
    /// Deepest nesting of XML elements in a workbook part.
    pub xlsx_max_xml_depth: u64,
    /// Files one import may hold.
    pub max_files_per_import: u64,
    /// Data rows one file may hold.
    pub max_rows_per_file: u64,
    /// Uploads one user may run at once (per server process).
    pub max_uploads_per_user: usize,
    /// Days after an import ends (or a draft is created) before its uploaded
    /// files and row-level results are deleted; 0 keeps them for ever.
    pub retention_days: u64,
    /// How often a worker looks for imports whose results are due for deletion
    /// (and sweeps stored bytes no record points at).
    pub retention_sweep_secs: u64,
    /// Stored bytes no record points at are deleted once nobody has written
    /// them for this long; longer than any upload takes to store and read.
    pub orphan_min_age_secs: u64,
    /// Sample rows kept per finding of an analysis report.
    pub analysis_samples: usize,
    /// Keys an analysis keeps in memory to find keys repeated across the
    /// chunks and files of an import; beyond them keys go to a scratch table
    /// of the analysis's PostgreSQL connection (0: all of them).
    /// [`DEFAULT_ANALYSIS_MEMORY_KEYS`] by default.
    pub analysis_memory_keys: usize,
    /// How long a worker holds an analysis job without checking a chunk
    /// before another worker may take it over (the first one died).
    pub analysis_lease_secs: u64,
    /// Serve gRPC server reflection.
    pub reflection: bool,
    /// Interval at which watch streams re-read an import even without a notification.
    pub watch_poll_ms: u64,
    /// Longest a watch stream stays open; then it ends with UNAVAILABLE
    /// (`WATCH_ENDED`) and the client watches again.
    pub watch_max_secs: u64,
    /// Watch streams one server process serves at once.
    pub max_concurrent_watches: usize,
    /// Watch streams one user may hold open at once (per server process).
    pub max_watches_per_user: usize,
    /// Result downloads one server process streams at once.
    pub max_concurrent_downloads: usize,
    /// Result downloads one user may run at once (per server process).
    pub max_downloads_per_user: usize,
    /// A download or watch stream whose client reads nothing for this long
    /// is cut (DEADLINE_EXCEEDED, `STREAM_STALLED`) and its resources freed.
    pub stream_stall_secs: u64,
    /// Longest a unary call may run on the server before it ends with
    /// DEADLINE_EXCEEDED (`CALL_TIMEOUT`); streams have their own bounds.
    pub call_timeout_secs: u64,
    /// HTTP/2 streams (calls) one client connection may have open at once.
    pub grpc_max_concurrent_streams: u32,
    /// Interval of HTTP/2 keepalive pings to clients.
    pub grpc_keepalive_interval_secs: u64,
    /// A client that does not answer a keepalive ping within this long is disconnected.
    pub grpc_keepalive_timeout_secs: u64,
    /// Whether chunk writes record an event per record created or updated,
    /// published to the `{queue_prefix}.records` topic exchange
    /// (docs/record-events.md).
    pub record_events: bool,
    /// Whether workers write the raw archive: every loaded chunk's rows as
    /// Parquet, and each file's original bytes (docs/archive.md).
    pub archive: bool,
    /// Where in the file store the archive goes (a folder name).
    pub archive_prefix: String,
    /// Days the archive keeps a date partition; 0 keeps it for ever. Apart
    /// from `retention_days`, which purges the service's own copies.
    pub archive_retention_days: u32,
    /// First wait before an archive write that failed is tried again,
    /// seconds; it doubles per attempt up to an hour.
    pub archive_retry_secs: u64,
    /// Ops listener of `serve` (`/metrics`, `/livez`, `/readyz`), or `off`.
    pub server_ops_addr: String,
    /// Ops listener of `gateway`, or `off`.
    pub gateway_ops_addr: String,
    /// Ops listener of `work`, or `off`.
    pub worker_ops_addr: String,
    /// Organizations with the most waiting chunks that get a backlog series
    /// of their own (the `organization` label); the rest are in the totals.
    pub metrics_top_organizations: usize,
    /// `text` or `json` log lines. Traces are not configured here: the
    /// standard `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`,
    /// `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*` … variables are read as they are
    /// (`observability::traces`, README, docs/monitoring.md).
    pub log_format: String,
    /// Log filter (tracing `EnvFilter` syntax).
    pub log: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "postgres://postgres@127.0.0.1:5432/passare_imports".into(),
            database_max_connections: 10,
            database_read_connections: 4,
            read_statement_timeout_ms: 15_000,
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            queue_prefix: "passare.imports".into(),
            queue_delivery_limit: 10,
            queue_expires_ms: None,
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            gateway_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            gateway_allowed_origins: "http://localhost:3000".into(),
            gateway_web_dir: PathBuf::from("gateway/web/dist"),
            storage: StorageKind::Local,
            storage_dir: PathBuf::from("data/uploads"),
            s3_bucket: String::new(),
            s3_prefix: String::new(),
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_session_token: None,
            s3_max_retries: 10,
            s3_retry_timeout_secs: 180,
            jwt_secret: String::new(),
            jwt_public_key_file: None,
            jwt_issuer: "passare".into(),
            jwt_audience: "passare-imports".into(),
            jwt_max_lifetime_secs: 24 * 3600,
            chunk_rows: 25_000,
            worker_concurrency: 2,
            worker_drain_max_secs: 300,
            worker_read_ahead: true,
            worker_sweep_secs: 15,
            worker_heartbeat_secs: 5,
            worker_heartbeat_expiry_secs: 20,
            retry_max_attempts: 10,
            retry_base_ms: 500,
            retry_max_delay_ms: 60_000,
            chunk_timeout_ms: 600_000,
            rollback_batch_rows: 10_000,
            max_concurrent_uploads: 32,
            upload_idle_secs: 120,
            upload_part_bytes: 4 * 1024 * 1024,
            upload_expire_secs: 24 * 60 * 60,
            max_file_bytes: 2 * 1024 * 1024 * 1024,
            max_converted_bytes: 8 * 1024 * 1024 * 1024,
            xlsx_max_uncompressed_bytes: WorkbookLimits::default().max_uncompressed_bytes,
            xlsx_max_compression_ratio: WorkbookLimits::default().max_compression_ratio,
            xlsx_max_cells: WorkbookLimits::default().max_cells,
            xlsx_max_shared_strings: WorkbookLimits::default().max_shared_strings,
            xlsx_max_shared_strings_bytes: WorkbookLimits::default().max_shared_strings_bytes,
            xlsx_max_xml_depth: WorkbookLimits::default().max_xml_depth,
            max_files_per_import: 50,
            max_rows_per_file: 10_000_000,
            max_uploads_per_user: 4,
            retention_days: 90,
            retention_sweep_secs: 3_600,
            orphan_min_age_secs: 86_400,
            analysis_samples: 20,
            analysis_memory_keys: DEFAULT_ANALYSIS_MEMORY_KEYS,
            analysis_lease_secs: 60,
            reflection: true,
            watch_poll_ms: 1_000,
            watch_max_secs: 3_600,
            max_concurrent_watches: 1_000,
            max_watches_per_user: 16,
            max_concurrent_downloads: 64,
            max_downloads_per_user: 2,
            stream_stall_secs: 60,
            call_timeout_secs: 120,
            grpc_max_concurrent_streams: 200,
            grpc_keepalive_interval_secs: 30,
            grpc_keepalive_timeout_secs: 10,
            record_events: true,
            archive: true,
            archive_prefix: "archive".into(),
            archive_retention_days: 730,
            archive_retry_secs: 30,
            server_ops_addr: "127.0.0.1:9601".into(),
            gateway_ops_addr: "127.0.0.1:9602".into(),
            worker_ops_addr: "127.0.0.1:9603".into(),
            metrics_top_organizations: 20,
            log_format: "text".into(),
            log: "info".into(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.clone();
        shown.jwt_secret = if self.jwt_secret.is_empty() {
            String::new()
        } else {
            "<redacted>".into()
        };
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<redacted>".to_string());
        shown.s3_secret_access_key = hidden(&self.s3_secret_access_key);
        shown.s3_session_token = hidden(&self.s3_session_token);
        shown.database_url = redact_url(&self.database_url);
        shown.amqp_url = redact_url(&self.amqp_url);
        f.debug_struct("Config")
            .field(
                "settings",
                &serde_json::to_value(&shown).unwrap_or_default(),
            )
            .finish()
    }
}

/// Hides the password of a URL.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:<redacted>{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The long-running processes of the service, each with an ops listener of
/// its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Server,
    Gateway,
    Worker,
}

impl Process {
    /// The process's name in logs, metrics and traces.
    pub fn as_str(self) -> &'static str {
        match self {
            Process::Server => "server",
            Process::Gateway => "gateway",
            Process::Worker => "worker",
        }
    }

    /// The configuration key of the process's ops listener.
    pub fn ops_key(self) -> &'static str {
        match self {
            Process::Server => "IMPORTS_SERVER_OPS_ADDR",
            Process::Gateway => "IMPORTS_GATEWAY_OPS_ADDR",
            Process::Worker => "IMPORTS_WORKER_OPS_ADDR",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: {0}")]
    Invalid(String),
}

impl From<StorageError> for ConfigError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Config(message) => ConfigError::Invalid(message),
            other => ConfigError::Invalid(other.to_string()),
        }
    }
}

impl Config {
    /// Defaults, then `IMPORTS_CONFIG_FILE` if set, then `IMPORTS_*` variables.
    pub fn load() -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Ok(path) = std::env::var("IMPORTS_CONFIG_FILE") {
            figment = figment.merge(Toml::file_exact(path));
        }
        let config: Config = figment
            .merge(Env::prefixed("IMPORTS_").ignore(&["config_file"]))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        let min = MIN_SECRET_BYTES;
        if self.jwt_secret.is_empty() && self.jwt_public_key_file.is_none() {
            return bad(
                "set IMPORTS_JWT_SECRET (HS256, at least 32 bytes) or IMPORTS_JWT_PUBLIC_KEY_FILE (the identity service's RS256 or EdDSA public key), or both",
            );
        }
        if !self.jwt_secret.is_empty() && self.jwt_secret.len() < min {
            return Err(ConfigError::Invalid(format!(
                "IMPORTS_JWT_SECRET is {} bytes; it must be at least {min} (256 bits)",
                self.jwt_secret.len()
            )));
        }
        if self.jwt_issuer.trim().is_empty() || self.jwt_audience.trim().is_empty() {
            return bad("IMPORTS_JWT_ISSUER and IMPORTS_JWT_AUDIENCE must not be empty");
        }
        if !(60..=30 * 24 * 3600).contains(&self.jwt_max_lifetime_secs) {
            return bad("IMPORTS_JWT_MAX_LIFETIME_SECS must be between 60 and 2592000 (30 days)");
        }
        if self.chunk_rows == 0 || self.chunk_rows > 1_000_000 {
            return bad("IMPORTS_CHUNK_ROWS must be between 1 and 1000000");
        }
        if self.worker_concurrency == 0 {
            return bad("IMPORTS_WORKER_CONCURRENCY must be at least 1");
        }
        if (self.database_max_connections as usize) < 2 * self.worker_concurrency + 1 {
            return bad(
                "IMPORTS_DATABASE_MAX_CONNECTIONS must be at least 2 × IMPORTS_WORKER_CONCURRENCY + 1 (a drain lease and a write per slot, plus one)",
            );
        }
        if self.upload_part_bytes < 64 * 1024 || self.upload_part_bytes > 6 * 1024 * 1024 {
            return bad(
                "IMPORTS_UPLOAD_PART_BYTES must be between 65536 and 6291456 (parts travel in one gRPC message of at most 8 MiB)",
            );
        }
        if !(100..=1_000_000).contains(&self.rollback_batch_rows) {
            return bad("IMPORTS_ROLLBACK_BATCH_ROWS must be between 100 and 1000000");
        }
        if self.analysis_memory_keys > 100_000_000 {
            return bad(
                "IMPORTS_ANALYSIS_MEMORY_KEYS must be at most 100000000 (about 4 GB of keys; larger imports spill to PostgreSQL)",
            );
        }
        if !(2..=3_600).contains(&self.analysis_lease_secs) {
            return bad("IMPORTS_ANALYSIS_LEASE_SECS must be between 2 and 3600");
        }
        if self.upload_expire_secs == 0 {
            return bad("IMPORTS_UPLOAD_EXPIRE_SECS must be at least 1");
        }
        if self.max_concurrent_uploads == 0 || self.upload_idle_secs == 0 {
            return bad(
                "IMPORTS_MAX_CONCURRENT_UPLOADS and IMPORTS_UPLOAD_IDLE_SECS must be at least 1",
            );
        }
        if self.retry_max_attempts == 0 {
            return bad("IMPORTS_RETRY_MAX_ATTEMPTS must be at least 1");
        }
        if self.retry_base_ms == 0 || self.retry_max_delay_ms < self.retry_base_ms {
            return bad(
                "IMPORTS_RETRY_BASE_MS must be at least 1 and IMPORTS_RETRY_MAX_DELAY_MS at least IMPORTS_RETRY_BASE_MS",
            );
        }
        // The broker takes back a message unacknowledged for 30 minutes; a
        // chunk (twice its write limit, see the worker) must end well before.
        if self.chunk_timeout_ms < 100 || self.chunk_timeout_ms > 12 * 60 * 1000 {
            return bad("IMPORTS_CHUNK_TIMEOUT_MS must be between 100 and 720000 (12 minutes)");
        }
        if self.max_files_per_import == 0
            || self.max_rows_per_file == 0
            || self.max_uploads_per_user == 0
        {
            return bad(
                "IMPORTS_MAX_FILES_PER_IMPORT, IMPORTS_MAX_ROWS_PER_FILE and IMPORTS_MAX_UPLOADS_PER_USER must be at least 1",
            );
        }
        self.validate_conversion_limits()?;
        if self.retention_sweep_secs == 0 {
            return bad("IMPORTS_RETENTION_SWEEP_SECS must be at least 1");
        }
        if self.orphan_min_age_secs < 600 {
            return bad(
                "IMPORTS_ORPHAN_MIN_AGE_SECS must be at least 600: stored bytes younger than that may still be getting their record",
            );
        }
        self.validate_fairness()?;
        self.validate_heartbeat()?;
        self.validate_ops()?;
        self.storage().validate()?;
        if self.queue_delivery_limit == 0 {
            return bad("IMPORTS_QUEUE_DELIVERY_LIMIT must be at least 1");
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return bad("IMPORTS_LOG_FORMAT must be text or json");
        }
        if self.queue_prefix.is_empty() || self.queue_prefix.contains(char::is_whitespace) {
            return bad("IMPORTS_QUEUE_PREFIX must be a non-empty name without spaces");
        }
        Ok(())
    }

    /// The caps that keep one caller from starving the others.
    fn validate_ops(&self) -> Result<(), ConfigError> {
        for process in [Process::Server, Process::Gateway, Process::Worker] {
            self.ops_addr(process)?;
        }
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if self.archive_prefix.is_empty()
            || !self.archive_prefix.chars().all(plain)
            || self.archive_prefix.starts_with('.')
            || matches!(self.archive_prefix.as_str(), "imports" | "uploads")
        {
            return Err(ConfigError::Invalid(
                "IMPORTS_ARCHIVE_PREFIX must be one folder name of letters, digits, '-', '_' or '.', other than imports and uploads (the service's own files)"
                    .into(),
            ));
        }
        if self.archive_retry_secs == 0 || self.archive_retry_secs > 3_600 {
            return Err(ConfigError::Invalid(
                "IMPORTS_ARCHIVE_RETRY_SECS must be between 1 and 3600".into(),
            ));
        }
        if self.metrics_top_organizations > 1_000 {
            return Err(ConfigError::Invalid(
                "IMPORTS_METRICS_TOP_ORGANIZATIONS must be at most 1000 (each is a series of its own)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The ops listener address of `process`, or `None` when it is `off`.
    pub fn ops_addr(&self, process: Process) -> Result<Option<SocketAddr>, ConfigError> {
        let value = match process {
            Process::Server => &self.server_ops_addr,
            Process::Gateway => &self.gateway_ops_addr,
            Process::Worker => &self.worker_ops_addr,
        };
        let key = process.ops_key();
        let value = value.trim();
        if value.is_empty() || value.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        value.parse().map(Some).map_err(|_| {
            ConfigError::Invalid(format!(
                "{key} must be an address such as 0.0.0.0:9600, or off; got {value:?}"
            ))
        })
    }

    fn validate_heartbeat(&self) -> Result<(), ConfigError> {
        if self.worker_heartbeat_secs == 0
            || self.worker_heartbeat_expiry_secs <= self.worker_heartbeat_secs
        {
            return Err(ConfigError::Invalid(
                "IMPORTS_WORKER_HEARTBEAT_SECS must be at least 1 and IMPORTS_WORKER_HEARTBEAT_EXPIRY_SECS longer than it"
                    .into(),
            ));
        }
        Ok(())
    }

    fn validate_fairness(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.database_read_connections == 0 {
            return bad("IMPORTS_DATABASE_READ_CONNECTIONS must be at least 1");
        }
        if self.read_statement_timeout_ms < 100 {
            return bad("IMPORTS_READ_STATEMENT_TIMEOUT_MS must be at least 100");
        }
        if [
            self.max_concurrent_watches,
            self.max_watches_per_user,
            self.max_concurrent_downloads,
            self.max_downloads_per_user,
        ]
        .contains(&0)
        {
            return bad(
                "IMPORTS_MAX_CONCURRENT_WATCHES, IMPORTS_MAX_WATCHES_PER_USER, IMPORTS_MAX_CONCURRENT_DOWNLOADS and IMPORTS_MAX_DOWNLOADS_PER_USER must be at least 1",
            );
        }
        if [
            self.watch_max_secs,
            self.stream_stall_secs,
            self.call_timeout_secs,
            self.grpc_keepalive_interval_secs,
            self.grpc_keepalive_timeout_secs,
        ]
        .contains(&0)
        {
            return bad(
                "IMPORTS_WATCH_MAX_SECS, IMPORTS_STREAM_STALL_SECS, IMPORTS_CALL_TIMEOUT_SECS and the IMPORTS_GRPC_KEEPALIVE_* keys must be at least 1",
            );
        }
        if self.grpc_max_concurrent_streams < 4 {
            return bad("IMPORTS_GRPC_MAX_CONCURRENT_STREAMS must be at least 4");
        }
        Ok(())
    }

    /// The file store this configuration names (`open_store`).
    pub fn storage(&self) -> StorageConfig {
        StorageConfig {
            kind: self.storage,
            dir: self.storage_dir.clone(),
            s3: S3Config {
                bucket: self.s3_bucket.clone(),
                prefix: self.s3_prefix.clone(),
                endpoint: self.s3_endpoint.clone(),
                region: self.s3_region.clone(),
                access_key_id: self.s3_access_key_id.clone(),
                secret_access_key: self.s3_secret_access_key.clone(),
                session_token: self.s3_session_token.clone(),
                max_retries: self.s3_max_retries,
                retry_timeout: Duration::from_secs(self.s3_retry_timeout_secs),
            },
        }
    }

    pub fn queue(&self) -> QueueConfig {
        QueueConfig {
            amqp_url: self.amqp_url.clone(),
            prefix: self.queue_prefix.clone(),
            delivery_limit: self.queue_delivery_limit,
            queue_expires: self.queue_expires_ms.map(Duration::from_millis),
        }
    }

    /// The limits of conversions and workbooks.
    fn validate_conversion_limits(&self) -> Result<(), ConfigError> {
        if self.max_converted_bytes == 0
            || self.xlsx_max_uncompressed_bytes == 0
            || self.xlsx_max_cells == 0
            || self.xlsx_max_shared_strings == 0
            || self.xlsx_max_shared_strings_bytes == 0
        {
            return Err(ConfigError::Invalid(
                "IMPORTS_MAX_CONVERTED_BYTES, IMPORTS_XLSX_MAX_UNCOMPRESSED_BYTES, IMPORTS_XLSX_MAX_CELLS, IMPORTS_XLSX_MAX_SHARED_STRINGS and IMPORTS_XLSX_MAX_SHARED_STRINGS_BYTES must be at least 1".into(),
            ));
        }
        if self.xlsx_max_compression_ratio < 10 || !(8..=1000).contains(&self.xlsx_max_xml_depth) {
            return Err(ConfigError::Invalid(
                "IMPORTS_XLSX_MAX_COMPRESSION_RATIO must be at least 10 and IMPORTS_XLSX_MAX_XML_DEPTH between 8 and 1000 (workbooks nest about 6 deep)".into(),
            ));
        }
        Ok(())
    }

    /// The limits a workbook is checked against before it is read.
    pub fn workbook_limits(&self) -> WorkbookLimits {
        WorkbookLimits {
            max_uncompressed_bytes: self.xlsx_max_uncompressed_bytes,
            max_compression_ratio: self.xlsx_max_compression_ratio,
            max_cells: self.xlsx_max_cells,
            max_shared_strings: self.xlsx_max_shared_strings,
            max_shared_strings_bytes: self.xlsx_max_shared_strings_bytes,
            max_xml_depth: self.xlsx_max_xml_depth,
        }
    }

    pub fn allowed_origins(&self) -> Vec<String> {
        self.gateway_allowed_origins
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_debug_output() {
        let c = Config {
            jwt_secret: "super-secret-value-123".into(),
            database_url: "postgres://app:hunter2@db/x".into(),
            s3_secret_access_key: Some("s3-secret-key".into()),
            s3_session_token: Some("s3-session-token".into()),
            ..Config::default()
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3-secret") && !shown.contains("s3-session"),
            "{shown}"
        );
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("app:<redacted>@db"), "{shown}");
    }

    #[test]
    fn a_secret_shorter_than_32_bytes_is_refused() {
        let with = |secret: &str| Config {
            jwt_secret: secret.into(),
            ..Config::default()
        };
        let short = with("sixteen-chars-ok").validate();
        assert!(short.is_err_and(|e| e.to_string().contains("at least 32")));
        assert!(with(&"x".repeat(31)).validate().is_err());
        assert!(with(&"x".repeat(32)).validate().is_ok());
        assert!(with("").validate().is_err(), "no key at all");
        let verify_only = Config {
            jwt_public_key_file: Some("identity.pub.pem".into()),
            ..with("")
        };
        assert!(verify_only.validate().is_ok());
    }

    #[test]
    fn the_fairness_bounds_must_be_set() {
        let secret = "x".repeat(32);
        let base = || Config {
            jwt_secret: secret.clone(),
            ..Config::default()
        };
        assert!(base().validate().is_ok());
        let refused: [fn(&mut Config); 6] = [
            |c| c.max_watches_per_user = 0,
            |c| c.max_concurrent_downloads = 0,
            |c| c.database_read_connections = 0,
            |c| c.stream_stall_secs = 0,
            |c| c.watch_max_secs = 0,
            |c| c.grpc_max_concurrent_streams = 1,
        ];
        for (i, change) in refused.iter().enumerate() {
            let mut c = base();
            change(&mut c);
            assert!(c.validate().is_err(), "change {i} is refused");
        }
    }

    #[test]
    fn the_default_analysis_budget_fills_the_table_a_million_keys_get() {
        use std::collections::HashMap;
        let million = HashMap::<u64, u64>::with_capacity(1_000_000).capacity();
        assert_eq!(million, DEFAULT_ANALYSIS_MEMORY_KEYS);
        let default = HashMap::<u64, u64>::with_capacity(DEFAULT_ANALYSIS_MEMORY_KEYS);
        assert_eq!(default.capacity(), million);
    }

    #[test]
    fn analysis_budget_and_lease_are_bounded() {
        let with = |keys: usize, lease: u64| Config {
            jwt_secret: "x".repeat(32),
            analysis_memory_keys: keys,
            analysis_lease_secs: lease,
            ..Config::default()
        };
        assert!(with(0, 60).validate().is_ok(), "every key to PostgreSQL");
        assert!(with(100_000_000, 60).validate().is_ok());
        let huge = with(100_000_001, 60).validate();
        assert!(huge.is_err_and(|e| e.to_string().contains("IMPORTS_ANALYSIS_MEMORY_KEYS")));
        assert!(with(1_000, 1).validate().is_err());
        assert!(with(1_000, 2).validate().is_ok());
        assert!(with(1_000, 3_601).validate().is_err());
    }

    #[test]
    fn s3_storage_needs_a_bucket() {
        let mut c = Config {
            jwt_secret: "x".repeat(32),
            storage: StorageKind::S3,
            ..Config::default()
        };
        let refused = c.validate();
        assert!(refused.is_err_and(|e| e.to_string().contains("IMPORTS_S3_BUCKET")));
        c.s3_bucket = "passare-imports".into();
        c.s3_endpoint = Some("minio:9000".into());
        assert!(c.validate().is_err(), "an endpoint without a scheme");
        c.s3_endpoint = Some("http://minio:9000".into());
        assert!(c.validate().is_ok());
    }
}
