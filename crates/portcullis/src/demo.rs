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
pub const DEMO_SYSADMIN_CLIENT: &str = "demo-sysadmin";
pub const DEMO_SERVER: &str = "default";
pub const DEMO_AUDIENCE: &str = "api://default";

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
    /// The gateway in front of the demo catalog API.
    #[serde(default)]
    pub gateway_url: Option<String>,
    /// In sales, with the admin role.
    pub service_client: DemoClient,
    /// In IT, with the sysadmin role.
    #[serde(default)]
    pub sysadmin_client: Option<DemoClient>,
}

impl DemoInfo {
    /// A demo client by id.
    pub fn client(&self, client_id: &str) -> Option<&DemoClient> {
        std::iter::once(&self.service_client)
            .chain(self.sysadmin_client.as_ref())
            .find(|c| c.client_id == client_id)
    }
}

/// The demo clients' credentials, once the demo org is in place.
pub struct DemoClients {
    pub service: DemoClient,
    pub sysadmin: DemoClient,
}

/// Applies the demo org on a new data dir (or when a demo client is missing) and returns
/// the demo clients' secrets: the ones `demo.json` holds while they still match, new ones
/// otherwise (the store keeps only hashes).
pub async fn ensure_demo_org(
    store: &Store,
    master: &MasterKey,
    data_dir: &Path,
) -> Result<DemoClients, CliError> {
    let hasher = SecretHasher::new(master);
    let ids = [DEMO_SERVICE_CLIENT, DEMO_SYSADMIN_CLIENT];
    let previous: Option<DemoInfo> = std::fs::read(data_dir.join("demo.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let mut generated: HashMap<String, String> = HashMap::new();
    let content = store.load_org(DEFAULT_ORG_ID).await?;
    if ids
        .iter()
        .any(|id| !content.clients.iter().any(|c| c.client.client_id == *id))
    {
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
        generated.extend(applied.generated_secrets);
    }
    let content = store.load_org(DEFAULT_ORG_ID).await?;
    let mut secrets = Vec::new();
    for id in ids {
        if let Some(s) = generated.remove(id) {
            secrets.push(DemoClient {
                client_id: id.into(),
                client_secret: s,
            });
            continue;
        }
        let stored = content
            .clients
            .iter()
            .find(|c| c.client.client_id == id)
            .ok_or_else(|| CliError::new(format!("the demo client {id} was not created")))?;
        let known = previous.as_ref().and_then(|p| p.client(id)).filter(|p| {
            stored
                .secret_hash
                .as_deref()
                .is_some_and(|h| hasher.verify(&p.client_secret, h))
        });
        if let Some(k) = known {
            secrets.push(k.clone());
            continue;
        }
        // demo.json is gone or stale: the secret cannot be recovered from its hash, so the
        // client gets a new one.
        let secret = SecretHasher::generate_secret();
        store
            .put_client(
                DEFAULT_ORG_ID,
                &stored.client,
                SecretUpdate::Set(hasher.hash(&secret)),
                clock::now(),
            )
            .await?;
        tracing::warn!(
            client = id,
            "demo.json was missing or stale: the demo client got a new secret"
        );
        secrets.push(DemoClient {
            client_id: id.into(),
            client_secret: secret,
        });
    }
    let sysadmin = secrets.pop().expect("two demo clients");
    let service = secrets.pop().expect("two demo clients");
    Ok(DemoClients { service, sysadmin })
}

/// The demo gateway file: the article's policy table (4.3) in front of the demo catalog
/// API at `backend`, trusting `issuer`.
pub fn gateway_file(listen: std::net::SocketAddr, issuer: &str, backend: std::net::SocketAddr) -> String {
    let forward = crate::demo_backend::CALLER_HEADERS
        .iter()
        .map(|(h, c)| format!("{h}: {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"# The gateway `portcullis up` runs: the policy table of the article's section 4.3 in
# front of the demo catalog API. Written anew at every start of `up`; copy it to run your
# own with `portcullis gateway --config FILE`.
version: 1
listeners: ["{listen}"]
realm: portcullis-demo
issuers:
  - issuer: {issuer}
    audiences: [{DEMO_AUDIENCE}]
    requireTyp: at+jwt
upstreams:
  - name: catalog
    targets: [http://{backend}]
routes:
  - name: health
    path: /api/v1/health
    methods: [GET]
    upstream: catalog
    auth: none
  - name: list-products
    path: /api/v1/products
    methods: [GET]
    upstream: catalog
    scopes: {{allOf: [products:read]}}
    forwardClaims: {{{forward}}}
  - name: get-product
    path: /api/v1/products/{{id}}
    methods: [GET]
    upstream: catalog
    scopes: {{allOf: [products:read]}}
    forwardClaims: {{{forward}}}
  - name: update-product
    path: /api/v1/products/{{id}}
    methods: [PUT]
    upstream: catalog
    scopes: {{allOf: [products:write]}}
    conditions:
      - expr: '"admin" in claims.user_roles'
        message: user_roles must include admin
    forwardClaims: {{{forward}}}
  - name: create-order
    path: /api/v1/orders
    methods: [POST]
    upstream: catalog
    scopes: {{allOf: [orders:create]}}
    conditions:
      - expr: 'claims.department_id == "sales"'
        message: department_id must be sales
    forwardClaims: {{{forward}}}
  - name: delete-admin-users
    path: /api/v1/admin/users
    methods: [DELETE]
    upstream: catalog
    scopes: {{allOf: [admin:full]}}
    conditions:
      - expr: '"sysadmin" in claims.user_roles'
        message: user_roles must include sysadmin
    forwardClaims: {{{forward}}}
"#
    )
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
