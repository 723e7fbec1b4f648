//! Public JSON Web Keys (RFC 7517) as published at `/v1/keys`, with RFC 7638 thumbprints.

use serde::{Deserialize, Serialize};

/// A public signing key. Only the members a verifier needs are published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub alg: String,
    pub kid: String,
    #[serde(rename = "use")]
    pub use_: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub y: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// RFC 7638 thumbprint (SHA-256 over the required members in lexicographic order).
    pub fn thumbprint(&self) -> String {
        let canonical = match self.kty.as_str() {
            "RSA" => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                self.e.as_deref().unwrap_or(""),
                self.n.as_deref().unwrap_or("")
            ),
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                self.crv.as_deref().unwrap_or(""),
                self.x.as_deref().unwrap_or(""),
                self.y.as_deref().unwrap_or("")
            ),
            _ => format!(
                r#"{{"crv":"{}","kty":"{}","x":"{}"}}"#,
                self.crv.as_deref().unwrap_or(""),
                self.kty,
                self.x.as_deref().unwrap_or("")
            ),
        };
        crate::b64url(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
    }
}
