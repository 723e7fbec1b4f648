//! Repository methods for people: users and their credentials, groups, factors and
//! recovery codes, sign-in sessions and flows, consents, authorization codes and refresh
//! tokens. Callers pass hashes only; codes, refresh tokens and session ids are looked up
//! by their SHA-256.
//!
//! People writes never bump the org's `config_version`: the in-memory org view does not
//! hold users, so a sign-in must not make every node reload it.

use portcullis_core::ids::{IdKind, new_id};
use portcullis_core::{GroupSpec, SignInSettings, User, UserStatus};
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::repo::{from_json, json};
use crate::{Store, StoreError};

/// What a password check needs to know about a user.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: Option<String>,
    pub failed_attempts: i64,
    pub locked_until: Option<i64>,
}

/// A TOTP factor, its secret still sealed.
#[derive(Debug, Clone)]
pub struct StoredFactor {
    pub id: String,
    pub user_id: String,
    pub active: bool,
    pub sealed_secret: String,
    pub last_used_step: Option<i64>,
}

/// A sign-in session.
#[derive(Debug, Clone)]
pub struct StoredSession {
    pub id: String,
    pub user_id: String,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub expires_at: i64,
}

/// A sign-in flow in progress: the authorize request that started it, and who has
/// proven their password so far.
#[derive(Debug, Clone)]
pub struct StoredFlow {
    pub id: String,
    pub bind_hash: String,
    pub csrf: String,
    pub server_id: String,
    pub params: Value,
    /// The user signed in with their password during this flow.
    pub signed_in: bool,
    /// The user allowed the request's scopes during this flow.
    pub consented: bool,
    pub expires_at: i64,
}

/// A step of a sign-in flow that later steps need to know was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowStep {
    SignedIn,
    Consented,
}

/// What an authorization code stands for.
#[derive(Debug, Clone)]
pub struct StoredCode {
    pub family_id: String,
    pub client_id: String,
    pub server_id: String,
    pub user_id: String,
    pub session_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub expires_at: i64,
}

/// The outcome of redeeming a code: single use (RFC 6749 §4.1.2).
#[derive(Debug)]
pub enum CodeRedemption {
    Fresh(StoredCode),
    /// The code was already redeemed: the caller revokes what it issued.
    Replayed(StoredCode),
    Unknown,
}

/// What [`Store::record_grant`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantRecord {
    Recorded,
    /// The refresh token to retire was retired (or revoked) meanwhile: nothing written.
    TokenRetired,
    /// The family was revoked meanwhile: nothing written.
    FamilyRevoked,
}

/// A refresh token's record.
#[derive(Debug, Clone)]
pub struct StoredRefresh {
    pub family_id: String,
    pub client_id: String,
    pub server_id: String,
    pub user_id: String,
    pub session_id: String,
    pub scopes: Vec<String>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub issued_at: i64,
    pub family_expires_at: Option<i64>,
    pub idle_expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const USER_COLUMNS: &str =
    "id, login, status, profile, password_hash, failed_attempts, locked_until, created_at, updated_at";

impl Store {
    // ---- sign-in settings -------------------------------------------------------------

    pub async fn sign_in_settings(&self, org_id: &str) -> Result<SignInSettings, StoreError> {
        let raw: Option<String> = sqlx::query_scalar("SELECT sign_in_settings FROM orgs WHERE id = $1")
            .bind(org_id)
            .fetch_optional(&self.pool)
            .await?;
        match raw {
            Some(s) => from_json(&s, "sign-in settings"),
            None => Ok(SignInSettings::default()),
        }
    }

    /// Replaces the org's sign-in settings (bumps the org's version: nodes reload them).
    pub async fn put_sign_in_settings(&self, org_id: &str, s: &SignInSettings) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE orgs SET sign_in_settings = $2 WHERE id = $1")
            .bind(org_id)
            .bind(json(s))
            .execute(&mut *tx)
            .await?;
        crate::repo::bump_version(&mut tx, org_id).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- users ------------------------------------------------------------------------

