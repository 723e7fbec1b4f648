//! The key cache of one trusted issuer: its JWKS, found through OIDC discovery or given,
//! held in memory so that validating a token makes no outbound call in steady state.
//!
//! - Freshness follows the JWKS response's `Cache-Control: max-age`, clamped to
//!   [`JwksSettings::min_ttl`, `JwksSettings::max_ttl`]; a background task refreshes the
//!   keys at four fifths of that, before they go stale.
//! - A token with an unknown `kid` (a rotation the cache has not seen) triggers one refetch,
//!   at most once per [`JwksSettings::unknown_kid_interval`]; concurrent requests wait on that
//!   same fetch instead of starting their own.
//! - When the issuer cannot be reached, the last good keys keep serving for
//!   [`JwksSettings::stale_for`] past their freshness; after that tokens are refused as
//!   "keys unavailable" (a 503, not the client's fault).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::TokenError;

/// Tuning of a [`JwksCache`]; every field has a sensible default.
#[derive(Debug, Clone)]
pub struct JwksSettings {
    /// Lower bound on how long fetched keys are considered fresh.
    pub min_ttl: Duration,
    /// Upper bound on the same.
    pub max_ttl: Duration,
    /// Freshness when the response carries no `max-age`.
    pub default_ttl: Duration,
    /// At most one refetch per this interval for tokens with an unknown `kid`.
    pub unknown_kid_interval: Duration,
    /// How long past their freshness the last good keys serve while the issuer is down.
    pub stale_for: Duration,
    /// Deadline of one discovery or JWKS request.
    pub fetch_timeout: Duration,
    /// Largest JWKS or discovery document accepted.
    pub max_document_bytes: usize,
}

impl Default for JwksSettings {
    fn default() -> Self {
        JwksSettings {
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            default_ttl: Duration::from_secs(3600),
            unknown_kid_interval: Duration::from_secs(5),
            stale_for: Duration::from_secs(6 * 3600),
            fetch_timeout: Duration::from_secs(5),
            max_document_bytes: 512 * 1024,
        }
    }
}

/// A public key and the one algorithm it verifies.
pub struct Key {
    pub alg: Algorithm,
    pub decoding: DecodingKey,
}

struct KeySet {
    keys: HashMap<String, Arc<Key>>,
    fetched_at: Instant,
    fresh_until: Instant,
    usable_until: Instant,
}

struct FetchState {
    last_attempt: Option<Instant>,
    /// `jwks_uri` from discovery, once known.
    jwks_url: Option<String>,
}

/// The keys of one issuer.
pub struct JwksCache {
    issuer: String,
    configured_jwks_url: Option<String>,
    allowed: Vec<Algorithm>,
    http: reqwest::Client,
    settings: JwksSettings,
    current: RwLock<Option<Arc<KeySet>>>,
    fetch: tokio::sync::Mutex<FetchState>,
    generation: AtomicU64,
    fetches: AtomicU64,
    refresher_started: std::sync::atomic::AtomicBool,
}

