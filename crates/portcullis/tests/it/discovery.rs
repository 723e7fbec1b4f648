use crate::both_dbs;
use crate::kit::{Db, start};

async fn discovery_documents(db: Db) {
    let (_env, s) = start(db).await;
    for (server, path) in [
        ("default", "/.well-known/openid-configuration"),
        ("default", "/.well-known/oauth-authorization-server"),
        ("orders", "/.well-known/openid-configuration"),
    ] {
        let r = s.http.get(s.url(server, path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age=")
        );
        let d: serde_json::Value = r.json().await.unwrap();
        let issuer = s.issuer(server);
        assert!(!issuer.ends_with('/'));
        assert_eq!(d["issuer"], issuer.as_str());
        assert_eq!(d["token_endpoint"], format!("{issuer}/v1/token"));
        assert_eq!(d["jwks_uri"], format!("{issuer}/v1/keys"));
        assert_eq!(d["introspection_endpoint"], format!("{issuer}/v1/introspect"));
        assert_eq!(d["revocation_endpoint"], format!("{issuer}/v1/revoke"));
        assert_eq!(d["authorization_endpoint"], format!("{issuer}/v1/authorize"));
        assert!(
            d["grant_types_supported"]
                .as_array()
                .unwrap()
                .contains(&"client_credentials".into())
        );
        let methods = d["token_endpoint_auth_methods_supported"].as_array().unwrap();
        assert!(
            methods.contains(&"client_secret_basic".into()) && methods.contains(&"client_secret_post".into())
        );
        assert_eq!(d["subject_types_supported"], serde_json::json!(["public"]));
    }
    let d: serde_json::Value = s
        .http
        .get(s.url("default", "/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        d["scopes_supported"],
        serde_json::json!([
            "openid",
            "profile",
            "email",
            "address",
            "phone",
            "offline_access",
            "products:read",
            "products:write",
            "orders:create",
            "admin:full"
        ])
    );
    for (field, url) in [
        ("authorization_endpoint", "/v1/authorize"),
        ("userinfo_endpoint", "/v1/userinfo"),
        ("end_session_endpoint", "/v1/logout"),
    ] {
        assert_eq!(d[field], format!("{}{url}", s.issuer("default")));
    }
    assert_eq!(d["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        d["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );

    // JWKS: the active and the next key, public parts only, cacheable.
    let r = s.http.get(s.url("default", "/v1/keys")).send().await.unwrap();
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("max-age=900")
    );
    let jwks: serde_json::Value = r.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for k in keys {
        assert_eq!(k["kty"], "RSA");
        assert_eq!(k["alg"], "RS256");
        assert_eq!(k["use"], "sig");
        assert!(k.get("d").is_none() && k.get("p").is_none(), "no private members");
    }
    let ec: serde_json::Value = s
        .http
        .get(s.url("orders", "/v1/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ec["keys"][0]["crv"], "P-256");

    // Unknown server: Okta's 404 body.
    let r = s.http.get(s.url("nope", "/v1/keys")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["errorCode"], "E0000007");
    assert!(b["errorSummary"].as_str().unwrap().contains("nope"));
    s.stop().await;
}
both_dbs!(discovery_documents);
