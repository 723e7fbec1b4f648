//! Minting access tokens: Okta's claims (`ver, jti, iss, aud, iat, exp, cid, scp, sub`),
//! RFC 9068's (`client_id`, `scope`, header `typ: at+jwt`), then the server's custom claims.
//! Pure computation and one signature: no database on this path.

use portcullis_jose::signer::JwtType;
use serde_json::{Map, Value};

use crate::error::EndpointError;
use crate::view::{ClientView, ServerView};

/// Claims that custom claims may never set: the token's integrity depends on them.
pub const RESERVED_CLAIMS: &[&str] = &[
    "ver",
    "jti",
    "iss",
    "aud",
    "iat",
    "exp",
    "nbf",
    "cid",
    "uid",
    "scp",
    "sub",
    "client_id",
    "scope",
    "auth_time",
    "amr",
    "nonce",
    "at_hash",
    "c_hash",
    "azp",
    "acr",
    "sid",
    "typ",
    "cnf",
    "act",
    "may_act",
];

/// A signed access token and what the response and revocation need to know of it.
pub struct MintedToken {
    pub jwt: String,
    pub jti: String,
    pub expires_in: i64,
}

/// Signs an access token for a client acting on its own behalf (`sub` = client id).
pub fn mint_client_token(
    server: &ServerView,
    client: &ClientView,
    scopes: &[String],
    lifetime_secs: i64,
    now: i64,
) -> Result<MintedToken, EndpointError> {
    let signer = server.signer.as_ref().ok_or_else(|| {
        EndpointError::Unavailable(format!(
            "authorization server '{}' has no active signing key",
            server.server.id
        ))
    })?;
    let jti = portcullis_core::ids::new_access_token_jti();
    let cid = &client.client.client_id;
    let mut claims = Map::with_capacity(16);
    claims.insert("ver".into(), 1.into());
    claims.insert("jti".into(), jti.clone().into());
    claims.insert("iss".into(), server.issuer.clone().into());
    claims.insert("aud".into(), audience(&server.server.audiences));
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + lifetime_secs).into());
    claims.insert("cid".into(), cid.clone().into());
    claims.insert("scp".into(), scopes.to_vec().into());
    claims.insert("sub".into(), cid.clone().into());
    claims.insert("client_id".into(), cid.clone().into());
    claims.insert("scope".into(), scopes.join(" ").into());
    for c in &server.access_claims {
        if !c.claim.scopes.is_empty() && !c.claim.scopes.iter().any(|s| scopes.contains(s)) {
            continue;
        }
        match c.expr.eval(&[("app", &client.app)]) {
            Ok(Value::Null) => {}
            Ok(v) => {
                claims.insert(c.claim.name.clone(), v);
            }
            // Okta leaves a claim out when its expression cannot be evaluated for this subject.
            Err(e) => tracing::debug!(claim = %c.claim.name, error = %e, "claim left out"),
        }
    }
    let jwt = signer
        .sign_jwt(JwtType::AccessToken, &claims)
        .map_err(|e| EndpointError::Internal(format!("signing failed: {e}")))?;
    Ok(MintedToken {
        jwt,
        jti,
        expires_in: lifetime_secs,
    })
}

/// One audience is a string (as Okta issues it); several are an array.
fn audience(audiences: &[String]) -> Value {
    match audiences {
        [one] => one.clone().into(),
        many => many.to_vec().into(),
    }
}
