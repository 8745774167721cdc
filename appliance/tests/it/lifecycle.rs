//! Process lifecycle: draining on SIGTERM, certificate reload on SIGHUP,
//! systemd notifications, privilege drop.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::harness::app::AppConfig;
use crate::harness::client;
use crate::harness::pg::shared;
use crate::harness::{chmod, give_to_service_user, service_account};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_slow_request_finish_then_exits_0() {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "connect_timeout_secs = 30\n");
    let mut app = config.spawn();
    let addr = app.wait_ready();

    // Make /readyz slow: it reads the migration tables, which this
    // transaction locks until it commits.
    let mut blocker = shared().connect(&db).await;
    let tx = blocker.transaction().await.expect("begin");
    tx.batch_execute("LOCK TABLE mogothrow77_migration_kinds IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let slow = tokio::spawn(async move { client::get(addr, "/readyz").await });
    // Wait until the request is in flight (the access log has not seen it).
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!slow.is_finished(), "the request should be blocked");

    app.signal(Signal::SIGTERM);
    app.wait_event(
        "shutting down: draining in-flight requests",
        Duration::from_secs(10),
    );
    // New connections are refused while draining.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        client::get(addr, "/healthz").await.is_err(),
        "listener closed"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    tx.commit().await.expect("commit");
    let response = slow
        .await
        .expect("join")
        .expect("the slow request completes");
    assert_eq!(response.status, 200, "{}", response.body);
    let status = app.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", app.output());
}

