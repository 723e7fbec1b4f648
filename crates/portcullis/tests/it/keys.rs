use std::time::Duration;

use crate::both_dbs;
use crate::kit::{Db, eventually, secret, start, verify_with_jwks};

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// Rotation publishes the new key before it signs, switches signing, and keeps the old key
/// published so tokens it signed still verify; a restart keeps keys, clients and data.
async fn key_rotation_and_restart(db: Db) {
    let (env, s) = start(db).await;
    let issuer = s.issuer("default");
    let old_token = s.access_token("default", None).await;
    let before = s.jwks("default").await;
    let old_kid = kid(&old_token);
    let next_kid = before
        .keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .find(|k| *k != old_kid)
        .unwrap();

    // Rotate through the library, as `portcullis keys rotate` does, from "another process".
    let store = portcullis::runtime::open_store(&env.database_url).await.unwrap();
    let r = portcullis_idp::keys::rotate(
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
    assert_eq!(
        r.active_kid, next_kid,
        "the key published ahead of use is the one that now signs"
    );
    store.close().await;

    // The running node notices within its refresh interval.
    eventually(
        "new tokens signed with the next key",
        Duration::from_secs(10),
        || async { kid(&s.access_token("default", None).await) == next_kid },
    )
    .await;
    let after = s.jwks("default").await;
    let kids: Vec<String> = after
        .keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .collect();
    assert_eq!(kids.len(), 3, "active, next and the retired key: {kids:?}");
    assert_eq!(kids[0], next_kid, "the signing key is listed first");
    assert!(kids.contains(&old_kid));
    // Old and new tokens both verify against the published keys, and introspect active.
    verify_with_jwks(&old_token, &after, &issuer, "api://default");
    let new_token = s.access_token("default", None).await;
    verify_with_jwks(&new_token, &after, &issuer, "api://default");
    assert_eq!(s.introspect("default", &old_token).await["active"], true);

    // Restart on the same data: same keys, same clients, same revocations.
    let r = s
        .http
        .post(s.url("default", "/v1/revoke"))
        .basic_auth("svc-basic", Some(secret("SVC_BASIC_SECRET")))
        .form(&[("token", new_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let org_url = s.handle.org_url.clone();
    s.stop().await;
    let s = env.start_with_org_url(Some(org_url)).await;
    let again = s.jwks("default").await;
    assert_eq!(again, after);
    assert_eq!(s.introspect("default", &old_token).await["active"], true);
    assert_eq!(s.introspect("default", &new_token).await["active"], false);
    assert_eq!(kid(&s.access_token("default", None).await), next_kid);
    s.stop().await;
}
both_dbs!(key_rotation_and_restart);
