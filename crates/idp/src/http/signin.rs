//! The hosted sign-in pages at `/signin?flow=...`: one flow per authorization request,
//! bound to the browser that started it (a cookie whose hash the flow keeps) and
//! protected by a per-flow CSRF token in every form. `GET` shows the step
//! [`next_step`] asks for; `POST` carries one step out and redirects back to `GET`
//! (post/redirect/get), so the decision of what comes next lives in one place.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use portcullis_core::{OAuthError, User};
use portcullis_store::{FlowStep, StoredFlow, StoredSession};
use serde::Deserialize;

use super::authorize::{AuthRequest, FlowState, Step, error_to_client, next_step, redirect};
use super::browser::{self, ClientIp, CookieJar};
use super::{form, pages};
use crate::error::EndpointError;
use crate::people::signin::{Attempt, SignInError, check_password, locked_now, record_failure};
use crate::people::totp;
use crate::view::{ClientView, OrgView, ServerView};
use crate::{Idp, clock};

/// How many recovery codes a user gets.
const RECOVERY_CODES: usize = 10;

#[derive(Deserialize)]
pub struct FlowQuery {
    flow: Option<String>,
}

/// A flow, its request, server and client, once the browser has shown it owns it.
struct Loaded {
    flow: StoredFlow,
    req: AuthRequest,
    server: Arc<ServerView>,
    client: Arc<ClientView>,
}

fn expired(view: &OrgView) -> Response {
    pages::message(
        StatusCode::BAD_REQUEST,
        &view.sign_in.branding,
        "This sign-in has expired",
        "The sign-in request was not found, has expired, or was started in another browser.",
        Some("Go back to the application and sign in again."),
    )
}

async fn load(
    idp: &Idp,
    view: &OrgView,
    jar: &CookieJar,
    headers: &HeaderMap,
    flow_id: Option<&str>,
    now: i64,
) -> Result<Result<Loaded, Response>, EndpointError> {
    let Some(flow_id) = flow_id.filter(|f| f.len() <= 64) else {
        return Ok(Err(expired(view)));
    };
    let Some(flow) = idp.store.flow(&idp.org_id, flow_id, now).await? else {
        return Ok(Err(expired(view)));
    };
    let bound = jar.read(headers, &jar.bind_name()).is_some_and(|b| {
        portcullis_jose::constant_time_eq(&portcullis_jose::token_hash(&b), &flow.bind_hash)
    });
    if !bound {
        return Ok(Err(expired(view)));
    }
    let (Some(server), Ok(req)) = (
        view.server(&flow.server_id).cloned(),
        serde_json::from_value::<AuthRequest>(flow.params.clone()),
    ) else {
        return Ok(Err(expired(view)));
    };
    let Some(client) = view
        .clients
        .get(&req.client_id)
        .filter(|c| c.client.status.is_active())
        .cloned()
    else {
        return Ok(Err(expired(view)));
    };
    Ok(Ok(Loaded {
        flow,
        req,
        server,
        client,
    }))
}

fn flow_state(flow: &StoredFlow) -> FlowState {
    FlowState {
        signed_in: flow.signed_in,
        consented: flow.consented,
    }
}

fn action(flow: &StoredFlow) -> String {
    format!("/signin?flow={}", flow.id)
}

