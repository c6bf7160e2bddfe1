//! The wallet node: ledger core, storage, account actors and the HTTP/WebSocket gateway.
//!
//! The tree reads bottom-up as the architecture:
//! - [`storage`]: the FoundationDB-shaped storage contract and its backends;
//! - [`ledger`]: the sans-IO account state machine and transfer saga, and the storage
//!   transaction bodies every driver runs;
//! - [`cluster`]: the ractor shell: one actor per active account, activation, passivation,
//!   timers, the saga message routing, the pending-saga sweeper;
//! - [`gateway`]: the axum HTTP, WebSocket and admin API, and metrics;
//! - [`webhooks`]: the publishers that deliver the outbox's events to webhook receivers;
//! - [`server`]: wiring the above into a running node with graceful shutdown (`walletd`).

pub mod cluster;
pub mod gateway;
pub mod ledger;
pub mod metrics;
pub mod server;
pub mod storage;
pub mod tls;
pub mod webhooks;
