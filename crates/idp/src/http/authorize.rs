//! `GET|POST /oauth2/{server}/v1/authorize` (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2,
//! RFC 7636, RFC 9207, RFC 9700) and the decision every sign-in step comes back to:
//! what the browser must do next for this request — sign in, pass a second factor,
//! consent — or, when nothing is missing, the authorization code.
//!
//! Until the client and its exact redirect URI are verified, errors are shown on a page
//! (§4.1.2.1: "MUST NOT automatically redirect the user-agent to the invalid redirection
//! URI"); after that they go back to the client with `state` and `iss`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::policy::{PolicyRequest, evaluate};
use portcullis_core::scope::parse_scope_param;
use portcullis_core::{Consent, GrantType, OAuthError, OAuthErrorCode, User};
use portcullis_store::{StoredCode, StoredFlow, StoredSession};
use serde::{Deserialize, Serialize};

use super::browser::{self, ClientIp, CookieJar};
use super::form::{self, Params};
use super::pages;
use crate::Idp;
use crate::clock;
use crate::error::EndpointError;
use crate::view::{ClientView, OrgView, ServerView};

/// How long an authorization code lives (RFC 6749 §4.1.2: "a maximum authorization code
/// lifetime of 10 minutes is RECOMMENDED"; Okta uses one minute).
pub const CODE_LIFETIME_SECS: i64 = 60;
/// How long a sign-in flow may take.
pub const FLOW_LIFETIME_SECS: i64 = 15 * 60;
/// Longest `state` or `nonce` accepted.
const MAX_STATE_LEN: usize = 2048;

/// A validated authorization request, kept with its sign-in flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// `None` when no `scope` was sent (the server's default scopes apply).
    pub scopes: Option<Vec<String>>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt_none: bool,
    pub prompt_consent: bool,
    /// The user must sign in again in this flow (`prompt=login`, `max_age=0`, or a
    /// session older than `max_age` when the request came).
    pub login_required: bool,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
}

/// An error the client hears about at its redirect URI.
fn redirect_error(
    req_redirect: &str,
    state: Option<&str>,
    issuer: &str,
    code: &str,
    description: &str,
) -> Response {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("error", code);
    q.append_pair("error_description", description);
    if let Some(s) = state {
        q.append_pair("state", s);
    }
    q.append_pair("iss", issuer);
    redirect(&with_query(req_redirect, &q.finish()))
}

fn with_query(uri: &str, query: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{query}")
}

/// A `303 See Other` (so a POST is never replayed to the target) with page headers.
pub fn redirect(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    pages::set_page_headers(r.headers_mut(), "none");
    r
}

