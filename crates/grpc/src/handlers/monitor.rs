//! The queue monitor: GetQueueMonitor and ListWorkers (staff only).

use passare_imports_app::{ApiError, App, monitor};
use passare_imports_proto::v1 as pb;

use crate::auth::Call;
use crate::{convert, paging};

pub async fn get_queue_monitor(
    app: &App,
    _call: Call,
    req: pb::GetQueueMonitorRequest,
) -> Result<pb::GetQueueMonitorResponse, ApiError> {
    let page_size = paging::page_size(req.page_size, 50, 500)?;
    let minutes = match req.throughput_minutes {
        n if n < 0 => {
            return Err(ApiError::invalid(
                "throughput_minutes",
                "must not be negative",
            ));
        }
        0 => 10,
        n => n.min(60),
    };
    let after: Option<i64> = paging::decode("queue_monitor", &req.page_token)?;
    let m = monitor::read(app, after, page_size + 1, minutes).await?;
    let (totals, workers, throughput) = convert::monitor_rest(&m);
    let (orgs, next_page_token) = paging::page("queue_monitor", m.organizations, page_size, |o| {
        o.queue.organization_id
    });
    Ok(pb::GetQueueMonitorResponse {
        organizations: orgs.iter().map(convert::organization_queue).collect(),
        next_page_token,
        totals: Some(totals),
        workers,
        throughput,
    })
}

pub async fn list_workers(
    app: &App,
    _call: Call,
    _req: pb::ListWorkersRequest,
) -> Result<pb::ListWorkersResponse, ApiError> {
    let workers = monitor::workers(app).await?;
    Ok(pb::ListWorkersResponse {
        workers: workers.iter().map(convert::live_worker).collect(),
    })
}
