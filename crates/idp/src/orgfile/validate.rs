//! Validation of an org file beyond its shape: names, uniqueness, references, expressions,
//! lifetimes. Each problem is a [`FileError`] with the field's path; `locate` then finds
//! the line of the nearest list item through a second, span-recording parse.

use std::collections::{BTreeSet, HashSet};

use portcullis_core::scope::OIDC_SCOPES;
use portcullis_core::*;
use portcullis_expr::Expression;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use super::document::{FileError, OrgDocument};
use crate::token::RESERVED_CLAIMS;

fn id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn scope_ok(s: &str) -> bool {
    portcullis_core::scope::parse_scope_param(s)
        .map(|v| v.len() == 1 && v[0] == s)
        .unwrap_or(false)
}

fn dupes<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    items.filter(|i| !seen.insert(*i)).collect()
}

/// Checks that need only the file.
pub(crate) fn document(doc: &OrgDocument) -> Vec<FileError> {
    let mut e = Vec::new();
    let mut err = |path: String, msg: String| e.push(FileError::at_path(path, msg));
    for d in dupes(doc.authorization_servers.iter().map(|s| s.id.as_str())) {
        err(
            "authorizationServers".into(),
            format!("the id '{d}' is used twice"),
        );
    }
    for d in dupes(doc.clients.iter().map(|c| c.client_id.as_str())) {
        err("clients".into(), format!("the clientId '{d}' is used twice"));
    }
    for (i, s) in doc.authorization_servers.iter().enumerate() {
        let at = format!("authorizationServers[{i}]");
        if !id_ok(&s.id) {
            err(
                format!("{at}.id"),
                "use 1-64 letters, digits, '-', '_' or '.'".into(),
            );
        }
        if s.audiences.is_empty() || s.audiences.iter().any(|a| a.is_empty()) {
            err(
                format!("{at}.audiences"),
                "give at least one non-empty audience, e.g. api://default".into(),
            );
        }
        for d in dupes(s.scopes.iter().map(|x| x.name.as_str())) {
            err(
                format!("{at}.scopes"),
                format!("the scope '{d}' is defined twice"),
            );
        }
        let defined: BTreeSet<&str> = s.scopes.iter().map(|x| x.name.as_str()).collect();
        for (j, sc) in s.scopes.iter().enumerate() {
            if !scope_ok(&sc.name) {
                err(
                    format!("{at}.scopes[{j}].name"),
                    format!("'{}' is not a valid scope name (RFC 6749 §3.3)", sc.name),
                );
            }
        }
        for (j, c) in s.claims.iter().enumerate() {
            let cat = format!("{at}.claims[{j}]");
            if RESERVED_CLAIMS.contains(&c.name.as_str()) {
                err(
                    format!("{cat}.name"),
                    format!("'{}' is a reserved claim and cannot be customised", c.name),
                );
            }
            if c.name.is_empty() || c.name.len() > 128 {
                err(format!("{cat}.name"), "give a name of 1-128 characters".into());
            }
            if let Err(x) = Expression::compile(&c.value) {
                err(format!("{cat}.value"), format!("{x}"));
            }
            for sc in c.scopes.iter().filter(|sc| !defined.contains(sc.as_str())) {
                err(
                    format!("{cat}.scopes"),
                    format!("the scope '{sc}' is not defined on this server"),
                );
            }
        }
        for d in dupes(s.claims.iter().map(|c| c.name.as_str())) {
            if s.claims
                .iter()
                .filter(|c| c.name == d)
                .map(|c| c.token_type)
                .collect::<HashSet<_>>()
                .len()
                < 2
            {
                err(
                    format!("{at}.claims"),
                    format!("the claim '{d}' is defined twice for the same token type"),
                );
            }
        }
        for d in dupes(s.policies.iter().map(|p| p.name.as_str())) {
            err(
                format!("{at}.policies"),
                format!("the policy name '{d}' is used twice"),
            );
        }
        let prios: Vec<String> = s.policies.iter().map(|p| p.priority.to_string()).collect();
        for d in dupes(prios.iter().map(String::as_str)) {
            err(
                format!("{at}.policies"),
                format!("two policies have priority {d}; priorities must be unique"),
            );
        }
        for (j, p) in s.policies.iter().enumerate() {
            let pat = format!("{at}.policies[{j}]");
            if p.priority == 0 {
                err(format!("{pat}.priority"), "priorities start at 1".into());
            }
            for d in dupes(p.rules.iter().map(|r| r.name.as_str())) {
                err(
                    format!("{pat}.rules"),
                    format!("the rule name '{d}' is used twice"),
                );
            }
            for (k, r) in p.rules.iter().enumerate() {
                let rat = format!("{pat}.rules[{k}]");
                if r.grant_types.is_empty() {
                    err(
                        format!("{rat}.grantTypes"),
                        "list at least one grant type, e.g. client_credentials".into(),
                    );
                }
                if r.priority == 0 {
                    err(format!("{rat}.priority"), "priorities start at 1".into());
                }
                if !ACCESS_TOKEN_LIFETIME_MINUTES_RANGE.contains(&r.access_token_lifetime_minutes) {
                    err(
                        format!("{rat}.accessTokenLifetimeMinutes"),
                        format!(
                            "{} is out of range; use {} to {} minutes",
                            r.access_token_lifetime_minutes,
                            ACCESS_TOKEN_LIFETIME_MINUTES_RANGE.start(),
                            ACCESS_TOKEN_LIFETIME_MINUTES_RANGE.end()
                        ),
                    );
                }
                if let ScopeSelector::Only(list) = &r.scopes {
                    for sc in list
                        .iter()
                        .filter(|sc| !defined.contains(sc.as_str()) && !OIDC_SCOPES.contains(&sc.as_str()))
                    {
                        err(
                            format!("{rat}.scopes"),
                            format!("the scope '{sc}' is not defined on this server"),
                        );
                    }
                }
            }
        }
    }
    for (i, c) in doc.clients.iter().enumerate() {
        let at = format!("clients[{i}]");
        if !id_ok(&c.client_id) {
            err(
                format!("{at}.clientId"),
                "use 1-64 letters, digits, '-', '_' or '.'".into(),
            );
        }
        let public = c.app_type.is_public();
        match (public, c.token_endpoint_auth_method) {
            (true, m) if m != AuthMethod::None => err(
                format!("{at}.tokenEndpointAuthMethod"),
                "spa and native clients are public: use none (and PKCE)".into(),
            ),
            (false, AuthMethod::None) => err(
                format!("{at}.tokenEndpointAuthMethod"),
                "web and service clients are confidential: use client_secret_basic or client_secret_post"
                    .into(),
            ),
            _ => {}
        }
        if c.grant_types.is_empty() {
            err(format!("{at}.grantTypes"), "list at least one grant type".into());
        }
        if public && c.grant_types.contains(&GrantType::ClientCredentials) {
            err(
                format!("{at}.grantTypes"),
                "public clients cannot use client_credentials".into(),
            );
        }
        if public && c.secret_env.is_some() {
            err(format!("{at}.secretEnv"), "public clients have no secret".into());
        }
        for (field, uris) in [
            ("redirectUris", &c.redirect_uris),
            ("postLogoutRedirectUris", &c.post_logout_redirect_uris),
        ] {
            for u in uris {
                if let Some(why) = redirect_uri_problem(u) {
                    err(format!("{at}.{field}"), format!("'{u}': {why}"));
                }
            }
        }
        if c.grant_types.contains(&GrantType::AuthorizationCode) && c.redirect_uris.is_empty() {
            err(
                format!("{at}.redirectUris"),
                "the authorization_code grant needs at least one redirect URI".into(),
            );
        }
    }
    for d in dupes(doc.groups.iter().map(|g| g.name.as_str())) {
        err("groups".into(), format!("the group '{d}' is defined twice"));
    }
    for (i, g) in doc.groups.iter().enumerate() {
        if g.name.trim().is_empty() || g.name.len() > 255 {
            err(
                format!("groups[{i}].name"),
                "give a name of 1-255 characters".into(),
            );
        }
    }
    let logins: Vec<String> = doc.users.iter().map(|u| u.login.to_lowercase()).collect();
    for d in dupes(logins.iter().map(String::as_str)) {
        err(
            "users".into(),
            format!("the login '{d}' is used twice (logins ignore case)"),
        );
    }
    for (i, u) in doc.users.iter().enumerate() {
        let at = format!("users[{i}]");
        if u.login.is_empty() || u.login.len() > MAX_LOGIN_LEN || u.login.chars().any(char::is_whitespace) {
            err(
                format!("{at}.login"),
                format!("use 1-{MAX_LOGIN_LEN} characters without spaces"),
            );
        }
        if matches!(u.status, UserStatus::LockedOut | UserStatus::Provisioned) {
            err(
                format!("{at}.status"),
                "a file can set STAGED, ACTIVE, SUSPENDED or DEPROVISIONED".into(),
            );
        }
    }
    if let Some(si) = &doc.sign_in {
        if si.password_min_length < 8 || si.password_min_length > 256 {
            err(
                "signIn.passwordMinLength".into(),
                "use 8 to 256 (NIST 800-63B: at least 8)".into(),
            );
        }
        if si.max_failed_attempts == 0 || si.lockout_minutes == 0 {
            err(
                "signIn.maxFailedAttempts".into(),
                "lockout needs at least 1 attempt and 1 minute".into(),
            );
        }
        for (f, c) in [
            ("primaryColor", &si.branding.primary_color),
            ("backgroundColor", &si.branding.background_color),
        ] {
            if !is_hex_color(c) {
                err(
                    format!("signIn.branding.{f}"),
                    format!("'{c}' is not a #rrggbb colour"),
                );
            }
        }
        if let Some(l) = &si.branding.logo_url
            && !l.starts_with("https://")
            && !l.starts_with('/')
        {
            err("signIn.branding.logoUrl".into(), "use an https:// URL".into());
        }
    }
    for (i, s) in doc.authorization_servers.iter().enumerate() {
        for (j, p) in s.policies.iter().enumerate() {
            for (k, r) in p.rules.iter().enumerate() {
                let rat = format!("authorizationServers[{i}].policies[{j}].rules[{k}]");
                if r.refresh_token_grace_seconds > MAX_REFRESH_GRACE_SECONDS {
                    err(
                        format!("{rat}.refreshTokenGraceSeconds"),
                        format!("use 0 to {MAX_REFRESH_GRACE_SECONDS} seconds"),
                    );
                }
                if r.refresh_token_window_minutes == 0 {
                    err(
                        format!("{rat}.refreshTokenWindowMinutes"),
                        "use at least 1 minute".into(),
                    );
                }
            }
        }
    }
    e
}

