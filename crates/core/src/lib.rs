//! Portcullis domain: the concepts every other crate shares.
//!
//! Owns ids, authorization servers (scopes, claims, access policies and rules), clients,
//! users and groups with their lifecycle,
//! the policy engine that picks the rule for a token request, and the protocol error
//! codes of RFC 6749. It must never do I/O: no HTTP, no SQL, no files, no clocks beyond
//! what callers pass in.

pub mod error;
pub mod ids;
pub mod model;
pub mod people;
pub mod policy;
pub mod scope;
pub mod yaml;

pub use error::{OAuthError, OAuthErrorCode};
pub use model::*;
pub use people::*;
