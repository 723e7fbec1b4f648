//! Who is calling: the bearer token taken from the request (RFC 6750 §2.1), the trusted
//! issuer it belongs to, and its verification, by signature (`jwt`) or by asking the
//! issuer (RFC 7662 `introspection`, results cached).
//!
//! Owns issuer selection and introspection. It must never accept a token that neither its
//! issuer's keys nor its issuer's introspection endpoint vouched for, and never send a
//! token anywhere but to the issuer it claims to come from.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use serde_json::{Map, Value};

use crate::TokenError;
use crate::config::IssuerConfig;
use crate::jwks::{JwksCache, JwksSettings};
use crate::jwt::{IssuerPolicy, Validator, VerifiedToken, now, token_digest};
use crate::reject::Rejection;

/// Verified tokens kept per issuer.
const TOKEN_CACHE_CAPACITY: u64 = 100_000;

/// The bearer token of a request: `Ok(None)` when there is none (including other schemes).
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Rejection> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Rejection::BadRequest("Send one Authorization header."));
    }
    let value = value
        .to_str()
        .map_err(|_| Rejection::InvalidToken(TokenError::Malformed))?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    // RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let token = token.trim_matches(' ');
    let body = token.trim_end_matches('=');
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        return Err(Rejection::InvalidToken(TokenError::Malformed));
    }
    Ok(Some(token))
}

/// One trusted issuer: its validator and, if configured, its introspection client.
pub struct TrustedIssuer {
    pub issuer: String,
    pub validator: Validator,
    pub jwks: Arc<JwksCache>,
    pub introspector: Option<Introspector>,
}

impl TrustedIssuer {
    /// `kept`: the key cache of the same issuer in the gateway this one replaces, reused
    /// when its source is unchanged (so a reload while the issuer is down keeps its keys).
    pub fn new(
        c: &IssuerConfig,
        http: reqwest::Client,
        secret_of: &dyn Fn(&str) -> Option<String>,
        kept: Option<&Arc<JwksCache>>,
    ) -> Result<TrustedIssuer, String> {
        let mut policy = IssuerPolicy::new(c.issuer.clone(), c.audiences.clone());
        if let Some(algs) = &c.algorithms {
            policy.algorithms = algs.iter().filter_map(|a| crate::jwt::algorithm(a)).collect();
        }
        policy.leeway_secs = c.clock_skew_seconds;
        policy.required_typ = c.require_typ.clone();
        let jwks = match kept.filter(|k| k.same_source(&c.issuer, c.jwks_uri.as_deref(), &policy.algorithms))
        {
            Some(k) => k.clone(),
            None => JwksCache::new(
                &c.issuer,
                c.jwks_uri.clone(),
                policy.algorithms.clone(),
                http.clone(),
                JwksSettings::default(),
            ),
        };
        let introspector = match &c.introspection {
            None => None,
            Some(i) => {
                let secret = secret_of(&i.client_secret_env).ok_or_else(|| {
                    format!(
                        "the introspection secret of {} is not set: export {}",
                        c.issuer, i.client_secret_env
                    )
                })?;
                Some(Introspector {
                    issuer: c.issuer.clone(),
                    audiences: c.audiences.clone(),
                    configured_endpoint: i.endpoint.clone(),
                    discovered: tokio::sync::OnceCell::new(),
                    client_id: i.client_id.clone(),
                    client_secret: secret,
                    http,
                    ttl: Duration::from_secs(i.cache_seconds),
                    negative_ttl: Duration::from_secs(i.negative_cache_seconds),
                    cache: moka::sync::Cache::builder()
                        .max_capacity(TOKEN_CACHE_CAPACITY)
                        .expire_after(CachedResultExpiry)
                        .build(),
                    slots: tokio::sync::Semaphore::new(MAX_INTROSPECTIONS_IN_FLIGHT),
                    discovery_failed: std::sync::Mutex::new(None),
                })
            }
        };
        Ok(TrustedIssuer {
            issuer: c.issuer.clone(),
            validator: Validator::new(policy, jwks.clone(), TOKEN_CACHE_CAPACITY),
            jwks,
            introspector,
        })
    }
}

