//! `restore --from FILE` into an **external** database: the appliance's
//! objects are dropped and the archive restored in one transaction, as the
//! migration role, so a failure anywhere (a damaged archive, a missing
//! role, a full disk, this process killed) leaves the database exactly as
//! it was. The managed database is recreated instead (`commands::restore`).

use super::Sql;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use super::backup;
use super::describe_pg_error;
use super::managed::{self, PgBinaries};
use super::migrate::MIGRATION_LOCK;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot prepare the restore: {0}; nothing was changed")]
    Db(String),
    #[error(
        "a migration or another restore is running on database {database} (it holds the \
         migration lock); wait for it to finish and run restore again; nothing was changed"
    )]
    Locked { database: String },
    #[error(
        "{sessions} other session(s) are connected to database {database} (as {roles}): stop \
         every replica of the appliance first (systemctl stop mogothrow77 on each host, or scale \
         the Deployment to 0) and close other clients, then run restore again; nothing was changed"
    )]
    InUse {
        sessions: i64,
        database: String,
        roles: String,
    },
    #[error(
        "role {role} cannot drop and recreate the objects owned by {owners} in database \
         {database}: move objects that are not the appliance's out of its database, have your \
         DBA grant {role} the roles that own the appliance's (GRANT {owners} TO {role}), or \
         restore with your DBA's tools (/usr/share/doc/mogothrow77/upgrade.md.gz, section restoring-the-backup); nothing was \
         changed"
    )]
    Owners {
        role: String,
        owners: String,
        database: String,
    },
    #[error(
        "{count} prepared transaction(s) are open in database {database}: finish them first \
         (as your DBA: SELECT gid FROM pg_prepared_xacts, then COMMIT PREPARED or ROLLBACK \
         PREPARED each), then run restore again; nothing was changed"
    )]
    Prepared { count: i64, database: String },
    #[error(
        "the connection to PostgreSQL was lost before the restore's outcome was known \
         ({reason}): check the database (mogothrow77 migrate --check, the records) and restore \
         again if it is not the archive's state"
    )]
    Uncertain { reason: String },
    #[error("cannot run {program}: {reason}; nothing was changed")]
    Spawn { program: String, reason: String },
    #[error("the restore failed and was rolled back, the database is as it was: {reason}")]
    Failed { reason: String },
}

fn db_err(e: tokio_postgres::Error) -> RestoreError {
    RestoreError::Db(describe_pg_error(&e))
}

/// The appliance's schema (`records`) and every object in `public` that
/// is not part of an extension. The appliance's database is its own (see
/// docs/install.md), so this is everything a newer release may have added
/// since the backup; the archive recreates the rest.
const APPLIANCE_OBJECTS: &str = "
    SELECT n.nspowner AS owner,
           format('DROP SCHEMA IF EXISTS %I CASCADE', n.nspname) AS drop
      FROM pg_namespace n WHERE n.nspname = 'records'
    UNION ALL
    SELECT c.relowner,
           format('DROP %s IF EXISTS %I.%I CASCADE',
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                 WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                                 ELSE 'TABLE' END,
                  n.nspname, c.relname)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname IN ('public', 'records') AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'e')
       -- a serial or identity column's sequence goes with its table
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype IN ('a', 'i')
                          AND d.refclassid = 'pg_class'::regclass AND d.refobjsubid > 0)
    UNION ALL
    SELECT p.proowner,
           format('DROP ROUTINE IF EXISTS %I.%I(%s) CASCADE', n.nspname, p.proname,
                  pg_get_function_identity_arguments(p.oid))
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = 'public'
       -- an extension's routines, and a range type's constructors (its own)
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype IN ('e', 'i'))
    UNION ALL
    SELECT t.typowner, format('DROP TYPE IF EXISTS %I.%I CASCADE', n.nspname, t.typname)
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = 'public'
       AND (t.typtype IN ('e', 'd', 'r')
            OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c'))
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                          AND d.objid = t.oid AND d.deptype = 'e')";

/// Run by `psql` first inside the restore's transaction: the drops are
/// listed there, on the database as it is at that moment (all of them
/// before the first runs), with every name quoted by PostgreSQL (`%I`).
/// The schema goes first; `IF EXISTS` covers what a cascade already took.
fn drop_statement() -> String {
    format!(
        "DO $restore$\nDECLARE\n    statement text;\nBEGIN\n    FOREACH statement IN ARRAY \
         ARRAY(SELECT o.drop FROM ({APPLIANCE_OBJECTS}) o ORDER BY o.drop NOT LIKE 'DROP SCHEMA%') \
         LOOP\n        EXECUTE statement;\n    END LOOP;\nEND\n$restore$"
    )
}

