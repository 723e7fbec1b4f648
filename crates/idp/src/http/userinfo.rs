//! `GET|POST /oauth2/{server}/v1/userinfo` (OpenID Connect Core §5.3): the signed-in
//! user's claims for an access token this server issued with `openid`. Errors are RFC
//! 6750 §3: 401 with `WWW-Authenticate: Bearer error="invalid_token"`, 403
//! `insufficient_scope` when `openid` was not granted.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::find_server;
use super::introspect::live_claims;
use crate::Idp;
use crate::error::EndpointError;
use crate::token::{Subject, user_claims};

fn bearer_error(status: StatusCode, error: &str, description: &str) -> Response {
    let challenge = format!("Bearer error=\"{error}\", error_description=\"{description}\"");
    let mut r = (
        status,
        axum::Json(serde_json::json!({"error": error, "error_description": description})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub async fn userinfo(
    State(idp): State<Arc<Idp>>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Result<Response, EndpointError> {
    let view = idp.view.get();
    let server = find_server(&view, &server)?;
    let mut auths = headers.get_all(header::AUTHORIZATION).iter();
    let token = match (auths.next().and_then(|v| v.to_str().ok()), auths.next()) {
        (Some(v), None) => match v.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
                t.trim().to_owned()
            }
            _ => {
                return Ok(bearer_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_request",
                    "A Bearer access token is required.",
                ));
            }
        },
        (None, _) => {
            let mut r = StatusCode::UNAUTHORIZED.into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Ok(r);
        }
        _ => {
            return Ok(bearer_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Send one Authorization header.",
            ));
        }
    };
    let Some(claims) = live_claims(&idp, &view, &server, &token).await? else {
        return Ok(bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "The access token is invalid.",
        ));
    };
    let scopes: Vec<String> = claims
        .get("scp")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default();
    if !scopes.iter().any(|s| s == "openid") {
        return Ok(bearer_error(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "The access token must be granted the 'openid' scope.",
        ));
    }
    let Some(uid) = claims.get("uid").and_then(Value::as_str) else {
        return Ok(bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "The access token does not belong to a user.",
        ));
    };
    let user = match idp.store.user_by_id(&idp.org_id, uid).await? {
        Some(c) if c.user.status.keeps_grants() => c.user,
        _ => {
            return Ok(bearer_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The access token is invalid.",
            ));
        }
    };
    let mut out = Map::new();
    out.insert("sub".into(), user.id.clone().into());
    user_claims(&mut out, &user, &scopes);
    // The server's ID-token claims, as Okta's userinfo returns them.
    let cid = claims.get("cid").and_then(Value::as_str).unwrap_or_default();
    if let Some(client) = view.clients.get(cid) {
        let value = user.expression_value();
        let subject = Subject::User {
            user: &user,
            value: &value,
            auth_time: 0,
        };
        crate::token::add_id_claims(&mut out, &server, &scopes, client, &subject);
    }
    let mut r = axum::Json(Value::Object(out)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
