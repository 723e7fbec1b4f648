//! Minting access and ID tokens: Okta's claims (`ver, jti, iss, aud, iat, exp, cid, scp, sub`),
//! RFC 9068's (`client_id`, `scope`, header `typ: at+jwt`), then the server's custom claims.
//! Pure computation and one signature: no database on this path.

use portcullis_core::User;
use portcullis_jose::SigningKey;
use portcullis_jose::signer::JwtType;
use serde_json::{Map, Value};

use crate::error::EndpointError;
use crate::view::{ClientView, CompiledClaim, ServerView};

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

/// Who a token is about: the client itself (machine grants) or a signed-in user.
pub enum Subject<'a> {
    Client,
    User {
        user: &'a User,
        /// `user` in claim expressions.
        value: &'a Value,
        auth_time: i64,
    },
}

/// Signs an access token for a client acting on its own behalf (`sub` = client id).
pub fn mint_client_token(
    server: &ServerView,
    client: &ClientView,
    scopes: &[String],
    lifetime_secs: i64,
    now: i64,
) -> Result<MintedToken, EndpointError> {
    mint_access_token(server, client, &Subject::Client, scopes, lifetime_secs, now)
}

fn signer_of(server: &ServerView) -> Result<&SigningKey, EndpointError> {
    server.signer.as_deref().ok_or_else(|| {
        EndpointError::Unavailable(format!(
            "authorization server '{}' has no active signing key",
            server.server.id
        ))
    })
}

/// Adds the server's custom claims of one token type that apply to the granted scopes.
fn add_custom_claims(
    claims: &mut Map<String, Value>,
    compiled: &[CompiledClaim],
    scopes: &[String],
    client: &ClientView,
    subject: &Subject<'_>,
) {
    let null = Value::Null;
    let user = match subject {
        Subject::User { value, .. } => *value,
        Subject::Client => &null,
    };
    for c in compiled {
        if !c.claim.scopes.is_empty() && !c.claim.scopes.iter().any(|s| scopes.contains(s)) {
            continue;
        }
        match c.expr.eval(&[("app", &client.app), ("user", user)]) {
            Ok(Value::Null) => {}
            Ok(v) => {
                claims.insert(c.claim.name.clone(), v);
            }
            // Okta leaves a claim out when its expression cannot be evaluated for this subject.
            Err(e) => tracing::debug!(claim = %c.claim.name, error = %e, "claim left out"),
        }
    }
}

/// Signs an access token: Okta's claims, RFC 9068's, then the server's custom claims
/// (expressions see `app`, and `user` in user grants — `null` in machine grants).
pub fn mint_access_token(
    server: &ServerView,
    client: &ClientView,
    subject: &Subject<'_>,
    scopes: &[String],
    lifetime_secs: i64,
    now: i64,
) -> Result<MintedToken, EndpointError> {
    let signer = signer_of(server)?;
    let jti = portcullis_core::ids::new_access_token_jti();
    let cid = &client.client.client_id;
    let mut claims = Map::with_capacity(20);
    claims.insert("ver".into(), 1.into());
    claims.insert("jti".into(), jti.clone().into());
    claims.insert("iss".into(), server.issuer.clone().into());
    claims.insert("aud".into(), audience(&server.server.audiences));
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + lifetime_secs).into());
    claims.insert("cid".into(), cid.clone().into());
    match subject {
        Subject::Client => {
            claims.insert("scp".into(), scopes.to_vec().into());
            claims.insert("sub".into(), cid.clone().into());
        }
        Subject::User { user, auth_time, .. } => {
            // Okta: `uid` is the user's id, `sub` their login.
            claims.insert("uid".into(), user.id.clone().into());
            claims.insert("scp".into(), scopes.to_vec().into());
            claims.insert("auth_time".into(), (*auth_time).into());
            claims.insert("sub".into(), user.login.clone().into());
        }
    }
    claims.insert("client_id".into(), cid.clone().into());
    claims.insert("scope".into(), scopes.join(" ").into());
    add_custom_claims(&mut claims, &server.access_claims, scopes, client, subject);
    let jwt = signer
        .sign_jwt(JwtType::AccessToken, &claims)
        .map_err(|e| EndpointError::Internal(format!("signing failed: {e}")))?;
    Ok(MintedToken {
        jwt,
        jti,
        expires_in: lifetime_secs,
    })
}

