//! Declarative org files: idempotent apply, a diff for dry runs, export round trips, and
//! validation errors that name the line and the field.

use portcullis::runtime::open_store;
use portcullis_idp::orgfile::{self, ApplyError};
use portcullis_jose::SecretHasher;

use crate::both_dbs;
use crate::kit::{Db, Env, ORG, secrets};

async fn apply_is_idempotent_and_exports_round_trip(db: Db) {
    let env = Env::new(db).await;
    env.apply(ORG).await;
    let store = open_store(&env.database_url).await.unwrap();
    let hasher = SecretHasher::new(&env.master);
    let doc = orgfile::parse(ORG).unwrap();
    let plan = orgfile::plan(&store, &hasher, "default", &doc, &secrets(), false)
        .await
        .unwrap();
    assert!(
        plan.is_empty(),
        "second apply changes nothing:\n{}",
        plan.render()
    );

    // Export, parse back, plan: nothing to do (secrets stay referenced by env var).
    let exported = orgfile::export(&store, "default").await.unwrap();
    assert!(!exported.contains("secret-0123"), "no secret in exports");
    assert!(exported.contains("secretEnv: SVC_BASIC_SECRET"));
    let doc2 = orgfile::parse(&exported)
        .unwrap_or_else(|e| panic!("export is not a valid org file: {e:?}\n{exported}"));
    let by_id = |d: &orgfile::OrgDocument| {
        let mut v = d.authorization_servers.clone();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    };
    assert_eq!(by_id(&doc2), by_id(&doc));
    let plan = orgfile::plan(&store, &hasher, "default", &doc2, &secrets(), false)
        .await
        .unwrap();
    assert!(plan.is_empty(), "{}", plan.render());

    // A change shows as a field-level diff; a changed secret shows without its value.
    let changed = ORG.replacen(
        "      - name: products:write\n",
        "      - name: products:write\n        description: Change products\n",
        1,
    );
    let doc3 = orgfile::parse(&changed).unwrap();
    let mut env_secrets = secrets();
    env_secrets.insert("SVC_POST_SECRET".into(), "a-brand-new-secret-for-post".into());
    let plan = orgfile::plan(&store, &hasher, "default", &doc3, &env_secrets, false)
        .await
        .unwrap();
    let text = plan.render();
    assert!(text.contains("~ authorizationServer default"), "{text}");
    assert!(text.contains("scopes.products:write.description"), "{text}");
    assert!(
        text.contains("~ client svc-post") && text.contains("secret: changed"),
        "{text}"
    );
    assert!(!text.contains("a-brand-new-secret"), "{text}");
    assert!(
        text.contains("Plan: 0 to create, 2 to update, 0 to delete."),
        "{text}"
    );

    // Prune deletes what the file no longer declares.
    let only_default = "version: 1\nauthorizationServers: []\nclients: []\n";
    let plan = orgfile::plan(
        &store,
        &hasher,
        "default",
        &orgfile::parse(only_default).unwrap(),
        &secrets(),
        true,
    )
    .await
    .unwrap();
    assert!(plan.render().contains("- authorizationServer orders"));
    assert!(plan.render().contains("- client svc-basic"));
    store.close().await;
}
both_dbs!(apply_is_idempotent_and_exports_round_trip);

#[test]
fn validation_errors_name_line_and_field() {
    // An unknown field: the parser names it and its line.
    let e = orgfile::parse("version: 1\nclients:\n  - clientId: a\n    nmae: x\n").unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].line, Some(4), "{e:?}");
    assert!(e[0].to_string().contains("nmae"), "{}", e[0]);

    // Semantic errors: all reported at once, each with its line and path.
    let bad = r#"version: 1
authorizationServers:
  - id: default
    name: default
    audiences: [api://default]
    scopes:
      - name: a
    claims:
      - name: sub
        value: app.profile.x
      - name: dept
        value: "app.("
    policies:
      - name: p
        priority: 1
        rules:
          - name: r
            priority: 1
            grantTypes: [client_credentials]
            scopes: [a, nope]
            accessTokenLifetimeMinutes: 100000
clients:
  - clientId: spa
    name: spa
    type: spa
    grantTypes: [client_credentials]
    tokenEndpointAuthMethod: client_secret_basic
"#;
    let errs = orgfile::parse(bad).unwrap_err();
    let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    let find = |needle: &str| {
        errs.iter()
            .find(|e| e.to_string().contains(needle))
            .unwrap_or_else(|| panic!("no error about {needle}: {text:#?}"))
    };
    assert_eq!(find("reserved claim").line, Some(9));
    assert_eq!(find("does not parse").line, Some(11));
    assert_eq!(find("'nope' is not defined").line, Some(17));
    assert_eq!(find("out of range").line, Some(17));
    assert!(
        find("out of range")
            .path
            .ends_with("rules[0].accessTokenLifetimeMinutes")
    );
    assert_eq!(find("public: use none").line, Some(23));
    assert_eq!(find("cannot use client_credentials").line, Some(23));
}

