//! `POST /oauth2/{server}/v1/token` (RFC 6749 §3.2): parse the bounded form, authenticate
//! the client, then hand the request to the grant handler registered for `grant_type`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::{GrantType, OAuthError, OAuthErrorCode};

use super::{client_auth, find_server, form};
use crate::Idp;
use crate::error::EndpointError;
use crate::grants::GrantRequest;

pub async fn token(
    State(idp): State<Arc<Idp>>,
    Path(server): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EndpointError> {
    let view = idp.view.get();
    let server = find_server(&view, &server)?;
    let params = form::read_form(&headers, body).await?;
    let client = client_auth::authenticate(&idp, &view, &headers, &params)?;

    let grant_name = params.require("grant_type")?;
    let handler = GrantType::parse(grant_name)
        .and_then(|g| idp.grants.get(g))
        .ok_or_else(|| {
            OAuthError::new(
                OAuthErrorCode::UnsupportedGrantType,
                format!(
                    "The grant type '{}' is not supported by this authorization server.",
                    grant_name.chars().take(80).collect::<String>()
                ),
            )
        })?;
    let grant = handler.grant_type();
    if !client.client.grant_types.contains(&grant) {
        return Err(OAuthError::unauthorized_client(format!(
            "The client is not authorized to use the '{}' grant type.",
            grant.as_str()
        ))
        .into());
    }
    if grant == GrantType::ClientCredentials && client.client.app_type.is_public() {
        return Err(OAuthError::unauthorized_client(
            "Public clients cannot use the client_credentials grant.",
        )
        .into());
    }
    let response = handler
        .handle(GrantRequest {
            idp: &idp,
            server: &server,
            client: &client,
            params: &params,
        })
        .await?;
    let mut r = axum::Json(response).into_response();
    // RFC 6749 §5.1: "Cache-Control: no-store" and "Pragma: no-cache".
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(r)
}
