//! Starting the gRPC server: ImportService behind the bearer-token interceptor,
//! health and reflection beside it, request ids and tracing around all. The
//! gateway serves the same [`routes`] over grpc-web.

use passare_imports_proto::v1::FILE_DESCRIPTOR_SET;
use passare_imports_proto::v1::import_service_server::ImportServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::server::HealthReporter;
use tower::layer::util::{Identity, Stack};
use tower_http::classify::{GrpcCode, GrpcErrorsAsFailures, SharedClassifier};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use passare_imports_app::App;
use passare_imports_app::config::Config;
use std::time::Duration;

use crate::ImportApi;
use crate::auth;

/// HTTP/2 flow-control window per upload stream.
pub const UPLOAD_WINDOW_BYTES: u32 = 8 * 1024 * 1024;

/// Largest gRPC message accepted (upload chunks are at most 4 MiB).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// HTTP/2 bounds of a server: concurrent streams per connection and
/// keepalive pings, so one connection cannot hold every call slot and dead
/// clients are found.
pub trait Http2Settings {
    fn http2_settings(self, config: &Config) -> Self;
}

impl<L> Http2Settings for Server<L> {
    fn http2_settings(self, config: &Config) -> Self {
        self.max_concurrent_streams(config.grpc_max_concurrent_streams)
            .http2_keepalive_interval(Some(Duration::from_secs(
                config.grpc_keepalive_interval_secs,
            )))
            .http2_keepalive_timeout(Some(Duration::from_secs(
                config.grpc_keepalive_timeout_secs,
            )))
    }
}

/// ImportService (authenticated), health and — when configured — reflection.
pub async fn routes(app: &App) -> anyhow::Result<(Routes, HealthReporter)> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<ImportServiceServer<ImportApi>>().await;
    let api = ImportServiceServer::new(ImportApi::new(app.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let api = tonic::service::interceptor::InterceptedService::new(
        api,
        auth::interceptor(app.auth.clone()),
    );
    let mut routes = Routes::new(health_service).add_service(api);
    if app.config.reflection {
        // v1 for current clients, v1alpha for grpcurl 1.8 and other older ones.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // google.rpc error details, so grpcurl can show ErrorInfo and friends.
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        };
        routes = routes
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?);
    }
    Ok((routes, health))
}

type SpanFn = fn(&http::Request<tonic::body::Body>) -> tracing::Span;
type GrpcTrace = TraceLayer<SharedClassifier<GrpcErrorsAsFailures>, SpanFn>;
/// The middleware stack of [`layers`], outermost first.
pub type Layers = tower::ServiceBuilder<
    Stack<
        PropagateRequestIdLayer,
        Stack<GrpcTrace, Stack<SetRequestIdLayer<MakeRequestUuid>, Identity>>,
    >,
>;

/// Calls that ended with one of these codes are the caller's to handle (a
/// bad request, a missing record, a refusal by a cap or by access control),
/// not the service's failures: the trace layer logs them at its normal
/// level, so an ERROR line always means something went wrong in the service.
const CALLER_CODES: [GrpcCode; 9] = [
    GrpcCode::Cancelled,
    GrpcCode::InvalidArgument,
    GrpcCode::NotFound,
    GrpcCode::AlreadyExists,
    GrpcCode::PermissionDenied,
    GrpcCode::ResourceExhausted,
    GrpcCode::FailedPrecondition,
    GrpcCode::OutOfRange,
    GrpcCode::Unauthenticated,
];

/// Request ids (`x-request-id`, generated when absent, echoed) and one
/// tracing span per call carrying the id and the method; calls failing with
/// a code of the service's own ([`CALLER_CODES`] excepted) are logged as
/// errors.
pub fn layers() -> Layers {
    fn span(req: &http::Request<tonic::body::Body>) -> tracing::Span {
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::info_span!("rpc", method = %req.uri().path(), request_id = %request_id)
    }
    tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new(SharedClassifier::new(CALLER_CODES.into_iter().fold(
                GrpcErrorsAsFailures::new(),
                GrpcErrorsAsFailures::with_success,
            )))
            .make_span_with(span as SpanFn),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
}

/// Resolves when `shutdown` is cancelled, after reporting NOT_SERVING so load
/// balancers stop sending calls while the server drains the ones in flight.
pub async fn until(shutdown: CancellationToken, health: HealthReporter) {
    shutdown.cancelled().await;
    health
        .set_not_serving::<ImportServiceServer<ImportApi>>()
        .await;
}

/// Serves plain gRPC on `listener` until `shutdown`; health turns NOT_SERVING first.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (routes, health) = routes(&app).await?;
    tracing::info!(addr = %listener.local_addr()?, "grpc server listening");
    Server::builder()
        // Uploads stream hundreds of MB: HTTP/2's default 64 KiB window would
        // make every upload wait on acknowledgements.
        .initial_stream_window_size(UPLOAD_WINDOW_BYTES)
        .initial_connection_window_size(2 * UPLOAD_WINDOW_BYTES)
        .http2_settings(&app.config)
        .layer(layers())
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), until(shutdown, health))
        .await?;
    app.db.close().await;
    tracing::info!("grpc server stopped");
    Ok(())
}
