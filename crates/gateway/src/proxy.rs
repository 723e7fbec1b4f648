//! Forwarding to upstreams: keep-alive pools (hyper-util's client), round-robin over the
//! targets that are not marked down, a deadline for the response headers, and the header
//! hygiene of a reverse proxy (hop-by-hop headers dropped, `Forwarded` and
//! `X-Forwarded-*` set, `X-Request-Id` passed on or made).
//!
//! Bodies stream both ways: nothing here buffers a request or a response. It must never
//! forward a client's own copies of the identity headers (the caller strips them first).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::UpstreamConfig;
use crate::reject::Rejection;

/// How long a target that refused a connection is skipped.
const DOWN_FOR: Duration = Duration::from_secs(5);
/// Idle keep-alive connections kept per target.
const MAX_IDLE_PER_TARGET: usize = 512;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// `http://host:port` (no path beyond `/`) as an authority.
pub fn target_authority(target: &str) -> Option<Authority> {
    let uri: Uri = target.parse().ok()?;
    if uri.scheme() != Some(&Scheme::HTTP) || uri.query().is_some() || !matches!(uri.path(), "" | "/") {
        return None;
    }
    uri.authority().cloned()
}

struct Target {
    authority: Authority,
    /// Milliseconds since `Upstream::epoch` until which the target is skipped.
    down_until: AtomicU64,
}

type Pool = Client<HttpConnector, Incoming>;

thread_local! {
    /// This thread's keep-alive pools, one per upstream (by `Upstream::id`). The gateway runs
    /// one single-threaded runtime per core, so a pool's connections live on the thread that
    /// uses them: no request or connection hops between threads. Pools of upstreams that a
    /// reload dropped are pruned when a new one is made.
    static POOLS: RefCell<HashMap<u64, (Weak<()>, Pool)>> = RefCell::new(HashMap::new());
}

static NEXT_UPSTREAM_ID: AtomicU64 = AtomicU64::new(0);

/// A named group of targets; each thread keeps its own keep-alive pool to them.
pub struct Upstream {
    pub name: String,
    id: u64,
    /// Lives as long as this upstream: the pools' way to know it is gone.
    alive: Arc<()>,
    targets: Vec<Target>,
    next: AtomicUsize,
    timeout: Duration,
    connect_timeout: Duration,
    epoch: Instant,
}

impl Upstream {
    pub fn new(c: &UpstreamConfig) -> Result<Upstream, String> {
        let targets = c
            .targets
            .iter()
            .map(|t| {
                let authority =
                    target_authority(t).ok_or_else(|| format!("'{t}' is not http://host:port"))?;
                Ok(Target {
                    authority,
                    down_until: AtomicU64::new(0),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Upstream {
            name: c.name.clone(),
            id: NEXT_UPSTREAM_ID.fetch_add(1, Ordering::Relaxed),
            alive: Arc::new(()),
            targets,
            next: AtomicUsize::new(0),
            timeout: Duration::from_secs(c.timeout_seconds),
            connect_timeout: Duration::from_millis(c.connect_timeout_ms),
            epoch: Instant::now(),
        })
    }

    /// This thread's pool for this upstream (made on first use).
    fn pool(&self) -> Pool {
        POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            if let Some((_, pool)) = pools.get(&self.id) {
                return pool.clone();
            }
            pools.retain(|_, (alive, _)| alive.strong_count() > 0);
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            connector.set_connect_timeout(Some(self.connect_timeout));
            let pool: Pool = Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(MAX_IDLE_PER_TARGET)
                .build(connector);
            pools.insert(self.id, (Arc::downgrade(&self.alive), pool.clone()));
            pool
        })
    }

    fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The next healthy target, round-robin; `None` when every target is marked down.
    fn pick(&self) -> Option<&Target> {
        let now = self.millis();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..self.targets.len())
            .map(|i| &self.targets[(start + i) % self.targets.len()])
            .find(|t| t.down_until.load(Ordering::Relaxed) <= now)
    }

    /// Sends `req` (headers already prepared) to a target and returns its response head
    /// with the body still streaming.
    pub async fn forward(&self, mut req: Request<Incoming>) -> Result<Response<Incoming>, Rejection> {
        let target = self.pick().ok_or(Rejection::UpstreamUnavailable)?;
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(target.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|_| Rejection::BadGateway)?;
        match tokio::time::timeout(self.timeout, self.pool().request(req)).await {
            Err(_) => Err(Rejection::GatewayTimeout),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                if e.is_connect() {
                    target
                        .down_until
                        .store(self.millis() + DOWN_FOR.as_millis() as u64, Ordering::Relaxed);
                }
                tracing::warn!(upstream = %self.name, target = %target.authority, error = %e, "upstream request failed");
                Err(Rejection::BadGateway)
            }
        }
    }
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        headers.remove(n);
    }
}

