//! Client authentication at the token, introspection and revocation endpoints:
//! `client_secret_basic` (RFC 6749 §2.3.1, with the id and secret form-urlencoded inside
//! Basic), `client_secret_post`, and `none` for public clients. "The client MUST NOT use
//! more than one authentication method in each request" (§2.3).

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use portcullis_core::{AuthMethod, OAuthError};

use crate::Idp;
use crate::http::form::Params;
use crate::view::{ClientView, OrgView};

/// Stand-in hash so that an unknown client costs the same as a wrong secret.
const DUMMY_HASH: &str = "hmac-sha256$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

struct Presented {
    client_id: String,
    secret: Option<String>,
    method: AuthMethod,
}

fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| ());
    let parsed = decoded.and_then(|raw| {
        let text = String::from_utf8(raw).map_err(|_| ())?;
        let (id, secret) = text.split_once(':').ok_or(())?;
        // RFC 6749 §2.3.1: both parts are application/x-www-form-urlencoded.
        let unescape = |s: &str| -> String {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok((unescape(id), unescape(secret)))
    });
    Some(parsed)
}

fn presented(headers: &HeaderMap, params: &Params) -> Result<Presented, OAuthError> {
    let basic = basic_credentials(headers);
    let post_secret = params.get("client_secret");
    let post_id = params.get("client_id");
    match (basic, post_secret) {
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "The client used more than one authentication method; use exactly one.",
        )),
        (Some(Err(())), None) => Err(OAuthError::invalid_client(
            "Client authentication failed: the Basic credentials are malformed.",
        )
        .with_basic_challenge(true)),
        (Some(Ok((id, secret))), None) => {
            if post_id.is_some_and(|p| p != id) {
                return Err(OAuthError::invalid_request(
                    "The client_id parameter does not match the authenticated client.",
                ));
            }
            Ok(Presented {
                client_id: id,
                secret: Some(secret),
                method: AuthMethod::ClientSecretBasic,
            })
        }
        (None, Some(secret)) => match post_id {
            Some(id) if !id.is_empty() => Ok(Presented {
                client_id: id.to_owned(),
                secret: Some(secret.to_owned()),
                method: AuthMethod::ClientSecretPost,
            }),
            _ => Err(OAuthError::invalid_client(
                "Client authentication failed: client_id is missing.",
            )),
        },
        (None, None) => match post_id {
            Some(id) if !id.is_empty() => Ok(Presented {
                client_id: id.to_owned(),
                secret: None,
                method: AuthMethod::None,
            }),
            _ => Err(OAuthError::invalid_client(
                "Client authentication is required: send client_id and client_secret with HTTP Basic.",
            )),
        },
    }
}

/// Authenticates the calling client against the org view.
pub fn authenticate(
    idp: &Idp,
    view: &OrgView,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Arc<ClientView>, OAuthError> {
    let p = presented(headers, params)?;
    let basic = p.method == AuthMethod::ClientSecretBasic;
    let fail = |d: &'static str| OAuthError::invalid_client(d).with_basic_challenge(basic);

    let Some(client) = view.clients.get(&p.client_id) else {
        if let Some(secret) = &p.secret {
            let _ = idp.hasher.verify(secret, DUMMY_HASH);
        }
        return Err(fail("Client authentication failed."));
    };
    let registered = client.client.token_endpoint_auth_method;
    match (&p.secret, registered) {
        (Some(_), AuthMethod::None) => {
            return Err(fail(
                "Client authentication failed: this public client has no secret.",
            ));
        }
        (None, AuthMethod::None) => {}
        (None, _) => {
            return Err(fail(
                "Client authentication failed: the client secret is missing.",
            ));
        }
        (Some(secret), _) => {
            let ok = client
                .secret_hash
                .as_deref()
                .is_some_and(|h| idp.hasher.verify(secret, h));
            if !ok {
                return Err(fail("Client authentication failed."));
            }
            if p.method != registered {
                return Err(OAuthError::invalid_client(format!(
                    "Client authentication failed: this client must authenticate with {}.",
                    registered.as_str()
                ))
                .with_basic_challenge(basic));
            }
        }
    }
    if !client.client.status.is_active() {
        return Err(fail("Client authentication failed: the client is not active."));
    }
    Ok(client.clone())
}
