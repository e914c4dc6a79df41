//! The upload pipeline: checks the file against its draft import and the
//! limits, stores the bytes as they arrive while hashing and scanning them,
//! converts what is not UTF-8 text, and attaches the file.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use passare_imports_domain::file::scan::{ScanOptions, ScanReport, scan};
use passare_imports_store::files::{self, Added, NewFile};
use passare_imports_store::states::{FileState, ImportState};
use passare_imports_store::{PgConnection, imports};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::FileUpload;
use super::convert::{ReadFile, read_as_text};
use crate::app::App;
use crate::error::{ApiError, not_a_draft, too_many_files};
use crate::identity::Caller;
use crate::views::{self, FileView};

/// Bytes of an upload kept to tell its format and encoding.
pub(super) const HEAD_BYTES: usize = 64 * 1024;

/// A draft import that can take one more file, as the caller may see it.
pub(crate) async fn draft_taking_a_file(
    app: &App,
    conn: &mut PgConnection,
    who: &Caller,
    import_id: Uuid,
) -> Result<passare_imports_store::entities::imports::Model, ApiError> {
    let import = imports::find(conn, import_id)
        .await?
        .filter(|i| who.sees(i.organization_id))
        .ok_or_else(|| ApiError::not_found("import", import_id))?;
    if import.state != ImportState::Draft {
        return Err(not_a_draft(
            import.state,
            "files can be added only to a draft import",
        ));
    }
    let max_files = app.config.max_files_per_import;
    if files::count(conn, import_id).await? >= max_files {
        return Err(too_many_files(max_files));
    }
    Ok(import)
}

/// The bytes of an upload as stored: where, how many, their sha256 and the
/// first bytes (to sniff the format).
struct Stored {
    key: String,
    size: u64,
    sha256: String,
    head: Vec<u8>,
}

/// Stores, scans and attaches one file. The caller holds the upload's
/// [`Slot`](crate::limits::Slot) while this runs.
pub async fn ingest<S>(
    app: &App,
    who: &Caller,
    mut upload: FileUpload,
    bytes: S,
    request_id: &str,
) -> Result<FileView, ApiError>
where
    S: Stream<Item = Result<Bytes, ApiError>> + Unpin + Send,
{
    let import = prepare(app, who, &mut upload).await?;
    let file_id = Uuid::now_v7();
    let key = format!("imports/{}/{file_id}", upload.import_id);
    let (stored, report) = store_and_scan(app, &upload, key, bytes).await?;
    if let Some(declared) = &upload.declared_sha256
        && !declared.eq_ignore_ascii_case(&stored.sha256)
    {
        delete_quietly(app, &[Some(stored.key.clone())]).await;
        return Err(ApiError::InvalidArgument {
            reason: "CHECKSUM_MISMATCH",
            message: format!(
                "the file's SHA-256 is {}, not the {declared} declared; nothing was attached: send the file again",
                stored.sha256
            ),
            violations: vec![crate::error::FieldViolation {
                field: "declared_sha256".into(),
                description: format!("the bytes received hash to {}", stored.sha256),
            }],
        });
    }
    let read = match read_as_text(app, &stored.key, &stored.head, report, &upload).await {
        Ok(read) => read,
        Err(e) => {
            delete_quietly(app, &[Some(stored.key.clone())]).await;
            return Err(e);
        }
    };
    let keys = [Some(stored.key.clone()), read.data_key.clone()];
    let max_rows = app.config.max_rows_per_file;
    if read.report.row_count > max_rows {
        delete_quietly(app, &keys).await;
        return Err(ApiError::invalid(
            "chunk",
            format!(
                "the file has {} rows; a file may hold at most {max_rows} (IMPORTS_MAX_ROWS_PER_FILE): split it into several files",
                read.report.row_count
            ),
        ));
    }
    let new = new_file(file_id, &import, &upload, &stored, read);
    // No connection is held while the bytes arrive and are read: a slow
    // upload must not keep one from everybody else.
    let mut conn = app.db.conn().await?;
    let model = match files::add(
        &mut conn,
        new,
        &who.requester(),
        app.config.max_files_per_import,
    )
    .await?
    {
        Added::File(model) => *model,
        refused => {
            delete_quietly(app, &keys).await;
            return Err(match refused {
                Added::TooMany(_) => too_many_files(app.config.max_files_per_import),
                _ => not_a_draft("queued", "files can be added only to a draft import"),
            });
        }
    };
    tracing::info!(
        import_id = %model.import_id, file_id = %model.id, org_id = model.organization_id,
        bytes = model.size_bytes, rows = model.row_count, valid = model.state == FileState::Ready,
        "file uploaded"
    );
    let details = serde_json::json!({
        "file_id": model.id,
        "file_name": model.file_name,
        "import_type": model.import_type,
        "size_bytes": model.size_bytes,
        "sha256": model.sha256,
        "rows": model.row_count,
        "state": model.state,
    });
    crate::history::audit_import(
        app,
        who,
        request_id,
        "upload_file",
        (model.organization_id, model.import_id),
        details,
    )
    .await;
    let mut views = views::file_views(&mut conn, vec![model]).await?;
    let view = views
        .pop()
        .ok_or_else(|| ApiError::Internal("the uploaded file vanished".into()))?;
    Ok(with_suggestions(app, who, view).await)
}

