//! The audit log: append-only, hash-chained, verifiable.
//!
//! Each entry's hash is SHA-256 over the previous entry's hash and the
//! entry's canonical form (a JSON array of its fields). Appends lock the one
//! `audit_chain_head` row, so entries are numbered without gaps in commit
//! order, and are written in the caller's transaction: an action and its
//! audit entry commit together or not at all.

use crate::db::Sql;
use ring::digest::{digest, SHA256};
use serde::Serialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio_postgres::Transaction;

/// Who acted, from where, in which request.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub actor_id: Option<i64>,
    /// Username, `system`, or for failed sign-ins the name that was tried.
    pub actor: String,
    pub client_addr: String,
    pub request_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// What happened. `action` names are stable (`user.create`, `auth.login`…)
/// and listed in docs/security.md.
#[derive(Debug, Clone)]
pub struct Event {
    pub action: &'static str,
    pub target: String,
    pub outcome: Outcome,
    pub details: Value,
}

impl Event {
    pub fn new(action: &'static str, target: impl Into<String>, outcome: Outcome) -> Event {
        Event {
            action,
            target: target.into(),
            outcome,
            details: json!({}),
        }
    }

    pub fn details(mut self, details: Value) -> Event {
        self.details = details;
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log database error: {0}")]
    Db(#[from] tokio_postgres::Error),
}

/// The hash of one entry given its predecessor's.
#[allow(clippy::too_many_arguments)]
fn entry_hash(
    prev_hash: &[u8],
    seq: i64,
    occurred_at: OffsetDateTime,
    actor_id: Option<i64>,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    client_addr: &str,
    request_id: &str,
    details: &str,
) -> Vec<u8> {
    let micros = (occurred_at.unix_timestamp_nanos() / 1000) as i64;
    let canonical = json!([
        seq,
        micros,
        actor_id,
        actor,
        action,
        target,
        outcome,
        client_addr,
        request_id,
        details
    ])
    .to_string();
    let mut input = Vec::with_capacity(prev_hash.len() + canonical.len());
    input.extend_from_slice(prev_hash);
    input.extend_from_slice(canonical.as_bytes());
    digest(&SHA256, &input).as_ref().to_vec()
}

/// Appends one entry in the caller's transaction; returns its number.
pub async fn append(tx: &Transaction<'_>, ctx: &Context, event: &Event) -> Result<i64, AuditError> {
    let started = std::time::Instant::now();
    let seq = append_entry(tx, ctx, event).await?;
    crate::metrics::Metrics::shared()
        .audit_append_duration
        .observe(started.elapsed().as_secs_f64());
    Ok(seq)
}

/// Now, to the microsecond: PostgreSQL keeps microseconds, and the hash
/// covers exactly what is stored.
fn stored_now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now)
}

/// The hash of `event` appended by `ctx` as entry `seq` after `prev_hash`.
fn event_hash(
    prev_hash: &[u8],
    seq: i64,
    occurred_at: OffsetDateTime,
    ctx: &Context,
    event: &Event,
    details: &str,
) -> Vec<u8> {
    entry_hash(
        prev_hash,
        seq,
        occurred_at,
        ctx.actor_id,
        &ctx.actor,
        event.action,
        &event.target,
        event.outcome.as_str(),
        &ctx.client_addr,
        &ctx.request_id,
        details,
    )
}

