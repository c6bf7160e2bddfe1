//! Records the ledger stores, one type per key kind of `storage::keys`.

use protocol::api::{
    AccountStatus, AccountView, DisbursementLeg, DisbursementView, HoldStatus, HoldView, LegStatus,
    MovementView, TransferStatus, TransferView,
};
use protocol::saga::CreditOutcome;
use protocol::{AccountId, Currency, ErrorCode, TransferId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

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
    /// Shards of a sharded account (2 to 64): this record is then the account's, holding
    /// no money, and `id~0` to `id~K-1` hold it. `None` for an account with one.
    pub shards: Option<u16>,
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
            // The account's own record names its shards; a shard shows as a plain account.
            shards: self.shards.filter(|_| !id.is_shard()),
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
    /// A hold, by id: a replay answers the hold's current view.
    HoldId(TransferId),
    /// A disbursement, by id: a replay answers its current view.
    DisbursementId(TransferId),
    /// A capture, by the hold's id and the capture transfer's: a replay answers both current
    /// views.
    Capture {
        /// The hold.
        hold: TransferId,
        /// The capture's transfer.
        transfer: TransferId,
    },
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
    /// A hold of the account (the payer): kept under the hold's id.
    Hold(HoldRecord),
    /// A disbursement of the account (the payer, its coordinator).
    Disbursement(DisbursementRecord),
    /// One leg of a disbursement, as its receiver records it.
    Leg(LegRecord),
}

impl SagaRecord {
    /// The transfer, hold or disbursement the record is of (its key's id).
    pub fn id(&self) -> &TransferId {
        match self {
            SagaRecord::Sender { transfer_id, .. } | SagaRecord::Receiver { transfer_id, .. } => {
                transfer_id
            }
            SagaRecord::Hold(h) => &h.hold_id,
            SagaRecord::Disbursement(d) => &d.id,
            SagaRecord::Leg(l) => &l.disbursement_id,
        }
    }

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

    /// The hold's view, from a hold's record (`None` for a transfer's).
    pub fn hold_view(&self, from: &AccountId) -> Option<HoldView> {
        match self {
            SagaRecord::Hold(h) => Some(h.view(from)),
            _ => None,
        }
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

/// A hold, as its payer records it: `("saga", hold_id, payer)`. A capture is a transfer of its
/// own (`capture`), so the hold itself never credits anyone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRecord {
    /// Hold.
    pub hold_id: TransferId,
    /// Account a capture pays.
    pub to: AccountId,
    /// Amount held at creation.
    pub amount: u64,
    /// Status.
    pub status: HoldStatus,
    /// The latest capture: its transfer and amount (under way while `Capturing`, done once
    /// `Captured`, refused by the receiver otherwise).
    pub capture: Option<(TransferId, u64)>,
    /// When it expires, ms since the Unix epoch.
    pub expires_at: u64,
    /// Free text of the request.
    pub reference: Option<String>,
    /// When it was created.
    pub created_at: u64,
}

impl HoldRecord {
    /// What the hold itself keeps held: all of it while `held`, the rest while its capture's
    /// transfer holds the captured part, nothing once settled.
    pub fn remaining(&self) -> u64 {
        match self.status {
            HoldStatus::Held => self.amount,
            HoldStatus::Capturing => {
                let captured = self.capture.as_ref().map_or(0, |c| c.1);
                self.amount
                    .checked_sub(captured)
                    .expect("a capture is within its hold")
            }
            HoldStatus::Captured | HoldStatus::Voided | HoldStatus::Expired => 0,
        }
    }

