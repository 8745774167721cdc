//! The API's middleware: [`authenticate`] (session cookie with CSRF, or
//! bearer token; the [`Caller`] it leaves for what follows) and
//! [`authorize`] (the route's declared [`Access`] against the caller).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::authz::{Access, Principal};
use crate::http::error::{ErrorBody, ErrorCode};
use crate::identity::{sessions, tokens};

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
pub(super) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
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
pub(super) async fn authorize(
    State(access): State<Access>,
    request: Request,
    next: Next,
) -> Response {
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
