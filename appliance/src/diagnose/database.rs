//! The database's side, through the application role: reachable, version
//! and size, the connection budget, timeouts, schema, clock, job queue,
//! cache notifications, the last backup and the audit chain's tail. A
//! stopped managed cluster is reported, never started.

use crate::db::Sql;
use std::time::{Duration, SystemTime};

use tokio_postgres::Client;

use super::{Check, Runbooks};
use crate::config::{DatabaseTarget, Settings};
use crate::db::{backup, describe_pg_error, migrate};
use crate::startup::{self, Purpose};

/// The audit entries re-hashed (the newest; `audit verify` walks them all).
const AUDIT_TAIL: i64 = 1000;
/// Clock skew against the database that warns, and that fails (sessions,
/// lockouts and TOTP codes are timed by both clocks).
const SKEW_WARN: Duration = Duration::from_secs(2);
const SKEW_FAIL: Duration = Duration::from_secs(30);
/// A queued job waiting longer than this warns (`Mogothrow77JobBacklog`).
const BACKLOG_WARN_SECS: f64 = 900.0;
/// The newest backup older than this warns (a daily backup and slack).
const BACKUP_WARN_AGE: Duration = Duration::from_secs(26 * 3600);

const UNREACHABLE: &str = "runbooks/database-unreachable.md";

pub async fn checks(settings: &Settings, runbooks: &Runbooks) -> Vec<Check> {
    let skipped = |why: &'static str| {
        [
            "PostgreSQL",
            "connection budget",
            "database timeouts",
            "schema",
            "clock skew",
            "job queue",
            "cache notifications",
            "last backup",
            super::backups::NAME,
            super::backups::DRILL_NAME,
            super::pitr::NAME,
            super::secrets::NAME,
            "audit chain",
            "audit forwarding",
        ]
        .into_iter()
        .map(move |name| Check::skip(name, format!("needs the database ({why})")))
    };
    let mut checks = Vec::new();
    let (database, client) = match reach(settings).await {
        Reach::Open(database, client) => (database, client),
        Reach::NotRunning => {
            checks.push(Check::fail(
                "database",
                "managed cluster not running (it runs while the service runs)",
                runbooks.fix(
                    "start the service: systemctl start mogothrow77",
                    UNREACHABLE,
                ),
            ));
            checks.extend(skipped("not running"));
            return checks;
        }
        Reach::Unreachable(reason) => {
            checks.push(Check::fail(
                "database",
                reason,
                runbooks.fix(
                    "check database.url (or the managed cluster's log under state_dir), the \
                     network and the credentials",
                    UNREACHABLE,
                ),
            ));
            checks.extend(skipped("unreachable"));
            return checks;
        }
    };
    checks.push(Check::pass("database", describe_target(settings)));
    checks.push(server(&client, runbooks).await);
    checks.push(budget(&client, settings, runbooks).await);
    checks.push(timeouts(&client, settings, runbooks).await);
    checks.push(schema(&client, settings, runbooks).await);
    checks.push(clock(&client, runbooks).await);
    checks.push(queue(&client, runbooks).await);
    checks.push(notifications(&database.connections, runbooks).await);
    checks.push(last_backup(&client, runbooks).await);
    checks.push(super::backups::check(&client, settings, runbooks).await);
    checks.push(super::backups::drill(&client, runbooks).await);
    checks.push(super::pitr::check(&client, settings, database.pitr.as_ref(), runbooks).await);
    checks.push(super::secrets::check(&client, settings, runbooks).await);
    checks.push(audit_chain(&client, runbooks).await);
    checks.push(forwarding(&client, settings, runbooks).await);
    drop(client);
    database.close().await;
    checks
}

/// The database for a look that changes nothing.
pub enum Reach {
    /// Open, with an application-role connection.
    Open(Box<startup::Database>, Client),
    /// Managed, and the cluster is not running: it is not started.
    NotRunning,
    Unreachable(String),
}

/// Opens the database as `check` does, except that a managed cluster whose
/// socket is absent is reported as not running before anything is touched.
pub async fn reach(settings: &Settings) -> Reach {
    if let DatabaseTarget::Managed { .. } = settings.database {
        let socket = crate::db::managed::Layout::new(&settings.config.state_dir)
            .map(|layout| layout.socket.exists());
        if !matches!(socket, Ok(true)) {
            return Reach::NotRunning;
        }
    }
    let opened = async {
        let database = startup::open_database(settings, Purpose::Check).await?;
        match database.connections.connect_app().await {
            Ok(client) => Ok((database, client)),
            Err(e) => {
                database.close().await;
                Err(startup::StartError::from(e))
            }
        }
    }
    .await;
    match opened {
        Ok((database, client)) => Reach::Open(Box::new(database), client),
        Err(e) => Reach::Unreachable(e.to_string()),
    }
}