#[tokio::test]
async fn apply_refuses_unknown_clients_and_missing_secrets() {
    let env = Env::new(Db::Sqlite).await;
    let store = open_store(&env.database_url).await.unwrap();
    let hasher = SecretHasher::new(&env.master);
    let doc = orgfile::parse(ORG).unwrap();
    let mut partial = secrets();
    partial.remove("SVC_POST_SECRET");
    match orgfile::plan(&store, &hasher, "default", &doc, &partial, false).await {
        Err(ApplyError::Invalid(e)) => {
            assert!(e[0].to_string().contains("SVC_POST_SECRET is not set"), "{e:?}")
        }
        other => panic!("expected a missing secret error, got {other:?}"),
    }
    let dangling = ORG.replace("clients: [svc-basic, svc-post]", "clients: [svc-basic, ghost]");
    match orgfile::plan(
        &store,
        &hasher,
        "default",
        &orgfile::parse(&dangling).unwrap(),
        &secrets(),
        false,
    )
    .await
    {
        Err(ApplyError::Invalid(e)) => assert!(e[0].to_string().contains("no client 'ghost'"), "{e:?}"),
        other => panic!("expected a dangling client error, got {other:?}"),
    }
    store.close().await;
}

/// `--prune` really deletes; a change of algorithm publishes the new key before it signs.
async fn prune_and_algorithm_change(db: Db) {
    use std::time::Duration;

    use crate::kit::eventually;
    let env = Env::new(db).await;
    env.apply(ORG).await;
    let s = env.start().await;
    let edge_token = s.access_token("edge", None).await;

    // Switch `default` to ES256: a NEXT ES256 key is published, tokens stay RS256 for now.
    let es = ORG.replacen(
        "    audiences: [api://default]\n",
        "    audiences: [api://default]\n    signingAlg: ES256\n",
        1,
    );
    env.apply(&es).await;
    eventually("the ES256 key is published", Duration::from_secs(10), || async {
        s.jwks("default")
            .await
            .keys
            .iter()
            .any(|k| k.common.key_algorithm == Some(jsonwebtoken::jwk::KeyAlgorithm::ES256))
    })
    .await;
    let t = s.access_token("default", None).await;
    assert_eq!(
        jsonwebtoken::decode_header(&t).unwrap().alg,
        jsonwebtoken::Algorithm::RS256
    );
    // Once it has been published for the JWKS max-age (0 here), the server switches.
    let store = open_store(&env.database_url).await.unwrap();
    portcullis_idp::keys::ensure_keys(&store, &env.master, "default", portcullis_idp::clock::now(), 0)
        .await
        .unwrap();
    eventually(
        "tokens are signed with ES256",
        Duration::from_secs(10),
        || async {
            let t = s.access_token("default", None).await;
            jsonwebtoken::decode_header(&t).unwrap().alg == jsonwebtoken::Algorithm::ES256
        },
    )
    .await;
    // The RS256 tokens signed before still verify: the old key stays published.
    assert_eq!(s.introspect("default", &t).await["active"], true);

    // Prune: only the default server and the two clients it needs stay.
    let hasher = SecretHasher::new(&env.master);
    let mut only: orgfile::OrgDocument = orgfile::parse(&es).unwrap();
    only.authorization_servers.retain(|s| s.id == "default");
    only.clients
        .retain(|c| c.client_id == "svc-basic" || c.client_id == "svc-post" || c.client_id == "svc-reader");
    let plan = orgfile::plan(&store, &hasher, "default", &only, &secrets(), true)
        .await
        .unwrap();
    orgfile::apply(
        &store,
        &env.master,
        "default",
        plan,
        portcullis_idp::clock::now(),
        900,
    )
    .await
    .unwrap();
    eventually("the pruned server is gone", Duration::from_secs(10), || async {
        s.http
            .get(s.url("edge", "/v1/keys"))
            .send()
            .await
            .unwrap()
            .status()
            == 404
    })
    .await;
    let (st, body) = s
        .token_basic("default", "web-app", &crate::kit::secret("WEB_APP_SECRET"), None)
        .await;
    assert_eq!((st, body["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(s.introspect("default", &edge_token).await["active"], false);
    let content = store.load_org("default").await.unwrap();
    assert_eq!(content.servers.len(), 1);
    assert!(
        store
            .signing_keys("default")
            .await
            .unwrap()
            .iter()
            .all(|k| k.server_id == "default")
    );
    store.close().await;
    s.stop().await;
}
both_dbs!(prune_and_algorithm_change);
