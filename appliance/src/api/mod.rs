//! The REST API under `/api/v1`: route registration (every route declares
//! its [`Access`]), authentication, authorization, rate limits,
//! idempotency keys, and the extractors handlers share.
//!
//! A request's path: request id → security headers → access log/metrics →
//! body limit → [`authenticate`] (cookie or bearer; CSRF) → [`ratelimit`] →
//! [`idempotency`] → the route's [`authorize`] layer → handler.

mod account;
mod audit_log;
mod auth;
mod collections;
mod exports;
pub mod idempotency;
mod imports;
mod jobs;
pub mod openapi;
pub mod ratelimit;
mod records;
mod system;
mod users;
mod webhooks;

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::audit;
use crate::authz::{Access, Principal};
use crate::http::error::{ErrorBody, ErrorCode};
use crate::http::request_id::RequestId;
use crate::identity::{sessions, tokens};

/// HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One registered route, as the OpenAPI check and the authorization
/// matrix test see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    /// The full path, with `{param}` placeholders.
    pub path: &'static str,
    pub access: Access,
}

/// The API's routes. The only way to add one is [`Api::route`], which
/// requires an [`Access`]: a route without a declared permission cannot be
/// registered.
pub struct Api {
    router: Router<AppState>,
    specs: Vec<RouteSpec>,
}

impl Api {
    fn new() -> Api {
        Api {
            router: Router::new(),
            specs: Vec::new(),
        }
    }

    fn route<H, T>(mut self, method: Method, path: &'static str, access: Access, handler: H) -> Api
    where
        H: axum::handler::Handler<T, AppState>,
        T: 'static,
    {
        let method_router = match method {
            Method::Get => get(handler),
            Method::Post => post(handler),
            Method::Patch => patch(handler),
            Method::Delete => delete(handler),
        }
        .route_layer(from_fn_with_state(access, authorize));
        self.router = self.router.route(path, method_router);
        self.specs.push(RouteSpec {
            method,
            path,
            access,
        });
        self
    }
}

fn api() -> Api {
    let api = Api::new();
    let api = auth::routes(api);
    let api = account::routes(api);
    let api = users::routes(api);
    let api = audit_log::routes(api);
    let api = system::routes(api);
    let api = collections::routes(api);
    let api = records::routes(api);
    let api = exports::routes(api);
    let api = imports::routes(api);
    let api = jobs::routes(api);
    let api = webhooks::routes(api);
    openapi::routes(api)
}

/// Every API route with its access rule.
pub fn routes() -> Vec<RouteSpec> {
    api().specs
}

/// The `/api/v1` router with its middleware.
pub fn router(state: AppState) -> Router<AppState> {
    api()
        .router
        .layer(from_fn_with_state(state.clone(), idempotency::middleware))
        .layer(from_fn_with_state(state.clone(), ratelimit::middleware))
        .layer(from_fn_with_state(state, authenticate))
}

/// Who is calling, set by [`authenticate`] on every API request.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub principal: Option<Principal>,
    /// MFA is required for everyone and this user has not enrolled yet:
    /// only their own account routes are open.
    pub mfa_enrolment_pending: bool,
    /// A session cookie was sent but the session is over.
    pub session_expired: bool,
}

fn unsafe_method(method: &axum::http::Method) -> bool {
    !matches!(
        *method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    )
}

/// An `Origin` header naming another site (browsers send it on cross-site
/// requests); requests without one are not from a browser page.
fn foreign_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    origin_host != Some(host)
}

