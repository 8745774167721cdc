//! People: first-admin setup, sign-in, sessions and CSRF, lockout, users
//! and roles, API tokens, TOTP with an independent implementation.

use std::process::Command;

use serde_json::json;

use crate::harness::api::{
    assert_error, eventually, session_cookie, setup_token, ApiClient, Site, ADMIN, PASSWORD,
};
use crate::harness::app::AppConfig;
use crate::harness::pg::shared;

#[tokio::test(flavor = "multi_thread")]
async fn first_admin_setup_is_one_time_and_the_cli_reissues_links() {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    let mut app = config.spawn();
    let addr = app.wait_ready();
    let first = setup_token(&mut app);
    let anon = ApiClient::anonymous(addr);
    assert_eq!(
        anon.get("/api/v1/setup").await.json()["setup_required"],
        true
    );

    // The CLI issues a new link; the old one stops working.
    let out = config.run(&["admin", "setup-token"]);
    assert_eq!(out.code(), Some(0), "{}", out.all());
    let link = out.stdout.trim();
    assert!(link.starts_with("https://localhost:"), "{link}");
    let second = link.split_once("#token=").expect("token").1.to_string();
    let body = |token: &str, password: &str| json!({ "token": token, "username": "boss", "password": password });
    let r = anon.post("/api/v1/setup", body(&first, PASSWORD)).await;
    assert_error(&r, 403, "invalid_setup_token");
    assert!(r.json()["message"]
        .as_str()
        .unwrap_or("")
        .contains("mogothrow77 admin setup-token"));

    // A weak password is refused with the rule, and does not use the token.
    let r = anon
        .post("/api/v1/setup", body(&second, "password123"))
        .await;
    assert_error(&r, 422, "password_policy");
    assert_eq!(r.json()["details"]["fields"][0]["field"], "password");

    let r = anon.post("/api/v1/setup", body(&second, PASSWORD)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["user"]["role"], "admin");
    let cookie = r
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.clone())
        .expect("set-cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        cookie.starts_with("__Host-mogothrow77_session="),
        "{cookie}"
    );

    // Setup is over: the same token, or any other, gets 409; the CLI says why.
    let r = anon.post("/api/v1/setup", body(&second, PASSWORD)).await;
    assert_error(&r, 409, "setup_complete");
    assert_eq!(
        anon.get("/api/v1/setup").await.json()["setup_required"],
        false
    );
    let out = config.run(&["admin", "setup-token"]);
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(out.stderr.contains("users exist already"), "{}", out.all());
    assert!(app.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_failures_do_not_reveal_whether_an_account_exists() {
    let site = Site::start().await;
    let anon = ApiClient::anonymous(site.addr);
    let wrong_password = anon
        .post(
            "/api/v1/auth/login",
            json!({ "username": ADMIN, "password": "not the password at all" }),
        )
        .await;
    let no_such_user = anon
        .post(
            "/api/v1/auth/login",
            json!({ "username": "nobody-here", "password": "not the password at all" }),
        )
        .await;
    assert_error(&wrong_password, 401, "invalid_credentials");
    assert_error(&no_such_user, 401, "invalid_credentials");
    assert_eq!(
        wrong_password.json()["message"],
        no_such_user.json()["message"]
    );
    assert!(session_cookie(&wrong_password).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failures_lock_the_account_name_whether_or_not_it_exists() {
    let site = Site::start().await;
    let anon = ApiClient::anonymous(site.addr);
    for name in [ADMIN, "ghost"] {
        for _ in 0..5 {
            let r = anon
                .post(
                    "/api/v1/auth/login",
                    json!({ "username": name, "password": "wrong wrong wrong" }),
                )
                .await;
            assert_error(&r, 401, "invalid_credentials");
        }
        // Now even the right password is refused until the lock expires.
        let r = anon
            .post(
                "/api/v1/auth/login",
                json!({ "username": name, "password": PASSWORD }),
            )
            .await;
        assert_error(&r, 429, "too_many_attempts");
        let retry: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!((1..=900).contains(&retry), "{retry}");
    }
    // The lock is in PostgreSQL (any replica sees it); lifting it by SQL
    // lets the admin in again.
    let sql = site.sql().await;
    sql.execute("DELETE FROM login_throttle", &[])
        .await
        .expect("unlock");
    ApiClient::login(site.addr, ADMIN, PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_rotate_on_sign_in_need_csrf_and_end_on_sign_out() {
    let site = Site::start().await;
    let a = ApiClient::login(site.addr, ADMIN, PASSWORD).await;
    let b = ApiClient::login(site.addr, ADMIN, PASSWORD).await;
    assert_ne!(a.cookie, b.cookie, "every sign-in gets a new session id");
    assert_ne!(a.cookie, site.admin.cookie);

    let me = a.get("/api/v1/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["user"]["username"], ADMIN);
    assert_eq!(me.json()["authenticated_by"], "session");

    // State changes need the session's CSRF token...
    let mut no_csrf = a.clone();
    no_csrf.csrf = None;
    let body = json!({ "username": "eve", "role": "viewer", "password": PASSWORD });
    assert_error(
        &no_csrf.post("/api/v1/users", body.clone()).await,
        403,
        "csrf_failed",
    );
    let mut wrong_csrf = a.clone();
    wrong_csrf.csrf = b.csrf.clone();
    assert_error(
        &wrong_csrf.post("/api/v1/users", body.clone()).await,
        403,
        "csrf_failed",
    );
    // ...and cannot come from another site.
    let cross = a.clone().header("Origin", "https://evil.example");
    assert_error(
        &cross.post("/api/v1/users", body.clone()).await,
        403,
        "csrf_failed",
    );
    let anon_cross = ApiClient::anonymous(site.addr).header("Origin", "https://evil.example");
    assert_error(
        &anon_cross
            .post(
                "/api/v1/auth/login",
                json!({ "username": ADMIN, "password": PASSWORD }),
            )
            .await,
        403,
        "csrf_failed",
    );
    // Same origin works.
    let same = a.clone().header("Origin", "https://localhost");
    assert_eq!(same.post("/api/v1/users", body).await.status, 201);

    // Sign out ends this session only.
    let r = a.post("/api/v1/auth/logout", json!({})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_error(&a.get("/api/v1/me").await, 401, "unauthenticated");
    assert_eq!(b.get("/api/v1/me").await.status, 200);

    // "Sign out everywhere" ends all of them.
    let r = b.post("/api/v1/auth/logout-everywhere", json!({})).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_error(&b.get("/api/v1/me").await, 401, "unauthenticated");
    assert_error(&site.admin.get("/api/v1/me").await, 401, "unauthenticated");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_session_expires() {
    let site = Site::start().await;
    let sql = site.sql().await;
    assert_eq!(site.admin.get("/api/v1/me").await.status, 200);
    sql.execute(
        "UPDATE sessions SET last_seen_at = now() - interval '31 minutes'",
        &[],
    )
    .await
    .expect("age");
    let r = site.admin.get("/api/v1/me").await;
    assert_error(&r, 401, "unauthenticated");
    assert!(r.json()["message"]
        .as_str()
        .unwrap_or("")
        .contains("session has ended"));
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_manage_users_and_role_changes_end_sessions() {
    let site = Site::start().await;
    let (id, viewer) = site.user("vera", "viewer").await;
    let r = site
        .admin
        .post(
            "/api/v1/users",
            json!({ "username": "vera", "role": "editor", "password": PASSWORD }),
        )
        .await;
    assert_error(&r, 409, "username_taken");
    let r = site
        .admin
        .post(
            "/api/v1/users",
            json!({ "username": "Bad Name", "role": "editor", "password": PASSWORD }),
        )
        .await;
    assert_error(&r, 422, "validation_failed");
    assert_eq!(r.json()["details"]["fields"][0]["field"], "username");
    let r = site
        .admin
        .post(
            "/api/v1/users",
            json!({ "username": "otto", "role": "root", "password": PASSWORD }),
        )
        .await;
    assert_error(&r, 422, "validation_failed");

    // Promote: the viewer's old session ends; a new sign-in has the new role.
    let r = site
        .admin
        .patch(&format!("/api/v1/users/{id}"), json!({ "role": "editor" }))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["role"], "editor");
    assert_error(&viewer.get("/api/v1/me").await, 401, "unauthenticated");
    let editor = ApiClient::login(site.addr, "vera", PASSWORD).await;
    assert_eq!(
        editor.get("/api/v1/me").await.json()["user"]["role"],
        "editor"
    );

    // Disable: sessions end and sign-in is refused with a clear reason.
    let r = site
        .admin
        .patch(&format!("/api/v1/users/{id}"), json!({ "disabled": true }))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_error(&editor.get("/api/v1/me").await, 401, "unauthenticated");
    let r = ApiClient::anonymous(site.addr)
        .post(
            "/api/v1/auth/login",
            json!({ "username": "vera", "password": PASSWORD }),
        )
        .await;
    assert_error(&r, 403, "account_disabled");

    // Admin reset of the password; the old one stops working.
    site.admin
        .patch(&format!("/api/v1/users/{id}"), json!({ "disabled": false }))
        .await;
    let r = site
        .admin
        .post(
            &format!("/api/v1/users/{id}/password"),
            json!({ "password": "marble ocean whispers twice" }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = ApiClient::anonymous(site.addr)
        .post(
            "/api/v1/auth/login",
            json!({ "username": "vera", "password": PASSWORD }),
        )
        .await;
    assert_error(&r, 401, "invalid_credentials");
    ApiClient::login(site.addr, "vera", "marble ocean whispers twice").await;

    // The last admin cannot be demoted or disabled.
    let me = site.admin.get("/api/v1/me").await.json();
    let admin_id = me["user"]["id"].as_i64().expect("id");
    let r = site
        .admin
        .patch(
            &format!("/api/v1/users/{admin_id}"),
            json!({ "role": "viewer" }),
        )
        .await;
    assert_error(&r, 409, "last_admin");
    let r = site
        .admin
        .patch(
            &format!("/api/v1/users/{admin_id}"),
            json!({ "disabled": true }),
        )
        .await;
    assert_error(&r, 409, "last_admin");
    assert_error(
        &site.admin.get("/api/v1/users/999999").await,
        404,
        "not_found",
    );
    assert_error(&site.admin.get("/api/v1/users/abc").await, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn password_change_checks_the_current_one_and_the_policy() {
    let site = Site::start().await;
    let (_, user) = site.user("paula", "viewer").await;
    let other = ApiClient::login(site.addr, "paula", PASSWORD).await;
    let r = user
        .post(
            "/api/v1/me/password",
            json!({ "current_password": "wrong one entirely", "new_password": "amber kite over hills" }),
        )
        .await;
    assert_error(&r, 422, "validation_failed");
    for (weak, rule) in [
        ("short", "too_short"),
        ("P@ssw0rd2024!", "common"),
        ("paula-is-great-2024", "contains_context"),
        ("aaaaaaaaaaaaaaaa", "repetitive"),
    ] {
        let r = user
            .post(
                "/api/v1/me/password",
                json!({ "current_password": PASSWORD, "new_password": weak }),
            )
            .await;
        assert_error(&r, 422, "password_policy");
        assert_eq!(r.json()["details"]["fields"][0]["rule"], rule, "{weak}");
    }
    let r = user
        .post(
            "/api/v1/me/password",
            json!({ "current_password": PASSWORD, "new_password": "amber kite over hills" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The current session continues under a new id; the other one ended.
    let mut rotated = user.clone();
    rotated.adopt_session(&r);
    assert_ne!(rotated.cookie, user.cookie);
    assert_eq!(rotated.get("/api/v1/me").await.status, 200);
    assert_error(&other.get("/api/v1/me").await, 401, "unauthenticated");
    ApiClient::login(site.addr, "paula", "amber kite over hills").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn api_tokens_are_scoped_shown_once_revocable_and_expire() {
    let site = Site::start().await;
    let (_, auditor) = site.user("aud", "auditor").await;

    // A token cannot exceed its creator's role.
    let r = auditor
        .post(
            "/api/v1/me/tokens",
            json!({ "name": "too much", "permissions": ["users:manage"] }),
        )
        .await;
    assert_error(&r, 403, "forbidden");
    let r = auditor
        .post(
            "/api/v1/me/tokens",
            json!({ "name": "bad", "permissions": ["no:such"] }),
        )
        .await;
    assert_error(&r, 422, "validation_failed");

    let r = auditor
        .post(
            "/api/v1/me/tokens",
            json!({ "name": "siem export", "permissions": ["audit:read"], "expires_in_days": 30 }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.json()["token"].as_str().expect("token").to_string();
    let token_id = r.json()["id"].as_i64().expect("id");
    assert!(secret.starts_with("m77_") && secret.len() > 40, "{secret}");

    // Stored as a digest, never in clear.
    let sql = site.sql().await;
    let stored: Vec<u8> = sql
        .query_one(
            "SELECT secret_digest FROM api_tokens WHERE id = $1",
            &[&token_id],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(stored.len(), 32);
    let listed = auditor.get("/api/v1/me/tokens").await;
    assert!(!listed.body.contains(&secret[8..]), "{}", listed.body);
    assert_eq!(listed.json()["items"][0]["name"], "siem export");

    let token = ApiClient::with_token(site.addr, &secret);
    assert_eq!(token.get("/api/v1/audit").await.status, 200);
    assert_eq!(
        token.get("/api/v1/me").await.json()["authenticated_by"],
        "token"
    );
    // Inside the role but outside the token's scope.
    assert_error(&token.get("/api/v1/users").await, 403, "forbidden");
    // Tokens cannot manage accounts or mint tokens.
    assert_error(
        &token
            .post(
                "/api/v1/me/tokens",
                json!({ "name": "x", "permissions": ["audit:read"] }),
            )
            .await,
        403,
        "session_required",
    );
    // Expired.
    sql.execute(
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1",
        &[&token_id],
    )
    .await
    .expect("expire");
    // A change made by SQL reaches the server's token cache by notification.
    eventually(&token, "/api/v1/audit", 401).await;
    assert_error(&token.get("/api/v1/audit").await, 401, "unauthenticated");
    sql.execute(
        "UPDATE api_tokens SET expires_at = NULL WHERE id = $1",
        &[&token_id],
    )
    .await
    .expect("unexpire");
    assert_eq!(token.get("/api/v1/audit").await.status, 200);
    // Revoked.
    let r = auditor
        .delete(&format!("/api/v1/me/tokens/{token_id}"))
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_error(&token.get("/api/v1/audit").await, 401, "unauthenticated");
    assert_error(
        &auditor
            .delete(&format!("/api/v1/me/tokens/{token_id}"))
            .await,
        404,
        "not_found",
    );
    // Neither the token nor any password ever reaches the server's log.
    let log = site.app.output();
    assert!(!log.contains(&secret[4..]), "token secret logged");
    assert!(!log.contains(PASSWORD), "password logged");
    // A garbage bearer token is refused outright, not treated as anonymous.
    let junk = ApiClient::with_token(site.addr, "m77_nonsense");
    assert_error(&junk.get("/api/v1/setup").await, 401, "unauthenticated");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_loses_what_its_owner_loses() {
    let site = Site::start().await;
    let (id, auditor) = site.user("audrey", "auditor").await;
    let r = auditor
        .post(
            "/api/v1/me/tokens",
            json!({ "name": "reader", "permissions": ["audit:read", "users:read"] }),
        )
        .await;
    let token = ApiClient::with_token(site.addr, r.json()["token"].as_str().expect("token"));
    assert_eq!(token.get("/api/v1/users").await.status, 200);
    site.admin
        .patch(&format!("/api/v1/users/{id}"), json!({ "role": "viewer" }))
        .await;
    assert_error(&token.get("/api/v1/users").await, 403, "forbidden");
    assert_error(&token.get("/api/v1/audit").await, 403, "forbidden");
}

/// A TOTP code from oathtool, an independent RFC 6238 implementation.
fn oathtool(secret_base32: &str, unix_time: u64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "--base32", "--digits=6"])
        .arg(format!("--now=@{unix_time}"))
        .arg(secret_base32)
        .output()
        .expect("oathtool is installed (apt-get install oathtool; scripts/test does)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn totp_enrolment_and_sign_in_with_codes_from_an_independent_implementation() {
    let site = Site::start().await;
    let (_, user) = site.user("tom", "editor").await;
    let r = user.post("/api/v1/me/mfa/totp", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let enrol = r.json();
    let secret = enrol["secret"].as_str().expect("secret").to_string();
    assert!(enrol["otpauth_uri"]
        .as_str()
        .expect("uri")
        .starts_with("otpauth://totp/Mogothrow77:tom?secret="));
    let svg = enrol["qr_svg"].as_str().expect("svg");
    assert!(svg.contains("<svg") && !svg.contains("<script"));

    let r = user
        .post("/api/v1/me/mfa/totp/confirm", json!({ "code": "000000" }))
        .await;
    assert_error(&r, 422, "validation_failed");
    let t = now();
    let r = user
        .post(
            "/api/v1/me/mfa/totp/confirm",
            json!({ "code": oathtool(&secret, t) }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let codes: Vec<String> = r.json()["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_string())
        .collect();
    assert_eq!(codes.len(), 10);

    // Password alone is no longer enough.
    let anon = ApiClient::anonymous(site.addr);
    let login = |extra: serde_json::Value| {
        let mut body = json!({ "username": "tom", "password": PASSWORD });
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        body
    };
    assert_error(
        &anon.post("/api/v1/auth/login", login(json!({}))).await,
        401,
        "mfa_required",
    );
    assert_error(
        &anon
            .post(
                "/api/v1/auth/login",
                login(json!({ "totp_code": "123456" })),
            )
            .await,
        401,
        "invalid_mfa_code",
    );
    // The next step's code (within the accepted skew) signs in once; the
    // same code again is a replay.
    let next = oathtool(&secret, t + 30);
    let r = anon
        .post("/api/v1/auth/login", login(json!({ "totp_code": next })))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(session_cookie(&r).is_some());
    assert_error(
        &anon
            .post("/api/v1/auth/login", login(json!({ "totp_code": next })))
            .await,
        401,
        "invalid_mfa_code",
    );
    // A recovery code works once, in any case and spacing.
    let code = codes[0].to_uppercase().replace('-', " ");
    let r = anon
        .post(
            "/api/v1/auth/login",
            login(json!({ "recovery_code": code })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_error(
        &anon
            .post(
                "/api/v1/auth/login",
                login(json!({ "recovery_code": codes[0] })),
            )
            .await,
        401,
        "invalid_mfa_code",
    );
    assert_eq!(
        site.admin.get("/api/v1/users").await.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|u| u["username"] == "tom")
            .expect("tom")["mfa_enabled"],
        true
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn when_admins_require_mfa_users_must_enrol_before_anything_else() {
    let site = Site::start().await;
    let (_, viewer) = site.user("val", "viewer").await;
    let r = site
        .admin
        .patch("/api/v1/settings/security", json!({ "require_mfa": true }))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["require_mfa"], true);
    assert_error(
        &viewer.get("/api/v1/system").await,
        403,
        "mfa_enrolment_required",
    );
    assert_eq!(
        viewer.get("/api/v1/me").await.json()["mfa_enrolment_required"],
        true
    );
    let secret = viewer.post("/api/v1/me/mfa/totp", json!({})).await.json()["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let r = viewer
        .post(
            "/api/v1/me/mfa/totp/confirm",
            json!({ "code": oathtool(&secret, now()) }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut enrolled = viewer.clone();
    enrolled.adopt_session(&r);
    assert_eq!(enrolled.get("/api/v1/system").await.status, 200);
    // Required MFA cannot be switched off by the user.
    let r = enrolled
        .call(
            "DELETE",
            "/api/v1/me/mfa/totp",
            Some(&json!({ "current_password": PASSWORD })),
        )
        .await;
    assert_error(&r, 403, "forbidden");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_before_setup_keeps_the_link_valid() {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    let mut app = config.spawn();
    app.wait_ready();
    let token = setup_token(&mut app);
    assert!(app.stop().success());
    let mut again = config.spawn();
    let addr = again.wait_ready();
    assert!(
        again
            .output()
            .contains("the setup link logged by an earlier start is still valid"),
        "{}",
        again.output()
    );
    let r = ApiClient::anonymous(addr)
        .post(
            "/api/v1/setup",
            json!({ "token": token, "username": "boss", "password": PASSWORD }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(again.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_sign_in_input_gets_clear_answers() {
    let site = Site::start().await;
    let anon = ApiClient::anonymous(site.addr);
    let long = "x".repeat(20_000);
    let r = anon
        .post(
            "/api/v1/auth/login",
            json!({ "username": long, "password": long }),
        )
        .await;
    assert_error(&r, 401, "invalid_credentials");
    let r = anon
        .post(
            "/api/v1/auth/login",
            json!({ "username": "a\u{0}b", "password": "x" }),
        )
        .await;
    assert_error(&r, 401, "invalid_credentials");
    // Another Authorization scheme (a proxy's Basic credentials) is not a
    // token: the session cookie still counts.
    let basic = site
        .admin
        .clone()
        .header("Authorization", "Basic dXNlcjpwYXNz");
    assert_eq!(basic.get("/api/v1/me").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn guessing_the_current_password_from_a_session_locks_the_account() {
    let site = Site::start().await;
    let (_, user) = site.user("gus", "viewer").await;
    for _ in 0..5 {
        let r = user
            .post(
                "/api/v1/me/password",
                json!({ "current_password": "a wrong guess here", "new_password": "amber kite over hills" }),
            )
            .await;
        assert_error(&r, 422, "validation_failed");
    }
    let r = user
        .post(
            "/api/v1/me/password",
            json!({ "current_password": PASSWORD, "new_password": "amber kite over hills" }),
        )
        .await;
    assert_error(&r, 429, "too_many_attempts");
    assert!(r.header("retry-after").is_some());
    let audited = site
        .admin
        .get("/api/v1/audit?action=account.reauthenticate&outcome=failure")
        .await
        .json();
    assert_eq!(audited["items"].as_array().expect("items").len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_take_lowercase_bearer_need_permissions_and_obey_required_mfa() {
    let site = Site::start().await;
    let (_, viewer) = site.user("tia", "viewer").await;
    let r = viewer
        .post(
            "/api/v1/me/tokens",
            json!({ "name": "none", "permissions": [] }),
        )
        .await;
    assert_error(&r, 422, "validation_failed");
    let r = viewer
        .post(
            "/api/v1/me/tokens",
            json!({ "name": "reader", "permissions": ["system:read"] }),
        )
        .await;
    let secret = r.json()["token"].as_str().expect("token").to_string();
    let lower =
        ApiClient::anonymous(site.addr).header("Authorization", &format!("bearer {secret}"));
    assert_eq!(lower.get("/api/v1/system").await.status, 200);
    // Once MFA is required, a token of someone who has not enrolled opens
    // nothing either.
    site.admin
        .patch("/api/v1/settings/security", json!({ "require_mfa": true }))
        .await;
    let token = ApiClient::with_token(site.addr, &secret);
    assert_error(
        &token.get("/api/v1/system").await,
        403,
        "mfa_enrolment_required",
    );
}
