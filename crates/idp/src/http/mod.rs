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
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(form::MAX_FORM_BYTES))
        .with_state(idp)
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
