//! Signing-key lifecycle, as Okta runs it: every server has an ACTIVE key that signs and a
//! NEXT key published ahead of use. Rotation retires the active key (still published until
//! every token it signed has expired), promotes the next one, and publishes a new next.
//!
//! "Published ahead of use" is a promise to verifiers that cache the JWKS: a key signs only
//! once it has been in the JWKS for at least the JWKS max-age. A change of a server's
//! algorithm therefore publishes a key of the new algorithm first and switches to it later
//! ([`ensure_keys`] runs periodically on every node).

use portcullis_core::SigningAlg;
use portcullis_jose::{KeyError, MasterKey, SigningKey};
use portcullis_store::{KeyStatus, Store, StoreError, StoredKey};

use crate::view::ViewError;

/// Margin added to the longest token lifetime before a retired key is unpublished.
const RETIRE_MARGIN_SECS: i64 = 300;

/// The associated data a private key is sealed with: it binds the sealed bytes to their
/// org, server, key id and algorithm, so they cannot be moved to another record.
pub fn seal_context(org_id: &str, server_id: &str, kid: &str, alg: SigningAlg) -> String {
    format!("portcullis-key|{org_id}|{server_id}|{kid}|{}", alg.as_str())
}

fn new_key(
    master: &MasterKey,
    org_id: &str,
    server_id: &str,
    alg: SigningAlg,
    status: KeyStatus,
    now: i64,
) -> Result<StoredKey, KeyError> {
    let (key, pkcs8) = SigningKey::generate(alg)?;
    Ok(StoredKey {
        server_id: server_id.to_owned(),
        kid: key.kid().to_owned(),
        alg,
        status,
        sealed_private_key: master.seal(&pkcs8, &seal_context(org_id, server_id, key.kid(), alg)),
        public_jwk: serde_json::to_string(key.jwk()).unwrap_or_default(),
        created_at: now,
        activated_at: (status == KeyStatus::Active).then_some(now),
        retire_at: None,
    })
}

/// Gives every server an ACTIVE and a NEXT key of its algorithm. A new server gets both at
/// once. A server whose algorithm changed gets a NEXT key of the new algorithm, and rotates
/// onto it once that key has been published for `publish_ahead_secs`.
pub async fn ensure_keys(
    store: &Store,
    master: &MasterKey,
    org_id: &str,
    now: i64,
    publish_ahead_secs: i64,
) -> Result<usize, ViewError> {
    let content = store.load_org(org_id).await?;
    let keys = store.signing_keys(org_id).await?;
    let mut changed = 0;
    for s in &content.servers {
        let mine = |st: KeyStatus| keys.iter().find(|k| k.server_id == s.id && k.status == st);
        let Some(active) = mine(KeyStatus::Active) else {
            let next = new_key(master, org_id, &s.id, s.signing_alg, KeyStatus::Next, now)?;
            let active = new_key(master, org_id, &s.id, s.signing_alg, KeyStatus::Active, now)?;
            store.replace_next_key(org_id, &s.id, &next).await?;
            store.insert_keys(org_id, &[active]).await?;
            changed += 1;
            continue;
        };
        match mine(KeyStatus::Next) {
            Some(next) if next.alg == s.signing_alg => {
                if active.alg != s.signing_alg && next.created_at + publish_ahead_secs <= now {
                    rotate_to(
                        store,
                        master,
                        org_id,
                        &s.id,
                        s.signing_alg,
                        max_lifetime_secs(s),
                        now,
                    )
                    .await?;
                    changed += 1;
                }
            }
            _ => {
                let next = new_key(master, org_id, &s.id, s.signing_alg, KeyStatus::Next, now)?;
                store.replace_next_key(org_id, &s.id, &next).await?;
                changed += 1;
            }
        }
    }
    Ok(changed)
}

fn max_lifetime_secs(s: &portcullis_core::AuthorizationServer) -> i64 {
    s.policies
        .iter()
        .flat_map(|p| &p.rules)
        .map(|r| r.access_token_lifetime_minutes as i64 * 60)
        .max()
        .unwrap_or(portcullis_core::DEFAULT_ACCESS_TOKEN_LIFETIME_MINUTES as i64 * 60)
}

async fn rotate_to(
    store: &Store,
    master: &MasterKey,
    org_id: &str,
    server_id: &str,
    alg: SigningAlg,
    lifetime: i64,
    now: i64,
) -> Result<(), ViewError> {
    let next = new_key(master, org_id, server_id, alg, KeyStatus::Next, now)?;
    store
        .rotate_keys(org_id, server_id, &next, now + lifetime + RETIRE_MARGIN_SECS, now)
        .await?;
    Ok(())
}

/// What a rotation did, for the operator.
#[derive(Debug)]
pub struct Rotation {
    pub retired_kid: Option<String>,
    pub active_kid: String,
    pub next_kid: String,
    pub retired_until: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("no authorization server '{0}'")]
    NoSuchServer(String),
    #[error(
        "the next key of '{server}' has been published for only {published_secs} s; verifiers that cache the JWKS \
         for up to {max_age_secs} s may not know it yet"
    )]
    NextKeyTooYoung {
        server: String,
        published_secs: i64,
        max_age_secs: i64,
    },
    #[error(transparent)]
    Keys(#[from] ViewError),
}

impl From<StoreError> for RotateError {
    fn from(e: StoreError) -> Self {
        RotateError::Keys(ViewError::Store(e))
    }
}

/// `portcullis keys rotate`: the next key starts signing, the old active key stays
/// published until every token it signed has expired, and a new next key is published.
/// Refused, unless `force`, when the next key has been published for less than
/// `publish_ahead_secs` (two rotations in a row would sign with a key caches lack).
pub async fn rotate(
    store: &Store,
    master: &MasterKey,
    org_id: &str,
    server_id: &str,
    now: i64,
    publish_ahead_secs: i64,
    force: bool,
) -> Result<Rotation, RotateError> {
    ensure_keys(store, master, org_id, now, publish_ahead_secs).await?;
    let content = store.load_org(org_id).await?;
    let server = content
        .servers
        .iter()
        .find(|s| s.id == server_id)
        .ok_or_else(|| RotateError::NoSuchServer(server_id.to_owned()))?;
    let before = store.signing_keys(org_id).await?;
    let find = |keys: &[StoredKey], st: KeyStatus| {
        keys.iter()
            .find(|k| k.server_id == server_id && k.status == st)
            .cloned()
    };
    if let Some(next) = find(&before, KeyStatus::Next)
        && now - next.created_at < publish_ahead_secs
        && !force
    {
        return Err(RotateError::NextKeyTooYoung {
            server: server_id.to_owned(),
            published_secs: now - next.created_at,
            max_age_secs: publish_ahead_secs,
        });
    }
    let lifetime = max_lifetime_secs(server);
    rotate_to(
        store,
        master,
        org_id,
        server_id,
        server.signing_alg,
        lifetime,
        now,
    )
    .await?;
    let after = store.signing_keys(org_id).await?;
    Ok(Rotation {
        retired_kid: find(&before, KeyStatus::Active).map(|k| k.kid),
        active_kid: find(&after, KeyStatus::Active).map(|k| k.kid).unwrap_or_default(),
        next_kid: find(&after, KeyStatus::Next).map(|k| k.kid).unwrap_or_default(),
        retired_until: now + lifetime + RETIRE_MARGIN_SECS,
    })
}
