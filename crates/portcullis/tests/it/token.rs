use crate::both_dbs;
use crate::kit::{Db, secret, start, verify_with_jwks};

async fn client_credentials_with_each_auth_method(db: Db) {
    let (_env, s) = start(db).await;
    let issuer = s.issuer("default");
    let jwks = s.jwks("default").await;

    // client_secret_basic
    let (st, body) = s
        .token_basic(
            "default",
            "svc-basic",
            &secret("SVC_BASIC_SECRET"),
            Some("products:read products:write"),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "products:read products:write");
    let claims = verify_with_jwks(
        body["access_token"].as_str().unwrap(),
        &jwks,
        &issuer,
        "api://default",
    );
    assert_eq!(claims["ver"], 1);
    assert!(claims["jti"].as_str().unwrap().starts_with("AT."));
    assert_eq!(claims["cid"], "svc-basic");
    assert_eq!(claims["client_id"], "svc-basic");
    assert_eq!(claims["sub"], "svc-basic");
    assert_eq!(
        claims["scp"],
        serde_json::json!(["products:read", "products:write"])
    );
    assert_eq!(claims["scope"], "products:read products:write");
    assert_eq!(claims["aud"], "api://default");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    // Custom claims from the client's profile; user_roles only with the scopes it names.
    assert_eq!(claims["department_id"], "sales");
    assert_eq!(claims["user_roles"], serde_json::json!(["admin"]));

    // client_secret_post, default scopes when none is asked for.
    let r = s
        .http
        .post(s.url("default", "/v1/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "svc-post"),
            ("client_secret", &secret("SVC_POST_SECRET")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "products:read");
    let claims = verify_with_jwks(
        body["access_token"].as_str().unwrap(),
        &jwks,
        &issuer,
        "api://default",
    );
    assert_eq!(claims["cid"], "svc-post");
    assert!(
        claims.get("user_roles").is_none(),
        "claim limited to scopes not granted"
    );
    assert!(
        claims.get("department_id").is_none(),
        "no profile attribute, no claim"
    );

    // The reader falls through to the lower-priority policy and its shorter lifetime.
    let (st, body) = s
        .token_basic("default", "svc-reader", &secret("SVC_READER_SECRET"), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(body["expires_in"], 900);

    // ES256 and EdDSA servers; several audiences become an array.
    let t = s.access_token("orders", Some("orders:create")).await;
    let c = verify_with_jwks(
        &t,
        &s.jwks("orders").await,
        &s.issuer("orders"),
        "api://orders-v2",
    );
    assert_eq!(c["aud"], serde_json::json!(["api://orders", "api://orders-v2"]));
    assert_eq!(
        jsonwebtoken::decode_header(&t).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
    let t = s.access_token("edge", None).await;
    verify_with_jwks(&t, &s.jwks("edge").await, &s.issuer("edge"), "api://edge");
    assert_eq!(
        jsonwebtoken::decode_header(&t).unwrap().alg,
        jsonwebtoken::Algorithm::EdDSA
    );
    s.stop().await;
}
both_dbs!(client_credentials_with_each_auth_method);

async fn expect_error(resp: reqwest::Response, status: u16, error: &str) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()));
    body
}

async fn token_errors(db: Db) {
    let (_env, s) = start(db).await;
    let url = s.url("default", "/v1/token");
    let cc = [("grant_type", "client_credentials")];

    // Wrong secret: 401 invalid_client with a Basic challenge.
    let r = s
        .http
        .post(&url)
        .basic_auth("svc-basic", Some("wrong-secret"))
        .form(&cc)
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    expect_error(r, 401, "invalid_client").await;
    // Unknown client: the same answer (no enumeration).
    let r = s
        .http
        .post(&url)
        .basic_auth("nobody", Some("whatever"))
        .form(&cc)
        .send()
        .await
        .unwrap();
    let unknown = expect_error(r, 401, "invalid_client").await;
    let r = s
        .http
        .post(&url)
        .basic_auth("svc-basic", Some("wrong-secret"))
        .form(&cc)
        .send()
        .await
        .unwrap();
    let wrong = expect_error(r, 401, "invalid_client").await;
    assert_eq!(unknown, wrong);
    // Secret over post: no Basic challenge.
    let r = s
        .http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "svc-post"),
            ("client_secret", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("www-authenticate").is_none());
    expect_error(r, 401, "invalid_client").await;
    // Inactive client.
    let r = s
        .http
        .post(&url)
        .basic_auth("svc-inactive", Some(secret("SVC_INACTIVE_SECRET")))
        .form(&cc)
        .send()
        .await
        .unwrap();
    let b = expect_error(r, 401, "invalid_client").await;
    assert!(b["error_description"].as_str().unwrap().contains("not active"));
    // Registered for client_secret_post but used Basic.
    let r = s
        .http
        .post(&url)
        .basic_auth("svc-post", Some(secret("SVC_POST_SECRET")))
        .form(&cc)
        .send()
        .await
        .unwrap();
    let b = expect_error(r, 401, "invalid_client").await;
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("client_secret_post")
    );
    // Two authentication methods at once.
    let r = s
        .http
        .post(&url)
        .basic_auth("svc-basic", Some(secret("SVC_BASIC_SECRET")))
        .form(&[("grant_type", "client_credentials"), ("client_secret", "x")])
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "invalid_request").await;
    // No authentication at all.
    let r = s.http.post(&url).form(&cc).send().await.unwrap();
    expect_error(r, 401, "invalid_client").await;

    let basic = |form: Vec<(&'static str, &'static str)>| {
        s.http
            .post(&url)
            .basic_auth("svc-basic", Some(secret("SVC_BASIC_SECRET")))
            .form(&form)
            .send()
    };
    // Unsupported grant types.
    let r = basic(vec![
        ("grant_type", "password"),
        ("username", "a"),
        ("password", "b"),
    ])
    .await
    .unwrap();
    expect_error(r, 400, "unsupported_grant_type").await;
    let r = basic(vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", "x"),
    ])
    .await
    .unwrap();
    expect_error(r, 400, "unsupported_grant_type").await;
    // A grant the server supports but this (machine) client may not use.
    let r = basic(vec![("grant_type", "authorization_code"), ("code", "x")])
        .await
        .unwrap();
    expect_error(r, 400, "unauthorized_client").await;
    // Missing grant_type.
    let r = basic(vec![("scope", "products:read")]).await.unwrap();
    expect_error(r, 400, "invalid_request").await;
    // A scope the server does not define, and an OIDC scope.
    let r = basic(vec![
        ("grant_type", "client_credentials"),
        ("scope", "products:delete"),
    ])
    .await
    .unwrap();
    let b = expect_error(r, 400, "invalid_scope").await;
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("products:delete")
    );
    let r = basic(vec![("grant_type", "client_credentials"), ("scope", "openid")])
        .await
        .unwrap();
    expect_error(r, 400, "invalid_scope").await;
    // A scope the matching rule does not allow.
    let r = s
        .http
        .post(&url)
        .basic_auth("svc-reader", Some(secret("SVC_READER_SECRET")))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "products:read admin:full"),
        ])
        .send()
        .await
        .unwrap();
    let b = expect_error(r, 400, "invalid_scope").await;
    assert!(b["error_description"].as_str().unwrap().contains("admin:full"));
    // No policy covers this client on the orders server.
    let r = s
        .http
        .post(s.url("orders", "/v1/token"))
        .basic_auth("svc-reader", Some(secret("SVC_READER_SECRET")))
        .form(&[("grant_type", "client_credentials"), ("scope", "orders:create")])
        .send()
        .await
        .unwrap();
    let b = expect_error(r, 400, "access_denied").await;
    assert!(
        b["error_description"]
            .as_str()
            .unwrap()
            .contains("Policy evaluation failed")
    );
    // A client not allowed the grant.
    let r = s
        .http
        .post(&url)
        .basic_auth("web-app", Some(secret("WEB_APP_SECRET")))
        .form(&cc)
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "unauthorized_client").await;
    s.stop().await;
}
both_dbs!(token_errors);