/// What an ID token says about the sign-in it stands for.
pub struct IdTokenFacts<'a> {
    pub user: &'a User,
    pub user_value: &'a Value,
    pub auth_time: i64,
    pub amr: &'a [String],
    pub nonce: Option<&'a str>,
    pub session_id: &'a str,
    /// The access token issued with it, for `at_hash`.
    pub access_token: Option<&'a str>,
}

/// ID tokens live an hour, as Okta's do.
pub const ID_TOKEN_LIFETIME_SECS: i64 = 3600;

/// Signs an OpenID Connect ID token (Core §2): `sub` is the user id, `aud` the client,
/// with `auth_time`, `amr`, `nonce`, `at_hash`, and profile and email claims as the
/// granted scopes allow (Core §5.4), then the server's ID-token claims.
pub fn mint_id_token(
    server: &ServerView,
    client: &ClientView,
    facts: &IdTokenFacts<'_>,
    scopes: &[String],
    now: i64,
) -> Result<String, EndpointError> {
    let signer = signer_of(server)?;
    let mut claims = Map::with_capacity(24);
    claims.insert("sub".into(), facts.user.id.clone().into());
    claims.insert("ver".into(), 1.into());
    claims.insert("iss".into(), server.issuer.clone().into());
    claims.insert("aud".into(), client.client.client_id.clone().into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + ID_TOKEN_LIFETIME_SECS).into());
    claims.insert(
        "jti".into(),
        format!("ID.{}", portcullis_core::ids::random_base62(43)).into(),
    );
    claims.insert("amr".into(), facts.amr.to_vec().into());
    claims.insert("idp".into(), server.issuer.clone().into());
    claims.insert("sid".into(), facts.session_id.into());
    claims.insert("auth_time".into(), facts.auth_time.into());
    if let Some(n) = facts.nonce {
        claims.insert("nonce".into(), n.into());
    }
    if let Some(at) = facts.access_token {
        claims.insert(
            "at_hash".into(),
            portcullis_jose::half_hash(signer.alg(), at).into(),
        );
    }
    user_claims(&mut claims, facts.user, scopes);
    let subject = Subject::User {
        user: facts.user,
        value: facts.user_value,
        auth_time: facts.auth_time,
    };
    add_custom_claims(&mut claims, &server.id_claims, scopes, client, &subject);
    signer
        .sign_jwt(JwtType::Jwt, &claims)
        .map_err(|e| EndpointError::Internal(format!("signing failed: {e}")))
}

/// The server's ID-token claims for a user (userinfo returns them too).
pub fn add_id_claims(
    claims: &mut Map<String, Value>,
    server: &ServerView,
    scopes: &[String],
    client: &ClientView,
    subject: &Subject<'_>,
) {
    add_custom_claims(claims, &server.id_claims, scopes, client, subject);
}

/// OpenID Connect Core §5.4: the standard claims each scope releases, from the profile.
/// `email_verified` is true only when the profile says `emailVerified: true`: apps link
/// accounts by verified email, so an unverified address must never be claimed verified.
pub fn user_claims(claims: &mut Map<String, Value>, user: &User, scopes: &[String]) {
    let has = |s: &str| scopes.iter().any(|x| x == s);
    let p = |k: &str| user.profile_str(k).map(|v| Value::from(v.to_owned()));
    if has("profile") {
        let name = user.profile_str("displayName").map(String::from).or_else(|| {
            let full = format!(
                "{} {}",
                user.profile_str("firstName").unwrap_or_default(),
                user.profile_str("lastName").unwrap_or_default()
            );
            let full = full.trim().to_owned();
            (!full.is_empty()).then_some(full)
        });
        if let Some(n) = name {
            claims.insert("name".into(), n.into());
        }
        for (claim, attr) in [
            ("given_name", "firstName"),
            ("family_name", "lastName"),
            ("locale", "locale"),
            ("zoneinfo", "timezone"),
        ] {
            if let Some(v) = p(attr) {
                claims.insert(claim.into(), v);
            }
        }
        claims.insert("preferred_username".into(), user.login.clone().into());
        claims.insert("updated_at".into(), user.updated_at.into());
    }
    if has("email")
        && let Some(e) = p("email")
    {
        claims.insert("email".into(), e);
        claims.insert(
            "email_verified".into(),
            user.profile
                .get("emailVerified")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .into(),
        );
    }
}

/// One audience is a string (as Okta issues it); several are an array.
fn audience(audiences: &[String]) -> Value {
    match audiences {
        [one] => one.clone().into(),
        many => many.to_vec().into(),
    }
}
