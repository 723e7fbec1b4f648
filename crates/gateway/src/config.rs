//! The gateway file (YAML): trusted issuers, upstreams and routes, as people write them.
//!
//! Owns the file's shape and its validation; every problem is reported at once with its
//! line and field. It must never start anything: compiling routes and opening pools is
//! [`crate::Gateway::new`]'s job.

use std::collections::{BTreeMap, BTreeSet};

use portcullis_core::yaml::{FileError, yaml_error};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// Largest gateway file accepted.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Most worker threads a file may ask for.
pub const MAX_WORKERS: usize = 64;

impl GatewayFile {
    /// Worker threads: the file's, or one per CPU.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, MAX_WORKERS)
    }
}

/// Where a gateway listens when the file does not say.
pub const DEFAULT_LISTENER: &str = "127.0.0.1:8000";
/// Largest clock skew a file may allow.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayFile {
    #[serde(default)]
    pub version: Option<u32>,
    /// Addresses to accept requests on (`IP:PORT`); default `127.0.0.1:8000`.
    #[serde(default = "default_listeners")]
    pub listeners: Vec<String>,
    /// Threads serving requests, each with its own event loop, listening sockets
    /// (`SO_REUSEPORT`) and upstream pools; default one per CPU.
    #[serde(default)]
    pub workers: Option<usize>,
    /// `realm` of `WWW-Authenticate: Bearer` challenges.
    #[serde(default)]
    pub realm: Option<String>,
    #[serde(default)]
    pub issuers: Vec<Spanned<IssuerConfig>>,
    #[serde(default)]
    pub upstreams: Vec<Spanned<UpstreamConfig>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RouteConfig>>,
}

/// A trusted token issuer (an authorization server).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact `iss` value, e.g. `https://id.example.com/oauth2/default`.
    pub issuer: String,
    /// Accepted `aud` values; a token must carry at least one.
    pub audiences: Vec<String>,
    /// Accepted signing algorithms (asymmetric only); default RS256, ES256, EdDSA.
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// JWKS URL; discovered from `{issuer}/.well-known/openid-configuration` when absent.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u64,
    /// JOSE `typ` the tokens must carry, e.g. `at+jwt` (RFC 9068), so that ID tokens and
    /// other JWTs signed with the same keys are refused; any when absent.
    #[serde(default)]
    pub require_typ: Option<String>,
    /// Client credentials for RFC 7662 introspection (routes with `auth: introspection`).
    #[serde(default)]
    pub introspection: Option<IntrospectionConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// Discovered (`introspection_endpoint`) when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    pub client_id: String,
    /// Name of the environment variable that holds the client secret.
    pub client_secret_env: String,
    /// Longest an active result is reused (never past the token's `exp`).
    #[serde(default = "default_introspection_ttl")]
    pub cache_seconds: u64,
    /// How long an inactive result is reused.
    #[serde(default = "default_negative_ttl")]
    pub negative_cache_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamConfig {
    pub name: String,
    /// `http://host:port` of each target; requests go round-robin to healthy ones.
    pub targets: Vec<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Deadline for the upstream's response headers (a 504 after it).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    #[default]
    Jwt,
    Introspection,
    None,
}

/// A route: which requests it matches, what they must prove, where they go.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default)]
    pub name: Option<String>,
    /// Host (without port) the request must name; any when absent.
    #[serde(default)]
    pub host: Option<String>,
    /// Path template: literal segments, `{param}` for one segment, a final `{param...}`
    /// for the rest of the path.
    pub path: String,
    /// HTTP methods; any when absent.
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub version: Option<VersionMatch>,
    pub upstream: String,
    #[serde(default)]
    pub auth: AuthMode,
    /// Issuers (by `issuer` URL) whose tokens this route accepts; all when absent.
    #[serde(default)]
    pub issuers: Option<Vec<String>>,
    #[serde(default)]
    pub scopes: Option<ScopeRequirement>,
    /// CEL expressions over `claims` and `request` that must all be true.
    #[serde(default)]
    pub conditions: Vec<ConditionConfig>,
    /// Header name → claim name: verified claims sent to the upstream.
    #[serde(default)]
    pub forward_claims: BTreeMap<String, String>,
}