/// The `application_name` of the restore's `psql` session.
const RESTORE_SESSION: &str = "mogothrow77-restore";

/// After a failed restore: ends the restore's session if it still runs
/// (killing `psql` ends its transaction only once PostgreSQL notices, which
/// can be after the statement running then, such as the drops, has
/// finished) and waits until it is gone, so the rollback is over when the
/// command reports it. Returns false if it was still there after a minute.
pub async fn settle(client: &tokio_postgres::Client) -> bool {
    for _ in 0..600 {
        let left = Sql::query_one(
            &client,
            "SELECT count(*) FROM ( \
                   SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                    WHERE datname = current_database() AND usename = current_user \
                      AND application_name = $1 AND pid <> pg_backend_pid()) t",
            &[&RESTORE_SESSION],
        )
        .await
        .map(|row| row.get::<_, i64>(0));
        match left {
            Ok(0) => return true,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            Err(_) => return false,
        }
    }
    false
}

/// What the restore was checked against before anything changed.
#[derive(Debug)]
pub struct Ready {
    pub database: String,
    /// The server's major version (15 for 15.8).
    pub server_major: u32,
}

/// The client programs to restore with, and the archive's contents as
/// they read it. `pg_restore` writes SQL for its own major version (from
/// 17 on it sets `transaction_timeout`, which older servers refuse), so the
/// server's major version is preferred when it is installed and can read
/// the archive (one written by a newer `pg_dump` needs a newer
/// `pg_restore`); otherwise `newest`.
pub fn client_for(
    server_major: u32,
    newest: PgBinaries,
    configured: Option<&Path>,
    archive: &Path,
) -> Result<(PgBinaries, Contents), RestoreError> {
    let (found, _) = managed::discover_clients(configured);
    let matched = found
        .into_iter()
        .filter(|b| b.major.parse::<u32>().ok() == Some(server_major))
        .find_map(|b| backup::list(&b, archive).ok().map(|list| (b, list)));
    let (binaries, list) = match matched {
        Some(found) => found,
        None => {
            let list = backup::list(&newest, archive).map_err(|e| RestoreError::Failed {
                reason: e.to_string(),
            })?;
            (newest, list)
        }
    };
    Ok((binaries, split_contents(&list)))
}

/// The checks that need the database, on the migration role's connection,
/// which then holds the migration lock until the restore is over (a
/// replica starting meanwhile cannot migrate under it).
pub async fn prepare(client: &tokio_postgres::Client) -> Result<Ready, RestoreError> {
    let row = Sql::query_one(
        &client,
        "SELECT current_database()::text, current_user::text, pg_try_advisory_lock($1), \
                    current_setting('server_version_num')::int",
        &[&MIGRATION_LOCK],
    )
    .await
    .map_err(db_err)?;
    let (database, role, locked, version): (String, String, bool, i32) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    if !locked {
        return Err(RestoreError::Locked { database });
    }
    // Other roles' sessions show no backend type to a role without
    // pg_read_all_stats; PostgreSQL's own workers show no user.
    let row = Sql::query_one(
        &client,
        "SELECT count(*), coalesce(string_agg(DISTINCT usename::text, ', '), '') \
               FROM pg_stat_activity \
              WHERE datname = current_database() AND pid <> pg_backend_pid() \
                AND usesysid IS NOT NULL \
                AND coalesce(backend_type, 'client backend') = 'client backend'",
        &[],
    )
    .await
    .map_err(db_err)?;
    let (sessions, roles): (i64, String) = (row.get(0), row.get(1));
    if sessions > 0 {
        return Err(RestoreError::InUse {
            sessions,
            database,
            roles,
        });
    }
    let prepared: i64 = Sql::query_one(
        &client,
        "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()",
        &[],
    )
    .await
    .map_err(db_err)?
    .get(0);
    if prepared > 0 {
        return Err(RestoreError::Prepared {
            count: prepared,
            database,
        });
    }
    // Dropping needs the owner's privileges (USAGE: membership that
    // inherits them); giving objects back to their owner needs, from
    // PostgreSQL 16 on, the right to SET ROLE to it.
    let can_act = if version >= 160000 {
        "pg_has_role(current_user, o.owner, 'USAGE') AND pg_has_role(current_user, o.owner, 'SET')"
    } else {
        "pg_has_role(current_user, o.owner, 'USAGE')"
    };
    let row = Sql::query_one(
        &client,
        &format!(
            "SELECT coalesce(string_agg(DISTINCT pg_get_userbyid(o.owner)::text, ', '), '') \
                   FROM ({APPLIANCE_OBJECTS}) o \
                  WHERE NOT ({can_act})"
        ),
        &[],
    )
    .await
    .map_err(db_err)?;
    let owners: String = row.get(0);
    if !owners.is_empty() {
        return Err(RestoreError::Owners {
            role,
            owners,
            database,
        });
    }
    Ok(Ready {
        database,
        server_major: u32::try_from(version / 10000).unwrap_or(0),
    })
}

