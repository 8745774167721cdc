//! A real browser for the console tests: Debian's chromium driven through
//! chromedriver over the W3C WebDriver protocol (a few JSON calls over
//! HTTP to localhost, so no client crate is needed), plus the axe-core
//! accessibility scan and the browser's console log.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn require(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.exists(),
        "{path} is missing: the console tests need a real browser; apt-get install {package} \
         (scripts/test does)"
    );
    p
}

/// chromedriver plus one browser session with a fresh profile.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
    pub screenshots: PathBuf,
    shot: usize,
}

impl Browser {
    pub async fn start(screenshots: &Path) -> Browser {
        let chromium = require("/usr/bin/chromium", "chromium");
        let chromedriver = require("/usr/bin/chromedriver", "chromium-driver");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        // Its own process group, so that whatever it started can be ended
        // with it even if the session cannot be closed.
        let driver = Command::new(chromedriver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while call(addr, "GET", "/status", None).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let created = call(addr, "POST", "/session", Some(&caps))
            .await
            .expect("create a browser session");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        std::fs::create_dir_all(screenshots).expect("screenshot dir");
        let browser = Browser {
            driver,
            addr,
            session,
            _profile: profile,
            screenshots: screenshots.to_path_buf(),
            shot: 0,
        };
        browser
            .cmd(
                "POST",
                "timeouts",
                json!({ "script": 30000, "pageLoad": 30000 }),
            )
            .await;
        browser
    }

    async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_cmd(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"))
    }

    /// A command whose WebDriver error (e.g. a stale element after the
    /// console re-rendered) is returned rather than fatal.
    async fn try_cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, Value> {
        let url = format!("/session/{}/{path}", self.session);
        let body = (method != "GET").then_some(body);
        let v = call(self.addr, method, &url, body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("webdriver {method} {path}: {e}"));
        if v["value"]["error"].is_string() {
            return Err(v["value"].clone());
        }
        Ok(v["value"].clone())
    }

    /// Runs an element command, finding the element again when the page
    /// replaced it in between.
    async fn on_element(&self, css: &str, method: &str, action: &str, body: Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let id = self.find(css).await;
            match self
                .try_cmd(method, &format!("element/{id}/{action}"), body.clone())
                .await
            {
                Ok(v) => return v,
                Err(e) if e["error"] == "stale element reference" && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("webdriver {action} on {css:?}: {e}"),
            }
        }
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "url", json!({ "url": url })).await;
    }

    async fn try_find(&self, css: &str) -> Option<String> {
        let url = format!("/session/{}/element", self.session);
        let v = call(
            self.addr,
            "POST",
            &url,
            Some(&json!({ "using": "css selector", "value": css })),
        )
        .await
        .ok()?;
        v["value"][ELEMENT].as_str().map(str::to_string)
    }

    /// Waits up to 15 s for an element matching `css`.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(id) = self.try_find(css).await {
                return id;
            }
            if Instant::now() > deadline {
                let html = self
                    .script(
                        "return document.getElementById('main').outerHTML;",
                        json!([]),
                    )
                    .await;
                panic!("no element {css:?} within 15 s; the page:\n{html}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the console has rendered `page` completely.
    pub async fn page(&self, page: &str) {
        self.find(&format!("main[data-page=\"{page}\"][data-ready=\"true\"]"))
            .await;
    }

    pub async fn click(&self, css: &str) {
        self.on_element(css, "POST", "click", json!({})).await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, "POST", "clear", json!({})).await;
        self.on_element(css, "POST", "value", json!({ "text": text }))
            .await;
    }

    /// Chooses a file for an `<input type=file>` (its path on this machine).
    pub async fn choose_file(&self, css: &str, path: &std::path::Path) {
        self.on_element(
            css,
            "POST",
            "value",
            json!({ "text": path.display().to_string() }),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        self.on_element(css, "GET", "text", json!({}))
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Waits until the element's text contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(id) = self.try_find(css).await {
                let v = self
                    .try_cmd("GET", &format!("element/{id}/text"), json!({}))
                    .await;
                if v.is_ok_and(|v| v.as_str().is_some_and(|t| t.contains(needle))) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{css:?} never showed {needle:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Runs an asynchronous script (it calls its last argument when done)
    /// and returns what it passed.
    pub async fn cmd_async(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "execute/async",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Saves a PNG of the viewport as `NN-name.png`.
    /// Resizes the window to `width` CSS pixels (1000 high).
    pub async fn set_width(&self, width: u32) {
        self.cmd(
            "POST",
            "window/rect",
            json!({ "width": width, "height": 1000 }),
        )
        .await;
    }

    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        let data = self.cmd("GET", "screenshot", json!({})).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("screenshot data"))
            .expect("base64");
        self.shot += 1;
        let path = self
            .screenshots
            .join(format!("{:02}-{name}.png", self.shot));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Browser console entries since the last call, as "LEVEL message".
    pub async fn console_log(&self) -> Vec<String> {
        let v = self
            .cmd("POST", "se/log", json!({ "type": "browser" }))
            .await;
        v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"].as_str().unwrap_or("?"),
                            e["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs axe-core on the current page; returns the serious and critical
    /// violations (id, impact, help, offending nodes).
    pub async fn axe(&self, axe_source: &str) -> Vec<Value> {
        self.script(
            &format!("{axe_source}\n;return typeof window.axe;"),
            json!([]),
        )
        .await;
        let raw = self
            .cmd(
                "POST",
                "execute/async",
                json!({
                    "script": "const done = arguments[arguments.length - 1];\
                        window.axe.run(document, { resultTypes: ['violations'] })\
                          .then(r => done(JSON.stringify(r.violations.map(v => ({\
                             id: v.id, impact: v.impact, help: v.help,\
                             nodes: v.nodes.map(n => n.target.join(' ')) })))))\
                          .catch(e => done(JSON.stringify([{ id: 'axe-error', impact: 'critical', help: String(e) }])));",
                    "args": []
                }),
            )
            .await;
        let all: Vec<Value> =
            serde_json::from_str(raw.as_str().unwrap_or("[]")).expect("axe result");
        all.into_iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect()
    }
}

impl Drop for Browser {
    /// Ends the WebDriver session (chromedriver then quits the browser and
    /// its helpers), then chromedriver's process group: killing chromedriver
    /// alone would leave the browser running, orphaned.
    fn drop(&mut self) {
        let _ = end_session(self.addr, &self.session);
        let group = nix::unistd::Pid::from_raw(-(self.driver.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `DELETE /session/{id}`, blocking (drop cannot await); waits for the
/// answer, which chromedriver sends once the browser has quit.
fn end_session(addr: SocketAddr, session: &str) -> std::io::Result<()> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        stream,
        "DELETE /session/{session} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Length: 0\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    stream.read(&mut head).map(|_| ())
}

/// One WebDriver call (HTTP/1.1, `Connection: close`).
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<Value> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    // chromedriver answers `Connection: close` but keeps the socket open:
    // read the head, then exactly Content-Length bytes.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "connection closed before the response head",
            ));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no Content-Length in {head:?}")))?;
    while raw.len() < head_end + length {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let rest = String::from_utf8_lossy(&raw[head_end..]).to_string();
    serde_json::from_str(&rest).map_err(|e| std::io::Error::other(format!("{e}: {rest}")))
}
