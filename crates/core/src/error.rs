//! Protocol errors of RFC 6749 §5.2, RFC 7009 §2.2.1 and RFC 6750 §3.1, as values.
//!
//! This module names the error and carries a description safe to show a client; only the
//! HTTP layer (`portcullis-idp`'s `error` module) turns it into a status and a body. A
//! description must never carry internals (SQL, stack, key material).

use std::borrow::Cow;
use std::fmt;

/// The `error` codes a token, introspection or revocation endpoint may answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    AccessDenied,
    UnsupportedTokenType,
    ServerError,
    TemporarilyUnavailable,
}

impl OAuthErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// An RFC 6749 error with a client-safe description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    pub description: Cow<'static, str>,
    /// The client tried HTTP Basic authentication: a 401 must carry
    /// `WWW-Authenticate: Basic` (RFC 6749 §5.2, `invalid_client`).
    pub basic_challenge: bool,
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
            basic_challenge: false,
        }
    }
    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::InvalidGrant, d)
    }
    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::InvalidScope, d)
    }
    pub fn unauthorized_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::UnauthorizedClient, d)
    }
    pub fn access_denied(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::AccessDenied, d)
    }
    pub fn server_error() -> Self {
        Self::new(
            OAuthErrorCode::ServerError,
            "The server could not complete the request; try again later.",
        )
    }
    pub fn temporarily_unavailable() -> Self {
        Self::new(
            OAuthErrorCode::TemporarilyUnavailable,
            "The server is temporarily unable to handle the request; try again later.",
        )
    }
    /// Marks that the client used HTTP Basic, so the 401 carries a Basic challenge.
    pub fn with_basic_challenge(mut self, basic: bool) -> Self {
        self.basic_challenge = basic;
        self
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}
