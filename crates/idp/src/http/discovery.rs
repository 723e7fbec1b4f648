//! Discovery documents (OpenID Connect Discovery 1.0 §4, RFC 8414 §3) and the JWKS.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::find_server;
use crate::Idp;
use crate::error::EndpointError;

fn json_response(body: String, cache: HeaderValue) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, cache);
    r
}

fn cache_for(secs: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("max-age={secs}, must-revalidate"))
        .unwrap_or(HeaderValue::from_static("no-cache"))
}

pub async fn openid_configuration(
    State(idp): State<Arc<Idp>>,
    Path(server): Path<String>,
) -> Result<Response, EndpointError> {
    let s = find_server(&idp.view.get(), &server)?;
    Ok(json_response(
        s.openid_configuration.clone(),
        cache_for(idp.settings.jwks_max_age_secs),
    ))
}

pub async fn oauth_metadata(
    State(idp): State<Arc<Idp>>,
    Path(server): Path<String>,
) -> Result<Response, EndpointError> {
    let s = find_server(&idp.view.get(), &server)?;
    Ok(json_response(
        s.oauth_authorization_server.clone(),
        cache_for(idp.settings.jwks_max_age_secs),
    ))
}

/// The published keys. Keys appear here before they sign and stay after they stop, so a
/// verifier that honours `max-age` never meets an unknown `kid`.
pub async fn keys(
    State(idp): State<Arc<Idp>>,
    Path(server): Path<String>,
) -> Result<Response, EndpointError> {
    let s = find_server(&idp.view.get(), &server)?;
    Ok(json_response(
        s.jwks_json.clone(),
        cache_for(idp.settings.jwks_max_age_secs),
    ))
}