/// Parses and checks an authorization request. `Err` is the answer to send instead: a
/// page shown to the user, or an error redirect back to the client.
fn validate(
    view: &OrgView,
    server: &ServerView,
    params: &Params,
) -> Result<(AuthRequest, Arc<ClientView>), Box<Response>> {
    let branding = &view.sign_in.branding;
    let page = |msg: &str| {
        Box::new(pages::message(
            StatusCode::BAD_REQUEST,
            branding,
            "This sign-in request is not valid",
            msg,
            Some("Go back to the application and try again; if it keeps happening, tell its administrator."),
        ))
    };
    let Some(client_id) = params.get("client_id").filter(|c| !c.is_empty()) else {
        return Err(page("The 'client_id' parameter is required."));
    };
    let Some(client) = view
        .clients
        .get(client_id)
        .filter(|c| c.client.status.is_active())
    else {
        return Err(page(
            "The application is not known to this organization, or is not active.",
        ));
    };
    let Some(redirect_uri) = params.get("redirect_uri").filter(|r| !r.is_empty()) else {
        return Err(page("The 'redirect_uri' parameter is required."));
    };
    // RFC 9700 §4.1.3: exact string comparison, no patterns, no normalisation.
    if !client.client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(page(
            "The 'redirect_uri' parameter must be one of the sign-in redirect URIs registered for the application.",
        ));
    }
    let state = params.get("state").filter(|s| !s.is_empty());
    let fail = |code: OAuthErrorCode, desc: &str| {
        Err(Box::new(redirect_error(
            redirect_uri,
            state.filter(|s| s.len() <= MAX_STATE_LEN),
            &server.issuer,
            code.as_str(),
            desc,
        )))
    };
    if state.is_some_and(|s| s.len() > MAX_STATE_LEN) {
        return fail(
            OAuthErrorCode::InvalidRequest,
            "The 'state' parameter is too long.",
        );
    }
    match params.get("response_type") {
        Some("code") => {}
        None | Some("") => {
            return fail(
                OAuthErrorCode::InvalidRequest,
                "The 'response_type' parameter is required.",
            );
        }
        Some(_) => {
            return Err(Box::new(redirect_error(
                redirect_uri,
                state,
                &server.issuer,
                "unsupported_response_type",
                "Only response_type=code is supported (the implicit flow is not, as RFC 9700 advises).",
            )));
        }
    }
    if let Some(mode) = params.get("response_mode")
        && mode != "query"
    {
        return fail(
            OAuthErrorCode::InvalidRequest,
            "Only response_mode=query is supported.",
        );
    }
    if !client.client.grant_types.contains(&GrantType::AuthorizationCode) {
        return fail(
            OAuthErrorCode::UnauthorizedClient,
            "The client is not allowed to use the authorization code flow.",
        );
    }
    // RFC 7636 §4.3 and RFC 9700 §2.1.1: S256 only; required of public clients.
    let challenge = params.get("code_challenge").filter(|c| !c.is_empty());
    match (challenge, params.get("code_challenge_method")) {
        (Some(_), Some("S256")) => {}
        (Some(_), None | Some("plain")) => {
            return fail(
                OAuthErrorCode::InvalidRequest,
                "PKCE code_challenge_method 'plain' is not allowed; use S256.",
            );
        }
        (Some(_), Some(_)) => {
            return fail(
                OAuthErrorCode::InvalidRequest,
                "Unsupported PKCE code_challenge_method; use S256.",
            );
        }
        (None, Some(_)) => {
            return fail(
                OAuthErrorCode::InvalidRequest,
                "The 'code_challenge' parameter is missing.",
            );
        }
        (None, None) if client.client.needs_pkce() => {
            return fail(
                OAuthErrorCode::InvalidRequest,
                "PKCE is required for this client: send code_challenge with code_challenge_method=S256.",
            );
        }
        (None, None) => {}
    }
    if let Some(c) = challenge
        && (c.len() != 43
            || !c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return fail(
            OAuthErrorCode::InvalidRequest,
            "The 'code_challenge' must be the base64url SHA-256 of the verifier (43 characters).",
        );
    }
    let scopes = match params.get("scope").map(parse_scope_param).transpose() {
        Ok(s) => s.filter(|s| !s.is_empty()),
        Err(e) => return fail(e.code, &e.description),
    };
    // Unknown scopes are refused now, before the user is asked to sign in.
    if let Some(s) = &scopes
        && let Some(unknown) = s.iter().find(|s| {
            server.server.scope(s).is_none() && !portcullis_core::scope::OIDC_SCOPES.contains(&s.as_str())
        })
    {
        return fail(
            OAuthErrorCode::InvalidScope,
            &format!("The scope '{unknown}' is not configured for the authorization server."),
        );
    }
    let nonce = params.get("nonce").filter(|n| !n.is_empty());
    if nonce.is_some_and(|n| n.len() > MAX_STATE_LEN) {
        return fail(
            OAuthErrorCode::InvalidRequest,
            "The 'nonce' parameter is too long.",
        );
    }
    let prompts: Vec<&str> = params
        .get("prompt")
        .unwrap_or("")
        .split(' ')
        .filter(|p| !p.is_empty())
        .collect();
    if let Some(p) = prompts
        .iter()
        .find(|p| !matches!(**p, "none" | "login" | "consent"))
    {
        return fail(
            OAuthErrorCode::InvalidRequest,
            &format!("Unsupported prompt value '{p}'."),
        );
    }
    if prompts.contains(&"none") && prompts.len() > 1 {
        return fail(
            OAuthErrorCode::InvalidRequest,
            "prompt=none cannot be combined with other values.",
        );
    }
    let max_age = match params.get("max_age") {
        None | Some("") => None,
        Some(m) => match m.parse::<i64>() {
            Ok(v) if v >= 0 => Some(v),
            _ => {
                return fail(
                    OAuthErrorCode::InvalidRequest,
                    "The 'max_age' parameter must be a non-negative number of seconds.",
                );
            }
        },
    };
    let login_hint = params
        .get("login_hint")
        .filter(|h| !h.is_empty() && h.len() <= portcullis_core::MAX_LOGIN_LEN)
        .map(String::from);
    Ok((
        AuthRequest {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            state: state.map(String::from),
            nonce: nonce.map(String::from),
            code_challenge: challenge.map(String::from),
            prompt_none: prompts.contains(&"none"),
            prompt_consent: prompts.contains(&"consent"),
            // OpenID Connect Core §3.1.2.1: "max_age=0 is equivalent to prompt=login"; a
            // session older than max_age is checked when the request arrives.
            login_required: prompts.contains(&"login") || max_age == Some(0),
            max_age,
            login_hint,
        },
        client.clone(),
    ))
}