/// Resolves the caller from `Authorization: Bearer` or the session cookie,
/// and stops cross-site and CSRF-less state changes.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    // Only the Bearer scheme is ours (case-insensitive, RFC 9110); another
    // scheme (e.g. a proxy's Basic credentials) is not a token.
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string());
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(sessions::from_cookie_header)
        .map(str::to_string);
    let unsafe_method = unsafe_method(request.method());
    let mut caller = Caller::default();
    if let Some(secret) = bearer {
        match tokens::authenticate(&state.pool, &state.caches.tokens, &secret).await {
            Ok(Some(token)) => {
                caller.principal = Some(token.principal);
                caller.mfa_enrolment_pending = token.mfa_enrolment_pending;
            }
            Ok(None) => {
                return ErrorBody::new(
                    ErrorCode::Unauthenticated,
                    "the API token is invalid, expired or revoked; create a new one under \
                     My account > API tokens",
                )
                .into_response()
            }
            Err(tokens::LookupError::Pool(e)) => return ErrorBody::from(e).into_response(),
            Err(tokens::LookupError::Db(e)) => return ErrorBody::from(e).into_response(),
        }
    } else if let Some(id) = cookie {
        let client = match state.pool.get().await {
            Ok(c) => c,
            Err(e) => return ErrorBody::from(e).into_response(),
        };
        match sessions::authenticate(&client, &state.keys, &id, state.auth.lifetimes).await {
            Ok(Some(auth)) => {
                if unsafe_method {
                    let sent = request
                        .headers()
                        .get("x-csrf-token")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let matches = match &auth.principal.credential {
                        crate::authz::Credential::Session { id_digest, .. } => {
                            state.keys.csrf_matches(id_digest, sent)
                        }
                        crate::authz::Credential::Token { .. } => true,
                    };
                    if !matches {
                        return ErrorBody::new(
                            ErrorCode::CsrfFailed,
                            "this request changes something but lacks the session's \
                                 X-CSRF-Token header; reload the console and try again",
                        )
                        .into_response();
                    }
                }
                caller.mfa_enrolment_pending = auth.mfa_enrolment_pending;
                caller.principal = Some(auth.principal);
            }
            Ok(None) => caller.session_expired = true,
            Err(e) => return ErrorBody::from(e).into_response(),
        }
    }
    let by_session = caller.principal.as_ref().is_some_and(Principal::is_session);
    let by_token = caller.principal.is_some() && !by_session;
    if unsafe_method && !by_token && foreign_origin(request.headers()) {
        return ErrorBody::new(
            ErrorCode::CsrfFailed,
            "cross-site requests cannot change anything; use the console on this server's own \
             address",
        )
        .into_response();
    }
    request.extensions_mut().insert(caller);
    // A change made through this replica is visible to its next request at
    // once; other replicas hear of it by notification (`crate::cache`).
    // Record writes change neither tokens nor catalogs.
    let clears_caches = unsafe_method && !is_record_path(request.uri().path());
    let response = next.run(request).await;
    if clears_caches {
        state.caches.clear();
    }
    response
}

/// `/api/v1/collections/{name}/records…`
fn is_record_path(path: &str) -> bool {
    path.split('/').nth(5) == Some("records") && path.starts_with("/api/v1/collections/")
}

/// The per-route check: does the caller have what the route declared?
async fn authorize(State(access): State<Access>, request: Request, next: Next) -> Response {
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_default();
    let refusal = match (access, &caller.principal) {
        (Access::Public, _) => None,
        (_, None) if caller.session_expired => Some(ErrorBody::new(
            ErrorCode::Unauthenticated,
            "your session has ended; sign in again",
        )),
        (_, None) => Some(ErrorBody::new(
            ErrorCode::Unauthenticated,
            "sign in, or send an API token as `Authorization: Bearer <token>`",
        )),
        (Access::Session, Some(p)) if !p.is_session() => Some(ErrorBody::new(
            ErrorCode::SessionRequired,
            "API tokens cannot manage accounts or tokens; sign in to the console to do this",
        )),
        (Access::Session | Access::Authenticated, Some(_)) => None,
        (Access::Permission(_), Some(_)) if caller.mfa_enrolment_pending => Some(ErrorBody::new(
            ErrorCode::MfaEnrolmentRequired,
            "this installation requires two-factor authentication: set it up under My account \
             before doing anything else",
        )),
        (Access::Permission(needed), Some(p)) if !p.has(needed) => Some(
            ErrorBody::new(
                ErrorCode::Forbidden,
                format!(
                    "this needs the `{needed}` permission, which your {} does not have; ask an \
                     administrator",
                    if p.is_session() { "role" } else { "API token" }
                ),
            )
            .with_details(serde_json::json!({ "required_permission": needed.as_str() })),
        ),
        (Access::Permission(_), Some(_)) => None,
    };
    match refusal {
        Some(body) => body.into_response(),
        None => next.run(request).await,
    }
}

