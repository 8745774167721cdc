//! Backup and restore benchmark (not a test): `cargo bench -p mogothrow77
//! --bench backups`. Needs PostgreSQL's client programs.
//!
//! 1,000,000 records (the records benchmark's collection of 10 fields,
//! loaded by SQL) in an external database, then, each against a reference
//! measured in the same run:
//!
//! - `mogothrow77 backup --out` (record counts and `pg_dump` in one
//!   snapshot, read back with `pg_restore --list`, recorded) against a plain
//!   `pg_dump --format=custom` of the same database: how long a logical
//!   backup takes, the floor of the RPO a schedule can give;
//! - the same backup encrypted with age (`backup.age_recipients_file`)
//!   against the plain one: what encryption costs;
//! - `mogothrow77 backup drill` (the archive restored into a scratch
//!   database, every collection counted, the audit chain verified, the copy
//!   dropped) against `pg_restore --single-transaction` of the archive into
//!   an empty database: the floor of a logical restore's RTO.

// Tests and benchmarks set up and inspect the database directly, not as the
// server does: tokio-postgres's own methods are fine here (clippy.toml).
#![allow(clippy::disallowed_methods)]

#[path = "../tests/it/harness/mod.rs"]
#[allow(dead_code)]
mod harness;
#[allow(dead_code)]
mod load;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use harness::api::Site;
use harness::pg::shared;
use load::timed;

const RECORDS: i64 = 1_000_000;

fn size_mb(path: &Path) -> f64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let site = runtime.block_on(Site::start_with(
        "[api]\nrate_limit_per_minute = 1000000\nmax_concurrent_queries = 0\n",
    ));
    let r = runtime.block_on(
        site.admin
            .post("/api/v1/collections", load::ten_fields("big")),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let sql = runtime.block_on(site.sql());
    let (cid, columns): (i64, Vec<String>) = runtime.block_on(async {
        let cid: i64 = sql
            .query_one("SELECT id FROM collections WHERE name = 'big'", &[])
            .await
            .expect("collection")
            .get(0);
        let columns = sql
            .query(
                "SELECT id FROM collection_fields WHERE collection_id = $1 ORDER BY position",
                &[&cid],
            )
            .await
            .expect("fields")
            .iter()
            .map(|r| format!("\"f_{}\"", r.get::<_, i64>(0)))
            .collect();
        (cid, columns)
    });
    let started = Instant::now();
    runtime.block_on(load::load_records(
        &sql,
        &format!("records.\"c_{cid}\""),
        &columns,
        1,
        RECORDS,
    ));
    let database_mb: i64 = runtime
        .block_on(sql.query_one("SELECT pg_database_size(current_database()) / 1000000", &[]))
        .expect("size")
        .get(0);
    println!(
        "## {RECORDS} records with 10 fields loaded by SQL in {:.1} s; database {database_mb} MB",
        started.elapsed().as_secs_f64()
    );

    let state = site.config.state_dir();
    let dsn = shared().dsn(&site.db);
    let reference = state.join("reference.dump");
    let pg_dump_secs = timed(
        "pg_dump",
        Command::new(shared().program("pg_dump"))
            .args(["--format=custom", "--file"])
            .arg(&reference)
            .arg(format!("--dbname={dsn}")),
    );
    harness::chmod(&reference, 0o644);
    let plain = state.join("plain.dump");
    let backup_secs = timed(
        "backup",
        Command::new(&site.config.binary)
            .arg("--config")
            .arg(&site.config.config_path)
            .args(["backup", "--out"])
            .arg(&plain),
    );
    let identity = mogothrow77::age::Identity::generate().expect("key");
    let recipients = state.join("recipients.txt");
    std::fs::write(&recipients, format!("{}\n", identity.recipient())).expect("recipients");
    harness::chmod(&recipients, 0o644);
    let sealed = state.join("sealed.dump.age");
    let encrypted_secs = timed(
        "encrypted backup",
        Command::new(&site.config.binary)
            .arg("--config")
            .arg(&site.config.config_path)
            .env("MOGOTHROW77_BACKUP__AGE_RECIPIENTS_FILE", &recipients)
            .args(["backup", "--out"])
            .arg(&sealed),
    );
    println!(
        "backup --out: {backup_secs:.1} s, {:.1} MB -> {:.2}x pg_dump -Fc's {pg_dump_secs:.1} s ({:.1} MB)",
        size_mb(&plain),
        backup_secs / pg_dump_secs,
        size_mb(&reference)
    );
    println!(
        "backup --out, age-encrypted: {encrypted_secs:.1} s, {:.1} MB -> {:.2}x the plain backup",
        size_mb(&sealed),
        encrypted_secs / backup_secs
    );

    // The newest recorded backup is the encrypted one: drill it with its key.
    let key = state.join("key.txt");
    std::fs::write(&key, identity.to_secret_string().as_bytes()).expect("key");
    let drill_secs = timed(
        "drill",
        Command::new(&site.config.binary)
            .arg("--config")
            .arg(&site.config.config_path)
            .args(["backup", "drill", "--identity"])
            .arg(&key),
    );
    let empty = runtime.block_on(shared().create_database());
    let pg_restore_secs = timed(
        "pg_restore",
        Command::new(shared().program("pg_restore"))
            .args([
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
            ])
            .arg(format!("--dbname={}", shared().dsn(&empty)))
            .arg(&reference),
    );
    println!(
        "backup drill (decrypt, restore into a scratch database, count, verify the audit chain): \
         {drill_secs:.1} s -> {:.2}x pg_restore --single-transaction's {pg_restore_secs:.1} s",
        drill_secs / pg_restore_secs
    );
}
