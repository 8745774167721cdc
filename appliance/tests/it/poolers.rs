//! Connection poolers: PgBouncer in session mode works; in transaction
//! mode (no session: notifications never arrive, prepared statements
//! vanish) the server refuses to start (exit 2, naming `database.url` and
//! the fix), and when a replica finds itself behind one later, `/readyz`
//! answers 503 and an ERROR says why — until notifications arrive again.

use std::time::{Duration, Instant};

use crate::harness::app::AppConfig;
use crate::harness::client;
use crate::harness::pg::shared;
use crate::harness::pgbouncer::PgBouncer;

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_mode_pooler_is_refused_at_start_with_exit_2() {
    let db = shared().create_database().await;
    let bouncer = PgBouncer::start(shared(), "transaction");
    let out = AppConfig::external(&bouncer.dsn(&db), "").run(&["serve"]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    for needle in [
        "database.url",
        "transaction",
        "session mode",
        "high-availability.md",
    ] {
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    // The pre-flight check says the same, with the same exit code.
    let checked = AppConfig::external(&bouncer.dsn(&db), "").run(&["check"]);
    assert_eq!(checked.code(), Some(2), "{}", checked.all());
    assert!(
        checked
            .stdout
            .contains("FAIL  notifications sent to the database do not come back"),
        "{}",
        checked.stdout
    );
}

/// Polls `/readyz` until it answers `status` with `needle` in its body.
async fn readyz_until(addr: std::net::SocketAddr, status: u16, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let r = client::get(addr, "/readyz").await.expect("readyz");
        if r.status == status && r.body.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {} after {within:?}: {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn session_mode_serves_and_a_switch_to_transaction_mode_turns_readyz_503() {
    let db = shared().create_database().await;
    let mut bouncer = PgBouncer::start(shared(), "session");
    let config = AppConfig::external(&bouncer.dsn(&db), "");
    let mut app = config.spawn();
    let addr = app.wait_ready();
    readyz_until(addr, 200, "ready", Duration::from_secs(5)).await;
    // The pooler is reconfigured under the running replica.
    bouncer.restart("transaction");
    // (Before the probe finds out, other checks may fail on the vanished
    // prepared statements: the answer that counts names the pooler.)
    readyz_until(
        addr,
        503,
        "pool_mode = transaction",
        Duration::from_secs(40),
    )
    .await;
    app.wait_event(
        &format!(
            "{}; caches are off and /readyz answers 503",
            mogothrow77::listen::NOT_DELIVERED
        ),
        Duration::from_secs(5),
    );

    bouncer.restart("session");
    readyz_until(addr, 200, "ready", Duration::from_secs(40)).await;
    app.wait_event("notifications are delivered again", Duration::from_secs(5));
    assert!(app.stop().success(), "{}", app.output());
}
