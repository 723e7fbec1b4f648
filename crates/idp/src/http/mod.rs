//! HTTP routes of the identity provider, in Okta's URL layout:
//! `/oauth2/{server}/.well-known/*` and `/oauth2/{server}/v1/*`.

pub mod client_auth;
mod discovery;
pub mod form;
mod introspect;
mod revoke;
mod token;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};

use crate::Idp;
use crate::error::{EndpointError, okta_error};
use crate::view::{OrgView, ServerView};

/// Longest authorization server id accepted in a path.
const MAX_SERVER_ID_LEN: usize = 64;

/// The identity provider's routes.
pub fn router(idp: Arc<Idp>) -> Router {
    Router::new()
        .route(
            "/oauth2/{server}/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route(
            "/oauth2/{server}/.well-known/oauth-authorization-server",
            get(discovery::oauth_metadata),
        )
        .route("/oauth2/{server}/v1/keys", get(discovery::keys))
        .route("/oauth2/{server}/v1/token", post(token::token))
        .route("/oauth2/{server}/v1/introspect", post(introspect::introspect))
        .route("/oauth2/{server}/v1/revoke", post(revoke::revoke))
        .route(
            "/oauth2/{server}/v1/authorize",
            get(authorize_unavailable).post(authorize_unavailable),
        )
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(form::MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn(access_log))
        .with_state(idp)
}

/// Interactive sign-in arrives with users; until then the endpoint says so plainly, shown
/// to the user rather than redirected (no redirect URI can be verified: RFC 6749 §4.1.2.1).
async fn authorize_unavailable() -> EndpointError {
    EndpointError::OAuth(portcullis_core::OAuthError::new(
        portcullis_core::OAuthErrorCode::InvalidRequest,
        "Interactive sign-in (response_type=code) is not enabled on this server yet; use client_credentials.",
    ))
}

/// One log line per request: method, path (never the query: it may carry secrets),
/// status and latency. JSON lines with `--log-format json`.
async fn access_log(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(256).collect();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::info!(
        target: "access",
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
    );
    resp
}

async fn not_found() -> Response {
    okta_error(StatusCode::NOT_FOUND, "E0000007", "Not found: Resource not found")
}

/// The active server named in the path, or Okta's 404.
pub(crate) fn find_server(view: &OrgView, id: &str) -> Result<Arc<ServerView>, EndpointError> {
    if id.len() > MAX_SERVER_ID_LEN {
        return Err(EndpointError::ServerNotFound("(too long)".into()));
    }
    view.server(id)
        .cloned()
        .ok_or_else(|| EndpointError::ServerNotFound(id.to_owned()))
}
