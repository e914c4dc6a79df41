//! The grpc-web gateway: the same ImportService, health and reflection routes
//! as the gRPC server, reachable from browsers (grpc-web over HTTP/1.1, CORS
//! for the admin frontend's origins, gRPC status headers exposed). Browsers
//! cannot stream from the client, so uploads from the frontend will use the
//! unary resumable upload; everything else works as over plain gRPC.
//!
//! Beside grpc-web it serves the built Operations Center page
//! (`IMPORTS_GATEWAY_WEB_DIR`, built by `npm run build` in `gateway/web`) on
//! the same origin: any GET that names no file gets `index.html`, so the
//! page's own paths (`/imports/…`) survive a reload.

use std::path::Path;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, header};
use passare_imports_app::App;
use passare_imports_grpc::server::Http2Settings;
use passare_imports_grpc::{layers, routes, until};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_web::GrpcWebLayer;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};

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
    let routes = with_page(routes, &app.config.gateway_web_dir);
    tracing::info!(addr = %listener.local_addr()?, ?origins, "grpc-web gateway listening");
    Server::builder()
        .accept_http1(true)
        .http2_settings(&app.config)
        .layer(layers())
        .layer(cors(&origins))
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), until(shutdown, health))
        .await?;
    tracing::info!("grpc-web gateway stopped");
    Ok(())
}

/// The gRPC routes translated from grpc-web, and the page's files from `dir`
/// for every other GET (`index.html` when no file matches). Without `dir`
/// only grpc-web is served, and a warning says so.
pub fn with_page(routes: Routes, dir: &Path) -> Routes {
    // grpc-web translation on the gRPC routes only: tonic-web answers any
    // other HTTP/1.1 request with 400, which would hide the page.
    let router = routes.into_axum_router().route_layer(GrpcWebLayer::new());
    let index = dir.join("index.html");
    if !index.is_file() {
        tracing::warn!(
            dir = %dir.display(),
            "no built Operations Center page (run `npm ci && npm run build` in gateway/web, or set IMPORTS_GATEWAY_WEB_DIR): serving grpc-web only"
        );
        return Routes::from(router);
    }
    tracing::info!(dir = %dir.display(), "serving the Operations Center page");
    let files = ServiceExt::<http::Request<axum::body::Body>>::map_response(
        ServeDir::new(dir).fallback(ServeFile::new(index)),
        cache_control,
    );
    let page = axum::routing::get_service(files).fallback(unimplemented);
    Routes::from(router.fallback_service(page))
}

/// `index.html` is revalidated on every load so a new build shows at once;
/// every other file of the build has a content hash in its name and never
/// changes.
fn cache_control<B>(mut response: http::Response<B>) -> http::Response<B> {
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let value = if html || !response.status().is_success() {
        "no-cache"
    } else {
        "public, max-age=31536000, immutable"
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    response
}

/// What a gRPC call to an unknown method gets (as without the page).
async fn unimplemented() -> http::Response<tonic::body::Body> {
    tonic::Status::unimplemented("").into_http()
}
