//! The managed PostgreSQL cluster: created with the system's `initdb` under
//! `<state_dir>/postgres`, run as a supervised child on a unix socket only,
//! restarted with backoff if it dies, shut down fast when the appliance stops.

use super::Sql;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;

pub use super::binaries::{choose, discover, discover_clients, PgBinaries};
use super::{describe_pg_error, Connections};

/// Roles and database the appliance creates in its managed cluster.
pub const OWNER_ROLE: &str = "mogothrow77_owner";
pub const APP_ROLE: &str = "mogothrow77_app";
pub const DATABASE: &str = "mogothrow77";
/// Unix socket paths are limited to 107 bytes.
const MAX_SOCKET_PATH: usize = 107;
pub const PORT: u16 = 5432;

#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found {searched}. \
         Install them: `apt-get install postgresql` (Debian/Ubuntu) or \
         `dnf install postgresql-server` (RHEL family); or set database.postgres_bin_dir; \
         or use an external database with database.url"
    )]
    BinariesMissing { searched: String },
    #[error(
        "the managed database in {data_dir} was created by PostgreSQL {recorded}, but only \
         PostgreSQL {found} is installed. Install PostgreSQL {recorded} again, or upgrade the \
         cluster as described in docs/runbooks/postgresql-major-upgrade.md"
    )]
    MajorVersionChanged {
        data_dir: String,
        recorded: String,
        found: String,
    },
    #[error(
        "the socket path {path} is {len} bytes, over the 107-byte limit; choose a shorter state_dir"
    )]
    SocketPathTooLong { path: String, len: usize },
    #[error("cannot prepare {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("initdb failed ({status}): {output}")]
    Initdb { status: String, output: String },
    #[error("PostgreSQL did not start: {0}")]
    Start(String),
    #[error("cannot create the appliance's roles and database: {0}")]
    Bootstrap(String),
}

impl ManagedError {
    /// True when a system component is missing (exit 5).
    pub fn is_missing_component(&self) -> bool {
        matches!(
            self,
            ManagedError::BinariesMissing { .. } | ManagedError::MajorVersionChanged { .. }
        )
    }
}

/// Paths of the managed cluster under the state directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    /// The server's unix socket in `socket_dir`.
    pub socket: PathBuf,
}

/// The managed cluster's data directory under `state_dir`.
pub fn data_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("postgres")
}

impl Layout {
    pub fn new(state_dir: &Path) -> Result<Layout, ManagedError> {
        Layout::at(data_dir(state_dir), state_dir.join("run"))
    }

    /// A cluster in `data_dir` listening on a socket in `socket_dir`.
    pub fn at(data_dir: PathBuf, socket_dir: PathBuf) -> Result<Layout, ManagedError> {
        let socket = socket_dir.join(format!(".s.PGSQL.{PORT}"));
        let len = socket.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(ManagedError::SocketPathTooLong {
                path: socket.display().to_string(),
                len,
            });
        }
        Ok(Layout {
            data_dir,
            socket_dir,
            socket,
        })
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ManagedError + '_ {
    move |e| ManagedError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// The managed cluster, prepared (binaries chosen, initialised) but not running.
pub struct ManagedPostgres {
    pub binaries: PgBinaries,
    pub layout: Layout,
    os_user: String,
    max_connections: usize,
    /// WAL archiving (`backup.pitr`): the `archive_command` and
    /// `archive_timeout` in seconds; `None`: off.
    archiving: Option<(String, u64)>,
    /// PostgreSQL's newest FATAL or PANIC line, for an error that says why
    /// it stopped.
    pub(super) last_fatal: Arc<std::sync::Mutex<Option<String>>>,
}

impl ManagedPostgres {
    /// Finds the binaries and lays out the directories; changes nothing in
    /// the cluster. Runs as the service user (PostgreSQL refuses to run as
    /// root). `max_connections` is sized from the pool.
    pub async fn prepare(
        state_dir: &Path,
        configured_bin_dir: Option<&Path>,
        max_connections: usize,
    ) -> Result<ManagedPostgres, ManagedError> {
        let layout = Layout::new(state_dir)?;
        let (found, searched) = discover(configured_bin_dir);
        let binaries = choose(&found, &searched, &layout.data_dir)?;
        let os_user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .ok_or_else(|| ManagedError::Start("the current user has no name".to_string()))?;
        let socket_dir = &layout.socket_dir;
        std::fs::create_dir_all(socket_dir).map_err(io_err(socket_dir))?;
        set_mode(socket_dir, 0o700)?;
        let pg = ManagedPostgres {
            binaries,
            layout,
            os_user,
            max_connections,
            archiving: None,
            last_fatal: Arc::default(),
        };
        Ok(pg)
    }

