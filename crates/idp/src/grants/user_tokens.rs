//! Issuing the tokens of a user grant (authorization code, refresh): the access token,
//! the ID token when `openid` was granted, and a refresh token when `offline_access` was
//! granted to a client and rule that allow the refresh grant. Every access token is
//! recorded against its token family, so revoking the family revokes it too.

use portcullis_core::{GrantType, Rule, User};
use portcullis_store::{GrantRecord, StoredRefresh};

use super::TokenResponse;
use crate::Idp;
use crate::error::EndpointError;
use crate::token::{self, IdTokenFacts, Subject};
use crate::view::{ClientView, ServerView};

/// Whether and how a refresh token comes with the answer.
pub(crate) enum RefreshPlan<'a> {
    /// Issue a new one in the family (first issue, or a sibling within the grace window).
    New {
        family_expires_at: Option<i64>,
    },
    /// Rotation: issue a new one and retire the one presented (by its hash), atomically.
    Rotate {
        family_expires_at: Option<i64>,
        retire: &'a str,
    },
    /// Hand back the one presented (a rule that does not rotate).
    Same(String),
    None,
}

/// A signed-in user's grant, ready to be turned into tokens.
pub(crate) struct UserGrant<'a> {
    pub server: &'a ServerView,
    pub client: &'a ClientView,
    pub rule: &'a Rule,
    pub user: &'a User,
    pub scopes: &'a [String],
    /// The scopes a new refresh token carries (a refresh with a narrower `scope` narrows
    /// the access token, never the refresh token).
    pub refresh_scopes: &'a [String],
    pub family_id: &'a str,
    pub session_id: &'a str,
    pub auth_time: i64,
    pub amr: &'a [String],
    pub nonce: Option<&'a str>,
}

impl UserGrant<'_> {
    /// Whether this grant may carry a refresh token at all.
    pub fn allows_refresh(&self) -> bool {
        self.scopes.iter().any(|s| s == "offline_access")
            && self.client.client.grant_types.contains(&GrantType::RefreshToken)
            && self.rule.grant_types.contains(&GrantType::RefreshToken)
    }
}

/// The user of a grant if they may still use it (`Ok(None)`: unknown, or not allowed).
/// A suspended or deactivated user's family is revoked on the way; a locked-out user
/// keeps their grants (a lockout only stops signing in).
pub(crate) async fn grant_user(
    idp: &Idp,
    user_id: &str,
    family_id: &str,
    now: i64,
) -> Result<Option<User>, EndpointError> {
    let Some(creds) = idp.store.user_by_id(&idp.org_id, user_id).await? else {
        return Ok(None);
    };
    if creds.user.status.keeps_grants() {
        return Ok(Some(creds.user));
    }
    if creds.user.status.ends_grants() {
        idp.store.revoke_family(&idp.org_id, family_id, now).await?;
    }
    Ok(None)
}

/// What [`issue`] did.
pub(crate) enum Issued {
    Tokens(TokenResponse),
    /// A rotation lost the race for the token presented: nothing was issued.
    TokenRetired,
    /// The family was revoked (code replay, reuse, deactivation) while this grant was
    /// being served: nothing was issued.
    FamilyRevoked,
}

/// Signs the grant's tokens and records them in one transaction.
pub(crate) async fn issue(
    idp: &Idp,
    g: &UserGrant<'_>,
    refresh: RefreshPlan<'_>,
    now: i64,
) -> Result<Issued, EndpointError> {
    let user_value = g.user.expression_value();
    let subject = Subject::User {
        user: g.user,
        value: &user_value,
        auth_time: g.auth_time,
    };
    let lifetime = g.rule.access_token_lifetime_minutes as i64 * 60;
    let access = token::mint_access_token(g.server, g.client, &subject, g.scopes, lifetime, now)?;
    let (new_family_end, retire, same) = match refresh {
        RefreshPlan::None => (None, None, None),
        RefreshPlan::Same(t) => (None, None, Some(t)),
        RefreshPlan::New { family_expires_at } => (Some(family_expires_at), None, None),
        RefreshPlan::Rotate {
            family_expires_at,
            retire,
        } => (Some(family_expires_at), Some(retire), None),
    };
    let new_refresh = new_family_end.map(|family_expires_at| {
        let token = portcullis_jose::opaque_token();
        let record = StoredRefresh {
            family_id: g.family_id.to_owned(),
            client_id: g.client.client.client_id.clone(),
            server_id: g.server.server.id.clone(),
            user_id: g.user.id.clone(),
            session_id: g.session_id.to_owned(),
            scopes: g.refresh_scopes.to_vec(),
            auth_time: g.auth_time,
            amr: g.amr.to_vec(),
            issued_at: now,
            family_expires_at,
            idle_expires_at: now + g.rule.refresh_token_window_minutes as i64 * 60,
            used_at: None,
            revoked_at: None,
        };
        (portcullis_jose::token_hash(&token), record, token)
    });
    let recorded = idp
        .store
        .record_grant(
            &idp.org_id,
            g.family_id,
            (&access.jti, now + lifetime),
            new_refresh.as_ref().map(|(h, r, _)| (h.as_str(), r)),
            retire,
            now,
        )
        .await?;
    match recorded {
        GrantRecord::Recorded => {}
        GrantRecord::TokenRetired => return Ok(Issued::TokenRetired),
        GrantRecord::FamilyRevoked => return Ok(Issued::FamilyRevoked),
    }
    let id_token = if g.scopes.iter().any(|s| s == "openid") {
        Some(token::mint_id_token(
            g.server,
            g.client,
            &IdTokenFacts {
                user: g.user,
                user_value: &user_value,
                auth_time: g.auth_time,
                amr: g.amr,
                nonce: g.nonce,
                session_id: g.session_id,
                access_token: Some(&access.jwt),
            },
            g.scopes,
            now,
        )?)
    } else {
        None
    };
    Ok(Issued::Tokens(TokenResponse {
        token_type: "Bearer",
        expires_in: access.expires_in,
        access_token: access.jwt,
        scope: g.scopes.join(" "),
        refresh_token: same.or(new_refresh.map(|(_, _, t)| t)),
        id_token,
    }))
}
