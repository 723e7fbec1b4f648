//! People: users, groups, the user lifecycle as Okta models it, and the org's sign-in
//! settings (password policy, lockout, branding).
//!
//! Owns the states a user can be in and which transitions are allowed between them; the
//! identity provider carries the transitions out (and revokes what they must revoke). It
//! must never hold a password or a hash: credentials live in the store only.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Okta's user statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserStatus {
    /// Created, not yet activated.
    #[default]
    Staged,
    /// Activated without a password: waits for one.
    Provisioned,
    Active,
    /// Temporarily barred by an administrator.
    Suspended,
    /// Too many failed sign-ins; unlocks by itself after the lockout window.
    LockedOut,
    /// Deactivated: can no longer sign in; may be deleted.
    Deprovisioned,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Staged => "STAGED",
            UserStatus::Provisioned => "PROVISIONED",
            UserStatus::Active => "ACTIVE",
            UserStatus::Suspended => "SUSPENDED",
            UserStatus::LockedOut => "LOCKED_OUT",
            UserStatus::Deprovisioned => "DEPROVISIONED",
        }
    }

    /// Whether tokens already issued to the user stay usable (refresh, userinfo). A
    /// lockout only stops password sign-in: locking someone out must not log them out of
    /// every app (that would let anyone end a user's sessions with ten wrong passwords).
    pub fn keeps_grants(self) -> bool {
        matches!(self, UserStatus::Active | UserStatus::LockedOut)
    }

    /// Whether the user's grants are to be revoked when they are met.
    pub fn ends_grants(self) -> bool {
        matches!(self, UserStatus::Suspended | UserStatus::Deprovisioned)
    }

    pub fn parse(s: &str) -> Option<UserStatus> {
        use UserStatus::*;
        [Staged, Provisioned, Active, Suspended, LockedOut, Deprovisioned]
            .into_iter()
            .find(|u| u.as_str() == s)
    }
}

/// The lifecycle operations of Okta's `/api/v1/users/{id}/lifecycle/*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Activate,
    Deactivate,
    Suspend,
    Unsuspend,
    Unlock,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Activate => "activate",
            Lifecycle::Deactivate => "deactivate",
            Lifecycle::Suspend => "suspend",
            Lifecycle::Unsuspend => "unsuspend",
            Lifecycle::Unlock => "unlock",
        }
    }

    /// The status after the operation, or why it is not allowed from `from`.
    /// `has_password` decides whether activation lands in ACTIVE or PROVISIONED.
    pub fn apply(self, from: UserStatus, has_password: bool) -> Result<UserStatus, String> {
        use UserStatus::*;
        let to = match (self, from) {
            (Lifecycle::Activate, Staged | Provisioned | Deprovisioned) => {
                if has_password {
                    Active
                } else {
                    Provisioned
                }
            }
            (Lifecycle::Deactivate, s) if s != Deprovisioned => Deprovisioned,
            (Lifecycle::Suspend, Active) => Suspended,
            (Lifecycle::Unsuspend, Suspended) => Active,
            (Lifecycle::Unlock, LockedOut) => Active,
            _ => {
                return Err(format!(
                    "cannot {} a user whose status is {}",
                    self.as_str(),
                    from.as_str()
                ));
            }
        };
        Ok(to)
    }

    /// Whether the operation must end the user's sessions and refresh tokens at once.
    pub fn revokes_grants(self) -> bool {
        matches!(self, Lifecycle::Deactivate | Lifecycle::Suspend)
    }
}

/// A user as the org file declares it. `login` is the key; the password comes from an
/// environment variable (`passwordEnv`), never from the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserSpec {
    pub login: String,
    /// ACTIVE (the default) activates the user; STAGED leaves them staged; SUSPENDED and
    /// DEPROVISIONED are set as they are.
    #[serde(default = "active")]
    pub status: UserStatus,
    /// Standard attributes (email, firstName, lastName, displayName, department, locale...)
    /// and custom ones, all available to claims as `user.profile`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub profile: Map<String, Value>,
    /// Names of the groups the user belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The environment variable holding the user's initial password, for `apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

