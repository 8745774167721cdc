//! pg_auto_failover (Debian's `postgresql-15-auto-failover`): a monitor and
//! two nodes, each run by `pg_autoctl` as the `postgres` user (its
//! PostgreSQL uses the system's socket directory, which that user owns).
//! Replicas reach the primary with a libpq multi-host URL and
//! `target_session_attrs=read-write`; no proxy is involved.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{chmod, open_tempdir};
use crate::topology::{free_port, postgres_bin, Cluster, Endpoint, Process};

pub struct AutoFailover {
    dir: tempfile::TempDir,
    _monitor: Process,
    monitor_port: u16,
    ports: Vec<u16>,
    nodes: Vec<Option<Process>>,
}

/// Runs `cmd` as `postgres` with node `n`'s private pg_autoctl directories,
/// in a process group of its own (so that a crash takes the node whole).
fn as_postgres<'c>(cmd: &'c mut Command, dir: &Path, n: usize) -> &'c mut Command {
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("user postgres (the postgresql package creates it)");
    let bin = postgres_bin();
    cmd.uid(user.uid.as_raw())
        .gid(user.gid.as_raw())
        .process_group(0)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join(format!("config{n}")))
        .env("XDG_DATA_HOME", dir.join(format!("data{n}")))
        .env("XDG_RUNTIME_DIR", dir.join(format!("run{n}")))
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
}

fn in_recovery(port: u16) -> Option<bool> {
    let out = Command::new(postgres_bin().join("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-Atc", "SELECT pg_is_in_recovery()"])
        .output()
        .ok()?;
    match String::from_utf8_lossy(&out.stdout).trim() {
        "t" => Some(true),
        "f" => Some(false),
        _ => None,
    }
}

impl AutoFailover {
    pub fn start() -> AutoFailover {
        let dir = open_tempdir();
        let user = nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .expect("user postgres");
        std::os::unix::fs::chown(dir.path(), Some(user.uid.as_raw()), None).expect("chown");
        chmod(dir.path(), 0o700);
        let monitor_port = free_port();
        let monitor = Process::spawn(
            "pg_auto_failover monitor",
            as_postgres(&mut Command::new("pg_autoctl"), dir.path(), 0)
                .args(["create", "monitor", "--pgdata"])
                .arg(dir.path().join("monitor"))
                .args(["--pgport", &monitor_port.to_string()])
                .args([
                    "--hostname",
                    "127.0.0.1",
                    "--auth",
                    "trust",
                    "--no-ssl",
                    "--run",
                ]),
            dir.path().join("monitor.log"),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", monitor_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the pg_auto_failover monitor did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut cluster = AutoFailover {
            dir,
            _monitor: monitor,
            monitor_port,
            ports: vec![free_port(), free_port()],
            nodes: vec![None, None],
        };
        for i in 0..2 {
            let node = cluster.spawn_node(i, true);
            cluster.nodes[i] = Some(node);
            // The first becomes the primary; the second then clones it.
            std::thread::sleep(Duration::from_secs(3));
        }
        cluster.wait_healthy(Duration::from_secs(120));
        cluster
    }

    fn data(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{}", i + 1))
    }

    fn spawn_node(&self, i: usize, create: bool) -> Process {
        let mut cmd = Command::new("pg_autoctl");
        as_postgres(&mut cmd, self.dir.path(), i + 1);
        if create {
            cmd.args(["create", "postgres", "--pgdata"])
                .arg(self.data(i))
                .args(["--pgport", &self.ports[i].to_string()])
                .args(["--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl"])
                .arg("--monitor")
                .arg(format!(
                    "postgres://autoctl_node@127.0.0.1:{}/pg_auto_failover?sslmode=disable",
                    self.monitor_port
                ))
                .arg("--run");
        } else {
            cmd.args(["run", "--pgdata"]).arg(self.data(i));
        }
        Process::spawn(
            &format!("pg_auto_failover node{}", i + 1),
            &mut cmd,
            self.dir.path().join(format!("node{}.log", i + 1)),
        )
    }

    fn primary(&self) -> Option<usize> {
        self.ports
            .iter()
            .position(|p| in_recovery(*p) == Some(false))
    }

    fn kill_node(&mut self, i: usize) {
        if let Some(mut node) = self.nodes[i].take() {
            // The whole process group: pg_autoctl, its services, PostgreSQL.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(node.pid()),
                nix::sys::signal::Signal::SIGKILL,
            );
            node.kill();
        }
    }
}

impl Cluster for AutoFailover {
    fn engine(&self) -> &'static str {
        "pg_auto_failover"
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn primary_dsn(&self) -> String {
        let i = self.primary().expect("a primary");
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.ports[i]
        )
    }

    fn balanced(&self) -> Vec<Endpoint> {
        Vec::new()
    }

    fn app_dsn(&self, _balancer_db_port: u16, dbname: &str) -> String {
        format!(
            "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname={dbname} sslmode=disable \
             target_session_attrs=read-write",
            self.ports[0], self.ports[1]
        )
    }

    fn crash_primary(&mut self) -> usize {
        let i = self.primary().expect("a primary");
        self.kill_node(i);
        i
    }

    fn restart_member(&mut self, i: usize) {
        let node = self.spawn_node(i, false);
        self.nodes[i] = Some(node);
    }

    fn switchover(&self) {
        let before = self.primary().expect("a primary");
        let out = as_postgres(&mut Command::new("pg_autoctl"), self.dir.path(), before + 1)
            .args(["perform", "switchover", "--pgdata"])
            .arg(self.data(before))
            .output()
            .expect("pg_autoctl perform switchover");
        assert!(
            out.status.success(),
            "pg_autoctl perform switchover: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let states: Vec<Option<bool>> = self.ports.iter().map(|p| in_recovery(*p)).collect();
            if states.iter().filter(|s| **s == Some(false)).count() == 1
                && states.iter().filter(|s| **s == Some(true)).count() == 1
            {
                return;
            }
            if Instant::now() > deadline {
                let log = |name: &str| {
                    std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
                };
                panic!(
                    "pg_auto_failover is not healthy ({states:?}):\nmonitor:\n{}\nnode1:\n{}\nnode2:\n{}",
                    log("monitor.log"),
                    log("node1.log"),
                    log("node2.log")
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for AutoFailover {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_node(i);
        }
        // The monitor's group too (its PostgreSQL).
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self._monitor.pid()),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
