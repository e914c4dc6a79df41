//! Operating running imports from a terminal: stop one, pause or resume the
//! imports of an organization or of all, list the pauses, and read why
//! chunks failed — the calls a developer makes during an incident.

use anyhow::Context;
use passare_imports_proto::v1 as pb;

use crate::client::{self, Client};

/// How to reach the service.
#[derive(clap::Args, Debug, Clone)]
pub struct Server {
    /// gRPC address of the service.
    #[arg(
        long,
        env = "IMPORTS_SERVER_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// Bearer token; without it one is signed with IMPORTS_JWT_SECRET.
    #[arg(long, env = "IMPORTS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Server {
    async fn connect(&self) -> anyhow::Result<Client> {
        client::connect(&self.server, &client::token(self.token.clone())?).await
    }
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Op {
    /// Stop an import (all-or-nothing imports are rolled back).
    Stop {
        import_id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        server: Server,
    },
    /// Pause the imports of an organization (--org) or of all.
    Pause {
        #[arg(long)]
        org: Option<i64>,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        server: Server,
    },
    /// Lift the pause of an organization (--org) or of all.
    Resume {
        #[arg(long)]
        org: Option<i64>,
        #[command(flatten)]
        server: Server,
    },
    /// List the pauses in force.
    Pauses {
        #[command(flatten)]
        server: Server,
    },
    /// List failed chunk attempts, newest first, of an import or organization.
    Failures {
        #[arg(long)]
        import: Option<String>,
        #[arg(long)]
        org: Option<i64>,
        #[arg(long, default_value_t = 20)]
        limit: i32,
        /// Print each failure's backtrace too.
        #[arg(long)]
        backtrace: bool,
        #[command(flatten)]
        server: Server,
    },
    /// The queue monitor: each organization's running chunk, waiting
    /// chunks and queued imports, stalled work, totals and throughput.
    Queues {
        /// Refresh in place (plain lines again when stdout is not a terminal).
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes with --watch.
        #[arg(long, default_value_t = 2)]
        every: u64,
        #[command(flatten)]
        server: Server,
    },
    /// The live workers: id, host, pid, slots, start, last heartbeat, and
    /// the organization and chunk each holds.
    Workers {
        #[command(flatten)]
        server: Server,
    },
    /// The dead letters (chunks the workers gave up on), newest first.
    DeadLetters {
        #[arg(long)]
        org: Option<i64>,
        /// Also those already requeued or discarded.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 50)]
        limit: i32,
        #[command(flatten)]
        server: Server,
    },
    /// Run dead-lettered chunks' rows again as their import's next attempt.
    RequeueDeadLetters {
        #[arg(required = true)]
        chunk_ids: Vec<i64>,
        #[command(flatten)]
        server: Server,
    },
    /// Mark dead letters handled without loading them (their rows stay failed).
    DiscardDeadLetters {
        #[arg(required = true)]
        chunk_ids: Vec<i64>,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        server: Server,
    },
}

fn user(u: &Option<pb::User>) -> String {
    u.as_ref()
        .map(|u| format!("{} <{}>", u.name, u.email))
        .unwrap_or_default()
}

fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

fn print_pause(p: &pb::Pause) {
    let scope = if p.organization_id.is_empty() {
        "every organization".to_string()
    } else {
        format!("organization {}", p.organization_id)
    };
    println!(
        "paused: {scope} since {} by {}: {}",
        time(&p.pause_time),
        user(&p.paused_by),
        p.reason
    );
}

pub async fn run(op: Op) -> anyhow::Result<()> {
    match op {
        Op::Stop {
            import_id,
            reason,
            server,
        } => stop(server, import_id, reason).await,
        Op::Pause {
            org,
            reason,
            server,
        } => {
            let pause = server
                .connect()
                .await?
                .pause_imports(pb::PauseImportsRequest {
                    organization_id: org.map(|o| o.to_string()).unwrap_or_default(),
                    reason,
                })
                .await
                .map_err(client::describe)?
                .into_inner()
                .pause
                .context("the service returned no pause")?;
            print_pause(&pause);
            Ok(())
        }
        Op::Resume { org, server } => resume(server, org).await,
        Op::Pauses { server } => {
            let pauses = server
                .connect()
                .await?
                .list_pauses(pb::ListPausesRequest {})
                .await
                .map_err(client::describe)?
                .into_inner()
                .pauses;
            print_all(&pauses, "no pause in force", print_pause);
            Ok(())
        }
        Op::Failures {
            import,
            org,
            limit,
            backtrace,
            server,
        } => failures(server, import, org, limit, backtrace).await,
        Op::Queues {
            watch,
            every,
            server,
        } => {
            let every = std::time::Duration::from_secs(every.max(1));
            crate::queues::queues(server.connect().await?, watch, every).await
        }
        Op::Workers { server } => crate::queues::workers(server.connect().await?).await,
        Op::DeadLetters {
            org,
            all,
            limit,
            server,
        } => crate::dead_letters::list(server.connect().await?, org, all, limit).await,
        Op::RequeueDeadLetters { chunk_ids, server } => {
            crate::dead_letters::requeue(server.connect().await?, chunk_ids).await
        }
        Op::DiscardDeadLetters {
            chunk_ids,
            reason,
            server,
        } => crate::dead_letters::discard(server.connect().await?, chunk_ids, reason).await,
    }
}

async fn stop(server: Server, import_id: String, reason: String) -> anyhow::Result<()> {
    let import = server
        .connect()
        .await?
        .stop_import(pb::StopImportRequest { import_id, reason })
        .await
        .map_err(client::describe)?
        .into_inner()
        .import
        .context("the service returned no import")?;
    let p = import.progress.unwrap_or_default();
    println!(
        "import {} stopped at {} by {}; {} rows created, {} updated, {} rolled back",
        import.id,
        time(&import.stop_time),
        user(&import.stopped_by),
        p.rows_created,
        p.rows_updated,
        p.rows_rolled_back
    );
    Ok(())
}

async fn resume(server: Server, org: Option<i64>) -> anyhow::Result<()> {
    let r = server
        .connect()
        .await?
        .resume_imports(pb::ResumeImportsRequest {
            organization_id: org.map(|o| o.to_string()).unwrap_or_default(),
        })
        .await
        .map_err(client::describe)?
        .into_inner();
    match r.lifted {
        Some(p) => println!("lifted: {}", p.reason),
        None => println!("nothing to lift: that scope was not paused"),
    }
    r.pauses.iter().for_each(print_pause);
    Ok(())
}

async fn failures(
    server: Server,
    import: Option<String>,
    org: Option<i64>,
    limit: i32,
    backtrace: bool,
) -> anyhow::Result<()> {
    let failures = server
        .connect()
        .await?
        .list_chunk_failures(pb::ListChunkFailuresRequest {
            import_id: import.unwrap_or_default(),
            organization_id: org.map(|o| o.to_string()).unwrap_or_default(),
            page_size: limit,
            page_token: String::new(),
        })
        .await
        .map_err(client::describe)?
        .into_inner()
        .chunk_failures;
    print_all(&failures, "no failed chunk attempt", |f| {
        print_failure(f, backtrace)
    });
    Ok(())
}

/// Prints each of `items`, or `none` when there is nothing to print.
fn print_all<T>(items: &[T], none: &str, print: impl FnMut(&T)) {
    if items.is_empty() {
        println!("{none}");
    }
    items.iter().for_each(print);
}

fn print_failure(f: &pb::ChunkFailure, backtrace: bool) {
    let outcome = pb::ChunkFailureOutcome::try_from(f.outcome)
        .map(|o| {
            o.as_str_name()
                .trim_start_matches("CHUNK_FAILURE_OUTCOME_")
                .to_lowercase()
        })
        .unwrap_or_default();
    println!(
        "{} import {} org {} {} rows {}–{} (chunk {}) attempt {}: {} [{}] -> {}{}",
        time(&f.fail_time),
        f.import_id,
        f.organization_id,
        f.file_name,
        f.first_row,
        f.last_row,
        f.chunk_seq,
        f.attempt,
        f.error_kind,
        if f.transient {
            "transient"
        } else {
            "permanent"
        },
        outcome,
        if f.retry_time.is_some() {
            format!(" at {}", time(&f.retry_time))
        } else {
            String::new()
        }
    );
    println!(
        "    worker {}:{}; queued {}, read {}, write {}",
        f.worker_host,
        f.worker_pid,
        time(&f.queue_time),
        time(&f.read_start_time),
        time(&f.write_start_time)
    );
    for (i, cause) in f.causes.iter().enumerate() {
        println!("    {}{cause}", if i == 0 { "" } else { "caused by: " });
    }
    if backtrace {
        for line in f.backtrace.lines() {
            println!("      {line}");
        }
    }
}
