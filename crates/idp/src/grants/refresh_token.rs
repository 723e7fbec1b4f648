//! RFC 6749 §6 with RFC 9700 §4.14.2 rotation: each refresh returns a new refresh token
//! and retires the one presented; a retired token presented again means it was copied,
//! and the whole family (every refresh token and access token descended from the same
//! sign-in) is revoked.
//!
//! The grace window: a retired token is still honoured for `refreshTokenGraceSeconds`
//! (default 30, at most 60) after its rotation, because two requests of one honest client
//! racing (two tabs, a retry after a lost response) would otherwise log the user out. The
//! cost is that a thief who replays within those seconds gets a sibling token; any later
//! reuse still revokes the family. Okta makes the same trade with the same default.

use portcullis_core::policy::{PolicyRequest, evaluate};
use portcullis_core::scope::parse_scope_param;
use portcullis_core::{GrantType, OAuthError};

use super::user_tokens::{Issued, RefreshPlan, UserGrant, grant_user, issue};
use super::{GrantFuture, GrantHandler, GrantRequest, TokenResponse};
use crate::clock;
use crate::error::EndpointError;

/// The answer of a grant that could not lose a race (nothing was retired).
fn finish(i: Issued) -> Result<TokenResponse, EndpointError> {
    match i {
        Issued::Tokens(t) => Ok(t),
        Issued::FamilyRevoked | Issued::TokenRetired => Err(bad_token().into()),
    }
}

pub struct RefreshToken;

fn bad_token() -> OAuthError {
    OAuthError::invalid_grant("The refresh token is invalid or expired.")
}

impl GrantHandler for RefreshToken {
    fn grant_type(&self) -> GrantType {
        GrantType::RefreshToken
    }

    fn handle<'a>(&'a self, req: GrantRequest<'a>) -> GrantFuture<'a> {
        Box::pin(async move {
            let idp = req.idp;
            let now = clock::now();
            let presented = req.params.require("refresh_token")?;
            let hash = portcullis_jose::token_hash(presented);
            let Some(stored) = idp.store.refresh_token(&idp.org_id, &hash).await? else {
                return Err(bad_token().into());
            };
            // §6: "the refresh token was issued to the authenticated client".
            if stored.client_id != req.client.client.client_id || stored.server_id != req.server.server.id {
                return Err(bad_token().into());
            }
            if stored.revoked_at.is_some()
                || stored.idle_expires_at <= now
                || stored.family_expires_at.is_some_and(|t| t <= now)
            {
                return Err(bad_token().into());
            }
            let user = grant_user(idp, &stored.user_id, &stored.family_id, now)
                .await?
                .ok_or_else(|| EndpointError::from(bad_token()))?;
            // §6: a narrower scope may be asked for, never a wider one; the refresh token
            // keeps the scope it had ("identical to that of the refresh token included").
            let scopes = match req.params.get("scope").map(parse_scope_param).transpose()? {
                Some(asked) if !asked.is_empty() => {
                    if let Some(extra) = asked.iter().find(|s| !stored.scopes.contains(s)) {
                        return Err(OAuthError::invalid_scope(format!(
                            "The scope '{extra}' was not granted to this refresh token."
                        ))
                        .into());
                    }
                    asked
                }
                _ => stored.scopes.clone(),
            };
            let decision = evaluate(
                &req.server.server,
                &PolicyRequest {
                    client_id: &req.client.client.client_id,
                    grant_type: GrantType::RefreshToken,
                    requested_scopes: Some(&scopes),
                    user_groups: Some(&user.groups),
                },
            )?;
            let rule = decision.rule;
            let grace = rule
                .refresh_token_grace_seconds
                .min(portcullis_core::MAX_REFRESH_GRACE_SECONDS) as i64;
            let grant = UserGrant {
                server: req.server,
                client: req.client,
                rule,
                user: &user,
                scopes: &decision.scopes,
                refresh_scopes: &stored.scopes,
                family_id: &stored.family_id,
                session_id: &stored.session_id,
                auth_time: stored.auth_time,
                amr: &stored.amr,
                nonce: None,
            };
            let reuse = || async {
                let n = idp
                    .store
                    .revoke_family(&idp.org_id, &stored.family_id, now)
                    .await?;
                tracing::warn!(
                    client = %stored.client_id,
                    user = %stored.user_id,
                    revoked_refresh_tokens = n,
                    "refresh token reused after rotation; its family is revoked"
                );
                Err::<TokenResponse, EndpointError>(bad_token().into())
            };
            // Retired before, or by a request racing this one: a sibling within the grace
            // window, the whole family revoked after it.
            let within_grace = |used_at: i64| grace > 0 && now - used_at <= grace;
            let family_expires_at = stored.family_expires_at;
            if !rule.rotate_refresh_tokens {
                if stored.used_at.is_some() {
                    return reuse().await;
                }
                idp.store
                    .touch_refresh(
                        &idp.org_id,
                        &hash,
                        now + rule.refresh_token_window_minutes as i64 * 60,
                    )
                    .await?;
                return finish(issue(idp, &grant, RefreshPlan::Same(presented.to_owned()), now).await?);
            }
            let plan = match stored.used_at {
                Some(t) if !within_grace(t) => return reuse().await,
                Some(_) => RefreshPlan::New { family_expires_at },
                None => RefreshPlan::Rotate {
                    family_expires_at,
                    retire: &hash,
                },
            };
            match issue(idp, &grant, plan, now).await? {
                Issued::Tokens(t) => Ok(t),
                Issued::FamilyRevoked => Err(bad_token().into()),
                // A concurrent refresh retired it a moment ago.
                Issued::TokenRetired if within_grace(now) => {
                    finish(issue(idp, &grant, RefreshPlan::New { family_expires_at }, now).await?)
                }
                Issued::TokenRetired => reuse().await,
            }
        })
    }
}
