//! The real `mogothrow77` binary as a child process, with its output
//! collected so tests can wait for log events and search the logs.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::open_tempdir;

pub const BIN: &str = env!("CARGO_BIN_EXE_mogothrow77");

/// One key-encryption key file for every external-database test of this
/// run, made with `mogothrow77 key-file new`, the service user's.
pub fn shared_key_file() -> PathBuf {
    static FILE: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let dir = open_tempdir();
        let path = dir.path().join("secrets.key");
        new_key_file(&path);
        (dir, path)
    })
    .1
    .clone()
}

/// Makes a key file at `path` with the binary, owned by the service user.
pub fn new_key_file(path: &std::path::Path) {
    let out = Command::new(BIN)
        .args(["key-file", "new"])
        .arg(path)
        .output()
        .expect("run mogothrow77 key-file new");
    assert!(
        out.status.success(),
        "key-file new: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    super::give_to_service_user(path);
}

/// A configuration file plus environment for one run of the binary.
pub struct AppConfig {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub env: Vec<(String, String)>,
    /// The binary run: this build's, unless a test runs another release.
    pub binary: PathBuf,
}

impl AppConfig {
    /// A config listening on an ephemeral loopback port, with its own state
    /// directory and the given extra TOML (tables appended at the end).
    pub fn new(extra_toml: &str) -> AppConfig {
        let dir = open_tempdir();
        let state = dir.path().join("state");
        let config_path = dir.path().join("config.toml");
        let toml = format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n{extra_toml}\n",
            state.display()
        );
        std::fs::write(&config_path, toml).expect("write config");
        AppConfig {
            dir,
            config_path,
            env: Vec::new(),
            binary: PathBuf::from(BIN),
        }
    }

    /// A config for an external database, with the key file every such
    /// test shares (as replicas of one installation share theirs).
    pub fn external(dsn: &str, extra_toml: &str) -> AppConfig {
        AppConfig::new(&format!("[database]\nurl = \"{dsn}\"\n{extra_toml}")).with_shared_key_file()
    }

    /// Uses the key file every external-database test of this run shares.
    pub fn with_shared_key_file(self) -> Self {
        let path = shared_key_file();
        self.env("MOGOTHROW77_SECRETS__KEY_FILE", &path.display().to_string())
    }

    /// Configures a certificate and a private key that does not belong to
    /// it (both private, the service user's).
    pub fn with_mismatched_tls_key(self) -> Self {
        let (cert, key) = (self.path("cert.pem"), self.path("key.pem"));
        let one = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
        let other = rcgen::KeyPair::generate().expect("key");
        std::fs::write(&cert, one.cert.pem()).expect("write");
        std::fs::write(&key, other.serialize_pem()).expect("write");
        super::chmod(&key, 0o600);
        super::give_to_service_user(&key);
        super::give_to_service_user(&cert);
        self.env("MOGOTHROW77_TLS__CERT_FILE", &cert.display().to_string())
            .env("MOGOTHROW77_TLS__KEY_FILE", &key.display().to_string())
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// SQL on the managed cluster as its superuser (the service user, over the
    /// socket: peer authentication).
    pub fn managed_sql(&self, sql: &str) -> String {
        let psql = super::pg::bin_dir().join("psql");
        let socket = self.state_dir().join("run");
        let mut cmd = if nix::unistd::Uid::effective().is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "mogothrow77", "--"]).arg(&psql);
            c
        } else {
            std::process::Command::new(&psql)
        };
        let out = cmd
            .arg("-h")
            .arg(&socket)
            .args([
                "-d",
                "mogothrow77",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--config").arg(&self.config_path).args(args);
        // The tests' own environment must not configure the binary.
        for (key, _) in std::env::vars() {
            if key.starts_with("MOGOTHROW77_") || key == "NOTIFY_SOCKET" {
                cmd.env_remove(key);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a command to completion.
    pub fn run(&self, args: &[&str]) -> Finished {
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run mogothrow77");
        Finished {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }

    /// Starts a command without waiting for it (its output discarded).
    pub fn start(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mogothrow77")
    }

    /// Starts `serve`.
    pub fn spawn(&self) -> App {
        let mut child = self
            .command(&["serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mogothrow77 serve");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    match line {
                        Ok(line) => output.lock().expect("lock").push(line),
                        Err(_) => break,
                    }
                }
            });
        }
        App { child, output }
    }
}

pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A running `serve`.
pub struct App {
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl App {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.output.lock().expect("lock").join("\n")
    }

    /// The first JSON log event with this `message`, waiting up to `timeout`.
    pub fn wait_event(&mut self, message: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.find_event(message) {
                return v;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                if let Some(v) = self.find_event(message) {
                    return v;
                }
                panic!(
                    "mogothrow77 exited ({status}) before logging {message:?}:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {message:?} event within {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn find_event(&self, message: &str) -> Option<serde_json::Value> {
        self.output
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message"] == message)
    }

    /// Waits for the `ready` event and returns the bound address.
    pub fn wait_ready(&mut self) -> SocketAddr {
        let event = self.wait_event("ready", Duration::from_secs(60));
        event["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("ready event carries addr")
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("signal");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "mogothrow77 did not exit within {timeout:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(30))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
