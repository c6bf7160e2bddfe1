//! Records the ledger stores, one type per key kind of `storage::keys`.

use protocol::api::{AccountStatus, AccountView, MovementView, TransferView};
use protocol::saga::CreditOutcome;
use protocol::{AccountId, Currency, ErrorCode, TransferId};
use serde::{Deserialize, Serialize};

/// The stored state of an account: `("acct", id, "state")`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Currency.
    pub currency: Currency,
    /// Status.
    pub status: AccountStatus,
    /// Booked balance.
    pub balance: u64,
    /// Sum of open holds.
    pub held: u64,
    /// Sequence of the last journal entry (0 before any).
    pub seq: u64,
    /// When the account was opened, ms since the Unix epoch.
    pub opened_at: u64,
}

impl AccountRecord {
    /// Balance minus holds.
    pub fn available(&self) -> u64 {
        self.balance
            .checked_sub(self.held)
            .expect("held never exceeds balance")
    }

    /// The record as the API shows it.
    pub fn view(&self, id: &AccountId) -> AccountView {
        AccountView {
            id: id.clone(),
            currency: self.currency,
            status: self.status,
            balance: self.balance,
            available: self.available(),
            held: self.held,
            seq: self.seq,
        }
    }
}

/// The activation lease of an account: `("acct", id, "lease")`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The node whose activation holds it.
    pub node: String,
    /// Bumped by every activation; a write of an older epoch is fenced.
    pub epoch: u64,
    /// The activation's nonce: tells two activations apart even at one epoch.
    pub nonce: u64,
}

/// What a request produced, kept under its idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum StoredReply {
    /// A deposit's or withdrawal's result.
    Movement(MovementView),
    /// A transfer, kept current: settlement rewrites it.
    Transfer(TransferView),
}

/// An idempotency record: `("acct", id, "idem", key)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemRecord {
    /// The request's parameters in canonical form; a reuse with others is refused.
    pub fingerprint: String,
    /// The result returned to the first request.
    pub reply: StoredReply,
}

/// This account's side of a transfer: `("acct", id, "xfer", transfer_id)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum SagaRecord {
    /// The debited account orchestrates the saga.
    Sender {
        /// Transfer.
        transfer_id: TransferId,
        /// Receiver.
        to: AccountId,
        /// Amount held.
        amount: u64,
        /// Phase.
        status: SenderStatus,
        /// Idempotency key of the request, to rewrite its record on settlement.
        idem_key: Option<String>,
        /// Fingerprint of that request.
        fingerprint: Option<String>,
        /// Free text of the request.
        reference: Option<String>,
        /// When the transfer was accepted.
        created_at: u64,
    },
    /// The credited account records its decision once per transfer.
    Receiver {
        /// Transfer.
        transfer_id: TransferId,
        /// Sender.
        from: AccountId,
        /// Amount.
        amount: u64,
        /// The recorded decision; a repeated `Credit` or `Abort` gets it again.
        outcome: CreditOutcome,
    },
}

/// Phase of a sender saga.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum SenderStatus {
    /// Hold placed, credit not yet decided.
    Holding,
    /// Captured: debited once, credited once.
    Completed,
    /// Released: neither debited nor credited.
    Failed(ErrorCode),
}
