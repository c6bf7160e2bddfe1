//! Validated identifiers and money amounts.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest amount or balance, in minor units: 2^53-1, exact in every JSON client.
pub const AMOUNT_MAX: u64 = (1 << 53) - 1;

/// Longest account id, in bytes.
pub const ACCOUNT_ID_LEN_MAX: usize = 64;

/// Longest idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;

/// Longest free-text reference attached to a movement, in bytes.
pub const REFERENCE_LEN_MAX: usize = 256;

/// An account id: 1 to 64 characters of `A-Z a-z 0-9 _ - . :`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    /// Parses and validates an account id.
    pub fn new(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        if s.is_empty() || s.len() > ACCOUNT_ID_LEN_MAX {
            return Err(format!(
                "account id must be 1 to {ACCOUNT_ID_LEN_MAX} characters, got {}",
                s.len()
            ));
        }
        if let Some(c) = s.chars().find(|c| !is_id_char(*c)) {
            return Err(format!(
                "account id may contain only A-Z a-z 0-9 _ - . : (found {c:?})"
            ));
        }
        Ok(AccountId(s))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

impl TryFrom<String> for AccountId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        AccountId::new(s)
    }
}

impl From<AccountId> for String {
    fn from(id: AccountId) -> String {
        id.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A currency: three upper-case ASCII letters (ISO 4217 style, not checked against a list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses and validates a currency code.
    pub fn new(s: &str) -> Result<Self, String> {
        let b = s.as_bytes();
        if b.len() != 3 || !b.iter().all(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "currency must be three upper-case letters, got {s:?}"
            ));
        }
        Ok(Currency([b[0], b[1], b[2]]))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Construction guarantees ASCII.
        std::str::from_utf8(&self.0).expect("currency is ASCII")
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Currency::new(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A positive amount of money in minor units, from 1 to [`AMOUNT_MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Amount(u64);

impl Amount {
    /// Validates an amount: 1 to 2^53-1.
    pub fn new(v: u64) -> Result<Self, String> {
        if v == 0 || v > AMOUNT_MAX {
            return Err(format!("amount must be from 1 to {AMOUNT_MAX}, got {v}"));
        }
        Ok(Amount(v))
    }

    /// The amount in minor units.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for Amount {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        Amount::new(v)
    }
}

impl From<Amount> for u64 {
    fn from(a: Amount) -> u64 {
        a.0
    }
}

/// A client's idempotency key: 1 to 255 printable ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a key.
    pub fn new(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        if s.is_empty() || s.len() > IDEMPOTENCY_KEY_LEN_MAX {
            return Err(format!(
                "idempotency key must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} characters"
            ));
        }
        if !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err("idempotency key must be printable ASCII without spaces".into());
        }
        Ok(IdempotencyKey(s))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        IdempotencyKey::new(s)
    }
}

impl From<IdempotencyKey> for String {
    fn from(k: IdempotencyKey) -> String {
        k.0
    }
}

/// A transfer id, chosen by the node that accepted the transfer (unique, opaque, ASCII).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TransferId(String);

impl TransferId {
    /// Validates a transfer id (same character set and length as an account id).
    pub fn new(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        if s.is_empty() || s.len() > ACCOUNT_ID_LEN_MAX || !s.chars().all(is_id_char) {
            return Err(format!("malformed transfer id {s:?}"));
        }
        Ok(TransferId(s))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TransferId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        TransferId::new(s)
    }
}

impl From<TransferId> for String {
    fn from(t: TransferId) -> String {
        t.0
    }
}

impl fmt::Display for TransferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_out_of_contract_values() {
        // Proves the API.md bounds hold at construction.
        assert!(AccountId::new("alice_01.x:y-z").is_ok());
        assert!(AccountId::new("").is_err());
        assert!(AccountId::new("a b").is_err());
        assert!(AccountId::new("x".repeat(65)).is_err());
        assert!(Currency::new("EUR").is_ok());
        assert!(Currency::new("eur").is_err());
        assert!(Currency::new("EURO").is_err());
        assert!(Amount::new(0).is_err());
        assert!(Amount::new(AMOUNT_MAX).is_ok());
        assert!(Amount::new(AMOUNT_MAX + 1).is_err());
        assert!(serde_json::from_str::<Amount>("1.5").is_err());
        assert!(serde_json::from_str::<Amount>("-3").is_err());
        assert!(IdempotencyKey::new("k".repeat(256)).is_err());
    }
}
