//! Traces (docs/monitoring.md): OpenTelemetry spans exported over OTLP/HTTP
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set, and
//! W3C trace context carried from a call to the work it causes: in gRPC
//! metadata into the call, in the headers of the broker notices it
//! publishes, and on the import row (`imports.trace_context`) for the
//! analysis and the chunks a worker later loads for it. Spans that belong
//! to an import record its trace id (`trace_id`), so log lines carry it.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, Process};

/// The crates whose spans make the service's traces.
const OWN: &[&str] = &[
    "passare_imports_app",
    "passare_imports_grpc",
    "passare_imports_gateway",
    "passare_imports_worker",
    "passare_imports_store",
    "passare_imports_queue",
];

/// Flushes the spans still buffered when the process ends.
pub struct Tracing {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Tracing {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("flushing the last spans failed: {e}");
        }
    }
}

/// Whether the environment asks for traces (the standard OTLP variables,
/// unless `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`).
fn wanted() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    let is = |k: &str, v: &str| std::env::var(k).is_ok_and(|x| x.eq_ignore_ascii_case(v));
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !is("OTEL_SDK_DISABLED", "true")
        && !is("OTEL_TRACES_EXPORTER", "none")
}

/// Installs the log subscriber (text or JSON lines on stderr, filtered by
/// `RUST_LOG` or `IMPORTS_LOG`) and, for a long-running `process` whose
/// environment asks for it, the OpenTelemetry layer.
pub fn init(config: &Config, process: Option<Process>) -> anyhow::Result<Tracing> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log));
    let provider = match process {
        Some(p) if wanted() => Some(provider(p)?),
        _ => None,
    };
    // Spans go to OTLP whatever the log level: the service's own at INFO
    // and above, other crates' at WARN (their internals would drown a trace).
    let spans = Targets::new()
        .with_default(Level::WARN)
        .with_targets(OWN.iter().map(|t| (*t, Level::INFO)));
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("passare-imports"))
            .with_filter(spans)
    });
    let registry = tracing_subscriber::registry().with(otel);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if config.log_format == "json" {
        registry.with(fmt.json().with_filter(filter)).try_init()?;
    } else {
        registry.with(fmt.with_filter(filter)).try_init()?;
    }
    if let Some(p) = process.filter(|_| provider.is_some()) {
        tracing::info!(service = service_name(p), "exporting traces over OTLP");
    }
    Ok(Tracing { provider })
}

/// `OTEL_SERVICE_NAME`, or the process's own name.
fn service_name(process: Process) -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| format!("passare-imports-{}", process.as_str()))
}

fn provider(process: Process) -> anyhow::Result<SdkTracerProvider> {
    // Endpoint, headers, timeout and protocol come from the OTEL_EXPORTER_OTLP_*
    // variables; the batch's delay and size from OTEL_BSP_*.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name(process))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The `traceparent` (and `tracestate`) of `span`, to carry to other
/// processes; empty when traces are off.
pub fn carrier_of(span: &tracing::Span) -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier
}

/// The `traceparent` of `span`, when it has one.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    carrier_of(span).remove("traceparent")
}

/// Makes `span` (not yet entered) a child of the trace context in
/// `carrier`, and records its trace id in its `trace_id` field. Nothing
/// happens when traces are off or the carrier holds no valid context.
pub fn continue_trace(span: &tracing::Span, carrier: &HashMap<String, String>) {
    let parent = TraceContextPropagator::new().extract(carrier);
    let valid = parent.span().span_context().is_valid();
    if valid {
        // Fails only when the span is disabled or already started: it then
        // stays in its own trace, which is all that can be done.
        let _ = span.set_parent(parent);
    }
    record_trace_id(span);
}

/// [`continue_trace`] from a lone `traceparent` value.
pub fn continue_traceparent(span: &tracing::Span, traceparent: Option<&str>) {
    let carrier = traceparent
        .map(|t| HashMap::from([("traceparent".to_string(), t.to_string())]))
        .unwrap_or_default();
    continue_trace(span, &carrier);
}

/// Records the span's trace id in its `trace_id` field (declared empty),
/// so log lines within it carry the id.
pub fn record_trace_id(span: &tracing::Span) {
    let cx = span.context();
    let id = cx.span().span_context().trace_id();
    if id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(id));
    }
}
