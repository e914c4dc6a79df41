//! Reading imports and the catalog: GetImport, ListImports, WatchImport
//! (server streaming), ListImportTypes and GetImportTemplate.

use std::time::Duration;

use passare_imports_app::identity::Caller;
use passare_imports_app::limits::Slot;
use passare_imports_app::{Access, ApiError, App, history, imports, views};
use passare_imports_domain::catalog::{self, CATALOG};
use passare_imports_proto::v1 as pb;
use passare_imports_store::Timestamp;
use passare_imports_store::imports::ImportFilter;
use passare_imports_store::states::ImportState;
use tonic::{Request, Response};
use uuid::Uuid;

use crate::auth::{Call, authorize};
use crate::convert;
use crate::feed::{Feed, Messages, feed};
use crate::paging;
use crate::status::status;

pub async fn get_import(
    app: &App,
    call: Call,
    req: pb::GetImportRequest,
) -> Result<pb::GetImportResponse, ApiError> {
    let id = convert::uuid("import_id", &req.import_id)?;
    let view = views::visible(&mut *app.db.conn().await?, &call.who, id).await?;
    Ok(pb::GetImportResponse {
        import: Some(convert::shown(&call.who, &view)),
    })
}

/// Most imports in one ListImports page: each carries its files, first row
/// errors and timeline, and the page must stay well under the message size.
pub const MAX_IMPORTS_PAGE: u64 = 100;

pub async fn list_imports(
    app: &App,
    call: Call,
    req: pb::ListImportsRequest,
) -> Result<pb::ListImportsResponse, ApiError> {
    let mut conn = app.db.read_conn().await?;
    let asked = convert::optional_org(&req.organization_id)?;
    let org = history::visible_org(&mut conn, &call.who, asked).await?;
    let page_size = paging::page_size(req.page_size, 50, MAX_IMPORTS_PAGE)?;
    let cursor: Option<(Timestamp, Uuid)> = paging::decode("imports", &req.page_token)?;
    let filter = import_filter(&req, org)?;
    if !call.who.is_staff() && org.is_none() {
        // A user of no organization sees no import.
        return Ok(pb::ListImportsResponse::default());
    }
    let rows = imports::list(&mut conn, &filter, cursor, page_size + 1).await?;
    let (rows, next_page_token) = paging::page("imports", rows, page_size, |v| {
        (v.import.created_at, v.import.id)
    });
    Ok(pb::ListImportsResponse {
        imports: rows.iter().map(|v| convert::shown(&call.who, v)).collect(),
        next_page_token,
    })
}

/// The history filter of a ListImports request.
fn import_filter(req: &pb::ListImportsRequest, org: Option<i64>) -> Result<ImportFilter, ApiError> {
    let state = pb::ImportState::try_from(req.state)
        .map_err(|_| ApiError::invalid("state", format!("{} is not an import state", req.state)))?;
    let (states, paused) = match state {
        pb::ImportState::Unspecified => (vec![], None),
        pb::ImportState::Paused => (vec![ImportState::Queued, ImportState::Running], Some(true)),
        pb::ImportState::Queued => (vec![ImportState::Queued], Some(false)),
        pb::ImportState::Running => (vec![ImportState::Running], Some(false)),
        other => (vec![convert::import_state_from_pb(other)?], None),
    };
    let import_type = match req.import_type.trim() {
        "" => None,
        key => Some(
            convert::import_type_named("import_type", key)?
                .key
                .to_string(),
        ),
    };
    Ok(ImportFilter {
        organization_id: org,
        import_type,
        states,
        paused,
        requested_by: Some(req.requested_by.trim().to_string()).filter(|r| !r.is_empty()),
        created_from: req
            .create_time_after
            .as_ref()
            .map(convert::from_timestamp)
            .transpose()?,
        created_before: req
            .create_time_before
            .as_ref()
            .map(convert::from_timestamp)
            .transpose()?,
    })
}

pub type WatchStream = Messages<pb::WatchImportResponse>;

pub async fn watch_import(
    app: &App,
    request: Request<pb::WatchImportRequest>,
) -> Result<Response<WatchStream>, ApiError> {
    let who = authorize(&request, Access::Read)?;
    let slot = app.limits.watches.start(&who)?;
    let id = convert::uuid("import_id", &request.get_ref().import_id)?;
    // Subscribe before the snapshot so no change falls between the two.
    let changes = app.events.subscribe();
    let first = views::visible(&mut *app.db.read_conn().await?, &who, id).await?;
    let first = convert::shown(&who, &first);
    let stall = Duration::from_secs(app.config.stream_stall_secs);
    let (out, stream) = feed(16, stall);
    let watch = Watch {
        app: app.clone(),
        who,
        id,
        out,
        _slot: slot,
    };
    tokio::spawn(watch.run(first, changes));
    Ok(Response::new(stream))
}

