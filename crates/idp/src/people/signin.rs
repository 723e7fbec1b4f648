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
    /// Every password check slot is taken (each holds 19 MiB); try again shortly.
    #[error("The sign-in service is busy; try again in a moment.")]
    Busy,
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
    /// Sign-in flows started per client address (each is a database row).
    flows_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Password checks running at once: each holds 19 MiB, so memory is bounded.
    hashing: tokio::sync::Semaphore,
}

/// `n` per minute, in bursts of a quarter of that (at least five): a whole minute's
/// quota at once is what a limit is there to prevent.
fn per_minute(n: u32) -> Quota {
    let n = n.max(1);
    let burst = (n / 4).max(5).min(n);
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

/// The key of a client address: IPv4 as is, IPv6 by its /64 (one subscriber's network,
/// which holds addresses by the billion).
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// How long a sign-in may wait for a password check slot.
const HASH_SLOT_WAIT: Duration = Duration::from_secs(10);

impl SignInLimits {
    pub fn new(settings: &SignInSettings) -> SignInLimits {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        SignInLimits {
            per_login: RateLimiter::keyed(per_minute(settings.attempts_per_minute_per_login)),
            per_ip: RateLimiter::keyed(per_minute(settings.attempts_per_minute_per_ip)),
            per_user_mfa: RateLimiter::keyed(per_minute(settings.attempts_per_minute_per_login)),
            flows_per_ip: RateLimiter::keyed(per_minute(
                settings.attempts_per_minute_per_ip.saturating_mul(2),
            )),
            hashing: tokio::sync::Semaphore::new(2 * cores),
        }
    }

    /// Counts one sign-in flow started from `ip`; `Err(seconds)` when over the limit.
    pub fn check_flow_start(&self, ip: IpAddr) -> Result<(), u64> {
        self.flows_per_ip.check_key(&ip_key(ip)).map_err(Self::wait)
    }

    /// Runs an argon2 check on the blocking pool once a slot is free.
    pub async fn verify_password(&self, password: String, hash: String) -> Result<bool, SignInError> {
        let _slot = tokio::time::timeout(HASH_SLOT_WAIT, self.hashing.acquire())
            .await
            .map_err(|_| SignInError::Busy)?
            .map_err(|_| SignInError::Busy)?;
        Ok(
            tokio::task::spawn_blocking(move || password::verify(&password, &hash))
                .await
                .unwrap_or(false),
        )
    }

    fn wait(n: governor::NotUntil<governor::clock::QuantaInstant>) -> u64 {
        n.wait_time_from(DefaultClock::default().now()).as_secs().max(1)
    }

    /// Counts one password attempt; `Err(seconds)` when over a limit.
    pub fn check_password_attempt(&self, login: &str, ip: IpAddr) -> Result<(), u64> {
        self.per_ip.check_key(&ip_key(ip)).map_err(Self::wait)?;
        self.per_login
            .check_key(&login.to_lowercase())
            .map_err(Self::wait)
    }

    /// Counts one second-factor attempt of a user.
    pub fn check_mfa_attempt(&self, user_id: &str, ip: IpAddr) -> Result<(), u64> {
        self.per_ip.check_key(&ip_key(ip)).map_err(Self::wait)?;
        self.per_user_mfa
            .check_key(&user_id.to_owned())
            .map_err(Self::wait)
    }

    /// Forgets keys that are back to full capacity (called now and then).
    pub fn shrink(&self) {
        self.per_login.retain_recent();
        self.per_ip.retain_recent();
        self.per_user_mfa.retain_recent();
        self.flows_per_ip.retain_recent();
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
    let matches = limits.verify_password(password_given.to_owned(), stored).await?;
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
        user.groups = store.user_groups(org_id, &user.id).await?;
        return Ok(user);
    }
    if !matches
        && (creds.user.status == UserStatus::Active
            || (creds.user.status == UserStatus::LockedOut && lock_over))
    {
        // Recorded off the response path, so a known login answers no slower than an
        // unknown one.
        let store = store.clone();
        let (org, id, settings) = (org_id.to_owned(), creds.user.id.clone(), settings.clone());
        tokio::spawn(async move {
            if let Err(e) = record_failure(&store, &org, &id, &settings, now).await {
                tracing::warn!(error = %e, "could not record a failed sign-in");
            }
        });
    }
    Err(SignInError::Failed)
}

/// Counts a failed sign-in step (a wrong password or a wrong second-factor code) toward
/// the lockout; returns the user's status afterwards.
pub async fn record_failure(
    store: &Store,
    org_id: &str,
    user_id: &str,
    settings: &SignInSettings,
    now: i64,
) -> Result<UserStatus, StoreError> {
    let lock_until = now + settings.lockout_minutes as i64 * 60;
    let status = store
        .record_failed_sign_in(org_id, user_id, settings.max_failed_attempts, lock_until, now)
        .await?;
    if status == UserStatus::LockedOut {
        tracing::warn!(user = %user_id, "user locked out after failed sign-in steps");
    }
    Ok(status)
}

/// Whether a locked-out user is still within the lockout window.
pub fn locked_now(c: &UserCredentials, now: i64) -> bool {
    c.user.status == UserStatus::LockedOut && c.locked_until.is_some_and(|t| t > now)
}
