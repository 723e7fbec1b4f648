use serde_json::json;

use crate::both_dbs;
use crate::kit::{Db, secret, start};

async fn introspection_and_revocation(db: Db) {
    let (_env, s) = start(db).await;
    let token = s
        .access_token("default", Some("products:read products:write"))
        .await;

    let i = s.introspect("default", &token).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], "svc-basic");
    assert_eq!(i["scope"], "products:read products:write");
    assert_eq!(i["token_type"], "Bearer");
    assert_eq!(i["iss"], s.issuer("default").as_str());
    assert_eq!(i["department_id"], "sales");
    assert!(i["exp"].as_i64().is_some() && i["jti"].as_str().is_some());

    // Garbage, a token of another server, a token signed by nobody we know.
    for bad in ["garbage", "a.b.c", "", &"x".repeat(9000)] {
        let r = s
            .http
            .post(s.url("default", "/v1/introspect"))
            .basic_auth("svc-reader", Some(secret("SVC_READER_SECRET")))
            .form(&[("token", bad)])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(status == 200 || status == 400, "{status}");
        if status == 200 {
            assert_eq!(
                r.json::<serde_json::Value>().await.unwrap(),
                json!({"active": false})
            );
        }
    }
    let foreign = s.access_token("edge", None).await;
    assert_eq!(s.introspect("default", &foreign).await, json!({"active": false}));

    // An expired token, signed with the server's own active key.
    let view = s.handle.idp.view.get();
    let server = view.server("default").unwrap();
    let now = portcullis_idp::clock::now();
    let expired = server
        .signer
        .as_ref()
        .unwrap()
        .sign_jwt(
            portcullis_jose::signer::JwtType::AccessToken,
            &json!({"iss": server.issuer, "jti": "AT.old", "exp": now - 3600, "iat": now - 7200, "cid": "svc-basic"}),
        )
        .unwrap();
    assert_eq!(s.introspect("default", &expired).await, json!({"active": false}));

    // Introspection needs client authentication.
    let r = s
        .http
        .post(s.url("default", "/v1/introspect"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Another client cannot revoke it.
    let r = s
        .http
        .post(s.url("default", "/v1/revoke"))
        .basic_auth("svc-reader", Some(secret("SVC_READER_SECRET")))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(s.introspect("default", &token).await["active"], true);

    // Its own client can; from then on it is inactive.
    let revoke = |t: String| {
        s.http
            .post(s.url("default", "/v1/revoke"))
            .basic_auth("svc-basic", Some(secret("SVC_BASIC_SECRET")))
            .form(&[("token", t), ("token_type_hint", "access_token".into())])
            .send()
    };
    let r = revoke(token.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.introspect("default", &token).await, json!({"active": false}));
    // Revoking again, or revoking garbage, is still 200 (RFC 7009 §2.2).
    assert_eq!(revoke(token.clone()).await.unwrap().status(), 200);
    assert_eq!(revoke("garbage".into()).await.unwrap().status(), 200);
    s.stop().await;
}
both_dbs!(introspection_and_revocation);

/// Revocation is in the database: a second node sharing it sees it at once.
async fn revocation_is_seen_by_every_node(db: Db) {
    let (env, a) = start(db).await;
    let b = env.start_with_org_url(Some(a.handle.org_url.clone())).await;
    let token = a.access_token("default", None).await;
    assert_eq!(b.introspect("default", &token).await["active"], true);
    let r = a
        .http
        .post(a.url("default", "/v1/revoke"))
        .basic_auth("svc-basic", Some(secret("SVC_BASIC_SECRET")))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(b.introspect("default", &token).await["active"], false);
    a.stop().await;
    b.stop().await;
}
both_dbs!(revocation_is_seen_by_every_node);

fn b64(v: &serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Tokens that are not genuinely ours, or no longer backed by a live client, are inactive.
async fn forged_and_orphaned_tokens_are_inactive(db: Db) {
    let (env, s) = start(db).await;
    let genuine = s.access_token("default", None).await;
    let header: serde_json::Value = {
        use base64::Engine;
        let h = genuine.split('.').next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .unwrap(),
        )
        .unwrap()
    };
    let kid = header["kid"].as_str().unwrap().to_string();
    let payload_b64 = genuine.split('.').nth(1).unwrap().to_string();
    let now = portcullis_idp::clock::now();

    // alg none with our kid.
    let none = format!(
        "{}.{payload_b64}.",
        b64(&json!({"alg": "none", "kid": kid, "typ": "at+jwt"}))
    );
    // HS256 keyed with the public modulus, with our kid (algorithm confusion).
    let jwks = s.jwks("default").await;
    let n = match &jwks.find(&kid).unwrap().algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::RSA(p) => p.n.clone(),
        _ => unreachable!(),
    };
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some(kid.clone());
    h.typ = Some("at+jwt".into());
    let claims: serde_json::Value = {
        use base64::Engine;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&payload_b64)
                .unwrap(),
        )
        .unwrap()
    };
    let hs256 = jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(n.as_bytes()).unwrap(),
    )
    .unwrap();
    // Signed by a key we never issued, under our kid.
    let (other, _) = portcullis_jose::SigningKey::generate(portcullis_jose::KeyAlg::RS256).unwrap();
    let foreign_sig = other
        .sign_jwt(portcullis_jose::signer::JwtType::AccessToken, &claims)
        .unwrap();
    let foreign = {
        let mut parts: Vec<&str> = foreign_sig.split('.').collect();
        let forged_header = b64(&json!({"alg": "RS256", "kid": kid, "typ": "at+jwt"}));
        parts[0] = &forged_header;
        parts.join(".")
    };
    // Our own key, but not an access token (`typ: JWT`, as an ID token would be).
    let view = s.handle.idp.view.get();
    let server = view.server("default").unwrap();
    let id_token_like = server
        .signer
        .as_ref()
        .unwrap()
        .sign_jwt(
            portcullis_jose::signer::JwtType::Jwt,
            &json!({"iss": server.issuer, "jti": "AT.x", "exp": now + 600, "iat": now, "cid": "svc-basic"}),
        )
        .unwrap();
    // A tampered payload.
    let mut tampered_claims = claims.clone();
    tampered_claims["scp"] = json!(["admin:full"]);
    let sig = genuine.split('.').nth(2).unwrap();
    let tampered = format!(
        "{}.{}.{sig}",
        genuine.split('.').next().unwrap(),
        b64(&tampered_claims)
    );

    for (name, t) in [
        ("alg none", &none),
        ("hs256", &hs256),
        ("foreign key", &foreign),
        ("typ JWT", &id_token_like),
        ("tampered", &tampered),
    ] {
        assert_eq!(
            s.introspect("default", t).await,
            json!({"active": false}),
            "{name}"
        );
    }
    assert_eq!(s.introspect("default", &genuine).await["active"], true);

    // A public client may only introspect its own tokens.
    let r = s
        .http
        .post(s.url("default", "/v1/introspect"))
        .form(&[("client_id", "spa-app"), ("token", genuine.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        json!({"active": false})
    );

    // Deactivating the client retires its tokens at once.
    env.apply(&crate::kit::ORG.replacen(
        "    secretEnv: SVC_BASIC_SECRET\n",
        "    secretEnv: SVC_BASIC_SECRET\n    status: INACTIVE\n",
        1,
    ))
    .await;
    crate::kit::eventually(
        "the node sees the deactivation",
        std::time::Duration::from_secs(10),
        || async { s.introspect("default", &genuine).await == json!({"active": false}) },
    )
    .await;
    s.stop().await;
}
both_dbs!(forged_and_orphaned_tokens_are_inactive);
