//! Prometheus metrics: HTTP traffic, connection pool, the job queue, build
//! information, and what an operator watches for trouble (certificate
//! expiry, disk headroom, database errors, webhook outcomes, the audit
//! chain, the cache listener). Every label value comes from a fixed set.
//!
//! One registry per process ([`Metrics::shared`]): errors are counted where
//! they happen (a request, a job, the audit chain) without threading a
//! handle through every call.

use std::sync::{Arc, OnceLock};

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

/// Every `kind` of `db_errors_total`.
pub const DB_ERROR_KINDS: [&str; 5] = [
    "unavailable",
    "pool_timeout",
    "statement_timeout",
    "read_only",
    "other",
];

/// Every `outcome` of `webhook_deliveries_total`.
pub const WEBHOOK_OUTCOMES: [&str; 10] = [
    "1xx",
    "2xx",
    "3xx",
    "4xx",
    "5xx",
    "timeout",
    "refused",
    "connect_error",
    "tls_error",
    "http_error",
];

/// Every `outcome` of `telemetry_spans_total`.
pub const TELEMETRY_OUTCOMES: [&str; 3] = ["exported", "export_failed", "dropped_queue_full"];

/// Every `outcome` of a job attempt.
pub const JOB_OUTCOMES: [&str; 4] = ["succeeded", "failed", "released", "lost"];

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
    schema_level: i32,
}

/// A directory whose file system is watched: `state` (`state_dir`) or
/// `postgres` (the managed cluster's data directory).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirLabels {
    pub dir: &'static str,
}

/// How one webhook delivery attempt ended: the receiver's status class, or
/// what stopped it (`timeout`, `refused`, `connect_error`, `tls_error`,
/// `http_error`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// An audit forwarding destination: `syslog`, `file` or `journal`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    pub sink: &'static str,
}

/// Every `operation` of `db_slow_statements_total`.
pub const STATEMENT_OPERATIONS: [&str; 5] = ["select", "insert", "update", "delete", "other"];

/// The kind of a slow statement (`db::sql::Summary::label`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

/// What kind of database failure a request or job met: `unavailable`
/// (no connection, or it broke), `statement_timeout`, `read_only` (a
/// demoted or standby server), `other`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DbErrorLabels {
    pub kind: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;
type JobHistogramFamily = Family<JobLabels, Histogram, fn() -> Histogram>;

fn job_histogram() -> Histogram {
    // 10 ms … ~45 min
    Histogram::new(exponential_buckets(0.01, 3.0, 14))
}

/// Request and delivery durations: fine below 100 ms, and a bucket at
/// 300 ms, the latency SLO's threshold (docs/observability.md).
pub const DURATION_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS.into_iter())
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

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
    pub tls_expiry: Gauge,
    pub fs_avail_bytes: Family<DirLabels, Gauge>,
    pub fs_size_bytes: Family<DirLabels, Gauge>,
    pub fs_files_free: Family<DirLabels, Gauge>,
    pub fs_files: Family<DirLabels, Gauge>,
    pub cache_listener_connected: Gauge,
    pub webhook_deliveries: Family<OutcomeLabels, Counter>,
    pub webhook_delivery_duration: Histogram,
    pub audit_append_duration: Histogram,
    pub db_errors: Family<DbErrorLabels, Counter>,
    pub db_slow_statements: Family<OperationLabels, Counter>,
    pub process_start_time: FloatGauge,
    pub database_up: Gauge,
    pub database_probe_seconds: FloatGauge,
    pub database_size_bytes: Gauge,
    pub telemetry_spans: Family<OutcomeLabels, Counter>,
    pub audit_chain_problems: Gauge,
    pub audit_chain_checked: Gauge,
    pub process_cpu_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    /// Held while `/proc/self` is sampled, so that two scrapes at once add
    /// the CPU time since the last sample once.
    process_sampling: std::sync::Mutex<()>,
    pub process_resident_bytes: Gauge,
    pub process_open_fds: Gauge,
    pub process_max_fds: Gauge,
    pub audit_forward_lag: Family<SinkLabels, Gauge>,
    pub audit_forward_failures: Family<SinkLabels, Counter>,
    pub backup_last_success: FloatGauge,
    pub backup_last_size: Gauge,
    pub backup_last_duration: FloatGauge,
    pub backup_copy_failures: Counter,
    pub backup_last_drill: FloatGauge,
    pub backup_last_drill_success: Gauge,
    pub pitr_backup_failures: Counter,
    pub wal_last_archived: FloatGauge,
    pub wal_archive_failing: Gauge,
}

static SHARED: OnceLock<Arc<Metrics>> = OnceLock::new();

