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
    /// The bearer token of the request's `Authorization` header, if any.
    Request,
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
    /// The canonical path, when it differs from the one received.
    canonical_path: Option<String>,
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
        Gateway::build(file, secret_of, None)
    }

    /// The gateway of a reloaded file: like [`Gateway::new`], but issuers whose key source
    /// did not change keep this gateway's key caches.
    pub fn successor(
        &self,
        file: &GatewayFile,
        secret_of: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Gateway, String> {
        Gateway::build(file, secret_of, Some(self))
    }

    fn build(
        file: &GatewayFile,
        secret_of: &dyn Fn(&str) -> Option<String>,
        previous: Option<&Gateway>,
    ) -> Result<Gateway, String> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        let issuers = file
            .issuers
            .iter()
            .map(|i| {
                let kept = previous.and_then(|p| p.jwks(&i.value.issuer));
                TrustedIssuer::new(&i.value, http.clone(), secret_of, kept)
            })
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
        let request_id = self.request_ids.for_request(req.headers());
        // What the access log needs once the request is gone, only when it is on.
        let logged = tracing::enabled!(target: "portcullis::gateway::access", tracing::Level::INFO)
            .then(|| (Instant::now(), req.method().clone(), req.uri().path().to_owned()));
        let (route, resp) = match self.admit_and_forward(req, peer, &request_id).await {
            Ok((route, resp)) => (Some(route), resp.map(Either::Left)),
            Err((route, rejection)) => (route, rejection.into_response(&self.realm).map(Either::Right)),
        };
        let mut resp = resp;
        resp.headers_mut()
            .insert(X_REQUEST_ID.clone(), request_id.clone());
        if let Some((started, method, path)) = logged {
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
        }
        resp
    }

    async fn admit_and_forward(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        request_id: &HeaderValue,
    ) -> Result<(&str, Response<Incoming>), (Option<&str>, Rejection)> {
        let host = request_host(req.uri(), req.headers()).map_err(|_| {
            (
                None,
                Rejection::MalformedRequest("The request names no valid single host."),
            )
        })?;
        let admitted = self
            .decide(
                req.method(),
                req.uri().path(),
                host.map(|h| h.name),
                req.headers(),
                Credential::Request,
                None,
            )
            .await?;
        let route = admitted.route;
        let forwarded_host = host.map(|h| h.raw.to_owned());
        let (mut parts, body) = req.into_parts();
        if let Some(path) = admitted.canonical_path {
            // The upstream gets the path the route matched.
            let pq = match parts.uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            parts.uri = pq.parse().map_err(|_| {
                (
                    None,
                    Rejection::MalformedRequest("The request target is not valid."),
                )
            })?;
        }
        let headers = &mut parts.headers;
        strip_identity_headers(headers, &self.identity_headers);
        strip_hop_by_hop(headers);
        headers.remove(http::header::HOST);
        add_forwarding(headers, peer, forwarded_host.as_deref());
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
        let canonical = crate::path::canonical(path).map_err(|e| (None, Rejection::BadPath(e)))?;
        let path: &str = &canonical;
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
            if allowed.contains(&Method::GET) {
                allowed.push(Method::HEAD);
            }
            allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
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
        let canonical_path = match &canonical {
            std::borrow::Cow::Owned(p) => Some(p.clone()),
            std::borrow::Cow::Borrowed(_) => None,
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
            return Ok(Admitted {
                route,
                token: None,
                canonical_path,
            });
        }
        // The Authorization header is read only for routes that take tokens.
        let credential = match credential {
            Credential::Request => match bearer(headers) {
                Ok(Some(t)) => Credential::Token(t),
                Ok(None) => Credential::None,
                Err(r) => return Err((name, r)),
            },
            other => other,
        };
        let token = match credential {
            Credential::Request => Err(Rejection::NoToken),
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
            canonical_path,
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

/// Removes every header a route fills from claims, whatever the route, and its spellings
/// with `_` for `-` (which CGI-style servers fold into the same name).
fn strip_identity_headers(headers: &mut HeaderMap, identity: &[HeaderName]) {
    for h in identity {
        headers.remove(h);
    }
    let aliases: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            k.as_str().contains('_')
                && identity.iter().any(|h| {
                    h.as_str().len() == k.as_str().len()
                        && h.as_str()
                            .bytes()
                            .zip(k.as_str().bytes())
                            .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
                })
        })
        .cloned()
        .collect();
    for k in aliases {
        headers.remove(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_and_their_aliases_go() {
        let mut h = HeaderMap::new();
        h.insert("x-auth-subject", "root".parse().unwrap());
        h.insert("x_auth_subject", "root".parse().unwrap());
        h.insert("x_other", "kept".parse().unwrap());
        strip_identity_headers(&mut h, &[HeaderName::from_static("x-auth-subject")]);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x_other"));
    }

    #[test]
    fn claims_become_header_values() {
        assert_eq!(header_value(&Value::from("x")).unwrap(), "x");
        assert_eq!(header_value(&serde_json::json!(["a", "b"])).unwrap(), "a,b");
        assert_eq!(header_value(&serde_json::json!(7)).unwrap(), "7");
        assert!(header_value(&Value::from("a\nb")).is_none());
    }
}
