//! The gateway itself: a request is matched to a route, its token verified and held to the
//! route's requirements, then forwarded with the verified claims the route asks for. The
//! same decision drives `portcullis explain`, check by check, without sending traffic.
//!
//! Owns the request pipeline and the config → runtime compilation. It must never forward a
//! request the route's policy refused, nor let a client's own identity headers through.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use crate::TokenError;
use crate::auth::{TrustedIssuer, bearer, claimed_issuer};
use crate::config::{AuthMode, GatewayFile};
use crate::jwt::VerifiedToken;
use crate::policy::{Check, RequestFacts, Requirements};
use crate::proxy::{RequestIds, Upstream, X_REQUEST_ID, add_forwarding, strip_hop_by_hop};
use crate::reject::Rejection;
use crate::route::{Match, Matcher, PathTemplate, Version, request_host};

/// Response bodies: the upstream's, streamed, or one of ours.
pub type Body = Either<Incoming, Full<Bytes>>;

/// Default `realm` of the challenges.
pub const DEFAULT_REALM: &str = "portcullis";

struct Route {
    name: String,
    matcher: Matcher,
    upstream: usize,
    auth: AuthMode,
    /// Indexes into `Gateway::issuers` this route accepts.
    issuers: Vec<usize>,
    requirements: Requirements,
    forward: Vec<(HeaderName, String)>,
}

/// A running gateway: routes, issuers with their key caches, upstream pools.
pub struct Gateway {
    realm: String,
    issuers: Vec<TrustedIssuer>,
    upstreams: Vec<Upstream>,
    routes: Vec<Route>,
    /// Every header name any route fills from claims: never taken from clients.
    identity_headers: Vec<HeaderName>,
    request_ids: RequestIds,
}

/// What the caller presents, for [`Gateway::decide`].
pub enum Credential<'a> {
    None,
    /// A bearer token, verified for real.
    Token(&'a str),
    /// Claims taken as verified (`explain --claims`).
    Claims(Map<String, Value>),
}

/// A request the gateway lets through.
pub struct Admitted<'g> {
    route: &'g Route,
    token: Option<Arc<VerifiedToken>>,
}

/// The outcome of `explain`.
pub struct Explanation {
    pub route: Option<String>,
    pub checks: Vec<Check>,
    pub decision: Result<(), Rejection>,
}

