//! The access-policy engine: which policy and rule govern a token request, and which
//! scopes it grants. Okta's semantics: the highest-priority (1 first) active policy
//! assigned to the client; inside it, rules by priority whose grant types, people and
//! scopes all match; the first match wins and nothing after it is looked at.

use crate::scope::OIDC_SCOPES;
use crate::{AuthorizationServer, GrantType, OAuthError, Policy, Rule};

/// What a token request asks for, as far as policy is concerned.
pub struct PolicyRequest<'a> {
    pub client_id: &'a str,
    pub grant_type: GrantType,
    /// `None` when the request carried no `scope` parameter.
    pub requested_scopes: Option<&'a [String]>,
    /// The signed-in user's groups in user grants; `None` in machine grants.
    pub user_groups: Option<&'a [String]>,
}

/// The matching policy and rule, and the scopes granted.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDecision<'s> {
    pub policy: &'s Policy,
    pub rule: &'s Rule,
    pub scopes: Vec<String>,
}

/// Evaluates the server's access policies for one request.
pub fn evaluate<'s>(
    server: &'s AuthorizationServer,
    req: &PolicyRequest<'_>,
) -> Result<PolicyDecision<'s>, OAuthError> {
    let scopes = resolve_scopes(server, req)?;

    // Only the highest-priority active policy assigned to the client is evaluated: a
    // lower-priority policy (say, one for ALL_CLIENTS) never widens what a client's own
    // policy allows.
    let Some(policy) = server
        .policies
        .iter()
        .filter(|p| p.status.is_active() && p.clients.includes(req.client_id))
        .min_by_key(|p| p.priority)
    else {
        return Err(no_rule());
    };
    let mut rules: Vec<&Rule> = policy
        .rules
        .iter()
        .filter(|r| {
            r.status.is_active()
                && r.grant_types.contains(&req.grant_type)
                && r.people.includes(req.user_groups)
        })
        .collect();
    rules.sort_by_key(|r| r.priority);

    // A rule that matched on everything but scopes: if no rule matches, the client is told
    // which scopes are not allowed rather than a bare policy failure.
    let mut refused_scopes: Option<Vec<&str>> = None;
    for rule in rules {
        let refused: Vec<&str> = scopes
            .iter()
            .filter(|s| !rule.scopes.allows(s))
            .map(String::as_str)
            .collect();
        if refused.is_empty() {
            return Ok(PolicyDecision { policy, rule, scopes });
        }
        refused_scopes.get_or_insert(refused);
    }
    match refused_scopes {
        Some(refused) => Err(OAuthError::invalid_scope(format!(
            "The requested scopes are not allowed by the access policy: {}",
            refused.join(" ")
        ))),
        None => Err(no_rule()),
    }
}

fn no_rule() -> OAuthError {
    OAuthError::access_denied(
        "Policy evaluation failed for this request: no access policy rule allows this client and grant type.",
    )
}

