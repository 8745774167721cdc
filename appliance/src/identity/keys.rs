//! Server keys: generated once per installation and kept in PostgreSQL, so
//! a CSRF token or a cursor made by one replica checks on every other.

use crate::db::Sql;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;

/// The installation's HMAC keys, each for one purpose.
#[derive(Clone)]
pub struct ServerKeys {
    csrf: hmac::Key,
    cursor: hmac::Key,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKeys(..)")
    }
}

async fn load_one(
    client: &tokio_postgres::Client,
    name: &str,
) -> Result<hmac::Key, tokio_postgres::Error> {
    // The first replica to get here generates the key; everyone reads the
    // one that won.
    Sql::execute(
        &client,
        "INSERT INTO server_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[&name, &super::random_bytes(32)],
    )
    .await?;
    let row = Sql::query_one(
        &client,
        "SELECT key FROM server_keys WHERE name = $1",
        &[&name],
    )
    .await?;
    let key: Vec<u8> = row.get(0);
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &key))
}

impl ServerKeys {
    pub async fn load(
        client: &tokio_postgres::Client,
    ) -> Result<ServerKeys, tokio_postgres::Error> {
        Ok(ServerKeys {
            csrf: load_one(client, "csrf").await?,
            cursor: load_one(client, "cursor").await?,
        })
    }

    /// Keys not shared with anyone, for unit tests.
    pub fn ephemeral() -> ServerKeys {
        ServerKeys {
            csrf: hmac::Key::new(hmac::HMAC_SHA256, &super::random_bytes(32)),
            cursor: hmac::Key::new(hmac::HMAC_SHA256, &super::random_bytes(32)),
        }
    }

    /// The CSRF token of a session: bound to it, nothing to store.
    pub fn csrf_token(&self, session_digest: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.csrf, session_digest).as_ref())
    }

    pub fn csrf_matches(&self, session_digest: &[u8], token: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(token)
            .map(|tag| hmac::verify(&self.csrf, session_digest, &tag).is_ok())
            .unwrap_or(false)
    }

    /// An opaque, authenticated cursor: `purpose` binds it to one listing
    /// (and its filters), so it cannot be replayed elsewhere.
    pub fn seal_cursor(&self, purpose: &str, payload: &str) -> String {
        let tag = hmac::sign(&self.cursor, format!("{purpose}\n{payload}").as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// The payload of a cursor made by [`seal_cursor`](Self::seal_cursor)
    /// for the same purpose; `None` when tampered with or foreign.
    pub fn open_cursor(&self, purpose: &str, cursor: &str) -> Option<String> {
        let (payload, tag) = cursor.split_once('.')?;
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(
            &self.cursor,
            format!("{purpose}\n{payload}").as_bytes(),
            &tag,
        )
        .ok()?;
        Some(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let keys = ServerKeys::ephemeral();
        let token = keys.csrf_token(b"session-a");
        assert!(keys.csrf_matches(b"session-a", &token));
        assert!(!keys.csrf_matches(b"session-b", &token));
        assert!(!keys.csrf_matches(b"session-a", "not-base64!"));
        assert!(!ServerKeys::ephemeral().csrf_matches(b"session-a", &token));
    }

    #[test]
    fn cursors_reject_tampering_and_other_purposes() {
        let keys = ServerKeys::ephemeral();
        let cursor = keys.seal_cursor("audit:x", "42");
        assert_eq!(keys.open_cursor("audit:x", &cursor).as_deref(), Some("42"));
        assert_eq!(keys.open_cursor("audit:y", &cursor), None);
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("43"),
            cursor.split_once('.').map(|c| c.1).unwrap_or("")
        );
        assert_eq!(keys.open_cursor("audit:x", &forged), None);
        assert_eq!(keys.open_cursor("audit:x", "garbage"), None);
    }
}
