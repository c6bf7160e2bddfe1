//! Webhook events: what a receiver gets in each `POST` (API.md "Webhooks").
//!
//! An event is written to the outbox in the same storage transaction as the change it tells
//! of, so it is never lost and never tells of a change that did not happen. Its `id` is
//! stable across retries and restarts (receivers deduplicate on it): `entry:{account}:{seq}`
//! for an entry (`{account}~{shard}` for a sharded account's shard), and `{type}:{id}` for a
//! settlement, which happens once per transfer, hold or disbursement.

use crate::api::{DisbursementView, Entry, HoldView, TransferView};
use crate::AccountId;
use serde::{Deserialize, Serialize};

/// One event, as delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Stable across deliveries of this event: deduplicate on it.
    pub id: String,
    /// `entry`, `transfer.settled`, `hold.settled` or `disbursement.settled`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The account whose change it tells of (a transfer's, hold's or disbursement's payer for
    /// settlements).
    pub account: AccountId,
    /// The shard whose journal the event follows, for a sharded account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u16>,
    /// The account's `seq` when the event was written: events of one account (one shard) are
    /// delivered in `seq` order; an entry's is the entry's own.
    pub seq: u64,
    /// When the change was committed, milliseconds since the Unix epoch.
    pub at: u64,
    /// What happened.
    pub data: EventData,
}

/// An event's body, by type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EventData {
    /// `entry`: the entry and the balances after it.
    Entry(EntryData),
    /// `transfer.settled`: the transfer, `completed` or `failed`.
    Transfer(TransferView),
    /// `hold.settled`: the hold, `captured`, `voided` or `expired`.
    Hold(Box<HoldView>),
    /// `disbursement.settled`: the disbursement, `completed` or `failed`.
    Disbursement(Box<DisbursementView>),
}

/// The body of an `entry` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryData {
    /// Balance after the entry.
    pub balance: u64,
    /// Available after the entry.
    pub available: u64,
    /// Held after the entry.
    pub held: u64,
    /// The entry.
    pub entry: Entry,
}
