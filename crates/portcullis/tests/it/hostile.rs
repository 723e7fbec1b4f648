//! Oversized, malformed, truncated and hostile requests get a 4xx, never a 5xx or a hang.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_dbs;
use crate::kit::{Db, secret, start};

async fn raw(addr: std::net::SocketAddr, request: &[u8], close_write: bool) -> String {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(request).await.unwrap();
    if close_write {
        sock.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), sock.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn malformed_requests_get_4xx(db: Db) {
    let (_env, s) = start(db).await;
    let url = s.url("default", "/v1/token");
    let good = secret("SVC_BASIC_SECRET");

    // Oversized body.
    let big = format!("grant_type=client_credentials&scope={}", "a".repeat(64 * 1024));
    let r = s
        .http
        .post(&url)
        .basic_auth("svc-basic", Some(&good))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Not a form.
    let r = s
        .http
        .post(&url)
        .basic_auth("svc-basic", Some(&good))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Repeated parameter.
    let r = s
        .http
        .post(&url)
        .basic_auth("svc-basic", Some(&good))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Too many parameters, invalid UTF-8, stray bytes.
    let many: String = (0..100).map(|i| format!("p{i}=1&")).collect();
    for body in [
        many.into_bytes(),
        b"grant_type=%ff%fe&scope=\xff\xfe".to_vec(),
        b"&&&===&".to_vec(),
    ] {
        let r = s
            .http
            .post(&url)
            .basic_auth("svc-basic", Some(&good))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    // Malformed Basic credentials.
    for h in ["Basic !!!notbase64", "Basic Zm9v", "Basic ", "basic"] {
        let r = s
            .http
            .post(&url)
            .header("authorization", h)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{h}");
    }
    // A malformed scope.
    let r = s
        .http
        .post(&url)
        .basic_auth("svc-basic", Some(&good))
        .form(&[("grant_type", "client_credentials"), ("scope", "a\"b")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Huge server id in the path.
    let r = s
        .http
        .get(format!("{}/oauth2/{}/v1/keys", s.base, "x".repeat(5000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Sign-in is not offered yet: a plain error, not a redirect to an unverified URI.
    let r = s
        .http
        .get(s.url(
            "default",
            "/v1/authorize?response_type=code&client_id=x&redirect_uri=https://evil.example/cb",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    // Wrong method.
    let r = s.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);

    let addr = s.handle.addr;
    // Headers larger than the head buffer.
    let huge = format!(
        "GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let resp = raw(addr, huge.as_bytes(), false).await;
    let st = status_of(&resp);
    assert_eq!(st, 431, "{resp}");
    // A truncated body: the client promises more than it sends, then closes.
    let req = b"POST /oauth2/default/v1/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 500\r\n\r\ngrant_type=client";
    let resp = raw(addr, req, true).await;
    let st = status_of(&resp);
    assert_eq!(st, 400, "{resp}");
    // Garbage instead of HTTP.
    let resp = raw(addr, b"\x16\x03\x01\x02\x00garbage\r\n\r\n", false).await;
    assert_eq!(status_of(&resp), 400, "{resp}");

    // The server still answers normally.
    let (st, _) = s.token_basic("default", "svc-basic", &good, None).await;
    assert_eq!(st, 200);
    s.stop().await;
}
both_dbs!(malformed_requests_get_4xx);
