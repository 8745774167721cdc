//! API tokens: `m77_` followed by 43 characters of a 256-bit random secret.
//! Only the SHA-256 digest is stored (the secret has full entropy, so a
//! slow password hash would add cost on every request and no safety).
//! A token carries a subset of its creator's permissions; what it may do is
//! always narrowed by the owner's current role as well.

use crate::db::{Cached, Sql};

use crate::authz::{Credential, Permission, Principal, Role};
use crate::cache::Cache;

pub const PREFIX: &str = "m77_";

/// A token just created: the secret is shown to its owner once.
pub struct NewToken {
    pub id: i64,
    pub secret: String,
}

/// Stable reasons a token request is refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a token cannot hold {0}: your role ({1}) does not have it")]
    ExceedsRole(Permission, Role),
    #[error("a token needs at least one permission")]
    NoPermissions,
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

pub async fn create<C: Sql>(
    client: &C,
    owner: &Principal,
    name: &str,
    permissions: &[Permission],
    expires_in_days: Option<u32>,
) -> Result<NewToken, TokenError> {
    if permissions.is_empty() {
        return Err(TokenError::NoPermissions);
    }
    if let Some(p) = permissions.iter().find(|p| !owner.role.allows(**p)) {
        return Err(TokenError::ExceedsRole(*p, owner.role));
    }
    let mut names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let secret = format!("{PREFIX}{}", super::random_secret());
    let digest = super::digest(&secret);
    let display_prefix: String = secret.chars().take(PREFIX.len() + 6).collect();
    let days = expires_in_days
        .map(i32::try_from)
        .transpose()
        .unwrap_or(Some(i32::MAX));
    let row = client
        .query_one(
            "INSERT INTO api_tokens (user_id, name, prefix, secret_digest, permissions, expires_at) \
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(days => $6)) RETURNING id",
            &[&owner.user_id, &name, &display_prefix, &digest, &names, &days],
        )
        .await?;
    Ok(NewToken {
        id: row.get(0),
        secret,
    })
}

/// Why a token could not be checked (not: why it was refused).
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

/// What an API token's digest authenticates: the caller, and whether the
/// caller must still enrol in MFA; with the token's expiry.
#[derive(Clone)]
pub struct CachedToken {
    pub principal: Principal,
    pub mfa_enrolment_pending: bool,
    pub expires_at: Option<time::OffsetDateTime>,
}

/// The principal behind a bearer token, when it is live, unexpired and
/// its owner enabled, and whether the owner still has to enrol in MFA
/// (then the token, like a session, opens nothing until they do).
///
/// Answered from the replica's cache when it can (no database round trip);
/// the cache is cleared by every change to tokens, users and the MFA
/// requirement on any replica (`crate::listen`), and an entry is re-read
/// at least every [`crate::cache::TTL`]. Unknown secrets are not cached.
pub async fn authenticate(
    pool: &deadpool_postgres::Pool,
    cache: &Cache<Vec<u8>, CachedToken>,
    secret: &str,
) -> Result<Option<CachedToken>, LookupError> {
    if !secret.starts_with(PREFIX) || secret.len() > 128 {
        return Ok(None);
    }
    let digest = super::digest(secret);
    if let Some(hit) = cache.get(&digest) {
        if hit
            .expires_at
            .is_none_or(|at| at > time::OffsetDateTime::now_utc())
        {
            return Ok(Some(hit));
        }
    }
    let generation = cache.generation();
    let client = pool.get().await?;
    let found = lookup(&client, &digest).await?;
    if let Some(token) = &found {
        cache.insert(generation, digest, token.clone());
    }
    Ok(found)
}

/// Reads a token by its digest; touches `last_used_at` at most once a minute.
async fn lookup(
    client: &deadpool_postgres::Client,
    digest: &Vec<u8>,
) -> Result<Option<CachedToken>, tokio_postgres::Error> {
    // A statement prepared once per connection.
    let statement = client
        .prepared(
            "SELECT t.id, t.permissions, u.id, u.username, u.role, \
                    t.last_used_at IS NULL OR t.last_used_at < now() - interval '60 seconds', \
                    (SELECT require_mfa FROM security_settings) AND u.totp_secret IS NULL, \
                    t.expires_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.secret_digest = $1 AND t.revoked_at IS NULL \
               AND (t.expires_at IS NULL OR t.expires_at > now()) AND NOT u.disabled",
        )
        .await?;
    let row = client.query_opt(&statement, &[digest]).await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id: i64 = row.get(0);
    let names: Vec<String> = row.get(1);
    let role: String = row.get(4);
    let Ok(role) = role.parse::<Role>() else {
        return Ok(None);
    };
    if row.get::<_, bool>(5) {
        client
            .execute(
                "UPDATE api_tokens SET last_used_at = now() WHERE id = $1",
                &[&id],
            )
            .await?;
    }
    let principal = Principal {
        user_id: row.get(2),
        username: row.get(3),
        role,
        credential: Credential::Token {
            id,
            // A name this binary does not know grants nothing.
            permissions: names.iter().filter_map(|n| n.parse().ok()).collect(),
        },
    };
    Ok(Some(CachedToken {
        principal,
        mfa_enrolment_pending: row.get(6),
        expires_at: row.get(7),
    }))
}
