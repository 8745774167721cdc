//! Users and roles, managed by admins. Nobody can sign up: admins create
//! accounts with an initial password the person then changes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::support::{check_display_name, new_password_hash};
use super::{invalid_field, parse_id, Api, ApiJson, Ctx, Method};
use crate::app::AppState;
use crate::audit::{Event, Outcome};
use crate::authz::{Access, Permission, Role};
use crate::http::error::{ErrorBody, ErrorCode};
use crate::identity::{sessions, users};

pub fn routes(api: Api) -> Api {
    let read = Access::Permission(Permission::UsersRead);
    let manage = Access::Permission(Permission::UsersManage);
    api.route(Method::Get, "/api/v1/users", read, list)
        .route(Method::Post, "/api/v1/users", manage, create)
        .route(Method::Get, "/api/v1/users/{id}", read, get_one)
        .route(Method::Patch, "/api/v1/users/{id}", manage, update)
        .route(
            Method::Post,
            "/api/v1/users/{id}/password",
            manage,
            reset_password,
        )
        .route(
            Method::Delete,
            "/api/v1/users/{id}/sessions",
            manage,
            revoke_sessions,
        )
        .route(Method::Delete, "/api/v1/users/{id}/mfa", manage, reset_mfa)
}

fn no_user(id: i64) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotFound, format!("no user with id {id}"))
}

fn parse_role(raw: &str) -> Result<Role, ErrorBody> {
    raw.parse::<Role>().map_err(|_| {
        invalid_field(
            "role",
            format!("unknown role {raw:?}; expected admin, editor, viewer or auditor"),
        )
    })
}

async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ErrorBody> {
    let client = state.pool.get().await?;
    Ok(Json(json!({ "items": users::list(&**client).await? })))
}

async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<users::User>, ErrorBody> {
    let id = parse_id(&id, "user")?;
    let client = state.pool.get().await?;
    users::get(&**client, id)
        .await?
        .map(Json)
        .ok_or_else(|| no_user(id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    username: String,
    #[serde(default)]
    display_name: String,
    role: String,
    password: String,
    #[serde(default)]
    email: Option<String>,
}

/// An address as entered: trimmed, empty meaning none, checked.
fn email_of(raw: Option<&str>) -> Result<Option<String>, ErrorBody> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(address) => crate::config::check_address(address)
            .map(|()| Some(address.to_string()))
            .map_err(|m| invalid_field("email", m)),
    }
}

async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    ApiJson(req): ApiJson<CreateUser>,
) -> Result<Response, ErrorBody> {
    let username = req.username.trim().to_lowercase();
    users::check_username(&username).map_err(|m| invalid_field("username", m))?;
    check_display_name(&req.display_name)?;
    let role = parse_role(&req.role)?;
    let email = email_of(req.email.as_deref())?;
    let hash = new_password_hash(&req.password, &username, &req.display_name, "password").await?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let Some(user) = users::create(&*tx, &username, &req.display_name, role, &hash).await? else {
        return Err(ErrorBody::new(
            ErrorCode::UsernameTaken,
            format!("a user named {username:?} already exists; pick another name"),
        ));
    };
    let user = match &email {
        Some(address) => users::set_email(&*tx, user.id, Some(address))
            .await?
            .unwrap_or(user),
        None => user,
    };
    ctx.audit_event(
        &tx,
        &Event::new("user.create", format!("user:{}", user.id), Outcome::Success).details(
            json!({ "username": user.username, "role": role, "email_set": email.is_some() }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default)]
    display_name: Option<String>,
    /// `null` or `""` clears it.
    #[serde(default, with = "super::double_option")]
    email: Option<Option<String>>,
}

async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateUser>,
) -> Result<Json<users::User>, ErrorBody> {
    let id = parse_id(&id, "user")?;
    let role = req.role.as_deref().map(parse_role).transpose()?;
    if let Some(name) = &req.display_name {
        check_display_name(name)?;
    }
    let email = req
        .email
        .as_ref()
        .map(|e| email_of(e.as_deref()))
        .transpose()?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let Some(before) = users::get(&*tx, id).await? else {
        return Err(no_user(id));
    };
    let loses_admin = before.role == Role::Admin
        && !before.disabled
        && (role.is_some_and(|r| r != Role::Admin) || req.disabled == Some(true));
    if loses_admin && users::other_active_admins(&*tx, id).await? == 0 {
        return Err(ErrorBody::new(
            ErrorCode::LastAdmin,
            "this is the last enabled admin; make another user admin first",
        ));
    }
    let Some(mut after) =
        users::update(&*tx, id, role, req.disabled, req.display_name.as_deref()).await?
    else {
        return Err(no_user(id));
    };
    if let Some(email) = &email {
        after = users::set_email(&*tx, id, email.as_deref())
            .await?
            .ok_or_else(|| no_user(id))?;
    }
    // A role change or disabling ends the user's sessions: they sign in
    // again and get a new session id with the new privileges.
    let privileges_changed = before.role != after.role || (after.disabled && !before.disabled);
    let sessions_ended = if privileges_changed {
        sessions::revoke_all(&*tx, id).await?
    } else {
        0
    };
    ctx.audit_event(
        &tx,
        &Event::new("user.update", format!("user:{id}"), Outcome::Success).details(json!({
            "role": { "from": before.role, "to": after.role },
            "disabled": { "from": before.disabled, "to": after.disabled },
            "display_name_changed": before.display_name != after.display_name,
            "email_changed": before.email != after.email,
            "sessions_ended": sessions_ended,
        })),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetPassword {
    password: String,
}

async fn reset_password(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ResetPassword>,
) -> Result<Response, ErrorBody> {
    let id = parse_id(&id, "user")?;
    let mut client = state.pool.get().await?;
    let Some(user) = users::get(&**client, id).await? else {
        return Err(no_user(id));
    };
    let hash = new_password_hash(
        &req.password,
        &user.username,
        &user.display_name,
        "password",
    )
    .await?;
    let tx = client.transaction().await?;
    users::set_password(&*tx, id, &hash).await?;
    let ended = sessions::revoke_all(&*tx, id).await?;
    ctx.audit_event(
        &tx,
        &Event::new(
            "user.password_reset",
            format!("user:{id}"),
            Outcome::Success,
        )
        .details(json!({ "sessions_ended": ended })),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn revoke_sessions(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ErrorBody> {
    let id = parse_id(&id, "user")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if users::get(&*tx, id).await?.is_none() {
        return Err(no_user(id));
    }
    let ended = sessions::revoke_all(&*tx, id).await?;
    ctx.audit_event(
        &tx,
        &Event::new(
            "user.sessions_revoke",
            format!("user:{id}"),
            Outcome::Success,
        )
        .details(json!({ "sessions_ended": ended })),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "sessions_ended": ended })))
}

async fn reset_mfa(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Result<Response, ErrorBody> {
    let id = parse_id(&id, "user")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if !users::reset_mfa(&*tx, id).await? {
        return Err(no_user(id));
    }
    let ended = sessions::revoke_all(&*tx, id).await?;
    ctx.audit_event(
        &tx,
        &Event::new("user.mfa_reset", format!("user:{id}"), Outcome::Success)
            .details(json!({ "sessions_ended": ended })),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