/// Drops the appliance's objects and restores `archive` in one
/// transaction: `psql` reads `BEGIN`, the drops, the archive as SQL (from
/// `pg_restore`) and `COMMIT` from its input, which this function writes.
/// `COMMIT` is written only once both `pg_restore` runs finished well; if
/// anything fails first — or this process dies, closing `psql`'s input —
/// the transaction ends without it and PostgreSQL rolls everything back.
/// `env` is the migration role's libpq environment.
pub fn run(
    bin_dir: &Path,
    env: Vec<(&'static str, String)>,
    archive: &Path,
    parts: &Contents,
) -> Result<(), RestoreError> {
    let program = bin_dir.join("psql");
    let mut psql = Command::new(&program)
        .args(["--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1"])
        .args(["--no-password", "--file", "-"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env)
        // The drops cascade to many objects; one NOTICE each is noise.
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .env("PGAPPNAME", RESTORE_SESSION)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RestoreError::Spawn {
            program: program.display().to_string(),
            reason: e.to_string(),
        })?;
    let psql_errors = drain(&mut psql);
    let Some(mut to) = psql.stdin.take() else {
        abort(&mut psql);
        return Err(RestoreError::Failed {
            reason: "psql's input was not set up".to_string(),
        });
    };
    // A lock some other session still holds ends the restore instead of
    // making it wait for ever (the archive's SQL sets its own timeout).
    let begin = format!(
        "BEGIN;\nSET LOCAL lock_timeout = '30s';\n{};\n",
        drop_statement()
    );
    let mut written = to
        .write_all(begin.as_bytes())
        .map_err(|_| Script::PsqlStopped);
    for list in [&parts.schemas, &parts.rest] {
        if written.is_ok() {
            written = script(bin_dir, archive, list, &mut to);
        }
    }
    if let Err(failure) = written {
        // No COMMIT was written: killing psql ends the transaction.
        abort(&mut psql);
        drop(to);
        let reason = match failure {
            Script::Unreadable(reason) => reason,
            Script::PsqlStopped => joined(psql_errors),
        };
        return Err(RestoreError::Failed { reason });
    }
    let committing = to.write_all(b"COMMIT;\n");
    drop(to);
    let done = psql.wait().map_err(|e| RestoreError::Failed {
        reason: format!("psql: {e}"),
    })?;
    match (done.code(), committing) {
        (Some(0), Ok(())) => Ok(()),
        // psql's exit status 2: the connection to the server went bad.
        (Some(2), Ok(())) => Err(RestoreError::Uncertain {
            reason: joined(psql_errors),
        }),
        _ => Err(RestoreError::Failed {
            reason: format!("psql ({done}): {}", joined(psql_errors)),
        }),
    }
}

enum Script {
    /// `pg_restore` could not read (this part of) the archive.
    Unreadable(String),
    /// `psql` stopped reading: a statement failed (its message says which).
    PsqlStopped,
}

/// Writes the archive's entries in `list` as SQL into `to`.
fn script(bin_dir: &Path, archive: &Path, list: &str, to: &mut impl Write) -> Result<(), Script> {
    let program = bin_dir.join("pg_restore");
    let mut child = Command::new(&program)
        .args(["--file", "-", "--use-list", "/dev/stdin"])
        .arg(archive)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Script::Unreadable(format!("cannot run {}: {e}", program.display())))?;
    let errors = drain(&mut child);
    // The list is read whole before any output; written from a thread, so
    // a list larger than a pipe's buffer cannot block this one.
    let writer = child.stdin.take().map(|mut stdin| {
        let list = list.to_string();
        std::thread::spawn(move || {
            let _ = stdin.write_all(list.as_bytes());
        })
    });
    let copied = match child.stdout.take() {
        Some(mut from) => std::io::copy(&mut from, to).map(|_| ()),
        None => Ok(()),
    };
    // With its output closed, pg_restore ends even if psql stopped reading
    // (then by SIGPIPE, which says nothing about the archive).
    let status = child.wait();
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    match (copied, status) {
        (Err(e), _) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Script::PsqlStopped),
        (Err(e), _) => Err(Script::Unreadable(format!(
            "reading pg_restore's output: {e}"
        ))),
        (Ok(()), Ok(s)) if s.success() => Ok(()),
        (Ok(()), Ok(s)) => Err(Script::Unreadable(format!(
            "pg_restore could not read the archive ({s}): {}",
            joined(errors)
        ))),
        (Ok(()), Err(e)) => Err(Script::Unreadable(format!("pg_restore: {e}"))),
    }
}

