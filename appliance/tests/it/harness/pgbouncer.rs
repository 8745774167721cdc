//! A private PgBouncer (Debian's `pgbouncer`) in front of a test cluster,
//! on a loopback port, in the pool mode a test asks for; restartable in
//! another mode on the same port.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::open_tempdir;
use super::pg::{as_pg_user, PgCluster};

pub struct PgBouncer {
    dir: tempfile::TempDir,
    port: u16,
    upstream: String,
    child: Option<Child>,
}

impl PgBouncer {
    /// Starts PgBouncer with `pool_mode` (`session` or `transaction`) for
    /// every database of `cluster`.
    pub fn start(cluster: &PgCluster, pool_mode: &str) -> PgBouncer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut bouncer = PgBouncer {
            dir: open_tempdir(),
            port,
            upstream: cluster.socket_dir().display().to_string(),
            child: None,
        };
        bouncer.run(pool_mode);
        bouncer
    }

    /// Stops it and starts it again in `pool_mode`: every client
    /// connection is cut, as when a pooler is reconfigured.
    pub fn restart(&mut self, pool_mode: &str) {
        self.stop();
        self.run(pool_mode);
    }

    /// A connection string through PgBouncer for `database`.
    pub fn dsn(&self, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={database} sslmode=disable",
            self.port
        )
    }

    fn run(&mut self, pool_mode: &str) {
        let ini = self.dir.path().join("pgbouncer.ini");
        let users = self.dir.path().join("users.txt");
        std::fs::write(&users, "\"postgres\" \"\"\n").expect("users");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host={upstream} port=5432\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 unix_socket_dir =\nauth_type = trust\nauth_file = {users}\n\
                 pool_mode = {pool_mode}\ndefault_pool_size = 40\nmax_client_conn = 400\n",
                upstream = self.upstream,
                port = self.port,
                users = users.display(),
            ),
        )
        .expect("ini");
        let child = as_pg_user(Command::new("/usr/sbin/pgbouncer").arg(&ini))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer (apt-get install pgbouncer; scripts/test does)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "PgBouncer did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.stop();
    }
}