/// An API version carried in a path prefix (`/v2`, matched before the template) or a header.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionMatch {
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScopeRequirement {
    /// Every one of these.
    #[serde(default)]
    pub all_of: Vec<String>,
    /// At least one of these.
    #[serde(default)]
    pub any_of: Vec<String>,
}

/// A claim condition: a CEL expression, optionally with the message a refused caller sees.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ConditionConfig {
    Expr(String),
    Described { expr: String, message: Option<String> },
}

impl ConditionConfig {
    pub fn expr(&self) -> &str {
        match self {
            ConditionConfig::Expr(e) | ConditionConfig::Described { expr: e, .. } => e,
        }
    }
    pub fn message(&self) -> Option<&str> {
        match self {
            ConditionConfig::Expr(_) => None,
            ConditionConfig::Described { message, .. } => message.as_deref(),
        }
    }
}

fn default_listeners() -> Vec<String> {
    vec![DEFAULT_LISTENER.to_owned()]
}
fn default_skew() -> u64 {
    30
}
fn default_introspection_ttl() -> u64 {
    60
}
fn default_negative_ttl() -> u64 {
    5
}
fn default_connect_timeout() -> u64 {
    2000
}
fn default_timeout() -> u64 {
    30
}

pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Parses and validates a gateway file; every problem found is returned at once.
pub fn parse(source: &str) -> Result<GatewayFile, Vec<FileError>> {
    if source.len() > MAX_FILE_BYTES {
        return Err(vec![FileError::at_path("", "the file is larger than 1 MiB")]);
    }
    let file: GatewayFile = serde_saphyr::from_str(source).map_err(|e| vec![yaml_error(source, &e)])?;
    let errors = validate(source, &file);
    if errors.is_empty() { Ok(file) } else { Err(errors) }
}

