//! Repository methods of [`Store`]: one place for every statement. Each write bumps the
//! org's `config_version` in the same transaction, so every node sees that its in-memory
//! view of the org is stale.

use std::collections::HashMap;

use portcullis_core::ids::{IdKind, new_id};
use portcullis_core::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Store, StoreError};

/// Everything an org declares: authorization servers (with scopes, claims, policies) and clients.
#[derive(Debug, Clone, Default)]
pub struct OrgContent {
    pub servers: Vec<AuthorizationServer>,
    pub clients: Vec<StoredClient>,
}

/// A client and the keyed hash of its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredClient {
    pub client: Client,
    pub secret_hash: Option<String>,
}

/// What to do with a client's stored secret hash on write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretUpdate {
    Keep,
    Set(String),
    Clear,
}

/// Where a signing key is in its life: published ahead of use, signing, or published
/// only until the tokens it signed have expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyStatus {
    Next,
    Active,
    Retired,
}

/// A signing key as stored: the private half sealed under the master key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKey {
    pub server_id: String,
    pub kid: String,
    pub alg: SigningAlg,
    pub status: KeyStatus,
    pub sealed_private_key: String,
    /// The public JWK, as JSON.
    pub public_jwk: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retire_at: Option<i64>,
}

pub(crate) fn text<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

pub(crate) fn from_text<T: DeserializeOwned>(s: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| StoreError::Corrupt(format!("{what}: unexpected value '{s}'")))
}

