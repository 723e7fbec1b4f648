//! The Portcullis authorization server: Okta's custom authorization servers, served at
//! Okta's URLs (`/oauth2/{server}/...`).
//!
//! Owns the token endpoint (client authentication, a registry of grant handlers, token
//! minting), discovery, JWKS, introspection and revocation, the hosted sign-in (users,
//! passwords, second factors, sessions, consent), `/v1/authorize`, userinfo and logout, the in-memory view of the org
//! that those read, signing-key lifecycle, and declarative org files (`apply`/`export`).
//! It must never write to the database on the token-issuing path, never log a secret or
//! token, and never answer a client's mistake with a 5xx.

pub mod clock;
pub mod error;
pub mod grants;
pub mod http;
pub mod keys;
pub mod orgfile;
pub mod people;
pub mod token;
pub mod view;

use std::sync::Arc;

use portcullis_jose::{MasterKey, SecretHasher};
use portcullis_store::Store;

/// The one org this process serves until custom domains arrive.
pub const DEFAULT_ORG_ID: &str = "default";

/// Settings of the identity provider that do not live in the org's content.
#[derive(Debug, Clone)]
pub struct IdpSettings {
    /// The org URL, e.g. `https://login.example.com` (no trailing slash). Issuers are
    /// `{org_url}/oauth2/{server}`.
    pub org_url: String,
    /// `Cache-Control: max-age` of the JWKS, seconds.
    pub jwks_max_age_secs: u64,
    /// How often each node checks whether the org changed (new keys, clients, policies).
    pub refresh_interval: std::time::Duration,
}

impl IdpSettings {
    pub fn new(org_url: impl Into<String>) -> IdpSettings {
        IdpSettings {
            org_url: org_url.into().trim_end_matches('/').to_owned(),
            jwks_max_age_secs: 900,
            refresh_interval: std::time::Duration::from_secs(1),
        }
    }
}

/// Everything a request handler needs, shared behind an `Arc`.
pub struct Idp {
    pub store: Store,
    pub org_id: String,
    pub settings: IdpSettings,
    pub master: Arc<MasterKey>,
    pub hasher: SecretHasher,
    pub view: view::ViewCache,
    pub grants: grants::GrantRegistry,
    /// Sign-in rate limits (per login, per client address, per user for second factors).
    pub limits: Arc<people::SignInLimits>,
}

impl Idp {
    /// Loads the org into memory (making sure every server has its keys) and returns the
    /// shared state; call [`view::spawn_refresher`] to keep it current.
    pub async fn new(
        store: Store,
        org_id: impl Into<String>,
        settings: IdpSettings,
        master: Arc<MasterKey>,
    ) -> Result<Arc<Idp>, view::ViewError> {
        let org_id = org_id.into();
        // Another node starting at the same moment may create the keys first; the unique
        // index makes one of us fail, and a second look finds its keys.
        if keys::ensure_keys(
            &store,
            &master,
            &org_id,
            clock::now(),
            settings.jwks_max_age_secs as i64,
        )
        .await
        .is_err()
        {
            keys::ensure_keys(
                &store,
                &master,
                &org_id,
                clock::now(),
                settings.jwks_max_age_secs as i64,
            )
            .await?;
        }
        let loaded = view::load(&store, &org_id, &settings, &master).await?;
        let hasher = SecretHasher::new(&master);
        let limits = Arc::new(people::SignInLimits::new(&loaded.sign_in));
        // The stand-in hash unknown logins are checked against, made before the first
        // sign-in so that it costs that sign-in nothing extra.
        tokio::task::spawn_blocking(|| {
            people::password::dummy_hash();
        });
        Ok(Arc::new(Idp {
            limits,
            store,
            org_id,
            settings,
            master,
            hasher,
            view: view::ViewCache::new(loaded),
            grants: grants::GrantRegistry::standard(),
        }))
    }
}
