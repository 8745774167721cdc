//! Scheduled backups (`[backup]`): the schedule fires, archives are
//! counted, copied, hooked and pruned; a run whose job lease runs out
//! mid-dump is not repeated; a kill -9 mid-dump leaves nothing counted as
//! good; a failing copy is reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::harness::api::Site;
use crate::harness::files::{names_in, sha256_hex, wait_for};
use crate::harness::{chmod, give_to_service_user, open_tempdir};

fn script(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write script");
    chmod(path, 0o755);
}

/// A file the server (as the service user) may append to.
fn shared_file(path: &Path) {
    std::fs::write(path, "").expect("create");
    chmod(path, 0o666);
}

/// Client programs whose `pg_dump` notes each run (its pid) in `runs` and
/// sleeps `delay` seconds before dumping.
fn slow_pg_dump(dir: &Path, runs: &Path, delay: u32) -> PathBuf {
    let real = crate::harness::pg::shared().program("pg_dump");
    let real_dir = real.parent().expect("bin dir");
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).expect("bin");
    chmod(&bin, 0o755);
    for program in ["pg_restore", "psql"] {
        std::os::unix::fs::symlink(real_dir.join(program), bin.join(program)).expect("link");
    }
    script(
        &bin.join("pg_dump"),
        &format!(
            "#!/bin/sh\nif [ \"$1\" != --version ]; then echo $$ >> {runs}; sleep {delay}; fi\n\
             exec {real} \"$@\"\n",
            runs = runs.display(),
            real = real.display()
        ),
    );
    bin
}

