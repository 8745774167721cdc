//! `mogothrow77 smoke`: the synthetic check against a running server —
//! every step passes and leaves nothing behind, no webhook hears of it,
//! the reserved collection cannot be taken or changed, and a token without
//! the permissions, a wrong certificate or an unreachable server fail it
//! with the step and the reason.

use serde_json::json;

use crate::harness::api::{assert_error, Site};

const SMOKE: &str = "mogothrow77_smoke";

async fn token_file(site: &Site, name: &str, permissions: &[&str]) -> String {
    let r = site
        .admin
        .post(
            "/api/v1/me/tokens",
            json!({ "name": name, "permissions": permissions }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let path = site.config.path(&format!("{name}.token"));
    std::fs::write(
        &path,
        format!("{}\n", r.json()["token"].as_str().expect("token")),
    )
    .expect("token file");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_smoke_check_passes_and_leaves_nothing_behind() {
    let site = Site::start_with("[webhooks]\nallow_addresses = [\"127.0.0.1/32\"]\n").await;
    // A webhook for every collection: the smoke check's writes raise none.
    let r = site
        .admin
        .post(
            "/api/v1/webhooks",
            json!({ "url": "http://127.0.0.1:9/hook", "events": ["record.created", "record.deleted"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let token = token_file(
        &site,
        "smoke",
        &["records:read", "records:write", "records:export"],
    )
    .await;
    let url = format!("https://localhost:{}", site.addr.port());
    let cert = site.config.state_dir().join("tls/cert.pem");
    let cert = cert.to_str().expect("path");

    let out = site.config.run(&[
        "smoke",
        "--url",
        &url,
        "--token-file",
        &token,
        "--pin-cert",
        cert,
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.all());
    for step in [
        "create record",
        "read back by filter",
        "export job",
        "clean up",
    ] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with("ok    ") && l.contains(step) && l.ends_with(" ms")),
            "{step}: {}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("smoke check passed"), "{}", out.stdout);

    let sql = site.sql().await;
    let left: i64 = sql
        .query_one(
            "SELECT (SELECT count(*) FROM exports e JOIN collections c ON c.name = e.collection \
                     WHERE c.name = $1) + \
                    (SELECT count(*) FROM webhook_deliveries)",
            &[&SMOKE],
        )
        .await
        .expect("counts")
        .get(0);
    assert_eq!(left, 0, "no export left, no webhook delivery");
    let r = site
        .admin
        .get(&format!("/api/v1/collections/{SMOKE}/records"))
        .await;
    assert_eq!(r.json()["items"], json!([]), "the record was deleted");
    let audit = site.admin.get("/api/v1/audit?action=record.delete").await;
    assert!(
        audit.body.contains(&format!("collection:{SMOKE}/record:")),
        "audited: {}",
        audit.body
    );

    // Reserved: not listed, not to be taken, changed or dropped.
    let list = site.admin.get("/api/v1/collections").await;
    assert!(!list.body.contains(SMOKE), "{}", list.body);
    let taken = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "mogothrow77_mine", "title": "x", "fields": [] }),
        )
        .await;
    assert_error(&taken, 422, "validation_failed");
    let dropped = site
        .admin
        .delete(&format!("/api/v1/collections/{SMOKE}?confirm={SMOKE}"))
        .await;
    assert_error(&dropped, 409, "conflict");

    // Failures name the step and the reason; what was made is cleaned up.
    let read_only = token_file(&site, "readonly", &["records:read"]).await;
    let refused = site.config.run(&[
        "smoke",
        "--url",
        &url,
        "--token-file",
        &read_only,
        "--pin-cert",
        cert,
    ]);
    assert_eq!(refused.code(), Some(1), "{}", refused.all());
    assert!(
        refused.stdout.contains("FAIL  create record") && refused.stdout.contains("403 forbidden"),
        "{}",
        refused.stdout
    );
    let untrusted = site
        .config
        .run(&["smoke", "--url", &url, "--token-file", &token]);
    assert_eq!(untrusted.code(), Some(1), "{}", untrusted.all());
    assert!(untrusted.stdout.contains("TLS"), "{}", untrusted.stdout);
    let nobody = site.config.run(&[
        "smoke",
        "--url",
        "https://127.0.0.1:9",
        "--token-file",
        &token,
        "--pin-cert",
        cert,
    ]);
    assert_eq!(nobody.code(), Some(1), "{}", nobody.all());
    assert!(
        nobody.stdout.contains("cannot connect"),
        "{}",
        nobody.stdout
    );
    let no_file = site
        .config
        .run(&["smoke", "--url", &url, "--token-file", "/nonexistent"]);
    assert_eq!(no_file.code(), Some(2), "{}", no_file.all());
    assert!(
        no_file.stderr.contains("--token-file"),
        "{}",
        no_file.stderr
    );
    let bad_url = site
        .config
        .run(&["smoke", "--url", "localhost:1", "--token-file", &token]);
    assert_eq!(bad_url.code(), Some(2), "{}", bad_url.all());
}