/// RFC 6749 §2.3.1: id and secret are form-encoded inside Basic. Clients that encode and
/// clients that send the secret raw (curl -u, most libraries) both get in.
async fn basic_credentials_are_form_decoded(db: Db) {
    use base64::Engine;
    let (_env, s) = start(db).await;
    let raw = secret("SVC_SPECIAL_SECRET");
    let encoded: String = url::form_urlencoded::byte_serialize(raw.as_bytes()).collect();
    assert_ne!(encoded, raw);
    for (label, user_pass) in [
        ("raw", format!("svc-special:{raw}")),
        ("encoded", format!("svc-special:{encoded}")),
    ] {
        for b64 in [
            base64::engine::general_purpose::STANDARD.encode(&user_pass),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&user_pass),
        ] {
            let r = s
                .http
                .post(s.url("default", "/v1/token"))
                .header("authorization", format!("Basic {b64}"))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{label} secret");
        }
    }
    // A near miss is still refused.
    let (st, _) = s
        .token_basic("default", "svc-special", &raw.replace('+', " "), None)
        .await;
    assert_eq!(st, 401);
    s.stop().await;
}
both_dbs!(basic_credentials_are_form_decoded);

/// Nothing before a proven secret tells whether a client id exists, is public or is active.
async fn no_client_enumeration(db: Db) {
    let (_env, s) = start(db).await;
    let url = s.url("default", "/v1/token");
    let mut answers = Vec::new();
    for id in ["svc-basic", "svc-inactive", "spa-app", "no-such-client"] {
        // No secret at all (client_id only), and a wrong secret over post.
        for form in [
            vec![("grant_type", "client_credentials"), ("client_id", id)],
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", "wrong"),
            ],
        ] {
            let r = s.http.post(&url).form(&form).send().await.unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            if id == "spa-app" && form.len() == 2 {
                // A public client needs no secret: it authenticates, and is refused the grant.
                assert_eq!(
                    (status, body["error"].as_str()),
                    (400, Some("unauthorized_client"))
                );
                continue;
            }
            answers.push((status, body));
        }
    }
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:#?}");
    assert_eq!(answers[0].0, 401);
    s.stop().await;
}
both_dbs!(no_client_enumeration);