/// One watch stream: re-reads the import on every change notification (and
/// on a timer), and sends an event when what the caller sees changed. It
/// ends when the import does, when the client leaves or stops reading, or
/// after `IMPORTS_WATCH_MAX_SECS` (UNAVAILABLE, `WATCH_ENDED`: watch again).
struct Watch {
    app: App,
    who: Caller,
    id: Uuid,
    out: Feed<pb::WatchImportResponse>,
    /// Counted against the caller while the stream is open.
    _slot: Slot,
}

impl Watch {
    async fn run(
        mut self,
        mut last: pb::Import,
        mut changes: tokio::sync::broadcast::Receiver<passare_imports_app::events::ImportChanged>,
    ) {
        let snapshot = pb::WatchImportResponse {
            kind: pb::WatchEventKind::Snapshot as i32,
            import: Some(last.clone()),
        };
        if !self.out.send(Ok(snapshot)).await || terminal(&last) {
            return;
        }
        let poll = Duration::from_millis(self.app.config.watch_poll_ms.max(50));
        let max = Duration::from_secs(self.app.config.watch_max_secs);
        let ends = tokio::time::sleep(max);
        tokio::pin!(ends);
        let mut tick = tokio::time::interval(poll);
        loop {
            tokio::select! {
                _ = self.out.closed() => return,
                _ = &mut ends => {
                    let ended = ApiError::WatchEnded(format!(
                        "the watch stream reached its longest duration, {}s (IMPORTS_WATCH_MAX_SECS); watch again",
                        max.as_secs()
                    ));
                    self.out.send(Err(status(ended))).await;
                    return;
                }
                _ = tick.tick() => {}
                changed = changes.recv() => match changed {
                    Ok(Some(other)) if other != self.id => continue,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
            let now = match self.read().await {
                Ok(Some(now)) => now,
                Ok(None) => continue,
                Err(e) => {
                    self.out.send(Err(status(e))).await;
                    return;
                }
            };
            if now == last {
                continue;
            }
            let kind = event_kind(&last, &now);
            let done = terminal(&now);
            last = now.clone();
            let event = pb::WatchImportResponse {
                kind: kind as i32,
                import: Some(now),
            };
            if !self.out.send(Ok(event)).await || done {
                return;
            }
        }
    }

    /// The import now; `None` when the database could not be read this
    /// time (the next tick tries again).
    async fn read(&self) -> Result<Option<pb::Import>, ApiError> {
        let mut conn = match self.app.db.read_conn().await {
            Ok(conn) => conn,
            Err(e) if e.is_transient() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match views::load(&mut conn, self.id).await {
            Ok(Some(v)) => Ok(Some(convert::shown(&self.who, &v))),
            Ok(None) => Err(ApiError::not_found("import", self.id)),
            Err(e) if e.is_transient() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn terminal(i: &pb::Import) -> bool {
    matches!(
        pb::ImportState::try_from(i.state),
        Ok(pb::ImportState::Completed
            | pb::ImportState::CompletedWithErrors
            | pb::ImportState::Failed
            | pb::ImportState::Stopped)
    )
}

/// STATE_CHANGED when the import's or a file's state changed, else PROGRESS.
fn event_kind(last: &pb::Import, now: &pb::Import) -> pb::WatchEventKind {
    let state_changed = now.state != last.state
        || now.files.len() != last.files.len()
        || now
            .files
            .iter()
            .zip(&last.files)
            .any(|(a, b)| a.state != b.state);
    if state_changed {
        pb::WatchEventKind::StateChanged
    } else {
        pb::WatchEventKind::Progress
    }
}

pub async fn list_import_types(
    _app: &App,
    _call: Call,
    _req: pb::ListImportTypesRequest,
) -> Result<pb::ListImportTypesResponse, ApiError> {
    Ok(pb::ListImportTypesResponse {
        import_types: CATALOG.iter().map(|t| convert::import_type(t)).collect(),
    })
}

pub async fn get_import_template(
    _app: &App,
    _call: Call,
    req: pb::GetImportTemplateRequest,
) -> Result<pb::GetImportTemplateResponse, ApiError> {
    let def = convert::import_type_named("import_type", &req.import_type)?;
    Ok(pb::GetImportTemplateResponse {
        file_name: format!("{}.csv", def.key),
        content_type: "text/csv; charset=utf-8".into(),
        content: catalog::template_csv(def).into_bytes(),
    })
}