impl JwksCache {
    /// `jwks_url` None means: discover it from `{issuer}/.well-known/openid-configuration`.
    pub fn new(
        issuer: impl Into<String>,
        jwks_url: Option<String>,
        allowed: Vec<Algorithm>,
        http: reqwest::Client,
        settings: JwksSettings,
    ) -> Arc<JwksCache> {
        Arc::new(JwksCache {
            issuer: issuer.into(),
            configured_jwks_url: jwks_url,
            allowed,
            http,
            settings,
            current: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(FetchState {
                last_attempt: None,
                jwks_url: None,
            }),
            generation: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            refresher_started: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether this cache serves `issuer` from the same JWKS source with the same algorithms
    /// (a reload can then keep it, keys and all).
    pub fn same_source(&self, issuer: &str, jwks_url: Option<&str>, allowed: &[Algorithm]) -> bool {
        self.issuer == issuer && self.configured_jwks_url.as_deref() == jwks_url && self.allowed == allowed
    }

    /// How many JWKS documents were fetched (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.current
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The key for `kid`, refetching once (rate-limited, shared) if it is unknown.
    pub async fn key(&self, kid: &str) -> Result<Arc<Key>, TokenError> {
        if let Some(set) = self.snapshot()
            && Instant::now() < set.usable_until
            && let Some(k) = set.keys.get(kid)
        {
            return Ok(k.clone());
        }
        self.refetch(true).await;
        match self.snapshot() {
            Some(set) if Instant::now() < set.usable_until => {
                set.keys.get(kid).cloned().ok_or(TokenError::UnknownKey)
            }
            _ => Err(TokenError::KeysUnavailable),
        }
    }

    /// Fetches the keys now (single-flight). With `rate_limited`, skips when an attempt was
    /// made within the unknown-kid interval. Returns whether new keys were installed.
    pub async fn refetch(&self, rate_limited: bool) -> bool {
        let seen = self.generation.load(Ordering::Acquire);
        let mut state = self.fetch.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return true; // another caller fetched while we waited: use its result
        }
        if rate_limited
            && let Some(t) = state.last_attempt
            && t.elapsed() < self.settings.unknown_kid_interval
        {
            return false;
        }
        state.last_attempt = Some(Instant::now());
        match self.fetch_keys(&mut state).await {
            Ok(set) if set.keys.is_empty() && self.snapshot().is_some_and(|old| !old.keys.is_empty()) => {
                // An empty or unusable set replacing good keys would refuse every token.
                tracing::warn!(issuer = %self.issuer, "the JWKS has no usable key; keeping the previous keys");
                false
            }
            Ok(set) => {
                let mut slot = self.current.write().unwrap_or_else(|p| p.into_inner());
                *slot = Some(Arc::new(set));
                self.generation.fetch_add(1, Ordering::Release);
                true
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "JWKS fetch failed; serving the last good keys");
                false
            }
        }
    }

    /// Keeps the keys fresh in the background: refreshes when they go stale, retries
    /// failures with backoff. Ends when the cache is dropped. One refresher per cache: a
    /// second call (a reload that kept this cache) does nothing.
    pub fn spawn_refresher(self: &Arc<Self>) {
        if self.refresher_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut backoff = Duration::from_secs(1);
            loop {
                let Some(cache) = weak.upgrade() else { return };
                // Refresh at four fifths of the freshness, so requests never meet stale keys.
                let wait = match cache.snapshot() {
                    Some(set) => {
                        let refresh_at = set.fetched_at + (set.fresh_until - set.fetched_at) * 4 / 5;
                        refresh_at.saturating_duration_since(Instant::now())
                    }
                    None => Duration::ZERO,
                };
                drop(cache);
                tokio::time::sleep(wait).await;
                let Some(cache) = weak.upgrade() else { return };
                if cache.refetch(false).await {
                    backoff = Duration::from_secs(1);
                } else {
                    drop(cache);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        });
    }

    async fn fetch_keys(&self, state: &mut FetchState) -> Result<KeySet, String> {
        let url = match (&self.configured_jwks_url, &state.jwks_url) {
            (Some(u), _) | (None, Some(u)) => u.clone(),
            (None, None) => {
                let u = self.discover().await?;
                state.jwks_url = Some(u.clone());
                u
            }
        };
        let (body, max_age) = self.get(&url).await.inspect_err(|_| {
            // A discovered URL may have moved: discover again next time.
            state.jwks_url = None;
        })?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| format!("JWKS at {url} is not valid: {e}"))?;
        let keys: HashMap<String, Arc<Key>> = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, Arc::new(self.key_of(jwk)?))))
            .collect();
        let ttl = max_age
            .unwrap_or(self.settings.default_ttl)
            .clamp(self.settings.min_ttl, self.settings.max_ttl);
        let now = Instant::now();
        Ok(KeySet {
            keys,
            fetched_at: now,
            fresh_until: now + ttl,
            usable_until: now + ttl + self.settings.stale_for,
        })
    }

    /// The verification key of a JWK, if it is a signing key of an allowed algorithm.
    /// Symmetric (`oct`) keys are never accepted: a gateway only holds public keys.
    fn key_of(&self, jwk: &Jwk) -> Option<Key> {
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            return None;
        }
        let inferred = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            // `oct` (a shared secret) and anything newer than this code: never.
            _ => return None,
        };
        let alg = match jwk.common.key_algorithm {
            None => inferred,
            Some(a) => {
                let named = Algorithm::from_key_algorithm(a)?;
                // The key's declared algorithm must fit its type (no RSA key declared ES256).
                let fits = match (&jwk.algorithm, named) {
                    (AlgorithmParameters::RSA(_), Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512)
                    | (AlgorithmParameters::RSA(_), Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512) => {
                        true
                    }
                    (AlgorithmParameters::EllipticCurve(_), a) => a == inferred,
                    (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA) => true,
                    _ => false,
                };
                if !fits {
                    return None;
                }
                named
            }
        };
        if !self.allowed.contains(&alg) {
            return None;
        }
        Some(Key {
            alg,
            decoding: DecodingKey::from_jwk(jwk).ok()?,
        })
    }

    async fn discover(&self) -> Result<String, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let (body, _) = self.get(&url).await?;
        let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))?;
        // OpenID Connect Discovery §4.3: the issuer in the document must be exactly ours.
        if doc["issuer"].as_str() != Some(self.issuer.as_str()) {
            return Err(format!(
                "{url} names issuer {} instead of {}",
                doc["issuer"], self.issuer
            ));
        }
        doc["jwks_uri"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| format!("{url} has no jwks_uri"))
    }

    /// GETs a JSON document within the size and time bounds; returns it and its max-age.
    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>), String> {
        let mut resp = self
            .http
            .get(url)
            .timeout(self.settings.fetch_timeout)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered {}", resp.status()));
        }
        let max_age = resp
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_max_age);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > self.settings.max_document_bytes {
                return Err(format!(
                    "{url}: document larger than {} bytes",
                    self.settings.max_document_bytes
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }
}

/// `max-age=N` from a Cache-Control value (`no-store`/`no-cache` mean 0).
fn parse_max_age(value: &str) -> Option<Duration> {
    value.split(',').map(str::trim).find_map(|d| {
        if d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        let (k, v) = d.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| v.trim().trim_matches('"').parse().ok().map(Duration::from_secs))?
    })
}

/// `KeyAlgorithm` (a JWK's `alg`) to a signature `Algorithm`.
trait FromKeyAlgorithm: Sized {
    fn from_key_algorithm(a: KeyAlgorithm) -> Option<Self>;
}

impl FromKeyAlgorithm for Algorithm {
    fn from_key_algorithm(a: KeyAlgorithm) -> Option<Algorithm> {
        Some(match a {
            KeyAlgorithm::RS256 => Algorithm::RS256,
            KeyAlgorithm::RS384 => Algorithm::RS384,
            KeyAlgorithm::RS512 => Algorithm::RS512,
            KeyAlgorithm::PS256 => Algorithm::PS256,
            KeyAlgorithm::PS384 => Algorithm::PS384,
            KeyAlgorithm::PS512 => Algorithm::PS512,
            KeyAlgorithm::ES256 => Algorithm::ES256,
            KeyAlgorithm::ES384 => Algorithm::ES384,
            KeyAlgorithm::EdDSA => Algorithm::EdDSA,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cache_control() {
        assert_eq!(
            parse_max_age("public, max-age=900, must-revalidate"),
            Some(Duration::from_secs(900))
        );
        assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("private"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
    }
}