/// What the browser must do next for an authorization request.
pub enum Step {
    Password,
    MfaEnroll(User),
    MfaVerify,
    Consent(User, Vec<portcullis_core::Scope>),
    /// Nothing is missing: send this answer (the code, or an error) to the client.
    Finish(Response),
}

/// What the user has done in the current sign-in flow, so that `prompt=login`,
/// `max_age` and `prompt=consent` ask once, not forever.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlowState {
    pub signed_in: bool,
    pub consented: bool,
}

/// Decides the next step for `req` given the browser's session and the flow's state.
pub async fn next_step(
    idp: &Idp,
    server: &ServerView,
    client: &ClientView,
    req: &AuthRequest,
    session: Option<&StoredSession>,
    flow: FlowState,
    now: i64,
) -> Result<Step, EndpointError> {
    let Some(session) = session else {
        return Ok(Step::Password);
    };
    if req.login_required && !flow.signed_in {
        return Ok(Step::Password);
    }
    let Some(creds) = idp.store.user_by_id(&idp.org_id, &session.user_id).await? else {
        return Ok(Step::Password);
    };
    if !creds.user.status.keeps_grants() {
        return Ok(Step::Password);
    }
    let user = creds.user;
    let decision = match evaluate(
        &server.server,
        &PolicyRequest {
            client_id: &client.client.client_id,
            grant_type: GrantType::AuthorizationCode,
            requested_scopes: req.scopes.as_deref(),
            user_groups: Some(&user.groups),
        },
    ) {
        Ok(d) => d,
        Err(e) => return Ok(Step::Finish(error_to_client(server, req, &e))),
    };
    let factors = idp.store.factors(&idp.org_id, &user.id).await?;
    let enrolled = factors.iter().any(|f| f.active);
    let mfa_required = decision.rule.require_mfa || client.client.require_mfa || enrolled;
    if mfa_required && !session.amr.iter().any(|a| a == "mfa") {
        return Ok(if enrolled {
            Step::MfaVerify
        } else {
            Step::MfaEnroll(user)
        });
    }
    let needs_consent: Vec<portcullis_core::Scope> = decision
        .scopes
        .iter()
        .filter_map(|s| server.server.scope(s))
        .filter(|s| s.consent == Consent::Required)
        .cloned()
        .collect();
    if !needs_consent.is_empty() && !flow.consented {
        let given = if req.prompt_consent {
            Vec::new()
        } else {
            idp.store
                .consented_scopes(&idp.org_id, &user.id, &client.client.client_id, &server.server.id)
                .await?
        };
        let missing: Vec<_> = needs_consent
            .into_iter()
            .filter(|s| !given.contains(&s.name))
            .collect();
        if !missing.is_empty() {
            return Ok(Step::Consent(user, missing));
        }
    }
    // Everything is in place: the code.
    let code = portcullis_jose::opaque_token();
    idp.store
        .put_code(
            &idp.org_id,
            &portcullis_jose::token_hash(&code),
            &StoredCode {
                family_id: format!("fam{}", portcullis_core::ids::random_base62(21)),
                client_id: client.client.client_id.clone(),
                server_id: server.server.id.clone(),
                user_id: user.id.clone(),
                session_id: session.id.clone(),
                redirect_uri: req.redirect_uri.clone(),
                scopes: decision.scopes.clone(),
                nonce: req.nonce.clone(),
                code_challenge: req.code_challenge.clone(),
                auth_time: session.auth_time,
                amr: session.amr.clone(),
                expires_at: now + CODE_LIFETIME_SECS,
            },
        )
        .await?;
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("code", &code);
    if let Some(s) = &req.state {
        q.append_pair("state", s);
    }
    // RFC 9207: the issuer, so the client can tell which server answered.
    q.append_pair("iss", &server.issuer);
    Ok(Step::Finish(redirect(&with_query(
        &req.redirect_uri,
        &q.finish(),
    ))))
}

