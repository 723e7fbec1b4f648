//! The sandbox `portcullis up` runs: a demo org applied once on a new data dir, and
//! `<data-dir>/demo.json` so scripts can drive it. Restarting keeps everything; the demo
//! client's secret is only known through `demo.json` (the store keeps its hash).

use std::collections::HashMap;
use std::path::Path;

use portcullis_idp::orgfile;
use portcullis_idp::{DEFAULT_ORG_ID, clock};
use portcullis_jose::{MasterKey, SecretHasher};
use portcullis_store::{SecretUpdate, Store};
use serde::{Deserialize, Serialize};

use crate::CliError;

pub const DEMO_ORG: &str = include_str!("demo-org.yaml");
pub const DEMO_SERVICE_CLIENT: &str = "demo-service";
pub const DEMO_SERVER: &str = "default";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoClient {
    pub client_id: String,
    pub client_secret: String,
}

/// `<data-dir>/demo.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoInfo {
    pub org_url: String,
    pub issuer: String,
    pub audience: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub service_client: DemoClient,
}

/// Applies the demo org on a new data dir (or when the demo client is missing) and returns
/// the demo client's secret.
pub async fn ensure_demo_org(
    store: &Store,
    master: &MasterKey,
    data_dir: &Path,
) -> Result<DemoClient, CliError> {
    let hasher = SecretHasher::new(master);
    let content = store.load_org(DEFAULT_ORG_ID).await?;
    let existing = content
        .clients
        .iter()
        .find(|c| c.client.client_id == DEMO_SERVICE_CLIENT);
    let previous: Option<DemoInfo> = std::fs::read(data_dir.join("demo.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());

    if let Some(stored) = existing {
        if let Some(p) = previous.filter(|p| {
            stored
                .secret_hash
                .as_deref()
                .is_some_and(|h| hasher.verify(&p.service_client.client_secret, h))
        }) {
            return Ok(p.service_client);
        }
        // demo.json is gone or stale: the secret cannot be recovered from its hash, so the
        // demo client gets a new one.
        let secret = SecretHasher::generate_secret();
        store
            .put_client(
                DEFAULT_ORG_ID,
                &stored.client,
                SecretUpdate::Set(hasher.hash(&secret)),
                clock::now(),
            )
            .await?;
        tracing::warn!("demo.json was missing or stale: the demo client got a new secret");
        return Ok(DemoClient {
            client_id: DEMO_SERVICE_CLIENT.into(),
            client_secret: secret,
        });
    }

    let doc = orgfile::parse(DEMO_ORG)
        .map_err(|e| CliError::new(format!("built-in demo org is invalid: {e:?}")))?;
    let plan = orgfile::plan(
        store,
        &hasher,
        DEFAULT_ORG_ID,
        &doc,
        &HashMap::<String, String>::new(),
        false,
    )
    .await?;
    let applied = orgfile::apply(store, master, DEFAULT_ORG_ID, plan, clock::now(), 900).await?;
    let secret = applied
        .generated_secrets
        .into_iter()
        .find(|(id, _)| id == DEMO_SERVICE_CLIENT)
        .map(|(_, s)| s)
        .ok_or_else(|| CliError::new("the demo client was not created"))?;
    Ok(DemoClient {
        client_id: DEMO_SERVICE_CLIENT.into(),
        client_secret: secret,
    })
}

/// Writes `demo.json` (mode 0600: it holds the demo client's secret).
pub fn write_demo_json(data_dir: &Path, info: &DemoInfo) -> Result<(), CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("demo.json");
    let tmp = data_dir.join("demo.json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", tmp.display())))?;
    let body = serde_json::to_vec_pretty(info).unwrap_or_default();
    f.write_all(&body)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
    Ok(())
}

/// Reads `demo.json`, for `portcullis token`.
pub fn read_demo_json(data_dir: &Path) -> Result<DemoInfo, CliError> {
    let path = data_dir.join("demo.json");
    let bytes = std::fs::read(&path).map_err(|e| {
        CliError::new(format!("cannot read {}: {e}", path.display()))
            .hint("start the sandbox with `portcullis up`, or pass --issuer, --client-id and --client-secret")
    })?;
    serde_json::from_slice(&bytes).map_err(|e| CliError::new(format!("{} is not valid: {e}", path.display())))
}
