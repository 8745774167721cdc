//! What the tools need from the appliance's configuration file: where its
//! state lives, where it listens and which certificate it serves. Settings
//! given only through environment variables in a systemd drop-in are not
//! visible here: name them in the file (docs/upgrade.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use contracts::locations;

#[derive(Debug, Clone)]
pub struct Settings {
    pub state_dir: PathBuf,
    /// Where to reach the server from this host.
    pub probe_addr: SocketAddr,
    /// The certificate the server presents (pinned by the health probe).
    pub cert_file: PathBuf,
    /// `upgrade.smoke_token_file`: after the health check, `mogothrow77
    /// smoke` runs with this API token; `None`: skipped.
    pub smoke_token_file: Option<PathBuf>,
}

pub fn load(config: &Path) -> Result<Settings, String> {
    let table: toml::Table = match std::fs::read_to_string(config) {
        Ok(text) => text
            .parse()
            .map_err(|e| format!("{} is not valid TOML: {e}", config.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", config.display())),
    };
    let text = |v: Option<&toml::Value>| v.and_then(toml::Value::as_str).map(str::to_string);
    let state_dir = PathBuf::from(
        text(table.get("state_dir")).unwrap_or_else(|| locations::STATE_DIR.to_string()),
    );
    let listen = text(table.get("listen")).unwrap_or_else(|| locations::LISTEN.to_string());
    let listen: SocketAddr = listen.parse().map_err(|_| {
        format!(
            "{}: listen {listen:?} is not an address:port",
            config.display()
        )
    })?;
    let tls = table.get("tls").and_then(toml::Value::as_table);
    let cert_file = tls
        .and_then(|t| text(t.get("cert_file")))
        .map(PathBuf::from)
        .unwrap_or_else(|| state_dir.join(locations::SELF_SIGNED_CERT));
    let smoke_token_file = table
        .get("upgrade")
        .and_then(toml::Value::as_table)
        .and_then(|t| text(t.get("smoke_token_file")))
        .map(PathBuf::from);
    Ok(Settings {
        state_dir,
        probe_addr: contracts::probe::local_addr(listen),
        cert_file,
        smoke_token_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = load(&dir.path().join("none.toml")).expect("defaults");
        assert_eq!(missing.state_dir, PathBuf::from("/var/lib/mogothrow77"));
        assert_eq!(missing.probe_addr.to_string(), "127.0.0.1:8443");
        assert_eq!(
            missing.cert_file,
            PathBuf::from("/var/lib/mogothrow77/tls/cert.pem")
        );
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "listen = \"[::]:9443\"\nstate_dir = \"/srv/m77\"\n[tls]\ncert_file = \"/etc/c.pem\"\n\
             [upgrade]\nsmoke_token_file = \"/etc/mogothrow77/smoke-token\"\n",
        )
        .expect("write");
        let s = load(&file).expect("load");
        assert_eq!(s.probe_addr.to_string(), "[::1]:9443");
        assert_eq!(s.state_dir, PathBuf::from("/srv/m77"));
        assert_eq!(s.cert_file, PathBuf::from("/etc/c.pem"));
        assert_eq!(
            s.smoke_token_file,
            Some(PathBuf::from("/etc/mogothrow77/smoke-token"))
        );
        assert_eq!(missing.smoke_token_file, None);
        std::fs::write(&file, "listen = \"nowhere\"\n").expect("write");
        assert!(load(&file).is_err());
    }
}
