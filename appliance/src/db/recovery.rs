//! A cluster restored by pgBackRest, started to replay its WAL up to the
//! recovery target and promoted: the live cluster after `restore
//! --to-time`, or a scratch copy for a drill. Unlike [`ManagedPostgres::start`]
//! nothing is created in it, and it is not supervised: the caller reads
//! what it needs and stops it.

use super::Sql;
use std::time::{Duration, Instant};

use tokio::process::Child;

use super::describe_pg_error;
use super::managed::{self, ManagedError, ManagedPostgres};

/// A cluster that finished its recovery and runs until [`Recovered::stop`].
pub struct Recovered {
    child: Child,
}

impl Recovered {
    /// Fast shutdown; waits for it.
    pub async fn stop(mut self) {
        managed::shutdown_child(&mut self.child).await;
    }
}

/// Starts the cluster in `pg` and waits until its recovery has ended (it
/// promoted at the target) or `limit` has passed. A cluster that stops
/// on its way (e.g. "recovery ended before configured recovery target was
/// reached") is reported with PostgreSQL's own reason.
pub async fn recover(pg: &ManagedPostgres, limit: Duration) -> Result<Recovered, ManagedError> {
    let mut child = managed::spawn(pg)?;
    let config = pg.connection(pg.os_user(), "postgres");
    let deadline = Instant::now() + limit;
    let mut last = String::from("not yet accepting connections");
    loop {
        let exited = child
            .try_wait()
            .map_err(|e| ManagedError::Start(e.to_string()))?;
        if let Some(status) = exited {
            let why = pg
                .last_fatal
                .lock()
                .ok()
                .and_then(|l| l.clone())
                .unwrap_or_else(|| "its log lines say why".to_string());
            return Err(ManagedError::Start(format!(
                "the restored cluster stopped during its recovery ({status}): {why}"
            )));
        }
        if Instant::now() > deadline {
            managed::shutdown_child(&mut child).await;
            return Err(ManagedError::Start(format!(
                "the restored cluster had not finished its recovery after {} s ({last})",
                limit.as_secs()
            )));
        }
        match managed::connect_socket(&config).await {
            Ok(client) => match Sql::query_one(&client, "SELECT pg_is_in_recovery()", &[]).await {
                Ok(row) if !row.get::<_, bool>(0) => return Ok(Recovered { child }),
                Ok(_) => last = "still replaying WAL".to_string(),
                Err(e) => last = describe_pg_error(&e),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