async fn append_entry(
    tx: &Transaction<'_>,
    ctx: &Context,
    event: &Event,
) -> Result<i64, AuditError> {
    let head = Sql::query_one(
        &tx,
        "SELECT seq, hash FROM audit_chain_head WHERE id FOR UPDATE",
        &[],
    )
    .await?;
    let prev_seq: i64 = head.get(0);
    let prev_hash: Vec<u8> = head.get(1);
    let seq = prev_seq + 1;
    let occurred_at = stored_now();
    let details = event.details.to_string();
    let hash = event_hash(&prev_hash, seq, occurred_at, ctx, event, &details);
    Sql::execute(
        &tx,
        "INSERT INTO audit_log (seq, occurred_at, actor_id, actor, action, target, outcome, \
         client_addr, request_id, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &seq,
            &occurred_at,
            &ctx.actor_id,
            &ctx.actor,
            &event.action,
            &event.target,
            &event.outcome.as_str(),
            &ctx.client_addr,
            &ctx.request_id,
            &details,
            &prev_hash,
            &hash,
        ],
    )
    .await?;
    Sql::execute(
        &tx,
        "UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id",
        &[&seq, &hash],
    )
    .await?;
    Ok(seq)
}

/// Appends several entries of one request, in order, in the caller's
/// transaction: the same chain as appending them one by one (each entry
/// hashed over its predecessor), with one lock of the head, one insert and
/// one head update instead of three statements each.
pub async fn append_many(
    tx: &Transaction<'_>,
    ctx: &Context,
    events: &[Event],
) -> Result<(), AuditError> {
    if events.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let head = Sql::query_one(
        &tx,
        "SELECT seq, hash FROM audit_chain_head WHERE id FOR UPDATE",
        &[],
    )
    .await?;
    let mut seq: i64 = head.get(0);
    let mut prev_hash: Vec<u8> = head.get(1);
    let occurred_at = stored_now();
    let mut seqs = Vec::with_capacity(events.len());
    let mut actions = Vec::with_capacity(events.len());
    let mut targets = Vec::with_capacity(events.len());
    let mut outcomes = Vec::with_capacity(events.len());
    let mut details = Vec::with_capacity(events.len());
    let mut prevs = Vec::with_capacity(events.len());
    let mut hashes: Vec<Vec<u8>> = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let text = event.details.to_string();
        let hash = event_hash(&prev_hash, seq, occurred_at, ctx, event, &text);
        seqs.push(seq);
        actions.push(event.action);
        targets.push(event.target.as_str());
        outcomes.push(event.outcome.as_str());
        details.push(text);
        prevs.push(std::mem::replace(&mut prev_hash, hash.clone()));
        hashes.push(hash);
    }
    Sql::execute(&tx,
        "INSERT INTO audit_log (seq, occurred_at, actor_id, actor, action, target, outcome, \
         client_addr, request_id, details, prev_hash, hash) \
         SELECT u.seq, $2::timestamptz, $3::bigint, $4::text, u.action, u.target, u.outcome, $8::text, \
                $9::text, u.details, u.prev, u.hash \
         FROM unnest($1::bigint[], $5::text[], $6::text[], $7::text[], $10::text[], $11::bytea[], \
                     $12::bytea[]) AS u(seq, action, target, outcome, details, prev, hash) \
         ORDER BY u.seq",
        &[
            &seqs,
            &occurred_at,
            &ctx.actor_id,
            &ctx.actor,
            &actions,
            &targets,
            &outcomes,
            &ctx.client_addr,
            &ctx.request_id,
            &details,
            &prevs,
            &hashes,
        ],
    )
    .await?;
    Sql::execute(
        &tx,
        "UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id",
        &[&seq, &prev_hash],
    )
    .await?;
    crate::metrics::Metrics::shared()
        .audit_append_duration
        .observe(started.elapsed().as_secs_f64());
    Ok(())
}