/// An OAuth error sent to the client's verified redirect URI.
pub fn error_to_client(server: &ServerView, req: &AuthRequest, e: &OAuthError) -> Response {
    redirect_error(
        &req.redirect_uri,
        req.state.as_deref(),
        &server.issuer,
        e.code.as_str(),
        &e.description,
    )
}

pub async fn authorize(
    State(idp): State<Arc<Idp>>,
    Path(server_id): Path<String>,
    ClientIp(ip): ClientIp,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EndpointError> {
    let view = idp.view.get();
    let server = super::find_server(&view, &server_id)?;
    let now = clock::now();
    // OpenID Connect Core §3.1.2.1: GET with a query, or POST with a form.
    let params = if method == Method::POST {
        form::read_form(&headers, body).await?
    } else {
        Params::parse(uri.query().unwrap_or("").as_bytes())?
    };
    let (req, client) = match validate(&view, &server, &params) {
        Err(answer) => return Ok(*answer),
        Ok(v) => v,
    };
    let jar = CookieJar::for_idp(&idp);
    let session = browser::session(&idp, &jar, &headers, now).await?;
    let mut req = req;
    if let (Some(m), Some((_, s))) = (req.max_age, &session)
        && now - s.auth_time > m
    {
        req.login_required = true;
    }
    let step = next_step(
        &idp,
        &server,
        &client,
        &req,
        session.as_ref().map(|(_, s)| s),
        FlowState::default(),
        now,
    )
    .await?;
    if req.prompt_none {
        // OpenID Connect Core §3.1.2.6: no page may be shown.
        let error = match step {
            Step::Finish(r) => return Ok(r),
            Step::Password => "login_required",
            Step::MfaEnroll(_) | Step::MfaVerify => "interaction_required",
            Step::Consent(..) => "consent_required",
        };
        return Ok(redirect_error(
            &req.redirect_uri,
            req.state.as_deref(),
            &server.issuer,
            error,
            "The user must interact with the sign-in page, and prompt=none was requested.",
        ));
    }
    if let Step::Finish(r) = step {
        return Ok(r);
    }
    // Start a sign-in flow bound to this browser (each is a row: bounded per address).
    if let Err(secs) = idp.limits.check_flow_start(ip) {
        return Ok(super::signin::too_many(&view, secs));
    }
    let (bind, set_bind) = match jar.read(&headers, &jar.bind_name()) {
        Some(b) => (b, false),
        None => (portcullis_jose::opaque_token(), true),
    };
    let flow = StoredFlow {
        id: portcullis_jose::opaque_token(),
        bind_hash: portcullis_jose::token_hash(&bind),
        csrf: portcullis_jose::opaque_token(),
        server_id: server.server.id.clone(),
        params: serde_json::to_value(&req).map_err(|e| EndpointError::Internal(e.to_string()))?,
        signed_in: false,
        consented: false,
        expires_at: now + FLOW_LIFETIME_SECS,
    };
    idp.store.create_flow(&idp.org_id, &flow, now).await?;
    let mut r = redirect(&format!("/signin?flow={}", flow.id));
    if set_bind {
        r.headers_mut()
            .append(header::SET_COOKIE, jar.set(&jar.bind_name(), &bind, None));
    }
    Ok(r)
}