/// RFC 6749 §3.1.2: an absolute URI without a fragment; `http` only for loopback
/// (RFC 8252 §7.3), private-use schemes (`com.example.app:/cb`) for native apps (§7.1);
/// ASCII only and no user information, so what is registered is what is compared.
fn redirect_uri_problem(u: &str) -> Option<&'static str> {
    if u.len() > 2048 || !u.is_ascii() || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("not a valid URI (ASCII, no spaces, at most 2048 characters)");
    }
    let Ok(parsed) = url::Url::parse(u) else {
        return Some("not an absolute URI");
    };
    if parsed.fragment().is_some() {
        return Some("a redirect URI must not have a fragment");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Some("a redirect URI must not carry user information");
    }
    match parsed.scheme() {
        "https" if parsed.host().is_some() => None,
        "http" => match parsed.host_str() {
            Some("localhost" | "127.0.0.1" | "[::1]") => None,
            _ => Some("http is allowed only for loopback addresses; use https"),
        },
        s if s.contains('.') => None,
        _ => Some("use https://, http://localhost or a private-use scheme like com.example.app:/cb"),
    }
}

/// Checks that need the store too: policies may name clients declared elsewhere.
pub(crate) fn references(
    doc: &OrgDocument,
    known_clients: &BTreeSet<String>,
    known_groups: &BTreeSet<String>,
) -> Result<(), Vec<FileError>> {
    let mut e = Vec::new();
    for (i, s) in doc.authorization_servers.iter().enumerate() {
        for (j, p) in s.policies.iter().enumerate() {
            if let ClientSelector::Only(ids) = &p.clients {
                for id in ids {
                    if !known_clients.contains(id) && !doc.clients.iter().any(|c| &c.client_id == id) {
                        e.push(FileError::at_path(
                            format!("authorizationServers[{i}].policies[{j}].clients"),
                            format!("no client '{id}' in this file or in the org"),
                        ));
                    }
                }
            }
        }
    }
    let groups: BTreeSet<&str> = doc
        .groups
        .iter()
        .map(|g| g.name.as_str())
        .chain(known_groups.iter().map(String::as_str))
        .collect();
    for (i, u) in doc.users.iter().enumerate() {
        for g in u.groups.iter().filter(|g| !groups.contains(g.as_str())) {
            e.push(FileError::at_path(
                format!("users[{i}].groups"),
                format!("no group '{g}' in this file or in the org"),
            ));
        }
    }
    for (i, s) in doc.authorization_servers.iter().enumerate() {
        for (j, p) in s.policies.iter().enumerate() {
            for (k, r) in p.rules.iter().enumerate() {
                if let PeopleSelector::Groups { groups: wanted } = &r.people {
                    for g in wanted.iter().filter(|g| !groups.contains(g.as_str())) {
                        e.push(FileError::at_path(
                            format!("authorizationServers[{i}].policies[{j}].rules[{k}].people"),
                            format!("no group '{g}' in this file or in the org"),
                        ));
                    }
                }
            }
        }
    }
    if e.is_empty() { Ok(()) } else { Err(e) }
}

