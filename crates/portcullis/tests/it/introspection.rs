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
