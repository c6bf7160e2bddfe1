//! Validated identifiers and money amounts.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest amount or balance, in minor units: 2^53-1, exact in every JSON client.
pub const AMOUNT_MAX: u64 = (1 << 53) - 1;

/// Longest account id, in bytes.
pub const ACCOUNT_ID_LEN_MAX: usize = 64;

/// Longest transfer id, in bytes: room for the id of a move between two shards of an
/// account (`mv.`, the account id, the shard, a sequence number).
pub const TRANSFER_ID_LEN_MAX: usize = 128;

/// Longest idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 255;

/// Longest free-text reference attached to a movement, in bytes.
pub const REFERENCE_LEN_MAX: usize = 256;

/// Most shards a sharded (hot) account may have.
pub const SHARDS_MAX: u16 = 64;

/// The character that joins an account id and a shard number in a shard's internal id
/// (`merchant~3`); outside the public alphabet, so no client-chosen id can be a shard's.
pub const SHARD_SEPARATOR: char = '~';

/// An account id: 1 to 64 characters of `A-Z a-z 0-9 _ - . :`; or, inside the system only,
/// a shard of a sharded account: such an id, `~` and the shard number (0 to 63). Routes
/// refuse shard ids from clients ([`AccountId::is_shard`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    /// Parses and validates an account id.
    pub fn new(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        if let Some((base, n)) = s.split_once(SHARD_SEPARATOR) {
            let shard_ok = !n.is_empty()
                && n.len() <= 2
                && n.bytes().all(|b| b.is_ascii_digit())
                && (n == "0" || !n.starts_with('0'))
                && n.parse::<u16>().is_ok_and(|i| i < SHARDS_MAX);
            if !shard_ok {
                return Err(format!("malformed shard id {s:?}"));
            }
            AccountId::new(base)?;
            return Ok(AccountId(s));
        }
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

    /// The id of shard `index` of this account (an account id, not a shard's).
    pub fn shard(&self, index: u16) -> AccountId {
        assert!(
            !self.is_shard() && index < SHARDS_MAX,
            "shard {index} of {self}"
        );
        AccountId(format!("{}{SHARD_SEPARATOR}{index}", self.0))
    }

    /// True for a shard's internal id.
    pub fn is_shard(&self) -> bool {
        self.0.contains(SHARD_SEPARATOR)
    }

    /// The shard number of a shard's id, `None` for an account's.
    pub fn shard_index(&self) -> Option<u16> {
        let (_, n) = self.0.split_once(SHARD_SEPARATOR)?;
        Some(n.parse().expect("validated shard number"))
    }

    /// The account a client knows: for a shard, the account it belongs to; else itself.
    pub fn public(&self) -> AccountId {
        match self.0.split_once(SHARD_SEPARATOR) {
            Some((base, _)) => AccountId(base.to_owned()),
            None => self.clone(),
        }
    }

    /// The account part of the id as text (see [`AccountId::public`]).
    pub fn public_str(&self) -> &str {
        self.0
            .split_once(SHARD_SEPARATOR)
            .map_or(&self.0, |(b, _)| b)
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
    /// Validates a transfer id (same character set as an account id, at most
    /// [`TRANSFER_ID_LEN_MAX`] characters).
    pub fn new(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        if s.is_empty() || s.len() > TRANSFER_ID_LEN_MAX || !s.chars().all(is_id_char) {
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

    #[test]
    fn shard_ids_are_internal_and_name_their_account() {
        // Proves a shard id round-trips, names its account and number, and that only the
        // exact form `id~N` with N below 64 is one.
        let m = AccountId::new("merchant").unwrap();
        let s = m.shard(7);
        assert_eq!(s.as_str(), "merchant~7");
        assert_eq!(AccountId::new("merchant~7").unwrap(), s);
        assert!(s.is_shard() && !m.is_shard());
        assert_eq!(
            (s.shard_index(), s.public(), s.public_str()),
            (Some(7), m.clone(), "merchant")
        );
        assert_eq!(m.public(), m);
        let long = AccountId::new("x".repeat(64)).unwrap();
        assert_eq!(long.shard(63).as_str().len(), 67);
        for bad in [
            "merchant~64",
            "merchant~07",
            "merchant~",
            "~1",
            "a~1~2",
            "a b~1",
            "a~x",
        ] {
            assert!(AccountId::new(bad).is_err(), "{bad}");
        }
        assert!(TransferId::new("x".repeat(128)).is_ok());
        assert!(TransferId::new("x".repeat(129)).is_err());
    }
}
