//! The workers of one replica: each loops claiming a due job, running it
//! under a renewed lease, and recording how it ended. Idle workers sleep
//! until `NOTIFY m77_jobs` (through the replica's listener, `crate::cache`)
//! or, as a fallback, a few seconds. One more task takes back jobs whose
//! lease ran out (their worker died) and refreshes the queue's gauges.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::context::JobCtx;
use super::housekeeping;
use super::registry::Registry;
use crate::metrics::{JobLabels, Metrics};
use crate::queue::{self, jittered, Claimed, Ending, JobError, Kind};
use crate::telemetry;

/// How long an idle worker sleeps when no notification comes.
const POLL: Duration = Duration::from_secs(5);
/// How often leases are checked and the gauges refreshed.
const REAP_EVERY: Duration = Duration::from_secs(5);

/// How many workers, and the lease they hold a job under.
#[derive(Clone)]
pub struct Settings {
    pub workers: usize,
    pub lease: Duration,
}

struct Shared {
    pool: deadpool_postgres::Pool,
    wake: Arc<Notify>,
    settings: Settings,
    handlers: Registry,
    metrics: Arc<Metrics>,
    name: String,
}

/// The running workers of this replica.
pub struct Workers {
    stopping: Stopping,
    release: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Tells the workers to take no more jobs, and remembers when (the grace
/// for running jobs counts from then).
#[derive(Clone)]
pub struct Stopping {
    sender: Arc<watch::Sender<bool>>,
    since: Arc<std::sync::OnceLock<tokio::time::Instant>>,
}

impl Stopping {
    pub fn now(&self) {
        let _ = self.since.set(tokio::time::Instant::now());
        let _ = self.sender.send(true);
    }

    fn since(&self) -> tokio::time::Instant {
        *self.since.get_or_init(tokio::time::Instant::now)
    }
}

/// Starts `settings.workers` workers and the lease keeper.
pub fn start(
    pool: deadpool_postgres::Pool,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    settings: Settings,
    handlers: Registry,
) -> Workers {
    metrics.init_job_kinds(&Kind::ALL.map(Kind::as_str));
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_string());
    let shared = Arc::new(Shared {
        pool,
        wake,
        metrics,
        name: format!("{host}:{}", std::process::id()),
        settings: settings.clone(),
        handlers,
    });
    let (stop_claiming, stop_rx) = watch::channel(false);
    let (release, release_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for n in 0..settings.workers {
        tasks.push(tokio::spawn(work(
            shared.clone(),
            format!("{}#{n}", shared.name),
            stop_rx.clone(),
            release_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(keep_leases(shared, stop_rx)));
    Workers {
        stopping: Stopping {
            sender: Arc::new(stop_claiming),
            since: Arc::new(std::sync::OnceLock::new()),
        },
        release,
        tasks,
    }
}

impl Workers {
    /// For the signal handler: stop taking jobs as soon as a stop is asked
    /// for, while requests drain.
    pub fn stopping(&self) -> Stopping {
        self.stopping.clone()
    }

    /// Stops claiming new jobs, lets running ones finish until `grace` after
    /// the stop was asked for, then gives back what still runs (queued
    /// again, without using up an attempt) so another replica takes it up
    /// at once. Workers that do not end within 5 s more are aborted (their
    /// jobs' leases then run out).
    pub async fn stop(self, grace: Duration) {
        self.stopping.now();
        let deadline = self.stopping.since() + grace;
        let mut still_running = Vec::new();
        for mut task in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                still_running.push(task);
            }
        }
        let _ = self.release.send(true);
        let last = tokio::time::Instant::now() + Duration::from_secs(5);
        for mut task in still_running {
            if tokio::time::timeout_at(last, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

/// Aborts the task it holds when dropped: a heartbeat never outlives the
/// run it belongs to, however that run ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn work(
    shared: Arc<Shared>,
    worker: String,
    mut stop: watch::Receiver<bool>,
    release: watch::Receiver<bool>,
) {
    let mut pause = Duration::from_millis(500);
    loop {
        if *stop.borrow() {
            return;
        }
        // Registered before looking, so a notification that arrives while
        // the claim runs is not missed.
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let claimed = match shared.pool.get().await {
            Ok(client) => match queue::claim(&**client, &worker, shared.settings.lease).await {
                Ok(Some(job)) => Ok(Ok(job)),
                // Nothing due: sleep until the next retry is, at most POLL.
                Ok(None) => queue::next_due(&**client).await.map(Err),
                Err(e) => Err(e),
            }
            .map_err(|e| crate::db::describe_pg_error(&e)),
            Err(e) => Err(crate::db::describe_pool_error(&e)),
        };
        match claimed {
            Ok(Ok(job)) => {
                pause = Duration::from_millis(500);
                run(&shared, &worker, job, release.clone()).await;
            }
            Ok(Err(next)) => {
                let nap = next.map_or(POLL, |d| d.clamp(Duration::from_millis(10), POLL));
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep(nap) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(%worker, error = %e, "cannot claim jobs; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => {}
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

async fn run(shared: &Arc<Shared>, worker: &str, job: Claimed, release: watch::Receiver<bool>) {
    // The attempt continues the trace of the work that queued the job.
    let parent = job
        .trace_parent
        .as_deref()
        .and_then(telemetry::TraceContext::parse);
    let mut trace = telemetry::Span::start(
        format!("job {}", job.kind.as_str()),
        telemetry::Kind::Consumer,
        parent,
    );
    trace.set("mogothrow77.job.id", job.id);
    trace.set("mogothrow77.job.kind", job.kind.as_str());
    trace.set("mogothrow77.job.attempt", i64::from(job.attempt));
    let context = trace.context();
    let span = tracing::info_span!(
        "job",
        job_id = job.id,
        kind = job.kind.as_str(),
        attempt = job.attempt,
        request_id = job.request_id.as_deref().unwrap_or(""),
        trace_id = %context.trace_id_hex(),
        created_by = job.created_by,
    );
    telemetry::scope(context, run_job(shared, worker, job, release, trace))
        .instrument(span)
        .await
}

async fn run_job(
    shared: &Arc<Shared>,
    worker: &str,
    job: Claimed,
    mut release: watch::Receiver<bool>,
    mut trace: telemetry::Span,
) {
    let lost = Arc::new(AtomicBool::new(false));
    let lost_signal = Arc::new(Notify::new());
    let heartbeat = AbortOnDrop(tokio::spawn(heartbeat(
        shared.clone(),
        worker.to_string(),
        job.clone(),
        lost.clone(),
        lost_signal.clone(),
    )));
    let ctx = JobCtx::new(
        shared.pool.clone(),
        job.clone(),
        worker.to_string(),
        lost.clone(),
    );
    tracing::info!("job started");
    let started = Instant::now();
    let result = {
        let handler = async {
            match shared.handlers.get(job.kind) {
                Some(handler) => handler.run(&ctx).await,
                None => Err(JobError::Permanent(format!(
                    "this server has no handler for jobs of kind {}",
                    job.kind.as_str()
                ))),
            }
        };
        tokio::select! {
            r = handler => Some(r),
            _ = lost_signal.notified() => Some(Err(JobError::Lost)),
            _ = release.wait_for(|r| *r) => None,
        }
    };
    drop(heartbeat);
    match &result {
        Some(Err(e)) => trace.fail(e.to_string()),
        None => trace.set("mogothrow77.job.released", true),
        Some(Ok(())) => {}
    }
    let seconds = started.elapsed().as_secs_f64();
    let (ending, outcome) = match &result {
        None => (Ending::Released, "released"),
        Some(Ok(())) => (Ending::Succeeded, "succeeded"),
        Some(Err(JobError::Lost)) => {
            tracing::warn!(
                seconds,
                "job lost (cancelled, or taken over after its lease ran out)"
            );
            count(shared, job.kind, "lost", seconds);
            return;
        }
        Some(Err(JobError::Transient(e))) => (
            Ending::Failed {
                error: e,
                retry_in: Some(jittered(job.kind.backoff(job.attempt))),
            },
            "failed",
        ),
        Some(Err(JobError::Permanent(e))) => (
            Ending::Failed {
                error: e,
                retry_in: None,
            },
            "failed",
        ),
    };
    // Recording the end must not be lost to a passing database hiccup; if
    // it is after all, the lease runs out and the job runs again.
    let mut state = None;
    for wait in [0u64, 200, 1000, 3000] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let Ok(mut client) = shared.pool.get().await else {
            continue;
        };
        match queue::finish(&mut client, &job, worker, ending_again(&ending)).await {
            Ok(s) => {
                state = Some(s);
                break;
            }
            Err(e) => {
                tracing::warn!(error = %crate::db::describe_pg_error(&e), "cannot record the job's end")
            }
        }
    }
    count(shared, job.kind, outcome, seconds);
    match (state.flatten(), &result) {
        (Some(state), Some(Err(e))) => {
            tracing::warn!(seconds, %state, error = %e, "job failed")
        }
        (Some(state), _) => tracing::info!(seconds, %state, "job {outcome}"),
        (None, _) => tracing::warn!(seconds, "job ended but is no longer this worker's"),
    }
}

fn ending_again<'a>(ending: &Ending<'a>) -> Ending<'a> {
    match ending {
        Ending::Succeeded => Ending::Succeeded,
        Ending::Released => Ending::Released,
        Ending::Failed { error, retry_in } => Ending::Failed {
            error,
            retry_in: *retry_in,
        },
    }
}

fn count(shared: &Shared, kind: Kind, outcome: &str, seconds: f64) {
    let labels = JobLabels {
        kind: kind.as_str().to_string(),
        outcome: outcome.to_string(),
    };
    shared.metrics.job_runs.get_or_create(&labels).inc();
    shared
        .metrics
        .job_duration
        .get_or_create(&labels)
        .observe(seconds);
}

/// Renews the lease every third of it; flags the job lost when the renewal
/// finds it is no longer this worker's.
async fn heartbeat(
    shared: Arc<Shared>,
    worker: String,
    job: Claimed,
    lost: Arc<AtomicBool>,
    lost_signal: Arc<Notify>,
) {
    let every = shared.settings.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let renewed = match shared.pool.get().await {
            Ok(client) => queue::renew(&**client, &job, &worker, shared.settings.lease).await,
            Err(_) => continue,
        };
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, Ordering::SeqCst);
                lost_signal.notify_one();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %crate::db::describe_pg_error(&e), "cannot renew a job's lease")
            }
        }
    }
}

/// Takes back jobs whose lease ran out, refreshes the queue gauges, and
/// has the stored results of finished jobs tidied (`housekeeping`).
async fn keep_leases(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut last_purge: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(REAP_EVERY) => {}
            _ = stop.changed() => return,
        }
        let Ok(client) = shared.pool.get().await else {
            continue;
        };
        match queue::reap(&**client).await {
            Ok(ids) if !ids.is_empty() => {
                tracing::warn!(
                    ?ids,
                    "jobs taken back: their worker stopped renewing the lease"
                );
                shared.wake.notify_waiters();
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %crate::db::describe_pg_error(&e), "cannot check job leases")
            }
        }
        housekeeping::tidy(&**client, &mut last_purge).await;
        if let Ok(depth) = queue::depth(&**client).await {
            shared.metrics.jobs_due.set(depth.due);
            shared.metrics.jobs_running.set(depth.running);
            shared.metrics.jobs_dead.set(depth.dead);
            shared
                .metrics
                .jobs_oldest_due_seconds
                .set(depth.oldest_due_secs);
        }
    }
}
