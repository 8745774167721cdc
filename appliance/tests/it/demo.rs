//! `mogothrow77 demo seed|reset`: seeding adds the demo (audited, its users
//! able to sign in with their links), reset leaves the database as it was,
//! and a database with collections of its own is refused unless --force.

use serde_json::json;

use crate::harness::api::{ApiClient, Site};

/// The tables of the appliance's schemas and, except the audit log (which
/// keeps the demo's entries), their row counts.
async fn fingerprint(site: &Site) -> Vec<(String, i64)> {
    let sql = site.sql().await;
    let tables: Vec<String> = sql
        .query(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname IN ('public', 'records') ORDER BY 1",
            &[],
        )
        .await
        .expect("tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = Vec::new();
    for table in tables {
        if table.starts_with("public.audit_") || table == "public.refinery_schema_history" {
            out.push((table, -1));
            continue;
        }
        let (schema, name) = table.split_once('.').expect("qualified");
        let n: i64 = sql
            .query_one(&format!("SELECT count(*) FROM {schema}.\"{name}\""), &[])
            .await
            .expect("count")
            .get(0);
        out.push((table, n));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_then_reset_leaves_the_database_as_it_was() {
    let site = Site::start().await;
    let before = fingerprint(&site).await;

    let seeded = site
        .config
        .run(&["demo", "seed", "--scale", "20", "--seed", "3"]);
    assert_eq!(seeded.code(), Some(0), "{}", seeded.all());
    assert!(seeded.stdout.contains("140 records"), "{}", seeded.stdout);
    let links: Vec<&str> = seeded
        .stdout
        .lines()
        .filter(|l| l.contains("/reset-password#token="))
        .collect();
    assert_eq!(links.len(), 4, "one link per role: {}", seeded.stdout);

    // What the API shows: records that filter; every field type.
    let r = site
        .admin
        .get("/api/v1/collections/demo_tickets/records?limit=1&filter=%7B%22field%22%3A%22priority%22%2C%22op%22%3A%22gte%22%2C%22value%22%3A1%7D")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(1));
    let mut types = std::collections::BTreeSet::new();
    for name in ["demo_tickets", "demo_assets", "demo_contacts"] {
        let c = site
            .admin
            .get(&format!("/api/v1/collections/{name}"))
            .await
            .json();
        for f in c["fields"].as_array().expect("fields") {
            types.insert(f["type"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(types.len(), 8, "every field type: {types:?}");

    // The editor's link sets a password; the editor signs in.
    let editor_link = links
        .iter()
        .find(|l| l.contains("demo.editor"))
        .expect("the editor's link");
    let token = editor_link.split_once("#token=").expect("token").1.trim();
    let r = ApiClient::anonymous(site.addr)
        .post(
            "/api/v1/auth/password-reset",
            json!({ "token": token, "password": "evaluators pick a passphrase 9" }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let editor = ApiClient::login(site.addr, "demo.editor", "evaluators pick a passphrase 9").await;
    // The job workers make the stored export and run the import (one row
    // refused on purpose).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let exports = editor.get("/api/v1/exports").await.json();
        let imports = editor.get("/api/v1/imports").await.json();
        let export = &exports["items"][0];
        let import = &imports["items"][0];
        if export["state"] == "ready" && import["state"] == "completed" {
            assert_eq!(import["rows_imported"], 49, "{import}");
            assert_eq!(import["rows_failed"], 1, "{import}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "export {export}, import {import}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let again = site.config.run(&["demo", "seed"]);
    assert_eq!(again.code(), Some(1), "{}", again.all());
    assert!(again.stderr.contains("seeded already"), "{}", again.stderr);
    let verified = site.config.run(&["audit", "verify"]);
    assert_eq!(verified.code(), Some(0), "{}", verified.all());

    let reset = site.config.run(&["demo", "reset"]);
    assert_eq!(reset.code(), Some(0), "{}", reset.all());
    assert_eq!(
        fingerprint(&site).await,
        before,
        "the database is as it was"
    );
    let audit = site.admin.get("/api/v1/audit?action=demo.reset").await;
    assert!(audit.body.contains("demo.reset"), "audited: {}", audit.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_with_its_own_collections_is_refused_unless_forced() {
    let site = Site::start().await;
    let r = site
        .admin
        .post(
            "/api/v1/collections",
            json!({ "name": "mine", "fields": [{ "name": "title", "type": "text" }] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let refused = site.config.run(&["demo", "seed", "--scale", "5"]);
    assert_eq!(refused.code(), Some(1), "{}", refused.all());
    assert!(
        refused.stderr.contains("(mine)") && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    let forced = site
        .config
        .run(&["demo", "seed", "--scale", "5", "--force"]);
    assert_eq!(forced.code(), Some(0), "{}", forced.all());
    let reset = site.config.run(&["demo", "reset"]);
    assert_eq!(reset.code(), Some(0), "{}", reset.all());
    let names: Vec<String> = site.admin.get("/api/v1/collections").await.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names, ["mine"], "only the demo's went");
}
