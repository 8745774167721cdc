//! First-admin setup, sign-in (password, then TOTP or a recovery code),
//! sign-out, and "who am I".

use crate::db::Sql;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::support::{check_display_name, new_password_hash, too_many_attempts, with_cookie};
use super::{blocking, invalid_field, Api, ApiJson, Ctx, Method};
use crate::app::AppState;
use crate::audit::{self, Event, Outcome};
use crate::authz::{Access, Credential, Role};
use crate::http::error::{ErrorBody, ErrorCode};
use crate::identity::{password, reset, sessions, setup, throttle, totp, users};

pub fn routes(api: Api) -> Api {
    api.route(Method::Get, "/api/v1/setup", Access::Public, setup_status)
        .route(
            Method::Post,
            "/api/v1/setup",
            Access::Public,
            complete_setup,
        )
        .route(Method::Post, "/api/v1/auth/login", Access::Public, login)
        .route(
            Method::Post,
            "/api/v1/auth/password-reset",
            Access::Public,
            complete_password_reset,
        )
        .route(Method::Post, "/api/v1/auth/logout", Access::Session, logout)
        .route(
            Method::Post,
            "/api/v1/auth/logout-everywhere",
            Access::Session,
            logout_everywhere,
        )
        .route(Method::Get, "/api/v1/me", Access::Authenticated, me)
}

