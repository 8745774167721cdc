//! The admin subcommands: `migrate` (and `--rehearse`), `check`, `version`, `admin
//! setup-token`, `audit verify`.

use contracts::rehearsal::Mark;

use std::os::unix::fs::DirBuilderExt;

use crate::audit::{self, Event, Outcome};
use crate::cli::VERSION;
use crate::config::{DatabaseTarget, Settings};
use crate::db::backup;
use crate::db::migrate::{self, MigrateError};
use crate::db::rehearse;
use crate::db::restore;
use crate::db::scratch;
use crate::exit::Exit;
use crate::identity::setup;
use crate::startup::{self, Purpose, StartError};

pub fn version() -> Exit {
    println!("mogothrow77 {VERSION}");
    Exit::Ok
}

/// `migrate`: applies pending migrations; `--check` only lists them.
pub async fn migrate(settings: Settings, check_only: bool) -> Exit {
    let result = async {
        startup::become_service_user(&settings)?;
        let database = startup::open_database(&settings, Purpose::Migrate).await?;
        let outcome = run_migrate(&database, check_only).await;
        database.close().await;
        outcome
    }
    .await;
    match result {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("mogothrow77 migrate: {e}");
            e.exit()
        }
    }
}

async fn run_migrate(database: &startup::Database, check_only: bool) -> Result<Exit, StartError> {
    let mut owner = database.connections.connect_owner().await?;
    crate::db::check_server_version(&owner).await?;
    if check_only {
        let status = migrate::status(&owner).await?;
        status.check_runnable().map_err(MigrateError::from)?;
        if status.pending.is_empty() {
            println!(
                "no pending migrations (schema level {})",
                status.binary_level
            );
            return Ok(Exit::Ok);
        }
        println!("{} pending migration(s):", status.pending.len());
        for m in &status.pending {
            println!("  {m}");
        }
        return Ok(Exit::Failure);
    }
    let applied = migrate::migrate(&mut owner).await?;
    if applied.is_empty() {
        println!("no pending migrations");
    }
    for m in &applied {
        println!("applied {m}");
    }
    Ok(Exit::Ok)
}

/// `migrate --rehearse`: the pending migrations on a copy of the database,
/// timed, with their locks; the copy is dropped (src/db/rehearse.rs).
pub async fn rehearse(settings: Settings, json: bool) -> Exit {
    let result = async {
        startup::become_service_user(&settings)?;
        let state_dir = settings.config.state_dir.clone();
        let binaries = pg_client_binaries(&settings)?;
        let database = startup::open_database(&settings, Purpose::Migrate).await?;
        let outcome = async {
            let managed = managed_cluster(&settings).await?;
            rehearse::rehearse(
                &database.connections,
                scratch_place(&managed),
                &binaries,
                settings.config.database.ca_file.as_deref(),
                &state_dir,
            )
            .await
            .map_err(StartError::from)
        }
        .await;
        database.close().await;
        outcome
    }
    .await;
    match result {
        Ok(report) => {
            if json {
                match serde_json::to_string(&report) {
                    Ok(line) => println!("{line}"),
                    Err(e) => {
                        eprintln!("mogothrow77 migrate --rehearse: {e}");
                        return Exit::Failure;
                    }
                }
            } else {
                print_rehearsal(&report);
            }
            if report.failed().is_some() {
                Exit::Failure
            } else {
                Exit::Ok
            }
        }
        Err(e) => {
            eprintln!("mogothrow77 migrate --rehearse: {e}");
            e.exit()
        }
    }
}

/// `pg_dump`/`pg_restore` to use (`backup::binaries_for`).
fn pg_client_binaries(settings: &Settings) -> Result<crate::db::managed::PgBinaries, StartError> {
    backup::binaries_for(settings).map_err(|e| StartError::Other(e.to_string()))
}

/// The managed cluster's handle for scratch copies (its superuser); `None`
/// for an external database. The cluster runs (`open_database` saw to it).
async fn managed_cluster(
    settings: &Settings,
) -> Result<Option<crate::db::managed::ManagedPostgres>, StartError> {
    Ok(match &settings.database {
        DatabaseTarget::Managed { bin_dir } => Some(
            crate::db::managed::ManagedPostgres::prepare(
                &settings.config.state_dir,
                bin_dir.as_deref(),
                settings.config.database.pool_size + 10,
            )
            .await?,
        ),
        DatabaseTarget::External { .. } => None,
    })
}

