//! Server keys: generated once per installation and kept in PostgreSQL, so
//! a CSRF token or a cursor made by one replica checks on every other.
//!
//! `admin rotate-keys` replaces them with an overlap: the previous key
//! still verifies until `previous_until`, and the new one only signs from
//! `active_from`, by when every replica has read it (each reads the rows
//! again every [`REFRESH`]). Nothing valid breaks mid-rotation.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::db::Sql;
use crate::secrets::columns::SERVER_KEYS;
use crate::secrets::{Vault, VaultError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;

/// How often a server reads the keys again.
pub const REFRESH: Duration = Duration::from_secs(30);
/// How long after a rotation the new keys start signing: three refreshes.
pub const ACTIVATION: Duration = Duration::from_secs(90);
/// The keys, by purpose.
const NAMES: [&str; 2] = ["csrf", "cursor"];

/// One purpose's keys: the one that signs, and every one that verifies.
#[derive(Clone)]
struct Ring {
    signing: hmac::Key,
    verifying: Vec<hmac::Key>,
}

impl Ring {
    fn single(key: &[u8]) -> Ring {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        Ring {
            signing: key.clone(),
            verifying: vec![key],
        }
    }

    fn sign(&self, data: &[u8]) -> hmac::Tag {
        hmac::sign(&self.signing, data)
    }

    fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        self.verifying
            .iter()
            .any(|k| hmac::verify(k, data, tag).is_ok())
    }
}

#[derive(Clone)]
struct KeySet {
    csrf: Ring,
    cursor: Ring,
}

/// The installation's HMAC keys, each for one purpose; shared by every
/// clone and replaced in place by [`ServerKeys::refresh`].
#[derive(Clone)]
pub struct ServerKeys {
    set: Arc<RwLock<Arc<KeySet>>>,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKeys(..)")
    }
}

/// A new random 256-bit key.
fn new_key() -> Vec<u8> {
    super::random_bytes(32)
}

/// Why the keys cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("the server key {0:?} is missing from table server_keys; restart a server to make it")]
    Missing(&'static str),
}

async fn read<C: Sql>(client: &C) -> Result<KeySet, KeysError> {
    let rows = client
        .query(
            "SELECT name, key, previous_key, active_from <= now(), \
                    coalesce(previous_until > now(), false) \
             FROM server_keys WHERE name = ANY($1)",
            &[&&NAMES[..]],
        )
        .await?;
    let ring = |name: &'static str| -> Result<Ring, KeysError> {
        // `load` makes both rows at start.
        let row = rows
            .iter()
            .find(|r| r.get::<_, &str>(0) == name)
            .ok_or(KeysError::Missing(name))?;
        let key: Vec<u8> = row.get(1);
        let previous: Option<Vec<u8>> = row.get(2);
        let active: bool = row.get(3);
        let previous_verifies: bool = row.get(4);
        let current = hmac::Key::new(hmac::HMAC_SHA256, &key);
        Ok(match previous {
            Some(p) if !active || previous_verifies => {
                let previous = hmac::Key::new(hmac::HMAC_SHA256, &p);
                Ring {
                    signing: if active {
                        current.clone()
                    } else {
                        previous.clone()
                    },
                    verifying: vec![current, previous],
                }
            }
            _ => Ring::single(&key),
        })
    };
    Ok(KeySet {
        csrf: ring(NAMES[0])?,
        cursor: ring(NAMES[1])?,
    })
}

/// Rotates the CSRF and cursor keys, in the caller's transaction: the
/// previous keys verify for `overlap`, the new ones sign after
/// [`ACTIVATION`]. Their sealed twins are the caller's (`reseal_all`).
pub async fn rotate<C: Sql>(client: &C, overlap: Duration) -> Result<u64, tokio_postgres::Error> {
    let mut rotated = 0;
    for name in NAMES {
        rotated += client
            .execute(
                "UPDATE server_keys SET previous_key = key, key = $2, \
                        previous_until = now() + $3::bigint * interval '1 second', \
                        active_from = now() + $4::bigint * interval '1 second', \
                        rotated_at = now() \
                 WHERE name = $1",
                &[
                    &name,
                    &new_key(),
                    &(overlap.as_secs() as i64),
                    &(ACTIVATION.as_secs() as i64),
                ],
            )
            .await?;
    }
    Ok(rotated)
}

impl ServerKeys {
    /// Makes the keys on first start (the first replica to get here wins;
    /// everyone reads the one that won), seals them, and reads them.
    pub async fn load(
        client: &tokio_postgres::Client,
        vault: &Vault,
    ) -> Result<ServerKeys, KeysError> {
        for name in NAMES {
            let made = Sql::execute(
                &client,
                "INSERT INTO server_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &new_key()],
            )
            .await?;
            if made > 0 {
                vault.seal_row(&client, &SERVER_KEYS, name).await?;
            }
        }
        Ok(ServerKeys {
            set: Arc::new(RwLock::new(Arc::new(read(&client).await?))),
        })
    }

    /// Reads the keys again (a rotation, or a key now active or expired).
    pub async fn refresh<C: Sql>(&self, client: &C) -> Result<(), KeysError> {
        let fresh = Arc::new(read(client).await?);
        *self
            .set
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }

    fn current(&self) -> Arc<KeySet> {
        self.set
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Keys not shared with anyone, for unit tests.
    pub fn ephemeral() -> ServerKeys {
        ServerKeys {
            set: Arc::new(RwLock::new(Arc::new(KeySet {
                csrf: Ring::single(&new_key()),
                cursor: Ring::single(&new_key()),
            }))),
        }
    }

    /// The CSRF token of a session: bound to it, nothing to store.
    pub fn csrf_token(&self, session_digest: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.current().csrf.sign(session_digest).as_ref())
    }

    pub fn csrf_matches(&self, session_digest: &[u8], token: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(token)
            .map(|tag| self.current().csrf.verify(session_digest, &tag))
            .unwrap_or(false)
    }

    /// An opaque, authenticated cursor: `purpose` binds it to one listing
    /// (and its filters), so it cannot be replayed elsewhere.
    pub fn seal_cursor(&self, purpose: &str, payload: &str) -> String {
        let tag = self
            .current()
            .cursor
            .sign(format!("{purpose}\n{payload}").as_bytes());
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
        self.current()
            .cursor
            .verify(format!("{purpose}\n{payload}").as_bytes(), &tag)
            .then_some(payload)
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

    #[test]
    fn generative_cursors_open_only_what_was_sealed_here() {
        let keys = ServerKeys::ephemeral();
        let sealed = [
            keys.seal_cursor("records:7", "42"),
            keys.seal_cursor("records:7", "{\"after\":[\"x\",1]}"),
        ];
        let corpus: Vec<&[u8]> = sealed.iter().map(|c| c.as_bytes()).collect();
        generative::run(
            "cursor",
            &corpus,
            &[b".", b"=", b"-", b"_", b"+", b"/", b"\xff"],
            |_, input| {
                let text = String::from_utf8_lossy(input);
                // Whatever opens is exactly a cursor sealed here.
                if let Some(payload) = keys.open_cursor("records:7", &text) {
                    assert_eq!(keys.seal_cursor("records:7", &payload), text);
                }
                assert_eq!(keys.open_cursor("records:8", &text), None);
                // Any payload comes back from its cursor, for its purpose only.
                let cursor = keys.seal_cursor("audit", &text);
                assert_eq!(keys.open_cursor("audit", &cursor).as_deref(), Some(&*text));
                assert_eq!(keys.open_cursor("audit:", &cursor), None);
            },
        );
    }
}
