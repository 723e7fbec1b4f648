//! The gateway over HTTP, in front of real upstreams, trusting our identity provider: the
//! article's policy table (4.3) row by row, forged tokens answered 401 `invalid_token`,
//! key rotation under load, the issuer down, unknown-kid floods, introspection, and the
//! reverse proxy's streaming, header hygiene and upstream failures.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Response;
use axum::routing::{any, get, post};
use bytes::Bytes;
use portcullis::demo::{self, DEMO_ORG, DEMO_SERVICE_CLIENT, DEMO_SYSADMIN_CLIENT};
use portcullis::runtime::{self, GatewayHandle};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::both_dbs;
use crate::gateway_jwt::{forged_tokens, resigned};
use crate::kit::{self, Db, Env, Server, eventually};

/// Starts a gateway from YAML text on an ephemeral port, secrets from the test kit.
async fn gateway(yaml: &str) -> GatewayHandle {
    let file = runtime::parse_gateway_file(yaml, "test gateway file").unwrap_or_else(|e| panic!("{e}"));
    let listeners = runtime::bind_gateway(&["127.0.0.1:0".parse().unwrap()], 2)
        .await
        .unwrap();
    let secrets = kit::secrets();
    runtime::start_gateway_with(&file, listeners, &|name| secrets.get(name).cloned())
        .await
        .unwrap()
}

/// A client that never pools, so a test sees each request on its own.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

async fn token_for(s: &Server, id: &str, secret: &str, scope: &str) -> String {
    let (status, body) = s.token_basic("default", id, secret, Some(scope)).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// Status, `WWW-Authenticate` and JSON body of a response.
async fn answer(r: reqwest::Response) -> (u16, String, Value) {
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, challenge, r.json().await.unwrap_or(Value::Null))
}

