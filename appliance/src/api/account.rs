//! My account: change password, TOTP enrolment, recovery codes, and my API
//! tokens. Browser sessions only (a token must not mint tokens).

use crate::db::Sql;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use super::idempotency::one_time;
use super::support::{new_password_hash, too_many_attempts, with_cookie};
use super::{blocking, invalid_field, parse_id, Api, ApiJson, Ctx, Method};
use crate::app::AppState;
use crate::audit::{Event, Outcome};
use crate::authz::{Access, Permission, Principal};
use crate::http::error::{ErrorBody, ErrorCode};
use crate::identity::{password, sessions, throttle, tokens, totp, users};
use crate::secrets::columns::USERS;

pub fn routes(api: Api) -> Api {
    api.route(
        Method::Post,
        "/api/v1/me/password",
        Access::Session,
        change_password,
    )
    .route(
        Method::Post,
        "/api/v1/me/mfa/totp",
        Access::Session,
        start_totp,
    )
    .route(
        Method::Post,
        "/api/v1/me/mfa/totp/confirm",
        Access::Session,
        confirm_totp,
    )
    .route(
        Method::Delete,
        "/api/v1/me/mfa/totp",
        Access::Session,
        disable_totp,
    )
    .route(
        Method::Get,
        "/api/v1/me/tokens",
        Access::Session,
        list_tokens,
    )
    .route(
        Method::Post,
        "/api/v1/me/tokens",
        Access::Session,
        create_token,
    )
    .route(
        Method::Delete,
        "/api/v1/me/tokens/{id}",
        Access::Session,
        revoke_token,
    )
}

/// Checks the caller's current password (re-authentication before a
/// sensitive change). Wrong guesses count towards the account's sign-in
/// lockout, so a stolen session cannot be used to guess the password.
async fn check_current_password(
    state: &AppState,
    ctx: &Ctx,
    client: &deadpool_postgres::Client,
    principal: &Principal,
    password: &str,
) -> Result<users::Credentials, ErrorBody> {
    let key = throttle::account_key(&principal.username);
    if let Some(retry_after) = throttle::locked(&***client, &[key.as_str()]).await? {
        return Err(too_many_attempts(retry_after));
    }
    let Some(creds) = users::credentials_by_id(&***client, principal.user_id).await? else {
        return Err(ErrorBody::new(ErrorCode::Unauthenticated, "sign in again"));
    };
    let hash = creds.password_hash.clone();
    let password = password.to_string();
    if !blocking(move || password::verify(&password, &hash).unwrap_or(false)).await? {
        let limits = state.auth.throttle;
        let mut client = state.pool.get().await?;
        let tx = client.transaction().await?;
        throttle::record_failure(&*tx, &key, limits.account_failures, limits).await?;
        ctx.audit_event(
            &tx,
            &Event::new(
                "account.reauthenticate",
                format!("user:{}", principal.user_id),
                Outcome::Failure,
            )
            .details(json!({ "reason": "bad_password" })),
        )
        .await?;
        tx.commit().await?;
        return Err(invalid_field(
            "current_password",
            "the current password is wrong",
        ));
    }
    throttle::clear(&***client, &key).await?;
    Ok(creds)
}

