//! The audit log: what gets recorded, listing with filters and cursors,
//! append-only for the application role, and `audit verify` naming the
//! entry that was edited or deleted.

use serde_json::json;

use crate::harness::api::{assert_error, ApiClient, Site, ADMIN, PASSWORD};
use crate::harness::app::AppConfig;
use crate::harness::pg::shared;

#[tokio::test(flavor = "multi_thread")]
async fn sensitive_actions_are_recorded_and_listed_with_filters_and_cursors() {
    let site = Site::start().await;
    let (id, _) = site.user("alma", "auditor").await;
    ApiClient::anonymous(site.addr)
        .post(
            "/api/v1/auth/login",
            json!({ "username": "alma", "password": "nope nope nope" }),
        )
        .await;
    site.admin
        .patch(&format!("/api/v1/users/{id}"), json!({ "role": "viewer" }))
        .await;

    let all = site.admin.get("/api/v1/audit?limit=200").await;
    assert_eq!(all.status, 200, "{}", all.body);
    let items = all.json()["items"].as_array().expect("items").clone();
    let actions: Vec<&str> = items.iter().filter_map(|e| e["action"].as_str()).collect();
    // Newest first.
    assert_eq!(
        actions,
        [
            "user.update",
            "auth.login",
            "auth.login",
            "user.create",
            "setup.complete",
            "setup.token_issue"
        ],
        "{}",
        all.body
    );
    let failed = &items[1];
    assert_eq!(failed["outcome"], "failure");
    assert_eq!(failed["actor"], "alma");
    assert_eq!(failed["details"]["reason"], "bad_password");
    assert_eq!(failed["client_addr"], "127.0.0.1");
    assert!(failed["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    let update = &items[0];
    assert_eq!(update["actor"], ADMIN);
    assert_eq!(update["target"], format!("user:{id}"));
    assert_eq!(update["details"]["role"]["to"], "viewer");

    let verified = site.config.run(&["audit", "verify"]);
    assert_eq!(verified.code(), Some(0), "{}", verified.all());

    // Filters.
    let failures = site.admin.get("/api/v1/audit?outcome=failure").await.json();
    assert_eq!(failures["items"].as_array().expect("items").len(), 1);
    let by_actor = site
        .admin
        .get("/api/v1/audit?actor=alma&action=auth.login")
        .await
        .json();
    assert_eq!(by_actor["items"].as_array().expect("items").len(), 2);
    let future = site
        .admin
        .get("/api/v1/audit?since=2999-01-01T00:00:00Z")
        .await
        .json();
    assert_eq!(future["items"].as_array().expect("items").len(), 0);
    assert_error(
        &site.admin.get("/api/v1/audit?since=yesterday").await,
        422,
        "validation_failed",
    );
    assert_error(
        &site.admin.get("/api/v1/audit?limit=5000").await,
        422,
        "validation_failed",
    );
    assert_error(
        &site.admin.get("/api/v1/audit?actor=a%00b").await,
        422,
        "validation_failed",
    );
    assert_error(
        &site.admin.get("/api/v1/audit?bogus=1").await,
        400,
        "invalid_request",
    );

    // Cursor pagination walks every entry once, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit?limit=2&cursor={c}"),
            None => "/api/v1/audit?limit=2".to_string(),
        };
        let page = site.admin.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json();
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|e| e["seq"].as_i64().expect("seq")),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    // The listing itself is not audited; later actions would add entries.
    let expected: Vec<i64> = (1..=seen.len() as i64).rev().collect();
    assert_eq!(seen, expected);

    // A cursor is bound to its listing and cannot be edited.
    let first = site.admin.get("/api/v1/audit?limit=2").await.json();
    let cursor = first["next_cursor"].as_str().expect("cursor").to_string();
    assert_error(
        &site
            .admin
            .get(&format!(
                "/api/v1/audit?limit=2&outcome=success&cursor={cursor}"
            ))
            .await,
        400,
        "invalid_cursor",
    );
    let mut tampered = cursor.clone().into_bytes();
    tampered[0] = if tampered[0] == b'M' { b'N' } else { b'M' };
    let tampered = String::from_utf8(tampered).expect("utf8");
    assert_error(
        &site
            .admin
            .get(&format!("/api/v1/audit?limit=2&cursor={tampered}"))
            .await,
        400,
        "invalid_cursor",
    );
}

