//! Okta-shaped identifiers: a three-character type prefix and random base62, 20 characters
//! in all, so tools that sniff Okta ids keep working. Randomness comes from the OS.

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Prefixes Okta uses for each object type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    AuthorizationServer,
    Client,
    Policy,
    Rule,
    Scope,
    Claim,
    Org,
    User,
    Group,
    Session,
    Factor,
}

impl IdKind {
    fn prefix(self) -> &'static str {
        match self {
            IdKind::AuthorizationServer => "aus",
            IdKind::Client => "0oa",
            IdKind::Policy => "00p",
            IdKind::Rule => "0pr",
            IdKind::Scope => "scp",
            IdKind::Claim => "ocl",
            IdKind::Org => "00o",
            IdKind::User => "00u",
            IdKind::Group => "00g",
            IdKind::Session => "102",
            IdKind::Factor => "uft",
        }
    }
}

/// A new random id of the given kind, e.g. `0oa5Xk2LrT0m9QpZq4d7`.
pub fn new_id(kind: IdKind) -> String {
    let mut out = String::with_capacity(20);
    out.push_str(kind.prefix());
    out.push_str(&random_base62(17));
    out
}

/// `len` characters of uniformly random base62 (rejection sampling, no modulo bias).
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).expect("the operating system's random source failed");
        for b in buf {
            // 248 = 62 * 4: bytes at or above it would bias the first characters.
            if b < 248 && out.len() < len {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// A token identifier (`jti`) with Okta's `AT.` prefix for access tokens.
pub fn new_access_token_jti() -> String {
    format!("AT.{}", random_base62(43))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_length() {
        let id = new_id(IdKind::Client);
        assert!(id.starts_with("0oa"));
        assert_eq!(id.len(), 20);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(new_id(IdKind::Client), id);
    }
}
