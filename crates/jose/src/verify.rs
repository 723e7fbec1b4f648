//! JWT verification against a set of published keys, through `jsonwebtoken`.
//!
//! The key is chosen by `kid`, and the algorithm comes from that key, never from the
//! token's header alone: a header naming another algorithm is refused.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};

use crate::{Jwk, JwkSet};

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a token did not verify. The text is safe to show a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is too large")]
    TooLarge,
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    #[error("the token's algorithm does not match its key")]
    AlgorithmMismatch,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token lacks a required claim")]
    MissingClaim,
    #[error("the token is not of the expected type")]
    WrongType,
}

/// Verifies tokens of one issuer against its published keys.
pub struct Verifier {
    issuer: String,
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    leeway_secs: u64,
    typ: Option<&'static str>,
}

fn key_of(jwk: &Jwk) -> Option<(Algorithm, DecodingKey)> {
    match (jwk.alg.as_str(), jwk.kty.as_str()) {
        ("RS256", "RSA") => Some((
            Algorithm::RS256,
            DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?,
        )),
        ("ES256", "EC") => Some((
            Algorithm::ES256,
            DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?).ok()?,
        )),
        ("EdDSA", "OKP") => Some((
            Algorithm::EdDSA,
            DecodingKey::from_ed_components(jwk.x.as_deref()?).ok()?,
        )),
        _ => None,
    }
}

impl Verifier {
    pub fn new(issuer: impl Into<String>, keys: &JwkSet, leeway_secs: u64) -> Verifier {
        let keys = keys
            .keys
            .iter()
            .filter_map(|k| Some((k.kid.clone(), key_of(k)?)))
            .collect();
        Verifier {
            issuer: issuer.into(),
            keys,
            leeway_secs,
            typ: None,
        }
    }

    /// Requires the header's `typ` (e.g. `at+jwt`, RFC 9068 §4), so that an ID token signed
    /// with the same keys is never taken for an access token.
    pub fn with_typ(mut self, typ: &'static str) -> Verifier {
        self.typ = Some(typ);
        self
    }

    /// Checks signature, `iss`, `exp` (required) and `nbf`, and returns the claims.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, VerifyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::TooLarge);
        }
        let header = decode_header(token).map_err(|_| VerifyError::Malformed)?;
        let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
        let (alg, key) = self.keys.get(kid).ok_or(VerifyError::UnknownKey)?;
        if header.alg != *alg {
            return Err(VerifyError::AlgorithmMismatch);
        }
        if let Some(typ) = self.typ
            && !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(typ))
        {
            return Err(VerifyError::WrongType);
        }
        let mut v = Validation::new(*alg);
        v.set_issuer(&[&self.issuer]);
        v.validate_aud = false;
        v.validate_nbf = true;
        v.leeway = self.leeway_secs;
        v.set_required_spec_claims(&["exp", "iss"]);
        use jsonwebtoken::errors::ErrorKind as K;
        decode::<Map<String, Value>>(token, key, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                K::InvalidSignature => VerifyError::BadSignature,
                K::ExpiredSignature => VerifyError::Expired,
                K::ImmatureSignature => VerifyError::NotYetValid,
                K::InvalidIssuer => VerifyError::WrongIssuer,
                K::MissingRequiredClaim(_) => VerifyError::MissingClaim,
                K::InvalidAlgorithm => VerifyError::AlgorithmMismatch,
                _ => VerifyError::Malformed,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;
    use crate::signer::{JwtType, KeyAlg};

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn signs_and_verifies_every_algorithm() {
        for alg in [KeyAlg::RS256, KeyAlg::ES256, KeyAlg::EdDSA] {
            let (key, pkcs8) = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(alg, &pkcs8).unwrap();
            assert_eq!(again.kid(), key.kid());
            let set = JwkSet {
                keys: vec![key.jwk().clone()],
            };
            let v = Verifier::new("https://iss", &set, 0);
            let t = key
                .sign_jwt(
                    JwtType::AccessToken,
                    &serde_json::json!({"iss":"https://iss","exp": now() + 60}),
                )
                .unwrap();
            assert_eq!(v.verify(&t).unwrap()["iss"], "https://iss");
            let expired = key
                .sign_jwt(
                    JwtType::AccessToken,
                    &serde_json::json!({"iss":"https://iss","exp": now() - 60}),
                )
                .unwrap();
            assert_eq!(v.verify(&expired), Err(VerifyError::Expired));
            let other = key
                .sign_jwt(
                    JwtType::AccessToken,
                    &serde_json::json!({"iss":"https://x","exp": now() + 60}),
                )
                .unwrap();
            assert_eq!(v.verify(&other), Err(VerifyError::WrongIssuer));
            let mut tampered = t.clone();
            let mid = tampered.find('.').unwrap() + 3;
            tampered.replace_range(mid..mid + 1, if &t[mid..mid + 1] == "A" { "B" } else { "A" });
            assert!(v.verify(&tampered).is_err());
        }
    }
}