fn describe_target(settings: &Settings) -> String {
    match &settings.database {
        DatabaseTarget::Managed { .. } => format!(
            "managed cluster in {} is running; reachable as the application role",
            crate::db::managed::data_dir(&settings.config.state_dir).display()
        ),
        DatabaseTarget::External { .. } => {
            "database.url reachable as the application role".to_string()
        }
    }
}

/// A query failed: the check fails with PostgreSQL's message.
fn failed(name: &str, e: &tokio_postgres::Error, runbooks: &Runbooks) -> Check {
    Check::fail(
        name,
        describe_pg_error(e),
        runbooks.fix(
            "the database answered with an error: see its log",
            UNREACHABLE,
        ),
    )
}

async fn server(client: &Client, runbooks: &Runbooks) -> Check {
    const NAME: &str = "PostgreSQL";
    let row = match Sql::query_one(
        &client,
        "SELECT current_setting('server_version'), current_database(), current_user, \
                    pg_database_size(current_database())",
        &[],
    )
    .await
    {
        Ok(row) => row,
        Err(e) => return failed(NAME, &e, runbooks),
    };
    let (version, database, role, size): (String, String, String, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let value = format!(
        "version {version}, database {database} ({:.1} MB) as role {role}",
        size as f64 / 1e6
    );
    match crate::db::check_server_version(client).await {
        Ok(()) => Check::pass(NAME, value),
        Err(e) => Check::fail(
            NAME,
            format!("{value}: {e}"),
            runbooks.fix("upgrade PostgreSQL", "runbooks/postgresql-major-upgrade.md"),
        ),
    }
}

/// External: `max_connections` against the documented budget for the
/// replicas running now (each holds one `LISTEN` connection) plus the one a
/// rolling upgrade adds. Managed: the cluster is sized from the pool.
async fn budget(client: &Client, settings: &Settings, runbooks: &Runbooks) -> Check {
    const NAME: &str = "connection budget";
    let row = match Sql::query_one(
        &client,
        "SELECT current_setting('max_connections')::int, \
                    current_setting('superuser_reserved_connections')::int, \
                    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), \
                    (SELECT count(*) FROM pg_stat_activity \
                      WHERE application_name = $1 AND datname = current_database())",
        &[&crate::listen::LISTENER_APPLICATION_NAME],
    )
    .await
    {
        Ok(row) => row,
        Err(e) => return failed(NAME, &e, runbooks),
    };
    let (max, reserved, in_use, replicas): (i32, i32, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let pool = settings.config.database.pool_size as i64;
    let observed = format!(
        "max_connections {max} ({reserved} reserved for superusers), {in_use} in use, \
         {replicas} replica(s) running"
    );
    if let DatabaseTarget::Managed { .. } = settings.database {
        return Check::pass(
            NAME,
            format!("{observed}; the managed cluster is sized for this server's pool of {pool}"),
        );
    }
    let counted = replicas.max(1);
    // One more per replica for each audit forwarding destination.
    let per_replica = pool + 3 + settings.audit.sinks().len() as i64;
    let needed = (counted + 1) * per_replica + i64::from(reserved);
    let value = format!(
        "{observed}; ({counted} + 1) × {per_replica} per replica (pool_size {pool} + 3{}) + \
         {reserved} = {needed} needed",
        match settings.audit.sinks().len() {
            0 => String::new(),
            n => format!(" + {n} audit forwarding"),
        }
    );
    if i64::from(max) < needed {
        Check::warn(
            NAME,
            value,
            runbooks.fix(
                &format!(
                    "raise max_connections to at least {needed} plus your other clients, or lower \
                     database.pool_size"
                ),
                "high-availability.md#connection-budget",
            ),
        )
    } else {
        Check::pass(NAME, value)
    }
}

async fn timeouts(client: &Client, settings: &Settings, runbooks: &Runbooks) -> Check {
    const NAME: &str = "database timeouts";
    let row = match Sql::query_one(
        &client,
        "SELECT current_setting('statement_timeout'), \
                    coalesce(current_setting('idle_session_timeout', true), '0')",
        &[],
    )
    .await
    {
        Ok(row) => row,
        Err(e) => return failed(NAME, &e, runbooks),
    };
    let (statement, idle): (String, String) = (row.get(0), row.get(1));
    let value = format!(
        "API queries stop after api.query_timeout_ms = {} ms; the role's defaults: \
         statement_timeout {statement}, idle_session_timeout {idle}",
        settings.config.api.query_timeout_ms
    );
    if idle != "0" {
        return Check::warn(
            NAME,
            value,
            runbooks.fix(
                "idle_session_timeout closes the pool's idle connections and the cache listener \
                 (it reconnects, caches off meanwhile): set it to 0 for the application role \
                 (ALTER ROLE … SET idle_session_timeout = 0)",
                "operations.md#external-postgresql-setup-for-the-dba",
            ),
        );
    }
    Check::pass(NAME, value)
}

async fn schema(client: &Client, settings: &Settings, runbooks: &Runbooks) -> Check {
    const NAME: &str = "schema";
    let status = match migrate::status(client).await {
        Ok(status) => status,
        Err(e) => {
            return Check::fail(
                NAME,
                e.to_string(),
                runbooks.fix("see the database's log", UNREACHABLE),
            )
        }
    };
    let value = format!(
        "{} migration(s) applied, {} pending; this binary's level {}",
        status.applied.len(),
        status.pending.len(),
        status.binary_level
    );
    if let Err(e) = status.check_runnable() {
        return Check::fail(
            NAME,
            format!("{value}: {e}"),
            runbooks.fix(
                "run the binary of the release that migrated the database (mogothrow77-upgrade \
                 status names it)",
                "upgrade.md",
            ),
        );
    }
    match (status.pending.len(), settings.config.database.auto_migrate) {
        (0, _) => Check::pass(NAME, value),
        (_, true) => Check::warn(
            NAME,
            value,
            runbooks.fix(
                "the next start applies them (database.auto_migrate); rehearse first with \
                 `mogothrow77 migrate --rehearse`",
                "upgrade.md",
            ),
        ),
        (_, false) => Check::fail(
            NAME,
            format!("{value}; with database.auto_migrate off the server refuses to start"),
            runbooks.fix("run `mogothrow77 migrate`", "upgrade.md"),
        ),
    }
}

/// This host's clock against the database's, within half a round trip.
async fn clock(client: &Client, runbooks: &Runbooks) -> Check {
    const NAME: &str = "clock skew";
    let before = SystemTime::now();
    let row = match Sql::query_one(&client, "SELECT clock_timestamp()", &[]).await {
        Ok(row) => row,
        Err(e) => return failed(NAME, &e, runbooks),
    };
    let after = SystemTime::now();
    let theirs: SystemTime = row.get(0);
    let round_trip = after.duration_since(before).unwrap_or_default();
    let ours = before + round_trip / 2;
    let (skew, ahead) = match theirs.duration_since(ours) {
        Ok(d) => (d, "ahead of"),
        Err(e) => (e.duration(), "behind"),
    };
    let value = format!(
        "the database's clock is {:.3} s {ahead} this host's (± {:.3} s)",
        skew.as_secs_f64(),
        round_trip.as_secs_f64() / 2.0
    );
    let fix = || {
        runbooks.fix(
            "synchronise both hosts with NTP (timedatectl set-ntp true): sign-in codes, session \
             expiry and lockouts are timed by both clocks",
            "operations.md#systemd",
        )
    };
    let margin = round_trip / 2;
    if skew > SKEW_FAIL + margin {
        Check::fail(NAME, value, fix())
    } else if skew > SKEW_WARN + margin {
        Check::warn(NAME, value, fix())
    } else {
        Check::pass(NAME, value)
    }
}

async fn queue(client: &Client, runbooks: &Runbooks) -> Check {
    const NAME: &str = "job queue";
    let depth = match crate::queue::depth(client).await {
        Ok(depth) => depth,
        Err(e) => return failed(NAME, &e, runbooks),
    };
    let value = format!(
        "{} due (oldest waiting {:.0} s), {} running, {} dead",
        depth.due, depth.oldest_due_secs, depth.running, depth.dead
    );
    if depth.oldest_due_secs > BACKLOG_WARN_SECS {
        return Check::warn(
            NAME,
            value,
            runbooks.fix(
                "jobs wait for a worker: check that a server runs, and jobs.workers",
                "runbooks/alerts.md#mogothrow77jobbacklog",
            ),
        );
    }
    if depth.dead > 0 {
        return Check::warn(
            NAME,
            value,
            runbooks.fix(
                "jobs failed every attempt: read their errors on the console's Jobs page, fix \
                 the cause, then retry them",
                "runbooks/alerts.md#mogothrow77deadlettersgrowing",
            ),
        );
    }
    Check::pass(NAME, value)
}

async fn notifications(connections: &crate::db::Connections, runbooks: &Runbooks) -> Check {
    const NAME: &str = "cache notifications";
    match crate::listen::check_delivery(connections, connections.connect_timeout).await {
        Ok(()) => Check::pass(
            NAME,
            "a notification sent through database.url was heard on a second connection",
        ),
        Err(e) => Check::fail(
            NAME,
            e.to_string(),
            runbooks.fix(
                "the servers' caches cannot be kept fresh: connect to PostgreSQL directly or \
                 through a session-mode pooler",
                "runbooks/alerts.md#mogothrow77cachelistenerdisconnected",
            ),
        ),
    }
}

async fn last_backup(client: &Client, runbooks: &Runbooks) -> Check {
    const NAME: &str = "last backup";
    let fix = |what: &str| {
        runbooks.fix(
            &format!("{what}: `mogothrow77 backup --out FILE --test-restore`, daily (a timer)"),
            "operations.md#backups",
        )
    };
    let last = match backup::last(client).await {
        Ok(last) => last,
        Err(e) => return failed(NAME, &e, runbooks),
    };
    let Some(last) = last else {
        return Check::warn(NAME, "no backup recorded", fix("take one"));
    };
    let age = SystemTime::now()
        .duration_since(last.finished_at)
        .unwrap_or_default();
    let value = format!(
        "{:.1} hours ago on {}: {} ({:.1} MB{})",
        age.as_secs_f64() / 3600.0,
        last.host,
        last.archive,
        last.bytes as f64 / 1e6,
        if last.test_restored {
            ", test-restored"
        } else {
            ""
        }
    );
    if age > BACKUP_WARN_AGE {
        Check::warn(NAME, value, fix("take backups more often"))
    } else {
        Check::pass(NAME, value)
    }
}

async fn audit_chain(client: &Client, runbooks: &Runbooks) -> Check {
    const NAME: &str = "audit chain";
    match crate::audit::verify_tail(client, AUDIT_TAIL).await {
        Ok(report) if report.problems.is_empty() => Check::pass(
            NAME,
            format!(
                "the newest {} entries verify; head is entry {}",
                report.entries, report.head_seq
            ),
        ),
        Ok(report) => Check::fail(
            NAME,
            format!(
                "{} problem(s) in the newest {} entries: {}",
                report.problems.len(),
                report.entries,
                report
                    .problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            runbooks.fix(
                "the audit log was changed outside the appliance: run `mogothrow77 audit verify`",
                "runbooks/audit-log-tampered.md",
            ),
        ),
        Err(e) => Check::fail(
            NAME,
            e.to_string(),
            runbooks.fix("see the database's log", UNREACHABLE),
        ),
    }
}

/// How far each `[audit]` destination is behind the audit log.
async fn forwarding(client: &Client, settings: &Settings, runbooks: &Runbooks) -> Check {
    const NAME: &str = "audit forwarding";
    /// A destination that has not moved for this long while behind warns.
    const STUCK_SECS: f64 = 300.0;
    let sinks = settings.audit.sinks();
    if sinks.is_empty() {
        return Check::skip(NAME, "no destination configured ([audit])");
    }
    let (head, positions) = match crate::forwarding::positions(client).await {
        Ok(p) => p,
        Err(e) => return failed(NAME, &e, runbooks),
    };
    let mut parts = Vec::new();
    let mut stuck = Vec::new();
    for sink in sinks {
        match positions.iter().find(|(name, _, _)| name == sink) {
            Some((_, seq, age)) => {
                let behind = head - seq;
                parts.push(format!(
                    "{sink}: {behind} entries behind (moved {age:.0} s ago)"
                ));
                if behind > 0 && *age > STUCK_SECS {
                    stuck.push(sink);
                }
            }
            None => {
                parts.push(format!("{sink}: not started ({head} entries to send)"));
                if head > 0 {
                    stuck.push(sink);
                }
            }
        }
    }
    let value = parts.join("; ");
    if stuck.is_empty() {
        Check::pass(NAME, value)
    } else {
        Check::warn(
            NAME,
            value,
            runbooks.fix(
                &format!(
                    "{} is not receiving: check the destination (address, TLS, disk) and the \
                     server log's `audit forwarding failed` lines; it resumes where it stopped",
                    stuck.join(", ")
                ),
                "operations.md#audit-forwarding",
            ),
        )
    }
}