/// One break in the chain, naming the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The entry's contents no longer match its hash.
    Modified { seq: i64 },
    /// The entry does not link to its predecessor: the predecessor was
    /// replaced, or entries between them were removed.
    BrokenLink { seq: i64 },
    /// Entries with these numbers are missing.
    Missing { from: i64, to: i64 },
    /// The newest entries are gone: the head says the log ends later.
    Truncated { last_present: i64, head: i64 },
    /// Entries exist past the head: the head was moved back.
    HeadBehind { last_present: i64, head: i64 },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Modified { seq } => {
                write!(f, "entry {seq} was modified after it was written")
            }
            Problem::BrokenLink { seq } => write!(
                f,
                "entry {seq} does not link to the entry before it: that entry was replaced"
            ),
            Problem::Missing { from, to } if from == to => write!(f, "entry {from} was deleted"),
            Problem::Missing { from, to } => write!(f, "entries {from} to {to} were deleted"),
            Problem::Truncated { last_present, head } if last_present + 1 == *head => {
                write!(f, "entry {head} was deleted from the end of the log")
            }
            Problem::Truncated { last_present, head } => write!(
                f,
                "entries {} to {head} were deleted from the end of the log",
                last_present + 1
            ),
            Problem::HeadBehind { last_present, head } => write!(
                f,
                "the chain head names entry {head} as the newest, but entries up to {last_present} \
                 exist: the head was moved back"
            ),
        }
    }
}

#[derive(Debug)]
pub struct Verification {
    pub entries: i64,
    pub head_seq: i64,
    pub head_hash: String,
    pub problems: Vec<Problem>,
}

/// Walks the whole chain in order, in pages, and reports every break.
pub async fn verify(client: &tokio_postgres::Client) -> Result<Verification, AuditError> {
    let (head_seq, head_hash) = head(client).await?;
    walk(client, head_seq, head_hash, 0, Some(vec![0u8; 32])).await
}

/// Checks the newest `entries` entries (the part of the chain a server
/// re-checks on its own, often): each one's hash, its link to the one
/// before, and that the chain head names the newest. An entry older than
/// those is trusted as the anchor; `verify` checks everything.
pub async fn verify_tail(
    client: &tokio_postgres::Client,
    entries: i64,
) -> Result<Verification, AuditError> {
    let (head_seq, head_hash) = head(client).await?;
    let anchor = head_seq - entries;
    if anchor <= 0 {
        return walk(client, head_seq, head_hash, 0, Some(vec![0u8; 32])).await;
    }
    let anchor_hash: Option<Vec<u8>> = Sql::query_opt(
        &client,
        "SELECT hash FROM audit_log WHERE seq = $1",
        &[&anchor],
    )
    .await?
    .map(|row| row.get(0));
    // A deleted anchor shows as the gap before the first entry walked.
    let (after, prev) = match anchor_hash {
        Some(hash) => (anchor, Some(hash)),
        None => (anchor - 1, None),
    };
    walk(client, head_seq, head_hash, after, prev).await
}

async fn head(client: &tokio_postgres::Client) -> Result<(i64, Vec<u8>), AuditError> {
    let head = Sql::query_one(
        &client,
        "SELECT seq, hash FROM audit_chain_head WHERE id",
        &[],
    )
    .await?;
    Ok((head.get(0), head.get(1)))
}

/// Walks the entries after `after` in order, in pages. `prev_hash` is the
/// hash entry `after` has (`None`: unknown, the first link is not checked).
async fn walk(
    client: &tokio_postgres::Client,
    head_seq: i64,
    head_hash: Vec<u8>,
    mut after: i64,
    prev_hash: Option<Vec<u8>>,
) -> Result<Verification, AuditError> {
    let mut problems = Vec::new();
    let mut expected_seq = after + 1;
    let mut prev_hash = prev_hash;
    let mut entries = 0i64;
    loop {
        let rows = Sql::query(
            &client,
            "SELECT seq, occurred_at, actor_id, actor, action, target, outcome, client_addr, \
                 request_id, details, prev_hash, hash FROM audit_log WHERE seq > $1 \
                 ORDER BY seq LIMIT 5000",
            &[&after],
        )
        .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let seq: i64 = row.get(0);
            let stored_prev: Vec<u8> = row.get(10);
            let stored_hash: Vec<u8> = row.get(11);
            entries += 1;
            if seq != expected_seq {
                problems.push(Problem::Missing {
                    from: expected_seq,
                    to: seq - 1,
                });
            } else if prev_hash.as_ref().is_some_and(|p| *p != stored_prev) {
                problems.push(Problem::BrokenLink { seq });
            }
            let hash = entry_hash(
                &stored_prev,
                seq,
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                row.get(5),
                row.get(6),
                row.get(7),
                row.get(8),
                row.get(9),
            );
            if hash != stored_hash {
                problems.push(Problem::Modified { seq });
            }
            prev_hash = Some(stored_hash);
            expected_seq = seq + 1;
            after = seq;
        }
    }
    let last_present = expected_seq - 1;
    if last_present < head_seq {
        problems.push(Problem::Truncated {
            last_present,
            head: head_seq,
        });
    } else if last_present > head_seq {
        problems.push(Problem::HeadBehind {
            last_present,
            head: head_seq,
        });
    } else if last_present == head_seq
        && head_seq > 0
        && prev_hash.as_ref().is_some_and(|p| *p != head_hash)
    {
        problems.push(Problem::Modified { seq: head_seq });
    }
    Ok(Verification {
        entries,
        head_seq,
        head_hash: hex(&head_hash),
        problems,
    })
}

