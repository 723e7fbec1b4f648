//! `GET|POST /oauth2/{server}/v1/logout` (OpenID Connect RP-Initiated Logout 1.0): ends
//! the browser's sign-in session and, when `post_logout_redirect_uri` exactly matches
//! one registered for the client the `id_token_hint` (or `client_id`) names, sends the
//! browser there with `state`; otherwise it shows a signed-out page. Without a valid
//! `id_token_hint` the user confirms first, on a form bound to their session.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::Value;

use super::authorize::redirect;
use super::browser::CookieJar;
use super::form::{self, Params};
use super::{find_server, pages};
use crate::Idp;
use crate::error::EndpointError;

pub async fn logout(
    State(idp): State<Arc<Idp>>,
    Path(server): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EndpointError> {
    let view = idp.view.get();
    let server = find_server(&view, &server)?;
    let branding = &view.sign_in.branding;
    let params = if method == Method::POST {
        form::read_form(&headers, body).await?
    } else {
        Params::parse(uri.query().unwrap_or("").as_bytes())?
    };
    let bad = |msg: &str| {
        pages::message(
            StatusCode::BAD_REQUEST,
            branding,
            "The sign-out request is not valid",
            msg,
            Some("Close this window, or go back to the application."),
        )
    };
    // The hint names the client (its `aud`) whose registered URIs the redirect must match.
    let hinted_client = match params.get("id_token_hint").filter(|h| !h.is_empty()) {
        Some(hint) => match server.id_token_verifier.verify(hint) {
            Ok(claims) => claims.get("aud").and_then(Value::as_str).map(String::from),
            Err(_) => {
                return Ok(bad(
                    "The id_token_hint was not issued by this authorization server.",
                ));
            }
        },
        None => None,
    };
    // RP-Initiated Logout §2: with both, "the OP MUST verify that it matches".
    let client = match (params.get("client_id").filter(|c| !c.is_empty()), &hinted_client) {
        (Some(c), Some(h)) if c != h => {
            return Ok(bad("The client_id does not match the id_token_hint."));
        }
        (Some(c), _) => Some(c.to_owned()),
        (None, h) => h.clone(),
    };
    let target = match params.get("post_logout_redirect_uri").filter(|u| !u.is_empty()) {
        None => None,
        Some(uri) => {
            let allowed = client
                .as_deref()
                .and_then(|c| view.clients.get(c))
                .is_some_and(|c| c.client.post_logout_redirect_uris.iter().any(|u| u == uri));
            if !allowed {
                return Ok(bad(
                    "The post_logout_redirect_uri is not registered for the application.",
                ));
            }
            Some(uri.to_owned())
        }
    };
    let jar = CookieJar::for_idp(&idp);
    let raw_session = jar.read(&headers, &jar.session_name());
    if let Some(raw) = &raw_session {
        // Without a valid hint anyone could sign the user out with a link (logout CSRF):
        // the user confirms on a page whose form carries a token tied to the session.
        let csrf = portcullis_jose::token_hash(&format!("logout|{raw}"));
        let confirmed = hinted_client.is_some()
            || (method == Method::POST
                && params
                    .get("csrf")
                    .is_some_and(|c| portcullis_jose::constant_time_eq(c, &csrf)));
        if !confirmed {
            let fields: Vec<(&str, &str)> = ["post_logout_redirect_uri", "state", "client_id"]
                .into_iter()
                .filter_map(|k| params.get(k).map(|v| (k, v)))
                .collect();
            return Ok(pages::render(
                StatusCode::OK,
                branding,
                "logout_confirm.html",
                minijinja::context! { title => "Sign out", action => uri.path(), csrf, fields },
            ));
        }
        idp.store
            .delete_session(&idp.org_id, &portcullis_jose::token_hash(raw))
            .await?;
    }
    let mut r = match target {
        Some(uri) => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            if let Some(s) = params.get("state") {
                q.append_pair("state", s);
            }
            let query = q.finish();
            let location = if query.is_empty() {
                uri
            } else {
                format!("{uri}{}{query}", if uri.contains('?') { '&' } else { '?' })
            };
            redirect(&location)
        }
        None => pages::message(
            StatusCode::OK,
            branding,
            "Signed out",
            "You have been signed out.",
            None,
        ),
    };
    r.headers_mut()
        .append(header::SET_COOKIE, jar.clear(&jar.session_name()));
    Ok(r)
}
