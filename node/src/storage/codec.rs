//! Encoding of stored values: one version byte, then the record.
//!
//! - Version 2 (written now): the record's compact binary wire form ([`Stored`]; the ledger's
//!   forms are in `ledger::stored`).
//! - Version 1 (written by releases before 0.2, still read): JSON of the record's serde form.
//!
//! The version byte lets a release change the encoding of a record type without migrating
//! old rows: every version ever written keeps decoding. The binary values are not readable
//! with a generic tool (the keys still are: tuple-encoded text); during an incident read the
//! records through the HTTP API and `walletctl`, which show them as JSON.

use super::StorageError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Version of the value encoding written now: the binary wire form.
pub const VALUE_VERSION: u8 = 2;
/// Version of the JSON encoding of releases before 0.2 (read only).
pub const VALUE_VERSION_JSON: u8 = 1;

/// A record with a binary wire form (value version 2); its serde form is the JSON of version 1.
pub trait Stored: Serialize + DeserializeOwned {
    /// Appends the wire form.
    fn write_wire(&self, out: &mut Vec<u8>);
    /// Reads a wire form written by [`Stored::write_wire`]; all of `bytes` must be used.
    fn read_wire(bytes: &[u8]) -> Result<Self, String>;
}

/// Encodes a record (version 2).
pub fn encode<T: Stored>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(VALUE_VERSION);
    value.write_wire(&mut out);
    out
}

/// Encodes a record as releases before 0.2 did (version 1, JSON): for tests of old data.
pub fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(VALUE_VERSION_JSON);
    serde_json::to_writer(&mut out, value).expect("records serialize");
    out
}

/// Decodes a record of any version ever written.
pub fn decode<T: Stored>(bytes: &[u8]) -> Result<T, StorageError> {
    match bytes.split_first() {
        Some((&VALUE_VERSION, rest)) => T::read_wire(rest)
            .map_err(|e| StorageError::Corrupt(format!("undecodable record: {e}"))),
        Some((&VALUE_VERSION_JSON, _)) => decode_json(bytes),
        Some((v, _)) => Err(StorageError::Corrupt(format!("unknown record version {v}"))),
        None => Err(StorageError::Corrupt("empty record".into())),
    }
}

/// Decodes a value only ever written as JSON (version 1): a record kept where releases before
/// 0.2 kept it.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    match bytes.split_first() {
        Some((&VALUE_VERSION_JSON, rest)) => serde_json::from_slice(rest)
            .map_err(|e| StorageError::Corrupt(format!("undecodable record: {e}"))),
        Some((v, _)) => Err(StorageError::Corrupt(format!(
            "unknown record version {v} (expected JSON)"
        ))),
        None => Err(StorageError::Corrupt("empty record".into())),
    }
}
