//! Signing-key lifecycle, as Okta runs it: every server has an ACTIVE key that signs and a
//! NEXT key published ahead of use. Rotation retires the active key (still published until
//! every token it signed has expired), promotes the next one, and publishes a new next.

use portcullis_core::SigningAlg;
use portcullis_jose::{KeyError, MasterKey, SigningKey};
use portcullis_store::{KeyStatus, Store, StoreError, StoredKey};

use crate::view::ViewError;

/// Margin added to the longest token lifetime before a retired key is unpublished.
const RETIRE_MARGIN_SECS: i64 = 300;

fn new_key(
    master: &MasterKey,
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
        sealed_private_key: master.seal(&pkcs8, key.kid()),
        public_jwk: serde_json::to_string(key.jwk()).unwrap_or_default(),
        created_at: now,
        activated_at: (status == KeyStatus::Active).then_some(now),
        retire_at: None,
    })
}

/// Gives every server an ACTIVE and a NEXT key of its algorithm. A server whose algorithm
/// changed gets a new next key of the new algorithm and rotates onto it, so its old key
/// stays published until the tokens it signed have expired.
pub async fn ensure_keys(
    store: &Store,
    master: &MasterKey,
    org_id: &str,
    now: i64,
) -> Result<usize, ViewError> {
    let content = store.load_org(org_id).await?;
    let keys = store.signing_keys(org_id).await?;
    let mut changed = 0;
    for s in &content.servers {
        let has = |st: KeyStatus| {
            keys.iter()
                .any(|k| k.server_id == s.id && k.status == st && k.alg == s.signing_alg)
        };
        let any_active = keys
            .iter()
            .any(|k| k.server_id == s.id && k.status == KeyStatus::Active);
        if !any_active {
            let pair = [
                new_key(master, &s.id, s.signing_alg, KeyStatus::Active, now)?,
                new_key(master, &s.id, s.signing_alg, KeyStatus::Next, now)?,
            ];
            store.replace_next_key(org_id, &s.id, &pair[1]).await?;
            store.insert_keys(org_id, &pair[..1]).await?;
            changed += 1;
            continue;
        }
        if !has(KeyStatus::Next) {
            let next = new_key(master, &s.id, s.signing_alg, KeyStatus::Next, now)?;
            store.replace_next_key(org_id, &s.id, &next).await?;
            changed += 1;
        }
        if !has(KeyStatus::Active) {
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
    let next = new_key(master, server_id, alg, KeyStatus::Next, now)?;
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

/// `portcullis keys rotate`: the next key starts signing, the old active key stays
/// published until every token it signed has expired, and a new next key is published.
pub async fn rotate(
    store: &Store,
    master: &MasterKey,
    org_id: &str,
    server_id: &str,
    now: i64,
) -> Result<Rotation, ViewError> {
    ensure_keys(store, master, org_id, now).await?;
    let content = store.load_org(org_id).await?;
    let server = content
        .servers
        .iter()
        .find(|s| s.id == server_id)
        .ok_or_else(|| StoreError::NotFound(format!("authorization server '{server_id}'")))?;
    let before = store.signing_keys(org_id).await?;
    let kid_of = |keys: &[StoredKey], st: KeyStatus| {
        keys.iter()
            .find(|k| k.server_id == server_id && k.status == st)
            .map(|k| k.kid.clone())
    };
    let retired_kid = kid_of(&before, KeyStatus::Active);
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
        retired_kid,
        active_kid: kid_of(&after, KeyStatus::Active).unwrap_or_default(),
        next_kid: kid_of(&after, KeyStatus::Next).unwrap_or_default(),
        retired_until: now + lifetime + RETIRE_MARGIN_SECS,
    })
}
