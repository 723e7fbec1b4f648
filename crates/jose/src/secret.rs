//! Client secrets: generated with 256 bits of entropy, stored as HMAC-SHA256 under a key
//! derived from the master key, compared in constant time. A slow password hash would buy
//! nothing against a 256-bit secret and would cost the token endpoint its throughput.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::MasterKey;

const PREFIX: &str = "hmac-sha256$";

/// Hashes and checks client secrets.
pub struct SecretHasher {
    key: hmac::Key,
}

impl SecretHasher {
    pub fn new(master: &MasterKey) -> SecretHasher {
        SecretHasher {
            key: hmac::Key::new(hmac::HMAC_SHA256, master.secret_hmac_key()),
        }
    }

    /// A new secret: 32 random bytes, base64url (43 characters).
    pub fn generate_secret() -> String {
        let mut raw = [0u8; 32];
        crate::random_bytes(&mut raw);
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn hash(&self, secret: &str) -> String {
        let tag = hmac::sign(&self.key, secret.as_bytes());
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Constant-time check of `secret` against a stored hash.
    pub fn verify(&self, secret: &str, stored: &str) -> bool {
        let Some(tag) = stored
            .strip_prefix(PREFIX)
            .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
        else {
            return false;
        };
        hmac::verify(&self.key, secret.as_bytes(), &tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_the_same_secret() {
        let (m, _) = MasterKey::generate();
        let h = SecretHasher::new(&m);
        let s = SecretHasher::generate_secret();
        assert_eq!(s.len(), 43);
        let stored = h.hash(&s);
        assert!(!stored.contains(&s));
        assert!(h.verify(&s, &stored));
        assert!(!h.verify("wrong", &stored));
        assert!(!h.verify(&s, "garbage"));
    }
}
