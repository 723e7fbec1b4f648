//! Client authentication at the token, introspection and revocation endpoints:
//! `client_secret_basic` (RFC 6749 §2.3.1, with the id and secret form-urlencoded inside
//! Basic), `client_secret_post`, and `none` for public clients. "The client MUST NOT use
//! more than one authentication method in each request" (§2.3).

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use base64::Engine;
use portcullis_core::{AuthMethod, OAuthError};

use crate::Idp;
use crate::http::form::Params;
use crate::view::{ClientView, OrgView};

/// Stand-in hash so that an unknown client costs the same as a wrong secret.
const DUMMY_HASH: &str = "hmac-sha256$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

struct Presented {
    client_id: String,
    /// The secret as sent, and its RFC 6749 §2.3.1 form-decoding when that differs.
    secrets: Vec<String>,
    method: AuthMethod,
}

/// Base64 with or without padding: clients differ.
const BASIC_B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// RFC 6749 §2.3.1: "The client identifier is encoded using the
/// application/x-www-form-urlencoded encoding algorithm ... and the encoded value is used
/// as the username; the client password is encoded using the same algorithm".
fn form_decode(s: &str) -> Option<String> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, Vec<String>), ()>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let parsed = BASIC_B64.decode(rest.trim()).ok().and_then(|raw| {
        let text = String::from_utf8(raw).ok()?;
        let (id, secret) = text.split_once(':')?;
        let id = form_decode(id)?;
        // Many clients (curl -u, most HTTP libraries) do not form-encode: a secret is
        // accepted as sent or as decoded, both checked in constant time.
        let mut secrets = vec![secret.to_owned()];
        if let Some(decoded) = form_decode(secret).filter(|d| d != secret) {
            secrets.push(decoded);
        }
        Some((id, secrets))
    });
    Some(parsed.ok_or(()))
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
        (Some(Ok((id, secrets))), None) => {
            if post_id.is_some_and(|p| p != id) {
                return Err(OAuthError::invalid_request(
                    "The client_id parameter does not match the authenticated client.",
                ));
            }
            Ok(Presented {
                client_id: id,
                secrets,
                method: AuthMethod::ClientSecretBasic,
            })
        }
        (None, Some(secret)) => match post_id {
            Some(id) if !id.is_empty() => Ok(Presented {
                client_id: id.to_owned(),
                secrets: vec![secret.to_owned()],
                method: AuthMethod::ClientSecretPost,
            }),
            _ => Err(OAuthError::invalid_client(FAILED)),
        },
        (None, None) => match post_id {
            Some(id) if !id.is_empty() => Ok(Presented {
                client_id: id.to_owned(),
                secrets: vec![],
                method: AuthMethod::None,
            }),
            _ => Err(OAuthError::invalid_client(
                "Client authentication is required: send client_id and client_secret with HTTP Basic.",
            )),
        },
    }
}

/// The one description for every failure before a client has proven its secret, so that
/// nothing tells whether a client id exists, is public, or is active.
const FAILED: &str = "Client authentication failed.";

/// Authenticates the calling client against the org view.
pub fn authenticate(
    idp: &Idp,
    view: &OrgView,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Arc<ClientView>, OAuthError> {
    let p = presented(headers, params)?;
    let basic = p.method == AuthMethod::ClientSecretBasic;
    let fail = || OAuthError::invalid_client(FAILED).with_basic_challenge(basic);

    let client = view.clients.get(&p.client_id);
    let registered = client.map(|c| c.client.token_endpoint_auth_method);
    // Every presented secret costs one HMAC whether or not the client exists.
    let stored = client
        .and_then(|c| c.secret_hash.as_deref())
        .unwrap_or(DUMMY_HASH);
    let secret_ok = p
        .secrets
        .iter()
        .fold(false, |ok, s| idp.hasher.verify(s, stored) | ok);
    let (Some(client), Some(registered)) = (client, registered) else {
        return Err(fail());
    };
    match (p.secrets.is_empty(), registered) {
        // A public client: nothing proves it, so nothing about it is revealed either.
        (true, AuthMethod::None) if client.client.status.is_active() => return Ok(client.clone()),
        (true, _) | (false, AuthMethod::None) => return Err(fail()),
        (false, _) if !secret_ok || client.secret_hash.is_none() => return Err(fail()),
        _ => {}
    }
    // The secret is proven: from here on the client may learn what is wrong.
    if p.method != registered {
        return Err(OAuthError::invalid_client(format!(
            "Client authentication failed: this client must authenticate with {}.",
            registered.as_str()
        ))
        .with_basic_challenge(basic));
    }
    if !client.client.status.is_active() {
        return Err(
            OAuthError::invalid_client("Client authentication failed: the client is not active.")
                .with_basic_challenge(basic),
        );
    }
    Ok(client.clone())
}
