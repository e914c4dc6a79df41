//! The resumable upload: a file sent in parts over unary calls (grpc-web
//! cannot stream from the client). Each part is stored as an object of its
//! own and committed by moving the upload's committed offset in the
//! database, so any replica takes any part and a restarted process loses
//! nothing. Completing it feeds the parts, in order, to the same pipeline
//! as the streaming upload ([`super::ingest`]).

use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;
use passare_imports_domain::catalog;
use passare_imports_domain::file::decode::Encoding;
use passare_imports_storage::FileStore;
use passare_imports_store::entities::upload_parts;
use passare_imports_store::entities::uploads::Model as Upload;
use passare_imports_store::uploads::{self as records, Committed, NewUpload};
use passare_imports_store::{Db, PgConnection, StoreError, UploadState, files};
use uuid::Uuid;

use super::pipeline::draft_taking_a_file;
use super::{FileUpload, ReadOptions, ingest};
use crate::app::App;
use crate::error::{ApiError, too_many_files};
use crate::history;
use crate::identity::Caller;
use crate::views::FileView;

/// Begins a resumable upload into a draft import. A retry with the same
/// `request_id` and the same parameters returns the first call's upload;
/// other parameters are ALREADY_EXISTS.
pub async fn create(
    app: &App,
    who: &Caller,
    upload: FileUpload,
    request_id: Option<Uuid>,
    call_id: &str,
) -> Result<Upload, ApiError> {
    upload.check(app, "header")?;
    let mut conn = app.db.conn().await?;
    let import = draft_taking_a_file(app, &mut conn, who, upload.import_id).await?;
    let max_files = app.config.max_files_per_import;
    let files = files::count(&mut conn, import.id).await?;
    if files + records::running_of_import(&mut conn, import.id).await? >= max_files {
        return Err(too_many_files(max_files));
    }
    if records::running_of_user(&mut conn, &who.id).await? >= app.config.max_uploads_per_user as u64
    {
        return Err(ApiError::ResourceExhausted(format!(
            "you already run {} uploads, the most one user may (IMPORTS_MAX_UPLOADS_PER_USER); complete or abort one",
            app.config.max_uploads_per_user
        )));
    }
    let new = NewUpload {
        import_id: import.id,
        organization_id: import.organization_id,
        request_id,
        created_by: who.requester(),
        file_name: upload.file_name.trim().to_string(),
        import_type: upload.def.key.to_string(),
        declared_size: upload.declared_size as i64,
        declared_sha256: upload.declared_sha256.as_ref().map(|s| s.to_lowercase()),
        reading: reading_json(&upload.reading),
        expires_at: expiry(app),
    };
    let (record, created) = records::create(&mut conn, new.clone()).await?;
    if !created {
        same_request(&record, &new)?;
        return Ok(record);
    }
    tracing::info!(upload_id = %record.id, import_id = %import.id, bytes = record.declared_size, "resumable upload begun");
    let details = serde_json::json!({
        "upload_id": record.id,
        "file_name": record.file_name,
        "import_type": record.import_type,
        "declared_size_bytes": record.declared_size,
    });
    history::audit_import(
        app,
        who,
        call_id,
        "create_upload",
        (import.organization_id, import.id),
        details,
    )
    .await;
    Ok(record)
}

/// When an upload touched now expires.
fn expiry(app: &App) -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(app.config.upload_expire_secs as i64)
}

/// Refuses a reused request id whose parameters differ from the first call's.
fn same_request(first: &Upload, again: &NewUpload) -> Result<(), ApiError> {
    let upload = format!("upload {}", first.id);
    crate::error::same_request(
        &upload,
        &[
            ("header.import_id", first.import_id == again.import_id),
            ("header.file_name", first.file_name == again.file_name),
            ("header.import_type", first.import_type == again.import_type),
            (
                "header.declared_size_bytes",
                first.declared_size == again.declared_size,
            ),
            (
                "declared_sha256",
                first.declared_sha256 == again.declared_sha256,
            ),
            ("header", first.reading == again.reading),
        ],
    )
}

