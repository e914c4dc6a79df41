//! The queue monitor in a terminal: `queues` prints GetQueueMonitor as a
//! table (with `--watch`, redrawn in place on a terminal, or printed again
//! as plain lines when stdout is not one) and `workers` the live workers.

use std::time::Duration;

use passare_imports_proto::v1 as pb;

use crate::client::{self, Client};

fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Every page of the monitor's organizations, with the rest of the first.
async fn read(api: &mut Client) -> anyhow::Result<pb::GetQueueMonitorResponse> {
    let mut first: Option<pb::GetQueueMonitorResponse> = None;
    let mut page_token = String::new();
    loop {
        let page = api
            .get_queue_monitor(pb::GetQueueMonitorRequest {
                page_size: 500,
                page_token: page_token.clone(),
                throughput_minutes: 10,
            })
            .await
            .map_err(client::describe)?
            .into_inner();
        page_token = page.next_page_token.clone();
        match &mut first {
            Some(f) => f.organizations.extend(page.organizations),
            None => first = Some(page),
        }
        if page_token.is_empty() {
            return Ok(first.unwrap_or_default());
        }
    }
}

/// The monitor as lines of text.
pub fn render(m: &pb::GetQueueMonitorResponse) -> Vec<String> {
    let t = m.totals.unwrap_or_default();
    let mut out = vec![
        format!(
            "organizations {} · running {} · queued {} · waiting chunks {} · dead-lettered (24 h) {} · stalled {} · workers {} · slots {}/{} busy",
            t.organizations,
            t.running_imports,
            t.queued_imports,
            t.waiting_chunks,
            t.dead_lettered_chunks,
            t.stalled_drains,
            t.live_workers,
            t.busy_slots,
            t.slots
        ),
        format!(
            "rows per minute (oldest first): {}",
            m.throughput
                .iter()
                .map(|p| p.rows.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        format!(
            "{:<10} {:<24} {:<9} {:<22} {:<7} {:>8} {:>6} {:>5} {:<9} {}",
            "org",
            "name",
            "running",
            "chunk (worker)",
            "state",
            "waiting",
            "failed",
            "dead",
            "activity",
            "queued imports"
        ),
    ];
    for o in &m.organizations {
        let (chunk, state) = match &o.running_chunk {
            Some(c) => (
                format!("{} ({})", c.chunk_id, c.worker),
                if c.stalled { "STALLED" } else { "loading" },
            ),
            None if o.paused => ("-".into(), "paused"),
            None => ("-".into(), "waiting"),
        };
        out.push(format!(
            "{:<10} {:<24} {:<9} {:<22} {:<7} {:>8} {:>6} {:>5} {:<9} {}",
            o.organization_id,
            o.organization_name.chars().take(24).collect::<String>(),
            if o.running_import_id.is_empty() {
                "-"
            } else {
                short(&o.running_import_id)
            },
            chunk,
            state,
            o.waiting_chunks,
            o.failed_chunks,
            o.dead_lettered_chunks,
            time(&o.last_activity_time),
            o.queued_import_ids
                .iter()
                .map(|i| short(i))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    if m.organizations.is_empty() {
        out.push("no organization has work".into());
    }
    out
}

/// Prints the monitor once, or every `every` with `watch`.
pub async fn queues(mut api: Client, watch: bool, every: Duration) -> anyhow::Result<()> {
    let term = console::Term::stdout();
    loop {
        let lines = render(&read(&mut api).await?);
        if watch && term.is_term() {
            term.clear_screen()?;
        } else if watch {
            println!("-- {}", chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC"));
        }
        for line in lines {
            println!("{line}");
        }
        if !watch {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Prints the live workers and what each holds.
pub async fn workers(mut api: Client) -> anyhow::Result<()> {
    let workers = api
        .list_workers(pb::ListWorkersRequest {})
        .await
        .map_err(client::describe)?
        .into_inner()
        .workers;
    if workers.is_empty() {
        println!("no live worker");
    }
    for w in &workers {
        let held: Vec<String> = w
            .drains
            .iter()
            .map(|d| {
                format!(
                    "org {} chunk {} since {}",
                    d.organization_id,
                    d.chunk_id,
                    time(&d.chunk_start_time)
                )
            })
            .collect();
        println!(
            "{:<28} host {} pid {} slots {} started {} heartbeat {} · {}",
            w.id,
            w.host,
            w.pid,
            w.slots,
            time(&w.start_time),
            time(&w.last_heartbeat_time),
            if held.is_empty() {
                "idle".into()
            } else {
                held.join("; ")
            }
        );
    }
    Ok(())
}
