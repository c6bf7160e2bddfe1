//! The `Wallet-Signature` header: `t=<unix ms>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
//!
//! The time is part of what is signed, so a receiver can refuse an old delivery replayed by
//! someone who recorded it; the body is signed as sent, byte for byte. Receivers verify it
//! with their own HMAC (docs/webhooks.md has the code); the node only signs.

use crate::gateway::auth::digest_hex;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header's name.
pub const HEADER: &str = "Wallet-Signature";

/// The header's value for `body` sent at `t_ms` with `secret`.
pub fn signature(secret: &str, t_ms: u64, body: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    m.update(format!("{t_ms}.").as_bytes());
    m.update(body);
    format!(
        "t={t_ms},v1={}",
        digest_hex(&m.finalize().into_bytes().into())
    )
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
    fn secret_time_and_body_each_change_the_signature() {
        let body = br#"{"id":"entry:a:1"}"#;
        let v1 = |s: String| s.split_once(",v1=").unwrap().1.to_owned();
        let s = v1(signature("whsec_0123456789abcdef", 42, body));
        assert_ne!(s, v1(signature("whsec_0123456789abcdeX", 42, body)));
        assert_ne!(s, v1(signature("whsec_0123456789abcdef", 42, b"{}")));
        assert_ne!(s, v1(signature("whsec_0123456789abcdef", 43, body)));
    }
}