#[derive(Deserialize)]
struct DocSpans {
    #[serde(default, rename = "authorizationServers")]
    servers: Vec<Spanned<ServerSpans>>,
    #[serde(default)]
    clients: Vec<Spanned<IgnoredAny>>,
    #[serde(default)]
    users: Vec<Spanned<IgnoredAny>>,
    #[serde(default)]
    groups: Vec<Spanned<IgnoredAny>>,
}

#[derive(Deserialize)]
struct ServerSpans {
    #[serde(default)]
    scopes: Vec<Spanned<IgnoredAny>>,
    #[serde(default)]
    claims: Vec<Spanned<IgnoredAny>>,
    #[serde(default)]
    policies: Vec<Spanned<PolicySpans>>,
}

#[derive(Deserialize)]
struct PolicySpans {
    #[serde(default)]
    rules: Vec<Spanned<IgnoredAny>>,
}

/// `a[1].b[2].c` -> [("a", Some(1)), ("b", Some(2)), ("c", None)]
fn segments(path: &str) -> Vec<(&str, Option<usize>)> {
    path.split('.')
        .map(|seg| match seg.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse().ok()),
            None => (seg, None),
        })
        .collect()
}

/// Fills in the line of each error from the nearest list item its path names.
pub(crate) fn locate(source: &str, errors: &mut [FileError]) {
    let Ok(spans) = serde_saphyr::from_str::<DocSpans>(source) else {
        return;
    };
    for e in errors.iter_mut().filter(|e| e.line.is_none()) {
        let segs = segments(&e.path);
        let line = match segs.as_slice() {
            [("clients", Some(i)), ..] => spans.clients.get(*i).map(|s| s.referenced.line()),
            [("users", Some(i)), ..] => spans.users.get(*i).map(|s| s.referenced.line()),
            [("groups", Some(i)), ..] => spans.groups.get(*i).map(|s| s.referenced.line()),
            [("authorizationServers", Some(i)), rest @ ..] => spans.servers.get(*i).map(|s| {
                let server_line = s.referenced.line();
                let nested = match rest {
                    [("scopes", Some(j)), ..] => s.value.scopes.get(*j).map(|x| x.referenced.line()),
                    [("claims", Some(j)), ..] => s.value.claims.get(*j).map(|x| x.referenced.line()),
                    [("policies", Some(j)), more @ ..] => s.value.policies.get(*j).map(|p| match more {
                        [("rules", Some(k)), ..] => p
                            .value
                            .rules
                            .get(*k)
                            .map(|r| r.referenced.line())
                            .unwrap_or(p.referenced.line()),
                        _ => p.referenced.line(),
                    }),
                    _ => None,
                };
                nested.unwrap_or(server_line)
            }),
            _ => None,
        };
        e.line = line;
    }
}