impl Gateway {
    /// Compiles a validated gateway file. `secret_of` reads the environment variables the
    /// file names. Call [`Gateway::start`] inside a Tokio runtime to begin fetching keys.
    pub fn new(file: &GatewayFile, secret_of: &dyn Fn(&str) -> Option<String>) -> Result<Gateway, String> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        let issuers = file
            .issuers
            .iter()
            .map(|i| TrustedIssuer::new(&i.value, http.clone(), secret_of))
            .collect::<Result<Vec<_>, _>>()?;
        let upstreams = file
            .upstreams
            .iter()
            .map(|u| Upstream::new(&u.value))
            .collect::<Result<Vec<_>, _>>()?;
        let mut routes = Vec::new();
        let mut identity_headers: Vec<HeaderName> = Vec::new();
        for (i, r) in file.routes.iter().enumerate() {
            let r = &r.value;
            let name = r.name.clone().unwrap_or_else(|| format!("routes[{i}]"));
            let template = PathTemplate::parse(&r.path)?;
            let methods = r
                .methods
                .as_ref()
                .map(|ms| {
                    ms.iter()
                        .map(|m| m.parse::<Method>().map_err(|e| e.to_string()))
                        .collect()
                })
                .transpose()?;
            let version = match &r.version {
                None => None,
                Some(v) => match (&v.prefix, &v.header, &v.value) {
                    (Some(p), _, _) => Some(Version::Prefix(p.clone())),
                    (None, Some(h), Some(val)) => Some(Version::Header(
                        h.parse().map_err(|_| format!("{name}: bad version header"))?,
                        val.clone(),
                    )),
                    _ => return Err(format!("{name}: version needs a prefix or a header and value")),
                },
            };
            let matcher = Matcher {
                host: r.host.clone(),
                version,
                template,
                methods,
            };
            let upstream = upstreams
                .iter()
                .position(|u| u.name == r.upstream)
                .ok_or_else(|| format!("{name}: no upstream '{}'", r.upstream))?;
            let accepted: Vec<usize> = match &r.issuers {
                None => (0..issuers.len()).collect(),
                Some(list) => list
                    .iter()
                    .filter_map(|i| issuers.iter().position(|t| &t.issuer == i))
                    .collect(),
            };
            let requirements = Requirements::compile(r.scopes.as_ref(), &r.conditions)
                .map_err(|e| format!("{name}: {e}"))?;
            let mut forward = Vec::new();
            for (header, claim) in &r.forward_claims {
                let h: HeaderName = header
                    .parse()
                    .map_err(|_| format!("{name}: '{header}' is not a header name"))?;
                if !identity_headers.contains(&h) {
                    identity_headers.push(h.clone());
                }
                forward.push((h, claim.clone()));
            }
            routes.push(Route {
                name,
                matcher,
                upstream,
                auth: r.auth,
                issuers: accepted,
                requirements,
                forward,
            });
        }
        Ok(Gateway {
            realm: file.realm.clone().unwrap_or_else(|| DEFAULT_REALM.into()),
            issuers,
            upstreams,
            routes,
            identity_headers,
            request_ids: RequestIds::default(),
        })
    }

    /// Starts the background key refreshers (the first fetch happens right away).
    pub fn start(&self) {
        for i in &self.issuers {
            i.jwks.spawn_refresher();
        }
    }

    /// Fetches every issuer's keys now (each bounded by its fetch timeout), so that a
    /// gateway swapped in by a reload starts warm. Issuers that cannot be reached are left
    /// to the background refreshers.
    pub async fn warm_up(&self) {
        for i in &self.issuers {
            i.jwks.refetch(false).await;
        }
    }

    /// The key cache of an issuer, for tests and metrics.
    pub fn jwks(&self, issuer: &str) -> Option<&Arc<crate::JwksCache>> {
        self.issuers.iter().find(|i| i.issuer == issuer).map(|i| &i.jwks)
    }

    /// Serves one request from `peer`.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let request_id = self.request_ids.for_request(req.headers());
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let (route, resp) = match self.admit_and_forward(req, peer, &request_id).await {
            Ok((route, resp)) => (Some(route), resp.map(Either::Left)),
            Err((route, rejection)) => (route, rejection.into_response(&self.realm).map(Either::Right)),
        };
        let mut resp = resp;
        resp.headers_mut()
            .insert(X_REQUEST_ID.clone(), request_id.clone());
        tracing::info!(
            target: "portcullis::gateway::access",
            method = %method,
            path = %path,
            status = resp.status().as_u16(),
            route = route.unwrap_or("-"),
            request_id = request_id.to_str().unwrap_or(""),
            micros = started.elapsed().as_micros() as u64,
            "request"
        );
        resp
    }

    async fn admit_and_forward(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        request_id: &HeaderValue,
    ) -> Result<(&str, Response<Incoming>), (Option<&str>, Rejection)> {
        let credential = match bearer(req.headers()) {
            Ok(Some(t)) => Credential::Token(t),
            Ok(None) => Credential::None,
            Err(r) => return Err((None, r)),
        };
        let host = request_host(req.uri(), req.headers()).map(str::to_owned);
        let admitted = self
            .decide(
                req.method(),
                req.uri().path(),
                host.as_deref(),
                req.headers(),
                credential,
                None,
            )
            .await?;
        let route = admitted.route;
        let (mut parts, body) = req.into_parts();
        let headers = &mut parts.headers;
        for h in &self.identity_headers {
            headers.remove(h);
        }
        strip_hop_by_hop(headers);
        headers.remove(http::header::HOST);
        add_forwarding(headers, peer, host.as_deref());
        headers.insert(X_REQUEST_ID.clone(), request_id.clone());
        if let Some(token) = &admitted.token {
            for (h, claim) in &route.forward {
                if let Some(v) = token.claims.get(claim).and_then(header_value) {
                    headers.insert(h.clone(), v);
                }
            }
        }
        let upstream = &self.upstreams[route.upstream];
        let mut resp = upstream
            .forward(Request::from_parts(parts, body))
            .await
            .map_err(|r| (Some(route.name.as_str()), r))?;
        strip_hop_by_hop(resp.headers_mut());
        Ok((route.name.as_str(), resp))
    }

    /// Routes and authorizes a request. With `trace`, every check is recorded (explain).
    pub async fn decide(
        &self,
        method: &Method,
        path: &str,
        host: Option<&str>,
        headers: &HeaderMap,
        credential: Credential<'_>,
        mut trace: Option<&mut Vec<Check>>,
    ) -> Result<Admitted<'_>, (Option<&str>, Rejection)> {
        if !is_normal_path(path) {
            return Err((
                None,
                Rejection::BadRequest("The request path has dot segments or encoded slashes."),
            ));
        }
        let mut allowed: Vec<Method> = Vec::new();
        let mut found = None;
        for r in &self.routes {
            match r.matcher.check(host, method, path, headers) {
                Match::Yes(params) => {
                    found = Some((r, params));
                    break;
                }
                Match::WrongMethod => allowed.extend(r.matcher.methods.iter().flatten().cloned()),
                Match::No => {}
            }
        }
        let Some((route, params)) = found else {
            allowed.dedup();
            return Err((
                None,
                if allowed.is_empty() {
                    Rejection::NoRoute
                } else {
                    Rejection::MethodNotAllowed(allowed)
                },
            ));
        };
        let name = Some(route.name.as_str());
        if let Some(t) = trace.as_deref_mut() {
            t.push(Check {
                what: format!("route: {} ({})", route.name, route.matcher.template.source()),
                passed: true,
                detail: format!("upstream {}", self.upstreams[route.upstream].name),
            });
        }
        if route.auth == AuthMode::None {
            return Ok(Admitted { route, token: None });
        }
        let token = match credential {
            Credential::None => Err(Rejection::NoToken),
            Credential::Token(t) => self.verify(route, t).await.map_err(|e| match e {
                TokenError::KeysUnavailable => Rejection::AuthUnavailable,
                e => Rejection::InvalidToken(e),
            }),
            Credential::Claims(c) => {
                let exp = c.get("exp").and_then(Value::as_i64).unwrap_or(i64::MAX);
                Ok(Arc::new(VerifiedToken::new(c, exp)))
            }
        };
        if let Some(t) = trace.as_deref_mut() {
            let what = format!("token ({:?})", route.auth).to_lowercase();
            t.push(match &token {
                Ok(v) => Check {
                    what,
                    passed: true,
                    detail: format!("scopes [{}]", v.scopes.join(", ")),
                },
                Err(r) => Check {
                    what,
                    passed: false,
                    detail: r.description(),
                },
            });
        }
        let token = token.map_err(|r| (name, r))?;
        let facts = RequestFacts {
            method: method.as_str(),
            path,
            host,
            params: &params,
        };
        route
            .requirements
            .evaluate(&token.scopes, &token.claims, &facts, trace)
            .map_err(|r| (name, r))?;
        Ok(Admitted {
            route,
            token: Some(token),
        })
    }

    async fn verify(&self, route: &Route, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        let issuer = match route.issuers.as_slice() {
            [only] => &self.issuers[*only],
            many if route.auth == AuthMode::Introspection => many
                .iter()
                .map(|i| &self.issuers[*i])
                .find(|i| i.introspector.is_some())
                .ok_or(TokenError::WrongIssuer)?,
            many => {
                let iss = claimed_issuer(token).ok_or(TokenError::Malformed)?;
                many.iter()
                    .map(|i| &self.issuers[*i])
                    .find(|i| i.issuer == iss)
                    .ok_or(TokenError::WrongIssuer)?
            }
        };
        match (route.auth, &issuer.introspector) {
            (AuthMode::Introspection, Some(i)) => {
                if token.len() > issuer.validator.policy().max_token_bytes {
                    return Err(TokenError::TooLarge);
                }
                i.check(token).await
            }
            (AuthMode::Introspection, None) => Err(TokenError::WrongIssuer),
            _ => issuer.validator.validate(token).await,
        }
    }

    /// The decision for a request, check by check, without sending traffic.
    pub async fn explain(
        &self,
        method: &Method,
        path: &str,
        host: Option<&str>,
        headers: &HeaderMap,
        credential: Credential<'_>,
    ) -> Explanation {
        let mut checks = Vec::new();
        let outcome = self
            .decide(method, path, host, headers, credential, Some(&mut checks))
            .await;
        let route = checks
            .first()
            .filter(|c| c.what.starts_with("route:"))
            .map(|c| c.what.clone());
        Explanation {
            route,
            checks,
            decision: outcome.map(|_| ()).map_err(|(_, r)| r),
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }
}

