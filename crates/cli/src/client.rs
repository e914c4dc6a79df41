//! `passare-imports import`: creates an import, uploads a file through the
//! client-streaming RPC, starts it and follows it to the end with progress bars.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use passare_imports_app::config::Config;
use passare_imports_app::identity::{Auth, Claims};
use passare_imports_proto::v1 as pb;
use passare_imports_proto::v1::import_service_client::ImportServiceClient;
use tokio::io::AsyncReadExt;
use tokio_stream::StreamExt;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

#[derive(clap::Args, Debug, Clone)]
pub struct ImportArgs {
    /// The files to import, in one import (loaded in dependency order).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// gRPC address of the service.
    #[arg(
        long,
        env = "IMPORTS_SERVER_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// Organization whose data this is.
    #[arg(long, default_value_t = 1042)]
    pub org: i64,
    /// Import type key of every file; without it, each file's name (without
    /// extension) must be a type key, as in `samples/payments.csv`.
    #[arg(long = "type")]
    pub import_type: Option<String>,
    /// stop-on-first-error or import-valid-rows.
    #[arg(long, default_value = "import-valid-rows")]
    pub policy: String,
    #[arg(long, default_value = "")]
    pub note: String,
    /// Bearer token; without it one is signed with IMPORTS_JWT_SECRET.
    #[arg(long, env = "IMPORTS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print one line per event instead of progress bars.
    #[arg(long)]
    pub plain: bool,
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct BearerToken(MetadataValue<tonic::metadata::Ascii>);

impl BearerToken {
    /// Sends `header` (`Bearer <token>`) as the authorization.
    pub fn new(header: MetadataValue<tonic::metadata::Ascii>) -> Self {
        Self(header)
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

pub type Client = ImportServiceClient<InterceptedService<Channel, BearerToken>>;

/// A client that sends `token` with every call.
pub async fn connect(server: &str, token: &str) -> anyhow::Result<Client> {
    let channel = Channel::from_shared(server.to_string())?
        .connect_timeout(Duration::from_secs(10))
        .initial_stream_window_size(8 * 1024 * 1024)
        .initial_connection_window_size(16 * 1024 * 1024)
        .connect()
        .await
        .with_context(|| format!("connecting to {server}"))?;
    let header: MetadataValue<_> = format!("Bearer {token}").parse()?;
    Ok(
        ImportServiceClient::with_interceptor(channel, BearerToken(header))
            .max_decoding_message_size(64 * 1024 * 1024),
    )
}

/// The token to use: given, or signed with the configured secret.
pub fn token(given: Option<String>) -> anyhow::Result<String> {
    if let Some(t) = given.filter(|t| !t.is_empty()) {
        return Ok(t);
    }
    let config = Config::load().context(
        "no token: pass --token, set IMPORTS_TOKEN, or configure IMPORTS_JWT_SECRET to sign one",
    )?;
    let now = chrono::Utc::now().timestamp() as u64;
    Ok(Auth::from_config(&config)?.issue(&Claims {
        sub: "cli".into(),
        name: "passare-imports CLI".into(),
        email: "cli@passare.com".into(),
        super_admin: true,
        exp: now + 12 * 3600,
        iat: now,
        ..Default::default()
    })?)
}

/// The header of an upload of the file at `path`: its name and size.
pub async fn file_header(
    import_id: &str,
    path: &std::path::Path,
    import_type: &str,
) -> anyhow::Result<pb::FileHeader> {
    let size = tokio::fs::metadata(path)
        .await
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "upload.csv".into());
    Ok(pb::FileHeader {
        import_id: import_id.to_string(),
        file_name,
        import_type: import_type.to_string(),
        declared_size_bytes: size as i64,
        ..Default::default()
    })
}

/// Uploads `path` into a draft import through the client-streaming RPC.
pub async fn upload(
    client: &mut Client,
    import_id: &str,
    path: &std::path::Path,
    import_type: &str,
    bar: Option<ProgressBar>,
) -> anyhow::Result<pb::ImportFile> {
    let header = file_header(import_id, path, import_type).await?;
    let mut file = tokio::fs::File::open(path).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let header = pb::UploadFileRequest {
        payload: Some(pb::upload_file_request::Payload::Header(header)),
    };
    let reader = tokio::spawn(async move {
        if tx.send(header).await.is_err() {
            return Ok::<(), std::io::Error>(());
        }
        loop {
            let mut buf = vec![0u8; 1024 * 1024];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            if let Some(bar) = &bar {
                bar.inc(n as u64);
            }
            let msg = pb::UploadFileRequest {
                payload: Some(pb::upload_file_request::Payload::Chunk(buf)),
            };
            if tx.send(msg).await.is_err() {
                return Ok(());
            }
        }
    });
    let response = client
        .upload_file(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(describe)?;
    reader.await??;
    response
        .into_inner()
        .file
        .context("the service returned no file")
}

/// A status with its google.rpc details, readable by people.
pub fn describe(status: tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt;
    let details = status.get_error_details();
    let mut text = format!("{:?}: {}", status.code(), status.message());
    if let Some(bad) = details.bad_request() {
        for v in &bad.field_violations {
            text.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    if let Some(pre) = details.precondition_failure() {
        for v in &pre.violations {
            text.push_str(&format!(
                "\n  {} {}: {}",
                v.r#type, v.subject, v.description
            ));
        }
    }
    anyhow::anyhow!(text)
}

fn state_name(state: i32) -> String {
    pb::ImportState::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("IMPORT_STATE_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| state.to_string())
}

pub fn is_terminal(state: i32) -> bool {
    matches!(
        pb::ImportState::try_from(state),
        Ok(pb::ImportState::Completed
            | pb::ImportState::CompletedWithErrors
            | pb::ImportState::Failed
            | pb::ImportState::Stopped)
    )
}

/// Follows an import to its end; returns the final import.
pub async fn watch(
    client: &mut Client,
    import_id: &str,
    bar: Option<ProgressBar>,
) -> anyhow::Result<pb::Import> {
    watch_with(client, import_id, bar, |_| {}).await
}

/// [`watch`], calling `seen` with every state of the import as it arrives
/// (the benchmark times them).
pub async fn watch_with(
    client: &mut Client,
    import_id: &str,
    bar: Option<ProgressBar>,
    mut seen: impl FnMut(&pb::Import),
) -> anyhow::Result<pb::Import> {
    let mut last = None;
    // A dropped stream is resumed: the snapshot comes first again.
    for _attempt in 0..10 {
        let mut stream = match client
            .watch_import(pb::WatchImportRequest {
                import_id: import_id.to_string(),
            })
            .await
        {
            Ok(s) => s.into_inner(),
            Err(e) if e.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(describe(e)),
        };
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) if e.code() == tonic::Code::Unavailable => break,
                Err(e) => return Err(describe(e)),
            };
            let Some(import) = event.import else { continue };
            seen(&import);
            let p = import.progress.unwrap_or_default();
            match &bar {
                Some(bar) => {
                    bar.set_length(p.rows_total.max(1) as u64);
                    bar.set_position(p.rows_processed as u64);
                    bar.set_message(format!(
                        "{} · chunks {}/{} · failed {}{}{}",
                        state_name(import.state),
                        p.chunks_done,
                        p.chunks_total,
                        p.rows_failed,
                        speed(&p),
                        import
                            .pause
                            .as_ref()
                            .map(|x| format!(" · paused: {}", x.reason))
                            .unwrap_or_default()
                    ));
                }
                None => println!(
                    "{} rows {}/{} imported {} failed {} chunks {}/{}{}",
                    state_name(import.state),
                    p.rows_processed,
                    p.rows_total,
                    p.rows_imported,
                    p.rows_failed,
                    p.chunks_done,
                    p.chunks_total,
                    speed(&p)
                ),
            }
            let done = is_terminal(import.state);
            last = Some(import);
            if done {
                if let Some(bar) = &bar {
                    bar.finish();
                }
                return last.context("no import");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("the watch stream kept ending before the import finished (last seen: {last:?})")
}

pub fn parse_policy(text: &str) -> anyhow::Result<pb::FailurePolicy> {
    match text {
        "stop-on-first-error" => Ok(pb::FailurePolicy::StopOnFirstError),
        "import-valid-rows" => Ok(pb::FailurePolicy::ImportValidRows),
        other => bail!("unknown policy {other:?}: use stop-on-first-error or import-valid-rows"),
    }
}

pub async fn run(mut args: ImportArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    // Progress bars need a terminal; logs and pipes get one line per event.
    args.plain |= !std::io::stderr().is_terminal();
    let token = token(args.token.clone())?;
    let mut client = connect(&args.server, &token).await?;
    let created = client
        .create_import(pb::CreateImportRequest {
            organization_id: args.org.to_string(),
            failure_policy: parse_policy(&args.policy)? as i32,
            note: args.note.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .map_err(describe)?
        .into_inner()
        .import
        .context("no import returned")?;
    println!(
        "import {} created for organization {}",
        created.id, created.organization_id
    );
    let mut rows_total: i64 = 0;
    for path in &args.files {
        rows_total += upload_one(&mut client, &args, &created.id, path).await?;
    }
    let report = analyze(&mut client, &created.id).await?;
    print_report(&report);
    if report.blocking {
        bail!(
            "analysis found blocking problems; fix the files (or choose --policy import-valid-rows for row problems) and import again"
        );
    }
    client
        .start_import(pb::StartImportRequest {
            import_id: created.id.clone(),
            failure_policy: 0,
        })
        .await
        .map_err(describe)?;
    let rows_bar = (!args.plain).then(|| {
        ProgressBar::new(rows_total.max(1) as u64)
            .with_style(style("import  [{bar:40}] {pos}/{len} rows {per_sec} {msg}"))
    });
    let done = watch(&mut client, &created.id, rows_bar).await?;
    print_outcome(&done);
    if let Some(e) = &done.error {
        bail!("import failed: {}", e.message);
    }
    Ok(())
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The import type of a file: `--type`, or the file's name (cases.csv).
fn import_type_of(args: &ImportArgs, path: &Path) -> anyhow::Result<String> {
    if let Some(t) = &args.import_type {
        return Ok(t.clone());
    }
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|stem| passare_imports_domain::catalog::find(stem).is_some())
        .with_context(|| {
            format!(
                "cannot tell the import type of {}: pass --type, or name the file after its type (cases.csv, payments.csv, …)",
                path.display()
            )
        })
}

/// Uploads one file with a progress bar; returns its rows.
async fn upload_one(
    client: &mut Client,
    args: &ImportArgs,
    import_id: &str,
    path: &Path,
) -> anyhow::Result<i64> {
    let import_type = import_type_of(args, path)?;
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let upload_bar = (!args.plain).then(|| {
        ProgressBar::new(size).with_style(style(
            "upload  [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}",
        ))
    });
    let file = upload(client, import_id, path, &import_type, upload_bar.clone()).await?;
    if let Some(bar) = upload_bar {
        bar.finish();
    }
    println!(
        "uploaded {} as {import_type} ({} bytes, {} rows, encoding {}, sha256 {})",
        file.name, file.size_bytes, file.row_count, file.encoding, file.sha256
    );
    for p in &file.problems {
        println!("  row {} {}: {} ({:?})", p.row, p.column, p.reason, p.value);
    }
    Ok(file.row_count)
}

/// Asks for the import's analysis and waits until a worker has stored the
/// report (AnalyzeImport only queues it).
pub async fn analyze(client: &mut Client, import_id: &str) -> anyhow::Result<pb::AnalysisReport> {
    client
        .analyze_import(pb::AnalyzeImportRequest {
            import_id: import_id.to_string(),
        })
        .await
        .map_err(describe)?;
    wait_for_analysis(client, import_id).await
}

/// Waits (up to ten minutes) until the import's analysis job is done and
/// returns its report; an error when the job failed.
pub async fn wait_for_analysis(
    client: &mut Client,
    import_id: &str,
) -> anyhow::Result<pb::AnalysisReport> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let import = client
            .get_import(pb::GetImportRequest {
                import_id: import_id.to_string(),
            })
            .await
            .map_err(describe)?
            .into_inner()
            .import
            .context("GetImport returned no import")?;
        let job = import.analysis_job.unwrap_or_default();
        match pb::AnalysisJobState::try_from(job.state) {
            Ok(pb::AnalysisJobState::Done) => {
                return import.analysis.context("analysis done without a report");
            }
            Ok(pb::AnalysisJobState::Failed) => anyhow::bail!("the analysis failed: {}", job.error),
            _ => {}
        }
        anyhow::ensure!(
            std::time::Instant::now() < until,
            "the analysis of {import_id} did not finish in 10 minutes (is a worker running?): {} of {} rows checked",
            job.rows_done,
            job.rows_total
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Prints an analysis: its counts and every finding with its severity.
fn print_report(report: &pb::AnalysisReport) {
    println!(
        "analysed in {} ms: would create {}, update {}, leave unchanged {}; {} rows failing",
        report.duration_ms,
        report.would_create,
        report.would_update,
        report.would_leave_unchanged,
        report.rows_failing
    );
    let severity = |s: i32| {
        if s == pb::Severity::Blocking as i32 {
            "BLOCKING"
        } else {
            "warning"
        }
    };
    for f in &report.findings {
        println!("  {}: {}", severity(f.severity), f.message);
    }
    for file in &report.files {
        for f in &file.findings {
            println!(
                "  {} {}: {}",
                file.file_name,
                severity(f.severity),
                f.message
            );
        }
    }
}

/// Rows per second and the time left, when the service has measured them.
fn speed(p: &pb::Progress) -> String {
    if p.rows_per_second <= 0.0 {
        return String::new();
    }
    let left = p
        .estimated_completion_time
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|at| (at - chrono::Utc::now()).num_seconds().max(0))
        .map(|s| format!(" · {}m{:02}s left", s / 60, s % 60))
        .unwrap_or_default();
    format!(" · {:.0} rows/s{left}", p.rows_per_second)
}

/// Prints how an import ended, with the first row errors of each file.
fn print_outcome(done: &pb::Import) {
    let p = done.progress.unwrap_or_default();
    println!(
        "import {} {}: {} rows processed, {} created, {} updated, {} unchanged, {} stale, {} failed{}",
        done.id,
        state_name(done.state),
        p.rows_processed,
        p.rows_created,
        p.rows_updated,
        p.rows_unchanged,
        p.rows_stale,
        p.rows_failed,
        if done.rollback_time.is_some() {
            format!(" ({} records rolled back)", p.rows_rolled_back)
        } else {
            String::new()
        }
    );
    for f in &done.files {
        for e in f.problems.iter().take(10) {
            println!(
                "  {} row {} {}: {} ({:?})",
                f.name, e.row, e.column, e.reason, e.value
            );
        }
    }
}
