//! Prometheus metrics: HTTP traffic, connection pool, the job queue, build
//! information.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the per-route request counter. Every value comes from a fixed
/// set, whatever clients send: `route` is a route template of the router
/// or `unmatched`, `method` a standard method or `other` ([`method_label`]),
/// `status` a class such as `2xx` ([`status_class`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: &'static str,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: &'static str,
}

/// The exact status code, without route or method: the server's own
/// responses, so a small set (never more than the 900 codes HTTP allows).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub code: u16,
}

/// The route label of a request that no handler served.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// A request method as a label: the methods of RFC 9110 and PATCH by name,
/// anything else (any token a client makes up) as `other`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// A status code's class: `1xx` … `5xx` (`other` outside 100–599).
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub kind: String,
    /// succeeded, failed, released or lost.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    commit: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;
type JobHistogramFamily = Family<JobLabels, Histogram, fn() -> Histogram>;

fn job_histogram() -> Histogram {
    // 10 ms … ~45 min
    Histogram::new(exponential_buckets(0.01, 3.0, 14))
}

fn duration_histogram() -> Histogram {
    // 0.5 ms … ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// All metrics the appliance exports, registered once.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub responses: Family<StatusLabels, Counter>,
    pub duration: HistogramFamily,
    pub in_flight: Gauge,
    pub pool_size: Gauge,
    pub pool_available: Gauge,
    pub pool_waiting: Gauge,
    pub job_runs: Family<JobLabels, Counter>,
    pub job_duration: JobHistogramFamily,
    pub jobs_due: Gauge,
    pub jobs_running: Gauge,
    pub jobs_dead: Gauge,
    pub jobs_oldest_due_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("mogothrow77");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status class",
            requests.clone(),
        );
        let responses = Family::<StatusLabels, Counter>::default();
        registry.register(
            "http_responses",
            "HTTP responses by exact status code",
            responses.clone(),
        );
        let duration: HistogramFamily = Family::new_with_constructor(duration_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request duration by route and method",
            duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being served",
            in_flight.clone(),
        );
        let pool_size = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Database connections open in the pool",
            pool_size.clone(),
        );
        let pool_available = Gauge::default();
        registry.register(
            "db_pool_available",
            "Idle database connections in the pool",
            pool_available.clone(),
        );
        let pool_waiting = Gauge::default();
        registry.register(
            "db_pool_waiting",
            "Tasks waiting for a database connection",
            pool_waiting.clone(),
        );
        let job_runs = Family::<JobLabels, Counter>::default();
        registry.register(
            "job_runs",
            "Job attempts run by this server, by kind and outcome",
            job_runs.clone(),
        );
        let job_duration: JobHistogramFamily = Family::new_with_constructor(job_histogram);
        registry.register(
            "job_duration_seconds",
            "Duration of job attempts run by this server, by kind and outcome",
            job_duration.clone(),
        );
        let jobs_due = Gauge::default();
        registry.register(
            "jobs_due",
            "Jobs waiting to run whose time has come (the whole queue, every replica)",
            jobs_due.clone(),
        );
        let jobs_running = Gauge::default();
        registry.register(
            "jobs_running",
            "Jobs running (the whole queue)",
            jobs_running.clone(),
        );
        let jobs_dead = Gauge::default();
        registry.register(
            "jobs_dead",
            "Jobs that used all their attempts and wait for an admin (the whole queue)",
            jobs_dead.clone(),
        );
        let jobs_oldest_due_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "jobs_oldest_due_seconds",
            "How long the oldest due job has been waiting",
            jobs_oldest_due_seconds.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("APPLIANCE_VERSION").to_string(),
                commit: env!("APPLIANCE_GIT_COMMIT").to_string(),
            })
            .set(1);
        registry.register("build_info", "Version and commit of this binary", build);
        Arc::new(Metrics {
            registry,
            requests,
            responses,
            duration,
            in_flight,
            pool_size,
            pool_available,
            pool_waiting,
            job_runs,
            job_duration,
            jobs_due,
            jobs_running,
            jobs_dead,
            jobs_oldest_due_seconds,
        })
    }

    /// The registry in the Prometheus/OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}
