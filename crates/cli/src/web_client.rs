//! The API over grpc-web, as a browser reaches it through the gateway: the
//! resumable upload in parts (unary calls only). The benchmark compares its
//! throughput with the streaming upload's; another Rust service behind a
//! grpc-web-only proxy could use it as it is.

use std::time::Duration;

use anyhow::Context;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use passare_imports_proto::v1 as pb;
use passare_imports_proto::v1::import_service_client::ImportServiceClient;
use tokio::io::AsyncReadExt;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic_web::{GrpcWebCall, GrpcWebClientLayer, GrpcWebClientService};

use crate::client::{BearerToken, describe};

type Http = HttpClient<HttpConnector, GrpcWebCall<tonic::body::Body>>;

/// A client that speaks grpc-web (HTTP/1.1, as a browser's fetch does) and
/// sends `token` with every call.
pub type WebClient =
    ImportServiceClient<InterceptedService<GrpcWebClientService<Http>, BearerToken>>;

/// A grpc-web client of the gateway at `gateway` (`http://host:port`).
pub fn connect(gateway: &str, token: &str) -> anyhow::Result<WebClient> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(10)));
    connector.set_nodelay(true);
    let http: Http = HttpClient::builder(TokioExecutor::new()).build(connector);
    let web = tower::ServiceBuilder::new()
        .layer(GrpcWebClientLayer::new())
        .service(http);
    let header: MetadataValue<_> = format!("Bearer {token}").parse()?;
    let origin = gateway
        .parse()
        .with_context(|| format!("{gateway} is not a URL"))?;
    let intercepted = InterceptedService::new(web, BearerToken::new(header));
    Ok(ImportServiceClient::with_origin(intercepted, origin)
        .max_decoding_message_size(64 * 1024 * 1024))
}

/// Uploads the file at `path` into the draft `import_id` with the
/// resumable upload: CreateUpload, a WriteUploadPart per part of the size
/// the server asks for, CompleteUpload. Returns the stored file and how many
/// parts it took.
pub async fn upload_in_parts(
    client: &mut WebClient,
    import_id: &str,
    path: &std::path::Path,
    import_type: &str,
) -> anyhow::Result<(pb::ImportFile, u64)> {
    let header = crate::client::file_header(import_id, path, import_type).await?;
    let upload = client
        .create_upload(pb::CreateUploadRequest {
            header: Some(header),
            declared_sha256: String::new(),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .map_err(describe)?
        .into_inner()
        .upload
        .context("CreateUpload returned no upload")?;
    let part_size = usize::try_from(upload.part_size_bytes.max(1))?;
    let mut file = tokio::fs::File::open(path).await?;
    let (mut offset, mut parts) = (0u64, 0u64);
    loop {
        let mut data = Vec::with_capacity(part_size);
        (&mut file)
            .take(part_size as u64)
            .read_to_end(&mut data)
            .await?;
        if data.is_empty() {
            break;
        }
        let sent = data.len() as u64;
        let committed = client
            .write_upload_part(pb::WriteUploadPartRequest {
                upload_id: upload.id.clone(),
                offset: offset as i64,
                data,
            })
            .await
            .map_err(describe)?
            .into_inner()
            .committed_bytes;
        anyhow::ensure!(
            committed as u64 == offset + sent,
            "the server committed {committed} bytes after a part ending at {}",
            offset + sent
        );
        offset += sent;
        parts += 1;
    }
    let file = client
        .complete_upload(pb::CompleteUploadRequest {
            upload_id: upload.id,
        })
        .await
        .map_err(describe)?
        .into_inner()
        .file
        .context("CompleteUpload returned no file")?;
    Ok((file, parts))
}
