//! A real Prometheus (Debian's `prometheus` package) for the alerting and
//! dashboard tests: its own data directory, a configuration and rules the
//! test writes, listening on a free loopback port, killed when dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::client;

pub const BIN: &str = "/usr/bin/prometheus";

pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML; `RULES` in it is replaced by
    /// the path of the rules file written from `rules`) and waits until it
    /// is ready.
    pub async fn start(config: &str, rules: &str) -> Prometheus {
        assert!(
            Path::new(BIN).is_file(),
            "{BIN} is missing: apt-get install prometheus (scripts/test does)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let rules_path = dir.path().join("rules.yml");
        std::fs::write(&rules_path, rules).expect("write rules");
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(
            &config_path,
            config.replace("RULES", &rules_path.display().to_string()),
        )
        .expect("write config");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new(BIN)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-lifecycle")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client::get_plain(addr, "/-/ready").await {
                if r.status == 200 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 30 s:\n{}",
                prometheus.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        prometheus
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET path` on its HTTP API, as JSON (`status` must be `success`).
    pub async fn api(&self, path: &str) -> serde_json::Value {
        let r = client::get_plain(self.addr, path)
            .await
            .expect("prometheus API");
        let body: serde_json::Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("prometheus answered {} ({e}): {}", r.status, r.body));
        assert_eq!(body["status"], "success", "{path}: {body}");
        body
    }

    /// An instant query's result vector.
    pub async fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let body = self
            .api(&format!("/api/v1/query?query={}", super::api::encode(expr)))
            .await;
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The state of alert `name` (`pending`, `firing`), if active.
    pub async fn alert_state(&self, name: &str) -> Option<String> {
        let body = self.api("/api/v1/alerts").await;
        body["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .and_then(|a| a["state"].as_str())
            .map(str::to_string)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
