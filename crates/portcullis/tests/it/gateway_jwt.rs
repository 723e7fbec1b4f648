//! The gateway's token validator against a real issuer (our identity provider, over HTTP):
//! forged, malformed and misused tokens are refused with the right reason; a key rotation
//! at the issuer costs no failed validation; cached keys serve while the issuer is down;
//! a flood of unknown key ids costs a bounded number of JWKS fetches.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_gateway::{IssuerPolicy, JwksCache, JwksSettings, TokenError, Validator};
use portcullis_jose::signer::JwtType;
use serde_json::{Value, json};

use crate::kit::{Db, Server, start};

fn validator(issuer: &str, audience: &str, settings: JwksSettings) -> (Validator, Arc<JwksCache>) {
    let policy = IssuerPolicy::new(issuer, vec![audience.to_string()]);
    let jwks = JwksCache::new(
        issuer,
        None,
        policy.algorithms.clone(),
        reqwest::Client::new(),
        settings,
    );
    (Validator::new(policy, jwks.clone(), 10_000), jwks)
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn segment(token: &str, i: usize) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

/// Changes one character in the middle of a base64url string (never only padding bits).
fn flip_middle(s: &str) -> String {
    let mid = s.len() / 2;
    let c = if &s[mid..mid + 1] == "A" { "B" } else { "A" };
    format!("{}{c}{}", &s[..mid], &s[mid + 1..])
}

fn now() -> i64 {
    portcullis_idp::clock::now()
}

/// `token`'s claims with `patch` applied (null removes a claim), signed by the `default`
/// server's current key: a genuine token with chosen claims.
pub fn resigned(s: &Server, token: &str, patch: Value) -> String {
    let view = s.handle.idp.view.get();
    let signer = view.server("default").unwrap().signer.clone().unwrap();
    let mut claims = segment(token, 1);
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    signer.sign_jwt(JwtType::AccessToken, &claims).unwrap()
}

/// At least 25 forged, malformed or misused tokens for the `default` server of the test
/// org, each with the reason it must be refused for.
pub async fn forged_tokens(s: &Server) -> Vec<(&'static str, String, TokenError)> {
    let issuer = s.issuer("default");
    let good = s
        .access_token("default", Some("products:read products:write"))
        .await;
    let view = s.handle.idp.view.get();
    let server = view.server("default").unwrap();
    let signer = server.signer.as_ref().unwrap();
    let kid = signer.kid().to_string();
    let sign = |claims: Value| signer.sign_jwt(JwtType::AccessToken, &claims).unwrap();
    let base = segment(&good, 1);
    let with = |patch: Value| {
        let mut c = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let [h, p, sig] = {
        let parts: Vec<&str> = good.split('.').collect();
        [parts[0].to_string(), parts[1].to_string(), parts[2].to_string()]
    };
    let rehead = |hdr: Value, payload: &str, sig: &str| format!("{}.{payload}.{sig}", b64(&hdr));
    let (attacker, _) = portcullis_jose::SigningKey::generate(portcullis_jose::KeyAlg::RS256).unwrap();
    let attacker_signed = attacker.sign_jwt(JwtType::AccessToken, &base).unwrap();
    let attacker_sig = attacker_signed.split('.').nth(2).unwrap().to_string();
    let n = match &s.jwks("default").await.find(&kid).unwrap().algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::RSA(p) => p.n.clone(),
        _ => unreachable!(),
    };
    let hmac = |alg: jsonwebtoken::Algorithm| {
        let mut hd = jsonwebtoken::Header::new(alg);
        hd.kid = Some(kid.clone());
        jsonwebtoken::encode(
            &hd,
            &base,
            &jsonwebtoken::EncodingKey::from_secret(n.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let many_claims: Value = {
        let mut c = base.clone();
        for i in 0..100 {
            c[format!("c{i}")] = json!(i);
        }
        c
    };

    use TokenError as E;
    let cases: Vec<(&'static str, String, E)> = vec![
        ("garbage", "garbage".into(), E::Malformed),
        ("two parts", format!("{h}.{p}"), E::Malformed),
        ("four parts", format!("{good}.x"), E::Malformed),
        ("empty parts", "..".into(), E::Malformed),
        ("header not base64", format!("!!!.{p}.{sig}"), E::Malformed),
        (
            "header not JSON",
            format!("{}.{p}.{sig}", URL_SAFE_NO_PAD.encode("not json")),
            E::Malformed,
        ),
        (
            "alg none",
            rehead(json!({"alg":"none","kid":kid}), &p, "x"),
            E::AlgorithmNotAllowed,
        ),
        (
            "alg NONE",
            rehead(json!({"alg":"NONE","kid":kid}), &p, "x"),
            E::AlgorithmNotAllowed,
        ),
        (
            "HS256 keyed with the public key",
            hmac(jsonwebtoken::Algorithm::HS256),
            E::AlgorithmNotAllowed,
        ),
        (
            "HS512 keyed with the public key",
            hmac(jsonwebtoken::Algorithm::HS512),
            E::AlgorithmNotAllowed,
        ),
        (
            "no kid",
            rehead(json!({"alg":"RS256","typ":"at+jwt"}), &p, &sig),
            E::MissingKid,
        ),
        (
            "empty kid",
            rehead(json!({"alg":"RS256","kid":""}), &p, &sig),
            E::MissingKid,
        ),
        (
            "unknown kid",
            rehead(json!({"alg":"RS256","kid":"nope"}), &p, &sig),
            E::UnknownKey,
        ),
        (
            "ES256 header on an RS256 key",
            rehead(json!({"alg":"ES256","kid":kid}), &p, &sig),
            E::AlgorithmMismatch,
        ),
        (
            "PS256 (not accepted)",
            rehead(json!({"alg":"PS256","kid":kid}), &p, &sig),
            E::AlgorithmNotAllowed,
        ),
        (
            "tampered payload",
            format!("{h}.{}.{sig}", b64(&with(json!({"scp":["admin:full"]})))),
            E::BadSignature,
        ),
        (
            "tampered signature",
            format!("{h}.{p}.{}", flip_middle(&sig)),
            E::BadSignature,
        ),
        (
            "truncated signature",
            format!("{h}.{p}.{}", &sig[..168]),
            E::BadSignature,
        ),
        ("signature stripped", format!("{h}.{p}."), E::Malformed),
        (
            "signed by another key under our kid",
            format!("{h}.{p}.{attacker_sig}"),
            E::BadSignature,
        ),
        (
            "attacker key embedded as jwk",
            rehead(
                json!({"alg":"RS256","kid":kid,"jwk":attacker.jwk()}),
                &p,
                &attacker_sig,
            ),
            E::BadSignature,
        ),
        (
            "jku pointing elsewhere",
            rehead(
                json!({"alg":"RS256","kid":"attacker","jku":"http://127.0.0.1:1/jwks"}),
                &p,
                &attacker_sig,
            ),
            E::UnknownKey,
        ),
        (
            "x5u pointing elsewhere",
            rehead(
                json!({"alg":"RS256","kid":"attacker","x5u":"http://127.0.0.1:1/x5u"}),
                &p,
                &attacker_sig,
            ),
            E::UnknownKey,
        ),
        (
            "unknown crit",
            rehead(json!({"alg":"RS256","kid":kid,"crit":["exp"],"exp":1}), &p, &sig),
            E::UnsupportedCritical,
        ),
        (
            "oversized",
            format!("{h}.{}.{sig}", "A".repeat(10_000)),
            E::TooLarge,
        ),
        (
            "wrong issuer",
            sign(with(json!({"iss":"https://evil.example/oauth2/default"}))),
            E::WrongIssuer,
        ),
        (
            "issuer with trailing slash",
            sign(with(json!({"iss": format!("{issuer}/")}))),
            E::WrongIssuer,
        ),
        (
            "wrong audience",
            sign(with(json!({"aud":"api://other"}))),
            E::WrongAudience,
        ),
        ("expired", sign(with(json!({"exp": now() - 120}))), E::Expired),
        (
            "not yet valid",
            sign(with(json!({"nbf": now() + 3600}))),
            E::NotYetValid,
        ),
        (
            "issued in the future",
            sign(with(json!({"iat": now() + 3600}))),
            E::IssuedInFuture,
        ),
        ("no exp", sign(with(json!({"exp": null}))), E::MissingClaim),
        ("no aud", sign(with(json!({"aud": null}))), E::MissingClaim),
        ("too many claims", sign(many_claims), E::TooManyClaims),
        (
            "another server's token",
            s.access_token("edge", None).await,
            E::UnknownKey,
        ),
    ];
    assert!(cases.len() >= 25);
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_malformed_and_misused_tokens_are_refused() {
    let (_env, s) = start(Db::Sqlite).await;
    let issuer = s.issuer("default");
    let (v, _) = validator(&issuer, "api://default", JwksSettings::default());
    let good = s
        .access_token("default", Some("products:read products:write"))
        .await;
    let ok = v.validate(&good).await.unwrap();
    assert!(ok.has_scope("products:write") && ok.has_scope("products:read"));
    let cases = forged_tokens(&s).await;
    let es_kid = s.jwks("orders").await.keys[0].common.key_id.clone().unwrap();
    let rehead = |hdr: Value, payload: &str, sig: &str| format!("{}.{payload}.{sig}", b64(&hdr));
    use TokenError as E;
    for (name, token, expected) in &cases {
        let got = v.validate(token).await.map(|_| ()).unwrap_err();
        assert_eq!(&got, expected, "{name}");
    }
    // The algorithm comes from the key: an RS256 header on the ES256 server's key is refused.
    let (vo, _) = validator(&s.issuer("orders"), "api://orders", JwksSettings::default());
    let es_token = s.access_token("orders", Some("orders:create")).await;
    vo.validate(&es_token).await.unwrap();
    let parts: Vec<&str> = es_token.split('.').collect();
    let forged = rehead(json!({"alg":"RS256","kid":es_kid}), parts[1], parts[2]);
    assert_eq!(vo.validate(&forged).await.unwrap_err(), E::AlgorithmMismatch);
    // Within the clock skew an expiring token still passes.
    assert!(
        v.validate(&resigned(&s, &good, json!({"exp": now() - 5})))
            .await
            .is_ok()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_issuer_outage_and_unknown_kid_flood() {
    let (env, s) = start(Db::Sqlite).await;
    let issuer = s.issuer("default");
    let settings = JwksSettings {
        unknown_kid_interval: Duration::from_secs(5),
        ..JwksSettings::default()
    };
    let (v, jwks) = validator(&issuer, "api://default", settings);
    let v = Arc::new(v);
    v.validate(&s.access_token("default", None).await).await.unwrap();
    assert_eq!(jwks.fetch_count(), 1, "one fetch, then served from the cache");
    for _ in 0..20 {
        v.validate(&s.access_token("default", None).await).await.unwrap();
    }
    assert_eq!(jwks.fetch_count(), 1, "no outbound call per request");

    // A key rotation at the issuer while tokens keep coming: zero failures.
    let store = portcullis::runtime::open_store(&env.database_url).await.unwrap();
    portcullis_idp::keys::rotate(&store, &env.master, "default", "default", now(), 900, true)
        .await
        .unwrap();
    store.close().await;
    let old_kid = jsonwebtoken::decode_header(&s.access_token("default", None).await)
        .unwrap()
        .kid;
    let mut switched = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !switched {
        assert!(
            std::time::Instant::now() < deadline,
            "the issuer never switched keys"
        );
        let t = s.access_token("default", None).await;
        v.validate(&t).await.expect("no failure during rotation");
        switched = jsonwebtoken::decode_header(&t).unwrap().kid != old_kid;
    }
    // The next key was already published when the cache fetched: no refetch was needed,
    // or at most one.
    assert!(jwks.fetch_count() <= 2, "{}", jwks.fetch_count());

    // A flood of tokens with unknown kids: bounded fetches, all refused.
    let before = jwks.fetch_count();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let v = v.clone();
        let t = format!(
            "{}.{}.{}",
            b64(&json!({"alg":"RS256","kid": format!("unknown-{i}")})),
            b64(&json!({})),
            "c2ln"
        );
        tasks.push(tokio::spawn(async move { v.validate(&t).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap_err(), TokenError::UnknownKey);
    }
    assert!(
        jwks.fetch_count() - before <= 1,
        "unknown kids cost {} fetches",
        jwks.fetch_count() - before
    );

    // The issuer goes down: tokens signed with known keys still validate from the cache.
    let view = s.handle.idp.view.get();
    let signer = view.server("default").unwrap().signer.clone().unwrap();
    let claims = segment(&s.access_token("default", None).await, 1);
    s.stop().await;
    let mut c = claims.clone();
    c["jti"] = json!("AT.after-outage");
    let fresh = signer.sign_jwt(JwtType::AccessToken, &c).unwrap();
    v.validate(&fresh)
        .await
        .expect("cached keys serve while the issuer is down");
    let unknown = format!(
        "{}.{}.{}",
        b64(&json!({"alg":"RS256","kid":"rotated-while-down"})),
        b64(&c),
        "c2ln"
    );
    assert_eq!(v.validate(&unknown).await.unwrap_err(), TokenError::UnknownKey);
}