    /// The same installation on another data directory and socket (a
    /// scratch cluster for a drill), with no archiving.
    pub fn elsewhere(&self, layout: Layout) -> ManagedPostgres {
        ManagedPostgres {
            binaries: self.binaries.clone(),
            layout,
            os_user: self.os_user.clone(),
            max_connections: self.max_connections,
            archiving: None,
            last_fatal: Arc::default(),
        }
    }

    /// The OS user the cluster runs as (its superuser).
    pub fn os_user(&self) -> &str {
        &self.os_user
    }

    /// Archives WAL with `command` at least every `timeout_secs` when
    /// there were changes (from the next start of the cluster on).
    pub fn archive_with(&mut self, command: String, timeout_secs: u64) {
        self.archiving = Some((command, timeout_secs));
    }

    /// True once `initdb` has completed.
    pub fn is_initialised(&self) -> bool {
        self.layout.data_dir.join("PG_VERSION").is_file()
    }

    /// Runs `initdb` on first use and (re)writes the access rules. Call
    /// only while holding the [`ClusterLock`].
    pub async fn initialise(&self) -> Result<(), ManagedError> {
        if !self.is_initialised() {
            self.initdb().await?;
        }
        self.write_access_rules()
    }

    async fn initdb(&self) -> Result<(), ManagedError> {
        let data = &self.layout.data_dir;
        // A half-initialised directory from an interrupted initdb is removed.
        if data.exists() {
            std::fs::remove_dir_all(data).map_err(io_err(data))?;
        }
        tracing::info!(
            data_dir = %data.display(),
            version = %self.binaries.major,
            "creating the managed PostgreSQL cluster"
        );
        let out = Command::new(self.binaries.bin_dir.join("initdb"))
            .arg("-D")
            .arg(data)
            .args([
                "--encoding=UTF8",
                "--locale=C",
                "--auth-local=peer",
                "--auth-host=reject",
            ])
            .arg(format!("--username={}", self.os_user))
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| ManagedError::Initdb {
                status: "not started".to_string(),
                output: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(ManagedError::Initdb {
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    /// Only the service user may connect, over the socket, as itself or as
    /// the appliance's two roles.
    fn write_access_rules(&self) -> Result<(), ManagedError> {
        let data = &self.layout.data_dir;
        let hba = data.join("pg_hba.conf");
        std::fs::write(
            &hba,
            "# Managed by mogothrow77: rewritten at every start.\n\
             local all all peer map=appliance\n",
        )
        .map_err(io_err(&hba))?;
        let ident = data.join("pg_ident.conf");
        let user = &self.os_user;
        std::fs::write(
            &ident,
            format!(
                "# Managed by mogothrow77: rewritten at every start.\n\
                 appliance {user} {user}\n\
                 appliance {user} {OWNER_ROLE}\n\
                 appliance {user} {APP_ROLE}\n"
            ),
        )
        .map_err(io_err(&ident))?;
        Ok(())
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(self.binaries.bin_dir.join("postgres"));
        cmd.arg("-D").arg(&self.layout.data_dir);
        let socket_dir = self.layout.socket_dir.display().to_string();
        let max_connections = self.max_connections.to_string();
        let port = PORT.to_string();
        if let Some((command, timeout)) = &self.archiving {
            for (key, value) in [
                ("archive_mode", "on".to_string()),
                ("archive_command", command.clone()),
                ("archive_timeout", timeout.to_string()),
            ] {
                cmd.arg("-c").arg(format!("{key}={value}"));
            }
        }
        for (key, value) in [
            ("listen_addresses", ""),
            ("unix_socket_directories", socket_dir.as_str()),
            ("unix_socket_permissions", "0700"),
            ("port", port.as_str()),
            // The systemd sandbox forbids writable-executable memory.
            ("jit", "off"),
            // Never a standby: a point-in-time recovery (`restore
            // --to-time`, drills) replays to its target without serving
            // reads, so it needs no settings matched to the original's.
            ("hot_standby", "off"),
            ("shared_buffers", "64MB"),
            ("max_connections", max_connections.as_str()),
            ("logging_collector", "off"),
            ("log_destination", "stderr"),
            ("log_line_prefix", ""),
        ] {
            cmd.arg("-c").arg(format!("{key}={value}"));
        }
        // PostgreSQL must not talk to systemd on the appliance's behalf.
        cmd.env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Own process group: a terminal's Ctrl-C reaches the appliance
            // only, which drains before stopping PostgreSQL.
            .process_group(0)
            .kill_on_drop(false);
        cmd
    }

    pub(super) fn connection(&self, user: &str, database: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host_path(&self.layout.socket_dir)
            .port(PORT)
            .user(user)
            .dbname(database)
            .application_name("mogothrow77")
            .connect_timeout(Duration::from_secs(5));
        c
    }

    /// Connection settings for the appliance's roles.
    pub fn connections(&self, connect_timeout: Duration) -> Result<Connections, super::DbError> {
        let mut app = self.connection(APP_ROLE, DATABASE);
        let mut owner = self.connection(OWNER_ROLE, DATABASE);
        app.connect_timeout(connect_timeout);
        owner.connect_timeout(connect_timeout);
        Ok(Connections {
            app,
            owner,
            shared_role: false,
            tls: super::tls_connector(None)?,
            connect_timeout,
        })
    }

    /// Drops the appliance's database (ending its sessions) and creates it
    /// empty again with its roles and grants, for a restore. The cluster
    /// must be running.
    pub async fn recreate_database(&self) -> Result<(), ManagedError> {
        let err = |e: tokio_postgres::Error| ManagedError::Bootstrap(describe_pg_error(&e));
        let admin = connect_socket(&self.connection(&self.os_user, "postgres")).await?;
        Sql::batch_execute(
            &admin,
            &format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
        )
        .await
        .map_err(err)?;
        bootstrap(self).await
    }

    /// Creates a database beside the appliance's, set up like it (owner,
    /// grants), for a rehearsal copy. The cluster must be running.
    pub async fn create_scratch_database(&self, name: &str) -> Result<(), ManagedError> {
        let admin = connect_socket(&self.connection(&self.os_user, "postgres")).await?;
        create_database(self, &admin, name).await
    }

    /// Drops a database the appliance created beside its own (ending its
    /// sessions); never the appliance's database itself.
    pub async fn drop_scratch_database(&self, name: &str) -> Result<(), ManagedError> {
        if name == DATABASE {
            return Err(ManagedError::Bootstrap(format!(
                "refusing to drop the appliance's database {DATABASE}"
            )));
        }
        let admin = connect_socket(&self.connection(&self.os_user, "postgres")).await?;
        Sql::batch_execute(
            &admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await
        .map_err(|e| ManagedError::Bootstrap(describe_pg_error(&e)))
    }

    /// A connection as the cluster's superuser (the service user) to
    /// `database`: what reads every collection's table whichever role
    /// owns it, for drills and restores.
    pub async fn connect_superuser(
        &self,
        database: &str,
    ) -> Result<tokio_postgres::Client, ManagedError> {
        connect_socket(&self.connection(&self.os_user, database)).await
    }

    /// Ends the current WAL segment (so the archiver takes it now) and
    /// names it: what a caller waits for in `pg_stat_archiver`.
    pub async fn switch_wal(&self) -> Result<String, ManagedError> {
        let admin = connect_socket(&self.connection(&self.os_user, "postgres")).await?;
        // pg_switch_wal() in a statement of its own, then its file's name.
        let lsn: String = Sql::query_one(&admin, "SELECT pg_switch_wal()::text", &[])
            .await
            .map_err(|e| ManagedError::Bootstrap(describe_pg_error(&e)))?
            .get(0);
        Ok(
            Sql::query_one(&admin, "SELECT pg_walfile_name($1::text::pg_lsn)", &[&lsn])
                .await
                .map_err(|e| ManagedError::Bootstrap(describe_pg_error(&e)))?
                .get(0),
        )
    }

    /// The owner role's connection settings on another database of the
    /// cluster.
    pub fn owner_connection(&self, database: &str) -> tokio_postgres::Config {
        self.connection(OWNER_ROLE, database)
    }

    /// libpq's settings for the cluster's superuser (the service user) on
    /// the appliance's database, over the socket.
    pub fn superuser_env(&self) -> Vec<(&'static str, String)> {
        self.superuser_env_on(DATABASE)
    }

    /// libpq's settings for the cluster's superuser on `database`.
    pub fn superuser_env_on(&self, database: &str) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", self.layout.socket_dir.display().to_string()),
            ("PGPORT", PORT.to_string()),
            ("PGUSER", self.os_user.clone()),
            ("PGDATABASE", database.to_string()),
        ]
    }

    /// Starts PostgreSQL, waits until it accepts connections, creates the
    /// roles and database if needed, and supervises it from then on.
    pub async fn start(self) -> Result<Supervisor, ManagedError> {
        let pg = Arc::new(self);
        let mut child = spawn(&pg)?;
        let started = async {
            wait_accepting(&pg, &mut child).await?;
            bootstrap(&pg).await
        }
        .await;
        if let Err(e) = started {
            // Never leave an unsupervised PostgreSQL behind.
            shutdown_child(&mut child).await;
            return Err(e);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(supervise(pg.clone(), child, stop_rx));
        Ok(Supervisor { stop_tx, task })
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), ManagedError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

pub(super) fn spawn(pg: &ManagedPostgres) -> Result<Child, ManagedError> {
    let mut child = pg
        .command()
        .spawn()
        .map_err(|e| ManagedError::Start(format!("cannot run postgres: {e}")))?;
    if let Some(stderr) = child.stderr.take() {
        let last_fatal = pg.last_fatal.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("FATAL:") || line.starts_with("PANIC:") {
                    if let Ok(mut last) = last_fatal.lock() {
                        *last = Some(line.clone());
                    }
                }
                log_postgres_line(&line);
            }
        });
    }
    Ok(child)
}

/// PostgreSQL's own severity decides the log level of its lines.
fn log_postgres_line(line: &str) {
    let severity = line.split(':').next().unwrap_or_default().trim();
    match severity {
        "PANIC" | "FATAL" | "ERROR" => tracing::error!(target: "postgres", "{line}"),
        "WARNING" => tracing::warn!(target: "postgres", "{line}"),
        "DEBUG1" | "DEBUG2" | "DEBUG3" | "DEBUG4" | "DEBUG5" => {
            tracing::debug!(target: "postgres", "{line}")
        }
        _ => tracing::info!(target: "postgres", "{line}"),
    }
}

async fn wait_accepting(pg: &ManagedPostgres, child: &mut Child) -> Result<(), ManagedError> {
    let config = pg.connection(&pg.os_user, "postgres");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| ManagedError::Start(e.to_string()))?
        {
            return Err(ManagedError::Start(format!(
                "postgres exited during start-up ({status}); its log lines above say why"
            )));
        }
        match config.connect(NoTls).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(ManagedError::Start(format!(
                    "not accepting connections after 60 s: {}",
                    describe_pg_error(&e)
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Connects over the unix socket (no TLS on a local socket).
pub(super) async fn connect_socket(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, ManagedError> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| ManagedError::Bootstrap(describe_pg_error(&e)))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Creates the owner and application roles and the database (idempotent).
async fn bootstrap(pg: &ManagedPostgres) -> Result<(), ManagedError> {
    let err = |e: tokio_postgres::Error| ManagedError::Bootstrap(describe_pg_error(&e));
    let admin = connect_socket(&pg.connection(&pg.os_user, "postgres")).await?;
    Sql::batch_execute(
        &admin,
        &format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER_ROLE}') THEN
                 CREATE ROLE {OWNER_ROLE} LOGIN;
               END IF;
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                 CREATE ROLE {APP_ROLE} LOGIN;
               END IF;
             END $$;"
        ),
    )
    .await
    .map_err(err)?;
    create_database(pg, &admin, DATABASE).await
}

/// Creates `name` (when missing) owned by the owner role, with the
/// application role's grants. `name` is one of the appliance's own
/// identifiers, never user input.
async fn create_database(
    pg: &ManagedPostgres,
    admin: &tokio_postgres::Client,
    name: &str,
) -> Result<(), ManagedError> {
    let err = |e: tokio_postgres::Error| ManagedError::Bootstrap(describe_pg_error(&e));
    let exists = Sql::query_opt(
        &admin,
        "SELECT 1 FROM pg_database WHERE datname = $1",
        &[&name],
    )
    .await
    .map_err(err)?
    .is_some();
    if !exists {
        Sql::batch_execute(
            &admin,
            &format!(
                "CREATE DATABASE {name} OWNER {OWNER_ROLE} ENCODING 'UTF8' TEMPLATE template0"
            ),
        )
        .await
        .map_err(err)?;
    }
    let db = connect_socket(&pg.connection(&pg.os_user, name)).await?;
    Sql::batch_execute(
        &db,
        &format!(
            "REVOKE ALL ON DATABASE {name} FROM PUBLIC;
         GRANT CONNECT, TEMPORARY ON DATABASE {name} TO {APP_ROLE};
         ALTER SCHEMA public OWNER TO {OWNER_ROLE};
         REVOKE ALL ON SCHEMA public FROM PUBLIC;
         GRANT USAGE ON SCHEMA public TO {APP_ROLE};
         ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} IN SCHEMA public
           GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE};
         ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER_ROLE} IN SCHEMA public
           GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE};"
        ),
    )
    .await
    .map_err(err)?;
    Ok(())
}

