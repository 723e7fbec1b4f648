//! Authorization servers, scopes, claims, access policies, rules and clients.
//!
//! These types are also the shape of the declarative org file (`portcullis apply`): field
//! names follow Okta's management API (camelCase), unknown fields are rejected, and every
//! optional field has the default Okta gives it.

use serde::{Deserialize, Serialize};

/// Lifecycle status shared by servers, policies, rules and clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    #[default]
    Active,
    Inactive,
}

impl Status {
    pub fn is_active(self) -> bool {
        self == Status::Active
    }
}

/// OAuth 2.0 grant types, by their wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GrantType {
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    #[serde(rename = "authorization_code")]
    AuthorizationCode,
    #[serde(rename = "refresh_token")]
    RefreshToken,
    #[serde(rename = "urn:ietf:params:oauth:grant-type:device_code")]
    DeviceCode,
    #[serde(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
}

impl GrantType {
    pub const ALL: [GrantType; 5] = [
        GrantType::ClientCredentials,
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::DeviceCode,
        GrantType::TokenExchange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            GrantType::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }

    pub fn parse(s: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// Signing algorithm of an authorization server's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum SigningAlg {
    #[default]
    RS256,
    ES256,
    EdDSA,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }
    pub fn parse(s: &str) -> Option<SigningAlg> {
        [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// A custom authorization server (Okta's API Access Management).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationServer {
    /// `default`, or a generated `aus...` id, or any url-safe name the file gives.
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Accepted `aud` values; the first is put in tokens as a string when it is the only one.
    pub audiences: Vec<String>,
    #[serde(default)]
    pub signing_alg: SigningAlg,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub claims: Vec<Claim>,
    #[serde(default)]
    pub policies: Vec<Policy>,
}

impl AuthorizationServer {
    pub fn scope(&self, name: &str) -> Option<&Scope> {
        self.scopes.iter().find(|s| s.name == name)
    }
}

/// Whether a scope needs the user's consent (people flows; machine tokens ignore it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Consent {
    #[default]
    Implicit,
    Required,
}

/// Whether discovery documents list a scope in `scopes_supported`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MetadataPublish {
    #[default]
    AllClients,
    NoClients,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scope {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Granted when a request names no scope.
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub consent: Consent,
    #[serde(default)]
    pub metadata_publish: MetadataPublish,
}

/// Which token a claim goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClaimTokenType {
    #[default]
    AccessToken,
    IdToken,
}

/// A custom claim. `value` is an expression (CEL) evaluated when a token is minted; for
/// machine tokens the variable `app` holds the client (`app.clientId`, `app.name`,
/// `app.profile.<attribute>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Claim {
    pub name: String,
    #[serde(default)]
    pub token_type: ClaimTokenType,
    pub value: String,
    /// Include only when one of these scopes is granted; empty means any scope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub status: Status,
}

/// Which clients a policy applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClientSelector {
    /// The string `ALL_CLIENTS`.
    All(AllClients),
    /// A list of client ids.
    Only(Vec<String>),
}

/// The literal `ALL_CLIENTS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllClients {
    #[serde(rename = "ALL_CLIENTS")]
    AllClients,
}

impl Default for ClientSelector {
    fn default() -> Self {
        ClientSelector::All(AllClients::AllClients)
    }
}

impl ClientSelector {
    pub fn includes(&self, client_id: &str) -> bool {
        match self {
            ClientSelector::All(_) => true,
            ClientSelector::Only(ids) => ids.iter().any(|c| c == client_id),
        }
    }
}

/// An access policy: which clients it governs, and its rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// 1 is evaluated first.
    pub priority: u32,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub clients: ClientSelector,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// Which scopes a rule lets a client request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScopeSelector {
    /// The string `*`: any scope the server defines.
    Any(AnyScope),
    Only(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnyScope {
    #[serde(rename = "*")]
    Any,
}

impl Default for ScopeSelector {
    fn default() -> Self {
        ScopeSelector::Any(AnyScope::Any)
    }
}

impl ScopeSelector {
    pub fn allows(&self, scope: &str) -> bool {
        match self {
            ScopeSelector::Any(_) => true,
            ScopeSelector::Only(list) => list.iter().any(|s| s == scope),
        }
    }
}

pub const DEFAULT_ACCESS_TOKEN_LIFETIME_MINUTES: u32 = 60;
/// Okta's bounds: five minutes to one day.
pub const ACCESS_TOKEN_LIFETIME_MINUTES_RANGE: std::ops::RangeInclusive<u32> = 5..=1440;

fn default_access_token_lifetime() -> u32 {
    DEFAULT_ACCESS_TOKEN_LIFETIME_MINUTES
}

/// A rule of an access policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub priority: u32,
    #[serde(default)]
    pub status: Status,
    pub grant_types: Vec<GrantType>,
    #[serde(default)]
    pub scopes: ScopeSelector,
    #[serde(default = "default_access_token_lifetime")]
    pub access_token_lifetime_minutes: u32,
    /// Which people the rule covers in user grants (machine grants have no user).
    #[serde(default, skip_serializing_if = "PeopleSelector::is_everyone")]
    pub people: PeopleSelector,
    /// How long a refresh token family lives from its first issue; 0 is unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refresh_token_lifetime_minutes: u32,
    /// A refresh token unused this long expires (Okta's default: 7 days).
    #[serde(default = "default_refresh_window")]
    pub refresh_token_window_minutes: u32,
    /// Every refresh returns a new refresh token and retires the old one (RFC 9700 §4.14.2).
    #[serde(default = "yes")]
    pub rotate_refresh_tokens: bool,
    /// Seconds a just-rotated refresh token is still accepted, so that two concurrent
    /// refreshes by one honest client do not look like theft (0..60, Okta's default 30).
    #[serde(default = "default_grace")]
    pub refresh_token_grace_seconds: u32,
    /// Sign-ins under this rule need a second factor.
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_mfa: bool,
}

