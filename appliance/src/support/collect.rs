//! `support-bundle --collect`: the bundle's files, gathered as the service
//! user from an allowlist and scrubbed, printed as JSON for the parent.
//! What goes in: diagnose, versions, the effective configuration (secrets
//! redacted), a certificate summary, migration history, job counts,
//! connection counts, PostgreSQL settings, a metrics snapshot and the logs
//! handed over on standard input. Never record data, audit details, user
//! e-mail addresses (unless asked) or key files.

use crate::db::Sql;
use std::fmt::Write as _;
use std::io::Read;
use std::time::Duration;

use tokio_postgres::Client;

use super::scrub::Scrubber;
use super::File;
use crate::config::Settings;
use crate::db::describe_pg_error;
use crate::diagnose::{self, Reach};
use crate::exit::Exit;

/// PostgreSQL settings whose values are never copied (they may hold
/// credentials), by a part of their name.
const SECRET_SETTINGS: &[&str] = &["conninfo", "passphrase", "password", "command", "secret"];

/// `support-bundle --collect`.
pub async fn collect(
    settings: Settings,
    since: Duration,
    log_name: &str,
    keep_emails: bool,
) -> Exit {
    let mut logs = String::new();
    if let Err(e) = std::io::stdin()
        .take(64 * 1024 * 1024)
        .read_to_string(&mut logs)
    {
        eprintln!("mogothrow77 support-bundle: cannot read the logs handed over: {e}");
        return Exit::Failure;
    }
    let made_by = crate::privileges::invoking_user();
    // Drops to the service user first, as every check below expects.
    let report = diagnose::collect(&settings).await;
    let mut scrubber = Scrubber::new(keep_emails);
    for secret in settings.secret_values() {
        scrubber.secret(secret);
    }
    let key_file = settings
        .config
        .tls
        .key_file
        .clone()
        .unwrap_or_else(|| crate::tls::self_signed_paths(&settings.config.state_dir).key);
    if let Ok(key) = std::fs::read_to_string(&key_file) {
        for line in key.lines().filter(|l| !l.starts_with("-----")) {
            scrubber.secret(line);
        }
    }

    let mut files = vec![
        file("diagnose.txt", report.text()),
        file(
            "diagnose.json",
            serde_json::to_string_pretty(&report).unwrap_or_default(),
        ),
        file("configuration.toml", configuration(&settings)),
        file("certificate.txt", certificate(&settings)),
        file("metrics.txt", metrics(&settings).await),
    ];
    let mut server_version = "unknown (the database was not reachable)".to_string();
    match diagnose::reach(&settings).await {
        Reach::Open(database, client) => {
            if let Err(e) = database_secrets(&client, &mut scrubber).await {
                eprintln!(
                    "mogothrow77 support-bundle: cannot read the secrets to scrub: {}",
                    describe_pg_error(&e)
                );
                database.close().await;
                return Exit::Failure;
            }
            match database_files(&client).await {
                Ok((version, more)) => {
                    server_version = version;
                    files.extend(more);
                }
                Err(e) => files.push(file(
                    "database/unavailable.txt",
                    format!("reading the database failed: {}\n", describe_pg_error(&e)),
                )),
            }
            drop(client);
            database.close().await;
        }
        Reach::NotRunning => files.push(file(
            "database/unavailable.txt",
            "The managed cluster was not running (the service was stopped); it was not \
             started.\n"
                .to_string(),
        )),
        Reach::Unreachable(reason) => files.push(file(
            "database/unavailable.txt",
            format!("The database was not reachable: {reason}\n"),
        )),
    }
    files.push(file("versions.txt", versions(&server_version)));
    files.push(file(log_name, logs));
    files.push(file(
        "MANIFEST.txt",
        manifest(&files, since, keep_emails, &made_by),
    ));

    for f in &mut files {
        f.content = scrubber.scrub(&f.content);
    }
    match serde_json::to_string(&files) {
        Ok(json) => {
            println!("{json}");
            Exit::Ok
        }
        Err(e) => {
            eprintln!("mogothrow77 support-bundle: {e}");
            Exit::Failure
        }
    }
}

fn file(name: &str, content: String) -> File {
    File {
        name: name.to_string(),
        content,
    }
}

fn configuration(settings: &Settings) -> String {
    let from = match &settings.file {
        Some(path) => format!("{} and the environment", path.display()),
        None => "built-in defaults and the environment".to_string(),
    };
    format!(
        "# The effective configuration ({from}); every secret shows as {}.\n{}",
        crate::config::REDACTED,
        settings.effective_toml()
    )
}

