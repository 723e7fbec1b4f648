//! HTTP routes of the identity provider, in Okta's URL layout:
//! `/oauth2/{server}/.well-known/*` and `/oauth2/{server}/v1/*`, and the hosted
//! sign-in pages at `/signin`.

mod authorize;
pub mod browser;
pub mod client_auth;
mod discovery;
pub mod form;
mod introspect;
mod logout;
pub mod pages;
mod revoke;
mod signin;
mod token;
mod userinfo;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
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
            get(authorize::authorize).post(authorize::authorize),
        )
        .route(
            "/oauth2/{server}/v1/userinfo",
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .route(
            "/oauth2/{server}/v1/logout",
            get(logout::logout).post(logout::logout),
        )
        .route("/signin", get(signin::page).post(signin::submit))
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(form::MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn_with_state(idp.clone(), cors))
        .layer(axum::middleware::from_fn(access_log))
        .with_state(idp)
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

/// CORS for browser apps (single-page apps calling the token, userinfo, revoke and key
/// endpoints): an `Origin` is trusted when it is the origin of a registered redirect URI
/// (Okta's trusted origins). Sign-in pages, `/v1/authorize` and `/v1/logout` are
/// navigations and get no CORS headers.
async fn cors(
    axum::extract::State(idp): axum::extract::State<Arc<Idp>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::{HeaderValue, Method, header};
    let path = req.uri().path();
    let api =
        path.starts_with("/oauth2/") && !path.ends_with("/v1/authorize") && !path.ends_with("/v1/logout");
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| api && idp.view.get().trusted_origins.contains(*o))
        .map(String::from);
    let Some(origin) = origin else {
        let mut resp = next.run(req).await;
        if api {
            // The answer differs by Origin: caches must not serve one origin's to another.
            resp.headers_mut()
                .append(header::VARY, HeaderValue::from_static("Origin"));
        }
        return resp;
    };
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if preflight {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }
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