/// How many of the newest entries a server re-checks, and how often.
pub const WATCH_ENTRIES: i64 = 10_000;
pub const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Re-checks the newest [`WATCH_ENTRIES`] entries when the server starts
/// and every [`WATCH_EVERY`]: the problems found go to
/// `mogothrow77_audit_chain_problems` (0: intact) and, when there are any,
/// to the log as an error naming them.
pub async fn watch(pool: deadpool_postgres::Pool) {
    let metrics = crate::metrics::Metrics::shared();
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let checked = async {
            let client = pool
                .get()
                .await
                .map_err(|e| crate::db::describe_pool_error(&e))?;
            verify_tail(&client, WATCH_ENTRIES)
                .await
                .map_err(|AuditError::Db(e)| crate::db::describe_pg_error(&e))
        }
        .await;
        match checked {
            Ok(v) => {
                metrics.audit_chain_problems.set(v.problems.len() as i64);
                metrics
                    .audit_chain_checked
                    .set(time::OffsetDateTime::now_utc().unix_timestamp());
                if !v.problems.is_empty() {
                    let problems: Vec<String> = v.problems.iter().map(|p| p.to_string()).collect();
                    tracing::error!(
                        ?problems,
                        head = v.head_seq,
                        "the audit log's hash chain is broken: entries were changed or deleted \
                         outside the appliance; run `mogothrow77 audit verify` and see \
                         docs/runbooks/audit-log-tampered.md"
                    );
                }
            }
            Err(reason) => {
                tracing::warn!(%reason, "cannot check the audit log's hash chain; trying again later")
            }
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(prev: &[u8], actor: &str) -> Vec<u8> {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        entry_hash(
            prev,
            7,
            at,
            Some(3),
            actor,
            "user.create",
            "user:4",
            "success",
            "10.0.0.1",
            "req-1",
            "{}",
        )
    }

    #[test]
    fn the_hash_covers_the_fields_and_the_previous_hash() {
        let zero = [0u8; 32];
        let a = sample(&zero, "alice");
        assert_eq!(a.len(), 32);
        assert_eq!(a, sample(&zero, "alice"));
        assert_ne!(a, sample(&zero, "alicf"));
        assert_ne!(a, sample(&[1u8; 32], "alice"));
    }

    #[test]
    fn problems_name_the_entry() {
        assert_eq!(
            Problem::Modified { seq: 4 }.to_string(),
            "entry 4 was modified after it was written"
        );
        assert_eq!(
            Problem::Missing { from: 3, to: 3 }.to_string(),
            "entry 3 was deleted"
        );
        assert_eq!(
            Problem::Truncated {
                last_present: 5,
                head: 7
            }
            .to_string(),
            "entries 6 to 7 were deleted from the end of the log"
        );
    }
}
