//! Test kit: starts the real identity provider on an ephemeral port over SQLite (a fresh
//! data dir) or PostgreSQL (a fresh schema in the `test` database), with the test org
//! applied, and hands back an HTTP client.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use portcullis::config::{Config, sqlite_url};
use portcullis::runtime::{IdpHandle, open_store, start_idp};
use portcullis_idp::orgfile;
use portcullis_idp::{DEFAULT_ORG_ID, clock};
use portcullis_jose::{MasterKey, SecretHasher};
use sqlx::Connection;

pub const ORG: &str = include_str!("org.yaml");
pub const PEOPLE: &str = include_str!("people.yaml");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub fn postgres_base() -> String {
    std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        portcullis_core::ids::random_base62(6).to_lowercase()
    )
}

pub fn temp_dir(prefix: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(prefix));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn secrets() -> HashMap<String, String> {
    [
        ("SVC_BASIC_SECRET", "basic-secret-0123456789abcdef"),
        ("SVC_POST_SECRET", "post-secret-0123456789abcdef"),
        ("SVC_READER_SECRET", "reader-secret-0123456789abcdef"),
        ("SVC_INACTIVE_SECRET", "inactive-secret-0123456789abcdef"),
        ("WEB_APP_SECRET", "webapp-secret-0123456789abcdef"),
        ("SVC_SPECIAL_SECRET", "sp+ec%20ial&se:cret/0123456789="),
        ("ALICE_PASSWORD", "correct-horse-staple-7"),
        ("BOB_PASSWORD", "battery-staple-river-42"),
        ("CAROL_PASSWORD", "tangerine-orbit-cello-9"),
        ("MALLORY_PASSWORD", "quartz-lantern-meadow-3"),
        ("DEMO_ALICE_PASSWORD", "demo-password-first-0"),
        ("DEMO_BOB_PASSWORD", "demo-password-second-0"),
        ("DEMO_OLIVIA_PASSWORD", "demo-password-third-0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub fn secret(var: &str) -> String {
    secrets()[var].clone()
}

/// Drops the schemas of test processes that have exited (`t_<pid>_...` whose pid is
/// gone), once per process, so the `test` database does not grow with every run.
async fn drop_dead_schemas(conn: &mut sqlx::PgConnection) {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 't\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name.split('_').nth(1).and_then(|p| p.parse::<u32>().ok());
        let dead = pid.is_some_and(|p| {
            p != std::process::id() && !std::path::Path::new(&format!("/proc/{p}")).exists()
        });
        if dead && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

/// Where a test server keeps its data, so that it can be restarted on the same data.
#[derive(Clone)]
pub struct Env {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub master: Arc<MasterKey>,
}

impl Env {
    pub async fn new(db: Db) -> Env {
        let data_dir = temp_dir("pc-it");
        let database_url = match db {
            Db::Sqlite => sqlite_url(&data_dir),
            Db::Postgres => {
                let schema = unique("t");
                let mut conn = sqlx::PgConnection::connect(&postgres_base())
                    .await
                    .expect("PostgreSQL must run on 127.0.0.1:5432 (database `test`, trust auth)");
                drop_dead_schemas(&mut conn).await;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let sep = if postgres_base().contains('?') { '&' } else { '?' };
                format!("{}{sep}options=-c%20search_path%3D{schema}", postgres_base())
            }
        };
        Env {
            data_dir,
            database_url,
            master: Arc::new(MasterKey::generate().0),
        }
    }

    pub fn config(&self) -> Config {
        Config {
            data_dir: self.data_dir.clone(),
            database_url: Some(self.database_url.clone()),
            ..Config::default()
        }
    }

    /// Applies an org file with the test secrets.
    pub async fn apply(&self, yaml: &str) {
        let store = open_store(&self.database_url).await.unwrap();
        let doc = orgfile::parse(yaml).unwrap_or_else(|e| panic!("test org invalid: {e:?}"));
        let hasher = SecretHasher::new(&self.master);
        let plan = orgfile::plan(&store, &hasher, DEFAULT_ORG_ID, &doc, &secrets(), false)
            .await
            .unwrap();
        orgfile::apply(&store, &self.master, DEFAULT_ORG_ID, plan, clock::now(), 900)
            .await
            .unwrap();
        store.close().await;
    }

    /// Applies an org file and returns the secrets generated for clients without `secretEnv`.
    pub async fn apply_generated(&self, yaml: &str) -> HashMap<String, String> {
        let store = open_store(&self.database_url).await.unwrap();
        let doc = orgfile::parse(yaml).unwrap_or_else(|e| panic!("org invalid: {e:?}"));
        let hasher = SecretHasher::new(&self.master);
        let plan = orgfile::plan(&store, &hasher, DEFAULT_ORG_ID, &doc, &secrets(), false)
            .await
            .unwrap();
        let applied = orgfile::apply(&store, &self.master, DEFAULT_ORG_ID, plan, clock::now(), 900)
            .await
            .unwrap();
        store.close().await;
        applied.generated_secrets.into_iter().collect()
    }

    pub async fn start(&self) -> Server {
        self.start_with_org_url(None).await
    }

    /// Starts a node whose org URL (and so issuers) is `org_url`, as nodes behind one load
    /// balancer share it.
    pub async fn start_with_org_url(&self, org_url: Option<String>) -> Server {
        let store = open_store(&self.database_url).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut cfg = self.config();
        cfg.idp.org_url = org_url;
        let handle = start_idp(&cfg, store, self.master.clone(), listener)
            .await
            .unwrap();
        Server {
            http: reqwest::Client::new(),
            base: format!("http://{}", handle.addr),
            handle,
        }
    }
}

pub struct Server {
    pub http: reqwest::Client,
    /// Where this node listens (requests go here; issuers use the org URL).
    pub base: String,
    pub handle: IdpHandle,
}

impl Server {
    pub fn issuer(&self, server: &str) -> String {
        self.handle.issuer(server)
    }

    pub fn url(&self, server: &str, path: &str) -> String {
        format!("{}/oauth2/{server}{path}", self.base)
    }

    /// POSTs a client_credentials request with Basic auth.
    pub async fn token_basic(
        &self,
        server: &str,
        id: &str,
        secret: &str,
        scope: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let r = self
            .http
            .post(self.url(server, "/v1/token"))
            .basic_auth(id, Some(secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn access_token(&self, server: &str, scope: Option<&str>) -> String {
        let (s, body) = self
            .token_basic(server, "svc-basic", &secret("SVC_BASIC_SECRET"), scope)
            .await;
        assert_eq!(s, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    pub async fn introspect(&self, server: &str, token: &str) -> serde_json::Value {
        let r = self
            .http
            .post(self.url(server, "/v1/introspect"))
            .basic_auth("svc-reader", Some(secret("SVC_READER_SECRET")))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn jwks(&self, server: &str) -> jsonwebtoken::jwk::JwkSet {
        self.http
            .get(self.url(server, "/v1/keys"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn stop(self) {
        self.handle.stop().await;
    }
}

/// A fresh environment with the test org applied and a server running.
pub async fn start(db: Db) -> (Env, Server) {
    let env = Env::new(db).await;
    env.apply(ORG).await;
    let server = env.start().await;
    (env, server)
}

/// Polls `check` until it returns true or the deadline passes.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Verifies a JWT with `jsonwebtoken` against a JWKS fetched over HTTP — an implementation
/// independent of the server's signing code.
pub fn verify_with_jwks(
    token: &str,
    jwks: &jsonwebtoken::jwk::JwkSet,
    issuer: &str,
    audience: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.expect("token carries a kid");
    let jwk = jwks
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} not in the JWKS"));
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub", "iat"]);
    jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &v)
        .unwrap_or_else(|e| panic!("token does not verify: {e}"))
        .claims
}

/// Defines `name_sqlite` and `name_postgres` tests that run `body(Db)`.
#[macro_export]
macro_rules! both_dbs {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::kit::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::kit::Db::Postgres).await
            }
        }
    };
}
