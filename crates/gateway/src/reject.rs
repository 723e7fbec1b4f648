//! Every refusal the gateway answers itself, and its response, in one place: RFC 6750 §3
//! challenges for token problems, plain statuses for routing and upstream failures, and a
//! small JSON body with the same facts.
//!
//! It must never put internals (addresses, library errors) in a response, nor answer 500
//! for anything a client sent.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::TokenError;

/// Why the gateway answered instead of the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    NoRoute,
    MethodNotAllowed(Vec<http::Method>),
    /// No bearer token (RFC 6750 §3.1: a challenge without an error code).
    NoToken,
    /// A token that was sent but is not acceptable (401 `invalid_token`).
    InvalidToken(TokenError),
    /// Valid token, missing scopes (403 `insufficient_scope`).
    InsufficientScope {
        needed: String,
    },
    /// Valid token, a claim condition not met (403 `insufficient_scope`).
    ConditionFailed {
        message: String,
    },
    /// The `Authorization` header is not a single well-formed bearer credential (400,
    /// `invalid_request`).
    BadRequest(&'static str),
    /// The path cannot be routed safely (400, no challenge: not a token problem).
    BadPath(crate::path::PathError),
    /// Something else about the request is malformed, e.g. its host (400, no challenge).
    MalformedRequest(&'static str),
    /// The issuer's keys or introspection endpoint cannot be reached (503).
    AuthUnavailable,
    /// The upstream refused or dropped the connection (502).
    BadGateway,
    /// No upstream target is healthy (503).
    UpstreamUnavailable,
    /// The upstream did not answer in time (504).
    GatewayTimeout,
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::NoRoute => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::NoToken | Rejection::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Rejection::InsufficientScope { .. } | Rejection::ConditionFailed { .. } => StatusCode::FORBIDDEN,
            Rejection::BadRequest(_) | Rejection::BadPath(_) | Rejection::MalformedRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            Rejection::AuthUnavailable | Rejection::UpstreamUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::BadGateway => StatusCode::BAD_GATEWAY,
            Rejection::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The RFC 6750 error code, where there is one.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Rejection::InvalidToken(_) => Some("invalid_token"),
            Rejection::InsufficientScope { .. } | Rejection::ConditionFailed { .. } => {
                Some("insufficient_scope")
            }
            Rejection::BadRequest(_) => Some("invalid_request"),
            _ => None,
        }
    }

    pub fn description(&self) -> String {
        match self {
            Rejection::NoRoute => "No route matches this request.".into(),
            Rejection::MethodNotAllowed(_) => "This route does not accept this method.".into(),
            Rejection::NoToken => "This route requires a bearer token in the Authorization header.".into(),
            Rejection::InvalidToken(e) => format!("{e}."),
            Rejection::InsufficientScope { needed } => {
                format!("The access token lacks the required scope: {needed}.")
            }
            Rejection::ConditionFailed { message } => {
                format!("The access token's claims do not allow this: {message}.")
            }
            Rejection::BadRequest(why) | Rejection::MalformedRequest(why) => (*why).into(),
            Rejection::BadPath(e) => e.description().into(),
            Rejection::AuthUnavailable => "The token cannot be checked right now; retry later.".into(),
            Rejection::BadGateway => "The upstream service refused or dropped the connection.".into(),
            Rejection::UpstreamUnavailable => "The upstream service is unavailable; retry later.".into(),
            Rejection::GatewayTimeout => "The upstream service did not answer in time.".into(),
        }
    }

    /// `WWW-Authenticate` for 401s and 403s (RFC 6750 §3).
    pub fn challenge(&self, realm: &str) -> Option<String> {
        let mut c = format!("Bearer realm=\"{}\"", quoted(realm));
        match self {
            Rejection::NoToken => {}
            Rejection::InvalidToken(_)
            | Rejection::InsufficientScope { .. }
            | Rejection::ConditionFailed { .. }
            | Rejection::BadRequest(_) => {
                let code = self.error_code().unwrap_or("invalid_request");
                c.push_str(&format!(
                    ", error=\"{code}\", error_description=\"{}\"",
                    quoted(&self.description())
                ));
                if let Rejection::InsufficientScope { needed } = self {
                    c.push_str(&format!(", scope=\"{}\"", quoted(needed)));
                }
            }
            _ => return None,
        }
        Some(c)
    }

    pub fn into_response<B: From<Full<Bytes>>>(self, realm: &str) -> Response<B> {
        let status = self.status();
        let mut body =
            serde_json::json!({ "status": status.as_u16(), "error_description": self.description() });
        if let Some(code) = self.error_code() {
            body["error"] = code.into();
        }
        if let Rejection::InsufficientScope { needed } = &self {
            body["scope"] = needed.as_str().into();
        }
        let mut resp = Response::new(B::from(Full::new(Bytes::from(body.to_string()))));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(c) = self.challenge(realm).and_then(|c| HeaderValue::try_from(c).ok()) {
            h.insert(header::WWW_AUTHENTICATE, c);
        }
        if matches!(self, Rejection::AuthUnavailable | Rejection::UpstreamUnavailable) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let Rejection::MethodNotAllowed(ms) = &self {
            let allow = ms.iter().map(http::Method::as_str).collect::<Vec<_>>().join(", ");
            if let Ok(v) = HeaderValue::try_from(allow) {
                h.insert(header::ALLOW, v);
            }
        }
        resp
    }
}

/// Text safe inside an RFC 6750 quoted value: printable ASCII without `"` and `\`.
fn quoted(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            c if c == ' ' || c.is_ascii_graphic() => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc_6750() {
        assert_eq!(
            Rejection::NoToken.challenge("api").unwrap(),
            "Bearer realm=\"api\""
        );
        let c = Rejection::InvalidToken(TokenError::Expired)
            .challenge("api")
            .unwrap();
        assert_eq!(
            c,
            "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"The access token expired.\""
        );
        let c = Rejection::InsufficientScope {
            needed: "products:write".into(),
        }
        .challenge("api")
        .unwrap();
        assert!(
            c.contains("error=\"insufficient_scope\"") && c.ends_with("scope=\"products:write\""),
            "{c}"
        );
        let c = Rejection::ConditionFailed {
            message: "\"admin\" in claims.user_roles".into(),
        }
        .challenge("a")
        .unwrap();
        assert!(c.contains("'admin' in claims.user_roles"), "{c}");
        assert_eq!(Rejection::GatewayTimeout.challenge("a"), None);
    }
}