fn scratch_place(managed: &Option<crate::db::managed::ManagedPostgres>) -> scratch::Place<'_> {
    match managed {
        Some(pg) => scratch::Place::Managed(pg),
        None => scratch::Place::External,
    }
}

fn print_rehearsal(report: &rehearse::Report) {
    if report.migrations.is_empty() {
        println!(
            "no pending migrations (schema level {}): nothing to rehearse",
            report.schema_level
        );
        return;
    }
    println!(
        "rehearsal: schema level {} → {} on a copy of the database ({:.1} MB, copied in {:.2} s); \
         the live database was not changed",
        report.schema_level,
        report.target_level,
        report.database_bytes as f64 / 1e6,
        report.copy_seconds
    );
    for (mark, line) in report.lines() {
        match mark {
            Mark::Ok => println!("  ok    {line}"),
            Mark::Fail => println!("  FAIL  {line}"),
            Mark::Detail => println!("          {line}"),
            Mark::Warn => println!("  warn  {line}"),
        }
    }
    match report.failed() {
        Some(m) => println!(
            "the upgrade would fail at V{}__{}: fix the cause (the message above) before upgrading",
            m.version, m.name
        ),
        None => println!(
            "migrations took {:.3} s in total on the copy; during an upgrade the service is \
             stopped while they run",
            report.total_seconds()
        ),
    }
}

/// `backup --out FILE`: the database through the running cluster (managed
/// mode starts it for the dump when the service is stopped).
pub async fn backup(settings: Settings, out: std::path::PathBuf, test_restore: bool) -> Exit {
    let result = async {
        startup::become_service_user(&settings)?;
        let binaries = pg_client_binaries(&settings)?;
        let database = startup::open_database(&settings, Purpose::Migrate).await?;
        let outcome = async {
            let started_at = std::time::SystemTime::now();
            let ca_file = settings.config.database.ca_file.clone();
            let recipients = &settings.backup.recipients;
            // Encrypted: dumped beside the database first, sealed into
            // FILE, the plaintext removed.
            let dump_to = if recipients.is_empty() {
                out.clone()
            } else {
                if out.exists() {
                    return Err(StartError::Other(
                        backup::BackupError::Exists {
                            path: out.display().to_string(),
                        }
                        .to_string(),
                    ));
                }
                let work = crate::config::backup_work_dir(&settings.config.state_dir);
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&work)
                    .map_err(|e| {
                        StartError::Other(format!("cannot create {}: {e}", work.display()))
                    })?;
                let plain = work.join(format!("backup-{}.dump.partial", std::process::id()));
                let _ = std::fs::remove_file(&plain);
                plain
            };
            let (connections, dump_binaries, archive) =
                (database.connections.clone(), binaries.clone(), dump_to.clone());
            let summary = tokio::task::spawn_blocking(move || {
                backup::dump(&connections, ca_file.as_deref(), &dump_binaries, &archive)
            })
            .await
            .map_err(|e| StartError::Other(format!("the backup task failed: {e}")))?
            .map_err(|e| StartError::Other(e.to_string()))?;
            let summary = if recipients.is_empty() {
                println!(
                    "backup written: {} ({} bytes, {} archive entries, read back with pg_restore --list)",
                    summary.path.display(),
                    summary.bytes,
                    summary.entries
                );
                if test_restore {
                    test_restore_backup(&settings, &database, &binaries, &summary).await?;
                }
                summary
            } else {
                let tested = if test_restore {
                    test_restore_backup(&settings, &database, &binaries, &summary).await
                } else {
                    Ok(())
                };
                let sealed = tested.and_then(|()| {
                    crate::age::encrypt_file(&dump_to, &out, recipients).map_err(|e| {
                        StartError::Other(format!("cannot encrypt the backup: {e}"))
                    })
                });
                let _ = std::fs::remove_file(&dump_to);
                sealed?;
                let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
                println!(
                    "backup written: {} ({bytes} bytes, encrypted with age for {} recipient(s); {} \
                     archive entries, read back with pg_restore --list before encryption)",
                    out.display(),
                    recipients.len(),
                    summary.entries
                );
                backup::Summary {
                    path: out.clone(),
                    bytes,
                    entries: summary.entries,
                }
            };
            let client = database.connections.connect_app().await?;
            let host = crate::privileges::host_name();
            match backup::record(&client, &summary, started_at, test_restore, &host).await {
                Ok(backup::Recording::Recorded) => {}
                Ok(backup::Recording::NoTable) => println!(
                    "note  the backup is not recorded for `diagnose`: the database's schema \
                     predates the record (pending migrations add it)"
                ),
                Err(e) => {
                    return Err(StartError::Other(format!(
                        "the backup {} was written, but recording it failed: {}",
                        summary.path.display(),
                        crate::db::describe_pg_error(&e)
                    )))
                }
            }
            Ok::<(), StartError>(())
        }
        .await;
        database.close().await;
        outcome
    }
    .await;
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("mogothrow77 backup: {e}");
            e.exit()
        }
    }
}

