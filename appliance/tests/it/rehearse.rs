//! `mogothrow77 migrate --rehearse`: the pending migrations run on a copy,
//! timed, with their locks; the live database is left as it was.

use crate::harness::app::AppConfig;
use crate::harness::pg::shared;

/// Makes a fully migrated database look like one seven migrations behind:
/// V15 (sealed secret columns), V14 (the audit chain head's trigger function), V13 (scheduled backups), V12 (audit forwarding cursors), V11 (password reset links), V10 (the
/// backups table) and V9 (jobs.trace_parent, which locks an existing table)
/// are undone. When a migration is added, undo it here too.
const UNDO_NEWEST_MIGRATIONS: &str = "DROP TABLE secrets_key; \
     ALTER TABLE webhooks DROP COLUMN secret_sealed, DROP COLUMN previous_secret_sealed; \
     ALTER TABLE users DROP COLUMN totp_secret_sealed, DROP COLUMN totp_pending_secret_sealed; \
     ALTER TABLE server_keys DROP COLUMN key_sealed, DROP COLUMN previous_key, \
     DROP COLUMN previous_key_sealed, DROP COLUMN previous_until, DROP COLUMN active_from, \
     DROP COLUMN rotated_at; \
     CREATE OR REPLACE FUNCTION audit_chain_head_moves_forward() \
     RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
     IF TG_OP = 'UPDATE' AND NEW.id AND NEW.seq = OLD.seq + 1 THEN RETURN NEW; END IF; \
     RAISE EXCEPTION 'the audit chain head only moves forward, one entry per append' \
     USING ERRCODE = 'insufficient_privilege'; END; $$; \
     DROP TABLE backup_slots; DROP TABLE audit_forward_cursors; \
     DROP TABLE password_reset_links; DROP TABLE backups; \
     ALTER TABLE jobs DROP COLUMN trace_parent; \
     DELETE FROM refinery_schema_history WHERE version >= 9; \
     DELETE FROM mogothrow77_migration_kinds WHERE version >= 9;";

