//! The first-admin setup token: while no user exists, a one-time, expiring
//! link lets one person create the first admin. `admin setup-token`
//! replaces earlier tokens; using one invalidates all of them.

use crate::db::Sql;

/// How long a setup link stays valid.
pub const VALIDITY_HOURS: i32 = 24;

/// True while the installation has no user at all.
pub async fn required<C: Sql>(client: &C) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT NOT EXISTS (SELECT 1 FROM users)", &[])
        .await?;
    Ok(row.get(0))
}

/// What [`issue`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Issued {
    /// Users exist: there is no setup.
    NotRequired,
    /// A link issued earlier is still valid and was kept.
    StillValid,
    /// A new token; earlier ones no longer work.
    New(String),
}

/// Inside the caller's transaction (which also records the audit entry):
/// issues a setup token while no user exists. With `replace` (the CLI)
/// earlier tokens stop working; without it (a server starting) a valid one
/// is kept, so a restart or another replica does not void the link an
/// admin is about to open.
pub async fn issue(
    tx: &tokio_postgres::Transaction<'_>,
    replace: bool,
) -> Result<Issued, tokio_postgres::Error> {
    // Serialize with a concurrent setup: the users check and the insert
    // happen under the same lock the setup endpoint takes.
    Sql::execute(&tx, "LOCK TABLE setup_tokens IN EXCLUSIVE MODE", &[]).await?;
    if !required(tx).await? {
        return Ok(Issued::NotRequired);
    }
    if !replace {
        let valid: bool = Sql::query_one(&tx,
                "SELECT EXISTS (SELECT 1 FROM setup_tokens WHERE used_at IS NULL AND expires_at > now())",
                &[],
            )
            .await?
            .get(0);
        if valid {
            return Ok(Issued::StillValid);
        }
    }
    let token = super::random_secret();
    Sql::execute(&tx, "DELETE FROM setup_tokens", &[]).await?;
    Sql::execute(
        &tx,
        "INSERT INTO setup_tokens (token_digest, expires_at) \
         VALUES ($1, now() + make_interval(hours => $2))",
        &[&super::digest(&token), &VALIDITY_HOURS],
    )
    .await?;
    Ok(Issued::New(token))
}

/// Why a setup attempt was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Users exist: setup is over.
    Done,
    /// Unknown, expired or already used token.
    InvalidToken,
}

/// Inside the caller's transaction: checks and consumes the token. The
/// caller then creates the admin in the same transaction.
pub async fn consume(
    tx: &tokio_postgres::Transaction<'_>,
    token: &str,
) -> Result<Result<(), Refusal>, tokio_postgres::Error> {
    Sql::execute(&tx, "LOCK TABLE setup_tokens IN EXCLUSIVE MODE", &[]).await?;
    if !required(tx).await? {
        return Ok(Err(Refusal::Done));
    }
    let used = Sql::execute(
        &tx,
        "UPDATE setup_tokens SET used_at = now() \
             WHERE token_digest = $1 AND used_at IS NULL AND expires_at > now()",
        &[&super::digest(token)],
    )
    .await?;
    if used != 1 {
        return Ok(Err(Refusal::InvalidToken));
    }
    Sql::execute(&tx, "DELETE FROM setup_tokens WHERE used_at IS NULL", &[]).await?;
    Ok(Ok(()))
}

/// The link an admin opens; the token travels in the fragment, so it never
/// reaches a server log or a proxy.
pub fn link(base_url: &str, token: &str) -> String {
    format!("{}setup#token={token}", base_url)
}
