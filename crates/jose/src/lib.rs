//! Key material and JOSE for Portcullis, over aws-lc-rs and `jsonwebtoken`.
//!
//! Owns the master key (and what it derives), encryption of private keys at rest, key
//! generation, JWT signing with key pairs parsed once, JWKS documents, JWT verification,
//! and the keyed hash of client secrets. It must never log, print or return secret bytes
//! except sealed, and never choose a verification algorithm from a token's header alone.

pub mod jwk;
pub mod master;
pub mod secret;
pub mod signer;
pub mod verify;

pub use jwk::{Jwk, JwkSet};
pub use master::MasterKey;
pub use secret::SecretHasher;
pub use signer::{KeyAlg, SigningKey};
pub use verify::{Verifier, VerifyError};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Errors from key handling. Messages name what failed, never key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("could not generate a key: the crypto library refused")]
    Generate,
    #[error("stored key material is not a valid {0} key")]
    Parse(&'static str),
    #[error("could not decrypt stored key material: wrong master key or corrupted data")]
    Unseal,
    #[error("could not sign")]
    Sign,
    #[error("the master key must be 32 bytes, base64 or base64url encoded (e.g. `openssl rand -base64 32`)")]
    BadMasterKey,
}

pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Fills `buf` from the system CSPRNG.
pub fn random_bytes(buf: &mut [u8]) {
    use aws_lc_rs::rand::SecureRandom;
    aws_lc_rs::rand::SystemRandom::new()
        .fill(buf)
        .expect("system random source failed");
}
