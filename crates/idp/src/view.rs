//! The in-memory view of the org that every request reads: servers with their parsed
//! signing keys, compiled claim expressions, ready-made discovery and JWKS documents, and
//! clients. Requests never query the database for these.
//!
//! Each node polls the org's `config_version` (one indexed read per interval) and swaps
//! in a freshly loaded view when it changed or a retired key's publication ended. Writers
//! (`apply`, `keys rotate`, another node) bump the version in the same transaction as
//! their change, so every node converges within one refresh interval.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use portcullis_core::{AuthorizationServer, Claim, ClaimTokenType, Client, GrantType, MetadataPublish};
use portcullis_expr::Expression;
use portcullis_jose::{Jwk, JwkSet, KeyError, MasterKey, SigningKey, Verifier};
use portcullis_store::{KeyStatus, Store, StoreError};

use crate::{Idp, IdpSettings, clock};

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A claim with its expression compiled once.
pub struct CompiledClaim {
    pub claim: Claim,
    pub expr: Expression,
}

/// One authorization server, ready to serve.
pub struct ServerView {
    pub server: AuthorizationServer,
    pub issuer: String,
    /// The key that signs new tokens; `None` only if the server has no active key.
    pub signer: Option<Arc<SigningKey>>,
    /// `{"keys": [...]}` of every published key (next, active, retired-but-live).
    pub jwks_json: String,
    pub verifier: Verifier,
    pub access_claims: Vec<CompiledClaim>,
    pub id_claims: Vec<CompiledClaim>,
    /// Verifies ID tokens this server signed (`id_token_hint`): any `typ`, expired ones
    /// accepted (a hint names a past sign-in).
    pub id_token_verifier: Verifier,
    pub openid_configuration: String,
    pub oauth_authorization_server: String,
}

/// A client and what claim expressions see of it.
pub struct ClientView {
    pub client: Client,
    pub secret_hash: Option<String>,
    /// `app` in claim expressions: `{id, clientId, name, type, profile}`.
    pub app: serde_json::Value,
}

pub struct OrgView {
    pub version: i64,
    /// Password policy, lockout, rate limits, session length, branding.
    pub sign_in: portcullis_core::SignInSettings,
    /// Origins of every registered redirect URI: browser apps there may call the
    /// token, userinfo, revoke and key endpoints (CORS).
    pub trusted_origins: std::collections::HashSet<String>,
    pub servers: HashMap<String, Arc<ServerView>>,
    pub clients: HashMap<String, Arc<ClientView>>,
    /// When the earliest retired key stops being published (forces a reload).
    pub next_key_expiry: Option<i64>,
    /// Parsed private keys by kid, reused across reloads.
    signers: HashMap<String, Arc<SigningKey>>,
}

impl OrgView {
    /// An active server by id.
    pub fn server(&self, id: &str) -> Option<&Arc<ServerView>> {
        self.servers.get(id).filter(|s| s.server.status.is_active())
    }
}

/// The current view, swapped atomically on reload.
pub struct ViewCache {
    current: ArcSwap<OrgView>,
}

impl ViewCache {
    pub fn new(view: OrgView) -> ViewCache {
        ViewCache {
            current: ArcSwap::from_pointee(view),
        }
    }
    pub fn get(&self) -> Arc<OrgView> {
        self.current.load_full()
    }
    pub fn set(&self, view: OrgView) {
        self.current.store(Arc::new(view));
    }
}

/// Loads the org from the store into a new view.
pub async fn load(
    store: &Store,
    org_id: &str,
    settings: &IdpSettings,
    master: &MasterKey,
) -> Result<OrgView, ViewError> {
    load_reusing(store, org_id, settings, master, &HashMap::new()).await
}