/// The served certificate chain as a summary; never the key.
fn certificate(settings: &Settings) -> String {
    if !settings.config.tls.enabled {
        return "TLS is off (tls.enabled = false).\n".to_string();
    }
    let path = settings
        .config
        .tls
        .cert_file
        .clone()
        .unwrap_or_else(|| crate::tls::self_signed_paths(&settings.config.state_dir).cert);
    let chain = crate::tls::read_chain(&path)
        .map_err(|e| e.to_string())
        .and_then(|c| crate::tls::summary::summarize(&c).map_err(|e| e.to_string()));
    let chain = match chain {
        Ok(chain) => chain,
        Err(e) => return format!("{}: {e}\n", path.display()),
    };
    let mut out = format!(
        "{}: {} certificate(s), leaf first\n",
        path.display(),
        chain.len()
    );
    for (i, c) in chain.iter().enumerate() {
        let _ = write!(
            out,
            "\n[{}]\nsubject:     {}\nissuer:      {}\nnames:       {}\nnot before:  {}\nnot after:   {}\nSHA-256:     {}\n",
            i + 1,
            c.subject,
            c.issuer,
            c.names.join(", "),
            rfc3339(c.not_before),
            rfc3339(c.not_after),
            c.fingerprint
        );
    }
    out
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// `/metrics` of the server on this host, as Prometheus would scrape it.
async fn metrics(settings: &Settings) -> String {
    let listen = settings.listen;
    if listen.port() == 0 {
        return "Not collected: `listen` has port 0, so the server's port is not known.\n"
            .to_string();
    }
    let addr = contracts::probe::local_addr(listen);
    let cert = settings
        .config
        .tls
        .cert_file
        .clone()
        .unwrap_or_else(|| crate::tls::self_signed_paths(&settings.config.state_dir).cert);
    let tls = settings.config.tls.enabled;
    let token = settings
        .metrics
        .token
        .as_ref()
        .map(|t| t.expose().to_string());
    let answer = tokio::task::spawn_blocking(move || {
        let transport = if tls {
            contracts::probe::Transport::Pinned(&cert)
        } else {
            contracts::probe::Transport::Plain
        };
        contracts::probe::get(
            addr,
            transport,
            "/metrics",
            token.as_deref(),
            32 * 1024 * 1024,
        )
    })
    .await;
    match answer {
        Ok(Ok(a)) if a.status == 200 => String::from_utf8_lossy(&a.body).into_owned(),
        Ok(Ok(a)) => format!(
            "Not collected: {addr}/metrics answered {} (with tls.enabled = false only \
             metrics.token_file or metrics.allow_addresses admit a scrape).\n",
            a.status
        ),
        Ok(Err(e)) => format!("Not collected: {e} (is the service running?)\n"),
        Err(e) => format!("Not collected: {e}\n"),
    }
}

/// Secrets kept in the database, so they can be scrubbed wherever they
/// might appear: webhook signing secrets, TOTP seeds, the server's keys.
async fn database_secrets(
    client: &Client,
    scrubber: &mut Scrubber,
) -> Result<(), tokio_postgres::Error> {
    for row in Sql::query(
        &client,
        "SELECT secret FROM webhooks UNION ALL \
             SELECT previous_secret FROM webhooks WHERE previous_secret IS NOT NULL",
        &[],
    )
    .await?
    {
        scrubber.secret(row.get::<_, &str>(0));
    }
    for row in Sql::query(
        &client,
        "SELECT totp_secret FROM users WHERE totp_secret IS NOT NULL UNION ALL \
             SELECT totp_pending_secret FROM users WHERE totp_pending_secret IS NOT NULL \
             UNION ALL SELECT key FROM server_keys",
        &[],
    )
    .await?
    {
        scrubber.secret_bytes(row.get::<_, &[u8]>(0));
    }
    Ok(())
}

/// The server's version and the database's files: migrations, jobs,
/// connections and settings (no data).
async fn database_files(client: &Client) -> Result<(String, Vec<File>), tokio_postgres::Error> {
    let version: String = Sql::query_one(&client, "SELECT version()", &[])
        .await?
        .get(0);
    let mut migrations = "version\tname\tapplied_on\tkind\n".to_string();
    for row in Sql::query(
        &client,
        "SELECT h.version, h.name, h.applied_on, coalesce(k.kind, '') \
             FROM refinery_schema_history h \
             LEFT JOIN mogothrow77_migration_kinds k USING (version) ORDER BY h.version",
        &[],
    )
    .await?
    {
        let _ = writeln!(
            migrations,
            "{}\t{}\t{}\t{}",
            row.get::<_, i32>(0),
            row.get::<_, String>(1),
            row.get::<_, Option<String>>(2).unwrap_or_default(),
            row.get::<_, String>(3)
        );
    }
    let mut jobs = "kind\tstate\tcount\toldest_created\tnewest_created\n".to_string();
    for row in Sql::query(
        &client,
        "SELECT kind, state, count(*), min(created_at)::text, max(created_at)::text \
             FROM jobs GROUP BY kind, state ORDER BY kind, state",
        &[],
    )
    .await?
    {
        let _ = writeln!(
            jobs,
            "{}\t{}\t{}\t{}\t{}",
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, i64>(2),
            row.get::<_, String>(3),
            row.get::<_, String>(4)
        );
    }
    let depth = crate::queue::depth(client).await?;
    let _ = writeln!(
        jobs,
        "\n# now: {} due (oldest waiting {:.0} s), {} running, {} dead",
        depth.due, depth.oldest_due_secs, depth.running, depth.dead
    );
    let mut connections = "database\trole\tapplication\tstate\tcount\n".to_string();
    for row in Sql::query(
        &client,
        "SELECT coalesce(datname, ''), coalesce(usename, ''), coalesce(application_name, ''), \
                    coalesce(state, ''), count(*) \
             FROM pg_stat_activity WHERE backend_type = 'client backend' \
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        &[],
    )
    .await?
    {
        let _ = writeln!(
            connections,
            "{}\t{}\t{}\t{}\t{}",
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2),
            row.get::<_, String>(3),
            row.get::<_, i64>(4)
        );
    }
    let mut pg_settings = "name\tsetting\tunit\tsource\n".to_string();
    for row in Sql::query(
        &client,
        "SELECT name, coalesce(setting, ''), coalesce(unit, ''), source FROM pg_settings \
             WHERE source NOT IN ('default', 'override') ORDER BY name",
        &[],
    )
    .await?
    {
        let name: String = row.get(0);
        let setting: String = if SECRET_SETTINGS.iter().any(|s| name.contains(s)) {
            crate::config::REDACTED.to_string()
        } else {
            row.get(1)
        };
        let _ = writeln!(
            pg_settings,
            "{name}\t{setting}\t{}\t{}",
            row.get::<_, String>(2),
            row.get::<_, String>(3)
        );
    }
    Ok((
        version,
        vec![
            file("database/migrations.tsv", migrations),
            file("database/jobs.tsv", jobs),
            file("database/connections.tsv", connections),
            file("database/settings.tsv", pg_settings),
        ],
    ))
}