/// RFC 6749 §3.3: with no `scope`, the server's default scopes apply; every requested
/// scope must exist on the server.
fn resolve_scopes(server: &AuthorizationServer, req: &PolicyRequest<'_>) -> Result<Vec<String>, OAuthError> {
    let scopes: Vec<String> = match req.requested_scopes {
        Some(requested) if !requested.is_empty() => requested.to_vec(),
        _ => {
            let defaults: Vec<String> = server
                .scopes
                .iter()
                .filter(|s| s.default)
                .map(|s| s.name.clone())
                .collect();
            if defaults.is_empty() {
                return Err(OAuthError::invalid_scope(
                    "The authorization server has no default scopes: the 'scope' parameter must be provided.",
                ));
            }
            defaults
        }
    };
    if req.grant_type == GrantType::ClientCredentials
        && let Some(s) = scopes.iter().find(|s| OIDC_SCOPES.contains(&s.as_str()))
    {
        return Err(OAuthError::invalid_scope(format!(
            "The scope '{s}' is reserved for OpenID Connect and cannot be requested with client_credentials."
        )));
    }
    // OpenID Connect's scopes are built into every server for user grants, as Okta's are.
    let builtin = |s: &str| req.user_groups.is_some() && OIDC_SCOPES.contains(&s);
    let unknown: Vec<&str> = scopes
        .iter()
        .filter(|s| server.scope(s).is_none() && !builtin(s))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(OAuthError::invalid_scope(format!(
            "One or more scopes are not configured for the authorization server: {}",
            unknown.join(" ")
        )));
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    fn server() -> AuthorizationServer {
        let scope = |n: &str, d: bool| Scope {
            name: n.into(),
            display_name: None,
            description: String::new(),
            default: d,
            consent: Consent::Implicit,
            metadata_publish: MetadataPublish::AllClients,
        };
        let rule = |name: &str, prio, scopes: ScopeSelector| Rule {
            name: name.into(),
            priority: prio,
            status: Status::Active,
            grant_types: vec![GrantType::ClientCredentials],
            scopes,
            access_token_lifetime_minutes: 60,
            people: PeopleSelector::default(),
            refresh_token_lifetime_minutes: 0,
            refresh_token_window_minutes: DEFAULT_REFRESH_WINDOW_MINUTES,
            rotate_refresh_tokens: true,
            refresh_token_grace_seconds: 30,
            require_mfa: false,
        };
        AuthorizationServer {
            id: "default".into(),
            name: "default".into(),
            description: String::new(),
            audiences: vec!["api://default".into()],
            signing_alg: SigningAlg::RS256,
            status: Status::Active,
            scopes: vec![scope("read", true), scope("write", false), scope("admin", false)],
            claims: vec![],
            policies: vec![
                Policy {
                    name: "readers".into(),
                    description: String::new(),
                    priority: 2,
                    status: Status::Active,
                    clients: ClientSelector::default(),
                    rules: vec![rule("read only", 1, ScopeSelector::Only(vec!["read".into()]))],
                },
                Policy {
                    name: "writers".into(),
                    description: String::new(),
                    priority: 1,
                    status: Status::Active,
                    clients: ClientSelector::Only(vec!["writer".into()]),
                    rules: vec![rule(
                        "read write",
                        1,
                        ScopeSelector::Only(vec!["read".into(), "write".into()]),
                    )],
                },
                Policy {
                    name: "catch-all".into(),
                    description: String::new(),
                    priority: 3,
                    status: Status::Active,
                    clients: ClientSelector::default(),
                    rules: vec![rule("anything", 1, ScopeSelector::default())],
                },
            ],
        }
    }

    fn ask(client: &str, scopes: Option<&[String]>) -> Result<(String, Vec<String>), OAuthError> {
        let s = server();
        let d = evaluate(
            &s,
            &PolicyRequest {
                client_id: client,
                grant_type: GrantType::ClientCredentials,
                requested_scopes: scopes,
                user_groups: None,
            },
        )?;
        Ok((d.policy.name.clone(), d.scopes))
    }

    #[test]
    fn first_policy_by_priority_wins() {
        let w = ["write".to_string()];
        assert_eq!(ask("writer", Some(&w)).unwrap().0, "writers");
        assert_eq!(
            ask("other", None).unwrap(),
            ("readers".into(), vec!["read".into()])
        );
    }

    #[test]
    fn a_lower_priority_policy_never_widens_the_clients_own() {
        let admin = ["admin".to_string()];
        assert_eq!(
            ask("writer", Some(&admin)).unwrap_err().code,
            OAuthErrorCode::InvalidScope
        );
        assert_eq!(
            ask("other", Some(&admin)).unwrap_err().code,
            OAuthErrorCode::InvalidScope
        );
    }

    #[test]
    fn disallowed_scope_is_invalid_scope() {
        let w = ["write".to_string()];
        let e = ask("other", Some(&w)).unwrap_err();
        assert_eq!(e.code, OAuthErrorCode::InvalidScope);
        assert!(e.description.contains("write"));
    }

    #[test]
    fn unknown_scope_and_oidc_scope_are_invalid_scope() {
        let u = ["nope".to_string()];
        assert_eq!(
            ask("other", Some(&u)).unwrap_err().code,
            OAuthErrorCode::InvalidScope
        );
        let o = ["openid".to_string()];
        assert_eq!(
            ask("other", Some(&o)).unwrap_err().code,
            OAuthErrorCode::InvalidScope
        );
    }

    #[test]
    fn no_rule_for_grant_is_access_denied() {
        let s = server();
        let e = evaluate(
            &s,
            &PolicyRequest {
                client_id: "x",
                grant_type: GrantType::AuthorizationCode,
                requested_scopes: None,
                user_groups: None,
            },
        )
        .unwrap_err();
        assert_eq!(e.code, OAuthErrorCode::AccessDenied);
    }

    #[test]
    fn people_rules_match_only_their_groups() {
        let mut s = server();
        for p in &mut s.policies {
            for r in &mut p.rules {
                r.grant_types = vec![GrantType::AuthorizationCode];
                r.people = PeopleSelector::Groups {
                    groups: vec!["staff".into()],
                };
            }
        }
        let ask = |groups: &[String]| {
            evaluate(
                &s,
                &PolicyRequest {
                    client_id: "other",
                    grant_type: GrantType::AuthorizationCode,
                    requested_scopes: Some(&["read".to_string()]),
                    user_groups: Some(groups),
                },
            )
            .map(|d| d.scopes)
        };
        assert_eq!(ask(&["staff".into()]).unwrap(), vec!["read"]);
        assert_eq!(
            ask(&["guests".into()]).unwrap_err().code,
            OAuthErrorCode::AccessDenied
        );
    }
}
