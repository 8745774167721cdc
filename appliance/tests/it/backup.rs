//! `mogothrow77 backup`: a pg_dump archive that restores to the same data.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::harness::app::AppConfig;
use crate::harness::pg::shared;

#[tokio::test(flavor = "multi_thread")]
async fn backup_restores_to_the_same_data_and_never_overwrites() {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    assert_eq!(config.run(&["migrate"]).code(), Some(0));
    let client = shared().connect(&db).await;
    client
        .batch_execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             SELECT 10000 + g, 'marker ' || g, 'now', '0' FROM generate_series(1, 3) g",
        )
        .await
        .expect("marker rows");

    // In the state directory: the command runs as the service user.
    let out = config.state_dir().join("backup.dump");
    let done = config.run(&["backup", "--out", out.to_str().expect("path")]);
    assert_eq!(done.code(), Some(0), "{}", done.all());
    assert!(done.stdout.contains("backup written"), "{}", done.stdout);
    let mode = std::fs::metadata(&out)
        .expect("archive")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the archive is private: {mode:o}");

    // An independent restore into an empty database has the same rows.
    let copy = shared().create_database().await;
    let restored = Command::new(shared().program("pg_restore"))
        .args(["--no-owner", "--no-privileges", "--dbname"])
        .arg(shared().dsn(&copy))
        .arg(&out)
        .output()
        .expect("pg_restore");
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let count = |c: tokio_postgres::Client| async move {
        c.query_one(
            "SELECT count(*), string_agg(name, ',' ORDER BY version) FROM refinery_schema_history",
            &[],
        )
        .await
        .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)))
        .expect("history")
    };
    assert_eq!(
        count(shared().connect(&copy).await).await,
        count(shared().connect(&db).await).await
    );

    // A second backup to the same file is refused; the first stays intact.
    let before = std::fs::read(&out).expect("archive");
    let again = config.run(&["backup", "--out", out.to_str().expect("path")]);
    assert_eq!(again.code(), Some(1), "{}", again.all());
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(std::fs::read(&out).expect("archive"), before);
}

#[test]
fn managed_backup_starts_the_cluster_for_its_run() {
    let config = AppConfig::new("");
    assert_eq!(config.run(&["migrate"]).code(), Some(0));
    let out = config.state_dir().join("managed.dump");
    let done = config.run(&["backup", "--out", out.to_str().expect("path")]);
    assert_eq!(done.code(), Some(0), "{}", done.all());
    assert!(out.is_file());
    // The cluster it started for the dump is stopped again.
    assert!(!config.state_dir().join("postgres/postmaster.pid").exists());
}

