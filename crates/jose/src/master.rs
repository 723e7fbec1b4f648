//! The master key and the keys derived from it (HKDF-SHA256, one label per use):
//! an AES-256-GCM key that seals private keys at rest, and the HMAC key of client secrets.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::KeyError;

const SEAL_VERSION: &str = "v1";

/// 32 secret bytes from `PORTCULLIS_MASTER_KEY` or the data dir's `master.key`.
pub struct MasterKey {
    seal: LessSafeKey,
    secret_hmac: [u8; 32],
    check: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

fn derive(prk: &hkdf::Prk, label: &'static [u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let info = [label];
    prk.expand(&info, Len32)
        .and_then(|okm| okm.fill(&mut out))
        .expect("HKDF-SHA256 expand of 32 bytes");
    out
}

impl MasterKey {
    /// A new random master key, returned with its base64 encoding for storage.
    pub fn generate() -> (MasterKey, String) {
        let mut raw = [0u8; 32];
        crate::random_bytes(&mut raw);
        let encoded = STANDARD.encode(raw);
        (MasterKey::from_bytes(&raw), encoded)
    }

    /// Parses a base64 or base64url encoding of exactly 32 bytes.
    pub fn from_encoded(encoded: &str) -> Result<MasterKey, KeyError> {
        let s = encoded.trim();
        let raw = STANDARD
            .decode(s)
            .or_else(|_| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')))
            .map_err(|_| KeyError::BadMasterKey)?;
        if raw.len() != 32 {
            return Err(KeyError::BadMasterKey);
        }
        Ok(MasterKey::from_bytes(&raw))
    }

    fn from_bytes(raw: &[u8]) -> MasterKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"portcullis master key").extract(raw);
        let seal_key = derive(&prk, b"seal private keys v1");
        let secret_hmac = derive(&prk, b"client secret hmac v1");
        let check = derive(&prk, b"key check v1");
        let seal = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &seal_key).expect("32-byte AES key"));
        MasterKey {
            seal,
            secret_hmac,
            check,
        }
    }

    /// Encrypts `plaintext` bound to `context` (e.g. the key id): `v1.<base64url(nonce|ct|tag)>`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        crate::random_bytes(&mut nonce);
        let mut in_out = plaintext.to_vec();
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut in_out,
            )
            .expect("AES-GCM seal");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&in_out);
        format!("{SEAL_VERSION}.{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts what [`MasterKey::seal`] produced under the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, KeyError> {
        let body = sealed.strip_prefix("v1.").ok_or(KeyError::Unseal)?;
        let mut raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| KeyError::Unseal)?;
        if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(KeyError::Unseal);
        }
        let mut ct = raw.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&raw).map_err(|_| KeyError::Unseal)?;
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(context), &mut ct)
            .map_err(|_| KeyError::Unseal)?;
        Ok(plain.to_vec())
    }

    /// A value that identifies this master key without revealing it (a derived key that is
    /// used for nothing else), to detect a node started with the wrong key.
    pub fn fingerprint(&self) -> String {
        format!("v1.{}", URL_SAFE_NO_PAD.encode(self.check))
    }

    pub(crate) fn secret_hmac_key(&self) -> &[u8; 32] {
        &self.secret_hmac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_context_binding() {
        let (k, enc) = MasterKey::generate();
        let sealed = k.seal(b"private", "kid-1");
        assert_eq!(k.open(&sealed, "kid-1").unwrap(), b"private");
        assert!(k.open(&sealed, "kid-2").is_err());
        let again = MasterKey::from_encoded(&enc).unwrap();
        assert_eq!(again.open(&sealed, "kid-1").unwrap(), b"private");
        let (other, _) = MasterKey::generate();
        assert!(other.open(&sealed, "kid-1").is_err());
        assert!(MasterKey::from_encoded("c2hvcnQ=").is_err());
    }
}