pub(crate) fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub(crate) fn from_json<T: DeserializeOwned>(s: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(crate) async fn bump_version(tx: &mut Transaction<'_, Any>, org_id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE orgs SET config_version = config_version + 1 WHERE id = $1")
        .bind(org_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// Creates the org if it does not exist; true when it was created.
    pub async fn ensure_org(&self, org_id: &str, name: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO orgs (id, name, config_version, created_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(org_id)
        .bind(name)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the master key's fingerprint if none is recorded yet, and returns the one
    /// that is recorded now.
    pub async fn master_key_check(&self, org_id: &str, candidate: &str) -> Result<String, StoreError> {
        sqlx::query("UPDATE orgs SET master_key_check = $2 WHERE id = $1 AND master_key_check IS NULL")
            .bind(org_id)
            .bind(candidate)
            .execute(&self.pool)
            .await?;
        self.recorded_master_key_check(org_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("org {org_id}")))
    }

    /// The master key fingerprint recorded for the org, if any.
    pub async fn recorded_master_key_check(&self, org_id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar::<_, Option<String>>("SELECT master_key_check FROM orgs WHERE id = $1")
                .bind(org_id)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }

    /// A number that changes whenever the org's content or keys change.
    pub async fn config_version(&self, org_id: &str) -> Result<i64, StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT config_version FROM orgs WHERE id = $1")
            .bind(org_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("org {org_id}")))
    }

    /// Loads every server (with its scopes, claims, policies, rules) and client of an org.
    pub async fn load_org(&self, org_id: &str) -> Result<OrgContent, StoreError> {
        let mut servers = Vec::new();
        let rows = sqlx::query(
            "SELECT id, name, description, audiences, signing_alg, status FROM authorization_servers \
             WHERE org_id = $1 ORDER BY created_at, id",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            let id: String = r.try_get("id")?;
            servers.push(AuthorizationServer {
                name: r.try_get("name")?,
                description: r.try_get("description")?,
                audiences: from_json(&r.try_get::<String, _>("audiences")?, "audiences")?,
                signing_alg: from_text(&r.try_get::<String, _>("signing_alg")?, "signing_alg")?,
                status: from_text(&r.try_get::<String, _>("status")?, "status")?,
                scopes: self.load_scopes(org_id, &id).await?,
                claims: self.load_claims(org_id, &id).await?,
                policies: self.load_policies(org_id, &id).await?,
                id,
            });
        }
        let rows = sqlx::query(
            "SELECT client_id, name, app_type, status, grant_types, auth_method, secret_hash, secret_env, \
             profile, sign_in FROM clients WHERE org_id = $1 ORDER BY created_at, client_id",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        let clients = rows.iter().map(client_of_row).collect::<Result<_, _>>()?;
        Ok(OrgContent { servers, clients })
    }

    async fn load_scopes(&self, org_id: &str, server_id: &str) -> Result<Vec<Scope>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, display_name, description, is_default, consent, metadata_publish FROM scopes \
             WHERE org_id = $1 AND server_id = $2 ORDER BY position",
        )
        .bind(org_id)
        .bind(server_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Scope {
                    name: r.try_get("name")?,
                    display_name: r.try_get("display_name")?,
                    description: r.try_get("description")?,
                    default: r.try_get::<i64, _>("is_default")? != 0,
                    consent: from_text(&r.try_get::<String, _>("consent")?, "consent")?,
                    metadata_publish: from_text(&r.try_get::<String, _>("metadata_publish")?, "metadata")?,
                })
            })
            .collect()
    }

    async fn load_claims(&self, org_id: &str, server_id: &str) -> Result<Vec<Claim>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, token_type, value, scopes, status FROM claims \
             WHERE org_id = $1 AND server_id = $2 ORDER BY position",
        )
        .bind(org_id)
        .bind(server_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Claim {
                    name: r.try_get("name")?,
                    token_type: from_text(&r.try_get::<String, _>("token_type")?, "token_type")?,
                    value: r.try_get("value")?,
                    scopes: from_json(&r.try_get::<String, _>("scopes")?, "claim scopes")?,
                    status: from_text(&r.try_get::<String, _>("status")?, "status")?,
                })
            })
            .collect()
    }

    async fn load_policies(&self, org_id: &str, server_id: &str) -> Result<Vec<Policy>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, description, priority, status, clients FROM policies \
             WHERE org_id = $1 AND server_id = $2 ORDER BY position",
        )
        .bind(org_id)
        .bind(server_id)
        .fetch_all(&self.pool)
        .await?;
        let rule_rows = sqlx::query(
            "SELECT policy_id, name, priority, status, grant_types, scopes, access_token_lifetime_minutes, \
             settings FROM policy_rules WHERE org_id = $1 AND server_id = $2 ORDER BY position",
        )
        .bind(org_id)
        .bind(server_id)
        .fetch_all(&self.pool)
        .await?;
        let mut rules: HashMap<String, Vec<Rule>> = HashMap::new();
        for r in &rule_rows {
            let settings: RuleSettings = from_json(&r.try_get::<String, _>("settings")?, "rule settings")?;
            rules.entry(r.try_get("policy_id")?).or_default().push(Rule {
                name: r.try_get("name")?,
                priority: r.try_get::<i64, _>("priority")? as u32,
                status: from_text(&r.try_get::<String, _>("status")?, "status")?,
                grant_types: from_json(&r.try_get::<String, _>("grant_types")?, "grant_types")?,
                scopes: from_json(&r.try_get::<String, _>("scopes")?, "rule scopes")?,
                access_token_lifetime_minutes: r.try_get::<i64, _>("access_token_lifetime_minutes")? as u32,
                people: settings.people,
                refresh_token_lifetime_minutes: settings.refresh_token_lifetime_minutes,
                refresh_token_window_minutes: settings.refresh_token_window_minutes,
                rotate_refresh_tokens: settings.rotate_refresh_tokens,
                refresh_token_grace_seconds: settings.refresh_token_grace_seconds,
                require_mfa: settings.require_mfa,
            });
        }
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                Ok(Policy {
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    priority: r.try_get::<i64, _>("priority")? as u32,
                    status: from_text(&r.try_get::<String, _>("status")?, "status")?,
                    clients: from_json(&r.try_get::<String, _>("clients")?, "policy clients")?,
                    rules: rules.remove(&id).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Creates or replaces a server and all its scopes, claims, policies and rules, in one
    /// transaction. Ids of items whose names are unchanged are kept.
    pub async fn put_server(
        &self,
        org_id: &str,
        s: &AuthorizationServer,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO authorization_servers \
             (org_id, id, name, description, audiences, signing_alg, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (org_id, id) DO UPDATE SET name = $3, description = $4, audiences = $5, \
             signing_alg = $6, status = $7, updated_at = $8",
        )
        .bind(org_id)
        .bind(&s.id)
        .bind(&s.name)
        .bind(&s.description)
        .bind(json(&s.audiences))
        .bind(text(&s.signing_alg))
        .bind(text(&s.status))
        .bind(now)
        .execute(&mut *tx)
        .await?;

        let old_ids = |table: &'static str| {
            let sql = match table {
                "scopes" => "SELECT name, id FROM scopes WHERE org_id = $1 AND server_id = $2",
                "claims" => "SELECT name, id FROM claims WHERE org_id = $1 AND server_id = $2",
                _ => "SELECT name, id FROM policies WHERE org_id = $1 AND server_id = $2",
            };
            sqlx::query(sql).bind(org_id).bind(&s.id)
        };
        let to_map = |rows: Vec<AnyRow>| -> Result<HashMap<String, String>, StoreError> {
            rows.iter()
                .map(|r| Ok((r.try_get("name")?, r.try_get("id")?)))
                .collect()
        };
        let scope_ids = to_map(old_ids("scopes").fetch_all(&mut *tx).await?)?;
        let claim_ids = to_map(old_ids("claims").fetch_all(&mut *tx).await?)?;
        let policy_ids = to_map(old_ids("policies").fetch_all(&mut *tx).await?)?;
        let rule_ids: HashMap<(String, String), String> =
            sqlx::query("SELECT policy_id, name, id FROM policy_rules WHERE org_id = $1 AND server_id = $2")
                .bind(org_id)
                .bind(&s.id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok(((r.try_get("policy_id")?, r.try_get("name")?), r.try_get("id")?)))
                .collect::<Result<_, StoreError>>()?;

        for table in ["policy_rules", "policies", "claims", "scopes"] {
            let sql = match table {
                "policy_rules" => "DELETE FROM policy_rules WHERE org_id = $1 AND server_id = $2",
                "policies" => "DELETE FROM policies WHERE org_id = $1 AND server_id = $2",
                "claims" => "DELETE FROM claims WHERE org_id = $1 AND server_id = $2",
                _ => "DELETE FROM scopes WHERE org_id = $1 AND server_id = $2",
            };
            sqlx::query(sql)
                .bind(org_id)
                .bind(&s.id)
                .execute(&mut *tx)
                .await?;
        }
        for (i, sc) in s.scopes.iter().enumerate() {
            sqlx::query(
                "INSERT INTO scopes (org_id, server_id, id, position, name, display_name, description, \
                 is_default, consent, metadata_publish) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(org_id)
            .bind(&s.id)
            .bind(
                scope_ids
                    .get(&sc.name)
                    .cloned()
                    .unwrap_or_else(|| new_id(IdKind::Scope)),
            )
            .bind(i as i64)
            .bind(&sc.name)
            .bind(sc.display_name.clone())
            .bind(&sc.description)
            .bind(sc.default as i64)
            .bind(text(&sc.consent))
            .bind(text(&sc.metadata_publish))
            .execute(&mut *tx)
            .await?;
        }
        for (i, c) in s.claims.iter().enumerate() {
            sqlx::query(
                "INSERT INTO claims (org_id, server_id, id, position, name, token_type, value, scopes, status) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(org_id)
            .bind(&s.id)
            .bind(claim_ids.get(&c.name).cloned().unwrap_or_else(|| new_id(IdKind::Claim)))
            .bind(i as i64)
            .bind(&c.name)
            .bind(text(&c.token_type))
            .bind(&c.value)
            .bind(json(&c.scopes))
            .bind(text(&c.status))
            .execute(&mut *tx)
            .await?;
        }
        for (pi, p) in s.policies.iter().enumerate() {
            let pid = policy_ids
                .get(&p.name)
                .cloned()
                .unwrap_or_else(|| new_id(IdKind::Policy));
            sqlx::query(
                "INSERT INTO policies (org_id, server_id, id, position, name, description, priority, status, clients) \
                 VALUES ($1, $2, $3, $9, $4, $5, $6, $7, $8)",
            )
            .bind(org_id)
            .bind(&s.id)
            .bind(&pid)
            .bind(&p.name)
            .bind(&p.description)
            .bind(p.priority as i64)
            .bind(text(&p.status))
            .bind(json(&p.clients))
            .bind(pi as i64)
            .execute(&mut *tx)
            .await?;
            for (ri, r) in p.rules.iter().enumerate() {
                let rid = rule_ids
                    .get(&(pid.clone(), r.name.clone()))
                    .cloned()
                    .unwrap_or_else(|| new_id(IdKind::Rule));
                sqlx::query(
                    "INSERT INTO policy_rules (org_id, server_id, policy_id, id, position, name, priority, status, \
                     grant_types, scopes, access_token_lifetime_minutes, settings) \
                     VALUES ($1, $2, $3, $4, $11, $5, $6, $7, $8, $9, $10, $12)",
                )
                .bind(org_id)
                .bind(&s.id)
                .bind(&pid)
                .bind(rid)
                .bind(&r.name)
                .bind(r.priority as i64)
                .bind(text(&r.status))
                .bind(json(&r.grant_types))
                .bind(json(&r.scopes))
                .bind(r.access_token_lifetime_minutes as i64)
                .bind(ri as i64)
                .bind(json(&RuleSettings::of(r)))
                .execute(&mut *tx)
                .await?;
            }
        }
        bump_version(&mut tx, org_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a server, its content and its keys.
    pub async fn delete_server(&self, org_id: &str, server_id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM policy_rules WHERE org_id = $1 AND server_id = $2",
            "DELETE FROM policies WHERE org_id = $1 AND server_id = $2",
            "DELETE FROM claims WHERE org_id = $1 AND server_id = $2",
            "DELETE FROM scopes WHERE org_id = $1 AND server_id = $2",
            "DELETE FROM signing_keys WHERE org_id = $1 AND server_id = $2",
            "DELETE FROM authorization_servers WHERE org_id = $1 AND id = $2",
        ] {
            sqlx::query(sql)
                .bind(org_id)
                .bind(server_id)
                .execute(&mut *tx)
                .await?;
        }
        bump_version(&mut tx, org_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates or updates a client.
    pub async fn put_client(
        &self,
        org_id: &str,
        c: &Client,
        secret: SecretUpdate,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO clients (org_id, client_id, name, app_type, status, grant_types, auth_method, \
             secret_hash, secret_env, profile, created_at, updated_at, sign_in) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12) \
             ON CONFLICT (org_id, client_id) DO UPDATE SET name = $3, app_type = $4, status = $5, \
             grant_types = $6, auth_method = $7, secret_env = $9, profile = $10, updated_at = $11, sign_in = $12",
        )
        .bind(org_id)
        .bind(&c.client_id)
        .bind(&c.name)
        .bind(text(&c.app_type))
        .bind(text(&c.status))
        .bind(json(&c.grant_types))
        .bind(text(&c.token_endpoint_auth_method))
        .bind(match &secret {
            SecretUpdate::Set(h) => Some(h.clone()),
            _ => None,
        })
        .bind(c.secret_env.clone())
        .bind(json(&c.profile))
        .bind(now)
        .bind(c.sign_in_settings().to_string())
        .execute(&mut *tx)
        .await?;
        match secret {
            SecretUpdate::Keep => {}
            SecretUpdate::Set(h) => {
                sqlx::query("UPDATE clients SET secret_hash = $3 WHERE org_id = $1 AND client_id = $2")
                    .bind(org_id)
                    .bind(&c.client_id)
                    .bind(h)
                    .execute(&mut *tx)
                    .await?;
            }
            SecretUpdate::Clear => {
                sqlx::query("UPDATE clients SET secret_hash = NULL WHERE org_id = $1 AND client_id = $2")
                    .bind(org_id)
                    .bind(&c.client_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        bump_version(&mut tx, org_id).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_client(&self, org_id: &str, client_id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM clients WHERE org_id = $1 AND client_id = $2")
            .bind(org_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await?;
        bump_version(&mut tx, org_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every signing key of the org, all servers, newest first.
    pub async fn signing_keys(&self, org_id: &str) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT server_id, kid, alg, status, sealed_private_key, public_jwk, created_at, activated_at, \
             retire_at FROM signing_keys WHERE org_id = $1 ORDER BY created_at DESC, kid",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredKey {
                    server_id: r.try_get("server_id")?,
                    kid: r.try_get("kid")?,
                    alg: from_text(&r.try_get::<String, _>("alg")?, "alg")?,
                    status: from_text(&r.try_get::<String, _>("status")?, "key status")?,
                    sealed_private_key: r.try_get("sealed_private_key")?,
                    public_jwk: r.try_get("public_jwk")?,
                    created_at: r.try_get("created_at")?,
                    activated_at: r.try_get("activated_at")?,
                    retire_at: r.try_get("retire_at")?,
                })
            })
            .collect()
    }

    async fn insert_key_tx(
        tx: &mut Transaction<'_, Any>,
        org_id: &str,
        k: &StoredKey,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (org_id, server_id, kid, alg, status, sealed_private_key, public_jwk, \
             created_at, activated_at, retire_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(org_id)
        .bind(&k.server_id)
        .bind(&k.kid)
        .bind(text(&k.alg))
        .bind(text(&k.status))
        .bind(&k.sealed_private_key)
        .bind(&k.public_jwk)
        .bind(k.created_at)
        .bind(k.activated_at)
        .bind(k.retire_at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Stores new keys for a server (first start, or a change of algorithm).
    pub async fn insert_keys(&self, org_id: &str, keys: &[StoredKey]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for k in keys {
            Self::insert_key_tx(&mut tx, org_id, k).await?;
        }
        bump_version(&mut tx, org_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces whatever key waits as NEXT for a server (none, or one of an old algorithm).
    pub async fn replace_next_key(
        &self,
        org_id: &str,
        server_id: &str,
        next: &StoredKey,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM signing_keys WHERE org_id = $1 AND server_id = $2 AND status = 'NEXT'")
            .bind(org_id)
            .bind(server_id)
            .execute(&mut *tx)
            .await?;
        Self::insert_key_tx(&mut tx, org_id, next).await?;
        bump_version(&mut tx, org_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Rotation, in one transaction: the active key retires (published until `retire_at`),
    /// the next key becomes active, and `new_next` is published ahead of its use.
    pub async fn rotate_keys(
        &self,
        org_id: &str,
        server_id: &str,
        new_next: &StoredKey,
        retire_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE signing_keys SET status = 'RETIRED', retire_at = $3 \
             WHERE org_id = $1 AND server_id = $2 AND status = 'ACTIVE'",
        )
        .bind(org_id)
        .bind(server_id)
        .bind(retire_at)
        .execute(&mut *tx)
        .await?;
        let promoted = sqlx::query(
            "UPDATE signing_keys SET status = 'ACTIVE', activated_at = $3 \
             WHERE org_id = $1 AND server_id = $2 AND status = 'NEXT'",
        )
        .bind(org_id)
        .bind(server_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if promoted.rows_affected() != 1 {
            return Err(StoreError::Corrupt(format!(
                "server {server_id} has {} keys waiting as next; expected 1",
                promoted.rows_affected()
            )));
        }
        Self::insert_key_tx(&mut tx, org_id, new_next).await?;
        bump_version(&mut tx, org_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes retired keys whose tokens have all expired; returns how many.
    pub async fn delete_expired_keys(&self, org_id: &str, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "DELETE FROM signing_keys WHERE org_id = $1 AND status = 'RETIRED' AND retire_at <= $2",
        )
        .bind(org_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            bump_version(&mut tx, org_id).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Records a revoked token id until the token would have expired anyway.
    pub async fn revoke_token(&self, org_id: &str, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_tokens (org_id, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (org_id, jti) DO NOTHING",
        )
        .bind(org_id)
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn is_revoked(&self, org_id: &str, jti: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT 1 FROM revoked_tokens WHERE org_id = $1 AND jti = $2")
                .bind(org_id)
                .bind(jti)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// Forgets revocations of tokens that expired more than `margin` seconds ago (a margin
    /// so that no verifier's clock skew can bring a revoked token back).
    pub async fn purge_revoked(&self, now: i64, margin: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(now - margin)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

fn client_of_row(r: &AnyRow) -> Result<StoredClient, StoreError> {
    let sign_in: serde_json::Value =
        from_json(&r.try_get::<String, _>("sign_in")?, "client sign-in settings")?;
    let mut client = Client {
        client_id: r.try_get("client_id")?,
        name: r.try_get("name")?,
        app_type: from_text(&r.try_get::<String, _>("app_type")?, "app_type")?,
        status: from_text(&r.try_get::<String, _>("status")?, "status")?,
        grant_types: from_json(&r.try_get::<String, _>("grant_types")?, "grant_types")?,
        token_endpoint_auth_method: from_text(&r.try_get::<String, _>("auth_method")?, "auth_method")?,
        secret_env: r.try_get("secret_env")?,
        profile: from_json(&r.try_get::<String, _>("profile")?, "profile")?,
        redirect_uris: vec![],
        post_logout_redirect_uris: vec![],
        pkce_required: false,
        require_mfa: false,
    };
    client.set_sign_in_settings(&sign_in);
    Ok(StoredClient {
        client,
        secret_hash: r.try_get("secret_hash")?,
    })
}

/// The people-flow settings of a rule, kept as one JSON column.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleSettings {
    #[serde(default)]
    people: PeopleSelector,
    #[serde(default)]
    refresh_token_lifetime_minutes: u32,
    #[serde(default = "default_window")]
    refresh_token_window_minutes: u32,
    #[serde(default = "default_true")]
    rotate_refresh_tokens: bool,
    #[serde(default = "default_grace")]
    refresh_token_grace_seconds: u32,
    #[serde(default)]
    require_mfa: bool,
}

fn default_window() -> u32 {
    DEFAULT_REFRESH_WINDOW_MINUTES
}
fn default_true() -> bool {
    true
}
fn default_grace() -> u32 {
    30
}

impl RuleSettings {
    fn of(r: &Rule) -> RuleSettings {
        RuleSettings {
            people: r.people.clone(),
            refresh_token_lifetime_minutes: r.refresh_token_lifetime_minutes,
            refresh_token_window_minutes: r.refresh_token_window_minutes,
            rotate_refresh_tokens: r.rotate_refresh_tokens,
            refresh_token_grace_seconds: r.refresh_token_grace_seconds,
            require_mfa: r.require_mfa,
        }
    }
}
