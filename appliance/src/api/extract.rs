//! Extractors handlers share: [`Ctx`] (caller, client address, request
//! id), JSON bodies and query strings whose rejections are API errors, and
//! [`CollectionPath`] (the collection a record read names, with the
//! connection it was read on).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::Json;
use serde::de::DeserializeOwned;

use super::middleware::Caller;
use super::support::{load_cached, no_collection, reload};
use crate::app::{AppState, Caches};
use crate::audit;
use crate::authz::Principal;
use crate::http::error::{ErrorBody, ErrorCode};
use crate::http::request_id::RequestId;
use crate::records::Collection;

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

    /// Appends several audit entries of this request, in order.
    pub async fn audit_events(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        events: &[audit::Event],
    ) -> Result<(), ErrorBody> {
        Ok(audit::append_many(tx, &self.audit(), events).await?)
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

/// The collection a record read names in its path (`{collection}`), with
/// the pool connection it was read on (the read goes on with it): the name
/// checked, then the replica's catalog cache, else the catalog; 404
/// `not_found` when there is no such collection. A read that finds the
/// table changed under it (`records::schema_moved`) calls
/// [`CollectionPath::reload`] and reads again.
pub struct CollectionPath {
    pub name: String,
    pub collection: Arc<Collection>,
    pub client: deadpool_postgres::Client,
    caches: Arc<Caches>,
}

impl CollectionPath {
    /// Forgets the replica's catalogs and this connection's prepared
    /// statements, and reads the collection afresh.
    pub async fn reload(&mut self) -> Result<(), ErrorBody> {
        self.collection = reload(&self.caches, &self.client, &self.name).await?;
        Ok(())
    }
}

impl FromRequestParts<AppState> for CollectionPath {
    type Rejection = ErrorBody;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<CollectionPath, ErrorBody> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| no_collection(""))?;
        let name = params.get("collection").cloned().unwrap_or_default();
        let client = state.pool.get().await?;
        let collection = load_cached(&state.caches, &client, &name).await?;
        Ok(CollectionPath {
            name,
            collection,
            client,
            caches: state.caches.clone(),
        })
    }
}
