//! Bearer-token validation, the steps of the article's section 4.2, hardened:
//!
//! 1. Bound the token's size.
//! 2. Read the header: `alg: none` and HMAC algorithms are refused outright, a `kid` is
//!    required, unknown `crit` extensions are refused, and keys the token offers about
//!    itself (`jwk`, `jku`, `x5u`, `x5c`) are ignored.
//! 3. Take the key for that `kid` from the issuer's cached JWKS, and the algorithm from the
//!    key; the header must agree.
//! 4. Verify the signature (`jsonwebtoken`).
//! 5. Check `iss` exactly, `aud` any-of, `exp` (required), `nbf`, and `iat` not in the
//!    future, each with the configured clock skew.
//! 6. Bound the claim count.
//!
//! A verified token is cached (keyed by its SHA-256) until it expires, at most
//! [`MAX_CACHE_TTL`]: a repeated token costs a hash and a lookup instead of a signature check.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64_decode::decode_segment;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::{JwksCache, TokenError};

/// Longest a verified token stays cached, whatever its `exp` (so that a key removed from
/// the issuer's JWKS stops being honoured soon).
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(300);

/// What the gateway demands of one trusted issuer's tokens.
#[derive(Debug, Clone)]
pub struct IssuerPolicy {
    /// Exact `iss`.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// Algorithms accepted at all (asymmetric only).
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway_secs: u64,
    pub max_token_bytes: usize,
    pub max_claims: usize,
    /// The JOSE `typ` tokens must carry (compared without case and an `application/`
    /// prefix, RFC 8725 §3.11); any when `None`.
    pub required_typ: Option<String>,
}

impl IssuerPolicy {
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> IssuerPolicy {
        IssuerPolicy {
            issuer: issuer.into(),
            audiences,
            algorithms: vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
            leeway_secs: 30,
            max_token_bytes: 8 * 1024,
            max_claims: 64,
            required_typ: None,
        }
    }
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The claims, a JSON object (kept as a `Value` so conditions use it without a copy).
    pub claims: Value,
    /// Granted scopes, from Okta's `scp` array and/or RFC 9068's space-separated `scope`.
    pub scopes: Vec<String>,
    pub exp: i64,
}

impl VerifiedToken {
    pub(crate) fn new(claims: Map<String, Value>, exp: i64) -> VerifiedToken {
        let mut scopes: Vec<String> = Vec::new();
        match claims.get("scp") {
            Some(Value::Array(scp)) => scopes.extend(scp.iter().filter_map(Value::as_str).map(String::from)),
            // Azure AD sends `scp` space-separated.
            Some(Value::String(scp)) => {
                scopes.extend(scp.split(' ').filter(|s| !s.is_empty()).map(String::from))
            }
            _ => {}
        }
        if let Some(Value::String(s)) = claims.get("scope") {
            for sc in s.split(' ').filter(|s| !s.is_empty()) {
                if !scopes.iter().any(|x| x == sc) {
                    scopes.push(sc.to_owned());
                }
            }
        }
        VerifiedToken {
            claims: Value::Object(claims),
            scopes,
            exp,
        }
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Validates tokens of one issuer.
pub struct Validator {
    policy: IssuerPolicy,
    jwks: Arc<JwksCache>,
    cache: moka::sync::Cache<[u8; 32], Arc<VerifiedToken>>,
}

struct UntilExpiry;

impl moka::Expiry<[u8; 32], Arc<VerifiedToken>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<VerifiedToken>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        let left = (value.exp - now()).max(0) as u64;
        Some(Duration::from_secs(left).min(MAX_CACHE_TTL))
    }
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The cache key of a token: its SHA-256.
pub(crate) fn token_digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// An accepted (asymmetric) algorithm by its JOSE name.
pub fn algorithm(name: &str) -> Option<Algorithm> {
    if !ASYMMETRIC.contains(&name) {
        return None;
    }
    name.parse().ok()
}

/// Signature algorithms a public key can verify; anything else is refused before parsing.
const ASYMMETRIC: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Critical header parameters this validator understands (none beyond the JWS basics).
const UNDERSTOOD_CRIT: &[&str] = &[];

impl Validator {
    /// `cache_capacity` bounds the number of verified tokens kept.
    pub fn new(policy: IssuerPolicy, jwks: Arc<JwksCache>, cache_capacity: u64) -> Validator {
        let cache = moka::sync::Cache::builder()
            .max_capacity(cache_capacity)
            .expire_after(UntilExpiry)
            .build();
        Validator { policy, jwks, cache }
    }

