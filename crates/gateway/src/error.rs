//! Why a bearer token was refused. Each variant's text is the `error_description` a client
//! sees in `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1): it says what
//! is wrong without internals.

/// A refused token (RFC 6750 `invalid_token`), or keys that cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("The access token is malformed")]
    Malformed,
    #[error("The access token is too large")]
    TooLarge,
    #[error("The access token has too many claims")]
    TooManyClaims,
    #[error("The access token's signing algorithm is not accepted")]
    AlgorithmNotAllowed,
    #[error("The access token's algorithm does not match its key")]
    AlgorithmMismatch,
    #[error("The access token has no key id")]
    MissingKid,
    #[error("The access token was signed with an unknown key")]
    UnknownKey,
    #[error("The access token uses an unsupported critical header")]
    UnsupportedCritical,
    #[error("The access token signature is invalid")]
    BadSignature,
    #[error("The access token expired")]
    Expired,
    #[error("The access token is not valid yet")]
    NotYetValid,
    #[error("The access token was issued in the future")]
    IssuedInFuture,
    #[error("The access token was not issued by a trusted issuer")]
    WrongIssuer,
    #[error("The access token is not intended for this audience")]
    WrongAudience,
    #[error("The access token lacks a required claim")]
    MissingClaim,
    #[error("The access token is not active")]
    Inactive,
    #[error("The token is not an access token")]
    WrongType,
    /// Not the client's fault: the issuer's keys could not be fetched and none are cached.
    #[error("The issuer's signing keys are unavailable")]
    KeysUnavailable,
}

impl TokenError {
    /// True when the fault is ours or the issuer's (answer 503), not the token's (401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, TokenError::KeysUnavailable)
    }
}
