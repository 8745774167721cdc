//! Patroni with etcd: one etcd, two PostgreSQL members in synchronous
//! replication, each managed by its Patroni (run as `nobody`), the REST
//! API answering `GET /primary` for HAProxy's database port.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::pg::as_pg_user;
use crate::harness::{chmod, open_tempdir};
use crate::topology::{free_port, http_status, postgres_bin, Cluster, Endpoint, Process};

/// One Patroni-run PostgreSQL member.
pub struct Member {
    pub name: String,
    pub pg_port: u16,
    pub api_port: u16,
    config: PathBuf,
    data: PathBuf,
    pub patroni: Option<Process>,
}

impl Member {
    fn start(&mut self, dir: &Path) {
        let log = dir.join(format!("patroni-{}.log", self.name));
        let mut cmd = Command::new("patroni");
        cmd.arg(&self.config).env("HOME", dir);
        self.patroni = Some(Process::spawn(&self.name, as_pg_user(&mut cmd), log));
    }

    /// The postmaster's pid, when it runs.
    pub fn postmaster_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// `GET /primary` on its Patroni REST API answers 200.
    pub fn is_primary(&self) -> bool {
        http_status(self.api_port, "/primary") == Some(200)
    }

    /// `GET /sync` answers 200: its synchronous standby (what a failover
    /// or a switchover may promote without losing a commit).
    pub fn is_sync_standby(&self) -> bool {
        http_status(self.api_port, "/sync") == Some(200)
    }
}

pub struct Patroni {
    pub dir: tempfile::TempDir,
    _etcd: Process,
    pub members: Vec<Member>,
}

