//! Wire and domain types shared by every part of the wallet ledger.
//!
//! This crate is the vocabulary of the system: validated identifiers and amounts ([`AccountId`],
//! [`Currency`], [`Amount`]), the business error enum with stable codes ([`ErrorCode`]), the
//! HTTP request and response bodies ([`api`]), the WebSocket frames ([`stream`]), the admin
//! bodies used by `walletctl` ([`admin`]), the webhook events ([`events`]) and the
//! actor-to-actor saga messages ([`saga`]).
//!
//! Validation happens at deserialization: a value of one of these types is always in range, so
//! the ledger core never re-checks an id's characters or an amount's bound.
//!
//! Every API type also derives its OpenAPI schema (`utoipa::ToSchema`; module `schema` for the
//! validated scalars), read from the same serde attributes, for `GET /v1/openapi.json`.
//!
//! Left out on purpose: anything that does IO. This crate depends on serde (and utoipa, which
//! only describes the types) only.

pub mod admin;
pub mod api;
pub mod cluster;
pub mod error;
pub mod events;
pub mod ids;
pub mod saga;
mod schema;
pub mod stream;

pub use error::{ApiError, ErrorCode};

/// One version byte, then JSON: the encoding of every message that crosses a process.
fn versioned_encode<T: serde::Serialize>(version: u8, msg: &T) -> Vec<u8> {
    let mut out = vec![version];
    serde_json::to_writer(&mut out, msg).expect("wire messages serialize");
    out
}

/// Decodes [`versioned_encode`]'s bytes, refusing another version; `what` names the message
/// kind in errors.
fn versioned_decode<T: serde::de::DeserializeOwned>(
    version: u8,
    what: &str,
    bytes: &[u8],
) -> Result<T, String> {
    match bytes.split_first() {
        Some((&v, rest)) if v == version => {
            serde_json::from_slice(rest).map_err(|e| format!("bad {what}: {e}"))
        }
        Some((v, _)) => Err(format!(
            "{what} of version {v}, this node speaks version {version}"
        )),
        None => Err(format!("empty {what}")),
    }
}
pub use ids::{AccountId, Amount, Currency, IdempotencyKey, TransferId, AMOUNT_MAX};
