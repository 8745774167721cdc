//! TLS to an external PostgreSQL: `sslmode=require` verifies the server
//! certificate against `database.ca_file`.

use crate::harness::app::AppConfig;
use crate::harness::client;
use crate::harness::pg::PgCluster;
use crate::harness::pki::{ca, server_cert};

#[tokio::test(flavor = "multi_thread")]
async fn require_tls_verifies_the_server_against_the_ca_file() {
    let trusted = ca("Test database CA");
    let (cert, key) = server_cert(&trusted);
    let cluster = PgCluster::start_with_tls(&cert, &key);
    let db = cluster.create_database().await;

    // libpq's verify-full is accepted: it is what require does here.
    let config = AppConfig::external(&cluster.tcp_dsn(&db, "sslmode=verify-full"), "");
    let ca_file = config.path("db-ca.pem");
    std::fs::write(&ca_file, trusted.cert.pem()).expect("write CA");
    let config = config.env(
        "MOGOTHROW77_DATABASE__CA_FILE",
        &ca_file.display().to_string(),
    );
    let mut app = config.spawn();
    let addr = app.wait_ready();
    let ready = client::get(addr, "/readyz").await.expect("readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
    // Every connection the appliance holds is encrypted.
    let rows = cluster
        .connect("postgres")
        .await
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'mogothrow77'",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    assert!(!rows.is_empty(), "the appliance is connected");
    assert!(
        rows.iter().all(|r| r.get::<_, bool>(0)),
        "all connections use TLS"
    );
    assert!(app.stop().success());

    // A server whose certificate the CA file does not vouch for is refused.
    let stranger = ca("Some other CA");
    let config = AppConfig::external(&cluster.tcp_dsn(&db, "sslmode=require"), "");
    let other_ca = config.path("other-ca.pem");
    std::fs::write(&other_ca, stranger.cert.pem()).expect("write CA");
    let config = config.env(
        "MOGOTHROW77_DATABASE__CA_FILE",
        &other_ca.display().to_string(),
    );
    let out = config.run(&["serve"]);
    assert_eq!(out.code(), Some(4), "{}", out.all());
    assert!(
        out.stderr.to_lowercase().contains("certificate"),
        "{}",
        out.stderr
    );
}