async fn call(gw: &str, method: &str, path: &str, token: Option<&str>) -> (u16, String, Value) {
    let mut req = client().request(method.parse().unwrap(), format!("{gw}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    answer(req.send().await.unwrap()).await
}

/// The policy table of the article's section 4.3, exactly as `portcullis up` serves it:
/// the demo org, the demo gateway file and the demo catalog API.
async fn policy_table(db: Db) {
    let env = Env::new(db).await;
    let secrets = env.apply_generated(DEMO_ORG).await;
    let s = env.start().await;
    let backend = runtime::start_demo_backend(None).await.unwrap();
    let yaml = demo::gateway_file("127.0.0.1:0".parse().unwrap(), &s.issuer("default"), backend.addr);
    let gw = gateway(&yaml).await;
    let g = gw.url();
    let svc = |scope: &'static str| token_for(&s, DEMO_SERVICE_CLIENT, &secrets[DEMO_SERVICE_CLIENT], scope);
    let ops =
        |scope: &'static str| token_for(&s, DEMO_SYSADMIN_CLIENT, &secrets[DEMO_SYSADMIN_CLIENT], scope);
    let scope_challenge = |scope: &str, c: &str| {
        assert!(
            c.starts_with("Bearer realm=\"portcullis-demo\", error=\"insufficient_scope\""),
            "{c}"
        );
        assert!(c.ends_with(&format!("scope=\"{scope}\"")), "{c}");
    };

    // GET /api/v1/products needs products:read.
    let (st, _, body) = call(&g, "GET", "/api/v1/products", Some(&svc("products:read").await)).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["products"].as_array().unwrap().len(), 3);
    assert_eq!(
        body["caller"]["sub"], DEMO_SERVICE_CLIENT,
        "verified claims reach the upstream"
    );
    assert_eq!(body["caller"]["department_id"], "sales");
    let (st, c, body) = call(&g, "GET", "/api/v1/products", Some(&svc("orders:create").await)).await;
    assert_eq!(st, 403);
    scope_challenge("products:read", &c);
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["scope"], "products:read");

    // PUT /api/v1/products/{id} needs products:write and user_roles including admin.
    let (st, _, body) = call(
        &g,
        "PUT",
        "/api/v1/products/7",
        Some(&svc("products:write").await),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body["product"]["id"], "7",
        "the path parameter reaches the upstream"
    );
    let (st, c, _) = call(&g, "PUT", "/api/v1/products/7", Some(&svc("products:read").await)).await;
    assert_eq!(st, 403);
    scope_challenge("products:write", &c);
    let (st, c, body) = call(
        &g,
        "PUT",
        "/api/v1/products/7",
        Some(&ops("products:write").await),
    )
    .await;
    assert_eq!(st, 403, "sysadmin is not admin");
    assert!(
        c.contains("error=\"insufficient_scope\"") && c.contains("user_roles must include admin"),
        "{c}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("user_roles must include admin")
    );

    // POST /api/v1/orders needs orders:create and department_id = sales.
    let (st, _, body) = call(&g, "POST", "/api/v1/orders", Some(&svc("orders:create").await)).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["order"]["status"], "placed");
    let (st, c, _) = call(&g, "POST", "/api/v1/orders", Some(&svc("products:read").await)).await;
    assert_eq!(st, 403);
    scope_challenge("orders:create", &c);
    let (st, c, _) = call(&g, "POST", "/api/v1/orders", Some(&ops("orders:create").await)).await;
    assert_eq!(st, 403, "IT is not sales");
    assert!(c.contains("department_id must be sales"), "{c}");

    // DELETE /api/v1/admin/users needs admin:full and user_roles including sysadmin.
    let (st, _, body) = call(
        &g,
        "DELETE",
        "/api/v1/admin/users",
        Some(&ops("admin:full").await),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["caller"]["user_roles"], "sysadmin");
    let (st, c, _) = call(
        &g,
        "DELETE",
        "/api/v1/admin/users",
        Some(&ops("products:read").await),
    )
    .await;
    assert_eq!(st, 403);
    scope_challenge("admin:full", &c);
    let (st, c, _) = call(
        &g,
        "DELETE",
        "/api/v1/admin/users",
        Some(&svc("admin:full").await),
    )
    .await;
    assert_eq!(st, 403, "admin is not sysadmin");
    assert!(c.contains("user_roles must include sysadmin"), "{c}");

    // No token: 401 with a bare challenge (RFC 6750 §3.1: no error code).
    let (st, c, body) = call(&g, "GET", "/api/v1/products", None).await;
    assert_eq!((st, c.as_str()), (401, "Bearer realm=\"portcullis-demo\""));
    assert!(body.get("error").is_none(), "{body}");
    // A bad token: 401 invalid_token saying what is wrong.
    let (st, c, body) = call(&g, "GET", "/api/v1/products", Some("not.a.jwt")).await;
    assert_eq!(st, 401);
    assert!(c.contains("error=\"invalid_token\""), "{c}");
    assert_eq!(body["error"], "invalid_token");
    // A JWT signed with the issuer's key but not typed as an access token (an ID token, say).
    let claims = {
        use base64::Engine;
        let t = svc("products:read").await;
        let payload = t.split('.').nth(1).unwrap();
        serde_json::from_slice::<Value>(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    let view = s.handle.idp.view.get();
    let signer = view.server("default").unwrap().signer.clone().unwrap();
    let untyped = signer
        .sign_jwt(portcullis_jose::signer::JwtType::Jwt, &claims)
        .unwrap();
    let (st, c, _) = call(&g, "GET", "/api/v1/products", Some(&untyped)).await;
    assert_eq!(st, 401);
    assert!(
        c.contains("error_description=\"The token is not an access token.\""),
        "{c}"
    );
    // Another scheme is no bearer token at all.
    let r = client()
        .get(format!("{g}/api/v1/products"))
        .basic_auth("demo-service", Some("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Routing answers of the gateway's own.
    let r = client()
        .post(format!("{g}/api/v1/products"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    assert_eq!(call(&g, "GET", "/api/v1/nothing-here", None).await.0, 404);
    assert_eq!(call(&g, "GET", "/api/v1/health", None).await.0, 200, "auth: none");

    gw.stop().await;
    backend.stop().await;
    s.stop().await;
}
both_dbs!(policy_table);

/// Every forged, malformed or misused token of the validator suite, sent through the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_get_401_invalid_token() {
    let (_env, s) = kit::start(Db::Sqlite).await;
    let up = Upstream::start().await;
    let gw = gateway(&test_gateway_file(&s, &up, "")).await;
    let cases = forged_tokens(&s).await;
    assert!(cases.len() >= 25);
    for (name, token, expected) in &cases {
        let (st, c, body) = call(&gw.url(), "GET", "/echo", Some(token)).await;
        assert_eq!(st, 401, "{name}: {body}");
        let want =
            format!("Bearer realm=\"test\", error=\"invalid_token\", error_description=\"{expected}.\"");
        assert_eq!(c, want, "{name}");
        assert_eq!(body["error"], "invalid_token", "{name}");
    }
    assert_eq!(up.hits(), 0, "no forged token reached the upstream");
    let good = s.access_token("default", None).await;
    assert_eq!(call(&gw.url(), "GET", "/echo", Some(&good)).await.0, 200);
    gw.stop().await;
    s.stop().await;
}

/// Keys rotate at the issuer while requests stream through: none fails. Then a flood of
/// unknown key ids costs one JWKS fetch at most, and with the issuer down the cached keys
/// keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_unknown_kids_and_issuer_down() {
    let (env, s) = kit::start(Db::Sqlite).await;
    let up = Upstream::start().await;
    let gw = gateway(&test_gateway_file(&s, &up, "")).await;
    let g = gw.url();
    let jwks = gw.gateway().jwks(&s.issuer("default")).unwrap().clone();
    let first = s.access_token("default", None).await;
    assert_eq!(call(&g, "GET", "/echo", Some(&first)).await.0, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, sent, failures, g) = (stop.clone(), sent.clone(), failures.clone(), g.clone());
        let (http, url) = (s.http.clone(), s.url("default", "/v1/token"));
        load.push(tokio::spawn(async move {
            let http_gw = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let body: Value = http
                    .post(&url)
                    .basic_auth("svc-basic", Some(kit::secret("SVC_BASIC_SECRET")))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let token = body["access_token"].as_str().unwrap();
                let r = http_gw
                    .get(format!("{g}/echo"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                sent.fetch_add(1, Ordering::Relaxed);
                if r.status() != 200 {
                    let c = r.headers().get("www-authenticate").cloned();
                    failures.lock().unwrap().push(format!("{} {c:?}", r.status()));
                }
            }
        }));
    }
    eventually("requests flow", Duration::from_secs(10), || {
        let n = sent.load(Ordering::Relaxed);
        async move { n >= 20 }
    })
    .await;
    let old_kid = jsonwebtoken::decode_header(&first).unwrap().kid.unwrap();
    let store = runtime::open_store(&env.database_url).await.unwrap();
    portcullis_idp::keys::rotate(
        &store,
        &env.master,
        "default",
        "default",
        portcullis_idp::clock::now(),
        900,
        true,
    )
    .await
    .unwrap();
    store.close().await;
    eventually(
        "the issuer signs with the next key",
        Duration::from_secs(10),
        || {
            let s = &s;
            let old = old_kid.clone();
            async move {
                let t = s.access_token("default", None).await;
                jsonwebtoken::decode_header(&t).unwrap().kid.unwrap() != old
            }
        },
    )
    .await;
    let at_switch = sent.load(Ordering::Relaxed);
    eventually(
        "requests flow after the rotation",
        Duration::from_secs(10),
        || {
            let n = sent.load(Ordering::Relaxed);
            async move { n >= at_switch + 20 }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    assert_eq!(
        failures.lock().unwrap().clone(),
        Vec::<String>::new(),
        "failed requests during rotation"
    );
    assert!(jwks.fetch_count() <= 2, "{} JWKS fetches", jwks.fetch_count());

    // A flood of unknown kids: all refused, at most one refetch.
    let before = jwks.fetch_count();
    let mut flood = Vec::new();
    for i in 0..100 {
        let g = g.clone();
        let t = format!(
            "{}.{}.c2ln",
            b64(&json!({"alg":"RS256","kid": format!("unknown-{i}")})),
            b64(&json!({"iss": "x"}))
        );
        flood.push(tokio::spawn(
            async move { call(&g, "GET", "/echo", Some(&t)).await },
        ));
    }
    for f in flood {
        let (st, c, _) = f.await.unwrap();
        assert_eq!(st, 401);
        assert!(c.contains("signed with an unknown key"), "{c}");
    }
    assert!(
        jwks.fetch_count() - before <= 1,
        "the flood cost {} fetches",
        jwks.fetch_count() - before
    );

    // The issuer goes down: a token the gateway has never seen, signed with a known key, passes.
    let unseen = resigned(&s, &first, json!({"jti": "AT.unseen-before-outage"}));
    s.stop().await;
    let (st, _, body) = call(&g, "GET", "/echo", Some(&unseen)).await;
    assert_eq!(st, 200, "cached keys serve while the issuer is down: {body}");
    gw.stop().await;
}

/// Opaque-token routes ask the issuer (RFC 7662); revocation is seen at once without a
/// positive cache, and only after `cacheSeconds` with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_routes() {
    let (_env, s) = kit::start(Db::Sqlite).await;
    let up = Upstream::start().await;
    let live = gateway(&test_gateway_file(&s, &up, "cacheSeconds: 0")).await;
    let cached = gateway(&test_gateway_file(&s, &up, "cacheSeconds: 300")).await;
    let token = s.access_token("default", Some("products:read")).await;
    for gw in [&live, &cached] {
        let (st, _, body) = call(&gw.url(), "GET", "/introspected", Some(&token)).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["headers"]["x-auth-subject"], "svc-basic");
    }
    let r = s
        .http
        .post(s.url("default", "/v1/revoke"))
        .basic_auth("svc-basic", Some(kit::secret("SVC_BASIC_SECRET")))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (st, c, _) = call(&live.url(), "GET", "/introspected", Some(&token)).await;
    assert_eq!(st, 401, "revoked: inactive at once");
    assert!(
        c.contains("error=\"invalid_token\", error_description=\"The access token is not active.\""),
        "{c}"
    );
    assert_eq!(
        call(&cached.url(), "GET", "/introspected", Some(&token)).await.0,
        200,
        "cached result"
    );
    // An opaque string the issuer never issued.
    let (st, c, _) = call(&live.url(), "GET", "/introspected", Some("opaque-garbage-token")).await;
    assert_eq!(st, 401);
    assert!(c.contains("not active"), "{c}");
    // The JWT route of the same gateway does not know about the revocation (it verifies locally).
    assert_eq!(call(&live.url(), "GET", "/echo", Some(&token)).await.0, 200);
    // The issuer down: 503, not the client's fault.
    let fresh = s.access_token("default", None).await;
    s.stop().await;
    assert_eq!(
        call(&live.url(), "GET", "/introspected", Some(&fresh)).await.0,
        503
    );
    live.stop().await;
    cached.stop().await;
}

/// The reverse proxy: bodies stream both ways, identity headers cannot be forged, request
/// ids and forwarding headers are set, hop-by-hop headers dropped, and upstream trouble
/// becomes 502, 503 or 504.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxying() {
    let (_env, s) = kit::start(Db::Sqlite).await;
    let up = Upstream::start().await;
    let gw = gateway(&test_gateway_file(&s, &up, "")).await;
    let g = gw.url();
    let token = s.access_token("default", None).await;

    // Identity headers come from the verified token only.
    let r = client()
        .get(format!("{g}/echo?x=1"))
        .bearer_auth(&token)
        .header("x-auth-subject", "root")
        .header("X-Auth-Scopes", "admin:full")
        .header("x-request-id", "client-id-123")
        .header("connection", "x-secret")
        .header("x-secret", "hop")
        .header("x_auth_subject", "root")
        .header("x-original-url", "/admin")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "client-id-123");
    let echo: Value = r.json().await.unwrap();
    let h = &echo["headers"];
    assert_eq!(h["x-auth-subject"], "svc-basic");
    assert_eq!(h["x-auth-scopes"], "products:read");
    assert_eq!(h["x-request-id"], "client-id-123");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert!(
        h["forwarded"]
            .as_str()
            .unwrap()
            .starts_with("for=127.0.0.1;proto=http"),
        "{h}"
    );
    assert!(
        h.get("x-secret").is_none(),
        "hop-by-hop header named by Connection: {h}"
    );
    assert_eq!(echo["uri"], "/echo?x=1");
    // The upstream sees the path the route matched: escapes of plain characters decoded.
    let (st, _, echo) = call(&g, "GET", "/%65cho?q=%41", Some(&token)).await;
    assert_eq!(st, 200);
    assert_eq!(echo["uri"], "/echo?q=%41", "the query goes as it came");
    // The Authorization header matters only on routes that take tokens.
    let r = client()
        .get(format!("{g}/versioned"))
        .header("api-version", "2")
        .header("authorization", "Bearer not a token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "auth: none");
    // A request id is made when the client sends none, and reaches the upstream.
    let r = client()
        .get(format!("{g}/echo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(rid.len() >= 16, "{rid}");
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["headers"]["x-request-id"], rid.as_str());

    // The response streams: the first chunk arrives while the upstream still holds the rest.
    let mut r = client().get(format!("{g}/stream")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), r.chunk())
        .await
        .expect("the first chunk arrives before the upstream finishes (no buffering)")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"first;");
    up.release.notify_one();
    let mut rest = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"second;");
    // A large upload streams through (the upstream counts what it got).
    let big = vec![b'x'; 8 * 1024 * 1024];
    let r = client()
        .post(format!("{g}/upload"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), (8 * 1024 * 1024).to_string());

    // Upstream trouble.
    assert_eq!(
        call(&g, "GET", "/slow", None).await.0,
        504,
        "no answer within timeoutSeconds"
    );
    let (st, _, body) = call(&g, "GET", "/dead", None).await;
    assert_eq!(st, 502, "connection refused");
    assert!(
        !body["error_description"].as_str().unwrap().contains("127.0.0.1"),
        "no internals: {body}"
    );
    assert_eq!(
        call(&g, "GET", "/dead", None).await.0,
        503,
        "the target is marked down"
    );

    // Versions by path prefix and by header, and hosts.
    assert_eq!(
        call(&g, "GET", "/v2/items", Some(&token)).await.2["uri"],
        "/v2/items"
    );
    assert_eq!(call(&g, "GET", "/items", Some(&token)).await.0, 404);
    let r = client()
        .get(format!("{g}/versioned"))
        .header("api-version", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        call(&g, "GET", "/versioned", None).await.0,
        404,
        "without the version header"
    );
    let r = client()
        .get(format!("{g}/hosted"))
        .header("host", "api.example.com:8000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(call(&g, "GET", "/hosted", None).await.0, 404, "another host");

    // Hostile requests get a 4xx, never a 5xx or a hang.
    let addr: SocketAddr = gw.addrs[0];
    for (what, raw, want) in [
        (
            "dot segments",
            "GET /echo/../admin HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        (
            "encoded dot segments",
            "GET /echo/%2e%2e/admin HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        (
            "encoded slash",
            "GET /echo%2Fadmin HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        (
            "two Authorization headers",
            "GET /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n",
            400,
        ),
        ("not a request", "HELLO\r\n\r\n", 400),
        (
            "bearer with spaces",
            "GET /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a b c\r\n\r\n",
            401,
        ),
        (
            "token in a huge header",
            &format!(
                "GET /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
                "a".repeat(40_000)
            ),
            431,
        ),
    ] {
        assert_eq!(raw_status(addr, raw).await, want, "{what}");
    }
    gw.stop().await;
    s.stop().await;
}

/// A reload swaps the routes without dropping a request in flight; a file that cannot be
/// built is refused and the running routes keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_routes_without_dropping_requests() {
    let (_env, s) = kit::start(Db::Sqlite).await;
    let up = Upstream::start().await;
    let original = test_gateway_file(&s, &up, "");
    let gw = gateway(&original).await;
    let g = gw.url();
    let mut in_flight = client().get(format!("{g}/stream")).send().await.unwrap();
    assert_eq!(&in_flight.chunk().await.unwrap().unwrap()[..], b"first;");

    let changed = format!(
        "{}  - path: /added\n    upstream: up\n    auth: none\n",
        original.replace("path: /stream", "path: /moved")
    );
    let file = runtime::parse_gateway_file(&changed, "changed").unwrap();
    let secrets = kit::secrets();
    gw.reload(&file, &|n| secrets.get(n).cloned()).await.unwrap();
    assert_eq!(
        call(&g, "GET", "/added", None).await.0,
        200,
        "the new route serves"
    );
    assert_eq!(
        call(&g, "GET", "/stream", None).await.0,
        404,
        "the removed route is gone"
    );
    up.release.notify_one();
    assert_eq!(
        &in_flight.chunk().await.unwrap().unwrap()[..],
        b"second;",
        "the old request finished"
    );
    let token = s.access_token("default", None).await;
    assert_eq!(
        call(&g, "GET", "/echo", Some(&token)).await.0,
        200,
        "keys fetched before the swap"
    );

    let broken = changed.replace(
        "clientSecretEnv: SVC_READER_SECRET",
        "clientSecretEnv: NOT_SET_ANYWHERE",
    );
    let file = runtime::parse_gateway_file(&broken, "broken").unwrap();
    let err = gw.reload(&file, &|n| secrets.get(n).cloned()).await.unwrap_err();
    assert!(err.to_string().contains("NOT_SET_ANYWHERE"), "{err}");
    assert_eq!(
        call(&g, "GET", "/added", None).await.0,
        200,
        "the previous routes keep serving"
    );
    gw.stop().await;
    s.stop().await;
}