const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers some frameworks take as the request's real host, port, prefix, address or URL
/// (Symfony and IIS route on `X-Original-URL`): only this gateway may say those.
static CLIENT_ROUTING_HEADERS: [HeaderName; 6] = [
    X_FORWARDED_HOST,
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
];

/// Sets `X-Forwarded-For/Proto/Host` and `Forwarded` (RFC 7239) for a request from `peer`
/// that named `host` (as received, port included). `X-Forwarded-For` and a well-formed
/// `Forwarded` from earlier proxies are appended to; every other routing header a client
/// sent is dropped.
pub fn add_forwarding(headers: &mut HeaderMap, peer: SocketAddr, host: Option<&str>) {
    for h in &CLIENT_ROUTING_HEADERS {
        headers.remove(h);
    }
    let ip = peer.ip().to_string();
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip.clone(),
    };
    if let Ok(v) = HeaderValue::try_from(xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    let node = if peer.is_ipv6() { format!("\"[{ip}]\"") } else { ip };
    let mut fwd = format!("for={node};proto=http");
    if let Some(h) = host {
        // `request_host` admits no quote or backslash: safe inside a quoted-string.
        fwd.push_str(&format!(";host=\"{h}\""));
        if let Ok(v) = HeaderValue::try_from(h) {
            headers.insert(X_FORWARDED_HOST, v);
        }
    }
    let previous = headers
        .get_all(&FORWARDED)
        .iter()
        .map(|v| v.to_str().ok().filter(|v| well_formed_forwarded(v)))
        .collect::<Option<Vec<&str>>>()
        .map(|v| v.join(", "))
        .filter(|v| !v.is_empty());
    let fwd = match previous {
        Some(prev) => format!("{prev}, {fwd}"),
        None => fwd,
    };
    if let Ok(v) = HeaderValue::try_from(fwd) {
        headers.insert(FORWARDED.clone(), v);
    }
}

/// A `Forwarded` value we can safely append to: balanced quotes, no escapes or controls
/// (a dangling quote would swallow our own element).
fn well_formed_forwarded(v: &str) -> bool {
    v.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        && !v.contains('\\')
        && v.bytes().filter(|b| *b == b'"').count() % 2 == 0
}

/// Request ids: a client's own if it is sane, otherwise a new one (random per process,
/// then a counter: unique without a syscall per request).
pub struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        let mut seed = [0u8; 8];
        let _ = aws_lc_rs::rand::fill(&mut seed);
        RequestIds {
            prefix: u64::from_le_bytes(seed),
            counter: AtomicU64::new(0),
        }
    }
}

impl RequestIds {
    pub fn for_request(&self, headers: &HeaderMap) -> HeaderValue {
        if let Some(v) = headers.get(&X_REQUEST_ID)
            && (1..=128).contains(&v.len())
            && v.as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
        {
            return v.clone();
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        HeaderValue::try_from(format!("{:016x}{n:016x}", self.prefix))
            .unwrap_or(HeaderValue::from_static("0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "close, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert(header::TE, "trailers".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn forwarding_appends() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "10.0.0.1".parse().unwrap());
        add_forwarding(&mut h, "127.0.0.1:5000".parse().unwrap(), Some("api.example.com"));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(
            h["forwarded"],
            "for=127.0.0.1;proto=http;host=\"api.example.com\""
        );
        assert_eq!(h["x-forwarded-host"], "api.example.com");
    }

    #[test]
    fn targets_are_plain_http_authorities() {
        assert!(target_authority("http://127.0.0.1:9001").is_some());
        assert!(target_authority("http://backend:80/").is_some());
        assert!(target_authority("https://backend").is_none());
        assert!(target_authority("http://backend/api").is_none());
        assert!(target_authority("backend:80").is_none());
    }

    #[test]
    fn request_ids_pass_or_are_made() {
        let ids = RequestIds::default();
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(ids.for_request(&h), "abc-123");
        h.insert("x-request-id", "bad value with spaces".parse().unwrap());
        let made = ids.for_request(&h);
        assert_eq!(made.len(), 32);
        assert_ne!(made, ids.for_request(&h));
    }
}
