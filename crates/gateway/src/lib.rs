//! The Portcullis API gateway (in progress): validates bearer tokens from any OIDC issuer
//! against cached JWKS, and will enforce per-route scope and claim policies in front of a
//! streaming reverse proxy.
//!
//! Owns token validation (`jwt`) and the per-issuer key cache (`jwks`). It must never make
//! an outbound call per request in steady state, never pick a verification algorithm from
//! a token's header alone, never trust keys a token offers about itself, and never answer a
//! bad token with anything but a 401.

pub mod error;
pub mod jwks;
pub mod jwt;

pub use error::TokenError;
pub use jwks::{JwksCache, JwksSettings};
pub use jwt::{IssuerPolicy, Validator, VerifiedToken};