async fn load_reusing(
    store: &Store,
    org_id: &str,
    settings: &IdpSettings,
    master: &MasterKey,
    previous: &HashMap<String, Arc<SigningKey>>,
) -> Result<OrgView, ViewError> {
    let version = store.config_version(org_id).await?;
    let content = store.load_org(org_id).await?;
    let sign_in = store.sign_in_settings(org_id).await?;
    let keys = store.signing_keys(org_id).await?;
    let now = clock::now();

    let mut signers = HashMap::new();
    let mut next_key_expiry: Option<i64> = None;
    let mut published: HashMap<String, Vec<(KeyStatus, Jwk)>> = HashMap::new();
    let mut active: HashMap<String, Arc<SigningKey>> = HashMap::new();
    for k in &keys {
        if k.status == KeyStatus::Retired {
            match k.retire_at {
                Some(t) if t > now => next_key_expiry = Some(next_key_expiry.map_or(t, |e| e.min(t))),
                _ => continue,
            }
        }
        // Every published key is unsealed and its public half derived from the private key:
        // a row planted in the database with a foreign public key is never published.
        let key = match previous.get(&k.kid) {
            Some(s) => s.clone(),
            None => match unseal(master, org_id, k) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    tracing::error!(server = %k.server_id, kid = %k.kid, error = %e, "signing key skipped: it cannot be unsealed");
                    continue;
                }
            },
        };
        signers.insert(k.kid.clone(), key.clone());
        published
            .entry(k.server_id.clone())
            .or_default()
            .push((k.status, key.jwk().clone()));
        if k.status == KeyStatus::Active {
            active.insert(k.server_id.clone(), key);
        }
    }

    let mut servers = HashMap::new();
    for server in content.servers {
        let issuer = format!("{}/oauth2/{}", settings.org_url, server.id);
        let mut keys = published.remove(&server.id).unwrap_or_default();
        // Active first (the key verifiers should try first), then next, then retired.
        keys.sort_by_key(|(s, _)| match s {
            KeyStatus::Active => 0,
            KeyStatus::Next => 1,
            KeyStatus::Retired => 2,
        });
        let set = JwkSet {
            keys: keys.into_iter().map(|(_, j)| j).collect(),
        };
        let access_claims = compile_claims(&server, ClaimTokenType::AccessToken);
        let id_claims = compile_claims(&server, ClaimTokenType::IdToken);
        let (openid_configuration, oauth_authorization_server) = discovery(&server, &issuer);
        servers.insert(
            server.id.clone(),
            Arc::new(ServerView {
                // Our own tokens: no clock-skew leeway on `exp`, and only access tokens.
                verifier: Verifier::new(issuer.clone(), &set, 0).with_typ("at+jwt"),
                id_token_verifier: Verifier::new(issuer.clone(), &set, ID_TOKEN_HINT_LEEWAY_SECS)
                    .with_typ("JWT"),
                jwks_json: serde_json::to_string(&set).unwrap_or_else(|_| "{\"keys\":[]}".into()),
                signer: active.get(&server.id).cloned(),
                access_claims,
                id_claims,
                openid_configuration,
                oauth_authorization_server,
                issuer,
                server,
            }),
        );
    }

    let trusted_origins = content
        .clients
        .iter()
        .filter(|c| c.client.status.is_active())
        .flat_map(|c| c.client.redirect_uris.iter())
        .filter_map(|u| origin_of(u))
        .collect();
    let clients = content
        .clients
        .into_iter()
        .map(|c| {
            let app = serde_json::json!({
                "id": c.client.client_id,
                "clientId": c.client.client_id,
                "name": c.client.name,
                "type": c.client.app_type,
                "profile": c.client.profile,
            });
            (
                c.client.client_id.clone(),
                Arc::new(ClientView {
                    client: c.client,
                    secret_hash: c.secret_hash,
                    app,
                }),
            )
        })
        .collect();
    Ok(OrgView {
        version,
        sign_in,
        trusted_origins,
        servers,
        clients,
        next_key_expiry,
        signers,
    })
}

/// `scheme://host[:port]` of an http(s) URI, as browsers send it in `Origin`.
fn origin_of(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty() && !authority.contains('@')).then(|| format!("{scheme}://{authority}"))
}

fn unseal(master: &MasterKey, org_id: &str, k: &portcullis_store::StoredKey) -> Result<SigningKey, KeyError> {
    let pkcs8 = master.open(
        &k.sealed_private_key,
        &crate::keys::seal_context(org_id, &k.server_id, &k.kid, k.alg),
    )?;
    let key = SigningKey::from_pkcs8(k.alg, &pkcs8)?;
    if key.kid() != k.kid {
        return Err(KeyError::Parse("key whose id does not match its record"));
    }
    Ok(key)
}

fn compile_claims(server: &AuthorizationServer, token_type: ClaimTokenType) -> Vec<CompiledClaim> {
    server
        .claims
        .iter()
        .filter(|c| c.token_type == token_type && c.status.is_active())
        .filter_map(|c| match Expression::compile(&c.value) {
            Ok(expr) => Some(CompiledClaim { claim: c.clone(), expr }),
            Err(e) => {
                tracing::warn!(server = %server.id, claim = %c.name, error = %e, "claim skipped: its expression does not compile");
                None
            }
        })
        .collect()
}

