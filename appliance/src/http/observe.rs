//! Access log and HTTP metrics for every request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::request_id::RequestId;
use crate::metrics::{Metrics, RequestLabels, RouteLabels};

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
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let path = request.uri().path().to_string();
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
    metrics.in_flight.inc();
    let guard = InFlight(&metrics);
    let response = next.run(request).await;
    drop(guard);
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method: method.clone(),
            status,
        })
        .inc();
    metrics
        .duration
        .get_or_create(&RouteLabels {
            route,
            method: method.clone(),
        })
        .observe(elapsed.as_secs_f64());
    tracing::info!(
        target: "access",
        %method,
        %path,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        %request_id,
        %remote,
        "request"
    );
    response
}