/// Renders the page of a step (or finishes the flow).
async fn show(
    idp: &Idp,
    view: &OrgView,
    l: &Loaded,
    step: Step,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, EndpointError> {
    let branding = &view.sign_in.branding;
    let action = action(&l.flow);
    let csrf = &l.flow.csrf;
    Ok(match step {
        Step::Finish(r) => {
            idp.store.delete_flow(&idp.org_id, &l.flow.id).await?;
            r
        }
        Step::Password => pages::render(
            status,
            branding,
            "signin.html",
            minijinja::context! {
                title => "Sign in", action, csrf, error,
                client_name => &l.client.client.name,
                login_hint => l.req.login_hint.as_deref().unwrap_or(""),
            },
        ),
        Step::MfaVerify => pages::render(
            status,
            branding,
            "mfa_verify.html",
            minijinja::context! { title => "Two-step verification", action, csrf, error },
        ),
        Step::MfaEnroll(user) => {
            let now = clock::now();
            // Reuse the pending enrolment shown before, or start one.
            let factors = idp.store.factors(&idp.org_id, &user.id).await?;
            let context = totp::seal_context(&idp.org_id, &user.id);
            let secret = match factors
                .iter()
                .find(|f| !f.active)
                .and_then(|f| idp.master.open(&f.sealed_secret, &context).ok())
            {
                Some(s) => s,
                None => {
                    let s = totp::new_secret();
                    idp.store
                        .enroll_totp(&idp.org_id, &user.id, &idp.master.seal(&s, &context), now)
                        .await?;
                    s
                }
            };
            let e = totp::enrolment(&secret, &branding.org_name, &user.login)
                .ok_or_else(|| EndpointError::Internal("TOTP enrolment could not be rendered".into()))?;
            pages::render(
                status,
                branding,
                "mfa_enroll.html",
                minijinja::context! {
                    title => "Set up two-step verification", action, csrf, error,
                    secret => e.secret_base32, qr_svg => pages::trusted_svg(e.qr_svg),
                },
            )
        }
        Step::Consent(user, scopes) => {
            let scopes: Vec<_> = scopes
                .iter()
                .map(|s| minijinja::context! { name => s.display_name.clone().unwrap_or_else(|| s.name.clone()), description => &s.description })
                .collect();
            pages::render(
                status,
                branding,
                "consent.html",
                minijinja::context! {
                    title => "Allow access", action, csrf, scopes,
                    client_name => &l.client.client.name, login => &user.login,
                },
            )
        }
    })
}

pub async fn page(
    State(idp): State<Arc<Idp>>,
    Query(q): Query<FlowQuery>,
    headers: HeaderMap,
) -> Result<Response, EndpointError> {
    let view = idp.view.get();
    let jar = CookieJar::for_idp(&idp);
    let now = clock::now();
    let l = match load(&idp, &view, &jar, &headers, q.flow.as_deref(), now).await? {
        Ok(l) => l,
        Err(page) => return Ok(page),
    };
    let session = browser::session(&idp, &jar, &headers, now).await?;
    let step = next_step(
        &idp,
        &l.server,
        &l.client,
        &l.req,
        session.as_ref().map(|(_, s)| s),
        flow_state(&l.flow),
        now,
    )
    .await?;
    show(&idp, &view, &l, step, None, StatusCode::OK).await
}

pub async fn submit(
    State(idp): State<Arc<Idp>>,
    Query(q): Query<FlowQuery>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EndpointError> {
    let view = idp.view.get();
    let jar = CookieJar::for_idp(&idp);
    let now = clock::now();
    let l = match load(&idp, &view, &jar, &headers, q.flow.as_deref(), now).await? {
        Ok(l) => l,
        Err(page) => return Ok(page),
    };
    let params = match form::read_form(&headers, body).await {
        Ok(p) => p,
        Err(_) => return Ok(bad_form(&view)),
    };
    // CSRF: the form must carry this flow's token (which a foreign site cannot read).
    let csrf_ok = params
        .get("csrf")
        .is_some_and(|c| portcullis_jose::constant_time_eq(c, &l.flow.csrf));
    if !csrf_ok {
        return Ok(pages::message(
            StatusCode::FORBIDDEN,
            &view.sign_in.branding,
            "The form could not be accepted",
            "The CSRF token is missing or wrong: the form was not sent by this sign-in page.",
            Some("Go back to the application and sign in again."),
        ));
    }
    let session = browser::session(&idp, &jar, &headers, now).await?;
    let back = redirect(&action(&l.flow));
    match params.get("step").unwrap_or("") {
        "password" => {
            let login = params.get("username").unwrap_or("");
            let password = params.get("password").unwrap_or("");
            let attempt = Attempt { login, password, ip };
            match check_password(&idp.store, &idp.org_id, &view.sign_in, &idp.limits, attempt, now).await {
                Ok(user) => {
                    // A new session id at every sign-in (no session fixation); the old one ends.
                    let old = session.as_ref().map(|(h, _)| h.as_str());
                    let cookie =
                        new_session(&idp, &view, &jar, old, &user.id, now, vec!["pwd".into()], now).await?;
                    idp.store
                        .mark_flow(&idp.org_id, &l.flow.id, FlowStep::SignedIn)
                        .await?;
                    let mut r = back;
                    r.headers_mut().append(header::SET_COOKIE, cookie);
                    Ok(r)
                }
                Err(SignInError::Failed) => {
                    show(
                        &idp,
                        &view,
                        &l,
                        Step::Password,
                        Some("Unable to sign in."),
                        StatusCode::UNAUTHORIZED,
                    )
                    .await
                }
                Err(SignInError::RateLimited(secs)) => Ok(too_many(&view, secs)),
                Err(SignInError::Busy) => Ok(busy(&view)),
                Err(SignInError::Store(e)) => Err(e.into()),
            }
        }
        "enroll" | "mfa" => {
            let Some((hash, s)) = session else {
                return Ok(back);
            };
            let Some(creds) = idp.store.user_by_id(&idp.org_id, &s.user_id).await? else {
                return Ok(back);
            };
            if locked_now(&creds, now) {
                return locked_out(&idp, &view, &jar, &hash).await;
            }
            if let Err(secs) = idp.limits.check_mfa_attempt(&s.user_id, ip) {
                return Ok(too_many(&view, secs));
            }
            let code = params.get("code").unwrap_or("").trim();
            let enrolling = params.get("step") == Some("enroll");
            match verify_factor(&idp, &creds.user, code, enrolling, now).await? {
                FactorCheck::Accepted(method) => {
                    let mut amr = s.amr.clone();
                    for m in [method, "mfa"] {
                        if !amr.iter().any(|a| a == m) {
                            amr.push(m.into());
                        }
                    }
                    idp.store.record_sign_in(&idp.org_id, &creds.user.id, now).await?;
                    // A stronger session is a new session (a new id, as at sign-in).
                    let cookie =
                        new_session(&idp, &view, &jar, Some(&hash), &s.user_id, s.auth_time, amr, now)
                            .await?;
                    let mut r = if enrolling {
                        let codes = new_recovery_codes(&idp, &creds.user.id).await?;
                        pages::render(
                            StatusCode::OK,
                            &view.sign_in.branding,
                            "recovery_codes.html",
                            minijinja::context! { title => "Recovery codes", codes, action => "/signin", flow => &l.flow.id },
                        )
                    } else {
                        back
                    };
                    r.headers_mut().append(header::SET_COOKIE, cookie);
                    Ok(r)
                }
                FactorCheck::Rejected(why) => {
                    // Wrong codes count toward the lockout, as wrong passwords do: six
                    // digits must not be guessable at the rate limit forever.
                    let status =
                        record_failure(&idp.store, &idp.org_id, &creds.user.id, &view.sign_in, now).await?;
                    if status == portcullis_core::UserStatus::LockedOut {
                        return locked_out(&idp, &view, &jar, &hash).await;
                    }
                    let step = if enrolling {
                        Step::MfaEnroll(creds.user)
                    } else {
                        Step::MfaVerify
                    };
                    show(&idp, &view, &l, step, Some(why), StatusCode::UNAUTHORIZED).await
                }
            }
        }
        "consent" => {
            let Some((_, s)) = session else {
                return Ok(back);
            };
            if params.get("decision") != Some("allow") {
                idp.store.delete_flow(&idp.org_id, &l.flow.id).await?;
                return Ok(error_to_client(
                    &l.server,
                    &l.req,
                    &OAuthError::access_denied("The user did not allow the requested access."),
                ));
            }
            let Step::Consent(_, scopes) = next_step(
                &idp,
                &l.server,
                &l.client,
                &l.req,
                Some(&s),
                flow_state(&l.flow),
                now,
            )
            .await?
            else {
                return Ok(back);
            };
            idp.store
                .mark_flow(&idp.org_id, &l.flow.id, FlowStep::Consented)
                .await?;
            let mut given = idp
                .store
                .consented_scopes(
                    &idp.org_id,
                    &s.user_id,
                    &l.client.client.client_id,
                    &l.server.server.id,
                )
                .await?;
            given.extend(scopes.into_iter().map(|s| s.name));
            idp.store
                .put_consent(
                    &idp.org_id,
                    &s.user_id,
                    &l.client.client.client_id,
                    &l.server.server.id,
                    &given,
                    now,
                )
                .await?;
            Ok(back)
        }
        _ => Ok(bad_form(&view)),
    }
}

/// Starts a session (replacing `old`, if any) and returns its cookie.
#[allow(clippy::too_many_arguments)]
async fn new_session(
    idp: &Idp,
    view: &OrgView,
    jar: &CookieJar,
    old: Option<&str>,
    user_id: &str,
    auth_time: i64,
    amr: Vec<String>,
    now: i64,
) -> Result<HeaderValue, EndpointError> {
    if let Some(old) = old {
        idp.store.delete_session(&idp.org_id, old).await?;
    }
    let lifetime = view.sign_in.session_minutes.max(1) as i64 * 60;
    let raw = portcullis_jose::opaque_token();
    let s = StoredSession {
        id: portcullis_core::ids::new_id(portcullis_core::ids::IdKind::Session),
        user_id: user_id.to_owned(),
        auth_time,
        amr,
        expires_at: now + lifetime,
    };
    idp.store
        .create_session(&idp.org_id, &portcullis_jose::token_hash(&raw), &s, now)
        .await?;
    Ok(jar.set(&jar.session_name(), &raw, Some(lifetime)))
}

/// Too many failed steps: the session ends and the page says for how long sign-in is
/// locked (the user has proven their password: nothing is revealed to a stranger).
async fn locked_out(
    idp: &Idp,
    view: &OrgView,
    jar: &CookieJar,
    session_hash: &str,
) -> Result<Response, EndpointError> {
    idp.store.delete_session(&idp.org_id, session_hash).await?;
    let mut r = pages::message(
        StatusCode::FORBIDDEN,
        &view.sign_in.branding,
        "Sign-in is locked",
        &format!(
            "Too many wrong codes. Sign-in to this account is locked for {} minutes.",
            view.sign_in.lockout_minutes
        ),
        Some("Wait, or ask an administrator to unlock your account."),
    );
    r.headers_mut()
        .append(header::SET_COOKIE, jar.clear(&jar.session_name()));
    Ok(r)
}

fn busy(view: &OrgView) -> Response {
    let mut r = pages::message(
        StatusCode::SERVICE_UNAVAILABLE,
        &view.sign_in.branding,
        "Please try again",
        "The sign-in service is busy; try again in a moment.",
        None,
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

fn bad_form(view: &OrgView) -> Response {
    pages::message(
        StatusCode::BAD_REQUEST,
        &view.sign_in.branding,
        "The form could not be read",
        "The form was incomplete or too large.",
        Some("Go back to the application and sign in again."),
    )
}

pub(crate) fn too_many(view: &OrgView, secs: u64) -> Response {
    let mut r = pages::message(
        StatusCode::TOO_MANY_REQUESTS,
        &view.sign_in.branding,
        "Too many attempts",
        &format!("Too many sign-in attempts; try again in {secs} seconds."),
        None,
    );
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

enum FactorCheck {
    /// Accepted, with the RFC 8176 method: `otp` for TOTP, `kba` for a recovery code.
    Accepted(&'static str),
    Rejected(&'static str),
}

async fn verify_factor(
    idp: &Idp,
    user: &User,
    code: &str,
    enrolling: bool,
    now: i64,
) -> Result<FactorCheck, EndpointError> {
    let factors = idp.store.factors(&idp.org_id, &user.id).await?;
    let context = totp::seal_context(&idp.org_id, &user.id);
    let candidate = factors.iter().find(|f| f.active != enrolling);
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
        let Some(f) = candidate else {
            return Ok(FactorCheck::Rejected("The code is not valid."));
        };
        let Ok(secret) = idp.master.open(&f.sealed_secret, &context) else {
            return Err(EndpointError::Internal(
                "a TOTP secret could not be unsealed".into(),
            ));
        };
        let Some(step) = totp::check(&secret, &digits, now) else {
            return Ok(FactorCheck::Rejected("The code is not valid."));
        };
        // RFC 6238 §5.2: a code is accepted once; the step must be newer than the last.
        if !idp.store.use_totp_step(&idp.org_id, &f.id, step).await? {
            return Ok(FactorCheck::Rejected(
                "This code has already been used. Wait for the next code and try again.",
            ));
        }
        return Ok(FactorCheck::Accepted("otp"));
    }
    if !enrolling && !code.is_empty() && code.len() <= 32 {
        let normalized = normalize_recovery(code);
        let hash = idp.hasher.hash(&normalized);
        if idp
            .store
            .use_recovery_code(&idp.org_id, &user.id, &hash, now)
            .await?
        {
            return Ok(FactorCheck::Accepted("kba"));
        }
    }
    Ok(FactorCheck::Rejected("The code is not valid."))
}

fn normalize_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase()
}

/// Ten new single-use recovery codes (`xxxxx-xxxxx`, about 51 bits each), stored as
/// HMAC-SHA256 under a key derived from the master key.
async fn new_recovery_codes(idp: &Idp, user_id: &str) -> Result<Vec<String>, EndpointError> {
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let raw = portcullis_core::ids::random_base62(10).to_lowercase();
            format!("{}-{}", &raw[..5], &raw[5..])
        })
        .collect();
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| idp.hasher.hash(&normalize_recovery(c)))
        .collect();
    idp.store
        .replace_recovery_codes(&idp.org_id, user_id, &hashes)
        .await?;
    Ok(codes)
}
