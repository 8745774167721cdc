//! Browser sessions: a random id in a `__Host-` cookie, only its digest in
//! PostgreSQL, idle and absolute expiry, revocation per session or per user.

use std::time::Duration;

use crate::db::{Cached, Sql};

use crate::authz::{Credential, Principal, Role};

use super::keys::ServerKeys;

/// `__Host-` pins the cookie to this host, path `/` and HTTPS.
pub const COOKIE: &str = "__Host-mogothrow77_session";

/// Session lifetimes (from the `[auth]` settings).
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub idle: Duration,
    pub absolute: Duration,
}

/// A session just created: the cookie value (shown once, never stored).
pub struct NewSession {
    pub id: String,
    pub digest: Vec<u8>,
}

impl NewSession {
    /// The `Set-Cookie` value. The browser keeps it for the absolute
    /// lifetime at most; the server enforces both limits regardless.
    pub fn cookie(&self, lifetimes: Lifetimes) -> String {
        format!(
            "{COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
            self.id,
            lifetimes.absolute.as_secs()
        )
    }
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clearing_cookie() -> String {
    format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session id from a `Cookie` header, if present.
pub fn from_cookie_header(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// Starts a session for `user_id`.
pub async fn create<C: Sql>(
    client: &C,
    user_id: i64,
    client_addr: &str,
    user_agent: &str,
    lifetimes: Lifetimes,
) -> Result<NewSession, tokio_postgres::Error> {
    let id = super::random_secret();
    let digest = super::digest(&id);
    let absolute = lifetimes.absolute.as_secs() as f64;
    let agent: String = user_agent.chars().take(256).collect();
    client
        .execute(
            "INSERT INTO sessions (id_digest, user_id, expires_at, client_addr, user_agent) \
             VALUES ($1, $2, now() + make_interval(secs => $3), $4, $5)",
            &[&digest, &user_id, &absolute, &client_addr, &agent],
        )
        .await?;
    Ok(NewSession { id, digest })
}

/// What a valid session cookie resolves to.
pub struct Authenticated {
    pub principal: Principal,
    /// The installation requires MFA and this user has not enrolled yet.
    pub mfa_enrolment_pending: bool,
}

/// The principal behind a session cookie, when the session is live and its
/// user enabled. Touches `last_seen_at` at most once a minute.
pub async fn authenticate(
    client: &deadpool_postgres::Client,
    keys: &ServerKeys,
    session_id: &str,
    lifetimes: Lifetimes,
) -> Result<Option<Authenticated>, tokio_postgres::Error> {
    let digest = super::digest(session_id);
    let idle = lifetimes.idle.as_secs() as f64;
    // On every browser request: a statement prepared once per connection.
    let statement = client
        .prepared(
            "SELECT u.id, u.username, u.role, \
                    (SELECT require_mfa FROM security_settings) AND u.totp_secret IS NULL, \
                    s.last_seen_at < now() - interval '60 seconds' \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id_digest = $1 AND s.expires_at > now() \
               AND s.last_seen_at > now() - make_interval(secs => $2) \
               AND NOT u.disabled",
        )
        .await?;
    let row = client.query_opt(&statement, &[&digest, &idle]).await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let role: String = row.get(2);
    let Ok(role) = role.parse::<Role>() else {
        return Ok(None);
    };
    if row.get::<_, bool>(4) {
        client
            .execute(
                "UPDATE sessions SET last_seen_at = now() WHERE id_digest = $1",
                &[&digest],
            )
            .await?;
    }
    let csrf = keys.csrf_token(&digest);
    Ok(Some(Authenticated {
        principal: Principal {
            user_id: row.get(0),
            username: row.get(1),
            role,
            credential: Credential::Session {
                id_digest: digest,
                csrf,
            },
        },
        mfa_enrolment_pending: row.get(3),
    }))
}

/// Ends one session.
pub async fn revoke<C: Sql>(client: &C, digest: &[u8]) -> Result<u64, tokio_postgres::Error> {
    client
        .execute("DELETE FROM sessions WHERE id_digest = $1", &[&digest])
        .await
}

/// Ends every session of a user; returns how many.
pub async fn revoke_all<C: Sql>(client: &C, user_id: i64) -> Result<u64, tokio_postgres::Error> {
    client
        .execute("DELETE FROM sessions WHERE user_id = $1", &[&user_id])
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let header = format!("theme=dark; {COOKIE}=abc123; other=1");
        assert_eq!(from_cookie_header(&header), Some("abc123"));
        assert_eq!(from_cookie_header("theme=dark"), None);
        assert_eq!(from_cookie_header(&format!("{COOKIE}=")), None);
    }

    #[test]
    fn the_cookie_is_locked_down() {
        let s = NewSession {
            id: "x".into(),
            digest: vec![],
        };
        let cookie = s.cookie(Lifetimes {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(3600),
        });
        for part in [
            "Secure",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=3600",
        ] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert!(cookie.starts_with("__Host-"));
    }
}
