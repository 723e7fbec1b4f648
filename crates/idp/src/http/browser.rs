//! What the identity provider knows of a browser: its sign-in session cookie and the
//! cookie that binds sign-in flows to it, and the client address sign-in rate limits use.
//!
//! Cookies are `HttpOnly` and `SameSite=Lax` (sent on the top-level redirect from an
//! app to `/v1/authorize`, never on cross-site subresource or form requests); on an
//! `https` org URL they are also `Secure` and carry the `__Host-` prefix. Only hashes of
//! cookie values reach the database.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};

use crate::Idp;
use crate::error::EndpointError;
use portcullis_store::StoredSession;

/// Longest cookie value we read (ours are 43 characters).
const MAX_COOKIE_VALUE: usize = 128;

/// The cookie names and attributes for this org URL.
pub struct CookieJar {
    secure: bool,
}

impl CookieJar {
    pub fn for_idp(idp: &Idp) -> CookieJar {
        CookieJar {
            secure: idp.settings.org_url.starts_with("https://"),
        }
    }

    fn name(&self, base: &'static str) -> String {
        if self.secure {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }

    pub fn session_name(&self) -> String {
        self.name("pc_sid")
    }

    pub fn bind_name(&self) -> String {
        self.name("pc_bind")
    }

    /// A cookie's value from the request, if present once and sane.
    pub fn read(&self, headers: &HeaderMap, name: &str) -> Option<String> {
        let mut found = None;
        for h in headers.get_all(header::COOKIE) {
            let Ok(s) = h.to_str() else { continue };
            for pair in s.split(';') {
                let Some((k, v)) = pair.trim().split_once('=') else {
                    continue;
                };
                if k == name {
                    if found.is_some() || v.is_empty() || v.len() > MAX_COOKIE_VALUE {
                        return None;
                    }
                    found = Some(v.to_owned());
                }
            }
        }
        found.filter(|v: &String| {
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    }

    /// `Set-Cookie` for a value; `max_age` `None` is a browser-session cookie.
    pub fn set(&self, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
        let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
        if self.secure {
            c.push_str("; Secure");
        }
        if let Some(a) = max_age {
            c.push_str(&format!("; Max-Age={a}"));
        }
        HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }

    pub fn clear(&self, name: &str) -> HeaderValue {
        self.set(name, "", Some(0))
    }
}

/// The browser's live sign-in session, if its cookie names one.
pub async fn session(
    idp: &Idp,
    jar: &CookieJar,
    headers: &HeaderMap,
    now: i64,
) -> Result<Option<(String, StoredSession)>, EndpointError> {
    let Some(raw) = jar.read(headers, &jar.session_name()) else {
        return Ok(None);
    };
    let hash = portcullis_jose::token_hash(&raw);
    Ok(idp
        .store
        .session(&idp.org_id, &hash, now)
        .await?
        .map(|s| (hash, s)))
}

/// The address of the client (the TCP peer; the server puts it into each request).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ))
    }
}
