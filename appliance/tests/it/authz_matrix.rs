//! The authorization matrix: every API route called as every role, as an
//! admin's API token, and anonymously, against an expected table written
//! here by hand (not derived from the code under test). A route added
//! without a row in the table fails the test.

use std::collections::BTreeSet;

use serde_json::json;

use crate::harness::api::{ApiClient, Site, PASSWORD};

/// Who may call what. `public`: anyone. Otherwise the roles allowed:
/// A admin, E editor, V viewer, U auditor. `session`: browser sessions
/// only (API tokens are refused even with every permission).
const MATRIX: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/setup", "public"),
    ("POST", "/api/v1/setup", "public"),
    ("POST", "/api/v1/auth/login", "public"),
    ("POST", "/api/v1/auth/password-reset", "public"),
    ("POST", "/api/v1/auth/logout", "AEVU session"),
    ("POST", "/api/v1/auth/logout-everywhere", "AEVU session"),
    ("GET", "/api/v1/me", "AEVU"),
    ("POST", "/api/v1/me/password", "AEVU session"),
    ("POST", "/api/v1/me/mfa/totp", "AEVU session"),
    ("POST", "/api/v1/me/mfa/totp/confirm", "AEVU session"),
    ("DELETE", "/api/v1/me/mfa/totp", "AEVU session"),
    ("GET", "/api/v1/me/tokens", "AEVU session"),
    ("POST", "/api/v1/me/tokens", "AEVU session"),
    ("DELETE", "/api/v1/me/tokens/{id}", "AEVU session"),
    ("GET", "/api/v1/users", "AU"),
    ("POST", "/api/v1/users", "A"),
    ("GET", "/api/v1/users/{id}", "AU"),
    ("PATCH", "/api/v1/users/{id}", "A"),
    ("POST", "/api/v1/users/{id}/password", "A"),
    ("DELETE", "/api/v1/users/{id}/sessions", "A"),
    ("DELETE", "/api/v1/users/{id}/mfa", "A"),
    ("GET", "/api/v1/audit", "AU"),
    ("GET", "/api/v1/system", "AEVU"),
    ("GET", "/api/v1/settings/security", "A"),
    ("PATCH", "/api/v1/settings/security", "A"),
    ("GET", "/api/v1/openapi.json", "public"),
    ("GET", "/api/v1/collections", "AEVU"),
    ("POST", "/api/v1/collections", "A"),
    ("GET", "/api/v1/collections/{collection}", "AEVU"),
    ("DELETE", "/api/v1/collections/{collection}", "A"),
    ("POST", "/api/v1/collections/{collection}/fields", "A"),
    (
        "PATCH",
        "/api/v1/collections/{collection}/fields/{field}",
        "A",
    ),
    (
        "DELETE",
        "/api/v1/collections/{collection}/fields/{field}",
        "A",
    ),
    (
        "POST",
        "/api/v1/collections/{collection}/purge-hidden-fields",
        "A",
    ),
    ("GET", "/api/v1/collections/{collection}/records", "AEVU"),
    ("POST", "/api/v1/collections/{collection}/records", "AE"),
    (
        "POST",
        "/api/v1/collections/{collection}/records/batch",
        "AE",
    ),
    (
        "GET",
        "/api/v1/collections/{collection}/records/{id}",
        "AEVU",
    ),
    (
        "PATCH",
        "/api/v1/collections/{collection}/records/{id}",
        "AE",
    ),
    (
        "DELETE",
        "/api/v1/collections/{collection}/records/{id}",
        "AE",
    ),
    ("GET", "/api/v1/collections/{collection}/export.csv", "AE"),
    ("POST", "/api/v1/collections/{collection}/exports", "AE"),
    ("POST", "/api/v1/collections/{collection}/imports", "AE"),
    ("GET", "/api/v1/imports", "AE"),
    ("GET", "/api/v1/imports/{id}", "AE"),
    ("GET", "/api/v1/imports/{id}/errors.csv", "AE"),
    ("GET", "/api/v1/exports", "AE"),
    ("GET", "/api/v1/exports/{id}", "AE"),
    ("DELETE", "/api/v1/exports/{id}", "AE"),
    ("GET", "/api/v1/exports/{id}/download", "AE"),
    ("GET", "/api/v1/jobs", "A"),
    ("GET", "/api/v1/jobs/{id}", "A"),
    ("POST", "/api/v1/jobs/{id}/cancel", "A"),
    ("POST", "/api/v1/jobs/{id}/retry", "A"),
    ("GET", "/api/v1/webhooks", "A"),
    ("POST", "/api/v1/webhooks", "A"),
    ("GET", "/api/v1/webhooks/{id}", "A"),
    ("PATCH", "/api/v1/webhooks/{id}", "A"),
    ("DELETE", "/api/v1/webhooks/{id}", "A"),
    ("POST", "/api/v1/webhooks/{id}/rotate-secret", "A"),
    ("GET", "/api/v1/webhooks/{id}/deliveries", "A"),
    ("GET", "/api/v1/webhooks/{id}/deliveries/{delivery}", "A"),
    (
        "POST",
        "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
        "A",
    ),
];

