//! `POST /oauth2/{server}/v1/introspect` (RFC 7662). The caller authenticates as a client
//! of the org. A token is active only if this server signed it with a published key, it
//! has not expired, and it has not been revoked; for anything else the answer is
//! `{"active": false}` and nothing more (§2.2).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::{client_auth, find_server, form};
use crate::Idp;
use crate::error::EndpointError;
use crate::view::{OrgView, ServerView};

/// The claims of a token this server issued and has not revoked, if it is live.
pub(crate) async fn live_claims(
    idp: &Idp,
    view: &OrgView,
    server: &ServerView,
    token: &str,
) -> Result<Option<Map<String, Value>>, EndpointError> {
    let Ok(claims) = server.verifier.verify(token) else {
        return Ok(None);
    };
    // A token outlives neither its client's deletion nor its deactivation.
    let client_live = claims
        .get("cid")
        .and_then(Value::as_str)
        .and_then(|cid| view.clients.get(cid))
        .is_some_and(|c| c.client.status.is_active());
    if !client_live {
        return Ok(None);
    }
    let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
        return Ok(None);
    };
    if idp.store.is_revoked(&idp.org_id, jti).await? {
        return Ok(None);
    }
    Ok(Some(claims))
}

pub async fn introspect(
    State(idp): State<Arc<Idp>>,
    Path(server): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EndpointError> {
    let view = idp.view.get();
    let server = find_server(&view, &server)?;
    let params = form::read_form(&headers, body).await?;
    let caller = client_auth::authenticate(&idp, &view, &headers, &params)?;
    let token = params.require("token")?;
    let claims = live_claims(&idp, &view, &server, token).await?;
    // A public client proves nothing but its id, so it may only introspect its own tokens.
    let claims = claims.filter(|c| {
        !caller.client.app_type.is_public()
            || c.get("cid").and_then(Value::as_str) == Some(caller.client.client_id.as_str())
    });

    let body = match claims {
        None => serde_json::json!({ "active": false }),
        Some(mut claims) => {
            let mut out = Map::new();
            out.insert("active".into(), true.into());
            out.insert("token_type".into(), "Bearer".into());
            for k in [
                "scope",
                "client_id",
                "sub",
                "exp",
                "iat",
                "nbf",
                "aud",
                "iss",
                "jti",
                "uid",
            ] {
                if let Some(v) = claims.remove(k) {
                    out.insert(k.into(), v);
                }
            }
            out.insert("username".into(), out.get("sub").cloned().unwrap_or(Value::Null));
            // Custom claims, as Okta returns them; the Okta-internal duplicates are dropped.
            for (k, v) in claims {
                if !matches!(k.as_str(), "ver" | "cid" | "scp") {
                    out.insert(k, v);
                }
            }
            Value::Object(out)
        }
    };
    let mut r = axum::Json(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
