//! Sign-in throttling shared by all replicas: failures are counted per
//! account name (whether or not the account exists, so the answer never
//! tells which names are real) and per client address; past a limit within
//! the window the key is locked for the lockout period.

use std::time::Duration;

use crate::db::Sql;

/// Limits from the `[auth]` settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub account_failures: i32,
    pub address_failures: i32,
    pub window: Duration,
    pub lockout: Duration,
}

/// Names longer than any valid username are cut (they still count);
/// control characters, which PostgreSQL text cannot hold, are replaced.
pub fn account_key(username: &str) -> String {
    format!(
        "account:{}",
        super::printable(&username.to_lowercase(), 128)
    )
}

pub fn address_key(addr: &str) -> String {
    format!("address:{addr}")
}

/// Seconds until every one of `keys` is unlocked again, or `None` when
/// none is locked.
pub async fn locked<C: Sql>(
    client: &C,
    keys: &[&str],
) -> Result<Option<u64>, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT ceil(extract(epoch FROM max(locked_until) - now()))::float8 \
             FROM login_throttle WHERE key = ANY($1) AND locked_until > now()",
            &[&keys],
        )
        .await?;
    let secs: Option<f64> = row.get(0);
    Ok(secs.map(|s| s.max(1.0) as u64))
}

/// Counts one failure for `key`; locks it when `limit` is reached within
/// the window.
pub async fn record_failure<C: Sql>(
    client: &C,
    key: &str,
    limit: i32,
    limits: Limits,
) -> Result<(), tokio_postgres::Error> {
    let window = limits.window.as_secs() as f64;
    let lockout = limits.lockout.as_secs() as f64;
    client
        .execute(
            "INSERT INTO login_throttle AS t (key, failures, window_started_at) \
             VALUES ($1, 1, now()) \
             ON CONFLICT (key) DO UPDATE SET \
               failures = CASE WHEN t.window_started_at < now() - make_interval(secs => $2) \
                               THEN 1 ELSE t.failures + 1 END, \
               window_started_at = CASE WHEN t.window_started_at < now() - make_interval(secs => $2) \
                               THEN now() ELSE t.window_started_at END",
            &[&key, &window],
        )
        .await?;
    client
        .execute(
            "UPDATE login_throttle SET locked_until = now() + make_interval(secs => $3), \
               failures = 0, window_started_at = now() \
             WHERE key = $1 AND failures >= $2",
            &[&key, &limit, &lockout],
        )
        .await?;
    Ok(())
}

/// Forgets the failures of `key` (after a successful sign-in).
pub async fn clear<C: Sql>(client: &C, key: &str) -> Result<(), tokio_postgres::Error> {
    client
        .execute("DELETE FROM login_throttle WHERE key = $1", &[&key])
        .await?;
    Ok(())
}