/// The draft a file goes to, with the profile it is read with resolved.
async fn prepare(
    app: &App,
    who: &Caller,
    upload: &mut FileUpload,
) -> Result<passare_imports_store::entities::imports::Model, ApiError> {
    let import =
        draft_taking_a_file(app, &mut *app.db.conn().await?, who, upload.import_id).await?;
    let wanted = (upload.reading.profile_id, upload.def);
    upload.profile = crate::profiles::for_upload(app, &import, wanted).await?;
    Ok(import)
}

/// The view of a file uploaded without a profile, with the profiles its
/// header matches. Suggestions help; the file is attached either way.
async fn with_suggestions(app: &App, who: &Caller, mut view: FileView) -> FileView {
    match crate::profiles::suggest_for_file(app, who, &view.file).await {
        Ok(found) => view.suggestions = found,
        Err(e) => tracing::warn!(file_id = %view.file.id, error = %e, "suggesting profiles failed"),
    }
    view
}

/// The file record of what was stored and read.
fn new_file(
    id: Uuid,
    import: &passare_imports_store::entities::imports::Model,
    upload: &FileUpload,
    stored: &Stored,
    read: ReadFile,
) -> NewFile {
    let report = read.report;
    NewFile {
        id,
        import_id: import.id,
        organization_id: import.organization_id,
        import_type: upload.def.key.to_string(),
        file_name: upload.file_name.trim().to_string(),
        storage_key: stored.key.clone(),
        size_bytes: stored.size as i64,
        sha256: stored.sha256.clone(),
        format: report.format.as_str().to_string(),
        delimiter: (report.delimiter as char).to_string(),
        headers: report.headers.clone(),
        row_count: report.row_count as i64,
        chunk_plan: report.chunks.clone(),
        state: if report.is_valid() {
            FileState::Ready
        } else {
            FileState::Invalid
        },
        problems: serde_json::to_value(&report.problems).unwrap_or_default(),
        encoding: read.encoding,
        sheet_name: read.sheet,
        data_key: read.data_key,
        column_mapping: upload.reading.mapping.clone(),
        load_order: upload.def.load_rank(),
        profile: upload.profile.clone(),
    }
}

/// Writes the bytes to storage as they arrive, hashing them and feeding the
/// structural scan (on a blocking thread), so the file is stored and
/// scanned in one pass. The size must match the declaration.
async fn store_and_scan<S>(
    app: &App,
    upload: &FileUpload,
    key: String,
    mut bytes: S,
) -> Result<(Stored, ScanReport), ApiError>
where
    S: Stream<Item = Result<Bytes, ApiError>> + Unpin + Send,
{
    let mut writer = app.files.create(&key).await?;
    let (scan_tx, scan_rx) = mpsc::channel::<Bytes>(16);
    let (def, chunk_rows) = (upload.def, app.config.chunk_rows);
    let ((explicit, provided), delimiter) = (upload.scan_mapping(), upload.reading.delimiter);
    let scanner = tokio::task::spawn_blocking(move || {
        let options = ScanOptions {
            provided: &provided,
            explicit: &explicit,
            delimiter,
            chunk_rows,
        };
        scan(
            std::io::BufReader::new(ChannelReader::new(scan_rx)),
            def,
            &options,
        )
    });
    let mut head: Vec<u8> = Vec::with_capacity(HEAD_BYTES);
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    let declared = upload.declared_size;
    while let Some(piece) = bytes.next().await {
        let piece = piece?;
        received += piece.len() as u64;
        if received > declared {
            return Err(ApiError::invalid(
                "chunk",
                format!("more bytes arrived than the {declared} declared"),
            ));
        }
        hasher.update(&piece);
        if head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - head.len()).min(piece.len());
            head.extend_from_slice(&piece[..take]);
        }
        writer.write(&piece).await?;
        // The scanner stops early only for files it rejects outright.
        let _ = scan_tx.send(piece).await;
    }
    if received != declared {
        return Err(ApiError::invalid(
            "header.declared_size_bytes",
            format!("declared {declared} bytes but {received} arrived"),
        ));
    }
    drop(scan_tx);
    let report = scanner
        .await
        .map_err(|e| ApiError::Internal(format!("scan task: {e}")))?
        .map_err(|e| ApiError::Internal(format!("scanning the upload: {e}")))?;
    let size = writer.commit().await?;
    let stored = Stored {
        key,
        size,
        sha256: hex::encode(hasher.finalize()),
        head,
    };
    Ok((stored, report))
}

/// Deletes stored bytes of an upload that is not attached; a failure is
/// logged (the orphan sweep collects what is left).
async fn delete_quietly(app: &App, keys: &[Option<String>]) {
    for key in keys.iter().flatten() {
        if let Err(e) = app.files.delete(key).await {
            tracing::warn!(key, error = %e, "deleting the bytes of a refused upload failed");
        }
    }
}

/// A blocking reader over the byte chunks of an upload, for the scanner thread.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        Self {
            rx,
            current: Bytes::new(),
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(next) => self.current = next,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
