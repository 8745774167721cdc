//! Access log, HTTP metrics and the request's span (with the caller's W3C
//! `traceparent` as its parent) for every request; the request runs with
//! its trace context current and inside a log span carrying its request id
//! and trace id, so every log line it causes names both.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use tracing::Instrument;

use super::request_id::RequestId;
use crate::metrics::{
    method_label, status_class, Metrics, RequestLabels, RouteLabels, StatusLabels, UNMATCHED_ROUTE,
};
use crate::telemetry::{self, Kind, Span, TraceContext};

/// Longest method and path written to the access log; longer ones are cut
/// (a client can send tens of kilobytes of either).
const LOG_METHOD_MAX: usize = 32;
const LOG_PATH_MAX: usize = 2048;

/// `text` cut to at most `max` bytes (on a character boundary), marked `…`.
fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}

/// Decrements the in-flight gauge even when the client goes away mid-request.
struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

pub async fn middleware(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method_label = method_label(request.method());
    let method = clip(request.method().as_str(), LOG_METHOD_MAX).into_owned();
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let path = clip(request.uri().path(), LOG_PATH_MAX).into_owned();
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let parent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse);
    let span_name = match &matched {
        Some(route) => format!("{method_label} {route}"),
        None => method_label.to_string(),
    };
    let mut span = Span::start(span_name, Kind::Server, parent);
    let context = span.context();
    let trace_id = context.trace_id_hex();
    metrics.in_flight.inc();
    let guard = InFlight(&metrics);
    let log_span = tracing::info_span!("request", %request_id, %trace_id);
    let response = telemetry::scope(context, next.run(request))
        .instrument(log_span)
        .await;
    drop(guard);
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    // A path the router knows but not with this method (405) was served by
    // no handler either: counted with the unknown paths, so the series are
    // the routes' handlers plus one `unmatched` route.
    let route = match matched {
        Some(route) if status != 405 => route,
        _ => UNMATCHED_ROUTE.to_string(),
    };
    if route != UNMATCHED_ROUTE {
        span.set("http.route", route.as_str());
    }
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method: method_label,
            status: status_class(status),
        })
        .inc();
    metrics
        .responses
        .get_or_create(&StatusLabels { code: status })
        .inc();
    metrics
        .duration
        .get_or_create(&RouteLabels {
            route,
            method: method_label,
        })
        .observe(elapsed.as_secs_f64());
    span.set("http.request.method", method_label);
    span.set("url.path", path.as_str());
    span.set("http.response.status_code", i64::from(status));
    span.set("mogothrow77.request_id", request_id.as_str());
    if status >= 500 {
        span.fail(format!("answered {status}"));
    }
    span.end();
    tracing::info!(
        target: "access",
        %method,
        %path,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        %request_id,
        %trace_id,
        %remote,
        "request"
    );
    response
}
