//! A syslog receiver over TLS: Debian's rsyslog (imtcp with the gtls
//! driver), a second instance with its own configuration, writing every
//! message it receives, raw, to a file.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pki;

pub struct Rsyslog {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The CA that signed the receiver's certificate.
    pub ca_pem: String,
    child: Option<Child>,
}

impl Rsyslog {
    pub fn start() -> Rsyslog {
        let dir = super::open_tempdir();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let ca = pki::ca("Test syslog CA");
        let (cert, key) = pki::server_cert(&ca);
        let path = |name: &str| dir.path().join(name).display().to_string();
        std::fs::write(path("ca.pem"), ca.cert.pem()).expect("ca");
        std::fs::write(path("server.pem"), cert).expect("cert");
        std::fs::write(path("server.key"), key).expect("key");
        std::fs::create_dir_all(path("work")).expect("work dir");
        let conf = format!(
            "global(workDirectory=\"{work}\" DefaultNetstreamDriver=\"gtls\" \
             DefaultNetstreamDriverCAFile=\"{ca}\" DefaultNetstreamDriverCertFile=\"{cert}\" \
             DefaultNetstreamDriverKeyFile=\"{key}\")\n\
             module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" \
             StreamDriver.AuthMode=\"anon\")\n\
             input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
             template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             action(type=\"omfile\" file=\"{out}\" template=\"raw\")\n",
            work = path("work"),
            ca = path("ca.pem"),
            cert = path("server.pem"),
            key = path("server.key"),
            out = path("received.log"),
        );
        std::fs::write(path("rsyslog.conf"), conf).expect("conf");
        let mut r = Rsyslog {
            dir,
            port,
            ca_pem: ca.cert.pem(),
            child: None,
        };
        r.run();
        r
    }

    fn run(&mut self) {
        let path = |name: &str| self.dir.path().join(name);
        let child = Command::new("/usr/sbin/rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(path("rsyslog.conf"))
            .arg("-i")
            .arg(path("rsyslog.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd (apt-get install rsyslog rsyslog-gnutls)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "rsyslogd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the receiver (SIGTERM: it closes its connections).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(self.dir.path().join("rsyslog.pid"));
        self.run();
    }

    pub fn received(&self) -> String {
        std::fs::read_to_string(self.output()).unwrap_or_default()
    }

    pub fn output(&self) -> PathBuf {
        self.dir.path().join("received.log")
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}