/// An archive's table of contents in two parts, restored in this order in
/// the one transaction: the schemas with their grants, then everything
/// else. pg_restore grants last, but a table in `records` that belongs to
/// the application role can be given to it (`ALTER TABLE … OWNER TO`) by a
/// role that is not a superuser only once that role may create in the
/// schema.
#[derive(Debug, PartialEq, Eq)]
pub struct Contents {
    pub schemas: String,
    pub rest: String,
}

/// Splits a `pg_restore --list` into `SCHEMA - <name>` and
/// `ACL - SCHEMA <name>` entries and the rest. Entries look like
/// `8; 2615 16390 SCHEMA - records owner`; comments start with `;`.
pub fn split_contents(list: &str) -> Contents {
    let mut schemas = String::new();
    let mut rest = String::new();
    for line in list.lines() {
        let words: Vec<&str> = line.split_whitespace().skip(3).collect();
        let entry = !line.trim_start().starts_with(';') && !line.trim().is_empty();
        let schema = entry
            && (words.get(..2) == Some(&["SCHEMA", "-"][..])
                || words.get(..3) == Some(&["ACL", "-", "SCHEMA"][..]));
        let part = if schema { &mut schemas } else { &mut rest };
        part.push_str(line);
        part.push('\n');
    }
    Contents { schemas, rest }
}

fn abort(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads a child's standard error on a thread, so a chatty child never
/// blocks on a full pipe while its input is being written.
fn drain(child: &mut Child) -> Option<JoinHandle<String>> {
    let mut stderr = child.stderr.take()?;
    Some(std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    }))
}

fn joined(handle: Option<JoinHandle<String>>) -> String {
    let text = handle
        .and_then(|h| h.join().ok())
        .unwrap_or_default()
        .trim()
        .to_string();
    if text.is_empty() {
        "no message".to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::{split_contents, Contents};

    #[test]
    fn schemas_and_their_grants_come_first() {
        let list = "; Archive created at 2026-11-27\n\
                    5; 2615 2200 SCHEMA - public owner\n\
                    3677; 0 0 ACL - SCHEMA public owner\n\
                    6; 2615 16390 SCHEMA - records owner\n\
                    3678; 0 0 ACL - SCHEMA records owner\n\
                    220; 1259 16400 TABLE public users owner\n\
                    221; 1259 16500 TABLE records c_1 app\n\
                    ;4023; 0 0 ACL - SCHEMA other owner\n\
                    4022; 0 0 ACL public users owner\n";
        assert_eq!(
            split_contents(list),
            Contents {
                schemas: "5; 2615 2200 SCHEMA - public owner\n\
                          3677; 0 0 ACL - SCHEMA public owner\n\
                          6; 2615 16390 SCHEMA - records owner\n\
                          3678; 0 0 ACL - SCHEMA records owner\n"
                    .to_string(),
                rest: "; Archive created at 2026-11-27\n\
                       220; 1259 16400 TABLE public users owner\n\
                       221; 1259 16500 TABLE records c_1 app\n\
                       ;4023; 0 0 ACL - SCHEMA other owner\n\
                       4022; 0 0 ACL public users owner\n"
                    .to_string(),
            }
        );
    }
}
