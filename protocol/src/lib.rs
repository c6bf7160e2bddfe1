//! Wire and domain types shared by every part of the wallet ledger.
//!
//! This crate is the vocabulary of the system: validated identifiers and amounts ([`AccountId`],
//! [`Currency`], [`Amount`]), the business error enum with stable codes ([`ErrorCode`]), the
//! HTTP request and response bodies ([`api`]), the WebSocket frames ([`stream`]), the admin
//! bodies used by `walletctl` ([`admin`]) and the actor-to-actor saga messages ([`saga`]).
//!
//! Validation happens at deserialization: a value of one of these types is always in range, so
//! the ledger core never re-checks an id's characters or an amount's bound.
//!
//! Left out on purpose: anything that does IO. This crate depends on serde only.

pub mod admin;
pub mod api;
pub mod cluster;
pub mod error;
pub mod ids;
pub mod saga;
pub mod stream;

pub use error::{ApiError, ErrorCode};
pub use ids::{AccountId, Amount, Currency, IdempotencyKey, TransferId, AMOUNT_MAX};