/// The real binary: `portcullis gateway` reloads its file on SIGHUP, and refuses a bad one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_gateway_file() {
    use std::io::BufRead;
    let up = Upstream::start().await;
    let dir = kit::temp_dir("pc-gw");
    let path = dir.join("gateway.yaml");
    let file = |route: &str| {
        format!(
            "version: 1\nlisteners: [\"127.0.0.1:0\"]\nupstreams:\n  - name: up\n    targets: [http://{}]\nroutes:\n  - path: {route}\n    upstream: up\n    auth: none\n",
            up.addr
        )
    };
    std::fs::write(&path, file("/a")).unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["gateway", "--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(check.status.success());
    assert!(
        String::from_utf8_lossy(&check.stdout)
            .contains("valid — 1 listener(s), 0 issuer(s), 1 upstream(s), 1 route(s)")
    );

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["--log-format", "json", "gateway", "--config"])
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str| -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line with {needle}"));
            if line.contains(needle) {
                return line;
            }
        }
    };
    let listening: Value = serde_json::from_str(&wait_for("gateway listening")).unwrap();
    let g = format!("http://{}", listening["addr"].as_str().unwrap());
    assert_eq!(call(&g, "GET", "/a", None).await.0, 200);
    assert_eq!(call(&g, "GET", "/b", None).await.0, 404);

    let hup = |pid: u32| {
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
    };
    std::fs::write(&path, file("/b")).unwrap();
    hup(child.id());
    wait_for("gateway file reloaded");
    assert_eq!(call(&g, "GET", "/b", None).await.0, 200);
    assert_eq!(call(&g, "GET", "/a", None).await.0, 404);

    std::fs::write(&path, "routes:\n  - path: no-slash\n    upstream: nowhere\n").unwrap();
    hup(child.id());
    let refused = wait_for("not reloaded");
    assert!(refused.contains("line 2"), "{refused}");
    assert_eq!(
        call(&g, "GET", "/b", None).await.0,
        200,
        "the previous file keeps serving"
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}

