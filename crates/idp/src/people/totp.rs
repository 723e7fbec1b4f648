//! TOTP second factor (RFC 6238): SHA-1, six digits, 30-second steps, one step of skew
//! either way. Secrets are 160 random bits, sealed under the master key at rest. A code
//! is accepted at most once: the store keeps the last accepted step per factor, and only
//! a later step passes (RFC 6238 §5.2).

use qrcode::QrCode;
use qrcode::render::svg;
use totp_rs::{Builder, Secret, Totp};

/// Seconds per step.
pub const STEP: u64 = 30;

/// The context a factor's secret is sealed under, so sealed bytes cannot move between
/// users or factors.
pub fn seal_context(org_id: &str, user_id: &str) -> String {
    format!("totp|{org_id}|{user_id}")
}

/// 20 random bytes (RFC 4226 §4 recommends 160 bits).
pub fn new_secret() -> Vec<u8> {
    let mut raw = vec![0u8; 20];
    portcullis_jose::random_bytes(&mut raw);
    raw
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Option<Totp> {
    // The otpauth label is `issuer:account`; neither may hold a colon.
    let clean = |s: &str| s.replace(':', " ");
    Builder::new()
        .with_secret(Secret::new(secret.to_vec().into_boxed_slice()))
        .with_issuer(Some(clean(issuer)))
        .with_account_name(clean(account))
        .build()
        .ok()
}

/// The time step a code is valid for (within one step of `now`), if it is valid.
pub fn check(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    let code = code.trim().replace(' ', "");
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret, "x", "x")?
        .check(&code, now.max(0) as u64)
        .map(|step| step as i64)
}

/// What the enrolment page shows: the secret in base32 (to type in) and a QR code of the
/// `otpauth://` URI as inline SVG (no image fetched, nothing external).
pub struct Enrolment {
    pub secret_base32: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

pub fn enrolment(secret: &[u8], issuer: &str, account: &str) -> Option<Enrolment> {
    let t = totp(secret, issuer, account)?;
    let uri = t.to_url().ok()?;
    let qr_svg = QrCode::new(uri.as_bytes())
        .ok()?
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // The XML prolog is not allowed inside HTML.
    let qr_svg = match qr_svg.find("<svg") {
        Some(i) => qr_svg[i..].to_owned(),
        None => qr_svg,
    };
    Some(Enrolment {
        secret_base32: Secret::new(secret.to_vec().into_boxed_slice()).to_base32(),
        otpauth_uri: uri,
        qr_svg,
    })
}

/// The code for a time.
#[cfg(test)]
fn code_at(secret: &[u8], now: i64) -> Option<String> {
    Some(totp(secret, "x", "x")?.generate(now.max(0) as u64).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_check_within_one_step() {
        let s = new_secret();
        let now = 1_700_000_000;
        let code = code_at(&s, now).unwrap();
        assert_eq!(check(&s, &code, now), Some(now / 30));
        assert_eq!(check(&s, &code, now + 30), Some(now / 30));
        assert_eq!(check(&s, &code, now + 95), None);
        assert_eq!(check(&s, "12345", now), None);
        assert_eq!(check(&s, "abcdef", now), None);
    }

    #[test]
    fn enrolment_has_uri_secret_and_svg() {
        let s = new_secret();
        let e = enrolment(&s, "Acme: Inc", "alice@example.com").unwrap();
        assert!(e.otpauth_uri.starts_with("otpauth://totp/"));
        assert!(
            e.otpauth_uri
                .contains(&e.secret_base32.trim_end_matches('=').to_string())
        );
        assert!(e.qr_svg.starts_with("<svg"));
    }
}