pub const DEFAULT_REFRESH_WINDOW_MINUTES: u32 = 7 * 24 * 60;
pub const MAX_REFRESH_GRACE_SECONDS: u32 = 60;

fn default_refresh_window() -> u32 {
    DEFAULT_REFRESH_WINDOW_MINUTES
}
fn default_grace() -> u32 {
    30
}
fn yes() -> bool {
    true
}
fn is_zero(v: &u32) -> bool {
    *v == 0
}
fn is_false(v: &bool) -> bool {
    !*v
}

/// Which users a rule covers: everyone, or members of any of the named groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PeopleSelector {
    /// The string `EVERYONE`.
    Everyone(Everyone),
    Groups {
        groups: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Everyone {
    #[serde(rename = "EVERYONE")]
    Everyone,
}

impl Default for PeopleSelector {
    fn default() -> Self {
        PeopleSelector::Everyone(Everyone::Everyone)
    }
}

impl PeopleSelector {
    pub fn is_everyone(&self) -> bool {
        matches!(self, PeopleSelector::Everyone(_))
    }

    /// Whether a user in `groups` is covered; `None` (no user: a machine grant) always is.
    pub fn includes(&self, groups: Option<&[String]>) -> bool {
        match (self, groups) {
            (PeopleSelector::Everyone(_), _) | (_, None) => true,
            (PeopleSelector::Groups { groups: wanted }, Some(have)) => {
                wanted.iter().any(|g| have.contains(g))
            }
        }
    }
}

/// Application types, as Okta names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppType {
    Web,
    Spa,
    Native,
    Service,
}

impl AppType {
    /// Public clients cannot keep a secret (RFC 6749 §2.1).
    pub fn is_public(self) -> bool {
        matches!(self, AppType::Spa | AppType::Native)
    }
}

/// Token endpoint client authentication methods (RFC 7591 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::None => "none",
        }
    }
}

/// An OAuth client (an Okta "app").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub app_type: AppType,
    #[serde(default)]
    pub status: Status,
    pub grant_types: Vec<GrantType>,
    pub token_endpoint_auth_method: AuthMethod,
    /// Name of the environment variable that holds the client secret, for `apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// Custom attributes, available to claim expressions as `app.profile`.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub profile: serde_json::Map<String, serde_json::Value>,
    /// Where `/v1/authorize` may send the user back; matched exactly (RFC 9700 §4.1.3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// Where `/v1/logout` may send the user after signing out; matched exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Require PKCE of this confidential client too (public clients always need it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub pkce_required: bool,
    /// Sign-ins to this app need a second factor.
    #[serde(default, skip_serializing_if = "is_false")]
    pub require_mfa: bool,
}

impl Client {
    /// RFC 9700 §2.1.1: PKCE for every public client, and for others that ask for it.
    pub fn needs_pkce(&self) -> bool {
        self.pkce_required || self.app_type.is_public()
    }

    /// The sign-in settings kept beside the client's core fields.
    pub fn sign_in_settings(&self) -> serde_json::Value {
        serde_json::json!({
            "redirectUris": self.redirect_uris,
            "postLogoutRedirectUris": self.post_logout_redirect_uris,
            "pkceRequired": self.pkce_required,
            "requireMfa": self.require_mfa,
        })
    }

    /// Restores what [`Client::sign_in_settings`] wrote.
    pub fn set_sign_in_settings(&mut self, v: &serde_json::Value) {
        let list = |k: &str| -> Vec<String> {
            v.get(k)
                .and_then(|l| l.as_array())
                .map(|l| l.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                .unwrap_or_default()
        };
        self.redirect_uris = list("redirectUris");
        self.post_logout_redirect_uris = list("postLogoutRedirectUris");
        self.pkce_required = v.get("pkceRequired").and_then(|b| b.as_bool()).unwrap_or(false);
        self.require_mfa = v.get("requireMfa").and_then(|b| b.as_bool()).unwrap_or(false);
    }
}