fn versions(server_version: &str) -> String {
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let kernel = nix::sys::utsname::uname()
        .map(|u| {
            format!(
                "{} {} {}",
                u.sysname().to_string_lossy(),
                u.release().to_string_lossy(),
                u.machine().to_string_lossy()
            )
        })
        .unwrap_or_else(|_| "unknown".to_string());
    format!(
        "mogothrow77 {}\nos: {os}\nkernel: {kernel}\npostgresql: {server_version}\n",
        crate::cli::VERSION
    )
}

fn manifest(files: &[File], since: Duration, keep_emails: bool, made_by: &str) -> String {
    let mut out = format!(
        "Mogothrow77 support bundle, made {} on {} by {}.\n\n\
         Every file was scrubbed of the secrets the appliance knows (database URLs and \
         passwords, the SMTP password, the metrics token, telemetry headers, webhook \
         secrets, TOTP seeds, the server's keys, the TLS key) in plain, Base64, \
         URL-encoded and hex form, and of anything shaped like a credential (passwords \
         in URLs, the values of password, token and secret parameters, Authorization \
         headers, API tokens, session cookies, random-looking strings, private keys){}.\n\
         Not included: record data, audit log entries, user accounts, key files.\n\
         Logs: the last {} s.\n\nFiles:\n",
        rfc3339(time::OffsetDateTime::now_utc().unix_timestamp()),
        crate::privileges::host_name(),
        made_by,
        if keep_emails {
            ""
        } else {
            ", and of e-mail addresses"
        },
        since.as_secs()
    );
    for f in files {
        let _ = writeln!(out, "  {}", f.name);
    }
    out
}
