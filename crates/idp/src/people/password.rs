//! Passwords: argon2id with OWASP's parameters, and the org's password policy (length,
//! history, the shipped list of breached common passwords).
//!
//! Hashing costs about 14 ms of one core, so callers run it on the blocking pool, never
//! on a request thread. Nothing here logs or returns a password.

use std::collections::HashSet;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use portcullis_core::SignInSettings;

/// Longest password accepted (argon2 takes any length; this bounds the work per request).
pub const MAX_PASSWORD_LEN: usize = 256;

/// OWASP Password Storage Cheat Sheet: argon2id, 19 MiB, 2 iterations, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) for `password`.
pub fn hash(password: &str) -> String {
    // 16 random bytes from the system CSPRNG (the PHC string format's recommended salt).
    let mut raw = [0u8; 16];
    portcullis_jose::random_bytes(&mut raw);
    let salt = SaltString::encode_b64(&raw).expect("a 16-byte salt encodes");
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .expect("argon2 hashing with valid parameters does not fail")
}

/// Checks `password` against a stored PHC string, with the parameters it records.
pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A hash of nothing anyone knows, checked when the login is unknown, so that an unknown
/// user costs the same time as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash(&portcullis_jose::opaque_token()))
}

fn common_passwords() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("common-passwords.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    })
}

/// Why a new password is refused; the text is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejected {
    #[error("The password must be at least {0} characters long.")]
    TooShort(u32),
    #[error("The password must be at most {MAX_PASSWORD_LEN} characters long.")]
    TooLong,
    #[error("This password is on a list of passwords exposed in breaches; choose another.")]
    Common,
    #[error("The password must not contain the username.")]
    ContainsLogin,
    #[error("The password was used recently; choose one you have not used before.")]
    Reused,
}

/// Checks a new password against the policy, except history (see [`reused`]).
pub fn check_policy(password: &str, login: &str, policy: &SignInSettings) -> Result<(), PasswordRejected> {
    let chars = password.chars().count();
    if chars < policy.password_min_length as usize {
        return Err(PasswordRejected::TooShort(policy.password_min_length));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(PasswordRejected::TooLong);
    }
    let lower = password.to_lowercase();
    if policy.block_common_passwords && common_passwords().contains(lower.as_str()) {
        return Err(PasswordRejected::Common);
    }
    let local = login.split('@').next().unwrap_or(login).to_lowercase();
    if local.len() >= 4 && lower.contains(&local) {
        return Err(PasswordRejected::ContainsLogin);
    }
    Ok(())
}

/// Whether `password` matches any of the recent hashes (costs one argon2 check each).
pub fn reused(password: &str, recent: &[String]) -> bool {
    recent.iter().any(|h| verify(password, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_carry_owasp_parameters() {
        let h = hash("correct horse battery staple");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery staple", &h));
        assert!(!verify("correct horse battery stapler", &h));
        assert!(!verify("x", "not a hash"));
        assert!(!verify("x", dummy_hash()));
    }

    #[test]
    fn policy_refuses_short_common_and_login_passwords() {
        let p = SignInSettings::default();
        assert_eq!(
            check_policy("short", "a@b.c", &p),
            Err(PasswordRejected::TooShort(12))
        );
        assert_eq!(
            check_policy("PASSWORD1234", "a@b.c", &p),
            Err(PasswordRejected::Common)
        );
        assert_eq!(
            check_policy("alice-is-the-best", "alice@example.com", &p),
            Err(PasswordRejected::ContainsLogin)
        );
        assert_eq!(
            check_policy("tangerine-orbit-42", "alice@example.com", &p),
            Ok(())
        );
        let h = hash("tangerine-orbit-42");
        assert!(reused("tangerine-orbit-42", &[h]));
    }
}