    /// The hold as the API shows it, `from` being the account the record belongs to.
    pub fn view(&self, from: &AccountId) -> HoldView {
        HoldView {
            id: self.hold_id.clone(),
            from: from.clone(),
            to: self.to.clone(),
            amount: self.amount,
            captured: match (self.status, &self.capture) {
                (HoldStatus::Captured, Some((_, a))) => *a,
                _ => 0,
            },
            status: self.status,
            expires_at: self.expires_at,
            created_at: self.created_at,
            reference: self.reference.clone(),
            capture_id: self.capture.as_ref().map(|c| c.0.clone()),
        }
    }
}

/// Where a disbursement stands at its payer: its phase; which legs answered it is stored
/// beside it ([`DisbursementRecord::answered`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum DisbursementPhase {
    /// Every receiver is asked to reserve its leg.
    Trying,
    /// Every leg was reserved: every receiver is told to credit it.
    Confirming,
    /// Leg `leg` failed for `reason`: every receiver is told to drop its leg.
    Cancelling {
        /// The failing leg (its index).
        leg: u32,
        /// Why.
        reason: ErrorCode,
    },
    /// Every leg was credited, and the payer debited.
    Completed,
    /// No leg was credited; the hold was released.
    Failed {
        /// The failing leg (its index).
        leg: u32,
        /// Why.
        reason: ErrorCode,
    },
}

/// A disbursement, as its payer (the coordinator) records it: `("saga", id, payer)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisbursementRecord {
    /// Disbursement.
    pub id: TransferId,
    /// The legs: receiver and amount, in the order given.
    pub legs: Vec<(AccountId, u64)>,
    /// Phase.
    pub phase: DisbursementPhase,
    /// Legs (by index) whose receiver answered the current phase: with the phase, the status
    /// of every leg (reserved while trying, credited while confirming, dropped or refused
    /// while cancelling). A reload asks only the others again.
    #[serde(default)]
    pub answered: BTreeSet<u32>,
    /// Free text of the request.
    pub reference: Option<String>,
    /// When it was accepted.
    pub created_at: u64,
}

impl DisbursementRecord {
    /// The sum of the legs (checked at creation).
    pub fn total(&self) -> u64 {
        self.legs.iter().map(|(_, a)| a).sum()
    }

    /// True until it completed or failed.
    pub fn is_open(&self) -> bool {
        !matches!(
            self.phase,
            DisbursementPhase::Completed | DisbursementPhase::Failed { .. }
        )
    }

    /// The disbursement as the API shows it, `from` being the account the record belongs to.
    pub fn view(&self, from: &AccountId) -> DisbursementView {
        let (status, failed) = match self.phase {
            DisbursementPhase::Completed => (TransferStatus::Completed, None),
            DisbursementPhase::Failed { leg, reason } => {
                (TransferStatus::Failed, Some((leg, reason)))
            }
            _ => (TransferStatus::Pending, None),
        };
        let legs = self
            .legs
            .iter()
            .enumerate()
            .map(|(i, (to, amount))| {
                let (status, reason) = match (status, failed) {
                    (TransferStatus::Completed, _) => (LegStatus::Completed, None),
                    (_, Some((leg, reason))) if leg as usize == i => {
                        (LegStatus::Failed, Some(reason))
                    }
                    (TransferStatus::Failed, _) => (LegStatus::Cancelled, None),
                    _ => (LegStatus::Pending, None),
                };
                DisbursementLeg {
                    to: to.clone(),
                    amount: *amount,
                    status,
                    reason,
                }
            })
            .collect();
        DisbursementView {
            id: self.id.clone(),
            from: from.clone(),
            total: self.total(),
            legs,
            status,
            reason: failed.map(|(_, r)| r),
            created_at: self.created_at,
            reference: self.reference.clone(),
        }
    }

    /// The settlement as the driver's waiters take it ([`DisbursementView::summary`]).
    pub fn summary(&self, from: &AccountId) -> TransferView {
        self.view(from).summary()
    }
}

/// A disbursement leg, as its receiver records it once: `("saga", disbursement_id, receiver)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegRecord {
    /// Disbursement.
    pub disbursement_id: TransferId,
    /// Payer.
    pub from: AccountId,
    /// Amount of the leg (0 for a cancel that came before the try).
    pub amount: u64,
    /// State.
    pub state: LegState,
}

/// A leg's state at its receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum LegState {
    /// Reserved: counted against the receiver's headroom, not in its balance.
    Reserved,
    /// Refused for a business reason.
    Refused(ErrorCode),
    /// Credited (once).
    Credited,
    /// Dropped, or cancelled before its try came (the mark that refuses a late try).
    Cancelled,
}
