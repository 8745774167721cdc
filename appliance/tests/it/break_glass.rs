//! The break-glass CLI (`mogothrow77 admin …`) on the host, with the
//! server's configuration: lifting a lockout, ending sessions, disabling
//! an account (never the last admin), resetting two-factor, listing the
//! accounts — each audited as `cli:<os-user>@<host>`, each bad input a
//! one-line error and exit 1.

use serde_json::json;

use crate::harness::api::{assert_error, Site, ADMIN, PASSWORD};

async fn login_status(site: &Site, username: &str, password: &str) -> (u16, String) {
    let r = crate::harness::api::ApiClient::anonymous(site.addr)
        .post(
            "/api/v1/auth/login",
            json!({ "username": username, "password": password }),
        )
        .await;
    (
        r.status,
        r.json()["code"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_commands_lift_lockouts_end_sessions_and_disable_audited_as_cli() {
    let site = Site::start().await;
    let (alice_id, alice) = site.user("alice", "editor").await;

    let list = site.config.run(&["admin", "users", "list"]);
    assert_eq!(list.code(), Some(0), "{}", list.all());
    for needle in ["alice", "editor", ADMIN, "admin"] {
        assert!(list.stdout.contains(needle), "{needle}: {}", list.stdout);
    }

    // Locked out by failed sign-ins: the right password is refused too.
    for _ in 0..5 {
        assert_eq!(
            login_status(&site, "alice", "not her password").await.0,
            401
        );
    }
    assert_eq!(
        login_status(&site, "alice", PASSWORD).await,
        (429, "too_many_attempts".to_string())
    );
    let list = site.config.run(&["admin", "users", "list"]);
    let line = list
        .stdout
        .lines()
        .find(|l| l.starts_with("alice "))
        .expect("alice listed")
        .to_string();
    assert!(
        line.trim_end().ends_with(" s"),
        "locked seconds shown: {line}"
    );
    let unlocked = site.config.run(&["admin", "unlock", "alice"]);
    assert_eq!(unlocked.code(), Some(0), "{}", unlocked.all());
    assert!(
        unlocked.stdout.contains("lockout lifted"),
        "{}",
        unlocked.stdout
    );
    assert_eq!(login_status(&site, "alice", PASSWORD).await.0, 200);
    // An address with nothing recorded: said so, not an error.
    let nothing = site.config.run(&["admin", "unlock", "203.0.113.7"]);
    assert_eq!(nothing.code(), Some(0), "{}", nothing.all());
    assert!(
        nothing.stdout.contains("nothing to lift"),
        "{}",
        nothing.stdout
    );

    // Sessions ended: her browser is signed out.
    assert_eq!(alice.get("/api/v1/me").await.status, 200);
    let revoked = site.config.run(&["admin", "sessions", "revoke", "alice"]);
    assert_eq!(revoked.code(), Some(0), "{}", revoked.all());
    assert_error(&alice.get("/api/v1/me").await, 401, "unauthenticated");

    // Two-factor reset of an account without it: harmless.
    let reset = site.config.run(&["admin", "reset-mfa", "alice"]);
    assert_eq!(reset.code(), Some(0), "{}", reset.all());

    // Disabled: no sign-in. The last admin cannot be.
    let disabled = site.config.run(&["admin", "disable", "alice"]);
    assert_eq!(disabled.code(), Some(0), "{}", disabled.all());
    assert_eq!(
        login_status(&site, "alice", PASSWORD).await,
        (403, "account_disabled".to_string())
    );
    let last = site.config.run(&["admin", "disable", ADMIN]);
    assert_eq!(last.code(), Some(1), "{}", last.all());
    assert!(
        last.stderr.contains("last enabled admin"),
        "{}",
        last.stderr
    );
    assert_eq!(site.admin.get("/api/v1/me").await.status, 200);

    // Bad input: one line, exit 1, nothing changed.
    let nobody = site.config.run(&["admin", "reset-mfa", "nobody"]);
    assert_eq!(nobody.code(), Some(1), "{}", nobody.all());
    assert_eq!(nobody.stderr.trim().lines().count(), 1, "{}", nobody.stderr);
    assert!(
        nobody.stderr.contains("no user named \"nobody\""),
        "{}",
        nobody.stderr
    );
    let usage = site.config.run(&["admin", "disable"]);
    assert_eq!(usage.code(), Some(2), "{}", usage.all());

    // Every change in the audit log, by the CLI's actor.
    let audit = site.admin.get("/api/v1/audit?limit=50").await.json();
    let items = audit["items"].as_array().expect("items").clone();
    let by_cli: Vec<(String, String)> = items
        .iter()
        .filter(|e| e["actor"].as_str().is_some_and(|a| a.starts_with("cli:")))
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_string(),
                e["target"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let alice_target = format!("user:{alice_id}");
    for expected in [
        ("auth.unlock".to_string(), "account:alice".to_string()),
        ("auth.unlock".to_string(), "address:203.0.113.7".to_string()),
        ("user.sessions_revoke".to_string(), alice_target.clone()),
        ("user.mfa_reset".to_string(), alice_target.clone()),
        ("user.update".to_string(), alice_target.clone()),
    ] {
        assert!(
            by_cli.contains(&expected),
            "{expected:?} not audited by the CLI: {by_cli:?}"
        );
    }
    let actor = items
        .iter()
        .find(|e| e["action"] == "auth.unlock")
        .and_then(|e| e["actor"].as_str())
        .expect("actor");
    // Through sudo, the user who ran it.
    let user = std::env::var("SUDO_USER")
        .ok()
        .filter(|u| !u.is_empty() && nix::unistd::geteuid().is_root())
        .unwrap_or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .expect("this user")
                .name
        });
    assert!(actor.starts_with(&format!("cli:{user}@")), "{actor}");
    // The refused disable changed nothing and wrote nothing.
    assert!(!items
        .iter()
        .any(|e| e["action"] == "user.update" && e["target"] != json!(alice_target)));
    let verified = site.config.run(&["audit", "verify"]);
    assert_eq!(verified.code(), Some(0), "{}", verified.all());
}

/// Managed mode with the service stopped: the command starts the cluster
/// for its run (and stops it again), as `backup` does.
#[test]
fn with_the_service_stopped_a_managed_cluster_is_started_for_the_command() {
    let config = crate::harness::app::AppConfig::new("");
    assert_eq!(config.run(&["migrate"]).code(), Some(0));
    let listed = config.run(&["admin", "users", "list"]);
    assert_eq!(listed.code(), Some(0), "{}", listed.all());
    // Standard output holds the table only: the managed cluster's log
    // lines go to standard error.
    assert!(
        listed.stderr.lines().any(|l| l.starts_with('{')),
        "the cluster's log: {}",
        listed.stderr
    );
    let table: Vec<&str> = listed
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(table.len(), 1, "no users yet: {}", listed.stdout);
    assert!(table[0].starts_with("USERNAME"), "{}", listed.stdout);
    let unlocked = config.run(&["admin", "unlock", "someone"]);
    assert_eq!(unlocked.code(), Some(0), "{}", unlocked.all());
    assert!(!config.state_dir().join("postgres/postmaster.pid").exists());
}

/// `admin reset-password NAME`: a one-time link, never a password on the
/// command line; the link sets the password (policy applies, a refused one
/// leaves the link usable), ends the sessions, lifts the lockout, and
/// works once; a newer link replaces an older one. Audited both sides.
#[tokio::test(flavor = "multi_thread")]
async fn a_reset_link_sets_a_new_password_once() {
    let site = Site::start().await;
    let (alice_id, alice) = site.user("alice", "editor").await;
    let link_token = |out: &crate::harness::app::Finished| {
        assert_eq!(out.code(), Some(0), "{}", out.all());
        let link = out.stdout.trim();
        assert_eq!(
            out.stdout.trim().lines().count(),
            1,
            "the link alone: {}",
            out.stdout
        );
        assert!(link.contains("/reset-password#token="), "{link}");
        link.split_once("#token=").expect("token").1.to_string()
    };
    let first = link_token(&site.config.run(&["admin", "reset-password", "alice"]));
    let issued = site.config.run(&["admin", "reset-password", "alice"]);
    assert!(issued.stderr.contains("valid 8 hours"), "{}", issued.stderr);
    let token = link_token(&issued);
    assert_ne!(first, token);

    // Locked out by failed sign-ins meanwhile.
    for _ in 0..5 {
        login_status(&site, "alice", "not her password").await;
    }
    let anonymous = crate::harness::api::ApiClient::anonymous(site.addr);
    let reset = |token: &str, password: &str| {
        anonymous.post(
            "/api/v1/auth/password-reset",
            json!({ "token": token, "password": password }),
        )
    };
    // The replaced link no longer works; a weak password is refused and
    // leaves the link usable.
    assert_error(
        &reset(&first, NEW_PASSWORD).await,
        403,
        "invalid_reset_link",
    );
    assert_error(&reset(&token, "password123").await, 422, "password_policy");
    let done = reset(&token, NEW_PASSWORD).await;
    assert_eq!(done.status, 204, "{}", done.body);
    assert_error(&alice.get("/api/v1/me").await, 401, "unauthenticated");
    assert_eq!(login_status(&site, "alice", PASSWORD).await.0, 401);
    assert_eq!(login_status(&site, "alice", NEW_PASSWORD).await.0, 200);
    // Once only.
    assert_error(
        &reset(&token, "another Str0ng passphrase").await,
        403,
        "invalid_reset_link",
    );
    assert_error(
        &reset("made-up", NEW_PASSWORD).await,
        403,
        "invalid_reset_link",
    );

    let nobody = site.config.run(&["admin", "reset-password", "nobody"]);
    assert_eq!(nobody.code(), Some(1), "{}", nobody.all());
    assert!(nobody.stderr.contains("no user named"), "{}", nobody.stderr);

    let audit = site.admin.get("/api/v1/audit?limit=50").await.json();
    let items = audit["items"].as_array().expect("items").clone();
    let target = format!("user:{alice_id}");
    let issued_by_cli = items
        .iter()
        .filter(|e| {
            e["action"] == "user.password_reset_link"
                && e["target"] == json!(target)
                && e["actor"].as_str().is_some_and(|a| a.starts_with("cli:"))
        })
        .count();
    assert_eq!(issued_by_cli, 2, "{items:?}");
    let used = items
        .iter()
        .find(|e| e["action"] == "auth.password_reset")
        .expect("the reset is audited");
    assert_eq!(used["actor"], "alice");
    assert_eq!(used["target"], json!(target));
    assert!(
        !audit.to_string().contains(&token),
        "no token in the audit log"
    );
    // Only the digest is stored.
    let stored: i64 = site
        .sql()
        .await
        .query_one("SELECT count(*) FROM password_reset_links", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(stored, 0, "a used link is deleted");
}

const NEW_PASSWORD: &str = "a brand new passphrase for her 42";
