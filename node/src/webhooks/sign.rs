//! The `Wallet-Signature` header: `t=<unix ms>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
//!
//! The time is part of what is signed, so a receiver can refuse an old delivery replayed by
//! someone who recorded it; the body is signed as sent, byte for byte.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header's name.
pub const HEADER: &str = "Wallet-Signature";

/// The header's value for `body` sent at `t_ms` with `secret`.
pub fn signature(secret: &str, t_ms: u64, body: &[u8]) -> String {
    format!("t={t_ms},v1={}", hex(&mac(secret, t_ms, body)))
}

/// Whether `header` is a valid signature of `body` with `secret` (what a receiver checks; the
/// comparison takes the same time wherever the first difference is).
pub fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<u64>().ok(),
            Some(("v1", x)) => v1 = Some(x),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut m = keyed(secret);
    m.update(format!("{t}.").as_bytes());
    m.update(body);
    match unhex(v1) {
        Some(bytes) => m.verify_slice(&bytes).is_ok(),
        None => false,
    }
}

fn keyed(secret: &str) -> Hmac<Sha256> {
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length")
}

fn mac(secret: &str, t_ms: u64, body: &[u8]) -> Vec<u8> {
    let mut m = keyed(secret);
    m.update(format!("{t_ms}.").as_bytes());
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_hmac_of_time_dot_body() {
        // RFC 4231 test case 2's key and data, with "<t>." before the data: computed apart
        // with `printf '1700000000000.what do ya want for nothing?' | openssl dgst -sha256
        // -hmac Jefe`.
        let s = signature("Jefe", 1_700_000_000_000, b"what do ya want for nothing?");
        assert_eq!(
            s,
            "t=1700000000000,v1=67c32eec367f08da9b08bed2fa1ad06d820a1b6cf0f7dc32c293102c301c776c"
        );
    }

    #[test]
    fn verification_accepts_the_signature_and_nothing_else() {
        let body = br#"{"id":"entry:a:1"}"#;
        let s = signature("whsec_0123456789abcdef", 42, body);
        assert!(verify("whsec_0123456789abcdef", &s, body));
        assert!(!verify("whsec_0123456789abcdeX", &s, body), "other secret");
        assert!(!verify("whsec_0123456789abcdef", &s, b"{}"), "other body");
        let other_time = s.replace("t=42", "t=43");
        assert!(!verify("whsec_0123456789abcdef", &other_time, body));
        assert!(!verify("whsec_0123456789abcdef", "t=42", body));
        assert!(!verify("whsec_0123456789abcdef", "t=42,v1=zz", body));
    }
}
