//! The resumable upload from a test: begin one with a file's header, send
//! its bytes in parts, complete it; and what storage holds of an upload.

use passare_imports_cli::client::Client;
use passare_imports_proto::v1 as pb;
use tonic::Status;

use crate::files::NewFile;
use crate::test_env::TestEnv;

/// Begins a resumable upload of `file` into `import_id`.
pub async fn begin(
    client: &mut Client,
    import_id: &str,
    file: &NewFile,
    declared_sha256: &str,
    request_id: &str,
) -> Result<pb::Upload, Status> {
    client
        .create_upload(pb::CreateUploadRequest {
            header: Some(file.header(import_id)),
            declared_sha256: declared_sha256.into(),
            request_id: request_id.into(),
        })
        .await?
        .into_inner()
        .upload
        .ok_or_else(|| Status::internal("CreateUpload returned no upload"))
}

/// Sends one part; returns the committed offset.
pub async fn part(
    client: &mut Client,
    upload_id: &str,
    offset: usize,
    data: &[u8],
) -> Result<i64, Status> {
    Ok(client
        .write_upload_part(pb::WriteUploadPartRequest {
            upload_id: upload_id.into(),
            offset: offset as i64,
            data: data.to_vec(),
        })
        .await?
        .into_inner()
        .committed_bytes)
}

/// Sends `bytes` from `from` on in parts of `part_size`; returns the committed offset.
pub async fn send_from(
    client: &mut Client,
    upload_id: &str,
    bytes: &[u8],
    from: usize,
    part_size: usize,
) -> Result<i64, Status> {
    let mut committed = from as i64;
    for (i, piece) in bytes[from..].chunks(part_size).enumerate() {
        committed = part(client, upload_id, from + i * part_size, piece).await?;
    }
    Ok(committed)
}

pub async fn complete(client: &mut Client, upload_id: &str) -> Result<pb::ImportFile, Status> {
    client
        .complete_upload(pb::CompleteUploadRequest {
            upload_id: upload_id.into(),
        })
        .await?
        .into_inner()
        .file
        .ok_or_else(|| Status::internal("CompleteUpload returned no file"))
}

pub async fn get(client: &mut Client, upload_id: &str) -> Result<pb::Upload, Status> {
    client
        .get_upload(pb::GetUploadRequest {
            upload_id: upload_id.into(),
        })
        .await?
        .into_inner()
        .upload
        .ok_or_else(|| Status::internal("GetUpload returned no upload"))
}

/// Uploads `file` whole in parts of `part_size`: begin, parts, complete.
pub async fn upload_in_parts(
    client: &mut Client,
    import_id: &str,
    file: &NewFile,
    part_size: usize,
) -> Result<pb::ImportFile, Status> {
    let upload = begin(client, import_id, file, "", "").await?;
    send_from(client, &upload.id, &file.bytes, 0, part_size).await?;
    complete(client, &upload.id).await
}

impl TestEnv {
    /// Files storage holds of an upload's parts.
    pub fn stored_parts(&self, upload_id: &str) -> usize {
        let dir = self.config.storage_dir.join("uploads").join(upload_id);
        std::fs::read_dir(dir).map_or(0, |entries| entries.count())
    }
}
