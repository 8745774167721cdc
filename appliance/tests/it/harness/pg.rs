//! Throwaway PostgreSQL clusters: initdb in a temp dir, run by a non-root
//! user, unix socket only, trust authentication (the socket lives in the
//! test's own directory). One shared cluster per test binary; each test gets
//! its own database. Tests that stop the server get a private cluster.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use super::{chmod, is_root, open_tempdir};

pub struct PgCluster {
    _dir: tempfile::TempDir,
    data: PathBuf,
    socket_dir: PathBuf,
    bin: PathBuf,
    server: Option<Child>,
    /// Extra `-c` settings (e.g. TCP and TLS).
    settings: String,
    tcp_port: Option<u16>,
}

pub fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed under /usr/lib/postgresql (scripts/test installs it)")
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL version").1
}

/// Runs as `nobody` when the tests run as root (PostgreSQL refuses root).
pub fn as_pg_user(cmd: &mut Command) -> &mut Command {
    if is_root() {
        let nobody = nix::unistd::User::from_name("nobody")
            .ok()
            .flatten()
            .expect("user nobody");
        cmd.uid(nobody.uid.as_raw()).gid(nobody.gid.as_raw());
    }
    cmd
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let mut cluster = PgCluster::init();
        cluster.run();
        cluster
    }

    /// A cluster that also listens on 127.0.0.1 with TLS on, presenting
    /// `cert_pem`/`key_pem`.
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> PgCluster {
        let mut cluster = PgCluster::init();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let (cert, key) = (
            cluster.data.join("server.crt"),
            cluster.data.join("server.key"),
        );
        std::fs::write(&cert, cert_pem).expect("cert");
        std::fs::write(&key, key_pem).expect("key");
        chmod(&key, 0o600);
        if is_root() {
            let nobody = nix::unistd::User::from_name("nobody")
                .ok()
                .flatten()
                .expect("nobody");
            for f in [&cert, &key] {
                std::os::unix::fs::chown(f, Some(nobody.uid.as_raw()), None).expect("chown");
            }
        }
        cluster.settings = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c ssl=on \
             -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        );
        cluster.tcp_port = Some(port);
        cluster.run();
        cluster
    }

    /// A connection string over TCP (for TLS clusters).
    pub fn tcp_dsn(&self, database: &str, extra: &str) -> String {
        format!(
            "host=localhost port={} user=postgres dbname={database} {extra}",
            self.tcp_port.expect("a TCP cluster")
        )
    }

    fn init() -> PgCluster {
        let dir = open_tempdir();
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("sock");
        std::fs::create_dir(&socket_dir).expect("socket dir");
        chmod(&socket_dir, 0o777);
        if is_root() {
            let nobody = nix::unistd::User::from_name("nobody")
                .ok()
                .flatten()
                .expect("nobody");
            std::os::unix::fs::chown(dir.path(), Some(nobody.uid.as_raw()), None).expect("chown");
        }
        let bin = bin_dir();
        let out = as_pg_user(Command::new(bin.join("initdb")).arg("-D").arg(&data).args([
            "--auth=trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]))
        .output()
        .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PgCluster {
            _dir: dir,
            data,
            socket_dir,
            bin,
            server: None,
            settings: "-c listen_addresses=".to_string(),
            tcp_port: None,
        }
    }

    /// Starts the server. It stops when this process exits, even on a panic:
    /// a shell holds its stdin and stops PostgreSQL when the pipe closes.
    pub fn run(&mut self) {
        let script = format!(
            "{postgres} -D {data} {settings} -c unix_socket_directories={sock} \
             -c unix_socket_permissions=0777 -c fsync=off -c full_page_writes=off \
             -c max_connections=300 -c shared_buffers=32MB -c log_min_messages=fatal & pid=$!; \
             read _; kill -INT $pid; wait $pid; [ -e {keep} ] || rm -rf {root}",
            root = self.data.parent().expect("parent").display(),
            keep = self.keep_marker().display(),
            postgres = self.bin.join("postgres").display(),
            data = self.data.display(),
            sock = self.socket_dir.display(),
            settings = self.settings,
        );
        let child = as_pg_user(Command::new("sh").arg("-c").arg(script))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.accepting() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start in 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn accepting(&self) -> bool {
        let port = self.tcp_port.unwrap_or(5432).to_string();
        let out = Command::new(self.bin.join("pg_isready"))
            .args(["-p", &port])
            .arg("-h")
            .arg(&self.socket_dir)
            .arg("-q")
            .status();
        matches!(out, Ok(s) if s.success())
    }

    fn keep_marker(&self) -> PathBuf {
        self.socket_dir.join("keep-data")
    }

    /// Stops the server (fast shutdown) and waits for it to exit; the data
    /// stays for [`PgCluster::run`].
    pub fn stop(&mut self) {
        std::fs::write(self.keep_marker(), b"").expect("marker");
        self.shut_down();
        let _ = std::fs::remove_file(self.keep_marker());
    }

    fn shut_down(&mut self) {
        if let Some(mut child) = self.server.take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }

    /// The directory of the cluster's unix socket (its only way in unless
    /// it was started with TCP).
    pub fn socket_dir(&self) -> &std::path::Path {
        &self.socket_dir
    }

    /// One of the cluster's PostgreSQL programs (`pg_restore`, …).
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// A connection string (key=value form) for `database`.
    pub fn dsn(&self, database: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={database}",
            self.socket_dir.display(),
            self.tcp_port.unwrap_or(5432)
        )
    }

    /// A new, empty database with a unique name.
    pub async fn create_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let client = self.connect("postgres").await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        name
    }

    pub async fn connect(&self, database: &str) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.dsn(database), tokio_postgres::NoTls)
                .await
                .expect("connect to the test cluster");
        tokio::spawn(connection);
        client
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The cluster shared by the tests of this binary.
pub fn shared() -> &'static PgCluster {
    static SHARED: OnceLock<PgCluster> = OnceLock::new();
    SHARED.get_or_init(PgCluster::start)
}

/// A connection pool without TLS (benchmarks drive the queue directly).
#[allow(dead_code)] // used by the benchmarks, which share this harness
pub fn pool(dsn: &str, size: usize) -> deadpool_postgres::Pool {
    let config: tokio_postgres::Config = dsn.parse().expect("dsn");
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .expect("pool")
}
