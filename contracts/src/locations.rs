//! Where a packaged install keeps things, and the configuration defaults
//! the tools need when the file leaves them out. The server's defaults file
//! (`appliance/config.default.toml`) is tested to agree.

/// The configuration file packages install.
pub const CONFIG_FILE: &str = "/etc/mogothrow77/config.toml";
/// Secret files (0640 `root:mogothrow77`), named by `*_file` keys.
pub const SECRETS_DIR: &str = "/etc/mogothrow77/secrets";
/// The release public key the installer keeps and the upgrade tool reads.
pub const RELEASE_KEY: &str = "/etc/mogothrow77/release-keys/mogothrow77.pub";
/// `state_dir` when the configuration does not set it.
pub const STATE_DIR: &str = "/var/lib/mogothrow77";
/// The key-encryption key file the installer makes (or copies from
/// `--key-file`) for an external database: in the state directory, so the
/// service user can rotate it (`secrets.key_file`).
pub const KEY_FILE: &str = "/var/lib/mogothrow77/secrets.key";
/// `listen` when the configuration does not set it.
pub const LISTEN: &str = "0.0.0.0:8443";
/// The generated self-signed certificate, below `state_dir`.
pub const SELF_SIGNED_CERT: &str = "tls/cert.pem";
/// The upgrade tool's journal, kept packages and configuration backups.
pub const UPGRADE_WORK_DIR: &str = "/var/lib/mogothrow77-upgrade";
/// Where the installer unpacks a bundle while it runs.
pub const INSTALL_WORK_DIR: &str = "/var/lib/mogothrow77-install";
