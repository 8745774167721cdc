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
