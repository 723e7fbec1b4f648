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
use portcullis_core::{GrantType, OAuthError, UserStatus};

use super::user_tokens::{RefreshPlan, UserGrant, issue};
use super::{GrantFuture, GrantHandler, GrantRequest};
use crate::clock;

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
            let Some(creds) = idp.store.user_by_id(&idp.org_id, &stored.user_id).await? else {
                return Err(bad_token().into());
            };
            if creds.user.status != UserStatus::Active {
                idp.store
                    .revoke_family(&idp.org_id, &stored.family_id, now)
                    .await?;
                return Err(OAuthError::invalid_grant("The user is not active.").into());
            }
            // §6: a narrower scope may be asked for, never a wider one.
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
                    user_groups: Some(&creds.user.groups),
                },
            )?;
            let rule = decision.rule;
            let grace = rule
                .refresh_token_grace_seconds
                .min(portcullis_core::MAX_REFRESH_GRACE_SECONDS) as i64;
            let plan = if rule.rotate_refresh_tokens {
                let fresh =
                    stored.used_at.is_none() && idp.store.mark_refresh_used(&idp.org_id, &hash, now).await?;
                if !fresh {
                    // Retired already (before, or by a request racing this one).
                    let used_at = match stored.used_at {
                        Some(t) => t,
                        None => now,
                    };
                    let within_grace = grace > 0 && now - used_at <= grace;
                    if !within_grace {
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
                        return Err(bad_token().into());
                    }
                }
                RefreshPlan::New {
                    family_expires_at: stored.family_expires_at,
                }
            } else {
                idp.store
                    .touch_refresh(
                        &idp.org_id,
                        &hash,
                        now + rule.refresh_token_window_minutes as i64 * 60,
                    )
                    .await?;
                RefreshPlan::Same(presented.to_owned())
            };
            let grant = UserGrant {
                server: req.server,
                client: req.client,
                rule,
                user: &creds.user,
                scopes: &decision.scopes,
                family_id: &stored.family_id,
                session_id: &stored.session_id,
                auth_time: stored.auth_time,
                amr: &stored.amr,
                nonce: None,
            };
            issue(idp, &grant, plan, now).await
        })
    }
}
