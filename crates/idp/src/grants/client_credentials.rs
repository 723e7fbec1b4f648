//! RFC 6749 §4.4: "The client can request an access token using only its client
//! credentials ... when the client is requesting access to the protected resources under
//! its control". Only confidential clients may use it (§4.4: "MUST only be used by
//! confidential clients"). The token's subject is the client.

use portcullis_core::GrantType;
use portcullis_core::policy::{PolicyRequest, evaluate};
use portcullis_core::scope::parse_scope_param;

use super::{GrantFuture, GrantHandler, GrantRequest, TokenResponse};
use crate::{clock, token};

pub struct ClientCredentials;

impl GrantHandler for ClientCredentials {
    fn grant_type(&self) -> GrantType {
        GrantType::ClientCredentials
    }

    fn handle<'a>(&'a self, req: GrantRequest<'a>) -> GrantFuture<'a> {
        Box::pin(async move {
            let requested = req.params.get("scope").map(parse_scope_param).transpose()?;
            let decision = evaluate(
                &req.server.server,
                &PolicyRequest {
                    client_id: &req.client.client.client_id,
                    grant_type: GrantType::ClientCredentials,
                    requested_scopes: requested.as_deref(),
                    user_groups: None,
                },
            )?;
            let lifetime = decision.rule.access_token_lifetime_minutes as i64 * 60;
            let minted =
                token::mint_client_token(req.server, req.client, &decision.scopes, lifetime, clock::now())?;
            Ok(TokenResponse {
                token_type: "Bearer",
                expires_in: minted.expires_in,
                access_token: minted.jwt,
                scope: decision.scopes.join(" "),
                refresh_token: None,
                id_token: None,
            })
        })
    }
}
