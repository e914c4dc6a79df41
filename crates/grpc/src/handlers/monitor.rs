//! The queue monitor: GetQueueMonitor, ListWorkers and ListDeadLetters
//! (staff only), and the dead letters' requeue and discard (super admins
//! and developers).

use passare_imports_app::{ApiError, App, dead_letters, monitor};
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

pub async fn list_dead_letters(
    app: &App,
    _call: Call,
    req: pb::ListDeadLettersRequest,
) -> Result<pb::ListDeadLettersResponse, ApiError> {
    let page_size = paging::page_size(req.page_size, 50, 500)?;
    let org = convert::optional_org(&req.organization_id)?;
    let before: Option<i64> = paging::decode("dead_letters", &req.page_token)?;
    let mut conn = app.db.read_conn().await?;
    let rows = passare_imports_store::dead_letters::list(
        &mut conn,
        org,
        req.include_resolved,
        before,
        page_size + 1,
    )
    .await?;
    let (rows, next_page_token) = paging::page("dead_letters", rows, page_size, |d| d.chunk_id);
    Ok(pb::ListDeadLettersResponse {
        dead_letters: rows.iter().map(convert::dead_letter).collect(),
        next_page_token,
    })
}

pub async fn requeue_dead_letters(
    app: &App,
    call: Call,
    req: pb::RequeueDeadLettersRequest,
) -> Result<pb::RequeueDeadLettersResponse, ApiError> {
    let done = dead_letters::requeue(app, &call.who, &req.chunk_ids, &call.id).await?;
    Ok(pb::RequeueDeadLettersResponse {
        requeued_chunk_ids: done.requeued,
        already_resolved_chunk_ids: done.already_resolved,
        imports: done.imports.iter().map(convert::import).collect(),
    })
}

pub async fn discard_dead_letters(
    app: &App,
    call: Call,
    req: pb::DiscardDeadLettersRequest,
) -> Result<pb::DiscardDeadLettersResponse, ApiError> {
    let (discarded, already) =
        dead_letters::discard(app, &call.who, &req.chunk_ids, &req.reason, &call.id).await?;
    Ok(pb::DiscardDeadLettersResponse {
        discarded_chunk_ids: discarded,
        already_resolved_chunk_ids: already,
    })
}
