//! The span of each call: named after its RPC, a child of the caller's trace
//! when its metadata carries W3C trace context (`traceparent`,
//! `tracestate`), with the trace id in its `trace_id` field for the logs.

use std::collections::HashMap;

use passare_imports_app::observability::traces;
use tonic::Request;

/// The span a call of `method` runs in.
pub fn rpc<T>(method: &'static str, request: &Request<T>) -> tracing::Span {
    let span = tracing::info_span!(
        "rpc",
        otel.name = method,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = "passare.imports.v1.ImportService",
        rpc.method = method,
        trace_id = tracing::field::Empty,
    );
    let carrier: HashMap<String, String> = ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|k| {
            let v = request.metadata().get(k)?.to_str().ok()?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    traces::continue_trace(&span, &carrier);
    span
}
