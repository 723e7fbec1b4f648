//! The password step of sign-in: rate limits per login and per client address, the
//! argon2 check (against a dummy hash when the login is unknown), lockout after too many
//! failures in a row with automatic unlock after the window.
//!
//! Every failure is the same [`SignInError::Failed`]: unknown login, wrong password,
//! locked, suspended or deactivated user look alike in content and in time.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use portcullis_core::{SignInSettings, User, UserStatus};
use portcullis_store::{Store, StoreError, UserCredentials};

use super::password;

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The one answer for every failed sign-in.
    #[error("Unable to sign in.")]
    Failed,
    #[error("Too many sign-in attempts; try again in {0} seconds.")]
    RateLimited(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// In-memory rate limits of sign-in attempts (GCRA, from `governor`), per login name and
/// per client address. Per node: with several nodes an attacker gets N times the rate,
/// which lockout (in the database, shared) still bounds.
pub struct SignInLimits {
    per_login: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Second-factor attempts per user.
    per_user_mfa: DefaultKeyedRateLimiter<String>,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN))
}

impl SignInLimits {
    pub fn new(settings: &SignInSettings) -> SignInLimits {
        SignInLimits {
            per_login: RateLimiter::keyed(per_minute(settings.attempts_per_minute_per_login)),
            per_ip: RateLimiter::keyed(per_minute(settings.attempts_per_minute_per_ip)),
            per_user_mfa: RateLimiter::keyed(per_minute(settings.attempts_per_minute_per_login)),
        }
    }

    fn wait(n: governor::NotUntil<governor::clock::QuantaInstant>) -> u64 {
        n.wait_time_from(DefaultClock::default().now()).as_secs().max(1)
    }

    /// Counts one password attempt; `Err(seconds)` when over a limit.
    pub fn check_password_attempt(&self, login: &str, ip: IpAddr) -> Result<(), u64> {
        self.per_ip.check_key(&ip).map_err(Self::wait)?;
        self.per_login
            .check_key(&login.to_lowercase())
            .map_err(Self::wait)
    }

    /// Counts one second-factor attempt of a user.
    pub fn check_mfa_attempt(&self, user_id: &str, ip: IpAddr) -> Result<(), u64> {
        self.per_ip.check_key(&ip).map_err(Self::wait)?;
        self.per_user_mfa
            .check_key(&user_id.to_owned())
            .map_err(Self::wait)
    }

    /// Forgets keys that are back to full capacity (called now and then).
    pub fn shrink(&self) {
        self.per_login.retain_recent();
        self.per_ip.retain_recent();
        self.per_user_mfa.retain_recent();
    }
}

/// One password attempt: what was typed, and where it came from.
pub struct Attempt<'a> {
    pub login: &'a str,
    pub password: &'a str,
    pub ip: IpAddr,
}

/// Checks a login and password; on success the failure count is reset (and an expired
/// lockout lifted) and the user returned.
pub async fn check_password(
    store: &Store,
    org_id: &str,
    settings: &SignInSettings,
    limits: &Arc<SignInLimits>,
    attempt: Attempt<'_>,
    now: i64,
) -> Result<User, SignInError> {
    let Attempt {
        login,
        password: password_given,
        ip,
    } = attempt;
    let login = login.trim();
    if login.is_empty()
        || login.len() > portcullis_core::MAX_LOGIN_LEN
        || password_given.is_empty()
        || password_given.len() > password::MAX_PASSWORD_LEN
    {
        return Err(SignInError::Failed);
    }
    limits
        .check_password_attempt(login, ip)
        .map_err(SignInError::RateLimited)?;
    let found: Option<UserCredentials> = store.user_by_login(org_id, login).await?;
    let stored = found
        .as_ref()
        .and_then(|c| c.password_hash.clone())
        .unwrap_or_else(|| password::dummy_hash().to_owned());
    let given = password_given.to_owned();
    let matches = tokio::task::spawn_blocking(move || password::verify(&given, &stored))
        .await
        .unwrap_or(false);
    let Some(creds) = found else {
        return Err(SignInError::Failed);
    };
    let lock_over = creds.locked_until.is_none_or(|t| t <= now);
    let may_sign_in = match creds.user.status {
        UserStatus::Active => true,
        UserStatus::LockedOut => lock_over,
        _ => false,
    };
    if matches && may_sign_in && creds.password_hash.is_some() {
        store.record_sign_in(org_id, &creds.user.id, now).await?;
        let mut user = creds.user;
        user.status = UserStatus::Active;
        return Ok(user);
    }
    if !matches
        && (creds.user.status == UserStatus::Active
            || (creds.user.status == UserStatus::LockedOut && lock_over))
    {
        // Recorded off the response path, so a known login answers no slower than an
        // unknown one.
        let store = store.clone();
        let (org, id) = (org_id.to_owned(), creds.user.id.clone());
        let lock_until = now + settings.lockout_minutes as i64 * 60;
        let max = settings.max_failed_attempts;
        tokio::spawn(async move {
            match store.record_failed_sign_in(&org, &id, max, lock_until, now).await {
                Ok(UserStatus::LockedOut) => {
                    tracing::warn!(user = %id, "user locked out after failed sign-ins")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not record a failed sign-in"),
            }
        });
    }
    Err(SignInError::Failed)
}

/// How often [`SignInLimits::shrink`] runs.
pub const SHRINK_INTERVAL: Duration = Duration::from_secs(60);