/// Error codes that mean "not allowed".
const REFUSALS: [&str; 3] = ["unauthenticated", "forbidden", "session_required"];

#[derive(Clone, Copy, Debug)]
enum Caller {
    Anonymous,
    Role(char, &'static str),
    AdminToken,
}

fn expected(rule: &str, caller: Caller) -> bool {
    if rule == "public" {
        return true;
    }
    match caller {
        Caller::Anonymous => false,
        Caller::Role(letter, _) => rule.split(' ').next().unwrap_or("").contains(letter),
        Caller::AdminToken => !rule.contains("session"),
    }
}

#[test]
fn the_table_covers_exactly_the_registered_routes() {
    let table: BTreeSet<(String, String)> = MATRIX
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(table.len(), MATRIX.len(), "duplicate rows in MATRIX");
    let registered: BTreeSet<(String, String)> = mogothrow77::api::routes()
        .iter()
        .map(|r| (r.method.as_str().to_string(), r.path.to_string()))
        .collect();
    let missing: Vec<_> = registered.difference(&table).collect();
    let stale: Vec<_> = table.difference(&registered).collect();
    assert!(
        missing.is_empty(),
        "routes without a row in MATRIX: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "rows for routes that do not exist: {stale:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_as_every_role_and_anonymous() {
    let site = Site::start().await;
    let roles = [
        Caller::Role('A', "matrix-admin"),
        Caller::Role('E', "matrix-editor"),
        Caller::Role('V', "matrix-viewer"),
        Caller::Role('U', "matrix-auditor"),
    ];
    for caller in roles {
        if let Caller::Role(_, name) = caller {
            let role = match name {
                "matrix-admin" => "admin",
                "matrix-editor" => "editor",
                "matrix-viewer" => "viewer",
                _ => "auditor",
            };
            site.user(name, role).await;
        }
    }
    let all_permissions: Vec<String> = site.admin.get("/api/v1/me").await.json()["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    let r = site
        .admin
        .post(
            "/api/v1/me/tokens",
            json!({ "name": "matrix", "permissions": all_permissions }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.json()["token"].as_str().expect("token").to_string();

    let mut failures = Vec::new();
    let mut checked = 0;
    for (method, path, rule) in MATRIX {
        let path = path
            .replace("{id}", "999999")
            .replace("{delivery}", "999999")
            .replace("{collection}", "no_such_collection")
            .replace("{field}", "no_such_field");
        let body = matches!(*method, "POST" | "PATCH").then(|| json!({}));
        let callers = [Caller::Anonymous]
            .into_iter()
            .chain(roles)
            .chain([Caller::AdminToken]);
        for caller in callers {
            // A fresh session per call: some routes end the session.
            let client = match caller {
                Caller::Anonymous => ApiClient::anonymous(site.addr),
                Caller::Role(_, name) => ApiClient::login(site.addr, name, PASSWORD).await,
                Caller::AdminToken => ApiClient::with_token(site.addr, &token),
            };
            let r = client.call(method, &path, body.as_ref()).await;
            let code = serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["code"].as_str().map(str::to_string))
                .unwrap_or_default();
            let refused = matches!(r.status, 401 | 403) && REFUSALS.contains(&code.as_str());
            let allowed = expected(rule, caller);
            if allowed == refused || r.status >= 500 {
                failures.push(format!(
                    "{method} {path} as {caller:?}: expected {}, got {} {}",
                    if allowed { "allowed" } else { "refused" },
                    r.status,
                    r.body
                ));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(checked, MATRIX.len() * 6);
}