/// With a drain delay (behind a balancer), SIGTERM turns `/readyz` to 503 at
/// once while the server keeps accepting and answering, with
/// `Connection: close`; then it stops accepting. A connection it accepted
/// before — handshaken and silent, or still before its TLS handshake — gets
/// its request answered, not dropped.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_a_drain_delay_reports_unready_and_answers_every_accepted_connection() {
    let db = shared().create_database().await;
    let config =
        AppConfig::external(&shared().dsn(&db), "").env("MOGOTHROW77_HTTP__DRAIN_DELAY_SECS", "3");
    let mut app = config.spawn();
    let addr = app.wait_ready();
    assert_eq!(
        client::get(addr, "/readyz").await.expect("readyz").status,
        200
    );

    // Accepted and handshaken, nothing sent yet.
    let mut silent = client::connect_tls(addr).await.expect("connect");
    // Accepted, TLS handshake not even started.
    let raw = tokio::net::TcpStream::connect(addr).await.expect("connect");

    app.signal(Signal::SIGTERM);
    let event = app.wait_event(
        "shutting down: draining in-flight requests",
        Duration::from_secs(10),
    );
    let stop_requested = Instant::now();
    assert_eq!(event["drain_delay_secs"], 3, "{event}");

    // Unready at once, alive, and still serving new connections.
    let ready = client::get(addr, "/readyz")
        .await
        .expect("readyz while draining");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.json()["status"], "stopping", "{}", ready.body);
    // A keep-alive request is answered, and its connection closed by the
    // server (the exchange reads to the end of the stream).
    let kept = tokio::time::timeout(
        Duration::from_secs(5),
        client::send_raw(addr, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
    .await
    .expect("the server closes the connection after answering while draining")
    .expect("healthz while draining");
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert_eq!(
        kept.header("connection"),
        Some("close"),
        "{:?}",
        kept.headers
    );
    assert!(stop_requested.elapsed() < Duration::from_secs(3));

    // After the delay: no new connections.
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(stop_requested.elapsed())).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting after the drain delay"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The connections accepted earlier are answered.
    let answered = tokio::time::timeout(
        Duration::from_secs(5),
        client::exchange(
            &mut silent,
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
    )
    .await
    .expect("answered in time")
    .expect("the handshaken connection is answered");
    assert_eq!(answered.status, 200, "{}", answered.body);
    let mut late = client::handshake(raw)
        .await
        .expect("the late handshake completes");
    let answered = tokio::time::timeout(
        Duration::from_secs(5),
        client::exchange(
            &mut late,
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
    )
    .await
    .expect("answered in time")
    .expect("the connection accepted before its handshake is answered");
    assert_eq!(answered.status, 200, "{}", answered.body);

    let status = app.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "{}", app.output());
}

fn write_cert(dir: &std::path::Path, name: &str) -> String {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("generate");
    let cert = dir.join(format!("{name}.cert.tmp"));
    let key = dir.join(format!("{name}.key.tmp"));
    std::fs::write(&cert, generated.cert.pem()).expect("write cert");
    std::fs::write(&key, generated.key_pair.serialize_pem()).expect("write key");
    chmod(&key, 0o600);
    give_to_service_user(&key);
    give_to_service_user(&cert);
    // Replace atomically, as an operator's tooling would.
    std::fs::rename(&cert, dir.join("cert.pem")).expect("rename");
    std::fs::rename(&key, dir.join("key.pem")).expect("rename");
    client::sha256_hex(generated.cert.der())
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_certificate() {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    let dir = config.dir.path().to_path_buf();
    let first = write_cert(&dir, "first");
    let config = config
        .env(
            "MOGOTHROW77_TLS__CERT_FILE",
            &dir.join("cert.pem").display().to_string(),
        )
        .env(
            "MOGOTHROW77_TLS__KEY_FILE",
            &dir.join("key.pem").display().to_string(),
        );
    let mut app = config.spawn();
    let addr = app.wait_ready();
    let before = client::get(addr, "/healthz").await.expect("get");
    assert_eq!(before.cert_sha256.as_deref(), Some(first.as_str()));

    let second = write_cert(&dir, "second");
    assert_ne!(first, second);
    app.signal(Signal::SIGHUP);
    let event = app.wait_event("SIGHUP: TLS certificate reloaded", Duration::from_secs(10));
    assert_eq!(event["sha256"], second.as_str());
    let after = client::get(addr, "/healthz").await.expect("get");
    assert_eq!(after.cert_sha256.as_deref(), Some(second.as_str()));
    assert!(app.stop().success(), "{}", app.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_socket_gets_ready_and_stopping() {
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    let socket_path = config.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    chmod(&socket_path, 0o777);
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let config = config
        .env("NOTIFY_SOCKET", &socket_path.display().to_string())
        .env("WATCHDOG_USEC", "400000");
    let mut app = config.spawn();
    app.wait_ready();

    let receive_until = |wanted: &str| -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).to_string();
                let done = message.lines().any(|l| l == wanted);
                seen.push(message);
                if done {
                    return seen;
                }
            }
        }
        panic!("no {wanted} datagram; received {seen:?}");
    };
    let before_ready = receive_until("READY=1");
    assert!(
        before_ready.last().is_some_and(|m| m.contains("STATUS=")),
        "READY carries a status: {before_ready:?}"
    );
    // Half of WATCHDOG_USEC: a keep-alive every 200 ms while serving.
    receive_until("WATCHDOG=1");
    receive_until("WATCHDOG=1");
    app.signal(Signal::SIGTERM);
    receive_until("STOPPING=1");
    assert!(app.wait_exit(Duration::from_secs(20)).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn started_as_root_it_serves_as_the_service_user() {
    let Some((uid, gid)) = service_account() else {
        eprintln!("not root: the privilege drop is tested when the suite runs as root (CI does)");
        return;
    };
    let db = shared().create_database().await;
    let config = AppConfig::external(&shared().dsn(&db), "");
    let mut app = config.spawn();
    app.wait_ready();
    let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid())).expect("status");
    let ids = |field: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .expect("field")
            .split_whitespace()
            .map(|n| n.parse().expect("id"))
            .collect()
    };
    assert_eq!(ids("Uid:"), vec![uid; 4], "real, effective, saved, fs uid");
    assert_eq!(ids("Gid:"), vec![gid; 4], "real, effective, saved, fs gid");
    let groups = status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .expect("groups")
        .split_whitespace()
        .map(|n| n.parse::<u32>().expect("gid"))
        .collect::<Vec<_>>();
    assert_eq!(groups, vec![gid], "no supplementary groups but its own");
    let state = std::fs::metadata(config.state_dir()).expect("state dir");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&state), uid);
    assert!(app.stop().success());
}