/// The upload as `who` may see it: another organization's upload is
/// NOT_FOUND exactly like one that does not exist. An active upload past its
/// time is expired on the spot.
async fn visible(
    app: &App,
    conn: &mut PgConnection,
    who: &Caller,
    id: Uuid,
) -> Result<Upload, ApiError> {
    let upload = records::find(conn, id)
        .await?
        .filter(|u| who.sees(u.organization_id))
        .ok_or_else(|| ApiError::not_found("upload", id))?;
    if upload.state == UploadState::Active && upload.expires_at < Utc::now() {
        expire(app.files.as_ref(), conn, &upload).await?;
        return records::find(conn, id)
            .await?
            .ok_or_else(|| ApiError::not_found("upload", id));
    }
    Ok(upload)
}

/// The upload as it stands (its committed offset first of all).
pub async fn get(app: &App, who: &Caller, id: Uuid) -> Result<Upload, ApiError> {
    visible(app, &mut *app.db.conn().await?, who, id).await
}

/// Why an upload that is not active takes no part and cannot complete.
fn ended(upload: &Upload) -> ApiError {
    let (reason, what) = match upload.state {
        UploadState::Completed => ("UPLOAD_COMPLETED", "was completed"),
        UploadState::Aborted => ("UPLOAD_ABORTED", "was aborted"),
        UploadState::Expired => (
            "UPLOAD_EXPIRED",
            "expired: it received nothing for too long",
        ),
        UploadState::Completing => ("UPLOAD_COMPLETING", "is being completed"),
        UploadState::Active => ("UPLOAD_ACTIVE", "is still receiving parts"),
    };
    let why = upload
        .end_reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    ApiError::precondition(
        reason,
        format!("upload {} {what}{why}", upload.id),
        "STATE",
        format!("uploads/{}", upload.id),
        format!("upload is {}", upload.state),
    )
}

/// A part that does not start where the upload stands.
fn offset_mismatch(upload_id: Uuid, offset: i64, committed: i64) -> ApiError {
    ApiError::FailedPrecondition {
        reason: "UPLOAD_OFFSET_MISMATCH",
        message: format!(
            "the part starts at byte {offset} but the upload has {committed} bytes committed: send from byte {committed}"
        ),
        preconditions: vec![crate::error::Precondition {
            kind: "OFFSET".into(),
            subject: format!("uploads/{upload_id}"),
            description: format!("committed_bytes is {committed}"),
        }],
        violations: vec![],
        info: vec![("committed_bytes", committed.to_string())],
    }
}

/// Stores one part at `offset`; returns the committed offset after it. A
/// part already committed is acknowledged without being written again; a
/// part that overlaps the committed offset adds only its new bytes; a part
/// past it (a gap) is refused with the committed offset.
pub async fn write_part(
    app: &App,
    who: &Caller,
    id: Uuid,
    offset: i64,
    data: Bytes,
) -> Result<i64, ApiError> {
    let max = app.config.upload_part_bytes;
    if data.is_empty() || data.len() as u64 > max {
        return Err(ApiError::invalid(
            "data",
            format!("a part holds 1 to {max} bytes (the upload's part_size_bytes)"),
        ));
    }
    if offset < 0 {
        return Err(ApiError::invalid("offset", "must not be negative"));
    }
    let mut conn = app.db.conn().await?;
    let upload = visible(app, &mut conn, who, id).await?;
    if upload.state != UploadState::Active {
        return Err(ended(&upload));
    }
    let committed = upload.committed_bytes;
    let end = offset + data.len() as i64;
    if end <= committed {
        return Ok(committed);
    }
    if offset > committed {
        return Err(offset_mismatch(id, offset, committed));
    }
    if end > upload.declared_size {
        return Err(ApiError::invalid(
            "data",
            format!(
                "the part ends at byte {end}, past the {} bytes declared",
                upload.declared_size
            ),
        ));
    }
    let tail = data.slice((committed - offset) as usize..);
    let key = format!("uploads/{id}/{committed:020}-{}", Uuid::now_v7().simple());
    let mut writer = app.files.create(&key).await?;
    writer.write(&tail).await?;
    writer.commit().await?;
    let outcome = records::commit_part(
        &mut conn,
        id,
        committed,
        tail.len() as i64,
        &key,
        expiry(app),
    )
    .await;
    match outcome {
        Ok(Committed::Now(now)) => {
            metrics::counter!(crate::observability::names::UPLOAD_BYTES, "route" => "resumable")
                .increment(tail.len() as u64);
            Ok(now)
        }
        Ok(Committed::Moved(now)) => {
            unused_part(app, &key).await;
            if now >= end {
                Ok(now)
            } else {
                Err(offset_mismatch(id, committed, now))
            }
        }
        Ok(Committed::Ended(_)) => {
            unused_part(app, &key).await;
            let upload = records::find(&mut conn, id)
                .await?
                .ok_or_else(|| ApiError::not_found("upload", id))?;
            Err(ended(&upload))
        }
        Err(e) => {
            unused_part(app, &key).await;
            Err(e.into())
        }
    }
}

