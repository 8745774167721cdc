//! Conventions every `/api/v1` route shares: the error body, idempotency
//! keys, rate limits, the OpenAPI document.

use serde_json::json;

use crate::harness::api::{assert_error, ApiClient, Site, PASSWORD};

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_get_the_error_shape_never_a_500() {
    let site = Site::start().await;
    let admin = &site.admin;
    let r = admin
        .call_raw("POST", "/api/v1/users", Some("{not json"), &[])
        .await;
    assert_error(&r, 400, "invalid_request");
    let r = admin
        .call_raw(
            "POST",
            "/api/v1/users",
            Some("username=x"),
            &[("Content-Type", "application/x-www-form-urlencoded")],
        )
        .await;
    assert_error(&r, 415, "unsupported_media_type");
    let r = admin
        .post(
            "/api/v1/users",
            json!({ "username": "x1", "role": "viewer", "password": PASSWORD, "is_admin": true }),
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("is_admin"),
        "{}",
        r.body
    );
    let r = admin.post("/api/v1/users", json!([1, 2, 3])).await;
    assert_error(&r, 400, "invalid_request");
    let r = admin.get("/api/v1/no-such-thing").await;
    assert_error(&r, 404, "not_found");
    let r = admin.call("PUT", "/api/v1/users", Some(&json!({}))).await;
    assert_error(&r, 405, "method_not_allowed");
    // The request id in the body is the one in the header.
    let r = admin
        .call_raw(
            "GET",
            "/api/v1/users/abc",
            None,
            &[("X-Request-Id", "trace-42")],
        )
        .await;
    assert_eq!(r.json()["request_id"], "trace-42");
    assert_eq!(r.header("x-request-id"), Some("trace-42"));
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_replay_the_first_response_and_refuse_another_body() {
    let site = Site::start().await;
    let admin = &site.admin;
    let body = json!({ "username": "ivan", "role": "viewer", "password": PASSWORD });
    let send = |body: serde_json::Value, key: &'static str| {
        let body = body.to_string();
        async move {
            admin
                .call_raw(
                    "POST",
                    "/api/v1/users",
                    Some(&body),
                    &[("Idempotency-Key", key)],
                )
                .await
        }
    };
    let first = send(body.clone(), "k-1").await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), Some("false"));
    let again = send(body.clone(), "k-1").await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json()["id"], first.json()["id"]);
    // Exactly one user and one audit entry were created.
    let users = admin.get("/api/v1/users").await.json();
    let ivans = users["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|u| u["username"] == "ivan")
        .count();
    assert_eq!(ivans, 1);
    let creates = admin.get("/api/v1/audit?action=user.create").await.json();
    assert_eq!(creates["items"].as_array().expect("items").len(), 1);

    let other = json!({ "username": "ivana", "role": "viewer", "password": PASSWORD });
    assert_error(&send(other, "k-1").await, 409, "idempotency_key_reused");
    // Errors are remembered too (the client gets the same answer)...
    let dup = send(body.clone(), "k-2").await;
    assert_error(&dup, 409, "username_taken");
    let replayed = send(body, "k-2").await;
    assert_error(&replayed, 409, "username_taken");
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    // A replayed error carries the replay's own request id.
    assert_eq!(
        replayed.json()["request_id"].as_str(),
        replayed.header("x-request-id")
    );
    assert_ne!(replayed.json()["request_id"], dup.json()["request_id"]);

    // A response holding a one-time secret is never stored: a retry runs
    // again (a second token) and the database keeps no copy.
    let token_body = json!({ "name": "ci", "permissions": ["audit:read"] }).to_string();
    let mut secrets = Vec::new();
    for _ in 0..2 {
        let r = admin
            .call_raw(
                "POST",
                "/api/v1/me/tokens",
                Some(&token_body),
                &[("Idempotency-Key", "t-1")],
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        secrets.push(r.json()["token"].as_str().expect("token").to_string());
    }
    assert_ne!(secrets[0], secrets[1]);
    let sql = site.sql().await;
    let stored: i64 = sql
        .query_one(
            "SELECT count(*) FROM idempotency_keys WHERE key = 't-1'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(stored, 0);
    // ...and keys are per caller: another user's "k-1" is theirs.
    let (_, other_admin) = site.user("ada", "admin").await;
    let r = other_admin
        .call_raw(
            "POST",
            "/api/v1/users",
            Some(&json!({ "username": "ivo", "role": "viewer", "password": PASSWORD }).to_string()),
            &[("Idempotency-Key", "k-1")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = admin
        .call_raw(
            "POST",
            "/api/v1/users",
            Some("{}"),
            &[("Idempotency-Key", "has space")],
        )
        .await;
    assert_error(&r, 400, "invalid_idempotency_key");
}

#[tokio::test(flavor = "multi_thread")]
async fn over_the_rate_limit_a_caller_gets_429_with_retry_after() {
    let site = Site::start_with("[api]\nrate_limit_per_minute = 20\n").await;
    let mut limited = None;
    for _ in 0..40 {
        let r = site.admin.get("/api/v1/me").await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = limited.expect("429 within 40 requests at 20 per minute");
    assert_error(&r, 429, "rate_limited");
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    // Other callers have their own budget.
    let anon = ApiClient::anonymous(site.addr);
    assert_eq!(anon.get("/api/v1/setup").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_is_served_and_lists_every_route() {
    let site = Site::start().await;
    let r = ApiClient::anonymous(site.addr)
        .get("/api/v1/openapi.json")
        .await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for spec in mogothrow77::api::routes() {
        assert!(
            doc["paths"][spec.path][spec.method.as_str().to_lowercase()].is_object(),
            "{} {}",
            spec.method.as_str(),
            spec.path
        );
    }
}