/// The number of entries `audit verify` reports (the chain checked whole).
pub fn audit_entries(config: &AppConfig) -> String {
    let verified = config.run(&["audit", "verify"]);
    assert_eq!(verified.code(), Some(0), "{}", verified.all());
    verified
        .stdout
        .split("audit log intact: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("entry count")
        .to_string()
}

#[test]
fn managed_restore_brings_back_the_archived_state() {
    let config = AppConfig::new("");
    let mut app = config.spawn();
    app.wait_ready();
    let archive = config.state_dir().join("before.dump");
    let path = archive.to_str().expect("path");
    assert_eq!(config.run(&["backup", "--out", path]).code(), Some(0));
    let before = audit_entries(&config);
    // A change after the backup: a setup link issued (an audit entry).
    assert_eq!(config.run(&["admin", "setup-token"]).code(), Some(0));
    assert_ne!(audit_entries(&config), before);

    // Never under a running service.
    let refused = config.run(&["restore", "--from", path]);
    assert_eq!(refused.code(), Some(1), "{}", refused.all());
    assert!(
        refused.stderr.contains("stop it first"),
        "{}",
        refused.stderr
    );
    app.stop();

    // Not an archive: refused before anything is dropped.
    let junk = config.state_dir().join("junk.dump");
    std::fs::write(&junk, b"not an archive").expect("write");
    let bad = config.run(&["restore", "--from", junk.to_str().expect("path")]);
    assert_eq!(bad.code(), Some(1), "{}", bad.all());
    assert!(
        bad.stderr.contains("not a readable pg_dump archive"),
        "{}",
        bad.stderr
    );

    let restored = config.run(&["restore", "--from", path]);
    assert_eq!(restored.code(), Some(0), "{}", restored.all());
    assert!(restored.stdout.contains("restored"), "{}", restored.stdout);
    let mut app = config.spawn();
    app.wait_ready();
    // The change after the backup is gone and the chain is intact.
    assert_eq!(audit_entries(&config), before);
    app.stop();
}

/// Scratch copies of `db` (named after its oid; other tests' copies of
/// their own databases may exist meanwhile).
pub async fn scratch_copies(db: &str) -> Vec<String> {
    shared()
        .connect("postgres")
        .await
        .query(
            "SELECT c.datname FROM pg_database c, pg_database d WHERE d.datname = $1 \
               AND (starts_with(c.datname, 'mogothrow77_rehearsal_' || d.oid || '_') \
                 OR starts_with(c.datname, 'mogothrow77_restore_check_' || d.oid || '_'))",
            &[&db],
        )
        .await
        .expect("databases")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_restore_proves_the_archive_and_leaves_no_copy() {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    assert_eq!(config.run(&["migrate"]).code(), Some(0));
    let row = shared()
        .connect(&db)
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM pg_tables \
                      WHERE schemaname NOT IN ('pg_catalog', 'information_schema')), \
                    (SELECT count(*) FROM refinery_schema_history)",
            &[],
        )
        .await
        .expect("inventory");
    let (tables, migrations): (i64, i64) = (row.get(0), row.get(1));
    // A copy a killed run left behind is dropped; another appliance's
    // (named after another database's oid) is not touched.
    let server = shared().connect("postgres").await;
    let oid: u32 = server
        .query_one("SELECT oid FROM pg_database WHERE datname = $1", &[&db])
        .await
        .expect("oid")
        .get(0);
    let other = format!("mogothrow77_restore_check_1{oid}_1");
    for name in [format!("mogothrow77_restore_check_{oid}_1"), other.clone()] {
        server
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("leftover");
    }
    assert_eq!(scratch_copies(&db).await.len(), 1);
    let out = config.state_dir().join("checked.dump");
    let done = config.run(&[
        "backup",
        "--out",
        out.to_str().expect("path"),
        "--test-restore",
    ]);
    assert_eq!(done.code(), Some(0), "{}", done.all());
    assert!(
        done.stdout.contains(&format!(
            "with all {tables} tables and {migrations} applied migrations"
        )),
        "{}",
        done.stdout
    );
    assert!(out.is_file());
    assert_eq!(scratch_copies(&db).await, Vec::<String>::new());
    let others: i64 = server
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&other],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(others, 1, "another database's copy is left alone");
    server
        .batch_execute(&format!("DROP DATABASE {other}"))
        .await
        .expect("drop");
}

/// A database owned, and migrated, by a role that may not create
/// databases (as a DBA would set one up); also a superuser connection to it.
pub async fn migrated_by_a_role_without_createdb() -> (String, AppConfig, tokio_postgres::Client) {
    let db = shared().create_database().await;
    let role = format!("{db}_owner");
    let admin = shared().connect(&db).await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN NOCREATEDB; ALTER DATABASE {db} OWNER TO {role}; \
             ALTER SCHEMA public OWNER TO {role}"
        ))
        .await
        .expect("role");
    let dsn = shared()
        .dsn(&db)
        .replace("user=postgres", &format!("user={role}"));
    let config = AppConfig::external(&dsn, "");
    let migrated = config.run(&["migrate"]);
    assert_eq!(migrated.code(), Some(0), "{}", migrated.all());
    (db, config, admin)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_restore_that_cannot_run_says_why_and_keeps_the_archive() {
    let (db, config, _) = migrated_by_a_role_without_createdb().await;
    let out = config.state_dir().join("unchecked.dump");
    let failed = config.run(&[
        "backup",
        "--out",
        out.to_str().expect("path"),
        "--test-restore",
    ]);
    assert_eq!(failed.code(), Some(1), "{}", failed.all());
    assert!(
        failed.stderr.contains("its test restore failed") && failed.stderr.contains("CREATEDB"),
        "{}",
        failed.stderr
    );
    assert!(out.is_file(), "the archive itself is kept");
    assert_eq!(scratch_copies(&db).await, Vec::<String>::new());
}

