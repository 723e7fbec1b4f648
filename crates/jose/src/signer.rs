//! JWT signing with a key pair parsed once.
//!
//! `jsonwebtoken::encode` re-parses the private key for every token (about 2.6x the cost
//! of the RSA signature itself), so signing keys are held here as parsed aws-lc-rs key
//! pairs and the JWS compact serialization (RFC 7515 §7.1: three base64url parts) is
//! written directly. Verification goes through `jsonwebtoken` (see `verify`).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use serde::Serialize;

use crate::{Jwk, KeyError, b64url};

pub use portcullis_core::SigningAlg as KeyAlg;

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private signing key, ready to sign.
pub struct SigningKey {
    alg: KeyAlg,
    pair: Pair,
    jwk: Jwk,
    /// base64url of `{"alg","kid","typ":"at+jwt"}`, made once.
    access_token_header: String,
    /// base64url of `{"alg","kid","typ":"JWT"}` (ID tokens, other JWTs).
    jwt_header: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.jwk.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

/// Which `typ` header a JWT carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtType {
    /// RFC 9068 access tokens: `typ: at+jwt`.
    AccessToken,
    /// Everything else: `typ: JWT`.
    Jwt,
}

impl SigningKey {
    /// Generates a key; returns it with its PKCS#8 DER encoding (seal that before storing).
    pub fn generate(alg: KeyAlg) -> Result<(SigningKey, Vec<u8>), KeyError> {
        let pkcs8 = match alg {
            KeyAlg::RS256 => {
                let k = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
                AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&k)
                    .map_err(|_| KeyError::Generate)?
                    .as_ref()
                    .to_vec()
            }
            KeyAlg::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1())
                .map_err(|_| KeyError::Generate)?
                .as_ref()
                .to_vec(),
            KeyAlg::EdDSA => Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8v1())
                .map_err(|_| KeyError::Generate)?
                .as_ref()
                .to_vec(),
        };
        let key = SigningKey::from_pkcs8(alg, &pkcs8)?;
        Ok((key, pkcs8))
    }

    /// Parses a PKCS#8 DER private key of the given algorithm.
    pub fn from_pkcs8(alg: KeyAlg, pkcs8: &[u8]) -> Result<SigningKey, KeyError> {
        let (pair, mut jwk) = match alg {
            KeyAlg::RS256 => {
                let k = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| KeyError::Parse("RSA"))?;
                let p = k.public_key();
                let jwk = Jwk {
                    kty: "RSA".into(),
                    n: Some(b64url(p.modulus().big_endian_without_leading_zero())),
                    e: Some(b64url(p.exponent().big_endian_without_leading_zero())),
                    ..empty_jwk()
                };
                (Pair::Rsa(k), jwk)
            }
            KeyAlg::ES256 => {
                let k = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(|_| KeyError::Parse("P-256"))?;
                // Uncompressed SEC1 point: 0x04 || X (32) || Y (32).
                let point = k.public_key().as_ref();
                if point.len() != 65 {
                    return Err(KeyError::Parse("P-256"));
                }
                let jwk = Jwk {
                    kty: "EC".into(),
                    crv: Some("P-256".into()),
                    x: Some(b64url(&point[1..33])),
                    y: Some(b64url(&point[33..65])),
                    ..empty_jwk()
                };
                (Pair::Ec(k), jwk)
            }
            KeyAlg::EdDSA => {
                let k = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| KeyError::Parse("Ed25519"))?;
                let jwk = Jwk {
                    kty: "OKP".into(),
                    crv: Some("Ed25519".into()),
                    x: Some(b64url(k.public_key().as_ref())),
                    ..empty_jwk()
                };
                (Pair::Ed(k), jwk)
            }
        };
        jwk.alg = alg.as_str().into();
        jwk.kid = jwk.thumbprint();
        let header = |typ: &str| {
            b64url(
                serde_json::json!({ "alg": alg.as_str(), "kid": jwk.kid, "typ": typ })
                    .to_string()
                    .as_bytes(),
            )
        };
        Ok(SigningKey {
            alg,
            access_token_header: header("at+jwt"),
            jwt_header: header("JWT"),
            pair,
            jwk,
        })
    }

    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    pub fn alg(&self) -> KeyAlg {
        self.alg
    }

    /// The public half, as published in the JWKS.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Signs `claims` as a compact JWS.
    pub fn sign_jwt<T: Serialize>(&self, typ: JwtType, claims: &T) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        let header = match typ {
            JwtType::AccessToken => &self.access_token_header,
            JwtType::Jwt => &self.jwt_header,
        };
        let mut jws = String::with_capacity(header.len() + payload.len() * 4 / 3 + 400);
        jws.push_str(header);
        jws.push('.');
        jws.push_str(&b64url(&payload));
        let signature = self.sign_raw(jws.as_bytes())?;
        jws.push('.');
        jws.push_str(&b64url(&signature));
        Ok(jws)
    }

    fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(
                    &RSA_PKCS1_SHA256,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    message,
                    &mut sig,
                )
                .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
            Pair::Ec(k) => k
                .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Pair::Ed(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

fn empty_jwk() -> Jwk {
    Jwk {
        kty: String::new(),
        alg: String::new(),
        kid: String::new(),
        use_: "sig".into(),
        n: None,
        e: None,
        crv: None,
        x: None,
        y: None,
    }
}
