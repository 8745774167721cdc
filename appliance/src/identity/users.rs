//! Users as stored: lookups and changes. Validation of names and passwords
//! happens here, so the API and the CLI cannot disagree.

use crate::db::Sql;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::authz::Role;

/// A user as the API shows it (no credentials).
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
    pub mfa_enabled: bool,
    /// For notifications (set by admins); `None` when unknown.
    pub email: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

const COLUMNS: &str = "id, username, display_name, role, disabled, totp_secret IS NOT NULL, \
                       created_at, updated_at, email";

fn from_row(row: &Row) -> User {
    let role: String = row.get(3);
    User {
        id: row.get(0),
        username: row.get(1),
        display_name: row.get(2),
        // The column's CHECK constraint allows only the four names.
        role: role.parse().unwrap_or(Role::Viewer),
        disabled: row.get(4),
        mfa_enabled: row.get(5),
        created_at: row.get(6),
        updated_at: row.get(7),
        email: row.get(8),
    }
}

/// Why a username is refused.
pub fn check_username(name: &str) -> Result<(), &'static str> {
    let ok_len = (2..=63).contains(&name.len());
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = bytes
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if ok_len && first_ok && rest_ok {
        Ok(())
    } else {
        Err("usernames are 2-63 characters: lowercase letters, digits, '.', '_' and '-', starting with a letter or digit")
    }
}

pub async fn get<C: Sql>(client: &C, id: i64) -> Result<Option<User>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM users WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// The user with exactly this username.
pub async fn by_username<C: Sql>(
    client: &C,
    username: &str,
) -> Result<Option<User>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM users WHERE username = $1"),
            &[&username],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Turns two-factor authentication off for `id` (secret, pending secret,
/// recovery codes); `false` when there is no such user. The caller ends
/// the user's sessions and audits.
pub async fn reset_mfa<C: Sql>(client: &C, id: i64) -> Result<bool, tokio_postgres::Error> {
    let changed = client
        .execute(
            "UPDATE users SET totp_secret = NULL, totp_pending_secret = NULL, \
             totp_secret_sealed = NULL, totp_pending_secret_sealed = NULL, \
             totp_last_step = NULL, updated_at = now() WHERE id = $1",
            &[&id],
        )
        .await?;
    if changed == 0 {
        return Ok(false);
    }
    client
        .execute("DELETE FROM recovery_codes WHERE user_id = $1", &[&id])
        .await?;
    Ok(true)
}

pub async fn list<C: Sql>(client: &C) -> Result<Vec<User>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM users ORDER BY username"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// What sign-in needs to know about an account.
pub struct Credentials {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub password_hash: String,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_last_step: Option<i64>,
}

pub async fn credentials<C: Sql>(
    client: &C,
    username: &str,
) -> Result<Option<Credentials>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT id, username, role, disabled, password_hash, totp_secret, totp_last_step \
             FROM users WHERE username = $1",
            &[&username],
        )
        .await?;
    Ok(row.map(|row| {
        let role: String = row.get(2);
        Credentials {
            id: row.get(0),
            username: row.get(1),
            role: role.parse().unwrap_or(Role::Viewer),
            disabled: row.get(3),
            password_hash: row.get(4),
            totp_secret: row.get(5),
            totp_last_step: row.get(6),
        }
    }))
}

pub async fn credentials_by_id<C: Sql>(
    client: &C,
    id: i64,
) -> Result<Option<Credentials>, tokio_postgres::Error> {
    let row = client
        .query_opt("SELECT username FROM users WHERE id = $1", &[&id])
        .await?;
    match row {
        Some(row) => credentials(client, row.get::<_, String>(0).as_str()).await,
        None => Ok(None),
    }
}

/// Creates a user; `None` when the name is taken.
pub async fn create<C: Sql>(
    client: &C,
    username: &str,
    display_name: &str,
    role: Role,
    password_hash: &str,
) -> Result<Option<User>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "INSERT INTO users (username, display_name, role, password_hash) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING RETURNING {COLUMNS}"
            ),
            &[&username, &display_name, &role.as_str(), &password_hash],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Number of enabled admins other than `except`.
pub async fn other_active_admins<C: Sql>(
    client: &C,
    except: i64,
) -> Result<i64, tokio_postgres::Error> {
    // Locks the admins' rows so two concurrent demotions cannot both pass.
    let rows = client
        .query(
            "SELECT id FROM users WHERE role = 'admin' AND NOT disabled AND id <> $1 FOR UPDATE",
            &[&except],
        )
        .await?;
    Ok(rows.len() as i64)
}

pub async fn update<C: Sql>(
    client: &C,
    id: i64,
    role: Option<Role>,
    disabled: Option<bool>,
    display_name: Option<&str>,
) -> Result<Option<User>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "UPDATE users SET role = coalesce($2, role), disabled = coalesce($3, disabled), \
                 display_name = coalesce($4, display_name), updated_at = now() \
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &role.map(Role::as_str), &disabled, &display_name],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

/// Sets (or, with `None`, clears) a user's e-mail address; the caller
/// checked it. Returns the user as changed.
pub async fn set_email<C: Sql>(
    client: &C,
    id: i64,
    email: Option<&str>,
) -> Result<Option<User>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "UPDATE users SET email = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id, &email],
        )
        .await?;
    Ok(row.as_ref().map(from_row))
}

pub async fn set_password<C: Sql>(
    client: &C,
    id: i64,
    hash: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE users SET password_hash = $2, password_changed_at = now(), updated_at = now() \
             WHERE id = $1",
            &[&id, &hash],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_username;

    #[test]
    fn usernames() {
        for ok in ["ab", "alice", "a.b-c_d", "9lives"] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "Alice", "-x", "a b", "ä", "", &"a".repeat(64)] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }
}