/// A database laid out as in docs/operations.md: an owner that migrates,
/// an application role that only reads and writes rows.
pub async fn separate_roles() -> (String, String, String) {
    let admin = shared().connect("postgres").await;
    let n = shared().create_database().await;
    let owner = format!("{n}_owner");
    let app = format!("{n}_app");
    admin
        .batch_execute(&format!(
            "CREATE ROLE {owner} LOGIN; CREATE ROLE {app} LOGIN; \
             ALTER DATABASE {n} OWNER TO {owner}; \
             REVOKE ALL ON DATABASE {n} FROM PUBLIC; \
             GRANT CONNECT, TEMPORARY ON DATABASE {n} TO {app};"
        ))
        .await
        .expect("roles");
    let db = shared().connect(&n).await;
    db.batch_execute(&format!(
        "ALTER SCHEMA public OWNER TO {owner}; REVOKE ALL ON SCHEMA public FROM PUBLIC; \
         GRANT USAGE ON SCHEMA public TO {app}; \
         ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public \
           GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}; \
         ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public \
           GRANT USAGE, SELECT ON SEQUENCES TO {app};"
    ))
    .await
    .expect("schema");
    let dsn = |role: &str| {
        shared()
            .dsn(&n)
            .replace("user=postgres", &format!("user={role}"))
    };
    let (owner_dsn, app_dsn) = (dsn(&owner), dsn(&app));
    (n, owner_dsn, app_dsn)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_application_role_can_only_append_and_verify_names_tampered_entries() {
    let (db, owner_dsn, app_dsn) = separate_roles().await;
    let config = AppConfig::new(&format!(
        "[database]\nurl = \"{app_dsn}\"\nmigration_url = \"{owner_dsn}\"\n"
    ))
    .with_shared_key_file();
    let mut app = config.spawn();
    let addr = app.wait_ready();
    let token = crate::harness::api::setup_token(&mut app);
    let mut admin = ApiClient::anonymous(addr);
    let r = admin
        .post(
            "/api/v1/setup",
            json!({ "token": token, "username": ADMIN, "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    admin.adopt_session(&r);
    for name in ["ann", "ben", "cat"] {
        let r = admin
            .post(
                "/api/v1/users",
                json!({ "username": name, "role": "viewer", "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let verify = || config.run(&["audit", "verify"]);
    let ok = verify();
    assert_eq!(ok.code(), Some(0), "{}", ok.all());
    assert!(
        ok.stdout.contains("audit log intact: 5 entries"),
        "{}",
        ok.all()
    );

    // The application role cannot change or remove entries.
    let connect = |dsn: String| async move {
        let (client, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
    };
    let as_app = connect(app_dsn.clone()).await;
    for statement in [
        "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 2",
        "TRUNCATE audit_log",
        // The head only moves forward, onto an entry of the log.
        "UPDATE audit_chain_head SET seq = seq - 1",
        "UPDATE audit_chain_head SET seq = seq + 5",
        "DELETE FROM audit_chain_head",
        "TRUNCATE audit_chain_head",
    ] {
        let e = as_app.execute(statement, &[]).await.expect_err(statement);
        assert_eq!(
            e.as_db_error().map(|d| d.code().code()),
            Some("42501"),
            "{statement}: {e}"
        );
    }
    // Even the owner is stopped by the trigger unless it disables it.
    let as_owner = connect(owner_dsn.clone()).await;
    assert!(as_owner
        .execute("DELETE FROM audit_log WHERE seq = 2", &[])
        .await
        .is_err());

    // An owner who goes out of their way: edit entry 3.
    as_owner
        .batch_execute(
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only; \
             UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3; \
             ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;",
        )
        .await
        .expect("owner edit");
    let out = verify();
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(out.stdout.contains("entry 3 was modified"), "{}", out.all());

    // The server finds it too: its check of the newest entries at start
    // (then every 10 minutes) reports it in /metrics and its log.
    let before = crate::harness::client::get(addr, "/metrics")
        .await
        .expect("metrics")
        .body;
    let metric = crate::harness::client::metric;
    assert_eq!(
        metric(&before, "mogothrow77_audit_chain_problems"),
        Some(0.0),
        "{before}"
    );
    assert!(
        metric(
            &before,
            "mogothrow77_audit_chain_last_check_timestamp_seconds"
        )
        .is_some_and(|t| t > 1.7e9),
        "{before}"
    );
    assert!(app.stop().success());
    let mut app = config.spawn();
    let addr = app.wait_ready();
    app.wait_event(
        "the audit log's hash chain is broken: entries were changed or deleted outside the \
         appliance; run `mogothrow77 audit verify` and see docs/runbooks/audit-log-tampered.md",
        std::time::Duration::from_secs(20),
    );
    let after = crate::harness::client::get(addr, "/metrics")
        .await
        .expect("metrics")
        .body;
    assert_eq!(
        metric(&after, "mogothrow77_audit_chain_problems"),
        Some(1.0),
        "{after}"
    );

    // Restore it, then delete entry 2 instead.
    as_owner
        .batch_execute(&format!(
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only; \
             UPDATE audit_log SET actor = '{ADMIN}' WHERE seq = 3; \
             DELETE FROM audit_log WHERE seq = 2; \
             ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;"
        ))
        .await
        .expect("owner delete");
    let out = verify();
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(out.stdout.contains("entry 2 was deleted"), "{}", out.all());
    assert!(
        !out.stdout.contains("entry 3 was modified"),
        "{}",
        out.all()
    );

    // Deleting the newest entry shows too (the chain head remembers it).
    as_owner
        .batch_execute(
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only; \
             DELETE FROM audit_log WHERE seq = 5; \
             ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;",
        )
        .await
        .expect("owner delete newest");
    let out = verify();
    assert!(
        out.stdout
            .contains("entry 5 was deleted from the end of the log"),
        "{}",
        out.all()
    );

    // Moving the head back (to hide the newest entries from a check that
    // compares heads) shows as well.
    as_owner
        .batch_execute(
            "ALTER TABLE audit_chain_head DISABLE TRIGGER audit_chain_head_forward_only; \
             UPDATE audit_chain_head SET seq = 3; \
             ALTER TABLE audit_chain_head ENABLE TRIGGER audit_chain_head_forward_only;",
        )
        .await
        .expect("owner moves the head back");
    let out = verify();
    assert!(
        out.stdout.contains("the head was moved back"),
        "{}",
        out.all()
    );
    assert!(app.stop().success());
    drop(db);
}