#[tokio::test(flavor = "multi_thread")]
async fn the_schedule_fires_and_archives_are_counted_copied_and_pruned() {
    let tmp = open_tempdir();
    let copies = tmp.path().join("copies");
    std::fs::create_dir(&copies).expect("copies");
    give_to_service_user(&copies);
    let hook_log = tmp.path().join("hook.log");
    shared_file(&hook_log);
    let hook = tmp.path().join("hook.sh");
    script(
        &hook,
        &format!(
            "#!/bin/sh\necho \"$1 $MOGOTHROW77_BACKUP_SHA256\" >> {}\n",
            hook_log.display()
        ),
    );
    let site = Site::start_with(&format!(
        "[backup]\nschedule = \"every 10s\"\nkeep = 2\ncopy_to = \"{}\"\nhook = \"{}\"\n",
        copies.display(),
        hook.display()
    ))
    .await;
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "people", "fields": [{ "name": "name", "type": "text" }] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    for name in ["ada", "grace", "edsger"] {
        let r = site
            .admin
            .post(
                "/api/v1/collections/people/records",
                json!({ "data": { "name": name } }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let sql = site.sql().await;
    let written_after = std::time::SystemTime::now();
    // Backups 10 s apart: three taken after the records were written.
    wait_for(
        "three scheduled backups",
        Duration::from_secs(90),
        async || {
            let n: i64 = sql
            .query_one(
                "SELECT count(*) FROM backups WHERE scheduled_for IS NOT NULL AND started_at > $1",
                &[&written_after],
            )
            .await
            .expect("count")
            .get(0);
            (n >= 3).then_some(())
        },
    )
    .await;

    let rows = sql
        .query(
            "SELECT archive, sha256, record_counts, pruned_at IS NOT NULL, copies \
             FROM backups WHERE scheduled_for IS NOT NULL ORDER BY finished_at DESC",
            &[],
        )
        .await
        .expect("backups");
    let dir = site.config.state_dir().join("backups/scheduled");
    let kept: Vec<_> = rows.iter().filter(|r| !r.get::<_, bool>(3)).collect();
    assert_eq!(kept.len(), 2, "backup.keep = 2 keeps two");
    assert!(rows.len() >= 3, "at least one was pruned: {}", rows.len());
    let newest_counts: serde_json::Value = rows[0].get(2);
    assert_eq!(newest_counts["people"], 3, "{newest_counts}");
    let hooked = std::fs::read_to_string(&hook_log).expect("hook log");
    for row in &rows {
        let archive = PathBuf::from(row.get::<_, String>(0));
        let sha: String = row.get(1);
        let pruned: bool = row.get(3);
        assert_eq!(archive.parent(), Some(dir.as_path()));
        let copy = copies.join(archive.file_name().expect("name"));
        assert_eq!(sha256_hex(&copy), sha, "the off-host copy is the archive");
        assert!(
            hooked.contains(&format!("{} {sha}", archive.display())),
            "{hooked}"
        );
        let recorded: serde_json::Value = row.get(4);
        assert_eq!(recorded.as_array().map(Vec::len), Some(2), "{recorded}");
        assert!(
            recorded
                .as_array()
                .into_iter()
                .flatten()
                .all(|c| c["ok"] == true),
            "{recorded}"
        );
        if pruned {
            assert!(!archive.exists(), "pruned {} is gone", archive.display());
        } else {
            assert_eq!(sha256_hex(&archive), sha, "{}", archive.display());
        }
    }
    let files = names_in(&dir);
    assert_eq!(files.len(), 2, "only what is kept stays: {files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("mogothrow77-") && f.ends_with(".dump")),
        "{files:?}"
    );

    // Each run is audited, and the chain still verifies.
    let actions: Vec<String> = sql
        .query(
            "SELECT DISTINCT action FROM audit_log WHERE action LIKE 'backup.%'",
            &[],
        )
        .await
        .expect("audit")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        actions.contains(&"backup.create".to_string()),
        "{actions:?}"
    );
    assert!(actions.contains(&"backup.prune".to_string()), "{actions:?}");
    let verified = site.config.run(&["audit", "verify"]);
    assert_eq!(verified.code(), Some(0), "{}", verified.all());
    let report = site.config.run(&["diagnose"]);
    assert!(
        report
            .stdout
            .lines()
            .any(|l| l.contains("backup schedule") && l.contains("pass")),
        "{}",
        report.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_hook_is_reported_and_the_archive_still_counts() {
    let tmp = open_tempdir();
    let hook = tmp.path().join("hook.sh");
    script(
        &hook,
        "#!/bin/sh\necho 'bucket refused the upload' >&2\nexit 3\n",
    );
    let site = Site::start_with(&format!(
        "[backup]\nschedule = \"every 1h\"\nhook = \"{}\"\n",
        hook.display()
    ))
    .await;
    let sql = site.sql().await;
    let copies: serde_json::Value = wait_for("the backup", Duration::from_secs(60), async || {
        sql.query_opt(
            "SELECT copies FROM backups WHERE scheduled_for IS NOT NULL",
            &[],
        )
        .await
        .expect("backups")
        .map(|r| r.get(0))
    })
    .await;
    assert_eq!(copies[0]["ok"], false, "{copies}");
    assert!(
        copies[0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("exit status: 3"),
        "{copies}"
    );
    let failure: i64 = sql
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'backup.copy' AND outcome = 'failure' \
               AND details::text LIKE '%bucket refused the upload%'",
            &[],
        )
        .await
        .expect("audit")
        .get(0);
    assert_eq!(failure, 1);
    let report = site.config.run(&["diagnose"]);
    assert!(
        report.stdout.lines().any(|l| l.contains("backup schedule")
            && l.contains("warn")
            && l.contains("exit status: 3")),
        "{}",
        report.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dump_that_outlives_its_lease_is_not_taken_twice() {
    let tmp = open_tempdir();
    let runs = tmp.path().join("runs");
    shared_file(&runs);
    let bin = slow_pg_dump(tmp.path(), &runs, 6);
    let site = Site::start_with(&format!(
        "postgres_bin_dir = \"{}\"\n[backup]\nschedule = \"every 1h\"\n",
        bin.display()
    ))
    .await;
    let sql = site.sql().await;
    wait_for("the dump to start", Duration::from_secs(30), async || {
        (!std::fs::read_to_string(&runs)
            .unwrap_or_default()
            .is_empty())
        .then_some(())
    })
    .await;
    // What the lease keeper does when a lease ran out: the job is queued
    // again while its first run still dumps.
    let taken_back = sql
        .execute(
            "UPDATE jobs SET state = 'queued', run_at = now(), lease_until = NULL, worker = NULL \
             WHERE kind = 'backup' AND state = 'running'",
            &[],
        )
        .await
        .expect("take back");
    assert_eq!(taken_back, 1);
    let (state, attempts): (String, i32) =
        wait_for("the job to end", Duration::from_secs(60), async || {
            let row = sql
                .query_one(
                    "SELECT state, attempts FROM jobs WHERE kind = 'backup'",
                    &[],
                )
                .await
                .expect("job");
            let state: String = row.get(0);
            (state != "queued" && state != "running").then(|| (state, row.get(1)))
        })
        .await;
    assert_eq!(state, "succeeded");
    assert_eq!(
        attempts, 2,
        "the second attempt ran, and found the slot taken"
    );
    let backups: i64 = sql
        .query_one(
            "SELECT count(*) FROM backups WHERE scheduled_for IS NOT NULL",
            &[],
        )
        .await
        .expect("backups")
        .get(0);
    assert_eq!(backups, 1);
    let dumps = std::fs::read_to_string(&runs).expect("runs");
    assert_eq!(dumps.lines().count(), 1, "pg_dump ran once: {dumps}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_during_the_dump_leaves_no_archive_counted_as_good() {
    let tmp = open_tempdir();
    let runs = tmp.path().join("runs");
    shared_file(&runs);
    let bin = slow_pg_dump(tmp.path(), &runs, 4);
    let mut site = Site::start_with(&format!(
        "postgres_bin_dir = \"{}\"\n[jobs]\nlease_secs = 3\n[backup]\nschedule = \"every 1h\"\n",
        bin.display()
    ))
    .await;
    let dumping: i32 = wait_for("the dump to start", Duration::from_secs(30), async || {
        std::fs::read_to_string(&runs)
            .unwrap_or_default()
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
    })
    .await;
    // kill -9 of the service; systemd takes its children with it.
    site.app.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dumping),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = site.app.wait_exit(Duration::from_secs(10));
    let sql = site.sql().await;
    let dir = site.config.state_dir().join("backups/scheduled");
    let finished = |dir: &Path| -> Vec<String> {
        names_in(dir)
            .into_iter()
            .filter(|n| n.ends_with(".dump"))
            .collect()
    };
    assert!(
        finished(&dir).is_empty(),
        "no archive: {:?}",
        finished(&dir)
    );
    let recorded: i64 = sql
        .query_one("SELECT count(*) FROM backups", &[])
        .await
        .expect("backups")
        .get(0);
    assert_eq!(recorded, 0, "nothing counted as good");

    // Started again, the job's lease runs out, the backup is taken, and
    // what the killed run left is gone.
    site.app = site.config.spawn();
    site.app.wait_ready();
    wait_for(
        "the backup after the restart",
        Duration::from_secs(60),
        async || {
            let n: i64 = sql
                .query_one(
                    "SELECT count(*) FROM backups WHERE scheduled_for IS NOT NULL",
                    &[],
                )
                .await
                .expect("backups")
                .get(0);
            (n == 1).then_some(())
        },
    )
    .await;
    let names = names_in(&dir);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].ends_with(".dump"), "{names:?}");
}

/// Mounts a tmpfs of `bytes` at `dir` for the life of the value.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, bytes: u64) -> SmallDisk {
        std::fs::create_dir_all(dir).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes},mode=0700"))
            .arg("tmpfs")
            .arg(dir)
            .status()
            .expect("mount");
        assert!(status.success(), "mount tmpfs at {}", dir.display());
        give_to_service_user(dir);
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_the_run_cleanly_and_keeps_the_last_good_backup() {
    if !crate::harness::is_root() {
        eprintln!("skipped: mounting a small file system needs root (CI runs it as root)");
        return;
    }
    let tmp = open_tempdir();
    let dir = tmp.path().join("backups");
    // Room for one archive and a half: the first scheduled backup fits,
    // the second runs out of space part-way.
    let db = crate::harness::pg::shared().create_database().await;
    let probe =
        crate::harness::app::AppConfig::external(&crate::harness::pg::shared().dsn(&db), "");
    assert_eq!(probe.run(&["migrate"]).code(), Some(0));
    let sized = probe.state_dir().join("size.dump");
    assert_eq!(
        probe
            .run(&["backup", "--out", sized.to_str().expect("path")])
            .code(),
        Some(0)
    );
    let one = std::fs::metadata(&sized).expect("size").len();
    let _disk = SmallDisk::mount(&dir, one * 3 / 2 + 4096);
    let site = Site::start_with(&format!(
        "[backup]\nschedule = \"every 10s\"\nkeep = 1\ndir = \"{}\"\n",
        dir.display()
    ))
    .await;
    let sql = site.sql().await;
    let first: String = wait_for("the first backup", Duration::from_secs(60), async || {
        sql.query_opt(
            "SELECT archive FROM backups WHERE scheduled_for IS NOT NULL",
            &[],
        )
        .await
        .expect("backups")
        .map(|r| r.get(0))
    })
    .await;
    let good = std::fs::read(&first).expect("first archive");
    let error: String = wait_for("a failed run", Duration::from_secs(60), async || {
        sql.query_opt(
            "SELECT details::jsonb->>'error' FROM audit_log \
             WHERE action = 'backup.create' AND outcome = 'failure' LIMIT 1",
            &[],
        )
        .await
        .expect("audit")
        .map(|r| r.get(0))
    })
    .await;
    assert!(
        error.contains("No space left") || error.contains("could not write"),
        "{error}"
    );
    // The failed run left nothing behind and took nothing away.
    let names = names_in(&dir);
    assert_eq!(
        names,
        vec![PathBuf::from(&first)
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned()]
    );
    assert_eq!(std::fs::read(&first).expect("still there"), good);
    let recorded: i64 = sql
        .query_one("SELECT count(*) FROM backups WHERE pruned_at IS NULL", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(recorded, 1);
    let job_error: String = wait_for("the job's error", Duration::from_secs(10), async || {
        sql.query_opt(
            "SELECT last_error FROM jobs WHERE kind = 'backup' AND last_error IS NOT NULL LIMIT 1",
            &[],
        )
        .await
        .expect("jobs")
        .map(|r| r.get(0))
    })
    .await;
    assert!(job_error.contains("pg_dump failed"), "{job_error}");
    let report = site.config.run(&["diagnose"]);
    assert!(
        report
            .stdout
            .lines()
            .any(|l| l.contains("backup schedule") && l.contains("failed and is retried")),
        "{}",
        report.stdout
    );
    drop(site);
}
