//! Audit forwarding (`[audit]`): every audit entry, in order and at least
//! once, to each configured destination — a SIEM over syslog/TLS, a
//! JSON-lines file, the journal. Per destination one task on every
//! replica; the one holding the destination's advisory lock forwards (a
//! replica that dies releases it with its connection). The newest entry a
//! destination confirmed is kept in `audit_forward_cursors`, so after an
//! outage — the receiver's or ours — forwarding resumes after it.
//!
//! Confirmed means: written to the file and synced; logged; or, for syslog
//! (which has no acknowledgements), sent on a connection that was still
//! open a second later. Entries sent on a connection the receiver closed
//! are sent again, so a receiver may see an entry twice, never miss one.

mod syslog;

use crate::db::Sql;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::config::AuditForwarding;
use crate::db::Connections;
use crate::metrics::{Metrics, SinkLabels};

/// Entries read and sent at once.
const BATCH: i64 = 500;
/// How often a caught-up forwarder looks for new entries.
const POLL: Duration = Duration::from_secs(1);
/// How long a syslog connection must stay open after a send before what
/// was sent on it counts as received.
const CONFIRM_AFTER: Duration = Duration::from_secs(1);

/// One audit entry as it leaves the appliance.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: i64,
    /// RFC 3339, UTC.
    pub occurred_at: String,
    pub actor_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub client_addr: String,
    pub request_id: String,
    /// JSON text.
    pub details: String,
    /// The entry's hash in the chain (hex), so a SIEM can check it.
    pub hash: String,
}

impl Entry {
    pub fn json(&self) -> String {
        let details: serde_json::Value =
            serde_json::from_str(&self.details).unwrap_or(serde_json::Value::Null);
        serde_json::json!({
            "seq": self.seq,
            "occurred_at": self.occurred_at,
            "actor_id": self.actor_id,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "client_addr": self.client_addr,
            "request_id": self.request_id,
            "details": details,
            "hash": self.hash,
        })
        .to_string()
    }
}

/// Starts one forwarding task per configured destination.
pub fn spawn(forwarding: &AuditForwarding, connections: &Connections, metrics: Arc<Metrics>) {
    let mut sinks: Vec<Sink> = Vec::new();
    if let Some(target) = &forwarding.syslog {
        match syslog::Syslog::new(target.clone()) {
            Ok(s) => sinks.push(Sink::Syslog(Box::new(s))),
            Err(e) => tracing::error!(error = %e, "audit forwarding to syslog cannot start"),
        }
    }
    if let Some(path) = &forwarding.file {
        sinks.push(Sink::File(path.clone()));
    }
    if forwarding.journal {
        sinks.push(Sink::Journal);
    }
    for sink in sinks {
        let (connections, metrics) = (connections.clone(), metrics.clone());
        let _ = metrics
            .audit_forward_failures
            .get_or_create(&SinkLabels { sink: sink.name() });
        tokio::spawn(run(sink, connections, metrics));
    }
}

enum Sink {
    Syslog(Box<syslog::Syslog>),
    File(std::path::PathBuf),
    Journal,
}

impl Sink {
    fn name(&self) -> &'static str {
        match self {
            Sink::Syslog(_) => "syslog",
            Sink::File(_) => "file",
            Sink::Journal => "journal",
        }
    }
}