async fn setup_status(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ErrorBody> {
    let client = state.pool.get().await?;
    let required = setup::required(&**client).await?;
    Ok(Json(json!({ "setup_required": required })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetupRequest {
    token: String,
    username: String,
    password: String,
    #[serde(default)]
    display_name: String,
}

async fn complete_setup(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(req): ApiJson<SetupRequest>,
) -> Result<Response, ErrorBody> {
    let username = req.username.trim().to_lowercase();
    users::check_username(&username).map_err(|m| invalid_field("username", m))?;
    check_display_name(&req.display_name)?;
    let hash = new_password_hash(&req.password, &username, &req.display_name, "password").await?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    match setup::consume(&tx, &req.token).await? {
        Ok(()) => {}
        Err(setup::Refusal::Done) => {
            return Err(ErrorBody::new(
                ErrorCode::SetupComplete,
                "the first admin already exists; sign in instead",
            ))
        }
        Err(setup::Refusal::InvalidToken) => {
            return Err(ErrorBody::new(
                ErrorCode::InvalidSetupToken,
                "the setup link is invalid, expired or already used; run `mogothrow77 admin \
                 setup-token` on the server for a new one",
            ))
        }
    }
    let Some(user) = users::create(&*tx, &username, &req.display_name, Role::Admin, &hash).await?
    else {
        return Err(ErrorBody::new(
            ErrorCode::UsernameTaken,
            "that username is taken",
        ));
    };
    let session = sign_in(
        &state,
        &tx,
        &ctx,
        user.id,
        &user.username,
        Event::new(
            "setup.complete",
            format!("user:{}", user.id),
            Outcome::Success,
        ),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user = %user.username, "first admin created");
    let csrf = state.keys.csrf_token(&session.digest);
    Ok(with_cookie(
        (
            StatusCode::CREATED,
            Json(json!({ "user": user, "csrf_token": csrf })),
        ),
        session.cookie(state.auth.lifetimes),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordResetRequest {
    token: String,
    password: String,
}

/// A reset link (`mogothrow77 admin reset-password`) used: the new password
/// set, every session ended, the account's sign-in lockout lifted, the
/// link deleted. The person then signs in as usual (two-factor included).
async fn complete_password_reset(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(req): ApiJson<PasswordResetRequest>,
) -> Result<Response, ErrorBody> {
    let invalid = || {
        ErrorBody::new(
            ErrorCode::InvalidResetLink,
            "the password reset link is invalid, expired or already used; ask an administrator \
             to run `mogothrow77 admin reset-password NAME` on the server for a new one",
        )
    };
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let Some(user_id) = reset::holder(&*tx, &req.token).await? else {
        return Err(invalid());
    };
    let Some(user) = users::get(&*tx, user_id).await? else {
        return Err(invalid());
    };
    let hash = new_password_hash(
        &req.password,
        &user.username,
        &user.display_name,
        "password",
    )
    .await?;
    users::set_password(&*tx, user.id, &hash).await?;
    reset::consume(&*tx, user.id).await?;
    let ended = sessions::revoke_all(&*tx, user.id).await?;
    throttle::clear(&*tx, &throttle::account_key(&user.username)).await?;
    let mut audit = ctx.audit();
    audit.actor_id = Some(user.id);
    audit.actor = user.username.clone();
    audit::append(
        &tx,
        &audit,
        &Event::new(
            "auth.password_reset",
            format!("user:{}", user.id),
            Outcome::Success,
        )
        .details(json!({ "via": "reset link", "sessions_ended": ended })),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::response::IntoResponse::into_response(
        StatusCode::NO_CONTENT,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
    #[serde(default)]
    totp_code: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
}

/// Records a failed attempt (throttle counters and audit) and builds the
/// answer. Counters go up for the name whether or not it exists.
async fn login_failed(
    state: &AppState,
    ctx: &Ctx,
    username: &str,
    user_id: Option<i64>,
    reason: &str,
    error: ErrorBody,
) -> Result<Response, ErrorBody> {
    let mut client = state.pool.get().await?;
    let limits = state.auth.throttle;
    let tx = client.transaction().await?;
    throttle::record_failure(
        &*tx,
        &throttle::account_key(username),
        limits.account_failures,
        limits,
    )
    .await?;
    throttle::record_failure(
        &*tx,
        &throttle::address_key(&ctx.client_addr),
        limits.address_failures,
        limits,
    )
    .await?;
    let audit_ctx = audit::Context {
        actor_id: user_id,
        actor: crate::identity::printable(username, 64),
        ..ctx.audit()
    };
    audit::append(
        &tx,
        &audit_ctx,
        &Event::new("auth.login", "", Outcome::Failure).details(json!({ "reason": reason })),
    )
    .await?;
    tx.commit().await?;
    Err(error)
}

/// Starts a session for a person who just proved who they are, and
/// records `event` with them as the actor, in `tx`.
async fn sign_in(
    state: &AppState,
    tx: &tokio_postgres::Transaction<'_>,
    ctx: &Ctx,
    user_id: i64,
    username: &str,
    event: Event,
) -> Result<sessions::NewSession, ErrorBody> {
    let session = sessions::create(
        tx,
        user_id,
        &ctx.client_addr,
        &ctx.user_agent,
        state.auth.lifetimes,
    )
    .await?;
    let actor = audit::Context {
        actor_id: Some(user_id),
        actor: username.to_string(),
        ..ctx.audit()
    };
    audit::append(tx, &actor, &event).await?;
    Ok(session)
}

fn invalid_credentials() -> ErrorBody {
    ErrorBody::new(
        ErrorCode::InvalidCredentials,
        "the username or password is wrong",
    )
}

async fn login(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ErrorBody> {
    let username = req.username.trim().to_lowercase();
    let account_key = throttle::account_key(&username);
    let address_key = throttle::address_key(&ctx.client_addr);
    let mut client = state.pool.get().await?;
    if let Some(retry_after) =
        throttle::locked(&**client, &[account_key.as_str(), address_key.as_str()]).await?
    {
        let tx = client.transaction().await?;
        let audit_ctx = audit::Context {
            actor: crate::identity::printable(&username, 64),
            ..ctx.audit()
        };
        audit::append(
            &tx,
            &audit_ctx,
            &Event::new("auth.login", "", Outcome::Denied).details(json!({ "reason": "locked" })),
        )
        .await?;
        tx.commit().await?;
        return Err(too_many_attempts(retry_after));
    }
    let credentials = if users::check_username(&username).is_ok() && req.password.len() <= 1024 {
        users::credentials(&**client, &username).await?
    } else {
        None
    };
    drop(client);
    let password = req.password.clone();
    let verified = match &credentials {
        Some(c) => {
            let hash = c.password_hash.clone();
            blocking(move || password::verify(&password, &hash).unwrap_or(false)).await?
        }
        // Same work for a name that does not exist: no enumeration by timing.
        None => {
            blocking(move || {
                password::verify_dummy(&password);
                false
            })
            .await?
        }
    };
    let known_id = credentials.as_ref().map(|c| c.id);
    let Some(user) = credentials.filter(|_| verified) else {
        return login_failed(
            &state,
            &ctx,
            &username,
            known_id,
            "bad_password",
            invalid_credentials(),
        )
        .await;
    };
    if user.disabled {
        return login_failed(
            &state,
            &ctx,
            &username,
            Some(user.id),
            "disabled",
            ErrorBody::new(
                ErrorCode::AccountDisabled,
                "this account is disabled; ask an administrator to enable it",
            ),
        )
        .await;
    }
    let mut client = state.pool.get().await?;
    if let Some(secret) = &user.totp_secret {
        let second_factor = match (&req.totp_code, &req.recovery_code) {
            (None, None) => {
                return Err(ErrorBody::new(
                    ErrorCode::MfaRequired,
                    "enter the 6-digit code from your authenticator app, or a recovery code",
                )
                .with_details(json!({ "mfa": ["totp", "recovery_code"] })))
            }
            (Some(code), _) => check_totp(&client, &user, secret, code).await?,
            (None, Some(code)) => check_recovery_code(&client, user.id, code).await?,
        };
        if let Err(reason) = second_factor {
            drop(client);
            return login_failed(
                &state,
                &ctx,
                &username,
                Some(user.id),
                reason,
                ErrorBody::new(
                    ErrorCode::InvalidMfaCode,
                    "the code is wrong or was already used; enter the current code from your \
                     authenticator app, or an unused recovery code",
                ),
            )
            .await;
        }
    }
    let tx = client.transaction().await?;
    throttle::clear(&*tx, &account_key).await?;
    let session = sign_in(
        &state,
        &tx,
        &ctx,
        user.id,
        &user.username,
        Event::new("auth.login", format!("user:{}", user.id), Outcome::Success).details(json!({
            "mfa": user.totp_secret.is_some(),
            "recovery_code": user.totp_secret.is_some() && req.totp_code.is_none(),
        })),
    )
    .await?;
    tx.commit().await?;
    if password::needs_rehash(&user.password_hash) {
        let password = req.password.clone();
        if let Ok(Ok(hash)) = blocking(move || password::hash(&password)).await {
            users::set_password(&**client, user.id, &hash).await?;
        }
    }
    let profile = users::get(&**client, user.id).await?;
    let csrf = state.keys.csrf_token(&session.digest);
    Ok(with_cookie(
        Json(json!({ "user": profile, "csrf_token": csrf })),
        session.cookie(state.auth.lifetimes),
    ))
}

/// `Ok(Err(reason))` when the code is wrong or replayed.
async fn check_totp(
    client: &deadpool_postgres::Client,
    user: &users::Credentials,
    secret: &[u8],
    code: &str,
) -> Result<Result<(), &'static str>, ErrorBody> {
    let Ok(secret) = totp::TotpSecret::from_bytes(secret) else {
        return Ok(Err("bad_stored_secret"));
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let step = match totp::verify(&secret, code, now, user.totp_last_step) {
        Ok(step) => step,
        Err(totp::TotpError::Replayed) => return Ok(Err("totp_replayed")),
        Err(_) => return Ok(Err("bad_totp")),
    };
    // A concurrent sign-in with the same code loses here.
    let claimed = client
        .execute(
            "UPDATE users SET totp_last_step = $2 \
             WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
            &[&user.id, &step],
        )
        .await?;
    Ok(if claimed == 1 {
        Ok(())
    } else {
        Err("totp_replayed")
    })
}

async fn check_recovery_code(
    client: &deadpool_postgres::Client,
    user_id: i64,
    code: &str,
) -> Result<Result<(), &'static str>, ErrorBody> {
    let Some(code) = totp::normalize_recovery_code(code) else {
        return Ok(Err("bad_recovery_code"));
    };
    let digest = totp::recovery_code_digest(&code).to_vec();
    let used = client
        .execute(
            "UPDATE recovery_codes SET used_at = now() \
             WHERE user_id = $1 AND code_digest = $2 AND used_at IS NULL",
            &[&user_id, &digest],
        )
        .await?;
    Ok(if used == 1 {
        Ok(())
    } else {
        Err("bad_recovery_code")
    })
}

async fn logout(State(state): State<AppState>, ctx: Ctx) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if let Credential::Session { id_digest, .. } = &principal.credential {
        sessions::revoke(&*tx, id_digest).await?;
    }
    ctx.audit_event(
        &tx,
        &Event::new(
            "auth.logout",
            format!("user:{}", principal.user_id),
            Outcome::Success,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(with_cookie(
        StatusCode::NO_CONTENT,
        sessions::clearing_cookie(),
    ))
}

async fn logout_everywhere(State(state): State<AppState>, ctx: Ctx) -> Result<Response, ErrorBody> {
    let principal = ctx.principal()?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let ended = sessions::revoke_all(&*tx, principal.user_id).await?;
    ctx.audit_event(
        &tx,
        &Event::new(
            "auth.logout_everywhere",
            format!("user:{}", principal.user_id),
            Outcome::Success,
        )
        .details(json!({ "sessions_ended": ended })),
    )
    .await?;
    tx.commit().await?;
    Ok(with_cookie(
        StatusCode::NO_CONTENT,
        sessions::clearing_cookie(),
    ))
}

async fn me(
    State(state): State<AppState>,
    ctx: Ctx,
    caller: axum::Extension<super::Caller>,
) -> Result<Json<serde_json::Value>, ErrorBody> {
    let principal = ctx.principal()?;
    let client = state.pool.get().await?;
    let user = users::get(&**client, principal.user_id).await?;
    let (via, csrf) = match &principal.credential {
        Credential::Session { csrf, .. } => ("session", Some(csrf.clone())),
        Credential::Token { .. } => ("token", None),
    };
    Ok(Json(json!({
        "user": user,
        "permissions": principal.effective_permissions(),
        "authenticated_by": via,
        "csrf_token": csrf,
        "mfa_enrolment_required": caller.mfa_enrolment_pending,
    })))
}