/// The `iss` a JWT claims, read before verification only to pick the issuer to verify with.
pub fn claimed_issuer(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

/// An RFC 7662 client of one issuer, with a cache of results.
pub struct Introspector {
    issuer: String,
    audiences: Vec<String>,
    configured_endpoint: Option<String>,
    discovered: tokio::sync::OnceCell<String>,
    client_id: String,
    client_secret: String,
    http: reqwest::Client,
    ttl: Duration,
    negative_ttl: Duration,
    cache: moka::sync::Cache<[u8; 32], CachedResult>,
    /// Bounds the calls in flight to the issuer, whatever clients send.
    slots: tokio::sync::Semaphore,
    /// When discovery last failed: it is not retried for [`DISCOVERY_RETRY`].
    discovery_failed: std::sync::Mutex<Option<std::time::Instant>>,
}

/// Most introspection calls in flight to one issuer.
const MAX_INTROSPECTIONS_IN_FLIGHT: usize = 64;
/// How long a failed discovery of the introspection endpoint is not retried.
const DISCOVERY_RETRY: Duration = Duration::from_secs(5);

/// A cached introspection result and how long it may be reused.
#[derive(Clone)]
struct CachedResult {
    result: Result<Arc<VerifiedToken>, TokenError>,
    ttl: Duration,
}

struct CachedResultExpiry;

impl moka::Expiry<[u8; 32], CachedResult> for CachedResultExpiry {
    fn expire_after_create(&self, _: &[u8; 32], v: &CachedResult, _: std::time::Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// Largest introspection response read.
const MAX_INTROSPECTION_BYTES: usize = 64 * 1024;

impl Introspector {
    pub async fn check(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        let digest = token_digest(token);
        if let Some(hit) = self.cache.get(&digest) {
            return hit.result;
        }
        let claims = {
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| TokenError::KeysUnavailable)?;
            // Another request may have asked about the same token while this one waited.
            if let Some(hit) = self.cache.get(&digest) {
                return hit.result;
            }
            self.ask(token).await?
        };
        let (result, ttl) = match self.judge(claims) {
            Ok(v) => {
                let left = Duration::from_secs((v.exp - now()).max(0) as u64);
                let ttl = self.ttl.min(left);
                (Ok(Arc::new(v)), ttl)
            }
            Err(e) => (Err(e), self.negative_ttl),
        };
        if !ttl.is_zero() {
            self.cache.insert(
                digest,
                CachedResult {
                    result: result.clone(),
                    ttl,
                },
            );
        }
        result
    }

    fn judge(&self, claims: Map<String, Value>) -> Result<VerifiedToken, TokenError> {
        if claims.get("active") != Some(&Value::Bool(true)) {
            return Err(TokenError::Inactive);
        }
        if let Some(iss) = claims.get("iss")
            && iss.as_str() != Some(self.issuer.as_str())
        {
            return Err(TokenError::WrongIssuer);
        }
        // RFC 7662 makes `aud` optional, but an answer without it cannot show the token is
        // meant for this API: refused, as a JWT without `aud` is.
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => self.audiences.contains(a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| self.audiences.iter().any(|x| x == a)),
            _ => false,
        };
        if !aud_ok {
            return Err(TokenError::WrongAudience);
        }
        // Refresh and ID tokens some servers introspect as active are not bearer tokens.
        let kind_ok = |v: Option<&Value>, allowed: &[&str]| {
            v.and_then(Value::as_str)
                .is_none_or(|t| allowed.iter().any(|a| t.eq_ignore_ascii_case(a)))
        };
        if !kind_ok(claims.get("token_type"), &["access_token", "bearer"])
            || !kind_ok(claims.get("typ"), &["bearer", "at+jwt"])
        {
            return Err(TokenError::WrongType);
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(TokenError::MissingClaim)?;
        if exp <= now() {
            return Err(TokenError::Expired);
        }
        Ok(VerifiedToken::new(claims, exp))
    }

    async fn endpoint(&self) -> Result<&str, TokenError> {
        if let Some(e) = &self.configured_endpoint {
            return Ok(e);
        }
        if let Some(url) = self.discovered.get() {
            return Ok(url);
        }
        let recently_failed = self
            .discovery_failed
            .lock()
            .map(|t| t.is_some_and(|t| t.elapsed() < DISCOVERY_RETRY))
            .unwrap_or(false);
        if recently_failed {
            return Err(TokenError::KeysUnavailable);
        }
        let found = self
            .discovered
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let doc: Value = self
                    .http
                    .get(&url)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|_| TokenError::KeysUnavailable)?
                    .json()
                    .await
                    .map_err(|_| TokenError::KeysUnavailable)?;
                // OpenID Connect Discovery §4.3: the document must be the issuer's own.
                if doc["issuer"].as_str() != Some(self.issuer.as_str()) {
                    return Err(TokenError::KeysUnavailable);
                }
                doc["introspection_endpoint"]
                    .as_str()
                    .map(String::from)
                    .ok_or(TokenError::KeysUnavailable)
            })
            .await
            .map(String::as_str);
        if found.is_err() {
            tracing::warn!(issuer = %self.issuer, "cannot discover the introspection endpoint");
            if let Ok(mut t) = self.discovery_failed.lock() {
                *t = Some(std::time::Instant::now());
            }
        }
        found
    }

    async fn ask(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let endpoint = self.endpoint().await?;
        let mut resp = self
            .http
            .post(endpoint)
            .basic_auth(
                form_encode(&self.client_id),
                Some(form_encode(&self.client_secret)),
            )
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(issuer = %self.issuer, error = %e, "introspection failed");
                TokenError::KeysUnavailable
            })?;
        if !resp.status().is_success() {
            tracing::warn!(issuer = %self.issuer, status = %resp.status(), "introspection refused");
            return Err(TokenError::KeysUnavailable);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|_| TokenError::KeysUnavailable)? {
            if body.len() + chunk.len() > MAX_INTROSPECTION_BYTES {
                return Err(TokenError::KeysUnavailable);
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| TokenError::KeysUnavailable)
    }
}

/// RFC 6749 §2.3.1: client credentials are form-encoded before Basic encoding.
fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.append(http::header::AUTHORIZATION, v.parse().unwrap());
        m
    }

    #[test]
    fn bearer_tokens_follow_rfc_6750() {
        assert_eq!(bearer(&HeaderMap::new()), Ok(None));
        assert_eq!(bearer(&h("Bearer abc.def-_~+/=")), Ok(Some("abc.def-_~+/=")));
        assert_eq!(bearer(&h("bearer abc")), Ok(Some("abc")));
        assert_eq!(bearer(&h("Basic dXNlcjpwdw==")), Ok(None));
        assert_eq!(bearer(&h("Bearer")), Ok(None));
        assert_eq!(
            bearer(&h("Bearer a b")),
            Err(Rejection::InvalidToken(TokenError::Malformed))
        );
        assert_eq!(
            bearer(&h("Bearer ")),
            Err(Rejection::InvalidToken(TokenError::Malformed))
        );
        let mut two = h("Bearer a");
        two.append(http::header::AUTHORIZATION, "Bearer b".parse().unwrap());
        assert!(matches!(bearer(&two), Err(Rejection::BadRequest(_))));
    }
}