/// The identities of `--identity KEYFILE`.
fn read_identities(path: &std::path::Path) -> Result<Vec<crate::age::Identity>, StartError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StartError::Other(format!("cannot read the key {}: {e}", path.display())))?;
    crate::age::identities_from(&text)
        .map_err(|e| StartError::Other(format!("the key file {}: {e}", path.display())))
}

/// An archive ready for `pg_restore`: the file itself, or its decrypted
/// copy under `<state_dir>/backups/work` (removed when this is dropped).
enum Opened {
    Plain(std::path::PathBuf),
    Decrypted(std::path::PathBuf),
}

impl Opened {
    fn path(&self) -> &std::path::Path {
        match self {
            Opened::Plain(p) | Opened::Decrypted(p) => p,
        }
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        if let Opened::Decrypted(p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Decrypts an age-encrypted archive with the identities given; a plain
/// archive is used as it is.
fn open_archive(
    settings: &Settings,
    from: &std::path::Path,
    identities: Option<&[crate::age::Identity]>,
) -> Result<Opened, StartError> {
    let encrypted = crate::age::is_age_file(from)
        .map_err(|e| StartError::Other(format!("cannot read {}: {e}", from.display())))?;
    if !encrypted {
        return Ok(Opened::Plain(from.to_path_buf()));
    }
    let Some(identities) = identities else {
        return Err(StartError::Other(format!(
            "{} is encrypted (age): give the private key that opens it with --identity KEYFILE",
            from.display()
        )));
    };
    let work = crate::config::backup_work_dir(&settings.config.state_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&work)
        .map_err(|e| StartError::Other(format!("cannot create {}: {e}", work.display())))?;
    let plain = work.join(format!("restore-{}.dump", std::process::id()));
    let _ = std::fs::remove_file(&plain);
    crate::age::decrypt_file(from, &plain, identities)
        .map_err(|e| StartError::Other(format!("cannot decrypt {}: {e}", from.display())))?;
    Ok(Opened::Decrypted(plain))
}

/// `backup --test-restore`: the archive restored into a scratch database
/// beside the live one, compared, dropped.
async fn test_restore_backup(
    settings: &Settings,
    database: &startup::Database,
    binaries: &crate::db::managed::PgBinaries,
    summary: &backup::Summary,
) -> Result<(), StartError> {
    let managed = managed_cluster(settings).await?;
    let check = scratch::test_restore(
        &database.connections,
        scratch_place(&managed),
        binaries,
        settings.config.database.ca_file.as_deref(),
        &summary.path,
        &settings.config.state_dir,
    )
    .await
    .map_err(|e| {
        StartError::Other(format!(
            "the backup {} was written, but its test restore failed: {e}",
            summary.path.display()
        ))
    })?;
    for w in &check.warnings {
        println!("warn  {w}");
    }
    println!(
        "test restore: the archive restored into a scratch database in {:.1} s with all \
         {} tables and {} applied migrations; the copy was dropped",
        check.seconds, check.tables, check.migrations
    );
    Ok(())
}

/// `restore --from FILE`: the database replaced by an archive. The archive
/// is read before anything is dropped. Managed: the database is recreated
/// and restored in one transaction as the cluster's superuser. External:
/// the appliance's objects are dropped and the archive restored in one
/// transaction as the migration role (`db::restore`).
pub async fn restore(
    settings: Settings,
    from: std::path::PathBuf,
    identity: Option<std::path::PathBuf>,
) -> Exit {
    let result = async {
        // The key is read first: it may be readable by root only.
        let identities = identity.as_deref().map(read_identities).transpose()?;
        startup::become_service_user(&settings)?;
        let binaries = pg_client_binaries(&settings)?;
        let opened = open_archive(&settings, &from, identities.as_deref())?;
        let from = opened.path().to_path_buf();
        let entries =
            backup::entries(&binaries, &from).map_err(|e| StartError::Other(e.to_string()))?;
        let database = startup::open_database(&settings, Purpose::Restore).await?;
        let outcome = match &settings.database {
            DatabaseTarget::Managed { bin_dir } => {
                restore_managed(&settings, bin_dir.as_deref(), binaries, &from).await
            }
            DatabaseTarget::External { .. } => {
                restore_external(&settings, &database, binaries, &from).await
            }
        };
        database.close().await;
        drop(opened);
        outcome.map(|target| (entries, target))
    }
    .await;
    match result {
        Ok((entries, target)) => {
            println!(
                "restored {} ({entries} archive entries) into {target}",
                from.display()
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("mogothrow77 restore: {e}");
            e.exit()
        }
    }
}

async fn restore_managed(
    settings: &Settings,
    bin_dir: Option<&std::path::Path>,
    binaries: crate::db::managed::PgBinaries,
    from: &std::path::Path,
) -> Result<String, StartError> {
    let pg = crate::db::managed::ManagedPostgres::prepare(
        &settings.config.state_dir,
        bin_dir,
        settings.config.database.pool_size + 10,
    )
    .await?;
    pg.recreate_database().await?;
    let env = pg.superuser_env();
    let from = from.to_path_buf();
    tokio::task::spawn_blocking(move || {
        backup::restore(&binaries, env, &from, backup::Owners::AsArchived)
    })
    .await
    .map_err(|e| StartError::Other(format!("the restore task failed: {e}")))?
    .map_err(|e| StartError::Other(e.to_string()))?;
    Ok("the managed database".to_string())
}

async fn restore_external(
    settings: &Settings,
    database: &startup::Database,
    binaries: crate::db::managed::PgBinaries,
    from: &std::path::Path,
) -> Result<String, StartError> {
    let other = |e: restore::RestoreError| StartError::Other(e.to_string());
    // This connection holds the migration lock until the restore is over.
    let client = database.connections.connect_owner().await?;
    let ready = restore::prepare(&client).await.map_err(other)?;
    let env = backup::libpq_env_for(
        &database.connections.owner,
        settings.config.database.ca_file.as_deref(),
    );
    let from = from.to_path_buf();
    let server_major = ready.server_major;
    let configured = settings.config.database.postgres_bin_dir.clone();
    let restored = tokio::task::spawn_blocking(move || {
        let (binaries, parts) =
            restore::client_for(server_major, binaries, configured.as_deref(), &from)?;
        restore::run(&binaries.bin_dir, env, &from, &parts)
    })
    .await
    .map_err(|e| StartError::Other(format!("the restore task failed: {e}")))?;
    if let Err(e) = restored {
        if !restore::settle(&client).await {
            return Err(StartError::Other(format!(
                "{e} (its PostgreSQL session was still rolling back a minute later; wait for \
                 it to end before restoring again)"
            )));
        }
        return Err(other(e));
    }
    drop(client);
    Ok(format!("database {}", ready.database))
}

/// `check`: every check prints one line; exit 0 only when all pass.
pub async fn check(settings: Settings) -> Exit {
    println!("ok    configuration is valid");
    println!("# effective configuration (secrets redacted)");
    print!("{}", settings.effective_toml());
    let result = async {
        startup::become_service_user(&settings)?;
        let database = startup::open_database(&settings, Purpose::Check).await?;
        let outcome = run_check(&database, settings.config.database.auto_migrate).await;
        database.close().await;
        outcome
    }
    .await;
    match result {
        Ok(()) => {
            println!("ok    all checks passed");
            Exit::Ok
        }
        Err(e) => {
            println!("FAIL  {e}");
            e.exit()
        }
    }
}

async fn run_check(database: &startup::Database, auto_migrate: bool) -> Result<(), StartError> {
    let app = database.connections.connect_app().await?;
    println!("ok    database reachable as the application role");
    crate::db::check_server_version(&app).await?;
    println!("ok    PostgreSQL version supported");
    crate::listen::check_delivery(&database.connections, database.connections.connect_timeout)
        .await?;
    println!("ok    notifications are delivered (no transaction-mode pooler in between)");
    let status = migrate::status(&app).await?;
    if auto_migrate {
        status.check_runnable()
    } else {
        status.check_serveable()
    }
    .map_err(MigrateError::from)?;
    println!(
        "ok    schema compatible (applied {}, pending {}, needs binary level >= {}, this binary {})",
        status.applied.len(),
        status.pending.len(),
        status.required_level(),
        status.binary_level
    );
    if !status.pending.is_empty() {
        println!(
            "note  {} migration(s) pending: `serve` applies them (database.auto_migrate is true)",
            status.pending.len()
        );
    }
    if database.connections.shared_role {
        println!(
            "warn  database.migration_url is not set: migrations and the application share one \
             role, so the audit log's append-only guarantee is weaker (the application role owns \
             the tables it could otherwise only append to)"
        );
    }
    Ok(())
}

/// Runs `f` with an application-role connection (the server, or in managed
/// mode its running cluster — or, with [`Purpose::Migrate`], one started
/// for this run); prints failures as `mogothrow77 <what>: …`.
pub(crate) async fn with_app_connection<F>(
    settings: &Settings,
    purpose: Purpose,
    what: &str,
    f: F,
) -> Exit
where
    F: AsyncFnOnce(&mut tokio_postgres::Client) -> Result<Exit, String>,
{
    let result = async {
        startup::become_service_user(settings)?;
        let database = startup::open_database(settings, purpose).await?;
        let client = database.connections.connect_app().await;
        let outcome = match client {
            Ok(mut client) => Ok(f(&mut client).await),
            Err(e) => Err(StartError::from(e)),
        };
        database.close().await;
        outcome
    }
    .await;
    match result {
        Ok(Ok(exit)) => exit,
        Ok(Err(message)) => {
            eprintln!("mogothrow77 {what}: {message}");
            Exit::Failure
        }
        Err(e) => {
            eprintln!("mogothrow77 {what}: {e}");
            e.exit()
        }
    }
}

/// The console's base URL from the configuration.
fn base_url(settings: &Settings) -> String {
    settings.console_url(settings.listen.port())
}

/// `admin setup-token`: a new first-admin setup link.
pub async fn setup_token(settings: Settings) -> Exit {
    let url = base_url(&settings);
    with_app_connection(
        &settings,
        Purpose::Check,
        "admin setup-token",
        async |client| {
            let pg = |e: tokio_postgres::Error| crate::db::describe_pg_error(&e);
            let tx = client.transaction().await.map_err(pg)?;
            let setup::Issued::New(token) = setup::issue(&tx, true).await.map_err(pg)? else {
                eprintln!(
                "mogothrow77 admin setup-token: users exist already, so there is no first-admin \
                 setup; an admin can create accounts in the console (Users)"
            );
                return Ok(Exit::Failure);
            };
            let ctx = audit::Context {
                actor: "cli".to_string(),
                ..Default::default()
            };
            let event = Event::new("setup.token_issue", "", Outcome::Success)
                .details(serde_json::json!({ "by": "mogothrow77 admin setup-token" }));
            audit::append(&tx, &ctx, &event)
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(pg)?;
            println!("{}", setup::link(&url, &token));
            eprintln!(
                "one-time link, valid {} hours; earlier links no longer work",
                setup::VALIDITY_HOURS
            );
            Ok(Exit::Ok)
        },
    )
    .await
}

/// `audit verify`: walks the hash chain.
pub async fn audit_verify(settings: Settings) -> Exit {
    with_app_connection(&settings, Purpose::Check, "audit verify", async |client| {
        let report = audit::verify(client).await.map_err(|e| e.to_string())?;
        if report.problems.is_empty() {
            println!(
                "ok    audit log intact: {} entries; head is entry {} with hash {}",
                report.entries, report.head_seq, report.head_hash
            );
            println!(
                "note  keep the head hash somewhere else: a later verify that shows an \
                 older head, or another hash for it, means the log was rewritten"
            );
            return Ok(Exit::Ok);
        }
        for problem in &report.problems {
            println!("FAIL  {problem}");
        }
        println!(
            "FAIL  the audit log was tampered with: {} problem(s) in {} entries; see \
             docs/runbooks/audit-log-tampered.md",
            report.problems.len(),
            report.entries
        );
        Ok(Exit::Failure)
    })
    .await
}

/// `monitoring rules`: the Prometheus rules with their runbook links under
/// `runbook_base`, or this appliance's own `/docs`.
pub fn monitoring_rules(settings: &Settings, runbook_base: Option<&str>) -> Exit {
    let base = match runbook_base {
        Some(base) => base.to_string(),
        None => crate::monitoring::default_runbook_base(settings),
    };
    match crate::monitoring::rules(&base) {
        Ok(rules) => {
            print!("{rules}");
            Exit::Ok
        }
        Err(e) => {
            eprintln!("mogothrow77: {e}");
            Exit::Config
        }
    }
}