impl Patroni {
    /// etcd and two Patroni members; returns once one is the leader and
    /// the other its synchronous standby.
    pub fn start() -> Patroni {
        let dir = open_tempdir();
        let nobody = nix::unistd::User::from_name("nobody")
            .ok()
            .flatten()
            .expect("nobody");
        std::os::unix::fs::chown(dir.path(), Some(nobody.uid.as_raw()), None).expect("chown");
        chmod(dir.path(), 0o700);
        let (client, peer) = (free_port(), free_port());
        let mut etcd = Command::new("etcd");
        etcd.args(["--name", "e1", "--data-dir"])
            .arg(dir.path().join("etcd"))
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client}"),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client}"),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-cluster",
                &format!("e1=http://127.0.0.1:{peer}"),
            ]);
        let etcd = Process::spawn("etcd", as_pg_user(&mut etcd), dir.path().join("etcd.log"));
        let bin = postgres_bin();
        let mut members = Vec::new();
        for i in 1..=2 {
            let name = format!("pg{i}");
            let (pg_port, api_port) = (free_port(), free_port());
            let data = dir.path().join(format!("data{i}"));
            let config = dir.path().join(format!("{name}.yml"));
            std::fs::write(
                &config,
                patroni_config(&name, pg_port, api_port, client, &data, &bin, dir.path()),
            )
            .expect("patroni config");
            members.push(Member {
                name,
                pg_port,
                api_port,
                config,
                data,
                patroni: None,
            });
        }
        let mut db = Patroni {
            dir,
            _etcd: etcd,
            members,
        };
        for m in &mut db.members {
            m.start(db.dir.path());
            // The first bootstraps the cluster; the second then clones it.
            std::thread::sleep(Duration::from_secs(1));
        }
        db.settle(Duration::from_secs(90));
        db
    }

    /// Waits until one member is the primary and the other its
    /// synchronous standby.
    fn settle(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let primaries = self.members.iter().filter(|m| m.is_primary()).count();
            let replicas = self.members.iter().filter(|m| m.is_sync_standby()).count();
            if primaries == 1 && replicas == self.members.len() - 1 {
                return;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .members
                    .iter()
                    .filter_map(|m| {
                        m.patroni
                            .as_ref()
                            .map(|p| format!("{}:\n{}", p.name, p.log()))
                    })
                    .collect();
                panic!(
                    "the PostgreSQL cluster is not healthy:\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn primary(&self) -> usize {
        self.members
            .iter()
            .position(Member::is_primary)
            .expect("a primary")
    }

    /// Kills the primary's node outright (Patroni and the postmaster,
    /// kill -9), as a crashed server; returns its index.
    fn crash_leader(&mut self) -> usize {
        let i = self.primary();
        let m = &mut self.members[i];
        let postmaster = m.postmaster_pid().expect("postmaster pid");
        if let Some(p) = m.patroni.as_mut() {
            p.kill();
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(postmaster),
            nix::sys::signal::Signal::SIGKILL,
        );
        m.patroni = None;
        i
    }

    /// Starts a crashed member's Patroni again (it rejoins as a standby,
    /// rewound if need be).
    fn start_member(&mut self, i: usize) {
        let dir = self.dir.path().to_path_buf();
        self.members[i].start(&dir);
    }

    /// kill -9 of the primary's postmaster alone: its Patroni notices and
    /// starts PostgreSQL again (or the standby takes over).
    pub fn kill_postmaster(&self) {
        let pid = self.members[self.primary()]
            .postmaster_pid()
            .expect("postmaster pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the postmaster");
    }

    /// `pg_ctl restart -m fast` of the primary, done the way Patroni
    /// clusters do it (`patronictl restart`).
    pub fn restart_primary_postgres(&self) {
        let m = &self.members[self.primary()];
        self.patronictl(&["restart", "m77", &m.name, "--force"]);
    }

    fn patronictl(&self, args: &[&str]) {
        let m = &self.members[0];
        let out = as_pg_user(
            Command::new("patronictl")
                .arg("-c")
                .arg(&m.config)
                .args(args)
                .env("HOME", self.dir.path()),
        )
        .output()
        .expect("patronictl");
        // patronictl exits 0 even when Patroni refuses; it says so.
        assert!(
            out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("failed"),
            "patronictl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Cluster for Patroni {
    fn engine(&self) -> &'static str {
        "Patroni"
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn primary_dsn(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres password=postgres dbname=postgres",
            self.members[self.primary()].pg_port
        )
    }

    fn balanced(&self) -> Vec<Endpoint> {
        self.members
            .iter()
            .map(|m| Endpoint {
                name: m.name.clone(),
                host: "127.0.0.1".to_string(),
                port: m.pg_port,
                check_port: m.api_port,
            })
            .collect()
    }

    fn app_dsn(&self, balancer_db_port: u16, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={balancer_db_port} user=postgres dbname={dbname} sslmode=disable"
        )
    }

    fn crash_primary(&mut self) -> usize {
        self.crash_leader()
    }

    fn restart_member(&mut self, i: usize) {
        self.start_member(i)
    }

    fn switchover(&self) {
        let leader = &self.members[self.primary()].name;
        let candidate = &self
            .members
            .iter()
            .find(|m| &m.name != leader)
            .expect("a standby")
            .name;
        self.patronictl(&[
            "switchover",
            "m77",
            "--leader",
            leader,
            "--candidate",
            candidate,
            "--force",
        ]);
        // patronictl returns once the switchover is requested.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self
            .members
            .iter()
            .any(|m| &m.name == candidate && m.is_primary())
        {
            assert!(Instant::now() < deadline, "the switchover did not happen");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_healthy(&self, within: Duration) {
        self.settle(within)
    }
}

impl Drop for Patroni {
    /// Patroni does not outlive its test, nor do the PostgreSQL servers it
    /// started (SIGQUIT: immediate shutdown, children included).
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(p) = m.patroni.as_mut() {
                p.kill();
            }
            if let Some(pid) = m.postmaster_pid() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGQUIT,
                );
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The cluster-wide settings Patroni writes to etcd at bootstrap: the ones
/// docs/high-availability.md shows (checked by a test). A member's lock
/// lives 10 s; synchronous replication, so an acknowledged commit is on
/// the standby before the client hears of it; the old primary rejoins by
/// pg_rewind.
pub const PATRONI_DCS: &str = "  dcs:
    ttl: 10
    loop_wait: 2
    retry_timeout: 5
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: 'on'
        max_connections: 200
";

fn patroni_config(
    name: &str,
    pg_port: u16,
    api_port: u16,
    etcd_port: u16,
    data: &Path,
    bin: &Path,
    dir: &Path,
) -> String {
    format!(
        "scope: m77
name: {name}
restapi:
  listen: 127.0.0.1:{api_port}
  connect_address: 127.0.0.1:{api_port}
etcd3:
  hosts: 127.0.0.1:{etcd_port}
bootstrap:
{PATRONI_DCS}  initdb:
    - encoding: UTF8
    - locale: C
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:{pg_port}
  connect_address: 127.0.0.1:{pg_port}
  data_dir: {data}
  bin_dir: {bin}
  pgpass: {dir}/pgpass-{name}
  authentication:
    superuser: {{username: postgres, password: postgres}}
    replication: {{username: replicator, password: replicator}}
    rewind: {{username: postgres, password: postgres}}
  parameters:
    unix_socket_directories: {dir}
",
        data = data.display(),
        bin = bin.display(),
        dir = dir.display(),
    )
}
