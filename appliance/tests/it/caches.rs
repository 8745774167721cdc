//! Each replica caches API tokens and collection catalogs; a change made on
//! another replica, or by SQL, reaches it by notification, and a read whose
//! catalog trails a schema change it never heard of still answers correctly.

use serde_json::json;

use crate::harness::api::{assert_error, eventually, ApiClient, Site, PASSWORD};
use crate::harness::app::{App, AppConfig};
use crate::harness::pg::shared;

/// A second replica on the site's database.
fn second_replica(site: &Site) -> (App, std::net::SocketAddr) {
    let config = AppConfig::external(&shared().dsn(&site.db), "");
    let mut app = config.spawn();
    let addr = app.wait_ready();
    // The config's directory must outlive the process.
    std::mem::forget(config);
    (app, addr)
}

async fn token(site: &Site, permissions: &[&str]) -> (i64, String) {
    let r = site
        .admin
        .post(
            "/api/v1/me/tokens",
            json!({ "name": "replica test", "permissions": permissions }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let body = r.json();
    (
        body["id"].as_i64().expect("id"),
        body["token"].as_str().expect("token").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn token_changes_reach_every_replica_by_notification() {
    let site = Site::start().await;
    let (mut replica, addr) = second_replica(&site);
    let (id, secret) = token(&site, &["audit:read"]).await;
    let on_a = ApiClient::with_token(site.addr, &secret);
    let on_b = ApiClient::with_token(addr, &secret);
    // Both replicas now hold the token in their caches.
    for _ in 0..3 {
        assert_eq!(on_a.get("/api/v1/audit").await.status, 200);
        assert_eq!(on_b.get("/api/v1/audit").await.status, 200);
    }

    // Expired by SQL: neither replica made the change.
    let sql = site.sql().await;
    sql.execute(
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1",
        &[&id],
    )
    .await
    .expect("expire");
    eventually(&on_a, "/api/v1/audit", 401).await;
    eventually(&on_b, "/api/v1/audit", 401).await;
    sql.execute(
        "UPDATE api_tokens SET expires_at = NULL WHERE id = $1",
        &[&id],
    )
    .await
    .expect("unexpire");
    assert_eq!(on_a.get("/api/v1/audit").await.status, 200);
    assert_eq!(on_b.get("/api/v1/audit").await.status, 200);

    // Revoked through replica A: A refuses at once, B by notification.
    let r = site.admin.delete(&format!("/api/v1/me/tokens/{id}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_error(&on_a.get("/api/v1/audit").await, 401, "unauthenticated");
    eventually(&on_b, "/api/v1/audit", 401).await;

    // The owner's role narrowed on A: B stops granting what the role lost.
    let (user_id, _) = site.user("aud", "auditor").await;
    let aud = ApiClient::login(site.addr, "aud", PASSWORD).await;
    let r = aud
        .post(
            "/api/v1/me/tokens",
            json!({ "name": "t", "permissions": ["audit:read"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let aud_b = ApiClient::with_token(addr, r.json()["token"].as_str().expect("token"));
    assert_eq!(aud_b.get("/api/v1/audit").await.status, 200);
    let r = site
        .admin
        .patch(
            &format!("/api/v1/users/{user_id}"),
            json!({ "role": "viewer" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually(&aud_b, "/api/v1/audit", 403).await;
    let _ = replica.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_changes_reach_every_replica_and_stale_catalogs_never_fail_a_read() {
    let site = Site::start().await;
    let (mut replica, addr) = second_replica(&site);
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "notes", "fields": [
                { "name": "title", "type": "text" },
                { "name": "n", "type": "integer" },
                { "name": "gone", "type": "text" }
            ] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    for i in 0..5 {
        let r = site
            .admin
            .post(
                "/api/v1/collections/notes/records",
                json!({ "data": { "title": format!("note {i}"), "n": i, "gone": "x" } }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let (_, secret) = token(&site, &["records:read"]).await;
    let on_b = ApiClient::with_token(addr, &secret);
    let list = "/api/v1/collections/notes/records?sort=n";
    // B caches the catalog and prepares the listing on its connections.
    for _ in 0..10 {
        assert_eq!(on_b.get(list).await.status, 200);
    }

    // A field added on A becomes usable on B.
    let r = site
        .admin
        .post(
            "/api/v1/collections/notes/fields",
            json!({ "name": "body", "type": "text" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let by_body = format!(
        "{list}&filter={}",
        "%7B%22field%22%3A%22body%22%2C%22op%22%3A%22is_null%22%2C%22value%22%3Atrue%7D"
    );
    let page = eventually(&on_b, &by_body, 200).await;
    assert_eq!(page["items"].as_array().expect("items").len(), 5);

    // Now B never hears of the next changes (the triggers are off), so its
    // cached catalog and prepared statements describe columns that are gone
    // or of another type; its reads must still answer, with the new schema.
    let sql = site.sql().await;
    sql.batch_execute(
        "ALTER TABLE collections DISABLE TRIGGER USER; \
         ALTER TABLE collection_fields DISABLE TRIGGER USER;",
    )
    .await
    .expect("mute notifications");
    for _ in 0..10 {
        assert_eq!(on_b.get(list).await.status, 200);
    }
    let r = site
        .admin
        .patch(
            "/api/v1/collections/notes/fields/n",
            json!({ "type": "text" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = site
        .admin
        .delete("/api/v1/collections/notes/fields/gone")
        .await;
    assert!(matches!(r.status, 200 | 204), "{}", r.body);
    let r = site
        .admin
        .post("/api/v1/collections/notes/purge-hidden-fields", json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Every connection of B's pool gets its turn.
    for _ in 0..20 {
        let r = on_b.get(list).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let items = r.json()["items"].clone();
        let first = &items[0]["data"];
        assert_eq!(first["n"], json!("0"), "{items}");
        assert!(first.get("gone").is_none(), "{items}");
        let one = on_b
            .get(&format!(
                "/api/v1/collections/notes/records/{}",
                items[1]["id"]
            ))
            .await;
        assert_eq!(one.status, 200, "{}", one.body);
        assert_eq!(one.json()["data"]["n"], json!("1"));
    }
    sql.batch_execute(
        "ALTER TABLE collections ENABLE TRIGGER USER; \
         ALTER TABLE collection_fields ENABLE TRIGGER USER;",
    )
    .await
    .expect("unmute");
    let _ = replica.stop();
}