/// Deletes a stored part that was not committed (the orphan sweep collects
/// it if this fails).
async fn unused_part(app: &App, key: &str) {
    if let Err(e) = app.files.delete(key).await {
        tracing::warn!(key, error = %e, "deleting an unused upload part failed");
    }
}

/// Completes an upload: verifies its size, then stores, scans and attaches
/// the file through the upload pipeline (which checks the declared sha256
/// before attaching anything). Completing a completed upload returns its file.
pub async fn complete(
    app: &App,
    who: &Caller,
    id: Uuid,
    call_id: &str,
) -> Result<(FileView, Upload), ApiError> {
    let mut conn = app.db.conn().await?;
    let upload = visible(app, &mut conn, who, id).await?;
    if upload.state == UploadState::Completed {
        return completed_file(&mut conn, upload).await;
    }
    if upload.state != UploadState::Active {
        return Err(ended(&upload));
    }
    if upload.committed_bytes != upload.declared_size {
        return Err(ApiError::FailedPrecondition {
            reason: "UPLOAD_INCOMPLETE",
            message: format!(
                "the upload has {} of its {} bytes; send the rest first",
                upload.committed_bytes, upload.declared_size
            ),
            preconditions: vec![crate::error::Precondition {
                kind: "OFFSET".into(),
                subject: format!("uploads/{id}"),
                description: format!("committed_bytes is {}", upload.committed_bytes),
            }],
            violations: vec![],
            info: vec![("committed_bytes", upload.committed_bytes.to_string())],
        });
    }
    // The upload limits are taken before the upload is marked completing:
    // a refusal (RESOURCE_EXHAUSTED) leaves it active, to be completed again.
    let running = app.limits.uploads.start(who)?;
    let (now, moved) = records::transition(
        &mut conn,
        id,
        &[UploadState::Active],
        UploadState::Completing,
        None,
    )
    .await?;
    if !moved {
        let now = now.ok_or_else(|| ApiError::not_found("upload", id))?;
        return Err(ended(&now));
    }
    drop(conn);
    // The completion runs to its end on its own task: a caller that goes
    // away (a page reloaded while its last call was in flight) does not
    // cut it half-way; calling CompleteUpload again returns the file once
    // it is there (UPLOAD_COMPLETING meanwhile).
    let (app, who, call_id) = (app.clone(), who.clone(), call_id.to_string());
    let completion = tokio::spawn(async move {
        let _running = running;
        let mut conn = app.db.conn().await?;
        let result = alive(&app, id, attach(&app, &mut conn, &who, &upload, &call_id)).await;
        finish_completion(&app, &mut conn, &upload, result).await
    });
    completion
        .await
        .map_err(|e| ApiError::Internal(format!("completing upload {id}: {e}")))?
}

/// How often a completion shows it is alive.
const COMPLETION_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);