fn b64(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// The status of a response to raw bytes sent on a fresh connection.
async fn raw_status(addr: SocketAddr, raw: &str) -> u16 {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("an answer, not a hang")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The gateway file of these tests; `introspection` goes into the issuer's introspection
/// settings.
fn test_gateway_file(s: &Server, up: &Upstream, introspection: &str) -> String {
    let issuer = s.issuer("default");
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let introspection = if introspection.is_empty() {
        "cacheSeconds: 60"
    } else {
        introspection
    };
    format!(
        r#"version: 1
realm: test
issuers:
  - issuer: {issuer}
    audiences: [api://default]
    introspection:
      clientId: svc-reader
      clientSecretEnv: SVC_READER_SECRET
      {introspection}
upstreams:
  - name: up
    targets: [http://{up_addr}]
  - name: slow
    targets: [http://{up_addr}]
    timeoutSeconds: 1
  - name: dead
    targets: [http://{dead}]
routes:
  - path: /echo
    upstream: up
    scopes: {{anyOf: [products:read, products:write]}}
    forwardClaims: {{x-auth-subject: sub, x-auth-scopes: scp}}
  - path: /introspected
    upstream: up
    auth: introspection
    forwardClaims: {{x-auth-subject: sub}}
  - path: /stream
    upstream: up
    auth: none
  - path: /upload
    methods: [POST]
    upstream: up
    auth: none
  - path: /slow
    upstream: slow
    auth: none
  - path: /dead
    upstream: dead
    auth: none
  - path: /items
    version: {{prefix: /v2}}
    upstream: up
  - path: /versioned
    version: {{header: api-version, value: "2"}}
    upstream: up
    auth: none
  - path: /hosted
    host: api.example.com
    upstream: up
    auth: none
"#,
        up_addr = up.addr
    )
}

/// A test upstream: `/echo` (and any other path) answers with what it received,
/// `/stream` sends one chunk and the next only when released, `/upload` counts the bytes
/// of the body, `/slow` answers after three seconds.
struct Upstream {
    addr: SocketAddr,
    release: Arc<Notify>,
    hits: Arc<AtomicU64>,
}

impl Upstream {
    async fn start() -> Upstream {
        let release = Arc::new(Notify::new());
        let hits = Arc::new(AtomicU64::new(0));
        let (r, h) = (release.clone(), hits.clone());
        let echo = move |req: axum::extract::Request| {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::Relaxed);
                let headers: HashMap<String, String> = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                axum::Json(json!({"uri": req.uri().to_string(), "headers": headers}))
            }
        };
        let app = Router::new()
            .route(
                "/stream",
                get(move || {
                    let r = r.clone();
                    async move {
                        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
                        tx.send(Bytes::from_static(b"first;")).await.unwrap();
                        tokio::spawn(async move {
                            r.notified().await;
                            let _ = tx.send(Bytes::from_static(b"second;")).await;
                        });
                        Response::new(Body::new(ChannelBody(rx)))
                    }
                }),
            )
            .route(
                "/upload",
                post(|body: Body| async move {
                    use http_body::Body as _;
                    let mut body = body;
                    let mut n = 0usize;
                    while let Some(frame) =
                        std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                    {
                        if let Ok(data) = frame.unwrap().into_data() {
                            n += data.len();
                        }
                    }
                    n.to_string()
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    "late"
                }),
            )
            .fallback(any(echo))
            .layer(axum::extract::DefaultBodyLimit::disable());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Upstream { addr, release, hits }
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

/// A response body fed from a channel, so the test decides when each chunk goes.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|c| c.map(|b| Ok(http_body::Frame::data(b))))
    }
}
