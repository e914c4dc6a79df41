//! The grpc-web gateway: the same ImportService, health and reflection routes
//! as the gRPC server, reachable from browsers (grpc-web over HTTP/1.1, CORS
//! for the admin frontend's origins, gRPC status headers exposed). Browsers
//! cannot stream from the client, so uploads from the frontend will use the
//! unary resumable upload; everything else works as over plain gRPC.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use passare_imports_app::App;
use passare_imports_grpc::{layers, routes, until};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic_web::GrpcWebLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// CORS for the admin frontend: `*` allows any origin, otherwise exactly the listed ones.
pub fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let names = |list: &[&'static str]| {
        list.iter()
            .map(|h| HeaderName::from_static(h))
            .collect::<Vec<_>>()
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(names(&[
            "authorization",
            "content-type",
            "x-grpc-web",
            "x-user-agent",
            "grpc-timeout",
            "x-request-id",
            "connect-protocol-version",
        ]))
        .expose_headers(names(&[
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
            "x-request-id",
        ]))
        .max_age(Duration::from_secs(24 * 60 * 60))
}

/// Serves grpc-web on `listener` until `shutdown`.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (routes, health) = routes(&app).await?;
    let origins = app.config.allowed_origins();
    tracing::info!(addr = %listener.local_addr()?, ?origins, "grpc-web gateway listening");
    Server::builder()
        .accept_http1(true)
        .layer(cors(&origins))
        .layer(GrpcWebLayer::new())
        .layer(layers())
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), until(shutdown, health))
        .await?;
    tracing::info!("grpc-web gateway stopped");
    Ok(())
}
