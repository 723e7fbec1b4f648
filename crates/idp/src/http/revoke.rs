//! `POST /oauth2/{server}/v1/revoke` (RFC 7009). The client authenticates; a live access
//! token issued to it is recorded as revoked, a refresh token revokes its whole family, (in the database, so every node's
//! introspection sees it) until it would have expired. "Invalid tokens do not cause an
//! error response" (§2.2): the answer is 200 either way.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::OAuthError;
use serde_json::Value;

use super::introspect::live_claims;
use super::{client_auth, find_server, form};
use crate::Idp;
use crate::error::EndpointError;

pub async fn revoke(
    State(idp): State<Arc<Idp>>,
    Path(server): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EndpointError> {
    let view = idp.view.get();
    let server = find_server(&view, &server)?;
    let params = form::read_form(&headers, body).await?;
    let client = client_auth::authenticate(&idp, &view, &headers, &params)?;
    let token = params.require("token")?;

    if let Some(claims) = live_claims(&idp, &view, &server, token).await? {
        // §2.1: the server "verifies whether the token was issued to the client making the
        // revocation request. If this validation fails, the request is refused".
        if claims.get("cid").and_then(Value::as_str) != Some(client.client.client_id.as_str()) {
            return Err(OAuthError::unauthorized_client("The token was not issued to this client.").into());
        }
        if let (Some(jti), Some(exp)) = (
            claims.get("jti").and_then(Value::as_str),
            claims.get("exp").and_then(Value::as_i64),
        ) {
            idp.store.revoke_token(&idp.org_id, jti, exp).await?;
        }
    } else if !token.contains('.') && token.len() <= 128 {
        // A refresh token: §2.1 "If the token passed to the request is a refresh token
        // ... the authorization server SHOULD also invalidate all access tokens based on
        // the same authorization grant" — the whole family goes.
        let hash = portcullis_jose::token_hash(token);
        if let Some(rt) = idp.store.refresh_token(&idp.org_id, &hash).await? {
            if rt.client_id != client.client.client_id {
                return Err(
                    OAuthError::unauthorized_client("The token was not issued to this client.").into(),
                );
            }
            idp.store
                .revoke_family(&idp.org_id, &rt.family_id, crate::clock::now())
                .await?;
        }
    }
    let mut r = StatusCode::OK.into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