/// Everything a rehearsal could change on the live database, as text.
async fn fingerprint(client: &tokio_postgres::Client) -> String {
    let row = client
        .query_one(
            "SELECT (SELECT string_agg(column_name, ',' ORDER BY column_name) \
                       FROM information_schema.columns WHERE table_name = 'jobs'), \
                    (SELECT string_agg(version::text, ',' ORDER BY version) \
                       FROM refinery_schema_history), \
                    (SELECT string_agg(version::text, ',' ORDER BY version) \
                       FROM mogothrow77_migration_kinds), \
                    (SELECT md5(string_agg(u::text, '|' ORDER BY id)) FROM users u), \
                    (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public')::text",
            &[],
        )
        .await
        .expect("fingerprint");
    (0..5)
        .map(|i| row.get::<_, Option<String>>(i).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// A database five migrations behind this binary, with users in it.
async fn database_five_migrations_behind() -> String {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    let migrated = config.run(&["migrate"]);
    assert_eq!(migrated.code(), Some(0), "{}", migrated.all());
    let client = shared().connect(&db).await;
    client
        .batch_execute(UNDO_NEWEST_MIGRATIONS)
        .await
        .expect("undo the newest migration");
    client
        .batch_execute(
            "INSERT INTO users (username, role, password_hash) \
             SELECT 'user' || g, 'viewer', 'x' FROM generate_series(1, 2000) g",
        )
        .await
        .expect("users");
    db
}

#[tokio::test(flavor = "multi_thread")]
async fn rehearsal_times_each_migration_reports_its_locks_and_leaves_the_database_alone() {
    let db = database_five_migrations_behind().await;
    let client = shared().connect(&db).await;
    let before = fingerprint(&client).await;
    let config = AppConfig::external(&shared().dsn(&db), "");

    let pending = config.run(&["migrate", "--check"]);
    assert_eq!(pending.code(), Some(1), "{}", pending.all());
    assert!(
        pending.stdout.contains("V9__job_trace_context"),
        "{}",
        pending.stdout
    );

    let done = config.run(&["migrate", "--rehearse"]);
    assert_eq!(done.code(), Some(0), "{}", done.all());
    assert!(
        done.stdout.contains("schema level 8 → 15"),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout.contains("V9__job_trace_context (expand)"),
        "{}",
        done.stdout
    );
    // ALTER TABLE … ADD COLUMN takes ACCESS EXCLUSIVE on jobs.
    assert!(
        done.stdout
            .contains("ACCESS EXCLUSIVE on public.jobs: blocks reads and writes"),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout.contains("the live database was not changed"),
        "{}",
        done.stdout
    );
    assert_eq!(fingerprint(&client).await, before, "live database changed");
    assert_eq!(
        crate::backup::scratch_copies(&db).await,
        Vec::<String>::new()
    );

    let json = config.run(&["migrate", "--rehearse", "--json"]);
    assert_eq!(json.code(), Some(0), "{}", json.all());
    let report: serde_json::Value = json
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("migrations").is_some())
        .unwrap_or_else(|| panic!("no report in {}", json.stdout));
    assert_eq!(report["schema_level"], 8);
    assert_eq!(report["target_level"], 15);
    assert!(report["database_bytes"].as_i64().unwrap_or(0) > 0);
    let migrations = report["migrations"].as_array().expect("migrations");
    assert_eq!(migrations.len(), 7, "{report}");
    assert_eq!(migrations[1]["version"], 10);
    assert_eq!(
        migrations[1]["locks"],
        serde_json::json!([]),
        "a new table locks nothing that existed: {report}"
    );
    let m = &migrations[0];
    assert_eq!(m["version"], 9);
    assert_eq!(m["kind"], "expand");
    assert!(m["seconds"].as_f64().unwrap_or(0.0) > 0.0, "{m}");
    assert!(m["error"].is_null(), "{m}");
    assert_eq!(
        m["locks"],
        serde_json::json!([{
            "table": "public.jobs",
            "mode": "ACCESS EXCLUSIVE",
            "blocks": "reads_and_writes"
        }]),
        "only the pre-existing table it changed, without the bookkeeping tables"
    );
    assert_eq!(fingerprint(&client).await, before, "live database changed");
    assert_eq!(
        crate::backup::scratch_copies(&db).await,
        Vec::<String>::new()
    );

    // The real migration afterwards still applies (nothing was recorded).
    let migrated = config.run(&["migrate"]);
    assert_eq!(migrated.code(), Some(0), "{}", migrated.all());
    assert!(migrated.stdout.contains("applied V9__job_trace_context"));
    let nothing = config.run(&["migrate", "--rehearse"]);
    assert_eq!(nothing.code(), Some(0), "{}", nothing.all());
    assert!(
        nothing.stdout.contains("nothing to rehearse"),
        "{}",
        nothing.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migration_failing_on_the_copy_is_reported_and_the_copy_dropped() {
    let db = database_five_migrations_behind().await;
    let client = shared().connect(&db).await;
    // Something in the way of V9, as a hand-made change would be.
    client
        .batch_execute("ALTER TABLE jobs ADD COLUMN trace_parent integer")
        .await
        .expect("conflicting column");
    let before = fingerprint(&client).await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    let failed = config.run(&["migrate", "--rehearse"]);
    assert_eq!(failed.code(), Some(1), "{}", failed.all());
    assert!(
        failed
            .stdout
            .contains("FAIL  V9__job_trace_context (expand)"),
        "{}",
        failed.stdout
    );
    assert!(
        failed
            .stdout
            .contains("column \"trace_parent\" of relation \"jobs\" already exists"),
        "PostgreSQL's message: {}",
        failed.stdout
    );
    assert!(
        failed
            .stdout
            .contains("the upgrade would fail at V9__job_trace_context"),
        "{}",
        failed.stdout
    );
    assert_eq!(fingerprint(&client).await, before);
    assert_eq!(
        crate::backup::scratch_copies(&db).await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_that_cannot_create_databases_is_told_what_to_grant() {
    let (db, config, admin) = crate::backup::migrated_by_a_role_without_createdb().await;
    admin
        .batch_execute(UNDO_NEWEST_MIGRATIONS)
        .await
        .expect("undo");
    let before = fingerprint(&admin).await;
    let refused = config.run(&["migrate", "--rehearse"]);
    assert_eq!(refused.code(), Some(1), "{}", refused.all());
    assert!(
        refused.stderr.contains("CREATEDB"),
        "names the privilege: {}",
        refused.stderr
    );
    assert_eq!(fingerprint(&admin).await, before);
    assert_eq!(
        crate::backup::scratch_copies(&db).await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn managed_rehearsal_runs_beside_the_serving_appliance() {
    let config = AppConfig::new("");
    let mut app = config.spawn();
    app.wait_ready();
    config.managed_sql(UNDO_NEWEST_MIGRATIONS);
    config.managed_sql(
        "INSERT INTO users (username, role, password_hash) \
         SELECT 'user' || g, 'viewer', 'x' FROM generate_series(1, 500) g",
    );
    let state = "SELECT (SELECT string_agg(column_name, ',' ORDER BY column_name) \
                   FROM information_schema.columns WHERE table_name = 'jobs') \
                 || ' / ' || (SELECT max(version) FROM refinery_schema_history) \
                 || ' / ' || (SELECT count(*) FROM users) \
                 || ' / ' || (SELECT count(*) FROM pg_database)";
    let before = config.managed_sql(state);

    let done = config.run(&["migrate", "--rehearse"]);
    assert_eq!(done.code(), Some(0), "{}", done.all());
    assert!(
        done.stdout.contains("ok    V9__job_trace_context (expand)"),
        "{}",
        done.stdout
    );
    assert!(
        done.stdout
            .contains("ACCESS EXCLUSIVE on public.jobs: blocks reads and writes"),
        "{}",
        done.stdout
    );
    assert_eq!(config.managed_sql(state), before, "live database changed");
    assert!(app.stop().success(), "{}", app.output());
}