fn active() -> UserStatus {
    UserStatus::Active
}

/// A group: a name users are members of, and a description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A user as stored (without credentials).
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub login: String,
    pub status: UserStatus,
    pub profile: Map<String, Value>,
    /// Group names, sorted.
    pub groups: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl User {
    /// `user` in claim expressions: `{id, login, status, profile, groups}`.
    pub fn expression_value(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "login": self.login,
            "status": self.status.as_str(),
            "profile": self.profile,
            "groups": self.groups,
        })
    }

    pub fn profile_str(&self, key: &str) -> Option<&str> {
        self.profile.get(key).and_then(Value::as_str)
    }
}

/// Longest login accepted anywhere (Okta: 100).
pub const MAX_LOGIN_LEN: usize = 100;

/// The org's password policy, lockout and sign-in rate limits, as the org file's
/// `signIn` section sets them. Defaults follow OWASP's and Okta's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SignInSettings {
    /// Shortest password accepted (NIST 800-63B: at least 8; OWASP: 12 without MFA).
    pub password_min_length: u32,
    /// A new password may not repeat any of the last N.
    pub password_history: u32,
    /// Refuse passwords on the shipped list of breached, common passwords.
    pub block_common_passwords: bool,
    /// Failed sign-ins in a row before the account is locked out.
    pub max_failed_attempts: u32,
    /// How long a lockout lasts before the account unlocks by itself.
    pub lockout_minutes: u32,
    /// Sign-in attempts per minute for one login name (whether it exists or not).
    pub attempts_per_minute_per_login: u32,
    /// Sign-in attempts per minute from one client address.
    pub attempts_per_minute_per_ip: u32,
    /// How long a sign-in session lasts (single sign-on across the org's apps).
    pub session_minutes: u32,
    pub branding: Branding,
}

impl Default for SignInSettings {
    fn default() -> Self {
        SignInSettings {
            password_min_length: 12,
            password_history: 4,
            block_common_passwords: true,
            max_failed_attempts: 10,
            lockout_minutes: 15,
            attempts_per_minute_per_login: 10,
            attempts_per_minute_per_ip: 60,
            session_minutes: 120,
            branding: Branding::default(),
        }
    }
}

/// What the hosted pages look like for this org.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Branding {
    pub org_name: String,
    /// An `https:` (or site-relative) URL of the logo.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
    /// CSS colour of buttons and links, `#rrggbb`.
    pub primary_color: String,
    pub background_color: String,
}

impl Default for Branding {
    fn default() -> Self {
        Branding {
            org_name: "Portcullis".into(),
            logo_url: None,
            primary_color: "#1f5fbf".into(),
            background_color: "#f4f6f9".into(),
        }
    }
}

/// Whether `c` is a `#rrggbb` colour (the only form pages accept, so no CSS can be injected).
pub fn is_hex_color(c: &str) -> bool {
    c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_follows_okta() {
        use Lifecycle::*;
        use UserStatus::*;
        assert_eq!(Activate.apply(Staged, true), Ok(Active));
        assert_eq!(Activate.apply(Staged, false), Ok(Provisioned));
        assert_eq!(Suspend.apply(Active, true), Ok(Suspended));
        assert!(Suspend.apply(Staged, true).is_err());
        assert_eq!(Unsuspend.apply(Suspended, true), Ok(Active));
        assert_eq!(Unlock.apply(LockedOut, true), Ok(Active));
        assert!(Unlock.apply(Active, true).is_err());
        assert_eq!(Deactivate.apply(LockedOut, true), Ok(Deprovisioned));
        assert!(Deactivate.apply(Deprovisioned, true).is_err());
        assert!(Deactivate.revokes_grants() && Suspend.revokes_grants() && !Unlock.revokes_grants());
    }

    #[test]
    fn colours_are_strict() {
        assert!(is_hex_color("#a0B1c2"));
        assert!(!is_hex_color("red"));
        assert!(!is_hex_color("#fff;}body{"));
    }
}
