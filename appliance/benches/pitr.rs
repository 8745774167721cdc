//! Point-in-time recovery benchmark (not a test): `cargo bench -p
//! mogothrow77 --bench pitr`. Needs root (the managed cluster runs as the
//! service user), PostgreSQL's server programs and pgBackRest.
//!
//! A managed appliance with `backup.pitr` and 1,000,000 records (the
//! records benchmark's collection of 10 fields, loaded by SQL), then:
//!
//! - a full base backup with pgBackRest, against copying the data
//!   directory with `cp -a` (the floor of any physical backup);
//! - the RPO: how long after a commit it is in the repository, with the
//!   default `backup.archive_timeout_secs = 60` and an otherwise idle
//!   database (the bound);
//! - the RTO: 100,000 more records written after the base backup (WAL to
//!   replay), then `mogothrow77 restore --to-time` (the old cluster's last
//!   WAL archived, restore, replay, promote, counts and audit chain checked)
//!   against `cp -a` of the data directory (the floor of putting a physical
//!   copy back).

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
use std::time::{Duration, Instant};

use harness::api::Site;
use load::timed;

const RECORDS: i64 = 1_000_000;
const MORE: i64 = 100_000;

fn copy_secs(from: &Path, to: &Path) -> f64 {
    let _ = std::fs::remove_dir_all(to);
    let secs = timed("cp -a", Command::new("cp").arg("-a").arg(from).arg(to));
    std::fs::remove_dir_all(to).expect("remove the copy");
    secs
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut site = runtime.block_on(Site::start_managed(
        "[api]\nrate_limit_per_minute = 1000000\nmax_concurrent_queries = 0\n\
         [backup]\nschedule = \"every 168h\"\npitr = true\n",
    ));
    let r = runtime.block_on(
        site.admin
            .post("/api/v1/collections", load::ten_fields("big")),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let state = site.config.state_dir();
    let cid = site
        .config
        .managed_sql("SELECT id FROM collections WHERE name = 'big'");
    let columns: Vec<String> = site
        .config
        .managed_sql(&format!(
            "SELECT id FROM collection_fields WHERE collection_id = {cid} ORDER BY position"
        ))
        .lines()
        .map(|id| format!("\"f_{id}\""))
        .collect();
    let table = format!("records.\"c_{cid}\"");
    let started = Instant::now();
    site.config
        .managed_sql(&load::load_sql(&table, &columns, 1, RECORDS));
    let database_mb = site
        .config
        .managed_sql("SELECT pg_database_size(current_database()) / 1000000");
    println!(
        "## {RECORDS} records with 10 fields loaded by SQL in {:.1} s; database {database_mb} MB",
        started.elapsed().as_secs_f64()
    );

    let data = state.join("postgres");
    let scratch = state.join("bench-copy");
    let config = state.join("pgbackrest/pgbackrest.conf");
    let backup_secs = timed(
        "pgbackrest backup",
        Command::new("runuser")
            .args(["-u", "mogothrow77", "--", "pgbackrest"])
            .arg(format!("--config={}", config.display()))
            .args(["--stanza=mogothrow77", "--type=full", "backup"]),
    );
    let cp_secs = copy_secs(&data, &scratch);
    println!(
        "full base backup (pgBackRest, zstd): {backup_secs:.1} s -> {:.2}x cp -a of the data \
         directory's {cp_secs:.1} s",
        backup_secs / cp_secs
    );

    // RPO: one commit on an idle database, until the archiver has it.
    std::thread::sleep(Duration::from_secs(5));
    let before = site
        .config
        .managed_sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
    let committed = Instant::now();
    site.config
        .managed_sql(&load::load_sql(&table, &columns, RECORDS + 1, RECORDS + 1));
    let rpo = loop {
        let now = site
            .config
            .managed_sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
        if now != before {
            break committed.elapsed().as_secs_f64();
        }
        assert!(
            committed.elapsed() < Duration::from_secs(180),
            "never archived"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "RPO: a commit on an idle database was in the repository {rpo:.1} s later \
         (bound: backup.archive_timeout_secs = 60)"
    );

    site.config.managed_sql(&load::load_sql(
        &table,
        &columns,
        RECORDS + 2,
        RECORDS + 1 + MORE,
    ));
    std::thread::sleep(Duration::from_millis(1100));
    let moment = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    std::thread::sleep(Duration::from_millis(1100));
    site.config.managed_sql(&load::load_sql(
        &table,
        &columns,
        RECORDS + MORE + 2,
        RECORDS + MORE + 2,
    ));
    assert!(site.app.stop().success(), "{}", site.app.output());
    let cp_back_secs = copy_secs(&data, &scratch);
    let restore_secs = timed(
        "restore --to-time",
        Command::new(&site.config.binary)
            .arg("--config")
            .arg(&site.config.config_path)
            .args(["restore", "--to-time", &moment]),
    );
    println!(
        "RTO: restore --to-time ({MORE} records of WAL to replay after the base backup; the old \
         cluster's last WAL archived, restored, replayed, promoted, counted, audit chain \
         verified): {restore_secs:.1} s -> {:.2}x cp -a of the data directory's {cp_back_secs:.1} s",
        restore_secs / cp_back_secs
    );
}