/// Registers `metric` as `name` with its help text; returns the handle kept
/// in [`Metrics`] (the registry holds a clone sharing the same value).
fn register<M>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M
where
    M: prometheus_client::registry::Metric + Clone,
{
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    /// The process's registry.
    pub fn shared() -> Arc<Metrics> {
        SHARED.get_or_init(Metrics::new).clone()
    }

    fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("mogothrow77");
        let requests = register(
            &mut registry,
            "http_requests",
            "HTTP requests by route template, method and status class",
            Family::<RequestLabels, Counter>::default(),
        );
        let responses = register(
            &mut registry,
            "http_responses",
            "HTTP responses by exact status code",
            Family::<StatusLabels, Counter>::default(),
        );
        let duration: HistogramFamily = register(
            &mut registry,
            "http_request_duration_seconds",
            "HTTP request duration by route and method",
            Family::new_with_constructor(duration_histogram),
        );
        let in_flight = register(
            &mut registry,
            "http_requests_in_flight",
            "HTTP requests being served",
            Gauge::default(),
        );
        let pool_size = register(
            &mut registry,
            "db_pool_connections",
            "Database connections open in the pool",
            Gauge::default(),
        );
        let pool_available = register(
            &mut registry,
            "db_pool_available",
            "Idle database connections in the pool",
            Gauge::default(),
        );
        let pool_waiting = register(
            &mut registry,
            "db_pool_waiting",
            "Tasks waiting for a database connection",
            Gauge::default(),
        );
        let job_runs = register(
            &mut registry,
            "job_runs",
            "Job attempts run by this server, by kind and outcome",
            Family::<JobLabels, Counter>::default(),
        );
        let job_duration: JobHistogramFamily = register(
            &mut registry,
            "job_duration_seconds",
            "Duration of job attempts run by this server, by kind and outcome",
            Family::new_with_constructor(job_histogram),
        );
        let jobs_due = register(
            &mut registry,
            "jobs_due",
            "Jobs waiting to run whose time has come (the whole queue, every replica)",
            Gauge::default(),
        );
        let jobs_running = register(
            &mut registry,
            "jobs_running",
            "Jobs running (the whole queue)",
            Gauge::default(),
        );
        let jobs_dead = register(
            &mut registry,
            "jobs_dead",
            "Jobs that used all their attempts and wait for an admin (the whole queue)",
            Gauge::default(),
        );
        let jobs_oldest_due_seconds = register(
            &mut registry,
            "jobs_oldest_due_seconds",
            "How long the oldest due job has been waiting",
            Gauge::<f64, std::sync::atomic::AtomicU64>::default(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("APPLIANCE_VERSION").to_string(),
                commit: env!("APPLIANCE_GIT_COMMIT").to_string(),
                // The newest migration embedded (build.rs): what
                // `db::migrate::binary_level` reads back at run time.
                schema_level: env!("APPLIANCE_SCHEMA_LEVEL").parse().unwrap_or(0),
            })
            .set(1);
        registry.register(
            "build_info",
            "Version, commit and schema level (newest migration it knows) of this binary",
            build,
        );
        let tls_expiry = register(
            &mut registry,
            "tls_certificate_expiry_timestamp_seconds",
            "When the served TLS certificate expires (Unix time); 0 when TLS is off",
            Gauge::default(),
        );
        let fs_avail_bytes = register(
            &mut registry,
            "filesystem_avail_bytes",
            "Bytes available to the server on the file system of a directory it writes",
            Family::<DirLabels, Gauge>::default(),
        );
        let fs_size_bytes = register(
            &mut registry,
            "filesystem_size_bytes",
            "Size of the file system of a directory the server writes",
            Family::<DirLabels, Gauge>::default(),
        );
        let fs_files_free = register(
            &mut registry,
            "filesystem_files_free",
            "Free inodes on the file system of a directory the server writes",
            Family::<DirLabels, Gauge>::default(),
        );
        let fs_files = register(
            &mut registry,
            "filesystem_files",
            "Inodes on the file system of a directory the server writes",
            Family::<DirLabels, Gauge>::default(),
        );
        let cache_listener_connected = register(
            &mut registry,
            "cache_listener_connected",
            "1 while the replica hears cache invalidations (its LISTEN connection is up), else 0",
            Gauge::default(),
        );
        let webhook_deliveries = register(
            &mut registry,
            "webhook_deliveries",
            "Webhook delivery attempts by outcome (status class or failure)",
            Family::<OutcomeLabels, Counter>::default(),
        );
        let webhook_delivery_duration = register(
            &mut registry,
            "webhook_delivery_duration_seconds",
            "Duration of webhook delivery attempts (connect, TLS, the receiver's answer)",
            duration_histogram(),
        );
        let audit_append_duration = register(
            &mut registry,
            "audit_append_duration_seconds",
            "Time to append one entry to the audit chain (head lock, hash, insert)",
            duration_histogram(),
        );
        let db_errors = register(
            &mut registry,
            "db_errors",
            "Database failures met by requests and jobs, by kind",
            Family::<DbErrorLabels, Counter>::default(),
        );
        let db_slow_statements = register(
            &mut registry,
            "db_slow_statements",
            "SQL statements that took longer than database.slow_statement_ms, by operation",
            Family::<OperationLabels, Counter>::default(),
        );
        let database_up = register(
            &mut registry,
            "database_up",
            "1 when this replica's last database probe (SELECT 1 through the pool) answered, else 0",
            Gauge::default(),
        );
        let database_probe_seconds = register(
            &mut registry,
            "database_probe_duration_seconds",
            "How long this replica's last database probe took",
            FloatGauge::default(),
        );
        let database_size_bytes = register(
            &mut registry,
            "database_size_bytes",
            "Size of the appliance's database (pg_database_size), sampled every minute",
            Gauge::default(),
        );
        let telemetry_spans = register(
            &mut registry,
            "telemetry_spans",
            "Spans by what became of them: exported, export_failed (the collector refused or was unreachable), dropped_queue_full",
            Family::<OutcomeLabels, Counter>::default(),
        );
        for outcome in TELEMETRY_OUTCOMES {
            let _ = telemetry_spans.get_or_create(&OutcomeLabels { outcome });
        }
        let audit_chain_problems = register(
            &mut registry,
            "audit_chain_problems",
            "Breaks in the audit log's hash chain found by this replica's last check of the newest entries (0: intact)",
            Gauge::default(),
        );
        let audit_chain_checked = register(
            &mut registry,
            "audit_chain_last_check_timestamp_seconds",
            "When this replica last checked the audit chain (Unix time; 0: not yet)",
            Gauge::default(),
        );
        let process_cpu_seconds = register(
            &mut registry,
            "process_cpu_seconds",
            "CPU time this server process has used (user and system), in seconds",
            Counter::<f64, std::sync::atomic::AtomicU64>::default(),
        );
        let process_resident_bytes = register(
            &mut registry,
            "process_resident_memory_bytes",
            "Resident memory of this server process",
            Gauge::default(),
        );
        let process_open_fds = register(
            &mut registry,
            "process_open_fds",
            "File descriptors this server process has open (sockets included)",
            Gauge::default(),
        );
        let process_max_fds = register(
            &mut registry,
            "process_max_fds",
            "This server process's open-file limit (RLIMIT_NOFILE, soft)",
            Gauge::default(),
        );
        let process_start_time = register(
            &mut registry,
            "process_start_time_seconds",
            "When this server process started (Unix time)",
            FloatGauge::default(),
        );
        process_start_time.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
        let audit_forward_lag = register(
            &mut registry,
            "audit_forward_lag_entries",
            "Audit entries not yet confirmed by a forwarding destination (reported by the replica that forwards)",
            Family::<SinkLabels, Gauge>::default(),
        );
        let audit_forward_failures = register(
            &mut registry,
            "audit_forward_failures",
            "Failed attempts to forward audit entries to a destination (connect, TLS, write, lost connection)",
            Family::<SinkLabels, Counter>::default(),
        );
        let backup_last_success = register(
            &mut registry,
            "backup_last_success_timestamp_seconds",
            "When the newest backup recorded in the database finished (Unix time; 0: none yet)",
            FloatGauge::default(),
        );
        let backup_last_size = register(
            &mut registry,
            "backup_last_size_bytes",
            "Size of the newest backup recorded in the database (bytes; 0: none yet)",
            Gauge::default(),
        );
        let backup_last_drill = register(
            &mut registry,
            "backup_last_drill_timestamp_seconds",
            "When the newest restore drill (`mogothrow77 backup drill`) ran (Unix time; 0: never)",
            FloatGauge::default(),
        );
        let backup_last_drill_success = register(
            &mut registry,
            "backup_last_drill_success",
            "1 when the newest restore drill passed, 0 when it failed or none ran",
            Gauge::default(),
        );
        let backup_last_duration = register(
            &mut registry,
            "backup_last_duration_seconds",
            "How long the newest backup recorded in the database took, start to recorded (0: none yet)",
            FloatGauge::default(),
        );
        let backup_copy_failures = register(
            &mut registry,
            "backup_copy_failures",
            "Scheduled backups whose copy (backup.copy_to) or hook (backup.hook) failed, on this replica",
            Counter::default(),
        );
        let pitr_backup_failures = register(
            &mut registry,
            "pitr_backup_failures",
            "PITR base backups (backup.pitr) that failed at a backup.schedule slot, on this replica",
            Counter::default(),
        );
        let wal_last_archived = register(
            &mut registry,
            "wal_last_archived_timestamp_seconds",
            "When the database's archiver last archived a WAL segment (0: never; backup.pitr)",
            FloatGauge::default(),
        );
        let wal_archive_failing = register(
            &mut registry,
            "wal_archive_failing",
            "1 when the database's newest WAL archiving attempt failed (backup.pitr): WAL piles up in the data directory",
            Gauge::default(),
        );
        // Every series of a fixed label set exists from the start (at 0), so
        // rates and alerts see a zero rather than nothing.
        for kind in DB_ERROR_KINDS {
            let _ = db_errors.get_or_create(&DbErrorLabels { kind });
        }
        for operation in STATEMENT_OPERATIONS {
            let _ = db_slow_statements.get_or_create(&OperationLabels { operation });
        }
        for outcome in WEBHOOK_OUTCOMES {
            let _ = webhook_deliveries.get_or_create(&OutcomeLabels { outcome });
        }
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
            tls_expiry,
            fs_avail_bytes,
            fs_size_bytes,
            fs_files_free,
            fs_files,
            cache_listener_connected,
            webhook_deliveries,
            webhook_delivery_duration,
            audit_append_duration,
            db_errors,
            db_slow_statements,
            process_start_time,
            database_up,
            database_probe_seconds,
            database_size_bytes,
            telemetry_spans,
            audit_chain_problems,
            audit_chain_checked,
            process_cpu_seconds,
            process_sampling: std::sync::Mutex::new(()),
            process_resident_bytes,
            process_open_fds,
            process_max_fds,
            audit_forward_lag,
            audit_forward_failures,
            backup_last_success,
            backup_last_size,
            backup_last_duration,
            backup_copy_failures,
            backup_last_drill,
            backup_last_drill_success,
            pitr_backup_failures,
            wal_last_archived,
            wal_archive_failing,
        })
    }

    /// Creates the job series of `kinds` × every outcome at 0.
    pub fn init_job_kinds(&self, kinds: &[&str]) {
        for kind in kinds {
            for outcome in JOB_OUTCOMES {
                let labels = JobLabels {
                    kind: kind.to_string(),
                    outcome: outcome.to_string(),
                };
                let _ = self.job_runs.get_or_create(&labels);
                let _ = self.job_duration.get_or_create(&labels);
            }
        }
    }

    /// Samples this process's CPU time, resident memory and file
    /// descriptors from `/proc/self` (Linux).
    pub fn sample_process(&self) {
        let Ok(_one_at_a_time) = self.process_sampling.lock() else {
            return;
        };
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name (which may hold spaces): utime
            // and stime are the 12th and 13th of them, in clock ticks.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                .ok()
                .flatten()
                .filter(|t| *t > 0)
                .unwrap_or(100) as f64;
            let utime = fields.get(11).and_then(|v| v.parse::<f64>().ok());
            let stime = fields.get(12).and_then(|v| v.parse::<f64>().ok());
            if let (Some(u), Some(s)) = (utime, stime) {
                let since_last = (u + s) / ticks - self.process_cpu_seconds.get();
                if since_last > 0.0 {
                    self.process_cpu_seconds.inc_by(since_last);
                }
            }
        }
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
                .ok()
                .flatten()
                .unwrap_or(4096);
            if let Some(pages) = statm
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<i64>().ok())
            {
                self.process_resident_bytes.set(pages * page);
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.process_open_fds.set(fds.count() as i64);
        }
        if let Ok((soft, _)) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        {
            self.process_max_fds
                .set(i64::try_from(soft).unwrap_or(i64::MAX));
        }
    }

    /// Counts `n` spans that were exported, failed or dropped.
    pub fn telemetry_spans(&self, outcome: &'static str, n: u64) {
        self.telemetry_spans
            .get_or_create(&OutcomeLabels { outcome })
            .inc_by(n);
    }

    /// Counts a database failure of `kind` (see [`DbErrorLabels`]).
    pub fn db_error(&self, kind: &'static str) {
        self.db_errors.get_or_create(&DbErrorLabels { kind }).inc();
    }

    /// Counts a statement over the slow-statement threshold (`operation`
    /// one of [`STATEMENT_OPERATIONS`]).
    pub fn slow_statement(&self, operation: &'static str) {
        self.db_slow_statements
            .get_or_create(&OperationLabels { operation })
            .inc();
    }

    /// Samples the file system of `path` as directory `dir`.
    pub fn sample_dir(&self, dir: &'static str, path: &std::path::Path) {
        let Ok(stat) = nix::sys::statvfs::statvfs(path) else {
            return;
        };
        let block = stat.fragment_size() as i64;
        let labels = DirLabels { dir };
        let set = |family: &Family<DirLabels, Gauge>, value: i64| {
            family.get_or_create(&labels).set(value);
        };
        set(&self.fs_avail_bytes, stat.blocks_available() as i64 * block);
        set(&self.fs_size_bytes, stat.blocks() as i64 * block);
        set(&self.fs_files_free, stat.files_available() as i64);
        set(&self.fs_files, stat.files() as i64);
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