#[test]
fn managed_test_restore_uses_the_clusters_own_superuser() {
    let config = AppConfig::new("");
    assert_eq!(config.run(&["migrate"]).code(), Some(0));
    let out = config.state_dir().join("managed-checked.dump");
    let done = config.run(&[
        "backup",
        "--out",
        out.to_str().expect("path"),
        "--test-restore",
    ]);
    assert_eq!(done.code(), Some(0), "{}", done.all());
    assert!(
        done.stdout.contains("test restore: the archive restored"),
        "{}",
        done.stdout
    );
    assert!(!config.state_dir().join("postgres/postmaster.pid").exists());
}

/// What tells the database's states apart: the audit log's length, the
/// migrations applied, and the tables and routines in the appliance's
/// schemas with their owners.
async fn inventory(db: &str) -> (i64, i64, Vec<String>) {
    let row = shared()
        .connect(db)
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM audit_log), \
                    (SELECT count(*) FROM refinery_schema_history), \
                    ARRAY(SELECT schemaname || '.' || tablename || ' ' || tableowner FROM pg_tables \
                           WHERE schemaname IN ('public', 'records') \
                          UNION ALL \
                          SELECT 'routine ' || proname FROM pg_proc \
                           WHERE pronamespace = 'public'::regnamespace ORDER BY 1)",
            &[],
        )
        .await
        .expect("inventory");
    until_unused(db).await;
    (row.get(0), row.get(1), row.get(2))
}

/// Runs `sql` as the cluster's superuser on `db`, then waits until that
/// session has ended (a restore refuses while others are connected).
async fn as_superuser(db: &str, sql: &str) {
    let client = shared().connect(db).await;
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    until_unused(db).await;
}

async fn until_unused(db: &str) {
    let server = shared().connect("postgres").await;
    for _ in 0..200 {
        let sessions: i64 = server
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&db],
            )
            .await
            .expect("activity")
            .get(0);
        if sessions == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the sessions on {db} did not end");
}

#[tokio::test(flavor = "multi_thread")]
async fn external_restore_brings_back_the_archived_state_in_one_transaction() {
    let (db, config, admin) = migrated_by_a_role_without_createdb().await;
    drop(admin);
    until_unused(&db).await;
    let role = format!("{db}_owner");
    let archive = config.state_dir().join("external.dump");
    let path = archive.to_str().expect("path");
    let written = config.run(&["backup", "--out", path]);
    assert_eq!(written.code(), Some(0), "{}", written.all());
    let before = inventory(&db).await;

    // After the backup: an audit entry, and what a newer release and a new
    // collection would have added (owned by the appliance's role).
    assert_eq!(config.run(&["admin", "setup-token"]).code(), Some(0));
    as_superuser(
        &db,
        &format!(
            "SET ROLE {role}; \
             CREATE TABLE public.newer_release (id int); \
             CREATE FUNCTION public.newer_release_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'; \
             CREATE TYPE public.newer_range AS RANGE (subtype = int4); \
             CREATE TABLE records.c_999 (id int); \
             INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
               VALUES (9999, 'newer', 'now', '0'); \
             RESET ROLE"
        ),
    )
    .await;
    let after = inventory(&db).await;
    assert_ne!(after, before);

    // Never while anything else is connected (a replica, a DBA's psql).
    // The appliance itself would not start now: the database holds a
    // migration it does not know, as after an upgrade's contract migration.
    let other = shared().connect(&db).await;
    let busy = config.run(&["restore", "--from", path]);
    assert_eq!(busy.code(), Some(1), "{}", busy.all());
    assert!(
        busy.stderr.contains("1 other session(s) are connected")
            && busy.stderr.contains("(as postgres)")
            && busy.stderr.contains("stop every replica")
            && busy.stderr.contains("nothing was changed"),
        "{}",
        busy.stderr
    );
    drop(other);
    assert_eq!(inventory(&db).await, after);

    // An object the role cannot drop (another role's): refused, named.
    as_superuser(&db, "CREATE TABLE public.dba_table (id int)").await;
    let foreign = config.run(&["restore", "--from", path]);
    assert_eq!(foreign.code(), Some(1), "{}", foreign.all());
    assert!(
        foreign.stderr.contains("objects owned by postgres")
            && foreign
                .stderr
                .contains("move objects that are not the appliance's"),
        "{}",
        foreign.stderr
    );
    as_superuser(&db, "DROP TABLE public.dba_table").await;
    assert_eq!(inventory(&db).await, after);

    // An archive cut short in its last data block reads back with
    // `pg_restore --list` but fails midway: rolled back, nothing changed.
    let bytes = std::fs::read(&archive).expect("archive");
    let damaged = config.state_dir().join("damaged.dump");
    std::fs::write(&damaged, &bytes[..bytes.len() - 16]).expect("write");
    let failed = config.run(&["restore", "--from", damaged.to_str().expect("path")]);
    assert_eq!(failed.code(), Some(1), "{}", failed.all());
    assert!(
        failed
            .stderr
            .contains("rolled back, the database is as it was"),
        "{}",
        failed.stderr
    );
    assert_eq!(inventory(&db).await, after);

    let restored = config.run(&["restore", "--from", path]);
    assert_eq!(restored.code(), Some(0), "{}", restored.all());
    assert!(
        restored.stdout.contains(&format!("into database {db}")),
        "{}",
        restored.stdout
    );
    assert_eq!(inventory(&db).await, before);
    let mut app = config.spawn();
    app.wait_ready();
    app.stop();
    let verified = config.run(&["audit", "verify"]);
    assert_eq!(verified.code(), Some(0), "{}", verified.all());
}

