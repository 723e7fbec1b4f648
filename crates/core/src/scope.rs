//! The `scope` parameter of RFC 6749 §3.3: space-delimited, case-sensitive strings.

use crate::OAuthError;

/// Most scopes one request may name; a bound on work per request.
pub const MAX_SCOPES: usize = 64;
/// Longest scope name accepted.
pub const MAX_SCOPE_LEN: usize = 256;

/// Parses `scope` per RFC 6749 §3.3 (`scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`),
/// dropping duplicates but keeping the caller's order.
pub fn parse_scope_param(raw: &str) -> Result<Vec<String>, OAuthError> {
    let mut scopes: Vec<String> = Vec::new();
    for token in raw.split(' ').filter(|s| !s.is_empty()) {
        if token.len() > MAX_SCOPE_LEN || !token.bytes().all(is_scope_char) {
            return Err(OAuthError::invalid_scope(
                "The scope parameter holds a malformed scope.",
            ));
        }
        if !scopes.iter().any(|s| s == token) {
            scopes.push(token.to_owned());
        }
        if scopes.len() > MAX_SCOPES {
            return Err(OAuthError::invalid_scope("Too many scopes requested."));
        }
    }
    Ok(scopes)
}

fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

/// Scopes reserved by OpenID Connect, which a client acting for itself may not request.
pub const OIDC_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "address",
    "phone",
    "offline_access",
    "device_sso",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_dedups() {
        assert_eq!(parse_scope_param(" a  b a ").unwrap(), vec!["a", "b"]);
        assert!(parse_scope_param("a\"b").is_err());
        assert!(parse_scope_param("a\\b").is_err());
        assert!(parse_scope_param("").unwrap().is_empty());
    }
}