    pub fn policy(&self) -> &IssuerPolicy {
        &self.policy
    }

    /// Validates `token` (the bearer value, without the scheme).
    pub async fn validate(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        if token.len() > self.policy.max_token_bytes {
            return Err(TokenError::TooLarge);
        }
        let digest = token_digest(token);
        if let Some(hit) = self.cache.get(&digest)
            && hit.exp.saturating_add(self.policy.leeway_secs as i64) > now()
        {
            return Ok(hit);
        }
        let verified = Arc::new(self.verify(token).await?);
        self.cache.insert(digest, verified.clone());
        Ok(verified)
    }

    async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        if h.is_empty() || p.is_empty() || s.is_empty() {
            return Err(TokenError::Malformed);
        }
        // The header's own `alg` first, so `none` and HMAC are named as what they are.
        let raw_header: Value = decode_segment(h).ok_or(TokenError::Malformed)?;
        match raw_header.get("alg").and_then(Value::as_str) {
            Some(a) if ASYMMETRIC.contains(&a) => {}
            // `none`, HMAC (a public key used as a shared secret), anything unknown.
            Some(_) => return Err(TokenError::AlgorithmNotAllowed),
            None => return Err(TokenError::Malformed),
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if let Some(crit) = &header.crit
            && (crit.is_empty() || crit.iter().any(|c| !UNDERSTOOD_CRIT.contains(&c.as_str())))
        {
            return Err(TokenError::UnsupportedCritical);
        }
        if let Some(want) = &self.policy.required_typ {
            let typ = header.typ.as_deref().unwrap_or("");
            let typ = typ.strip_prefix("application/").unwrap_or(typ);
            if !typ.eq_ignore_ascii_case(want) {
                return Err(TokenError::WrongType);
            }
        }
        // `jwk`, `jku`, `x5u`, `x5c`: never used. Keys come from the issuer's JWKS only.
        let kid = header
            .kid
            .as_deref()
            .filter(|k| !k.is_empty())
            .ok_or(TokenError::MissingKid)?;
        if !self.policy.algorithms.contains(&header.alg) {
            return Err(TokenError::AlgorithmNotAllowed);
        }
        let key = self.jwks.key(kid).await?;
        if key.alg != header.alg {
            return Err(TokenError::AlgorithmMismatch);
        }

        let mut v = Validation::new(key.alg);
        v.set_issuer(&[&self.policy.issuer]);
        v.set_audience(&self.policy.audiences);
        v.leeway = self.policy.leeway_secs;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        use jsonwebtoken::errors::ErrorKind as K;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &v)
            .map_err(|e| match e.kind() {
                K::InvalidSignature => TokenError::BadSignature,
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::InvalidIssuer => TokenError::WrongIssuer,
                K::InvalidAudience => TokenError::WrongAudience,
                K::MissingRequiredClaim(_) => TokenError::MissingClaim,
                K::InvalidAlgorithm => TokenError::AlgorithmMismatch,
                _ => TokenError::Malformed,
            })?
            .claims;
        if claims.len() > self.policy.max_claims {
            return Err(TokenError::TooManyClaims);
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(TokenError::MissingClaim)?;
        if let Some(iat) = claims.get("iat") {
            let iat = iat.as_i64().ok_or(TokenError::Malformed)?;
            if iat > now() + self.policy.leeway_secs as i64 {
                return Err(TokenError::IssuedInFuture);
            }
        }
        Ok(VerifiedToken::new(claims, exp))
    }
}

mod base64_decode {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    /// A base64url JSON segment of a JWS, decoded.
    pub fn decode_segment(segment: &str) -> Option<serde_json::Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).ok()?).ok()
    }
}