#[tokio::test(flavor = "multi_thread")]
async fn external_restore_with_separate_roles_needs_the_owner_to_act_for_the_application() {
    let (db, owner_dsn, app_dsn) = crate::audit_log::separate_roles().await;
    let config = AppConfig::new(&format!(
        "[database]\nurl = \"{app_dsn}\"\nmigration_url = \"{owner_dsn}\"\n"
    ))
    .with_shared_key_file();
    assert_eq!(config.run(&["migrate"]).code(), Some(0));
    // A collection's table belongs to the application role.
    as_superuser(
        &db,
        &format!(
            "SET ROLE {db}_app; CREATE TABLE records.c_1000 (id int); \
             INSERT INTO records.c_1000 VALUES (1), (2); RESET ROLE"
        ),
    )
    .await;
    let archive = config.state_dir().join("roles.dump");
    let path = archive.to_str().expect("path");
    let written = config.run(&["backup", "--out", path]);
    assert_eq!(written.code(), Some(0), "{}", written.all());
    let before = inventory(&db).await;
    assert!(
        before.2.contains(&format!("records.c_1000 {db}_app")),
        "{before:?}"
    );

    let refused = config.run(&["restore", "--from", path]);
    assert_eq!(refused.code(), Some(1), "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains(&format!("GRANT {db}_app TO {db}_owner")),
        "{}",
        refused.stderr
    );

    // A membership that does not pass on the role's privileges is not
    // enough either (refused up front, not failed halfway).
    as_superuser(
        &db,
        &format!("GRANT {db}_app TO {db}_owner; ALTER ROLE {db}_owner NOINHERIT"),
    )
    .await;
    let noinherit = config.run(&["restore", "--from", path]);
    assert_eq!(noinherit.code(), Some(1), "{}", noinherit.all());
    assert!(
        noinherit
            .stderr
            .contains("cannot drop and recreate the objects owned by"),
        "{}",
        noinherit.stderr
    );
    as_superuser(
        &db,
        &format!("ALTER ROLE {db}_owner INHERIT; DELETE FROM records.c_1000"),
    )
    .await;
    let restored = config.run(&["restore", "--from", path]);
    assert_eq!(restored.code(), Some(0), "{}", restored.all());
    assert_eq!(inventory(&db).await, before);
    let rows: i64 = shared()
        .connect(&db)
        .await
        .query_one("SELECT count(*) FROM records.c_1000", &[])
        .await
        .expect("rows")
        .get(0);
    assert_eq!(rows, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_external_restore_killed_midway_changes_nothing() {
    let (db, config, admin) = migrated_by_a_role_without_createdb().await;
    drop(admin);
    let role = format!("{db}_owner");
    // Enough rows that the restore is still streaming them when killed.
    as_superuser(
        &db,
        &format!(
            "SET ROLE {role}; \
             CREATE TABLE records.c_big AS \
               SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000000) g; \
             RESET ROLE"
        ),
    )
    .await;
    let archive = config.state_dir().join("big.dump");
    let path = archive.to_str().expect("path");
    let written = config.run(&["backup", "--out", path]);
    assert_eq!(written.code(), Some(0), "{}", written.all());
    as_superuser(
        &db,
        &format!(
            "SET ROLE {role}; CREATE TABLE public.newer_release (id int); \
             DELETE FROM records.c_big WHERE id > 1000; RESET ROLE"
        ),
    )
    .await;
    let after = inventory(&db).await;

    // Killed (the command alone, as by the OOM killer) once its session is
    // restoring: psql's input ends without COMMIT.
    let mut restore = config.start(&["restore", "--from", path]);
    let server = shared().connect("postgres").await;
    let mut seen = false;
    for _ in 0..600 {
        let sessions: i64 = server
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                  WHERE datname = $1 AND application_name = 'mogothrow77-restore'",
                &[&db],
            )
            .await
            .expect("activity")
            .get(0);
        if sessions > 0 {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(seen, "the restore's session never appeared");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    restore.kill().expect("kill");
    let _ = restore.wait();
    until_unused(&db).await;
    assert_eq!(inventory(&db).await, after);
    let rows: i64 = shared()
        .connect(&db)
        .await
        .query_one("SELECT count(*) FROM records.c_big", &[])
        .await
        .expect("rows")
        .get(0);
    assert_eq!(rows, 1000, "no row of the interrupted restore was kept");
}

/// An external database needs only PostgreSQL's client programs (a host
/// with the client package and no server): `database.postgres_bin_dir`
/// naming a directory with `pg_dump`, `pg_restore` and `psql` alone serves
/// backups and restores; one without them gets the error that says what
/// to install.
#[tokio::test(flavor = "multi_thread")]
async fn external_backups_and_restores_need_only_the_client_programs() {
    let (db, config, admin) = migrated_by_a_role_without_createdb().await;
    drop(admin);
    until_unused(&db).await;
    // Each program logs its name, then runs the real one.
    let clients = config.path("clients");
    std::fs::create_dir(&clients).expect("mkdir");
    let log = config.path("clients.log");
    std::fs::write(&log, "").expect("log");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    for program in ["pg_dump", "pg_restore", "psql"] {
        let wrapper = clients.join(program);
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho {program} >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                shared().program(program).display()
            ),
        )
        .expect("wrapper");
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    assert!(!clients.join("initdb").exists() && !clients.join("postgres").exists());
    let empty = config.path("no-clients");
    std::fs::create_dir(&empty).expect("mkdir");
    let config = config.env(
        "MOGOTHROW77_DATABASE__POSTGRES_BIN_DIR",
        clients.to_str().expect("path"),
    );

    let archive = config.state_dir().join("clients.dump");
    let path = archive.to_str().expect("path");
    let written = config.run(&["backup", "--out", path]);
    assert_eq!(written.code(), Some(0), "{}", written.all());
    let before = inventory(&db).await;
    as_superuser(
        &db,
        &format!("SET ROLE {db}_owner; CREATE TABLE public.after_backup (id int); RESET ROLE"),
    )
    .await;
    let restored = config.run(&["restore", "--from", path]);
    assert_eq!(restored.code(), Some(0), "{}", restored.all());
    assert_eq!(inventory(&db).await, before);
    let used = std::fs::read_to_string(&log).expect("log");
    for program in ["pg_dump", "pg_restore", "psql"] {
        assert!(
            used.lines().any(|l| l == program),
            "{program} not run from {}: {used}",
            clients.display()
        );
    }

    let config = config.env(
        "MOGOTHROW77_DATABASE__POSTGRES_BIN_DIR",
        empty.to_str().expect("path"),
    );
    let again = config.state_dir().join("again.dump");
    let missing = config.run(&["backup", "--out", again.to_str().expect("path")]);
    assert_eq!(missing.code(), Some(1), "{}", missing.all());
    assert!(
        missing.stderr.contains(&format!(
            "no pg_dump found in {} (database.postgres_bin_dir)",
            empty.display()
        )) && missing.stderr.contains("postgresql-client"),
        "{}",
        missing.stderr
    );
    assert!(!again.exists());
}
