//! Records the ledger stores, one type per key kind of `storage::keys`.

use protocol::api::{AccountStatus, AccountView, MovementView, TransferStatus, TransferView};
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
    /// A transfer's view as written by releases before 0.2, which rewrote it on settlement;
    /// read back like [`StoredReply::TransferId`]: the current view of `.id`.
    Transfer(TransferView),
    /// A transfer, by id: a replay answers the transfer's current view, read from its
    /// sender record (the view is stored once, there, and never copied here).
    TransferId(TransferId),
}

/// An idempotency record: `("acct", id, "idem", key)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemRecord {
    /// The request's parameters in canonical form; a reuse with others is refused.
    pub fingerprint: String,
    /// The result returned to the first request.
    pub reply: StoredReply,
}

/// One side of a transfer: `("saga", transfer_id, account)` (releases before 0.2 kept it at
/// `("acct", account, "xfer", transfer_id)`, still read). The sender's record is also the
/// transfer's summary ([`SagaRecord::view`]): the view is stored once.
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
        /// Idempotency key of the request (written by releases before 0.2 only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idem_key: Option<String>,
        /// Fingerprint of that request (written by releases before 0.2 only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
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

impl SagaRecord {
    /// The transfer's summary, from the sender's record (`None` for a receiver's), `from`
    /// being the account the record belongs to.
    pub fn view(&self, from: &AccountId) -> Option<TransferView> {
        let SagaRecord::Sender {
            transfer_id,
            to,
            amount,
            status,
            created_at,
            ..
        } = self
        else {
            return None;
        };
        let (status, reason) = match status {
            SenderStatus::Holding => (TransferStatus::Pending, None),
            SenderStatus::Completed => (TransferStatus::Completed, None),
            SenderStatus::Failed(code) => (TransferStatus::Failed, Some(*code)),
        };
        Some(TransferView {
            id: transfer_id.clone(),
            from: from.clone(),
            to: to.clone(),
            amount: *amount,
            status,
            reason,
            created_at: *created_at,
        })
    }
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
