//! The hosted pages (sign-in, second factor, consent, messages): server-rendered from
//! templates with HTML auto-escaping, branded per org, and sent with headers that keep
//! them out of frames and caches and forbid every script (`Content-Security-Policy:
//! default-src 'none'`, the page's one style block allowed by nonce).
//!
//! Owns page rendering and the headers of every HTML answer. It must never put a value
//! into a page unescaped, except the QR code's SVG, which we generate.

use std::sync::OnceLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use portcullis_core::Branding;
use serde::Serialize;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("layout.html", include_str!("templates/layout.html")),
            ("signin.html", include_str!("templates/signin.html")),
            ("mfa_enroll.html", include_str!("templates/mfa_enroll.html")),
            ("mfa_verify.html", include_str!("templates/mfa_verify.html")),
            (
                "recovery_codes.html",
                include_str!("templates/recovery_codes.html"),
            ),
            ("consent.html", include_str!("templates/consent.html")),
            ("message.html", include_str!("templates/message.html")),
            (
                "logout_confirm.html",
                include_str!("templates/logout_confirm.html"),
            ),
        ] {
            env.add_template(name, source)
                .expect("the built-in templates parse");
        }
        env
    })
}

/// Branding as pages use it: colours that are not `#rrggbb` fall back to the defaults,
/// and a logo must be `https:` or site-relative, so nothing can be injected.
#[derive(Serialize)]
struct Brand<'a> {
    org_name: &'a str,
    logo_url: Option<&'a str>,
    primary_color: &'a str,
    background_color: &'a str,
}

fn color<'a>(given: &'a str, fallback: &'static str) -> &'a str {
    if portcullis_core::is_hex_color(given) {
        given
    } else {
        fallback
    }
}

fn brand(b: &Branding) -> Brand<'_> {
    Brand {
        org_name: &b.org_name,
        logo_url: b
            .logo_url
            .as_deref()
            .filter(|u| u.starts_with("https://") || (u.starts_with('/') && !u.starts_with("//"))),
        primary_color: color(&b.primary_color, "#1f5fbf"),
        background_color: color(&b.background_color, "#f4f6f9"),
    }
}

/// Renders `template` with `ctx` (plus `brand` and the style nonce) as an HTML answer.
pub fn render<S: Serialize>(status: StatusCode, branding: &Branding, template: &str, ctx: S) -> Response {
    let nonce = portcullis_jose::opaque_token();
    let html = env().get_template(template).and_then(|t| {
        t.render(minijinja::context! {
            brand => brand(branding),
            nonce => nonce,
            ..minijinja::Value::from_serialize(&ctx)
        })
    });
    match html {
        Ok(body) => html_response(status, body, &nonce),
        Err(e) => {
            tracing::error!(template, error = %e, "a page could not be rendered");
            html_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>Error</title><p>The page could not be shown; try again.</p>".into(),
                &nonce,
            )
        }
    }
}

/// A message page: an error shown to the user instead of being redirected (RFC 6749
/// §4.1.2.1, when the redirect URI cannot be trusted), or a notice.
pub fn message(
    status: StatusCode,
    branding: &Branding,
    title: &str,
    message: &str,
    hint: Option<&str>,
) -> Response {
    render(
        status,
        branding,
        "message.html",
        minijinja::context! { title, message, hint, is_error => status.is_client_error() || status.is_server_error() },
    )
}

/// An SVG made by us, put into a page as is.
pub fn trusted_svg(svg: String) -> minijinja::Value {
    minijinja::Value::from_safe_string(svg)
}

fn html_response(status: StatusCode, body: String, nonce: &str) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    set_page_headers(h, nonce);
    r
}

/// The security headers of every hosted page and of redirects out of it.
pub fn set_page_headers(h: &mut axum::http::HeaderMap, nonce: &str) {
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' https: data:; frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}
