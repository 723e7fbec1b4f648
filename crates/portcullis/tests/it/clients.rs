//! Real client libraries against the real server: openid-client (discovery, client
//! credentials, introspection, revocation), jose (JWKS verification) and Okta's own
//! @okta/jwt-verifier, run by Node from tests/clients (installed by `npm ci` there).

use std::path::PathBuf;
use std::process::Command;

use crate::both_dbs;
use crate::kit::{Db, secret, start};

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients")
}

async fn real_client_libraries(db: Db) {
    let dir = clients_dir();
    assert!(
        dir.join("node_modules/openid-client").exists(),
        "the Node client libraries are missing: run `npm ci --prefix tests/clients` (scripts/test does)"
    );
    let (_env, s) = start(db).await;
    let issuer = s.issuer("default");
    // Off the runtime's workers: they serve the requests the probe makes.
    let secret = secret("SVC_BASIC_SECRET");
    let iss = issuer.clone();
    let probe = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(dir.join("probe.mjs"))
            .args([&iss, "svc-basic", &secret, "api://default"])
            .env("NODE_NO_WARNINGS", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success(),
        "probe failed:\n{out}\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or("")).unwrap();
    assert_eq!(report["discovered_issuer"], issuer.as_str());
    assert_eq!(report["jose_verified"]["cid"], "svc-basic");
    assert_eq!(report["jose_header"]["typ"], "at+jwt");
    assert_eq!(
        report["okta_verified"]["scp"],
        serde_json::json!(["products:read"])
    );
    assert_eq!(report["introspection_before"]["active"], true);
    assert_eq!(report["introspection_after"]["active"], false);
    s.stop().await;
}
both_dbs!(real_client_libraries);
