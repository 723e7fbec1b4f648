//! Directory operations that span several store calls: creating users with a password,
//! lifecycle transitions (and the revocations they imply), password changes under the
//! org's policy, and factor resets. Used by the CLI and by org files.

use portcullis_core::{Lifecycle, SignInSettings, User, UserStatus};
use portcullis_store::{Store, StoreError};
use serde_json::{Map, Value};

use super::password::{self, PasswordRejected};

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("no user with the login or id '{0}'")]
    NotFound(String),
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Password(#[from] PasswordRejected),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A user by login, or by id (`00u...`).
pub async fn find(store: &Store, org_id: &str, login_or_id: &str) -> Result<User, DirectoryError> {
    let id = match store.user_by_login(org_id, login_or_id).await? {
        Some(u) => u.user.id,
        None => login_or_id.to_owned(),
    };
    match store.user_by_id(org_id, &id).await? {
        Some(u) => Ok(u.user),
        None => Err(DirectoryError::NotFound(login_or_id.to_owned())),
    }
}

/// Creates a user; with a password the user can be ACTIVE, without one an activation
/// leaves them PROVISIONED (Okta's rule).
pub async fn create_user(
    store: &Store,
    org_id: &str,
    login: &str,
    profile: &Map<String, Value>,
    password: Option<&str>,
    activate: bool,
    now: i64,
) -> Result<User, DirectoryError> {
    if login.is_empty()
        || login.len() > portcullis_core::MAX_LOGIN_LEN
        || login.chars().any(char::is_whitespace)
    {
        return Err(DirectoryError::NotAllowed(format!(
            "a login must be 1 to {} characters without spaces",
            portcullis_core::MAX_LOGIN_LEN
        )));
    }
    if store.user_by_login(org_id, login).await?.is_some() {
        return Err(DirectoryError::NotAllowed(format!(
            "the login '{login}' is taken"
        )));
    }
    let settings = store.sign_in_settings(org_id).await?;
    if let Some(p) = password {
        password::check_policy(p, login, &settings)?;
    }
    let id = store
        .create_user(org_id, login, UserStatus::Staged, profile, now)
        .await?;
    if let Some(p) = password {
        let hash = hash_off_thread(p).await?;
        store
            .set_password(org_id, &id, &hash, settings.password_history, now)
            .await?;
    }
    if activate {
        let to = Lifecycle::Activate
            .apply(UserStatus::Staged, password.is_some())
            .map_err(DirectoryError::NotAllowed)?;
        store.set_user_status(org_id, &id, to, now).await?;
    }
    find(store, org_id, &id).await
}

/// Carries out a lifecycle operation; deactivation and suspension end the user's
/// sessions and revoke their refresh tokens and the access tokens issued with them, at once.
pub async fn lifecycle(
    store: &Store,
    org_id: &str,
    user: &User,
    op: Lifecycle,
    now: i64,
) -> Result<UserStatus, DirectoryError> {
    let creds = store
        .user_by_id(org_id, &user.id)
        .await?
        .ok_or_else(|| DirectoryError::NotFound(user.id.clone()))?;
    let to = op
        .apply(creds.user.status, creds.password_hash.is_some())
        .map_err(DirectoryError::NotAllowed)?;
    store.set_user_status(org_id, &user.id, to, now).await?;
    if op.revokes_grants() {
        store.revoke_user_grants(org_id, &user.id, now).await?;
    }
    Ok(to)
}

/// Sets a new password under the org's policy (length, breached list, history). An
/// administrator's reset also unlocks the account and ends the user's sessions.
pub async fn set_password(
    store: &Store,
    org_id: &str,
    user: &User,
    new_password: &str,
    now: i64,
) -> Result<(), DirectoryError> {
    let settings: SignInSettings = store.sign_in_settings(org_id).await?;
    password::check_policy(new_password, &user.login, &settings)?;
    let recent = store
        .password_history(org_id, &user.id, settings.password_history)
        .await?;
    let candidate = new_password.to_owned();
    let reused = tokio::task::spawn_blocking(move || password::reused(&candidate, &recent))
        .await
        .unwrap_or(true);
    if reused {
        return Err(PasswordRejected::Reused.into());
    }
    let hash = hash_off_thread(new_password).await?;
    store
        .set_password(org_id, &user.id, &hash, settings.password_history, now)
        .await?;
    match user.status {
        UserStatus::LockedOut => {
            store
                .set_user_status(org_id, &user.id, UserStatus::Active, now)
                .await?
        }
        UserStatus::Provisioned => {
            store
                .set_user_status(org_id, &user.id, UserStatus::Active, now)
                .await?
        }
        _ => {}
    }
    store.revoke_user_grants(org_id, &user.id, now).await?;
    Ok(())
}

async fn hash_off_thread(p: &str) -> Result<String, DirectoryError> {
    let p = p.to_owned();
    tokio::task::spawn_blocking(move || password::hash(&p))
        .await
        .map_err(|_| DirectoryError::NotAllowed("the server is shutting down".into()))
}