/// A completion untouched this long lost its process: the workers' sweep
/// expires the upload (see [`expire_due`]).
pub const STALE_COMPLETION: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs a completion, touching the upload every [`COMPLETION_HEARTBEAT`] so
/// that however long the file takes to store and scan, the sweep does not
/// take it for one whose process died.
async fn alive<F: std::future::Future>(app: &App, id: Uuid, completion: F) -> F::Output {
    tokio::pin!(completion);
    let mut beat = tokio::time::interval(COMPLETION_HEARTBEAT);
    beat.tick().await;
    loop {
        tokio::select! {
            out = &mut completion => return out,
            _ = beat.tick() => {
                let touched = match app.db.conn().await {
                    Ok(mut conn) => records::touch_completing(&mut conn, id).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = touched {
                    tracing::warn!(upload_id = %id, error = %e, "touching a completing upload failed");
                }
            }
        }
    }
}

/// Feeds the stored parts, in order, to the upload pipeline.
async fn attach(
    app: &App,
    conn: &mut PgConnection,
    who: &Caller,
    upload: &Upload,
    call_id: &str,
) -> Result<FileView, ApiError> {
    let def = catalog::find(&upload.import_type).ok_or_else(|| {
        ApiError::Internal(format!(
            "upload {} has unknown type {}",
            upload.id, upload.import_type
        ))
    })?;
    let file = FileUpload {
        import_id: upload.import_id,
        file_name: upload.file_name.clone(),
        def,
        declared_size: upload.declared_size as u64,
        declared_sha256: upload.declared_sha256.clone(),
        reading: reading_from_json(&upload.reading)?,
        profile: None,
    };
    let parts = records::parts(conn, upload.id).await?;
    let store = app.files.clone();
    let bytes = futures::stream::iter(parts).then(move |part| {
        let store = store.clone();
        async move {
            let data = store
                .read_range(&part.storage_key, 0, part.length as u64)
                .await?;
            Ok::<Bytes, ApiError>(data)
        }
    });
    ingest(app, who, file, Box::pin(bytes), call_id).await
}

/// Settles a completion: the upload becomes the file and its parts go; a
/// refusal (checksum, a started import, a limit) aborts it with the reason;
/// a transient failure gives it back to its client to complete again.
async fn finish_completion(
    app: &App,
    conn: &mut PgConnection,
    upload: &Upload,
    result: Result<FileView, ApiError>,
) -> Result<(FileView, Upload), ApiError> {
    let parts = records::parts(conn, upload.id).await?;
    match result {
        Ok(view) => {
            records::completed(conn, upload.id, view.file.id).await?;
            delete_parts(app.files.as_ref(), &parts).await;
            tracing::info!(upload_id = %upload.id, file_id = %view.file.id, "resumable upload completed");
            let now = records::find(conn, upload.id)
                .await?
                .ok_or_else(|| ApiError::not_found("upload", upload.id))?;
            Ok((view, now))
        }
        Err(
            e
            @ (ApiError::Unavailable(_) | ApiError::ResourceExhausted(_) | ApiError::Quota { .. }),
        ) => {
            records::transition(
                conn,
                upload.id,
                &[UploadState::Completing],
                UploadState::Active,
                None,
            )
            .await?;
            Err(e)
        }
        Err(e) => {
            let reason = e.public_message();
            records::transition(
                conn,
                upload.id,
                &[UploadState::Completing],
                UploadState::Aborted,
                Some(&reason),
            )
            .await?;
            delete_parts(app.files.as_ref(), &parts).await;
            records::forget_parts(conn, upload.id).await?;
            Err(e)
        }
    }
}

/// The file a completed upload became.
async fn completed_file(
    conn: &mut PgConnection,
    upload: Upload,
) -> Result<(FileView, Upload), ApiError> {
    let file_id = upload.file_id.ok_or_else(|| {
        ApiError::Internal(format!("upload {} completed without a file", upload.id))
    })?;
    let file = files::of_import(conn, upload.import_id)
        .await?
        .into_iter()
        .find(|f| f.id == file_id)
        .ok_or_else(|| ApiError::not_found("file", file_id))?;
    let mut views = crate::views::file_views(conn, vec![file]).await?;
    let view = views
        .pop()
        .ok_or_else(|| ApiError::not_found("file", file_id))?;
    Ok((view, upload))
}

/// Abandons an upload and deletes its parts; aborting an aborted or
/// expired upload changes nothing.
pub async fn abort(app: &App, who: &Caller, id: Uuid, call_id: &str) -> Result<Upload, ApiError> {
    let mut conn = app.db.conn().await?;
    let upload = visible(app, &mut conn, who, id).await?;
    match upload.state {
        UploadState::Aborted | UploadState::Expired => return Ok(upload),
        UploadState::Active => {}
        _ => return Err(ended(&upload)),
    }
    let reason = "aborted by its client";
    let (now, moved) = records::transition(
        &mut conn,
        id,
        &[UploadState::Active],
        UploadState::Aborted,
        Some(reason),
    )
    .await?;
    let now = now.ok_or_else(|| ApiError::not_found("upload", id))?;
    if !moved {
        return match now.state {
            UploadState::Aborted | UploadState::Expired => Ok(now),
            _ => Err(ended(&now)),
        };
    }
    let parts = records::parts(&mut conn, id).await?;
    delete_parts(app.files.as_ref(), &parts).await;
    records::forget_parts(&mut conn, id).await?;
    let details = serde_json::json!({ "upload_id": id, "committed_bytes": now.committed_bytes });
    history::audit_import(
        app,
        who,
        call_id,
        "abort_upload",
        (now.organization_id, now.import_id),
        details,
    )
    .await;
    Ok(now)
}

/// Ends an upload whose time ran out, and deletes its parts.
async fn expire(
    files: &dyn FileStore,
    conn: &mut PgConnection,
    upload: &Upload,
) -> Result<(), StoreError> {
    let from = [UploadState::Active, UploadState::Completing];
    let (_, moved) =
        records::transition(conn, upload.id, &from, UploadState::Expired, None).await?;
    if moved {
        let parts = records::parts(conn, upload.id).await?;
        delete_parts(files, &parts).await;
        records::forget_parts(conn, upload.id).await?;
        tracing::info!(upload_id = %upload.id, committed = upload.committed_bytes, "resumable upload expired");
    }
    Ok(())
}

/// Expires every upload whose time ran out, and every completion whose
/// process died (untouched for [`STALE_COMPLETION`]); returns how many.
pub async fn expire_due(db: &Db, files: &dyn FileStore) -> Result<usize, StoreError> {
    let mut conn = db.conn().await?;
    let now = Utc::now();
    let stale = now - chrono::Duration::from_std(STALE_COMPLETION).unwrap_or_default();
    let mut expired = 0;
    loop {
        let due = records::due_to_expire(&mut conn, now, stale, 100).await?;
        if due.is_empty() {
            return Ok(expired);
        }
        for upload in &due {
            expire(files, &mut conn, upload).await?;
            expired += 1;
        }
    }
}

async fn delete_parts(files: &dyn FileStore, parts: &[upload_parts::Model]) {
    for p in parts {
        if let Err(e) = files.delete(&p.storage_key).await {
            tracing::warn!(key = %p.storage_key, error = %e, "deleting an upload part failed; the orphan sweep will");
        }
    }
}

/// How a file is read, as an upload record keeps it.
fn reading_json(r: &ReadOptions) -> serde_json::Value {
    serde_json::json!({
        "encoding": r.encoding.map(|e| e.as_str()),
        "sheet": r.sheet,
        "delimiter": r.delimiter.map(|d| (d as char).to_string()),
        "mapping": r.mapping,
        "profile_id": r.profile_id,
    })
}

fn reading_from_json(v: &serde_json::Value) -> Result<ReadOptions, ApiError> {
    let corrupt = |what: &str| ApiError::Internal(format!("an upload's reading options: {what}"));
    let encoding = match v["encoding"].as_str() {
        None => None,
        Some(name) => Some(Encoding::parse(name).ok_or_else(|| corrupt(name))?),
    };
    Ok(ReadOptions {
        encoding,
        sheet: v["sheet"].as_str().map(str::to_string),
        delimiter: v["delimiter"].as_str().and_then(|d| d.bytes().next()),
        mapping: serde_json::from_value(v["mapping"].clone())
            .map_err(|e| corrupt(&e.to_string()))?,
        profile_id: v["profile_id"].as_str().and_then(|id| id.parse().ok()),
    })
}
