//! Reading a bounded `application/x-www-form-urlencoded` body (RFC 6749 §3.2: parameters
//! "MUST NOT be included more than once"), within a size and a time limit.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use portcullis_core::OAuthError;

use crate::error::EndpointError;

/// Largest form body accepted.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// Most parameters in one form.
pub const MAX_PARAMS: usize = 32;
/// Longest single value (a token is the longest thing a client sends us).
pub const MAX_VALUE_LEN: usize = 8 * 1024;
/// Time allowed to receive the body once the headers are in.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Form parameters, each present at most once.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A parameter that must be present and non-empty.
    pub fn require(&self, name: &'static str) -> Result<&str, OAuthError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(OAuthError::invalid_request(format!(
                "The '{name}' parameter is required."
            ))),
        }
    }

    pub fn parse(body: &[u8]) -> Result<Params, OAuthError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(body) {
            if out.len() == MAX_PARAMS {
                return Err(OAuthError::invalid_request(
                    "The request has too many parameters.",
                ));
            }
            if k.len() > 64 || v.len() > MAX_VALUE_LEN {
                return Err(OAuthError::invalid_request(format!(
                    "The '{}' parameter is too long.",
                    k.chars().take(64).collect::<String>()
                )));
            }
            if out.iter().any(|(seen, _)| *seen == k) {
                return Err(OAuthError::invalid_request(format!(
                    "The '{k}' parameter was included more than once."
                )));
            }
            out.push((k.into_owned(), v.into_owned()));
        }
        Ok(Params(out))
    }
}

/// Checks the content type, then reads and parses the body within its bounds.
pub async fn read_form(headers: &HeaderMap, body: Body) -> Result<Params, EndpointError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(OAuthError::invalid_request(
            "The request body must be application/x-www-form-urlencoded.",
        )
        .into());
    }
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_FORM_BYTES)).await {
        Err(_) => return Err(OAuthError::invalid_request("The request body did not arrive in time.").into()),
        Ok(Err(e)) => {
            // `to_bytes` fails either on the length limit or on a broken connection.
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            return Err(if too_large {
                EndpointError::TooLarge
            } else {
                OAuthError::invalid_request("The request body could not be read.").into()
            });
        }
        Ok(Ok(b)) => b,
    };
    Ok(Params::parse(&bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicates_and_bounds() {
        assert!(Params::parse(b"a=1&a=2").is_err());
        assert_eq!(
            Params::parse(b"grant_type=client_credentials&scope=a+b")
                .unwrap()
                .get("scope"),
            Some("a b")
        );
        let many: String = (0..40).map(|i| format!("p{i}=x&")).collect();
        assert!(Params::parse(many.as_bytes()).is_err());
        assert!(Params::parse(format!("t={}", "x".repeat(MAX_VALUE_LEN + 1)).as_bytes()).is_err());
    }
}
