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
mod batch;
mod collections;
mod exports;
pub mod idempotency;
mod imports;
mod jobs;
pub mod openapi;
pub mod ratelimit;
mod record_changes;
mod records;
mod system;
mod users;
mod webhooks;

mod extract;
mod middleware;
mod support;

pub use extract::{client_addr, ApiJson, ApiQuery, CollectionPath, Ctx};
pub use middleware::Caller;
use middleware::{authenticate, authorize};
pub use support::{blocking, double_option, invalid_field, page_limit, parse_id};

use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, patch, post};
use axum::Router;

use crate::app::AppState;
use crate::authz::Access;

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
    let api = batch::routes(api);
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
