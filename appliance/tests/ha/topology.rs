//! The reference HA topology of docs/high-availability.md, as processes on
//! this machine: a PostgreSQL cluster that fails over by itself
//! ([`Cluster`]: Patroni in `patroni.rs`, pg_auto_failover in
//! `auto_failover.rs`), HAProxy in front — the database port routed to
//! whichever member answers Patroni's `GET /primary`, the appliance port
//! (TLS passed through) to the replicas that answer `GET /readyz` — and
//! the appliance replicas themselves.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::app::{App, AppConfig};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

pub fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL installed")
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version")
}

/// A PostgreSQL cluster that fails over by itself: Patroni
/// ([`crate::patroni::Patroni`]) or pg_auto_failover
/// ([`crate::auto_failover::AutoFailover`]).
pub trait Cluster {
    /// The engine's name, for the figures.
    fn engine(&self) -> &'static str;
    /// A directory for the topology's files (logs, HAProxy's configuration).
    fn dir(&self) -> &Path;
    /// A superuser connection string to the current primary, directly.
    fn primary_dsn(&self) -> String;
    /// The members HAProxy's database port forwards to (to the one that
    /// is primary); empty when replicas use a multi-host URL instead.
    fn balanced(&self) -> Vec<Endpoint>;
    /// `database.url` of the replicas for database `dbname`, given the
    /// balancer's database port.
    fn app_dsn(&self, balancer_db_port: u16, dbname: &str) -> String;
    /// Kills the primary's node outright (its manager and PostgreSQL,
    /// kill -9), as a crashed server; returns the member's index.
    fn crash_primary(&mut self) -> usize;
    /// Starts a crashed member again; it rejoins as a standby.
    fn restart_member(&mut self, i: usize);
    /// A planned switchover to the standby, waited for.
    fn switchover(&self);
    /// Waits until one member is the primary and the other its standby.
    fn wait_healthy(&self, within: Duration);
}

/// A child process that is killed when dropped.
pub struct Process {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Process {
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

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
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

/// Status of a plain-HTTP GET to 127.0.0.1:port.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// HAProxy: the database port (to the Patroni primary) and the appliance
/// port (to ready replicas), as docs/high-availability.md configures it.
pub struct Balancer {
    _process: Process,
    pub db_port: u16,
    pub app_port: u16,
}

impl Balancer {
    /// Starts HAProxy with its database port forwarding to `members`
    /// (none: the replicas reach the database by a multi-host URL).
    pub fn start(dir: &Path, members: &[Endpoint], replica_ports: &[u16]) -> Balancer {
        let (db_port, app_port) = (free_port(), free_port());
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
        let mut config = haproxy_config("127.0.0.1", db_port, app_port, members, &replicas);
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
/// 2 s (a failover is noticed at once), a stop first drains for 5 s
/// (HAProxy notices a 503 from /readyz within 2), and a job whose replica
/// died is taken over by another within 10 s.
pub const REPLICA_SETTINGS: &str = "connect_timeout_secs = 2

[http]
drain_delay_secs = 5
shutdown_grace_secs = 10

[jobs]
lease_secs = 10
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
            &format!("{REPLICA_SETTINGS}\n[api]\nrate_limit_per_minute = 1000000\nmax_concurrent_queries = 0\n"),
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