/// Ends the caller's other sessions and replaces the current one with a
/// fresh id (after a credential change). Returns the new cookie.
async fn rotate_session(
    state: &AppState,
    tx: &tokio_postgres::Transaction<'_>,
    ctx: &Ctx,
    principal: &Principal,
) -> Result<(String, String), ErrorBody> {
    sessions::revoke_all(tx, principal.user_id).await?;
    let session = sessions::create(
        tx,
        principal.user_id,
        &ctx.client_addr,
        &ctx.user_agent,
        state.auth.lifetimes,
    )
    .await?;
    Ok((
        session.cookie(state.auth.lifetimes),
        state.keys.csrf_token(&session.digest),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePassword {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(req): ApiJson<ChangePassword>,
) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?.clone();
    let mut client = state.pool.get().await?;
    check_current_password(&state, &ctx, &client, &principal, &req.current_password).await?;
    let user = users::get(&**client, principal.user_id)
        .await?
        .ok_or_else(|| ErrorBody::new(ErrorCode::Unauthenticated, "sign in again"))?;
    let hash = new_password_hash(
        &req.new_password,
        &user.username,
        &user.display_name,
        "new_password",
    )
    .await?;
    let tx = client.transaction().await?;
    users::set_password(&*tx, principal.user_id, &hash).await?;
    let (cookie, csrf) = rotate_session(&state, &tx, &ctx, &principal).await?;
    ctx.audit_event(
        &tx,
        &Event::new(
            "account.password_change",
            format!("user:{}", principal.user_id),
            Outcome::Success,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(with_cookie(Json(json!({ "csrf_token": csrf })), cookie))
}

async fn start_totp(State(state): State<AppState>, ctx: Ctx) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?;
    let mut client = state.pool.get().await?;
    let secret = totp::TotpSecret::generate();
    let tx = client.transaction().await?;
    let updated = tx
        .execute(
            "UPDATE users SET totp_pending_secret = $2 WHERE id = $1 AND totp_secret IS NULL",
            &[&principal.user_id, &secret.as_bytes()],
        )
        .await?;
    if updated == 0 {
        return Err(ErrorBody::new(
            ErrorCode::Conflict,
            "two-factor authentication is already on; turn it off first to enrol a new device",
        ));
    }
    state
        .vault
        .seal_row(&*tx, &USERS, &principal.user_id.to_string())
        .await?;
    tx.commit().await?;
    let uri = totp::otpauth_uri(&secret, "Mogothrow77", &principal.username);
    let svg = totp::qr_svg(&uri).map_err(|e| ErrorBody::new(ErrorCode::Internal, e.to_string()))?;
    Ok(one_time(Json(json!({
        "secret": secret.to_base32(),
        "otpauth_uri": uri,
        "qr_svg": svg,
    }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmTotp {
    code: String,
}

async fn confirm_totp(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(req): ApiJson<ConfirmTotp>,
) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?.clone();
    let mut client = state.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT totp_pending_secret FROM users WHERE id = $1 AND totp_secret IS NULL",
            &[&principal.user_id],
        )
        .await?;
    let Some(pending) = row.and_then(|r| r.get::<_, Option<Vec<u8>>>(0)) else {
        return Err(ErrorBody::new(
            ErrorCode::Conflict,
            "no enrolment in progress; start again from My account",
        ));
    };
    let secret = totp::TotpSecret::from_bytes(&pending)
        .map_err(|e| ErrorBody::new(ErrorCode::Internal, e.to_string()))?;
    let now = OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
    let step = totp::verify(&secret, &req.code, now, None)
        .map_err(|e| invalid_field("code", e.to_string()))?;
    let codes = totp::generate_recovery_codes(10);
    let tx = client.transaction().await?;
    tx.execute(
        "UPDATE users SET totp_secret = totp_pending_secret, totp_pending_secret = NULL, \
         totp_last_step = $2, updated_at = now() WHERE id = $1",
        &[&principal.user_id, &step],
    )
    .await?;
    state
        .vault
        .seal_row(&*tx, &USERS, &principal.user_id.to_string())
        .await?;
    tx.execute(
        "DELETE FROM recovery_codes WHERE user_id = $1",
        &[&principal.user_id],
    )
    .await?;
    for code in &codes {
        tx.execute(
            "INSERT INTO recovery_codes (user_id, code_digest) VALUES ($1, $2)",
            &[
                &principal.user_id,
                &totp::recovery_code_digest(code).to_vec(),
            ],
        )
        .await?;
    }
    // A privilege change: a fresh session id, other sessions ended.
    let (cookie, csrf) = rotate_session(&state, &tx, &ctx, &principal).await?;
    ctx.audit_event(
        &tx,
        &Event::new(
            "account.mfa_enable",
            format!("user:{}", principal.user_id),
            Outcome::Success,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(with_cookie(
        one_time(Json(json!({ "recovery_codes": codes, "csrf_token": csrf }))),
        cookie,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisableTotp {
    current_password: String,
}

async fn disable_totp(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(req): ApiJson<DisableTotp>,
) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?.clone();
    let mut client = state.pool.get().await?;
    check_current_password(&state, &ctx, &client, &principal, &req.current_password).await?;
    let required: bool = client
        .query_one("SELECT require_mfa FROM security_settings", &[])
        .await?
        .get(0);
    if required {
        return Err(ErrorBody::new(
            ErrorCode::Forbidden,
            "this installation requires two-factor authentication for everyone; it cannot be \
             turned off (an administrator can reset it if you lost your device)",
        ));
    }
    let tx = client.transaction().await?;
    tx.execute(
        "UPDATE users SET totp_secret = NULL, totp_pending_secret = NULL, totp_last_step = NULL, \
         totp_secret_sealed = NULL, totp_pending_secret_sealed = NULL, updated_at = now() \
         WHERE id = $1",
        &[&principal.user_id],
    )
    .await?;
    tx.execute(
        "DELETE FROM recovery_codes WHERE user_id = $1",
        &[&principal.user_id],
    )
    .await?;
    ctx.audit_event(
        &tx,
        &Event::new(
            "account.mfa_disable",
            format!("user:{}", principal.user_id),
            Outcome::Success,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Serialize)]
struct TokenView {
    id: i64,
    name: String,
    prefix: String,
    permissions: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
}

async fn list_tokens(
    State(state): State<AppState>,
    ctx: Ctx,
) -> Result<Json<serde_json::Value>, ErrorBody> {
    let principal = ctx.principal()?;
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT id, name, prefix, permissions, created_at, expires_at, last_used_at, \
             revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY id DESC",
            &[&principal.user_id],
        )
        .await?;
    let items: Vec<TokenView> = rows
        .iter()
        .map(|r| TokenView {
            id: r.get(0),
            name: r.get(1),
            prefix: r.get(2),
            permissions: r.get(3),
            created_at: r.get(4),
            expires_at: r.get(5),
            last_used_at: r.get(6),
            revoked_at: r.get(7),
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
    permissions: Vec<String>,
    #[serde(default)]
    expires_in_days: Option<u32>,
}

async fn create_token(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(req): ApiJson<CreateToken>,
) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(invalid_field(
            "name",
            "1-100 characters, no control characters",
        ));
    }
    if let Some(days) = req.expires_in_days {
        if !(1..=3650).contains(&days) {
            return Err(invalid_field("expires_in_days", "between 1 and 3650 days"));
        }
    }
    let mut permissions = Vec::new();
    for name in &req.permissions {
        match name.parse::<Permission>() {
            Ok(p) => permissions.push(p),
            Err(_) => {
                return Err(invalid_field(
                    "permissions",
                    format!(
                        "unknown permission {name:?}; known: {}",
                        Permission::ALL.map(|p| p.as_str()).join(", ")
                    ),
                ))
            }
        }
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let token = match tokens::create(&*tx, principal, name, &permissions, req.expires_in_days).await
    {
        Ok(t) => t,
        Err(tokens::TokenError::Db(e)) => return Err(e.into()),
        Err(e @ tokens::TokenError::NoPermissions) => {
            return Err(invalid_field("permissions", e.to_string()))
        }
        Err(e) => {
            return Err(
                ErrorBody::new(ErrorCode::Forbidden, e.to_string()).with_details(
                    json!({ "fields": [{ "field": "permissions", "message": e.to_string() }] }),
                ),
            )
        }
    };
    ctx.audit_event(
        &tx,
        &Event::new(
            "token.create",
            format!("token:{}", token.id),
            Outcome::Success,
        )
        .details(json!({
            "name": name,
            "permissions": req.permissions,
            "expires_in_days": req.expires_in_days,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(one_time((
        StatusCode::CREATED,
        Json(json!({
            "id": token.id,
            "token": token.secret,
            "note": "this is the only time the token is shown; store it in a secret store",
        })),
    )))
}

async fn revoke_token(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?;
    let id = parse_id(&id, "token")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let revoked = tx
        .execute(
            "UPDATE api_tokens SET revoked_at = now() \
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            &[&id, &principal.user_id],
        )
        .await?;
    if revoked == 0 {
        return Err(ErrorBody::new(
            ErrorCode::NotFound,
            format!("you have no active token with id {id}"),
        ));
    }
    ctx.audit_event(
        &tx,
        &Event::new("token.revoke", format!("token:{id}"), Outcome::Success),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
