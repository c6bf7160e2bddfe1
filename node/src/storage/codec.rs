//! Encoding of stored values: one version byte, then JSON.
//!
//! JSON keeps records readable with any tool during an incident; the version byte lets a later
//! release change the encoding of a record type without a migration of old rows.

use super::StorageError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Version of the value encoding.
pub const VALUE_VERSION: u8 = 1;

/// Encodes a record.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(VALUE_VERSION);
    serde_json::to_writer(&mut out, value).expect("records serialize");
    out
}

/// Decodes a record written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StorageError> {
    match bytes.split_first() {
        Some((&VALUE_VERSION, rest)) => serde_json::from_slice(rest)
            .map_err(|e| StorageError::Corrupt(format!("undecodable record: {e}"))),
        Some((v, _)) => Err(StorageError::Corrupt(format!("unknown record version {v}"))),
        None => Err(StorageError::Corrupt("empty record".into())),
    }
}