    /// Creates a user; fails if the login is taken (case-insensitively).
    pub async fn create_user(
        &self,
        org_id: &str,
        login: &str,
        status: UserStatus,
        profile: &Map<String, Value>,
        now: i64,
    ) -> Result<String, StoreError> {
        let id = new_id(IdKind::User);
        sqlx::query(
            "INSERT INTO users (org_id, id, login, login_key, status, profile, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(org_id)
        .bind(&id)
        .bind(login)
        .bind(login.to_lowercase())
        .bind(status.as_str())
        .bind(json(profile))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn update_user_profile(
        &self,
        org_id: &str,
        user_id: &str,
        profile: &Map<String, Value>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET profile = $3, updated_at = $4 WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(user_id)
            .bind(json(profile))
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_user_status(
        &self,
        org_id: &str,
        user_id: &str,
        status: UserStatus,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET status = $3, updated_at = $4, failed_attempts = 0, locked_until = NULL \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(status.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a user, revoking everything they hold first (their access tokens stay
    /// revoked until they expire).
    pub async fn delete_user(&self, org_id: &str, user_id: &str, now: i64) -> Result<(), StoreError> {
        self.revoke_user_grants(org_id, user_id, now).await?;
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM refresh_tokens WHERE org_id = $1 AND user_id = $2",
            "DELETE FROM authorization_codes WHERE org_id = $1 AND user_id = $2",
            "DELETE FROM sessions WHERE org_id = $1 AND user_id = $2",
            "DELETE FROM consents WHERE org_id = $1 AND user_id = $2",
            "DELETE FROM recovery_codes WHERE org_id = $1 AND user_id = $2",
            "DELETE FROM factors WHERE org_id = $1 AND user_id = $2",
            "DELETE FROM group_members WHERE org_id = $1 AND user_id = $2",
            "DELETE FROM password_history WHERE org_id = $1 AND user_id = $2",
            "DELETE FROM users WHERE org_id = $1 AND id = $2",
        ] {
            sqlx::query(sql)
                .bind(org_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn groups_of(&self, org_id: &str, user_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT g.name FROM group_members m JOIN user_groups g ON g.org_id = m.org_id AND g.id = m.group_id \
             WHERE m.org_id = $1 AND m.user_id = $2 ORDER BY g.name",
        )
        .bind(org_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn credentials_of_row(&self, org_id: &str, r: &AnyRow) -> Result<UserCredentials, StoreError> {
        let mut c = credentials_without_groups(r)?;
        c.user.groups = self.groups_of(org_id, &c.user.id).await?;
        Ok(c)
    }

    /// A user's group names, sorted.
    pub async fn user_groups(&self, org_id: &str, user_id: &str) -> Result<Vec<String>, StoreError> {
        self.groups_of(org_id, user_id).await
    }
}

fn credentials_without_groups(r: &AnyRow) -> Result<UserCredentials, StoreError> {
    let id: String = r.try_get("id")?;
    let status: String = r.try_get("status")?;
    Ok(UserCredentials {
        user: User {
            groups: Vec::new(),
            login: r.try_get("login")?,
            status: UserStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("user status '{status}'")))?,
            profile: from_json(&r.try_get::<String, _>("profile")?, "user profile")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            id,
        },
        password_hash: r.try_get("password_hash")?,
        failed_attempts: r.try_get("failed_attempts")?,
        locked_until: r.try_get("locked_until")?,
    })
}

impl Store {
    /// A user and their credentials by login (case-insensitive), without their groups:
    /// the password check reads no more for a known login than for an unknown one.
    pub async fn user_by_login(
        &self,
        org_id: &str,
        login: &str,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 AND login_key = $2"
        )))
        .bind(org_id)
        .bind(login.to_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some(credentials_without_groups(&r)?)),
            None => Ok(None),
        }
    }

    pub async fn user_by_id(
        &self,
        org_id: &str,
        user_id: &str,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 AND id = $2"
        )))
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some(self.credentials_of_row(org_id, &r).await?)),
            None => Ok(None),
        }
    }

    pub async fn list_users(&self, org_id: &str) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 ORDER BY login_key"
        )))
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.credentials_of_row(org_id, r).await?.user);
        }
        Ok(out)
    }

    /// Sets a password hash and records it in the history, keeping the newest `keep`.
    pub async fn set_password(
        &self,
        org_id: &str,
        user_id: &str,
        hash: &str,
        keep: u32,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE users SET password_hash = $3, password_changed_at = $4, updated_at = $4, \
             failed_attempts = 0, locked_until = NULL WHERE org_id = $1 AND id = $2",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO password_history (org_id, user_id, password_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(org_id)
            .bind(user_id)
            .bind(hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        // Keep the newest `keep` entries (ties in time keep the one just added).
        let newest_first: Vec<String> = sqlx::query_scalar(
            "SELECT password_hash FROM password_history WHERE org_id = $1 AND user_id = $2 ORDER BY created_at DESC",
        )
        .bind(org_id)
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut kept = vec![hash.to_owned()];
        kept.extend(newest_first.into_iter().filter(|h| h != hash));
        for old in kept.iter().skip(keep.max(1) as usize) {
            sqlx::query(
                "DELETE FROM password_history WHERE org_id = $1 AND user_id = $2 AND password_hash = $3",
            )
            .bind(org_id)
            .bind(user_id)
            .bind(old)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest `n` password hashes of a user (the current one first).
    pub async fn password_history(
        &self,
        org_id: &str,
        user_id: &str,
        n: u32,
    ) -> Result<Vec<String>, StoreError> {
        let mut hashes: Vec<String> = sqlx::query_scalar(
            "SELECT password_hash FROM password_history WHERE org_id = $1 AND user_id = $2 ORDER BY created_at DESC",
        )
        .bind(org_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        hashes.truncate(n as usize);
        Ok(hashes)
    }

    /// Counts a failed sign-in; at `max` failures in a row the user is locked out until
    /// `lock_until`. Returns the user's status afterwards.
    pub async fn record_failed_sign_in(
        &self,
        org_id: &str,
        user_id: &str,
        max: u32,
        lock_until: i64,
        now: i64,
    ) -> Result<UserStatus, StoreError> {
        // A lockout whose window has passed starts the count again.
        sqlx::query(
            "UPDATE users SET failed_attempts = CASE WHEN status = 'LOCKED_OUT' THEN 1 ELSE failed_attempts + 1 END, \
             status = 'ACTIVE', locked_until = NULL WHERE org_id = $1 AND id = $2 \
             AND (status = 'ACTIVE' OR (status = 'LOCKED_OUT' AND locked_until <= $3))",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "UPDATE users SET status = 'LOCKED_OUT', locked_until = $3, updated_at = $5 \
             WHERE org_id = $1 AND id = $2 AND status = 'ACTIVE' AND failed_attempts >= $4",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(lock_until)
        .bind(max as i64)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let status: String = sqlx::query_scalar("SELECT status FROM users WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        UserStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("user status '{status}'")))
    }

    /// A successful sign-in: the failure count is reset and an expired lockout lifted.
    pub async fn record_sign_in(&self, org_id: &str, user_id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET failed_attempts = 0, locked_until = NULL, last_login_at = $3, \
             status = CASE WHEN status = 'LOCKED_OUT' THEN 'ACTIVE' ELSE status END \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- groups -----------------------------------------------------------------------

    pub async fn put_group(&self, org_id: &str, g: &GroupSpec, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_groups (org_id, id, name, description, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (org_id, name) DO UPDATE SET description = $4",
        )
        .bind(org_id)
        .bind(new_id(IdKind::Group))
        .bind(&g.name)
        .bind(&g.description)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn list_groups(&self, org_id: &str) -> Result<Vec<GroupSpec>, StoreError> {
        let rows = sqlx::query("SELECT name, description FROM user_groups WHERE org_id = $1 ORDER BY name")
            .bind(org_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(GroupSpec {
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                })
            })
            .collect()
    }

    pub async fn delete_group(&self, org_id: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM group_members WHERE org_id = $1 AND group_id IN \
             (SELECT id FROM user_groups WHERE org_id = $1 AND name = $2)",
        )
        .bind(org_id)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM user_groups WHERE org_id = $1 AND name = $2")
            .bind(org_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes the user a member of exactly these (existing) groups.
    pub async fn set_user_groups(
        &self,
        org_id: &str,
        user_id: &str,
        names: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM group_members WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for name in names {
            let done = sqlx::query(
                "INSERT INTO group_members (org_id, group_id, user_id) \
                 SELECT org_id, id, $3 FROM user_groups WHERE org_id = $1 AND name = $2",
            )
            .bind(org_id)
            .bind(name)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::NotFound(format!("group {name}")));
            }
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- factors and recovery codes ---------------------------------------------------

    /// Starts a TOTP enrolment (replacing one not yet confirmed); returns the factor id.
    pub async fn enroll_totp(
        &self,
        org_id: &str,
        user_id: &str,
        sealed: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        let id = new_id(IdKind::Factor);
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM factors WHERE org_id = $1 AND user_id = $2 AND status = 'PENDING'")
            .bind(org_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO factors (org_id, id, user_id, factor_type, status, sealed_secret, created_at) \
             VALUES ($1, $2, $3, 'totp', 'PENDING', $4, $5)",
        )
        .bind(org_id)
        .bind(&id)
        .bind(user_id)
        .bind(sealed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn factors(&self, org_id: &str, user_id: &str) -> Result<Vec<StoredFactor>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, user_id, status, sealed_secret, last_used_step FROM factors \
             WHERE org_id = $1 AND user_id = $2 ORDER BY created_at DESC",
        )
        .bind(org_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredFactor {
                    id: r.try_get("id")?,
                    user_id: r.try_get("user_id")?,
                    active: r.try_get::<String, _>("status")? == "ACTIVE",
                    sealed_secret: r.try_get("sealed_secret")?,
                    last_used_step: r.try_get("last_used_step")?,
                })
            })
            .collect()
    }

    /// Accepts a TOTP time step for a factor only if it is later than every step accepted
    /// before (so no code is accepted twice), activating a pending factor. True if accepted.
    pub async fn use_totp_step(&self, org_id: &str, factor_id: &str, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE factors SET last_used_step = $3, status = 'ACTIVE' \
             WHERE org_id = $1 AND id = $2 AND (last_used_step IS NULL OR last_used_step < $3)",
        )
        .bind(org_id)
        .bind(factor_id)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes every factor and recovery code of a user (an administrator's reset).
    pub async fn reset_factors(&self, org_id: &str, user_id: &str) -> Result<(), StoreError> {
        for sql in [
            "DELETE FROM factors WHERE org_id = $1 AND user_id = $2",
            "DELETE FROM recovery_codes WHERE org_id = $1 AND user_id = $2",
        ] {
            sqlx::query(sql)
                .bind(org_id)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    pub async fn replace_recovery_codes(
        &self,
        org_id: &str,
        user_id: &str,
        hashes: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for h in hashes {
            sqlx::query("INSERT INTO recovery_codes (org_id, user_id, code_hash) VALUES ($1, $2, $3)")
                .bind(org_id)
                .bind(user_id)
                .bind(h)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Spends a recovery code; true if it existed and was unused.
    pub async fn use_recovery_code(
        &self,
        org_id: &str,
        user_id: &str,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $4 WHERE org_id = $1 AND user_id = $2 AND code_hash = $3 \
             AND used_at IS NULL",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- sessions ---------------------------------------------------------------------

    pub async fn create_session(
        &self,
        org_id: &str,
        id_hash: &str,
        s: &StoredSession,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (org_id, id_hash, id, user_id, auth_time, amr, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(org_id)
        .bind(id_hash)
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(s.auth_time)
        .bind(json(&s.amr))
        .bind(now)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A live session by the hash of its cookie.
    pub async fn session(
        &self,
        org_id: &str,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<StoredSession>, StoreError> {
        let row = sqlx::query(
            "SELECT id, user_id, auth_time, amr, expires_at FROM sessions \
             WHERE org_id = $1 AND id_hash = $2 AND expires_at > $3",
        )
        .bind(org_id)
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(StoredSession {
                id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                auth_time: r.try_get("auth_time")?,
                amr: from_json(&r.try_get::<String, _>("amr")?, "session amr")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn delete_session(&self, org_id: &str, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE org_id = $1 AND id_hash = $2")
            .bind(org_id)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- sign-in flows ----------------------------------------------------------------

    pub async fn create_flow(&self, org_id: &str, f: &StoredFlow, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO login_flows (org_id, id, bind_hash, csrf, server_id, params, signed_in, consented, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(org_id)
        .bind(&f.id)
        .bind(&f.bind_hash)
        .bind(&f.csrf)
        .bind(&f.server_id)
        .bind(f.params.to_string())
        .bind(f.signed_in as i64)
        .bind(f.consented as i64)
        .bind(now)
        .bind(f.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn flow(&self, org_id: &str, id: &str, now: i64) -> Result<Option<StoredFlow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, bind_hash, csrf, server_id, params, signed_in, consented, expires_at FROM login_flows \
             WHERE org_id = $1 AND id = $2 AND expires_at > $3",
        )
        .bind(org_id)
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(StoredFlow {
                id: r.try_get("id")?,
                bind_hash: r.try_get("bind_hash")?,
                csrf: r.try_get("csrf")?,
                server_id: r.try_get("server_id")?,
                params: from_json(&r.try_get::<String, _>("params")?, "flow params")?,
                signed_in: r.try_get::<i64, _>("signed_in")? != 0,
                consented: r.try_get::<i64, _>("consented")? != 0,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Records a step done in a flow: the password (`signed_in`) or the consent.
    pub async fn mark_flow(&self, org_id: &str, id: &str, step: FlowStep) -> Result<(), StoreError> {
        let sql = match step {
            FlowStep::SignedIn => "UPDATE login_flows SET signed_in = 1 WHERE org_id = $1 AND id = $2",
            FlowStep::Consented => "UPDATE login_flows SET consented = 1 WHERE org_id = $1 AND id = $2",
        };
        sqlx::query(sql).bind(org_id).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn delete_flow(&self, org_id: &str, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_flows WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- consents ---------------------------------------------------------------------

    pub async fn consented_scopes(
        &self,
        org_id: &str,
        user_id: &str,
        client_id: &str,
        server_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let raw: Option<String> = sqlx::query_scalar(
            "SELECT scopes FROM consents WHERE org_id = $1 AND user_id = $2 AND client_id = $3 AND server_id = $4",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(client_id)
        .bind(server_id)
        .fetch_optional(&self.pool)
        .await?;
        raw.map(|s| from_json(&s, "consent scopes"))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    pub async fn put_consent(
        &self,
        org_id: &str,
        user_id: &str,
        client_id: &str,
        server_id: &str,
        scopes: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO consents (org_id, user_id, client_id, server_id, scopes, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (org_id, user_id, client_id, server_id) DO UPDATE SET scopes = $5, created_at = $6",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(client_id)
        .bind(server_id)
        .bind(json(&scopes))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- authorization codes ----------------------------------------------------------

    pub async fn put_code(&self, org_id: &str, code_hash: &str, c: &StoredCode) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO authorization_codes (org_id, code_hash, family_id, client_id, server_id, user_id, \
             session_id, redirect_uri, scopes, nonce, code_challenge, auth_time, amr, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(org_id)
        .bind(code_hash)
        .bind(&c.family_id)
        .bind(&c.client_id)
        .bind(&c.server_id)
        .bind(&c.user_id)
        .bind(&c.session_id)
        .bind(&c.redirect_uri)
        .bind(json(&c.scopes))
        .bind(c.nonce.clone())
        .bind(c.code_challenge.clone())
        .bind(c.auth_time)
        .bind(json(&c.amr))
        .bind(c.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a code used, atomically: of two concurrent redemptions only one is `Fresh`.
    pub async fn redeem_code(
        &self,
        org_id: &str,
        code_hash: &str,
        now: i64,
    ) -> Result<CodeRedemption, StoreError> {
        let row = sqlx::query(
            "SELECT family_id, client_id, server_id, user_id, session_id, redirect_uri, scopes, nonce, \
             code_challenge, auth_time, amr, expires_at FROM authorization_codes WHERE org_id = $1 AND code_hash = $2",
        )
        .bind(org_id)
        .bind(code_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(CodeRedemption::Unknown);
        };
        let code = StoredCode {
            family_id: r.try_get("family_id")?,
            client_id: r.try_get("client_id")?,
            server_id: r.try_get("server_id")?,
            user_id: r.try_get("user_id")?,
            session_id: r.try_get("session_id")?,
            redirect_uri: r.try_get("redirect_uri")?,
            scopes: from_json(&r.try_get::<String, _>("scopes")?, "code scopes")?,
            nonce: r.try_get("nonce")?,
            code_challenge: r.try_get("code_challenge")?,
            auth_time: r.try_get("auth_time")?,
            amr: from_json(&r.try_get::<String, _>("amr")?, "code amr")?,
            expires_at: r.try_get("expires_at")?,
        };
        let won = sqlx::query(
            "UPDATE authorization_codes SET used_at = $3 WHERE org_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(org_id)
        .bind(code_hash)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        Ok(if won {
            CodeRedemption::Fresh(code)
        } else {
            CodeRedemption::Replayed(code)
        })
    }

    // ---- refresh tokens and token families --------------------------------------------

    pub async fn refresh_token(
        &self,
        org_id: &str,
        token_hash: &str,
    ) -> Result<Option<StoredRefresh>, StoreError> {
        let row = sqlx::query(
            "SELECT family_id, client_id, server_id, user_id, session_id, scopes, auth_time, amr, issued_at, \
             family_expires_at, idle_expires_at, used_at, revoked_at FROM refresh_tokens \
             WHERE org_id = $1 AND token_hash = $2",
        )
        .bind(org_id)
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(StoredRefresh {
                family_id: r.try_get("family_id")?,
                client_id: r.try_get("client_id")?,
                server_id: r.try_get("server_id")?,
                user_id: r.try_get("user_id")?,
                session_id: r.try_get("session_id")?,
                scopes: from_json(&r.try_get::<String, _>("scopes")?, "refresh scopes")?,
                auth_time: r.try_get("auth_time")?,
                amr: from_json(&r.try_get::<String, _>("amr")?, "refresh amr")?,
                issued_at: r.try_get("issued_at")?,
                family_expires_at: r.try_get("family_expires_at")?,
                idle_expires_at: r.try_get("idle_expires_at")?,
                used_at: r.try_get("used_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .transpose()
    }

    /// Slides a non-rotating refresh token's idle window.
    pub async fn touch_refresh(
        &self,
        org_id: &str,
        token_hash: &str,
        idle_expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE refresh_tokens SET idle_expires_at = $3 WHERE org_id = $1 AND token_hash = $2")
            .bind(org_id)
            .bind(token_hash)
            .bind(idle_expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records what one user grant issued, in one transaction: the access token (so that
    /// revoking the family revokes it), the new refresh token if any, and — on rotation —
    /// the retirement of the refresh token presented. Writes nothing when that token was
    /// retired meanwhile (a concurrent refresh won) or the family was revoked.
    pub async fn record_grant(
        &self,
        org_id: &str,
        family_id: &str,
        access: (&str, i64),
        new_refresh: Option<(&str, &StoredRefresh)>,
        retire: Option<&str>,
        now: i64,
    ) -> Result<GrantRecord, StoreError> {
        let _writer = self.writer().await;
        let mut tx = self.pool.begin().await?;
        if let Some(old) = retire {
            let won = sqlx::query(
                "UPDATE refresh_tokens SET used_at = $3 WHERE org_id = $1 AND token_hash = $2 AND used_at IS NULL \
                 AND revoked_at IS NULL",
            )
            .bind(org_id)
            .bind(old)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !won {
                tx.rollback().await?;
                return Ok(GrantRecord::TokenRetired);
            }
        }
        if let Some((hash, t)) = new_refresh {
            sqlx::query(
                "INSERT INTO refresh_tokens (org_id, token_hash, family_id, client_id, server_id, user_id, session_id, \
                 scopes, auth_time, amr, issued_at, family_expires_at, idle_expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(org_id)
            .bind(hash)
            .bind(&t.family_id)
            .bind(&t.client_id)
            .bind(&t.server_id)
            .bind(&t.user_id)
            .bind(&t.session_id)
            .bind(json(&t.scopes))
            .bind(t.auth_time)
            .bind(json(&t.amr))
            .bind(t.issued_at)
            .bind(t.family_expires_at)
            .bind(t.idle_expires_at)
            .execute(&mut *tx)
            .await?;
        }
        // Last, right before the commit: a revocation committed since this grant began is
        // seen here (`revoke_family` marks the family before it sweeps its tokens).
        let recorded = sqlx::query(
            "INSERT INTO grant_access_tokens (org_id, family_id, jti, expires_at) SELECT $1, $2, $3, $4 \
             WHERE NOT EXISTS (SELECT 1 FROM revoked_families WHERE org_id = $1 AND family_id = $2)",
        )
        .bind(org_id)
        .bind(family_id)
        .bind(access.0)
        .bind(access.1)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !recorded {
            tx.rollback().await?;
            return Ok(GrantRecord::FamilyRevoked);
        }
        tx.commit().await?;
        Ok(GrantRecord::Recorded)
    }

    /// Revokes a whole token family: every refresh token in it, every access token issued
    /// in it (recorded as revoked, as `/v1/revoke` does), and its codes not redeemed yet.
    /// The family is marked first and committed, then swept, so a grant being recorded
    /// concurrently either sees the mark or is swept. Returns how many refresh tokens
    /// were still live.
    pub async fn revoke_family(&self, org_id: &str, family_id: &str, now: i64) -> Result<u64, StoreError> {
        sqlx::query(
            "INSERT INTO revoked_families (org_id, family_id, revoked_at) VALUES ($1, $2, $3) \
             ON CONFLICT (org_id, family_id) DO NOTHING",
        )
        .bind(org_id)
        .bind(family_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $3 WHERE org_id = $1 AND family_id = $2 AND revoked_at IS NULL",
        )
        .bind(org_id)
        .bind(family_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE authorization_codes SET used_at = $3 WHERE org_id = $1 AND family_id = $2 AND used_at IS NULL",
        )
        .bind(org_id)
        .bind(family_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO revoked_tokens (org_id, jti, expires_at) \
             SELECT org_id, jti, expires_at FROM grant_access_tokens WHERE org_id = $1 AND family_id = $2 \
             ON CONFLICT (org_id, jti) DO NOTHING",
        )
        .bind(org_id)
        .bind(family_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Ends everything a user holds: sessions, refresh token families and the access
    /// tokens issued in them (deactivation, suspension).
    pub async fn revoke_user_grants(&self, org_id: &str, user_id: &str, now: i64) -> Result<(), StoreError> {
        let families: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT family_id FROM refresh_tokens WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL \
             UNION SELECT DISTINCT family_id FROM authorization_codes WHERE org_id = $1 AND user_id = $2",
        )
        .bind(org_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        for f in families {
            self.revoke_family(org_id, &f, now).await?;
        }
        sqlx::query("DELETE FROM sessions WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops expired codes, flows, sessions and access-token records.
    pub async fn purge_people(&self, now: i64, margin: i64) -> Result<(), StoreError> {
        for sql in [
            "DELETE FROM authorization_codes WHERE expires_at < $1",
            "DELETE FROM login_flows WHERE expires_at < $1",
            "DELETE FROM sessions WHERE expires_at < $1",
            "DELETE FROM grant_access_tokens WHERE expires_at < $1",
            // Retired and revoked tokens are kept until they would have expired anyway, so
            // that reuse is still recognised; then they go.
            "DELETE FROM refresh_tokens WHERE idle_expires_at < $1 OR family_expires_at < $1",
        ] {
            sqlx::query(sql).bind(now - margin).execute(&self.pool).await?;
        }
        Ok(())
    }
}
