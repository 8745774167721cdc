//! The command line: one subcommand per operational role.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// `mogothrow77 --version`: version, commit and schema level.
pub const VERSION: &str = concat!(
    env!("APPLIANCE_VERSION"),
    " (commit ",
    env!("APPLIANCE_GIT_COMMIT"),
    ", schema level ",
    env!("APPLIANCE_SCHEMA_LEVEL"),
    ")"
);

#[derive(Debug, Parser)]
#[command(name = "mogothrow77", version = VERSION, about = "Mogothrow77 records appliance")]
pub struct Cli {
    /// Configuration file [default: /etc/mogothrow77/config.toml when present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (HTTPS API and console) until SIGTERM.
    Serve,
    /// Apply pending database migrations.
    Migrate {
        /// List pending migrations without applying them; exit 1 if any.
        #[arg(long, conflicts_with = "rehearse")]
        check: bool,
        /// Run the pending migrations on a copy of the database instead
        /// (dropped afterwards) and report each one's duration and the
        /// table locks it took; the live database is only read. Exit 1 when
        /// a migration fails on the copy.
        #[arg(long)]
        rehearse: bool,
        /// With --rehearse: print the report as one line of JSON.
        #[arg(long, requires = "rehearse")]
        json: bool,
    },
    /// Validate the configuration, reach the database, check schema
    /// compatibility and print the effective configuration (secrets redacted).
    Check,
    /// Print the version, git commit and the schema level this binary knows.
    Version,
    /// A synthetic check of a running appliance through its API: create a
    /// record in the reserved scratch collection, read it back by a filter,
    /// run a one-record export job and download it, delete what was made;
    /// each step timed. Exit 0 passed, 1 failed, 2 bad input. Reads no
    /// configuration.
    Smoke {
        /// The appliance's base URL (a replica or the load balancer).
        #[arg(long, value_name = "URL")]
        url: String,
        /// A file holding an API token with records:read, records:write and
        /// records:export.
        #[arg(long, value_name = "FILE")]
        token_file: PathBuf,
        /// Trust the CAs in this PEM file besides the system's.
        #[arg(long, value_name = "FILE", conflicts_with = "pin_cert")]
        ca_file: Option<PathBuf>,
        /// Trust exactly this certificate (the appliance's own, e.g. the
        /// self-signed one on its host).
        #[arg(long, value_name = "FILE")]
        pin_cert: Option<PathBuf>,
        /// Seconds each request, and the export, may take.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        timeout: u64,
    },
    /// Write a zip of evidence for the vendor: diagnose, versions, the
    /// configuration (secrets redacted), a certificate summary, migration
    /// history, job and connection counts, PostgreSQL settings, a metrics
    /// snapshot and the recent logs, every file scrubbed of secrets. No
    /// record data, audit details or key files. Mode 0600, never overwritten.
    SupportBundle {
        /// The zip to write [default: ./mogothrow77-support-<host>-<time>.zip].
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// How far back the logs go: 90m, 24h, 7d.
        #[arg(long, value_name = "DURATION", default_value = "24h")]
        since: String,
        /// List every file and its size; write nothing.
        #[arg(long)]
        preview: bool,
        /// Take the logs from this file (a server whose output goes to a
        /// file) instead of the systemd journal.
        #[arg(long, value_name = "FILE")]
        log_file: Option<PathBuf>,
        /// Keep e-mail addresses in the logs (removed by default).
        #[arg(long)]
        include_emails: bool,
        /// Internal: gather and scrub as the service user, print JSON.
        #[arg(long, hide = true)]
        collect: bool,
        /// Internal: the logs' file name in the bundle.
        #[arg(long, hide = true, default_value = "logs/none.txt")]
        log_name: String,
    },
    /// Check everything an operator would: configuration, TLS certificate,
    /// disk, open files, systemd unit, database (version, connection
    /// budget, schema, clock, job queue, notifications, last backup, audit
    /// chain). Changes nothing and never starts the managed cluster. Exit 0
    /// all passed, 6 warnings only, 1 a check failed.
    Diagnose {
        /// Print the report as one line of JSON.
        #[arg(long)]
        json: bool,
    },
    /// Back the database up into a pg_dump custom-format archive (mode
    /// 0600, never overwritten), then read it back with pg_restore --list
    /// (and with --test-restore, restore it into a scratch database).
    /// `backup drill` restores the newest backup and checks it.
    #[command(args_conflicts_with_subcommands = true)]
    Backup {
        #[command(subcommand)]
        drill: Option<BackupCommand>,
        /// The archive to write.
        #[arg(long, value_name = "FILE", required = true)]
        out: Option<PathBuf>,
        /// Then restore the archive into a scratch database beside the
        /// live one, compare its tables and migrations, and drop it.
        #[arg(long)]
        test_restore: bool,
    },
    /// Replace the managed database with a `backup` archive, or bring it
    /// back to a moment with point-in-time recovery (the service must be
    /// stopped; every change after the backup or the moment is lost).
    Restore {
        /// The archive `backup` wrote.
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "to_time",
            conflicts_with = "to_time"
        )]
        from: Option<PathBuf>,
        /// Managed database with backup.pitr: the moment to restore to, as
        /// RFC 3339 with its offset (e.g. 2026-12-07T15:01:15Z).
        #[arg(long, value_name = "TIMESTAMP")]
        to_time: Option<String>,
        /// The private key (`age-keygen`'s file) that opens an encrypted
        /// archive; read before privileges are dropped, so it may be root's.
        #[arg(long, value_name = "KEYFILE")]
        identity: Option<PathBuf>,
    },
    /// Administration of people and access.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Demo data for a first look: `seed` it, `reset` removes it.
    Demo {
        #[command(subcommand)]
        command: DemoCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The key-encryption key file (secrets.key_file).
    KeyFile {
        #[command(subcommand)]
        command: KeyFileCommand,
    },
    /// Files for the site's monitoring.
    Monitoring {
        #[command(subcommand)]
        command: MonitoringCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Create three demo collections (every field type) with records made
    /// from a seed, a user of every role with a one-time sign-in link, and
    /// a stored export; each write audited. Refused when the database holds
    /// collections it did not make, unless --force.
    Seed {
        /// The same seed makes the same records.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Records: 4 × SCALE tickets, 2 × SCALE assets, SCALE contacts.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        scale: u64,
        /// Seed even beside collections the demo did not make.
        #[arg(long)]
        force: bool,
    },
    /// Remove exactly what `demo seed` made (collections demo_*, users
    /// demo.*, their exports); audited.
    Reset,
}

#[derive(Debug, Subcommand)]
pub enum KeyFileCommand {
    /// Make a new key file with one random key (mode 0600, never
    /// overwritten), for secrets.key_file with an external database: give
    /// every replica a copy owned by the service user. `-` prints it instead
    /// (for a secret store). Reads no configuration.
    New {
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum MonitoringCommand {
    /// Print the Prometheus recording and alerting rules, each alert's
    /// runbook_url under URL (default: this appliance's own documentation,
    /// https://<first tls.hostnames>:<port>/docs).
    Rules {
        #[arg(long, value_name = "URL")]
        runbook_base: Option<String>,
    },
}

/// Break-glass administration from the host, with the server's
/// configuration; each change is written to the audit log as
/// `cli:<os-user>@<host>`. In managed mode the cluster is started for the
/// command's run when the service is stopped.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Issue a new one-time first-admin setup link (only while no user
    /// exists; earlier links stop working).
    SetupToken,
    /// The accounts.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Lift a sign-in lockout of an account name or a client address.
    Unlock {
        /// A username, or an IP address (as the audit log shows it).
        #[arg(value_name = "NAME|ADDRESS")]
        target: String,
    },
    /// Turn a user's two-factor authentication off (a lost device); their
    /// sessions end, and they enrol again.
    ResetMfa {
        #[arg(value_name = "NAME")]
        username: String,
    },
    /// Print a one-time link (valid 8 hours) with which a user sets a new
    /// password; their earlier link stops working. The password never
    /// appears on a command line.
    ResetPassword {
        #[arg(value_name = "NAME")]
        username: String,
    },
    /// Disable a user: no sign-in, no API token works; their sessions end.
    /// The last enabled admin cannot be disabled.
    Disable {
        #[arg(value_name = "NAME")]
        username: String,
    },
    /// A user's browser sessions.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Rotate the key-encryption key (every sealed secret sealed again under
    /// a new key, online) and the CSRF and cursor keys (the old ones still
    /// verify during the overlap; the new ones sign 90 seconds later, once
    /// every replica has read them). The old key stays in the key file for
    /// restores of older backups. Audited.
    RotateKeys {
        /// Only add a new key to the key file, unused: copy the file to
        /// every replica that reads its own copy, then run without --stage.
        #[arg(long)]
        stage: bool,
        /// Hours the previous CSRF and cursor keys still verify [default:
        /// auth.session_absolute_hours, so no session's token breaks].
        #[arg(long, value_name = "HOURS", conflicts_with = "stage",
              value_parser = clap::value_parser!(u64).range(1..=720))]
        overlap_hours: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Every account: name, role, disabled, two-factor, current lockout.
    List,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// End every session of a user (signed out on every device).
    Revoke {
        #[arg(value_name = "NAME")]
        username: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Restore the newest backup into a scratch database, compare every
    /// collection's record count with the count recorded at the dump,
    /// verify the restored audit chain, drop the copy; the outcome is kept
    /// with the backup and audited. Exit 0 passed, 1 failed.
    Drill {
        /// The private key that opens an encrypted backup (read before
        /// privileges are dropped).
        #[arg(long, value_name = "KEYFILE")]
        identity: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; name every modified or deleted
    /// entry. Exit 0 when intact, 1 when tampered with.
    Verify {
        /// Check another database on the same server instead (a restored
        /// copy), connecting as the schema owner role.
        #[arg(long, value_name = "NAME")]
        database: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
