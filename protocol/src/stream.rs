//! WebSocket frames of `GET /v1/stream` (API.md).

use crate::api::{AccountView, Entry, MovementView, TransferView};
use crate::{AccountId, Amount, ErrorCode, IdempotencyKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A frame from client to server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Stream an account's entries, replaying those after `from_seq` first.
    Subscribe {
        /// The account.
        account: AccountId,
        /// Replay entries after this sequence; omit for live updates only.
        #[serde(default)]
        #[schema(nullable = false)]
        from_seq: Option<u64>,
        /// The shard to stream, for a sharded account (required there).
        #[serde(default)]
        #[schema(nullable = false)]
        shard: Option<u16>,
    },
    /// Stop streaming an account.
    Unsubscribe {
        /// The account.
        account: AccountId,
        /// The shard, for a sharded account.
        #[serde(default)]
        #[schema(nullable = false)]
        shard: Option<u16>,
    },
    /// Liveness check, answered with `pong`.
    Ping,
    /// Transfer command.
    Transfer {
        /// Correlates the result.
        req_id: String,
        /// Debited account.
        from: AccountId,
        /// Credited account.
        to: AccountId,
        /// Amount.
        amount: Amount,
        /// Idempotency key.
        #[serde(default)]
        #[schema(nullable = false)]
        idempotency_key: Option<IdempotencyKey>,
    },
    /// Deposit command.
    Deposit {
        /// Correlates the result.
        req_id: String,
        /// Account.
        account: AccountId,
        /// Amount.
        amount: Amount,
        /// Idempotency key.
        #[serde(default)]
        #[schema(nullable = false)]
        idempotency_key: Option<IdempotencyKey>,
    },
    /// Withdrawal command.
    Withdraw {
        /// Correlates the result.
        req_id: String,
        /// Account.
        account: AccountId,
        /// Amount.
        amount: Amount,
        /// Idempotency key.
        #[serde(default)]
        #[schema(nullable = false)]
        idempotency_key: Option<IdempotencyKey>,
    },
    /// Read an account.
    Get {
        /// Correlates the result.
        req_id: String,
        /// Account.
        account: AccountId,
    },
}

/// The payload of a command result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum CommandResult {
    /// A transfer's state.
    Transfer(TransferView),
    /// A deposit's or withdrawal's result.
    Movement(MovementView),
    /// An account.
    Account(AccountView),
}

/// A frame from server to client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// A subscription is live; `seq` is the account's sequence at that moment.
    Subscribed {
        /// Account.
        account: AccountId,
        /// The shard streamed, for a sharded account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        shard: Option<u16>,
        /// Current sequence (the shard's, for a sharded account).
        seq: u64,
    },
    /// A subscription ended.
    Unsubscribed {
        /// Account.
        account: AccountId,
        /// The shard, for a sharded account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        shard: Option<u16>,
    },
    /// One journal entry and the balances after it (the shard's, for a sharded account).
    Balance {
        /// Account.
        account: AccountId,
        /// The shard whose journal holds the entry, for a sharded account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        shard: Option<u16>,
        /// The entry's sequence.
        seq: u64,
        /// Balance after the entry.
        balance: u64,
        /// Available after the entry.
        available: u64,
        /// Held after the entry.
        held: u64,
        /// The entry.
        entry: Entry,
    },
    /// Answer to `ping`.
    Pong,
    /// Result of a command.
    Result {
        /// The command's `req_id`.
        req_id: String,
        /// The result.
        result: CommandResult,
    },
    /// A bad frame or a failed command; the socket stays open.
    Error {
        /// Stable code.
        code: ErrorCode,
        /// Sentence.
        message: String,
        /// The command's `req_id`, when the frame had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false)]
        req_id: Option<String>,
    },
}
