//! One-time password reset links, issued from the host with `mogothrow77
//! admin reset-password NAME` for someone who forgot their password (or the
//! last admin locked out of their own account). One link per user: a new
//! one replaces the old; using it sets the password, ends every session and
//! deletes the link. Only the token's digest is stored, and the token
//! travels in the link's fragment, so it never reaches a server log.

use crate::db::Sql;

/// How long a reset link stays valid.
pub const VALIDITY_HOURS: i32 = 8;

/// Inside the caller's transaction (which records the audit entry): a new
/// link for `user_id`; an earlier one stops working.
pub async fn issue<C: Sql>(client: &C, user_id: i64) -> Result<String, tokio_postgres::Error> {
    let token = super::random_secret();
    client
        .execute(
            "INSERT INTO password_reset_links (user_id, token_digest, expires_at) \
             VALUES ($1, $2, now() + make_interval(hours => $3)) \
             ON CONFLICT (user_id) DO UPDATE SET token_digest = EXCLUDED.token_digest, \
             created_at = now(), expires_at = EXCLUDED.expires_at",
            &[&user_id, &super::digest(&token), &VALIDITY_HOURS],
        )
        .await?;
    Ok(token)
}

/// Inside the caller's transaction: the user a valid link belongs to,
/// locking the link until the transaction ends; `None` for an unknown,
/// expired or used one.
pub async fn holder<C: Sql>(client: &C, token: &str) -> Result<Option<i64>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT user_id FROM password_reset_links \
             WHERE token_digest = $1 AND expires_at > now() FOR UPDATE",
            &[&super::digest(token)],
        )
        .await?
        .map(|row| row.get(0)))
}

/// Inside the caller's transaction, once the password is set: the link is
/// gone (and with it every expired one).
pub async fn consume<C: Sql>(client: &C, user_id: i64) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM password_reset_links WHERE user_id = $1 OR expires_at <= now()",
            &[&user_id],
        )
        .await?;
    Ok(())
}

/// The link to hand the person; the token is in the fragment.
pub fn link(base_url: &str, token: &str) -> String {
    format!("{base_url}reset-password#token={token}")
}
