//! Job queue benchmark (not a test): `cargo bench -p mogothrow77 --bench jobs`.
//!
//! The queue's own cost per job, with a handler that does nothing: 5,000
//! jobs are queued, then workers claim and finish them with the statements
//! the server's workers run (`jobs::queue::claim`, then `finish`), with 1 and
//! 4 workers on one connection pool, and 2 workers on each of two pools (two
//! replicas sharing the queue). Jobs/s from the first claim to the last
//! finish; afterwards every job must be `succeeded` after exactly one
//! attempt (no job run twice, none lost).

// Tests and benchmarks set up and inspect the database directly, not as the
// server does: tokio-postgres's own methods are fine here (clippy.toml).
#![allow(clippy::disallowed_methods)]

#[path = "../tests/it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;

use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use harness::app::AppConfig;
use harness::pg::{pool, PgCluster};
use mogothrow77::queue::{self, Ending};

const JOBS: i64 = 5_000;
const LEASE: Duration = Duration::from_secs(30);

/// Claims and finishes jobs until none is left.
async fn worker(pool: Pool, name: String) -> u64 {
    let mut done = 0;
    let mut client = pool.get().await.expect("connection");
    loop {
        let Some(job) = queue::claim(&**client, &name, LEASE).await.expect("claim") else {
            return done;
        };
        let state = queue::finish(&mut client, &job, &name, Ending::Succeeded)
            .await
            .expect("finish");
        assert_eq!(state.as_deref(), Some("succeeded"));
        done += 1;
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cluster = PgCluster::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime.block_on(cluster.create_database());
    let dsn = cluster.dsn(&db);
    // The schema, by the binary's own migrations.
    let migrated = AppConfig::external(&dsn, "").run(&["migrate"]);
    assert!(migrated.status.success(), "{}", migrated.stderr);
    let sql = runtime.block_on(cluster.connect(&db));

    println!("## Job queue, no-op handler: {JOBS} jobs claimed and finished");
    let mut single = None;
    for (label, replicas, workers) in [
        ("1 worker", 1usize, 1usize),
        ("4 workers", 1, 4),
        ("2 replicas x 2 workers", 2, 2),
    ] {
        runtime
            .block_on(sql.batch_execute(&format!(
                "TRUNCATE jobs CASCADE; \
                 INSERT INTO jobs (kind, payload, max_attempts) \
                 SELECT 'export', '{{}}', 4 FROM generate_series(1, {JOBS});"
            )))
            .expect("queue jobs");
        let pools: Vec<Pool> = (0..replicas).map(|_| pool(&dsn, workers)).collect();
        let started = Instant::now();
        let done: u64 = runtime.block_on(async {
            let mut tasks = Vec::new();
            for (r, p) in pools.iter().enumerate() {
                for w in 0..workers {
                    tasks.push(tokio::spawn(worker(p.clone(), format!("bench-{r}#{w}"))));
                }
            }
            let mut total = 0;
            for t in tasks {
                total += t.await.expect("worker");
            }
            total
        });
        let secs = started.elapsed().as_secs_f64();
        let check = runtime
            .block_on(sql.query_one(
                "SELECT count(*) FILTER (WHERE state = 'succeeded' AND attempts = 1), \
                        (SELECT count(*) FROM job_attempts) FROM jobs",
                &[],
            ))
            .expect("check");
        assert_eq!(check.get::<_, i64>(0), JOBS, "every job succeeded once");
        assert_eq!(check.get::<_, i64>(1), JOBS, "one attempt each");
        assert_eq!(done as i64, JOBS);
        let rate = JOBS as f64 / secs;
        let base = *single.get_or_insert(rate);
        println!(
            "{label:26} {rate:>8.0} jobs/s  ({secs:.2} s; {:.2}x of 1 worker)",
            rate / base
        );
    }
}
