//! The reference HA topology of docs/high-availability.md, as processes on
//! this machine: one etcd, two PostgreSQL members run by Patroni
//! (synchronous replication), HAProxy in front of both — the database
//! port routed to whichever member answers Patroni's `GET /primary`, the
//! appliance port (TLS passed through) to the replicas that answer
//! `GET /readyz` — and the appliance replicas themselves.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::app::{App, AppConfig};
use crate::harness::pg::as_pg_user;
use crate::harness::{chmod, open_tempdir};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL installed")
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version")
}

/// A child process that is killed when dropped.
pub struct Process {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Process {
        let out = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Process {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

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

    /// `GET /replica` answers 200: running as a streaming standby.
    pub fn is_replica(&self) -> bool {
        http_status(self.api_port, "/replica") == Some(200)
    }
}

/// Status of a plain-HTTP GET to 127.0.0.1:port.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

pub struct Database {
    pub dir: tempfile::TempDir,
    _etcd: Process,
    pub members: Vec<Member>,
}

impl Database {
    /// etcd and two Patroni members; returns once one is the leader and
    /// the other its synchronous standby.
    pub fn start() -> Database {
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
        let mut db = Database {
            dir,
            _etcd: etcd,
            members,
        };
        for m in &mut db.members {
            m.start(db.dir.path());
            // The first bootstraps the cluster; the second then clones it.
            std::thread::sleep(Duration::from_secs(1));
        }
        db.wait_healthy(Duration::from_secs(90));
        db
    }

    /// Waits until one member is the primary and the other a standby.
    pub fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let primaries = self.members.iter().filter(|m| m.is_primary()).count();
            let replicas = self.members.iter().filter(|m| m.is_replica()).count();
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
    pub fn crash_primary(&mut self) -> usize {
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
    pub fn restart_member(&mut self, i: usize) {
        let dir = self.dir.path().to_path_buf();
        self.members[i].start(&dir);
    }

    /// `pg_ctl restart -m fast` of the primary, done the way Patroni
    /// clusters do it (`patronictl restart`).
    pub fn restart_primary_postgres(&self) {
        let m = &self.members[self.primary()];
        let out = as_pg_user(
            Command::new("patronictl")
                .arg("-c")
                .arg(&m.config)
                .args(["restart", "m77", &m.name, "--force"])
                .env("HOME", self.dir.path()),
        )
        .output()
        .expect("patronictl");
        assert!(
            out.status.success(),
            "patronictl restart: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Database {
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

/// HAProxy: the database port (to the Patroni primary) and the appliance
/// port (to ready replicas), as docs/high-availability.md configures it.
pub struct Balancer {
    _process: Process,
    pub db_port: u16,
    pub app_port: u16,
}

impl Balancer {
    pub fn start(dir: &Path, members: &[Member], replica_ports: &[u16]) -> Balancer {
        let (db_port, app_port) = (free_port(), free_port());
        let members: Vec<Endpoint> = members
            .iter()
            .map(|m| Endpoint {
                name: m.name.clone(),
                host: "127.0.0.1".to_string(),
                port: m.pg_port,
                check_port: m.api_port,
            })
            .collect();
        let replicas: Vec<Endpoint> = replica_ports
            .iter()
            .enumerate()
            .map(|(i, port)| Endpoint {
                name: format!("app{}", i + 1),
                host: "127.0.0.1".to_string(),
                port: *port,
                check_port: *port,
            })
            .collect();
        let mut config = haproxy_config("127.0.0.1", db_port, app_port, &members, &replicas);
        config.push('\n');
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).expect("haproxy.cfg");
        let process = Process::spawn(
            "haproxy",
            Command::new("haproxy").arg("-db").arg("-f").arg(&path),
            dir.join("haproxy.log"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", db_port)).is_err() {
            assert!(Instant::now() < deadline, "HAProxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Balancer {
            _process: process,
            db_port,
            app_port,
        }
    }

    pub fn app(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.app_port))
    }
}

/// The configuration docs/high-availability.md shows, with this run's ports.
/// A server behind the balancer.
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Where its health is checked (Patroni's REST API for a member).
    pub check_port: u16,
}

pub fn haproxy_config(
    bind: &str,
    db_port: u16,
    app_port: u16,
    members: &[Endpoint],
    replicas: &[Endpoint],
) -> String {
    let mut c = format!(
        "global
    maxconn 4000

defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch

# PostgreSQL: only the member whose Patroni answers GET /primary with 200.
listen postgres
    bind {bind}:{db_port}
    option httpchk GET /primary
    http-check expect status 200
    default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions
"
    );
    for m in members {
        c.push_str(&format!(
            "    server {} {}:{} check port {}\n",
            m.name, m.host, m.port, m.check_port
        ));
    }
    c.push_str(&format!(
        "
# The appliance: TLS passed through, to the replicas whose /readyz is 200.
# When none is ready (the database is down for all of them), to those that
# are alive: they answer 503 database_unavailable with Retry-After, which
# clients understand, instead of a closed connection.
frontend mogothrow77
    bind {bind}:{app_port}
    default_backend mogothrow77_ready
    use_backend mogothrow77_alive if {{ nbsrv(mogothrow77_ready) eq 0 }}

backend mogothrow77_ready
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 1s fall 2 rise 2 check-ssl verify none
"
    ));
    let servers: String = replicas
        .iter()
        .map(|r| format!("    server {} {}:{} check\n", r.name, r.host, r.port))
        .collect();
    c.push_str(&servers);
    c.push_str(
        "
backend mogothrow77_alive
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 1s fall 2 rise 2 check-ssl verify none
",
    );
    c.push_str(&servers);
    c
}

/// A replica's settings after `[database]`'s `url`, as
/// docs/high-availability.md shows them: a database check gives up after
/// 2 s (a failover is noticed at once), and a stop first drains for 5 s
/// (HAProxy notices a 503 from /readyz within 2).
pub const REPLICA_SETTINGS: &str = "connect_timeout_secs = 2

[http]
drain_delay_secs = 5
shutdown_grace_secs = 10
";

/// One appliance replica on a fixed port, restartable with another binary.
pub struct Replica {
    pub port: u16,
    pub config: AppConfig,
    pub app: Option<App>,
}

impl Replica {
    pub fn new(dsn: &str, port: u16, binary: &Path) -> Replica {
        // The load comes from one API token: lift its rate limit.
        let mut config = AppConfig::external(
            dsn,
            &format!("{REPLICA_SETTINGS}\n[api]\nrate_limit_per_minute = 1000000\n"),
        )
        .env("MOGOTHROW77_LISTEN", &format!("127.0.0.1:{port}"));
        config.binary = binary.to_path_buf();
        Replica {
            port,
            config,
            app: None,
        }
    }

    pub fn start(&mut self) {
        let mut app = self.config.spawn();
        app.wait_ready();
        self.app = Some(app);
    }

    pub fn app(&mut self) -> &mut App {
        self.app.as_mut().expect("running")
    }
}
