//! Bulk import benchmark (not a test): `cargo bench -p mogothrow77 --bench imports`.
//!
//! A CSV of 10 fields per row (the records benchmark's collection: text,
//! an enum, integer, decimal, date, timestamp, boolean, text, JSON, a
//! unique text) imported through the API — upload to `completed` — at
//! 100,000 and 300,000 rows, against `psql`'s `\copy … FROM … (FORMAT csv,
//! HEADER)` of the same file into a table of the same column types and
//! unique index, measured in the same run. Then the same rows written by
//! batch writes (`POST …/records/batch`, 1,000 creates each, one after
//! another) against `\copy` of the same rows. Needs `psql`.

// Tests and benchmarks set up and inspect the database directly, not as the
// server does: tokio-postgres's own methods are fine here (clippy.toml).
#![allow(clippy::disallowed_methods)]

#[path = "../tests/it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;
#[allow(dead_code)]
mod load;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::api::Site;
use harness::pg::shared;

fn csv(rows: usize) -> String {
    let mut out = String::from("title,status,priority,amount,due,seen_at,done,owner,tags,code\n");
    for n in 0..rows {
        let status = ["open", "closed", "pending"][n % 3];
        out.push_str(&format!(
            "\"Ticket {n}, imported\",{status},{},{}.{:02},2026-{:02}-{:02},2026-01-31 12:{:02}:00+00,{},owner{},\"{{\"\"n\"\": {n}}}\",code-{n}\n",
            n % 1000,
            n % 5000,
            n % 100,
            n % 12 + 1,
            n % 28 + 1,
            n % 60,
            if n % 2 == 0 { "t" } else { "f" },
            n % 50,
        ));
    }
    out
}

/// Row `n` of [`csv`] as a record's `data`.
fn record(n: usize) -> serde_json::Value {
    let status = ["open", "closed", "pending"][n % 3];
    serde_json::json!({
        "title": format!("Ticket {n}, imported"),
        "status": status,
        "priority": n % 1000,
        "amount": format!("{}.{:02}", n % 5000, n % 100),
        "due": format!("2026-{:02}-{:02}", n % 12 + 1, n % 28 + 1),
        "seen_at": format!("2026-01-31T12:{:02}:00Z", n % 60),
        "done": n.is_multiple_of(2),
        "owner": format!("owner{}", n % 50),
        "tags": { "n": n },
        "code": format!("code-{n}"),
    })
}

/// `\copy` of `file` into a new plain table `copy_<name>` of the bench
/// collection's column types and indexes; returns the seconds it took.
fn copy_reference(
    runtime: &tokio::runtime::Runtime,
    site: &Site,
    dir: &std::path::Path,
    name: &str,
    file: &str,
) -> f64 {
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(&path, file).expect("write csv");
    let sql = runtime.block_on(shared().connect(&site.db));
    runtime
        .block_on(sql.batch_execute(&format!(
            "CREATE TABLE copy_{name} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
             title text, status text, priority bigint, amount numeric, due date, \
             seen_at timestamptz, done boolean, owner text, tags jsonb, code text UNIQUE); \
             CREATE INDEX ON copy_{name} (status, id); CREATE INDEX ON copy_{name} (priority, id);"
        )))
        .expect("reference table");
    let started = Instant::now();
    let out = Command::new("psql")
        .arg(shared().dsn(&site.db))
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg("-c")
        .arg(format!(
            "\\copy copy_{name} (title, status, priority, amount, due, seen_at, done, owner, tags, code) FROM '{}' WITH (FORMAT csv, HEADER)",
            path.display()
        ))
        .output()
        .expect("psql");
    let secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let site = runtime.block_on(Site::start_with(
        "[jobs]\nimport_max_mb = 1024\n[api]\nrate_limit_per_minute = 1000000\nmax_concurrent_queries = 0\n",
    ));
    let dir = tempfile::tempdir().expect("dir");
    harness::chmod(dir.path(), 0o755);
    println!("## Bulk import of CSV, 10 fields per row, through the API vs psql \\copy");
    for (i, rows) in [100_000usize, 300_000].into_iter().enumerate() {
        let name = format!("big{i}");
        let r = runtime.block_on(
            site.admin
                .post("/api/v1/collections", load::ten_fields(&name)),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let file = csv(rows);
        let started = Instant::now();
        let r = runtime.block_on(site.admin.call_raw(
            "POST",
            &format!("/api/v1/collections/{name}/imports"),
            Some(&file),
            &[("Content-Type", "text/csv")],
        ));
        assert_eq!(r.status, 202, "{}", r.body);
        let uploaded = started.elapsed().as_secs_f64();
        let id = r.json()["id"].as_i64().expect("id");
        let done = loop {
            let i = runtime
                .block_on(site.admin.get(&format!("/api/v1/imports/{id}")))
                .json();
            if !matches!(i["state"].as_str(), Some("queued" | "running")) {
                break i;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let api_secs = started.elapsed().as_secs_f64();
        assert_eq!(done["state"], "completed", "{done}");
        assert_eq!(done["rows_imported"].as_u64(), Some(rows as u64), "{done}");

        let copy_secs = copy_reference(&runtime, &site, dir.path(), &name, &file);
        println!(
            "{rows:>8} rows {:>6.1} MB: API {api_secs:>6.2} s ({:>7.0} rows/s; upload {uploaded:.2} s)  \\copy {copy_secs:>5.2} s ({:>7.0} rows/s)  -> {:.1}x",
            file.len() as f64 / 1e6,
            rows as f64 / api_secs,
            rows as f64 / copy_secs,
            api_secs / copy_secs
        );
    }

    println!(
        "## Batch writes of 1,000 creates, 10 fields per record, through the API vs psql \\copy"
    );
    let rows = 20_000;
    let name = "batched";
    let r = runtime.block_on(
        site.admin
            .post("/api/v1/collections", load::ten_fields(name)),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let bodies: Vec<serde_json::Value> = (0..rows)
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(|chunk| {
            let ops: Vec<serde_json::Value> = chunk
                .iter()
                .map(|n| serde_json::json!({ "op": "create", "data": record(*n) }))
                .collect();
            serde_json::json!({ "operations": ops })
        })
        .collect();
    let path = format!("/api/v1/collections/{name}/records/batch");
    let started = Instant::now();
    for body in bodies {
        let r = runtime.block_on(site.admin.post(&path, body));
        assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(300)]);
    }
    let api_secs = started.elapsed().as_secs_f64();
    let copy_secs = copy_reference(&runtime, &site, dir.path(), name, &csv(rows));
    println!(
        "{rows:>8} rows in batches of 1,000: API {api_secs:>6.2} s ({:>7.0} rows/s)  \\copy {copy_secs:>5.2} s ({:>7.0} rows/s)  -> {:.1}x",
        rows as f64 / api_secs,
        rows as f64 / copy_secs,
        api_secs / copy_secs
    );
}
