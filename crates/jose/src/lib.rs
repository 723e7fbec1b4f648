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

/// A new opaque credential (authorization code, refresh token, session cookie, CSRF
/// token): 256 random bits, base64url.
pub fn opaque_token() -> String {
    let mut raw = [0u8; 32];
    random_bytes(&mut raw);
    b64url(&raw)
}

/// How opaque credentials are stored and looked up: SHA-256, base64url. They carry 256
/// random bits, so a fast unkeyed hash is enough; the database never holds one usable as is.
pub fn token_hash(token: &str) -> String {
    b64url(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref())
}

/// OpenID Connect Core §3.1.3.6 `at_hash` (and `c_hash`): the left half of the hash of
/// the token's ASCII, with the hash of the signing algorithm (SHA-512 for Ed25519).
pub fn half_hash(alg: KeyAlg, token: &str) -> String {
    let algorithm = match alg {
        KeyAlg::EdDSA => &aws_lc_rs::digest::SHA512,
        KeyAlg::RS256 | KeyAlg::ES256 => &aws_lc_rs::digest::SHA256,
    };
    let d = aws_lc_rs::digest::digest(algorithm, token.as_bytes());
    let bytes = d.as_ref();
    b64url(&bytes[..bytes.len() / 2])
}

/// RFC 7636 §4.6: `BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge`, in
/// constant time.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let computed =
        b64url(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref());
    aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes()).is_ok()
}

/// Constant-time equality of two strings (CSRF tokens and the like).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_s256_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_s256_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cm"
        ));
        assert!(!pkce_s256_matches(
            "other",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn opaque_tokens_are_unique_and_hashes_stable() {
        let a = opaque_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, opaque_token());
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), a);
    }
}
