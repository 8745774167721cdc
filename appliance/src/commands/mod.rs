//! The admin subcommands: `migrate` (and `--rehearse`), `check`, `version`, `admin
//! setup-token`, `audit verify`; `backup`, `backup drill` and `restore` in
//! [`archive`].

mod archive;
pub mod keys;
mod pitr;

pub use archive::{backup, backup_drill, restore};
pub use pitr::restore_to_time;

use contracts::rehearsal::Mark;

use crate::audit::{self, Event, Outcome};
use crate::cli::VERSION;
use crate::config::{DatabaseTarget, Settings};
use crate::db::backup;
use crate::db::migrate::{self, MigrateError};
use crate::db::rehearse;
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
pub(super) fn pg_client_binaries(
    settings: &Settings,
) -> Result<crate::db::managed::PgBinaries, StartError> {
    backup::binaries_for(settings).map_err(|e| StartError::Other(e.to_string()))
}

/// The managed cluster's handle for scratch copies (its superuser); `None`
/// for an external database. The cluster runs (`open_database` saw to it).
pub(super) async fn managed_cluster(
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

pub(super) fn scratch_place(
    managed: &Option<crate::db::managed::ManagedPostgres>,
) -> scratch::Place<'_> {
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
    with_database(settings, purpose, what, async |database| {
        let mut client = database.connections.connect_app().await?;
        Ok(f(&mut client).await)
    })
    .await
}

/// Runs `f` on the opened database (as [`with_app_connection`]): a
/// start-up failure exits with its code, `Err(message)` from `f` with 1.
pub(super) async fn with_database<F>(
    settings: &Settings,
    purpose: Purpose,
    what: &str,
    f: F,
) -> Exit
where
    F: AsyncFnOnce(&startup::Database) -> Result<Result<Exit, String>, StartError>,
{
    let result = async {
        startup::become_service_user(settings)?;
        let database = startup::open_database(settings, purpose).await?;
        let outcome = f(&database).await;
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
pub async fn audit_verify(settings: Settings, database: Option<String>) -> Exit {
    let Some(name) = database else {
        return with_app_connection(&settings, Purpose::Check, "audit verify", async |client| {
            verify_audit_chain(client).await
        })
        .await;
    };
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        eprintln!(
            "mogothrow77 audit verify: `{name}` is not a database name; expected letters, \
             digits, `_` and `-`, up to 63"
        );
        return Exit::Config;
    }
    with_database(
        &settings,
        Purpose::Check,
        "audit verify",
        async |database| {
            let mut config = database.connections.owner.clone();
            config.dbname(&name);
            let client = crate::db::connect(&config, &database.connections.tls).await?;
            println!("note  checking database {name} (as the schema owner role)");
            Ok(verify_audit_chain(&client).await)
        },
    )
    .await
}

/// Walks the chain of the database `client` is connected to and prints
/// the verdict.
async fn verify_audit_chain(client: &tokio_postgres::Client) -> Result<Exit, String> {
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
