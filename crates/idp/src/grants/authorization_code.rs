//! RFC 6749 §4.1.3, with RFC 7636 (PKCE) and RFC 9700: the code is single-use ("If an
//! authorization code is used more than once, the authorization server MUST deny the
//! request and SHOULD revoke (when possible) all tokens previously issued based on that
//! authorization code"), bound to its client and redirect URI, and to the PKCE challenge
//! made at `/v1/authorize`. A verifier sent for a code issued without a challenge is
//! refused too (RFC 9700 §4.8.2: no PKCE downgrade).

use portcullis_core::policy::{PolicyRequest, evaluate};
use portcullis_core::{GrantType, OAuthError};
use portcullis_store::CodeRedemption;

use super::user_tokens::{Issued, RefreshPlan, UserGrant, grant_user, issue};
use super::{GrantFuture, GrantHandler, GrantRequest};
use crate::clock;
use crate::error::EndpointError;

pub struct AuthorizationCode;

fn bad_code() -> OAuthError {
    OAuthError::invalid_grant("The authorization code is invalid or has expired.")
}

impl GrantHandler for AuthorizationCode {
    fn grant_type(&self) -> GrantType {
        GrantType::AuthorizationCode
    }

    fn handle<'a>(&'a self, req: GrantRequest<'a>) -> GrantFuture<'a> {
        Box::pin(async move {
            let idp = req.idp;
            let now = clock::now();
            let code = req.params.require("code")?;
            let redirect_uri = req.params.require("redirect_uri")?;
            let verifier = req.params.get("code_verifier");
            let hash = portcullis_jose::token_hash(code);
            let stored = match idp.store.redeem_code(&idp.org_id, &hash, now).await? {
                CodeRedemption::Unknown => return Err(bad_code().into()),
                CodeRedemption::Replayed(stored) => {
                    let n = idp
                        .store
                        .revoke_family(&idp.org_id, &stored.family_id, now)
                        .await?;
                    tracing::warn!(client = %stored.client_id, revoked_refresh_tokens = n, "authorization code replayed; its tokens are revoked");
                    return Err(bad_code().into());
                }
                CodeRedemption::Fresh(stored) => stored,
            };
            if stored.client_id != req.client.client.client_id
                || stored.server_id != req.server.server.id
                || stored.expires_at <= now
            {
                return Err(bad_code().into());
            }
            // §4.1.3: "ensure that the redirect_uri parameter is present ... and that
            // their values are identical".
            if stored.redirect_uri != redirect_uri {
                return Err(OAuthError::invalid_grant(
                    "The 'redirect_uri' does not match the one of the authorization request.",
                )
                .into());
            }
            match (&stored.code_challenge, verifier) {
                (Some(challenge), Some(v)) => {
                    if !is_valid_verifier(v) || !portcullis_jose::pkce_s256_matches(v, challenge) {
                        return Err(OAuthError::invalid_grant(
                            "PKCE verification failed: the code_verifier does not match the code_challenge.",
                        )
                        .into());
                    }
                }
                (Some(_), None) => {
                    return Err(OAuthError::invalid_grant(
                        "PKCE verification failed: the 'code_verifier' parameter is required.",
                    )
                    .into());
                }
                (None, Some(_)) => {
                    return Err(OAuthError::invalid_grant(
                        "PKCE verification failed: the authorization request carried no code_challenge.",
                    )
                    .into());
                }
                (None, None) => {}
            }
            let user = grant_user(idp, &stored.user_id, &stored.family_id, now)
                .await?
                .ok_or_else(|| EndpointError::from(bad_code()))?;
            let decision = evaluate(
                &req.server.server,
                &PolicyRequest {
                    client_id: &req.client.client.client_id,
                    grant_type: GrantType::AuthorizationCode,
                    requested_scopes: Some(&stored.scopes),
                    user_groups: Some(&user.groups),
                },
            )?;
            let grant = UserGrant {
                server: req.server,
                client: req.client,
                rule: decision.rule,
                user: &user,
                scopes: &decision.scopes,
                refresh_scopes: &decision.scopes,
                family_id: &stored.family_id,
                session_id: &stored.session_id,
                auth_time: stored.auth_time,
                amr: &stored.amr,
                nonce: stored.nonce.as_deref(),
            };
            let refresh = if grant.allows_refresh() {
                let life = decision.rule.refresh_token_lifetime_minutes as i64 * 60;
                RefreshPlan::New {
                    family_expires_at: (life > 0).then_some(now + life),
                }
            } else {
                RefreshPlan::None
            };
            match issue(idp, &grant, refresh, now).await? {
                Issued::Tokens(t) => Ok(t),
                // A replay of this code revoked the family while it was being redeemed.
                Issued::FamilyRevoked | Issued::TokenRetired => Err(bad_code().into()),
            }
        })
    }
}

/// RFC 7636 §4.1: `code-verifier = 43*128unreserved`.
pub(crate) fn is_valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}
