//! The admin subcommands: `migrate`, `check`, `version`.

use crate::cli::VERSION;
use crate::config::Settings;
use crate::db::migrate::{self, MigrateError};
use crate::exit::Exit;
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