/// A claim as a header value: strings as they are, lists joined with commas, other JSON
/// as text; nothing that is not a valid header value.
fn header_value(v: &Value) -> Option<HeaderValue> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Null => return None,
        other => other.to_string(),
    };
    HeaderValue::try_from(text).ok()
}

/// No `.`/`..` segments and no encoded `/` or `\`: what the route matched is what the
/// upstream will see.
fn is_normal_path(path: &str) -> bool {
    let b = path.as_bytes();
    let encoded_separator = b.windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_lowercase()),
                (b'2', b'f' | b'e') | (b'5', b'c')
            )
    });
    !encoded_separator && !b.contains(&b'\\') && path.split('/').all(|s| s != "." && s != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_normal() {
        assert!(is_normal_path("/api/v1/products/42"));
        assert!(!is_normal_path("/api/v1/products/../admin/users"));
        assert!(!is_normal_path("/api/v1/products/.%2e/admin"));
        assert!(!is_normal_path("/api/v1/products%2F1"));
        assert!(!is_normal_path("/api/./v1"));
    }

    #[test]
    fn claims_become_header_values() {
        assert_eq!(header_value(&Value::from("x")).unwrap(), "x");
        assert_eq!(header_value(&serde_json::json!(["a", "b"])).unwrap(), "a,b");
        assert_eq!(header_value(&serde_json::json!(7)).unwrap(), "7");
        assert!(header_value(&Value::from("a\nb")).is_none());
    }
}