/// The request's caller, client address and id, for handlers.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub principal: Option<Principal>,
    pub client_addr: String,
    pub request_id: String,
    pub user_agent: String,
}

impl Ctx {
    /// The caller; routes other than public ones always have one.
    pub fn principal(&self) -> Result<&Principal, ErrorBody> {
        self.principal
            .as_ref()
            .ok_or_else(|| ErrorBody::new(ErrorCode::Unauthenticated, "sign in to do this"))
    }

    /// Audit context for the authenticated caller.
    pub fn audit(&self) -> audit::Context {
        audit::Context {
            actor_id: self.principal.as_ref().map(|p| p.user_id),
            actor: self
                .principal
                .as_ref()
                .map(|p| p.username.clone())
                .unwrap_or_else(|| "anonymous".to_string()),
            client_addr: self.client_addr.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

impl Ctx {
    /// Appends `event`, done by this caller, to the audit log in `tx`.
    pub async fn audit_event(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        event: &audit::Event,
    ) -> Result<i64, ErrorBody> {
        Ok(audit::append(tx, &self.audit(), event).await?)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ErrorBody;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Ctx, ErrorBody> {
        Ok(Ctx {
            principal: parts
                .extensions
                .get::<Caller>()
                .and_then(|c| c.principal.clone()),
            client_addr: client_addr(&parts.extensions),
            request_id: parts
                .extensions
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
        })
    }
}

/// The TCP peer's address (proxies are not trusted to name the client).
pub fn client_addr(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default()
}

/// A JSON body whose rejections use the API's error shape.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ErrorBody;

    async fn from_request(request: Request, state: &S) -> Result<ApiJson<T>, ErrorBody> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ErrorBody::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with `Content-Type: application/json`",
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ErrorBody::new(
                    ErrorCode::PayloadTooLarge,
                    "the request body is larger than this server accepts (http.body_limit_bytes)",
                ))
            }
            Err(e) => Err(ErrorBody::new(
                ErrorCode::InvalidRequest,
                format!(
                    "the request body is not what this endpoint expects: {}",
                    e.body_text()
                ),
            )),
        }
    }
}

/// Query parameters whose rejections use the API's error shape.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ErrorBody;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ApiQuery<T>, ErrorBody> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| {
                ErrorBody::new(
                    ErrorCode::InvalidRequest,
                    format!("invalid query parameters: {}", e.body_text()),
                )
            })
    }
}

/// A numeric id from the path; anything else is "not found".
pub fn parse_id(raw: &str, what: &str) -> Result<i64, ErrorBody> {
    raw.parse::<i64>()
        .map_err(|_| ErrorBody::new(ErrorCode::NotFound, format!("no {what} with id {raw:?}")))
}

/// A listing's `limit`: 1 to 200, 50 when absent.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ErrorBody> {
    let limit = limit.unwrap_or(50);
    if (1..=200).contains(&limit) {
        Ok(limit)
    } else {
        Err(invalid_field("limit", "between 1 and 200"))
    }
}

/// A field-level validation failure.
pub fn invalid_field(field: &str, message: impl Into<String>) -> ErrorBody {
    let message = message.into();
    ErrorBody::new(ErrorCode::ValidationFailed, format!("`{field}`: {message}"))
        .with_details(serde_json::json!({ "fields": [{ "field": field, "message": message }] }))
}

/// Runs CPU-heavy work (password hashing) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ErrorBody> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "blocking task failed");
        ErrorBody::new(ErrorCode::Internal, "internal error; see the server log")
    })
}

/// Tells a missing key (`None`) from an explicit `null` (`Some(None)`).
pub mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}
