//! Managed mode: with no database URL the appliance creates, runs and
//! stops its own PostgreSQL cluster under the state directory.

use std::time::Duration;

use crate::harness::app::AppConfig;
use crate::harness::client;

#[tokio::test(flavor = "multi_thread")]
async fn managed_cluster_is_created_served_and_stopped() {
    let config = AppConfig::new("");
    let mut app = config.spawn();
    let addr = app.wait_ready();
    let state = config.state_dir();

    let ready = client::get(addr, "/readyz").await.expect("readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(state.join("postgres/PG_VERSION").is_file());
    assert!(state.join("run/.s.PGSQL.5432").exists(), "unix socket");
    let pid_file = state.join("postgres/postmaster.pid");
    let pid_text = std::fs::read_to_string(&pid_file).expect("postmaster.pid");
    // Line 5 of postmaster.pid is the socket directory, line 6 the TCP
    // listen address: empty, no TCP.
    let lines: Vec<&str> = pid_text.lines().collect();
    assert_eq!(lines.get(5).map(|l| l.trim()), Some(""), "{pid_text}");
    // The self-signed certificate's key is private.
    let key_mode = std::fs::metadata(state.join("tls/key.pem")).expect("key");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777,
        0o600
    );
    let generated = app.wait_event(
        "generated a self-signed certificate",
        Duration::from_secs(1),
    );
    assert!(generated["cert"]
        .as_str()
        .is_some_and(|c| c.ends_with("tls/cert.pem")));
    let loaded = app.wait_event("TLS certificate loaded", Duration::from_secs(1));
    assert_eq!(loaded["sha256"].as_str(), ready.cert_sha256.as_deref());

    assert!(app.stop().success(), "{}", app.output());
    assert!(
        !pid_file.exists(),
        "PostgreSQL shut down cleanly with the appliance"
    );

    // Second start reuses the cluster and the certificate.
    let mut again = config.spawn();
    let addr = again.wait_ready();
    let ready2 = client::get(addr, "/readyz").await.expect("readyz");
    assert_eq!(ready2.status, 200);
    assert_eq!(ready2.cert_sha256, ready.cert_sha256, "certificate reused");
    assert!(!again
        .output()
        .contains("creating the managed PostgreSQL cluster"));
    assert!(again.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_postgres_is_restarted_without_restarting_the_appliance() {
    use std::time::Instant;

    let config = AppConfig::new("");
    let mut app = config.spawn();
    let addr = app.wait_ready();
    let pid_file = config.state_dir().join("postgres/postmaster.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("postmaster.pid")
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill postgres");
    app.wait_event(
        "managed PostgreSQL exited; restarting",
        Duration::from_secs(10),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client::get(addr, "/readyz").await.expect("readyz");
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "not ready again: {}", r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let new_pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("postmaster.pid")
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("pid");
    assert_ne!(pid, new_pid, "a new postmaster runs");
    assert!(app.stop().success(), "{}", app.output());
}

#[test]
fn a_cluster_from_another_major_version_is_refused() {
    let config = AppConfig::new("");
    let data = config.state_dir().join("postgres");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("PG_VERSION"), "9\n").expect("write");
    let out = config.run(&["serve"]);
    assert_eq!(out.code(), Some(5), "{}", out.all());
    assert!(
        out.stderr.contains("created by PostgreSQL 9"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("docs/runbooks/postgresql-major-upgrade.md"),
        "{}",
        out.stderr
    );
    assert!(
        data.join("PG_VERSION").is_file(),
        "the old cluster is left alone"
    );
}

fn postmaster_pid(state: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(state.join("postgres/postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_server_per_state_dir_and_a_dead_servers_cluster_is_taken_over() {
    let config = AppConfig::new("");
    let state = config.state_dir();

    // check before anything exists creates nothing.
    let early = config.run(&["check"]);
    assert_eq!(early.code(), Some(4), "{}", early.all());
    assert!(
        !state.join("postgres/PG_VERSION").exists(),
        "check created a cluster"
    );

    let mut first = config.spawn();
    first.wait_ready();
    // A second server on the same state directory is refused.
    let second = config.run(&["serve"]);
    assert_eq!(second.code(), Some(1), "{}", second.all());
    assert!(
        second.stderr.contains("another mogothrow77 process"),
        "{}",
        second.stderr
    );
    // Admin commands use the running cluster.
    let check = config.run(&["check"]);
    assert_eq!(check.code(), Some(0), "{}", check.all());

    // The appliance dies without stopping PostgreSQL.
    let orphan = postmaster_pid(&state).expect("postmaster pid");
    first.signal(nix::sys::signal::Signal::SIGKILL);
    first.wait_exit(Duration::from_secs(10));
    assert!(alive(orphan), "PostgreSQL outlives a killed appliance");

    let mut next = config.spawn();
    let addr = next.wait_ready();
    next.wait_event(
        "stopping a managed PostgreSQL left running by an earlier run",
        Duration::from_secs(1),
    );
    assert!(!alive(orphan), "the orphan was stopped");
    let supervised = postmaster_pid(&state).expect("new postmaster");
    assert_ne!(supervised, orphan);
    assert_eq!(
        client::get(addr, "/readyz").await.expect("readyz").status,
        200
    );
    assert!(next.stop().success(), "{}", next.output());
    assert!(!alive(supervised), "stopped with the appliance");
}

#[test]
fn sigterm_during_start_up_exits_cleanly_without_leaving_postgres() {
    let config = AppConfig::new("");
    let mut app = config.spawn();
    // Handlers are installed before the certificate is generated.
    app.wait_event(
        "generated a self-signed certificate",
        Duration::from_secs(30),
    );
    app.signal(nix::sys::signal::Signal::SIGTERM);
    let status = app.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "{}", app.output());
    assert!(
        app.output().contains("stop requested during start-up"),
        "{}",
        app.output()
    );
    assert!(
        postmaster_pid(&config.state_dir()).is_none_or(|pid| !alive(pid)),
        "no PostgreSQL left running"
    );
}