/// Forever: take the destination's lock, forward while holding it; after
/// a failure wait (1 s, doubling to 30 s) and go on from the cursor.
async fn run(mut sink: Sink, connections: Connections, metrics: Arc<Metrics>) {
    let labels = SinkLabels { sink: sink.name() };
    let mut backoff = Duration::from_secs(1);
    loop {
        match forward(&mut sink, &connections, &metrics, &mut backoff).await {
            Ok(never) => match never {},
            Err(e) => {
                metrics.audit_forward_failures.get_or_create(&labels).inc();
                tracing::warn!(sink = labels.sink, error = %e, retry_in_s = backoff.as_secs(), "audit forwarding failed; it resumes from the last confirmed entry");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Waits for the destination's lock (another replica may feed it), then
/// forwards until something fails.
async fn forward(
    sink: &mut Sink,
    connections: &Connections,
    metrics: &Metrics,
    backoff: &mut Duration,
) -> Result<std::convert::Infallible, String> {
    let name = sink.name();
    let db =
        |e: tokio_postgres::Error| format!("the database: {}", crate::db::describe_pg_error(&e));
    let client = connections.connect_app().await.map_err(|e| e.to_string())?;
    // Wait on this connection until the destination is ours.
    loop {
        let locked: bool = Sql::query_one(
            &client,
            "SELECT pg_try_advisory_lock(hashtext('mogothrow77.audit_forward.' || $1))",
            &[&name],
        )
        .await
        .map_err(db)?
        .get(0);
        if locked {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    Sql::execute(
        &client,
        "INSERT INTO audit_forward_cursors (sink) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&name],
    )
    .await
    .map_err(db)?;
    let mut confirmed: i64 = Sql::query_one(
        &client,
        "SELECT seq FROM audit_forward_cursors WHERE sink = $1",
        &[&name],
    )
    .await
    .map_err(db)?
    .get(0);
    let mut sent = confirmed;
    let mut sent_at = Instant::now();
    let labels = SinkLabels { sink: name };
    loop {
        // What was sent is confirmed once it can be taken as received.
        if sent > confirmed {
            let received = match sink {
                Sink::Syslog(s) => {
                    if s.still_open().await {
                        sent_at.elapsed() >= CONFIRM_AFTER
                    } else {
                        let lost = sent - confirmed;
                        return Err(format!(
                            "the receiver closed the connection; the last {lost} entries are sent again"
                        ));
                    }
                }
                Sink::File(_) | Sink::Journal => true,
            };
            if received {
                confirm(&client, name, sent).await.map_err(db)?;
                confirmed = sent;
                // Working again: the next failure starts over at 1 s.
                *backoff = Duration::from_secs(1);
            }
        }
        let head: i64 = Sql::query_one(&client, "SELECT seq FROM audit_chain_head WHERE id", &[])
            .await
            .map_err(db)?
            .get(0);
        metrics
            .audit_forward_lag
            .get_or_create(&labels)
            .set(head - confirmed);
        let entries = read(&client, sent).await.map_err(db)?;
        let Some(last) = entries.last().map(|e| e.seq) else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        match sink {
            Sink::Syslog(s) => s.send(&entries).await?,
            Sink::File(path) => append(path, &entries).await?,
            Sink::Journal => {
                for e in &entries {
                    tracing::info!(target: "audit", seq = e.seq, entry = %e.json(), "audit entry");
                }
            }
        }
        sent = last;
        sent_at = Instant::now();
    }
}

async fn confirm(client: &Client, sink: &str, seq: i64) -> Result<(), tokio_postgres::Error> {
    Sql::execute(
        &client,
        "UPDATE audit_forward_cursors SET seq = $2, updated_at = now() WHERE sink = $1",
        &[&sink, &seq],
    )
    .await
    .map(|_| ())
}

async fn read(client: &Client, after: i64) -> Result<Vec<Entry>, tokio_postgres::Error> {
    let rows = Sql::query(
        &client,
        "SELECT seq, occurred_at, actor_id, actor, action, target, outcome, client_addr, \
                    request_id, details, hash \
             FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        &[&after, &BATCH],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let at: time::OffsetDateTime = r.get(1);
            Entry {
                seq: r.get(0),
                occurred_at: at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                actor_id: r.get(2),
                actor: r.get(3),
                action: r.get(4),
                target: r.get(5),
                outcome: r.get(6),
                client_addr: r.get(7),
                request_id: r.get(8),
                details: r.get(9),
                hash: crate::audit::hex(r.get::<_, &[u8]>(10)),
            }
        })
        .collect())
}

/// Appends the entries as JSON lines and syncs the file.
async fn append(path: &std::path::Path, entries: &[Entry]) -> Result<(), String> {
    let mut text = String::new();
    for e in entries {
        text.push_str(&e.json());
        text.push('\n');
    }
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        file.write_all(text.as_bytes())?;
        file.sync_data()
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("appending to audit.file: {e}"))
}

/// Each destination's position: (sink, confirmed seq, seconds since it
/// moved), for `diagnose`.
pub async fn positions<C: crate::db::Sql>(
    client: &C,
) -> Result<(i64, Vec<(String, i64, f64)>), tokio_postgres::Error> {
    let head: i64 = client
        .query_one("SELECT seq FROM audit_chain_head WHERE id", &[])
        .await?
        .get(0);
    let rows = client
        .query(
            "SELECT sink, seq, extract(epoch FROM now() - updated_at)::float8 \
             FROM audit_forward_cursors ORDER BY sink",
            &[],
        )
        .await?;
    Ok((
        head,
        rows.iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect(),
    ))
}