fn validate(source: &str, file: &GatewayFile) -> Vec<FileError> {
    let mut errors = Vec::new();
    if let Some(v) = file.version
        && v != 1
    {
        errors.push(FileError::at_path(
            "version",
            format!("unsupported version {v}; this release reads 1"),
        ));
    }
    if file.listeners.is_empty() {
        errors.push(FileError::at_path(
            "listeners",
            "name at least one address, e.g. 0.0.0.0:8000",
        ));
    }
    for (i, l) in file.listeners.iter().enumerate() {
        if l.parse::<std::net::SocketAddr>().is_err() {
            let mut e = FileError::at_path(
                format!("listeners[{i}]"),
                format!("'{l}' is not IP:PORT, e.g. 0.0.0.0:8000"),
            );
            if let Some((line, col)) = portcullis_core::yaml::key_position(source, "listeners") {
                (e.line, e.column) = (Some(line), Some(col));
            }
            errors.push(e);
        }
    }
    if file.workers.is_some_and(|w| !(1..=MAX_WORKERS).contains(&w)) {
        errors.push(FileError::at_path(
            "workers",
            format!("between 1 and {MAX_WORKERS}"),
        ));
    }
    if let Some(realm) = &file.realm
        && (realm.is_empty()
            || !realm
                .bytes()
                .all(|b| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\')))
    {
        errors.push(FileError::at_path(
            "realm",
            "printable ASCII without quotes or backslashes",
        ));
    }
    let mut issuers = BTreeSet::new();
    for (i, s) in file.issuers.iter().enumerate() {
        let (c, at) = (&s.value, &s.referenced);
        let mut err =
            |field: &str, msg: String| errors.push(FileError::at(at, format!("issuers[{i}].{field}"), msg));
        if !is_http_url(&c.issuer) {
            err("issuer", format!("'{}' is not an http(s) URL", c.issuer));
        }
        if c.issuer.ends_with('/') {
            err(
                "issuer",
                "must match the tokens' `iss` exactly; issuers have no trailing slash".into(),
            );
        }
        if !issuers.insert(c.issuer.as_str()) {
            err("issuer", format!("'{}' is listed twice", c.issuer));
        }
        if c.audiences.is_empty() {
            err("audiences", "name at least one accepted audience".into());
        }
        for a in c.algorithms.iter().flatten() {
            if crate::jwt::algorithm(a).is_none() {
                err(
                    "algorithms",
                    format!(
                        "'{a}' is not accepted; use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"
                    ),
                );
            }
        }
        if let Some(u) = &c.jwks_uri
            && !is_http_url(u)
        {
            err("jwksUri", format!("'{u}' is not an http(s) URL"));
        }
        if c.clock_skew_seconds > MAX_CLOCK_SKEW_SECS {
            err("clockSkewSeconds", format!("at most {MAX_CLOCK_SKEW_SECS}"));
        }
        if let Some(intro) = &c.introspection {
            if let Some(u) = &intro.endpoint
                && !is_http_url(u)
            {
                err("introspection.endpoint", format!("'{u}' is not an http(s) URL"));
            }
            if intro.cache_seconds > 3600 || intro.negative_cache_seconds > 300 {
                err(
                    "introspection",
                    "cacheSeconds is at most 3600, negativeCacheSeconds at most 300".into(),
                );
            }
        }
    }
    let mut upstreams = BTreeSet::new();
    for (i, s) in file.upstreams.iter().enumerate() {
        let (u, at) = (&s.value, &s.referenced);
        let mut err =
            |field: &str, msg: String| errors.push(FileError::at(at, format!("upstreams[{i}].{field}"), msg));
        if !upstreams.insert(u.name.as_str()) {
            err("name", format!("'{}' is listed twice", u.name));
        }
        if u.targets.is_empty() {
            err(
                "targets",
                "name at least one target, e.g. http://127.0.0.1:9000".into(),
            );
        }
        for t in &u.targets {
            if crate::proxy::target_authority(t).is_none() {
                err(
                    "targets",
                    format!(
                        "'{t}' is not a target; use http://host:port (TLS to upstreams is not supported yet)"
                    ),
                );
            }
        }
        if u.connect_timeout_ms == 0 || u.timeout_seconds == 0 {
            err("timeoutSeconds", "timeouts must be positive".into());
        }
    }
    let introspecting: BTreeSet<&str> = file
        .issuers
        .iter()
        .filter(|s| s.value.introspection.is_some())
        .map(|s| s.value.issuer.as_str())
        .collect();
    for (i, s) in file.routes.iter().enumerate() {
        let (r, at) = (&s.value, &s.referenced);
        let mut err =
            |field: &str, msg: String| errors.push(FileError::at(at, format!("routes[{i}].{field}"), msg));
        if let Err(e) = crate::route::PathTemplate::parse(&r.path) {
            err("path", e);
        }
        for m in r.methods.iter().flatten() {
            if !METHODS.contains(&m.as_str()) {
                err("methods", format!("'{m}' is not one of {}", METHODS.join(", ")));
            }
        }
        if let Some(v) = &r.version {
            match (&v.prefix, &v.header, &v.value) {
                (Some(p), None, None) if p.starts_with('/') && !p.ends_with('/') && p.len() > 1 => {}
                (None, Some(h), Some(_)) if http::HeaderName::try_from(h.as_str()).is_ok() => {}
                _ => err(
                    "version",
                    "give either `prefix: /v1` or `header: <name>` with `value: <version>`".into(),
                ),
            }
        }
        if !upstreams.contains(r.upstream.as_str()) {
            err("upstream", format!("no upstream is named '{}'", r.upstream));
        }
        for iss in r.issuers.iter().flatten() {
            if !issuers.contains(iss.as_str()) {
                err("issuers", format!("'{iss}' is not one of the issuers"));
            }
        }
        let demands = r
            .scopes
            .as_ref()
            .is_some_and(|s| !s.all_of.is_empty() || !s.any_of.is_empty())
            || !r.conditions.is_empty()
            || !r.forward_claims.is_empty();
        match r.auth {
            AuthMode::None if demands => err(
                "auth",
                "a route with `auth: none` cannot require scopes, conditions or forward claims".into(),
            ),
            AuthMode::Jwt | AuthMode::Introspection if issuers.is_empty() => err(
                "auth",
                "this route needs tokens, but no issuer is configured".into(),
            ),
            AuthMode::Introspection => {
                // An opaque token says nothing of its issuer: it goes to exactly one.
                let candidates = match &r.issuers {
                    Some(l) => l.iter().filter(|i| introspecting.contains(i.as_str())).count(),
                    None => introspecting.len(),
                };
                let listed_all = r
                    .issuers
                    .as_ref()
                    .is_none_or(|l| l.iter().all(|i| introspecting.contains(i.as_str())));
                if candidates != 1 || !listed_all {
                    err(
                        "auth",
                        "an introspection route needs exactly one issuer, with `introspection` credentials (name it in `issuers`)".into(),
                    )
                }
            }
            _ => {}
        }
        if r.issuers.as_ref().is_some_and(Vec::is_empty) {
            err(
                "issuers",
                "an empty list accepts no token; leave it out to accept every issuer".into(),
            );
        }
        if r.host
            .as_ref()
            .is_some_and(|h| h.is_empty() || h.contains([':', '/', ' ']))
        {
            err("host", "a host name without port, e.g. api.example.com".into());
        }
        for c in &r.conditions {
            if let Err(e) = portcullis_expr::Expression::compile(c.expr()) {
                err("conditions", e.to_string());
            }
        }
        for (header, claim) in &r.forward_claims {
            if http::HeaderName::try_from(header.as_str()).is_err() {
                err("forwardClaims", format!("'{header}' is not a header name"));
            }
            if claim.is_empty() {
                err("forwardClaims", format!("name the claim forwarded as '{header}'"));
            }
        }
    }
    errors
}

fn is_http_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://"))
        && s.parse::<http::Uri>().is_ok_and(|u| u.host().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_each_problem_with_its_line() {
        let src = "issuers:\n  - issuer: http://id.example/oauth2/default/\n    audiences: []\nupstreams:\n  - name: a\n    targets: [ftp://x]\nroutes:\n  - path: /x/{id\n    upstream: b\n    conditions: ['claims.(']\n";
        let errors = parse(src).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|e| e.starts_with("line 2") && e.contains("issuers[0].issuer")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|e| e.contains("issuers[0].audiences")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.starts_with("line 5") && e.contains("upstreams[0].targets")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.starts_with("line 8") && e.contains("routes[0].path")),
            "{text:?}"
        );
        assert!(text.iter().any(|e| e.contains("routes[0].upstream")), "{text:?}");
        assert!(
            text.iter().any(|e| e.contains("routes[0].conditions")),
            "{text:?}"
        );
    }

    #[test]
    fn routes_that_could_never_work_are_refused() {
        let src = "issuers:\n  - issuer: http://a.example\n    audiences: [x]\n    introspection: {clientId: g, clientSecretEnv: A}\n  - issuer: http://b.example\n    audiences: [x]\n    introspection: {clientId: g, clientSecretEnv: B}\nupstreams:\n  - name: u\n    targets: [http://127.0.0.1:1]\nroutes:\n  - path: /opaque\n    upstream: u\n    auth: introspection\n  - path: /h\n    upstream: u\n    host: api.example.com:8000\n  - path: /none\n    upstream: u\n    issuers: []\nworkers: 0\n";
        let text: Vec<String> = parse(src).unwrap_err().iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|e| e.contains("routes[0].auth") && e.contains("exactly one issuer")),
            "{text:?}"
        );
        assert!(text.iter().any(|e| e.contains("routes[1].host")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("routes[2].issuers")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("workers")), "{text:?}");
        let one = src.replace(
            "    auth: introspection\n",
            "    auth: introspection\n    issuers: [http://b.example]\n",
        );
        let text: Vec<String> = parse(&one).unwrap_err().iter().map(ToString::to_string).collect();
        assert!(!text.iter().any(|e| e.contains("routes[0]")), "{text:?}");
    }

    #[test]
    fn unknown_fields_name_their_line() {
        let errors = parse("routes:\n  - path: /\n    upstream: a\n    scope: [x]\n").unwrap_err();
        assert!(errors[0].to_string().contains("line 4"), "{}", errors[0]);
    }
}