/// The two discovery documents (OpenID Connect Discovery 1.0 and RFC 8414) of a server.
fn discovery(server: &AuthorizationServer, issuer: &str) -> (String, String) {
    // OpenID Connect's scopes are built in (as on Okta), then the server's published ones.
    let mut scopes: Vec<&str> = portcullis_core::scope::OIDC_SCOPES
        .iter()
        .copied()
        .filter(|s| *s != "device_sso")
        .collect();
    scopes.extend(
        server
            .scopes
            .iter()
            .filter(|s| {
                s.metadata_publish == MetadataPublish::AllClients && !scopes.contains(&s.name.as_str())
            })
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
    );
    let mut claims: Vec<&str> = vec![
        "ver",
        "jti",
        "iss",
        "aud",
        "iat",
        "exp",
        "cid",
        "uid",
        "scp",
        "sub",
        "client_id",
        "scope",
        "auth_time",
        "amr",
        "nonce",
        "at_hash",
        "sid",
        "name",
        "given_name",
        "family_name",
        "preferred_username",
        "locale",
        "email",
        "email_verified",
        "updated_at",
    ];
    claims.extend(
        server
            .claims
            .iter()
            .filter(|c| c.status.is_active())
            .map(|c| c.name.as_str()),
    );
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    let mut doc = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/v1/authorize"),
        "token_endpoint": format!("{issuer}/v1/token"),
        "jwks_uri": format!("{issuer}/v1/keys"),
        "introspection_endpoint": format!("{issuer}/v1/introspect"),
        "revocation_endpoint": format!("{issuer}/v1/revoke"),
        "userinfo_endpoint": format!("{issuer}/v1/userinfo"),
        "end_session_endpoint": format!("{issuer}/v1/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            GrantType::AuthorizationCode.as_str(),
            GrantType::RefreshToken.as_str(),
            GrantType::ClientCredentials.as_str(),
        ],
        "subject_types_supported": ["public"],
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": true,
        "scopes_supported": scopes,
        "claims_supported": claims,
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": [server.signing_alg.as_str()],
        "request_parameter_supported": false,
    });
    let oauth = doc.to_string();
    if let Some(o) = doc.as_object_mut() {
        o.insert("claims_parameter_supported".into(), false.into());
    }
    (doc.to_string(), oauth)
}

/// How old an expired ID token may be and still serve as `id_token_hint`.
const ID_TOKEN_HINT_LEEWAY_SECS: u64 = 30 * 24 * 3600;

/// How often each node checks whether a key is due to be promoted.
const KEY_CHECK_INTERVAL_SECS: i64 = 60;

/// Revocations are kept this long past the token's expiry.
const REVOCATION_PURGE_MARGIN_SECS: i64 = 600;

/// Keeps `idp.view` current: reloads when the org's version changes or a retired key's
/// publication ends, and now and then purges expired revocations and keys.
pub fn spawn_refresher(idp: Arc<Idp>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(idp.settings.refresh_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_purge = 0i64;
        let mut last_key_check = clock::now();
        loop {
            tick.tick().await;
            let now = clock::now();
            // A server whose algorithm changed switches to its new key once that key has
            // been published for the JWKS max-age; every node checks now and then.
            if now - last_key_check >= KEY_CHECK_INTERVAL_SECS {
                last_key_check = now;
                let ahead = idp.settings.jwks_max_age_secs as i64;
                if let Err(e) =
                    crate::keys::ensure_keys(&idp.store, &idp.master, &idp.org_id, now, ahead).await
                {
                    tracing::warn!(error = %e, "could not check the signing keys");
                }
            }
            if now - last_purge >= 600 {
                last_purge = now;
                if let Err(e) = idp.store.purge_revoked(now, REVOCATION_PURGE_MARGIN_SECS).await {
                    tracing::warn!(error = %e, "could not purge expired revocations");
                }
                if let Err(e) = idp.store.delete_expired_keys(&idp.org_id, now).await {
                    tracing::warn!(error = %e, "could not delete expired keys");
                }
                if let Err(e) = idp.store.purge_people(now, REVOCATION_PURGE_MARGIN_SECS).await {
                    tracing::warn!(error = %e, "could not purge expired codes, flows, sessions and tokens");
                }
                idp.limits.shrink();
            }
            let current = idp.view.get();
            let stale = match idp.store.config_version(&idp.org_id).await {
                Ok(v) => v != current.version || current.next_key_expiry.is_some_and(|t| t <= now),
                Err(e) => {
                    tracing::warn!(error = %e, "could not check the org's version; serving the loaded view");
                    false
                }
            };
            if stale {
                match load_reusing(
                    &idp.store,
                    &idp.org_id,
                    &idp.settings,
                    &idp.master,
                    &current.signers,
                )
                .await
                {
                    Ok(view) => {
                        tracing::info!(version = view.version, "org reloaded");
                        idp.view.set(view);
                    }
                    Err(e) => tracing::warn!(error = %e, "could not reload the org; serving the loaded view"),
                }
            }
        }
    })
}
