//! Scratch databases beside the live one: a `pg_dump` archive restored into
//! a new database, used, and dropped. `migrate --rehearse` runs migrations
//! on such a copy; `backup --test-restore` proves a backup restores; `backup
//! drill` restores the newest backup and checks it. The live database is
//! never written.

use super::Sql;
use std::path::Path;
use std::time::Instant;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::backup::{self, BackupError, Owners};
use super::managed::{ManagedError, ManagedPostgres, PgBinaries};
use super::{describe_pg_error, Connections, DbError};

/// What a copy is for; its name is `<prefix><live database's oid>_<pid>`:
/// several appliances may share one PostgreSQL server, and each cleans up
/// only its own.
#[derive(Debug, Clone, Copy)]
pub enum Use {
    Rehearsal,
    RestoreCheck,
    Drill,
}

impl Use {
    fn prefix(self) -> &'static str {
        match self {
            Use::Rehearsal => "mogothrow77_rehearsal_",
            Use::RestoreCheck => "mogothrow77_restore_check_",
            Use::Drill => "mogothrow77_drill_",
        }
    }
}

/// Advisory lock key held on the live database while a copy exists
/// ("mogorh"); advisory locks are per database.
const SCRATCH_LOCK: i64 = 0x6d6f_676f_7268;

#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "another rehearsal, backup test restore or drill is running on this database; wait \
         until it has finished"
    )]
    Busy,
    #[error(
        "not enough free space in {dir} for the copy: about {needed} MB needed ({what}), \
         {free} MB free; free some space and try again"
    )]
    NoSpace {
        dir: String,
        needed: u64,
        free: u64,
        what: &'static str,
    },
    #[error(
        "cannot create the scratch database {name}: {reason}; on an external database the \
         migration role needs CREATEDB (ALTER ROLE <role> CREATEDB)"
    )]
    CreateDatabase { name: String, reason: String },
    #[error("copying the database failed: {0}")]
    Copy(#[from] BackupError),
    #[error("managed database: {0}")]
    Managed(#[from] ManagedError),
    #[error("database error while {doing}: {reason}")]
    Database { doing: &'static str, reason: String },
    #[error("{0}")]
    Io(String),
}

pub fn db_err(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> ScratchError {
    move |e| ScratchError::Database {
        doing,
        reason: describe_pg_error(&e),
    }
}

/// Where copies are made, and by whom.
pub enum Place<'a> {
    /// The managed cluster: its superuser creates the copy like the
    /// appliance's own database and restores it with the archive's owners
    /// and grants; the copy is used as the owner role, as `migrate` does.
    Managed(&'a ManagedPostgres),
    /// An external server: the migration role creates the copy (it needs
    /// CREATEDB), owns everything in it and uses it.
    External,
}

/// A scratch database, from the lock to the drop.
pub struct Scratch<'a> {
    live: &'a Client,
    place: Place<'a>,
    connections: &'a Connections,
    pub name: String,
    /// `<prefix><oid>_` of every use: the names this appliance's copies have.
    own: [String; 3],
    /// Leftovers that could not be dropped, or this copy.
    pub warnings: Vec<String>,
}

impl<'a> Scratch<'a> {
    /// Takes the scratch lock on `live` (the owner role's connection to the
    /// live database; released when it closes) and drops copies a killed
    /// run left behind. Nothing is created yet.
    pub async fn begin(
        live: &'a Client,
        place: Place<'a>,
        connections: &'a Connections,
        purpose: Use,
    ) -> Result<Scratch<'a>, ScratchError> {
        let locked: bool =
            Sql::query_one(&live, "SELECT pg_try_advisory_lock($1)", &[&SCRATCH_LOCK])
                .await
                .map_err(db_err("taking the scratch lock"))?
                .get(0);
        if !locked {
            return Err(ScratchError::Busy);
        }
        let oid: u32 = Sql::query_one(
            &live,
            "SELECT oid FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map_err(db_err("reading the database's oid"))?
        .get(0);
        let own = [Use::Rehearsal, Use::RestoreCheck, Use::Drill]
            .map(|u| format!("{}{oid}_", u.prefix()));
        let mut scratch = Scratch {
            live,
            place,
            connections,
            name: format!("{}{oid}_{}", purpose.prefix(), std::process::id()),
            own,
            warnings: Vec::new(),
        };
        let leftovers = Sql::query(
            &live,
            "SELECT datname FROM pg_database \
                 WHERE starts_with(datname, $1) OR starts_with(datname, $2) \
                    OR starts_with(datname, $3)",
            &[&scratch.own[0], &scratch.own[1], &scratch.own[2]],
        )
        .await
        .map_err(db_err("listing scratch databases"))?;
        for row in leftovers {
            let name: String = row.get(0);
            if let Err(e) = scratch.drop_named(&name).await {
                scratch.warnings.push(format!(
                    "a copy left by an earlier run, {name}, could not be dropped: {e}"
                ));
            }
        }
        Ok(scratch)
    }

    /// The live database's size (`pg_database_size`).
    pub async fn live_bytes(&self) -> Result<i64, ScratchError> {
        Ok(Sql::query_one(
            &self.live,
            "SELECT pg_database_size(current_database())",
            &[],
        )
        .await
        .map_err(db_err("measuring the database"))?
        .get(0))
    }

    /// Free space in `dir` for what lands there: `copies` times the live
    /// database's size (a dump, and in managed mode the copy itself).
    pub fn check_space(
        &self,
        dir: &Path,
        database_bytes: i64,
        dump_there: bool,
    ) -> Result<(), ScratchError> {
        let stat = nix::sys::statvfs::statvfs(dir)
            .map_err(|e| ScratchError::Io(format!("{}: {e}", dir.display())))?;
        let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
        let size = database_bytes.max(0) as u64;
        let managed = matches!(self.place, Place::Managed(_));
        let (needed, what) = match (dump_there, managed) {
            (true, true) => (
                size * 2,
                "the dump and the copy, each up to the database's size",
            ),
            (true, false) => (size, "the dump, up to the database's size"),
            (false, true) => (size, "the copy, up to the database's size"),
            (false, false) => (0, "nothing: the copy is on the database server"),
        };
        if free < needed {
            return Err(ScratchError::NoSpace {
                dir: dir.display().to_string(),
                needed: needed / 1_000_000 + 1,
                free: free / 1_000_000,
                what,
            });
        }
        Ok(())
    }

    /// Creates the empty copy and restores `dump` into it (one
    /// transaction, stopping at the first error).
    pub async fn restore(
        &self,
        binaries: &PgBinaries,
        ca_file: Option<&Path>,
        dump: &Path,
    ) -> Result<(), ScratchError> {
        let name = &self.name;
        match self.place {
            Place::Managed(pg) => pg.create_scratch_database(name).await.map_err(|e| {
                ScratchError::CreateDatabase {
                    name: name.clone(),
                    reason: e.to_string(),
                }
            })?,
            // `name` is the appliance's own identifier, never user input.
            Place::External => Sql::batch_execute(
                &self.live,
                &format!("CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"),
            )
            .await
            .map_err(|e| ScratchError::CreateDatabase {
                name: name.clone(),
                reason: if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
                    "permission denied".to_string()
                } else {
                    describe_pg_error(&e)
                },
            })?,
        }
        let (env, owners) = match self.place {
            Place::Managed(pg) => (pg.superuser_env_on(name), Owners::AsArchived),
            Place::External => (
                backup::libpq_env_for(&self.owner_config(), ca_file),
                Owners::Restorer,
            ),
        };
        let (binaries, dump) = (binaries.clone(), dump.to_path_buf());
        tokio::task::spawn_blocking(move || backup::restore(&binaries, env, &dump, owners))
            .await
            .map_err(|e| ScratchError::Io(format!("the restore task failed: {e}")))?
            .map_err(ScratchError::from)
    }

    fn owner_config(&self) -> tokio_postgres::Config {
        match self.place {
            Place::Managed(pg) => pg.owner_connection(&self.name),
            Place::External => {
                let mut owner = self.connections.owner.clone();
                owner.dbname(&self.name);
                owner
            }
        }
    }

    /// A connection to the copy as the role that migrates.
    pub async fn connect(&self) -> Result<Client, ScratchError> {
        Ok(super::connect(&self.owner_config(), &self.connections.tls).await?)
    }

    /// A connection to the copy that reads every table: managed, the
    /// cluster's superuser (collections' tables belong to the application
    /// role, as archived); external, the role that restored and owns it all.
    pub async fn connect_reader(&self) -> Result<Client, ScratchError> {
        match self.place {
            Place::Managed(pg) => Ok(pg.connect_superuser(&self.name).await?),
            Place::External => self.connect().await,
        }
    }

    /// Drops the copy; a failure becomes a warning naming what to do.
    pub async fn finish(mut self) -> Vec<String> {
        let name = self.name.clone();
        if let Err(e) = self.drop_named(&name).await {
            self.warnings.push(format!(
                "the copy {name} could not be dropped ({e}); drop it by hand: DROP DATABASE {name}"
            ));
        }
        self.warnings
    }

    async fn drop_named(&self, name: &str) -> Result<(), ScratchError> {
        if !self.own.iter().any(|p| name.starts_with(p.as_str())) {
            return Err(ScratchError::Io(format!("{name} is not a scratch copy")));
        }
        match self.place {
            Place::Managed(pg) => Ok(pg.drop_scratch_database(name).await?),
            Place::External => Sql::batch_execute(
                &self.live,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await
            .map_err(db_err("dropping the copy")),
        }
    }
}

/// What a test restore found.
#[derive(Debug)]
pub struct RestoreCheck {
    pub tables: i64,
    pub migrations: i64,
    pub seconds: f64,
    pub warnings: Vec<String>,
}

/// Tables outside the system schemas, and applied migrations.
const INVENTORY_SQL: &str = "SELECT \
     (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
       WHERE c.relkind IN ('r', 'p') \
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg\\_%'), \
     (SELECT count(*) FROM refinery_schema_history)";

/// Restores the archive `dump` (just written from the live database) into a
/// scratch database, checks that it holds as many tables and applied
/// migrations as the live database, and drops it.
pub async fn test_restore(
    connections: &Connections,
    place: Place<'_>,
    binaries: &PgBinaries,
    ca_file: Option<&Path>,
    dump: &Path,
    work_dir: &Path,
) -> Result<RestoreCheck, ScratchError> {
    let started = Instant::now();
    let live = connections.connect_owner().await?;
    let scratch = Scratch::begin(&live, place, connections, Use::RestoreCheck).await?;
    let bytes = scratch.live_bytes().await?;
    scratch.check_space(work_dir, bytes, false)?;
    let outcome = async {
        scratch.restore(binaries, ca_file, dump).await?;
        let copy = scratch.connect().await?;
        let inventory = |row: tokio_postgres::Row| (row.get::<_, i64>(0), row.get::<_, i64>(1));
        let restored = inventory(
            Sql::query_one(&copy, INVENTORY_SQL, &[])
                .await
                .map_err(db_err("reading the restored copy"))?,
        );
        let original = inventory(
            Sql::query_one(&live, INVENTORY_SQL, &[])
                .await
                .map_err(db_err("reading the live database"))?,
        );
        if restored != original {
            return Err(ScratchError::Io(format!(
                "the restored copy holds {} tables and {} applied migrations, the live database \
                 {} and {}: the backup is incomplete",
                restored.0, restored.1, original.0, original.1
            )));
        }
        Ok(restored)
    }
    .await;
    let warnings = scratch.finish().await;
    let (tables, migrations) = outcome?;
    Ok(RestoreCheck {
        tables,
        migrations,
        seconds: started.elapsed().as_secs_f64(),
        warnings,
    })
}
