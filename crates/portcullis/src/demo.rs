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
pub const DEMO_SPA_CLIENT: &str = "demo-spa";
/// The demo users, the environment variable the demo org reads each one's password from,
/// and their groups.
pub const DEMO_USERS: &[(&str, &str, &[&str])] = &[
    ("alice@example.com", "DEMO_ALICE_PASSWORD", &["admin"]),
    ("bob@example.com", "DEMO_BOB_PASSWORD", &[]),
    ("olivia@example.com", "DEMO_OLIVIA_PASSWORD", &["sysadmin"]),
];
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
    /// The demo single-page app (public client, PKCE), served by the gateway.
    #[serde(default)]
    pub spa_client: Option<SpaClient>,
    /// The demo users and their passwords (generated per data dir).
    #[serde(default)]
    pub users: Vec<DemoUser>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpaClient {
    pub client_id: String,
    pub redirect_uri: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoUser {
    pub login: String,
    pub password: String,
    pub groups: Vec<String>,
}

impl DemoInfo {
    /// A demo client by id.
    pub fn client(&self, client_id: &str) -> Option<&DemoClient> {
        std::iter::once(&self.service_client)
            .chain(self.sysadmin_client.as_ref())
            .find(|c| c.client_id == client_id)
    }
}

/// The demo clients' credentials and the demo users' passwords, once the demo org is in place.
pub struct DemoClients {
    pub service: DemoClient,
    pub sysadmin: DemoClient,
    pub users: Vec<DemoUser>,
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
    // Passwords of the demo users: the ones demo.json knows, new ones for the others.
    let mut passwords: HashMap<String, String> = HashMap::new();
    for (login, var, _) in DEMO_USERS {
        let known = previous
            .as_ref()
            .and_then(|p| p.users.iter().find(|u| u.login == *login))
            .map(|u| u.password.clone());
        passwords.insert((*var).to_owned(), known.unwrap_or_else(demo_password));
    }
    let users_missing = store.list_users(DEFAULT_ORG_ID).await?.len() < DEMO_USERS.len();
    if users_missing
        || [DEMO_SERVICE_CLIENT, DEMO_SYSADMIN_CLIENT, DEMO_SPA_CLIENT]
            .iter()
            .any(|id| !content.clients.iter().any(|c| c.client.client_id == *id))
    {
        let doc = orgfile::parse(DEMO_ORG)
            .map_err(|e| CliError::new(format!("built-in demo org is invalid: {e:?}")))?;
        let plan = orgfile::plan(store, &hasher, DEFAULT_ORG_ID, &doc, &passwords, false).await?;
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
    let mut users = Vec::new();
    let policy = store.sign_in_settings(DEFAULT_ORG_ID).await?;
    for (login, var, groups) in DEMO_USERS {
        let password = passwords.remove(*var).unwrap_or_else(demo_password);
        if let Some(creds) = store.user_by_login(DEFAULT_ORG_ID, login).await? {
            let matches = creds
                .password_hash
                .as_deref()
                .is_some_and(|h| portcullis_idp::people::password::verify(&password, h));
            if !matches {
                // demo.json is gone or stale: the old password cannot be recovered.
                let hash = portcullis_idp::people::password::hash(&password);
                store
                    .set_password(
                        DEFAULT_ORG_ID,
                        &creds.user.id,
                        &hash,
                        policy.password_history,
                        clock::now(),
                    )
                    .await?;
                tracing::warn!(
                    user = login,
                    "demo.json was missing or stale: the demo user got a new password"
                );
            }
        }
        users.push(DemoUser {
            login: (*login).into(),
            password,
            groups: groups.iter().map(|g| (*g).into()).collect(),
        });
    }
    Ok(DemoClients {
        service,
        sysadmin,
        users,
    })
}

/// A demo password: easy to type, 72 random bits, never on a breach list.
fn demo_password() -> String {
    let r = portcullis_core::ids::random_base62(12);
    format!("demo-{}-{}", &r[..6], &r[6..])
}

/// Points the demo app's redirect URIs at where the gateway serves it (`{gateway}/app/`),
/// so the sandbox works on any port.
pub async fn register_spa(store: &Store, gateway_url: &str) -> Result<SpaClient, CliError> {
    let redirect_uri = format!("{gateway_url}/app/");
    let content = store.load_org(DEFAULT_ORG_ID).await?;
    if let Some(c) = content
        .clients
        .iter()
        .find(|c| c.client.client_id == DEMO_SPA_CLIENT)
        && c.client.redirect_uris != [redirect_uri.clone()]
    {
        let mut client = c.client.clone();
        client.redirect_uris = vec![redirect_uri.clone()];
        client.post_logout_redirect_uris = vec![redirect_uri.clone()];
        store
            .put_client(DEFAULT_ORG_ID, &client, SecretUpdate::Keep, clock::now())
            .await?;
    }
    Ok(SpaClient {
        client_id: DEMO_SPA_CLIENT.into(),
        redirect_uri,
    })
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
  - name: demo-app
    path: /app/{{rest...}}
    methods: [GET]
    upstream: catalog
    auth: none
  - name: demo-app-root
    path: /app
    methods: [GET]
    upstream: catalog
    auth: none
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