/// Held by the process that supervises the cluster (`serve`, or `migrate`
/// when it had to start the cluster): an exclusive `flock` on
/// `<state_dir>/run/serve.lock`, released when the process exits, however it
/// exits.
pub struct ClusterLock {
    _lock: Flock<std::fs::File>,
}

impl ClusterLock {
    /// `Ok(None)` when another process holds it.
    pub fn try_acquire(layout: &Layout) -> Result<Option<ClusterLock>, ManagedError> {
        let path = layout.socket_dir.join("serve.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(ClusterLock { _lock: lock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(ManagedError::Io {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }
}

impl ManagedPostgres {
    /// Stops a cluster left running by an appliance that died without
    /// stopping it (killed, crashed): fast shutdown, then it can be started
    /// again under supervision. Call only while holding the [`ClusterLock`].
    pub async fn stop_orphan(&self) -> Result<(), ManagedError> {
        let pid_file = self.layout.data_dir.join("postmaster.pid");
        let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        else {
            return Ok(());
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains("postgres") {
            return Ok(());
        }
        tracing::warn!(
            pid,
            "stopping a managed PostgreSQL left running by an earlier run"
        );
        let pid = Pid::from_raw(pid);
        let _ = kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(60);
        while kill(pid, None).is_ok() {
            if Instant::now() > deadline {
                return Err(ManagedError::Start(format!(
                    "PostgreSQL {pid} left by an earlier run did not stop within 60 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

/// Handle to the supervised PostgreSQL.
pub struct Supervisor {
    stop_tx: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Supervisor {
    /// Fast shutdown: PostgreSQL rolls back open transactions and exits cleanly.
    pub async fn stop(self) {
        let _ = self.stop_tx.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "PostgreSQL supervisor ended abnormally");
        }
    }
}

async fn supervise(pg: Arc<ManagedPostgres>, child: Child, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_secs(1);
    let mut child = Some(child);
    loop {
        let started = Instant::now();
        if let Some(running) = child.as_mut() {
            tokio::select! {
                status = running.wait() => {
                    let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    if started.elapsed() > Duration::from_secs(60) {
                        backoff = Duration::from_secs(1);
                    }
                    tracing::error!(%status, retry_in_secs = backoff.as_secs(), "managed PostgreSQL exited; restarting");
                }
                _ = stop.changed() => {
                    shutdown_child(running).await;
                    return;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
        child = match spawn(&pg) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "cannot restart managed PostgreSQL");
                None
            }
        };
    }
}

pub(super) async fn shutdown_child(child: &mut Child) {
    let Some(pid) = child.id() else { return };
    let pid = Pid::from_raw(pid as i32);
    // SIGINT: PostgreSQL's "fast" shutdown.
    let _ = kill(pid, Signal::SIGINT);
    match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
        Ok(_) => tracing::info!("managed PostgreSQL stopped"),
        Err(_) => {
            tracing::warn!("managed PostgreSQL did not stop in 30 s; sending SIGQUIT");
            let _ = kill(pid, Signal::SIGQUIT);
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
    }
}
