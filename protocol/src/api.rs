//! HTTP request and response bodies of the `/v1` API (API.md).

use crate::{AccountId, Amount, Currency, ErrorCode, IdempotencyKey, TransferId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Default time a `POST /v1/transfers` waits for the saga to settle, in milliseconds.
pub const TRANSFER_WAIT_MS_DEFAULT: u64 = 5_000;

/// Longest time a client may ask a transfer request to wait, in milliseconds.
pub const TRANSFER_WAIT_MS_MAX: u64 = 60_000;

/// Largest page of journal entries a history request returns.
pub const ENTRIES_PAGE_MAX: u32 = 1_000;

/// Page size of a history request without `limit`.
pub const ENTRIES_PAGE_DEFAULT: u32 = 100;

/// Status of an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Accepts every movement.
    Active,
    /// Refuses every movement until unfrozen.
    Frozen,
    /// Refuses every movement for good.
    Closed,
}

/// `POST /v1/accounts` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAccount {
    /// The new account's id.
    pub id: AccountId,
    /// The currency it holds.
    pub currency: Currency,
    /// Shards of a hot account, 1 to 64 (`SHARDS_MAX`; default 1: not sharded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 1, maximum = 64)]
    pub shards: Option<u16>,
}

/// An account as the API shows it. A sharded account's view carries `shards` and no `seq`
/// (each shard has its own); a view read back without `seq` has 0 there.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, ToSchema)]
pub struct AccountView {
    /// Account id.
    pub id: AccountId,
    /// Currency.
    pub currency: Currency,
    /// Status.
    pub status: AccountStatus,
    /// Booked balance, minor units.
    pub balance: u64,
    /// Balance minus holds, minor units.
    pub available: u64,
    /// Sum of open holds, minor units.
    pub held: u64,
    /// Sequence number of the last journal entry (0 before any); absent for a sharded account
    /// (each shard has its own), read back as 0.
    #[serde(default)]
    pub seq: u64,
    /// Shards of a sharded account; absent for an account with one.
    #[serde(default)]
    #[schema(nullable = false, minimum = 2, maximum = 64)]
    pub shards: Option<u16>,
}

impl Serialize for AccountView {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = ser.serialize_struct("AccountView", 7)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("currency", &self.currency)?;
        st.serialize_field("status", &self.status)?;
        st.serialize_field("balance", &self.balance)?;
        st.serialize_field("available", &self.available)?;
        st.serialize_field("held", &self.held)?;
        match self.shards {
            None => st.serialize_field("seq", &self.seq)?,
            Some(k) => st.serialize_field("shards", &k)?,
        }
        st.end()
    }
}

/// `POST /v1/deposits` and `POST /v1/withdrawals` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Movement {
    /// The account credited or debited.
    pub account: AccountId,
    /// Amount in minor units.
    pub amount: Amount,
    /// Free text kept with the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 256)]
    pub reference: Option<String>,
}

/// Reply to a deposit or withdrawal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MovementView {
    /// Id of the movement (the account and its journal sequence).
    pub id: String,
    /// The account.
    pub account: AccountId,
    /// Amount in minor units.
    #[schema(minimum = 1, maximum = 9007199254740991u64)]
    pub amount: u64,
    /// Balance after the movement.
    pub balance: u64,
    /// Journal sequence of the movement's entry.
    pub seq: u64,
    /// The shard that took it, for a sharded account (`balance` and `seq` are then that
    /// shard's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub shard: Option<u16>,
}

/// `POST /v1/transfers` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// Debited account.
    pub from: AccountId,
    /// Credited account.
    pub to: AccountId,
    /// Amount in minor units.
    pub amount: Amount,
    /// Free text kept with the entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 256)]
    pub reference: Option<String>,
    /// How long to wait for the saga to settle before answering 202 (default 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, maximum = 60000)]
    pub wait_ms: Option<u64>,
}

/// Most transfers in one `POST /v1/transfers/batch`.
pub const BATCH_TRANSFERS_MAX: usize = 8_190;

/// One item of `POST /v1/transfers/batch`: a transfer, with its own idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchTransferItem {
    /// Debited account.
    pub from: AccountId,
    /// Credited account.
    pub to: AccountId,
    /// Amount in minor units.
    pub amount: Amount,
    /// Free text kept with the entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 256)]
    pub reference: Option<String>,
    /// What the `Idempotency-Key` header means for one transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub idempotency_key: Option<IdempotencyKey>,
}

/// `POST /v1/transfers/batch` body. Items are kept as JSON until each is decoded on its own,
/// so that a bad item is refused alone and only a malformed envelope fails the request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchTransfersRequest {
    /// 1 to 8,190 items (`BATCH_TRANSFERS_MAX`), each a `BatchTransferItem`.
    #[schema(value_type = Vec<BatchTransferItem>, min_items = 1, max_items = 8190)]
    pub transfers: Vec<serde_json::Value>,
    /// How long to wait for the sagas to settle before answering them pending (default 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, maximum = 60000)]
    pub wait_ms: Option<u64>,
}

/// The result of one item of a batch: the transfer, or the error that refused it before it
/// ran (or left its outcome unknown: `unavailable`, retry with the same key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum BatchResult {
    /// The transfer: `completed`, `pending` (the wait ran out), or `failed` with its reason.
    Transfer(TransferView),
    /// The item did not run (or its outcome is unknown).
    Error {
        /// Code and sentence.
        error: crate::ApiError,
    },
}

/// `POST /v1/transfers/batch` answer: one result per item, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchTransfersResponse {
    /// The results.
    pub results: Vec<BatchResult>,
}

/// Status of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// The hold is placed; the credit is not yet decided.
    Pending,
    /// Debited once and credited once.
    Completed,
    /// Neither debited nor credited; `reason` says why.
    Failed,
}

/// A transfer as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransferView {
    /// Transfer id.
    pub id: TransferId,
    /// Debited account.
    pub from: AccountId,
    /// Credited account.
    pub to: AccountId,
    /// Amount in minor units.
    #[schema(minimum = 1, maximum = 9007199254740991u64)]
    pub amount: u64,
    /// Status.
    pub status: TransferStatus,
    /// Why it failed, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<ErrorCode>,
    /// When the transfer was accepted, milliseconds since the Unix epoch.
    pub created_at: u64,
}

/// Life of a hold when `expires_in_ms` is absent: 7 days.
pub const HOLD_EXPIRES_IN_MS_DEFAULT: u64 = 7 * 24 * 3_600_000;
/// Shortest life of a hold: 1 second.
pub const HOLD_EXPIRES_IN_MS_MIN: u64 = 1_000;
/// Longest life of a hold: 30 days.
pub const HOLD_EXPIRES_IN_MS_MAX: u64 = 30 * 24 * 3_600_000;

/// `POST /v1/holds` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// Account whose money is held.
    pub from: AccountId,
    /// Account a capture pays.
    pub to: AccountId,
    /// Amount held, in minor units.
    pub amount: Amount,
    /// Life of the hold in ms: default 7 days, from 1 second to 30 days (the
    /// `HOLD_EXPIRES_IN_MS_*` constants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 1000, maximum = 2592000000u64)]
    pub expires_in_ms: Option<u64>,
    /// Free text kept with the hold and its entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 256)]
    pub reference: Option<String>,
}

/// `POST /v1/holds/{id}/capture` body (may be empty).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// Amount to move to `to` (default: all that is held); the rest is released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub amount: Option<Amount>,
    /// How long to wait for the receiver before answering 202 (default 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, maximum = 60000)]
    pub wait_ms: Option<u64>,
}

/// Status of a hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    /// The amount is held on `from`.
    Held,
    /// A capture is under way: its transfer waits for the receiver.
    Capturing,
    /// Captured: `captured` moved to `to`, the rest released.
    Captured,
    /// Voided: everything released.
    Voided,
    /// Expired: everything released.
    Expired,
}

impl HoldStatus {
    /// The status as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Held => "held",
            HoldStatus::Capturing => "capturing",
            HoldStatus::Captured => "captured",
            HoldStatus::Voided => "voided",
            HoldStatus::Expired => "expired",
        }
    }

    /// True for `held` and `capturing`: money is still held.
    pub fn is_open(self) -> bool {
        matches!(self, HoldStatus::Held | HoldStatus::Capturing)
    }
}

/// A hold as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HoldView {
    /// Hold id.
    pub id: TransferId,
    /// Account whose money is held.
    pub from: AccountId,
    /// Account a capture pays.
    pub to: AccountId,
    /// Amount held at creation.
    #[schema(minimum = 1, maximum = 9007199254740991u64)]
    pub amount: u64,
    /// Amount moved to `to` (0 until captured).
    pub captured: u64,
    /// Status.
    pub status: HoldStatus,
    /// When the hold expires unless captured or voided, ms since the Unix epoch.
    pub expires_at: u64,
    /// When the hold was created, ms since the Unix epoch.
    pub created_at: u64,
    /// Free text of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 256)]
    pub reference: Option<String>,
    /// The transfer of the latest capture (extension): under way while `capturing`, completed
    /// once `captured`, failed when the receiver refused it (the hold is then `held` again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub capture_id: Option<TransferId>,
}

/// Most legs of one disbursement.
pub const DISBURSEMENT_LEGS_MAX: usize = 256;

/// One leg of `POST /v1/disbursements`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisbursementLegRequest {
    /// Credited account.
    pub to: AccountId,
    /// Amount in minor units.
    pub amount: Amount,
}

/// `POST /v1/disbursements` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisbursementRequest {
    /// Debited account.
    pub from: AccountId,
    /// 1 to 256 legs (`DISBURSEMENT_LEGS_MAX`), distinct receivers, none equal to `from`.
    #[schema(min_items = 1, max_items = 256)]
    pub legs: Vec<DisbursementLegRequest>,
    /// Free text kept with the entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 256)]
    pub reference: Option<String>,
    /// How long to wait for it to settle before answering 202 (default 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, maximum = 60000)]
    pub wait_ms: Option<u64>,
}

/// One leg of a disbursement as the API shows it. Its `status` is the disbursement's while
/// it is pending; once settled, `completed` (credited), `failed` (the leg whose receiver
/// refused, with `reason`) or `cancelled`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DisbursementLeg {
    /// Credited account.
    pub to: AccountId,
    /// Amount in minor units.
    #[schema(minimum = 1, maximum = 9007199254740991u64)]
    pub amount: u64,
    /// Status.
    pub status: LegStatus,
    /// Why the receiver refused, on the failing leg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<ErrorCode>,
}

/// Status of a disbursement's leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LegStatus {
    /// Not settled yet.
    Pending,
    /// Credited.
    Completed,
    /// The receiver refused (or never answered): the disbursement failed for this leg.
    Failed,
    /// Not credited: another leg failed.
    Cancelled,
}

/// A disbursement as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DisbursementView {
    /// Disbursement id.
    pub id: TransferId,
    /// Debited account.
    pub from: AccountId,
    /// Sum of the legs.
    #[schema(minimum = 1)]
    pub total: u64,
    /// The legs, in the order given.
    pub legs: Vec<DisbursementLeg>,
    /// `pending`, `completed` (every leg credited) or `failed` (no leg credited).
    pub status: TransferStatus,
    /// The first refusal, when failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<ErrorCode>,
    /// When it was accepted, ms since the Unix epoch.
    pub created_at: u64,
    /// Free text of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 256)]
    pub reference: Option<String>,
}

impl DisbursementView {
    /// The settlement as the waiters of a disbursement take it: a transfer-shaped summary
    /// (id, status, reason; `to` is the failing leg's, else the first leg's), from which
    /// `Reply::settled` restores every leg's status.
    pub fn summary(&self) -> TransferView {
        let leg = self
            .legs
            .iter()
            .find(|l| l.status == LegStatus::Failed)
            .or(self.legs.first())
            .expect("a disbursement has legs");
        TransferView {
            id: self.id.clone(),
            from: self.from.clone(),
            to: leg.to.clone(),
            amount: self.total,
            status: self.status,
            reason: self.reason,
            created_at: self.created_at,
        }
    }
}

/// Kind of a journal entry (more kinds may be added: clients ignore kinds they do not know).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Money in from outside.
    Deposit,
    /// Money out to outside.
    Withdrawal,
    /// A transfer's hold: available goes down, balance stays.
    Hold,
    /// A transfer's capture on the sender: balance goes down, hold removed.
    TransferOut,
    /// A transfer's credit on the receiver.
    TransferIn,
    /// A failed transfer's hold released: available goes back up.
    Release,
}

impl EntryKind {
    /// Every kind, for tests and listings.
    pub const ALL: [EntryKind; 6] = [
        EntryKind::Deposit,
        EntryKind::Withdrawal,
        EntryKind::Hold,
        EntryKind::TransferOut,
        EntryKind::TransferIn,
        EntryKind::Release,
    ];

    /// The wire name of the kind (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Deposit => "deposit",
            EntryKind::Withdrawal => "withdrawal",
            EntryKind::Hold => "hold",
            EntryKind::TransferOut => "transfer_out",
            EntryKind::TransferIn => "transfer_in",
            EntryKind::Release => "release",
        }
    }
}

/// One immutable journal entry (the audit log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    /// Sequence number within the account, from 1, without gaps.
    pub seq: u64,
    /// Kind.
    pub kind: EntryKind,
    /// Amount in minor units.
    pub amount: u64,
    /// Balance after the entry.
    pub balance: u64,
    /// Available balance after the entry.
    pub available: u64,
    /// The transfer, for transfer entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub transfer_id: Option<TransferId>,
    /// Free text given with the movement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 256)]
    pub reference: Option<String>,
    /// When it was written, milliseconds since the Unix epoch.
    pub at: u64,
    /// The shard whose journal holds it, for a sharded account's entries (each shard has its
    /// own `seq`); never stored, set when the entry is read or streamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub shard: Option<u16>,
}

/// A page of journal entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EntriesPage {
    /// Entries in sequence order.
    pub entries: Vec<Entry>,
    /// Pass as `after_seq` for the next page; null when this page reached the end.
    #[schema(required = true)]
    pub next_after_seq: Option<u64>,
}

/// Query of a history request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntriesQuery {
    /// Return entries after this sequence (default 0: from the start).
    #[serde(default)]
    #[param(nullable = false)]
    pub after_seq: Option<u64>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(nullable = false, minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The shard whose journal to read, for a sharded account (required there, refused for
    /// any other).
    #[serde(default)]
    #[param(nullable = false, maximum = 63)]
    pub shard: Option<u16>,
}

/// Largest page of `GET /v1/accounts/{id}/transfers`.
pub const TRANSFERS_PAGE_MAX: u32 = 1_000;
/// Page size of `GET /v1/accounts/{id}/transfers` when `limit` is absent.
pub const TRANSFERS_PAGE_DEFAULT: u32 = 100;

/// A page of an account's transfers (either side), newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransfersPage {
    /// The transfers, newest first.
    pub transfers: Vec<TransferView>,
    /// Pass as `after` for the next page; null when this page reached the end. A page may
    /// hold fewer than `limit` transfers and still have a next one (a `status` filter reads a
    /// bounded number of rows per request).
    #[schema(required = true)]
    pub next_after: Option<String>,
}

/// Query of an account's transfer list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TransfersQuery {
    /// Only transfers with this status.
    #[serde(default)]
    #[param(nullable = false)]
    pub status: Option<TransferStatus>,
    /// The cursor of the previous page (`next_after`), opaque.
    #[serde(default)]
    #[param(nullable = false)]
    pub after: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(nullable = false, minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

impl MovementView {
    /// The view a client sees: a shard's id replaced by its account's, and the shard named.
    pub fn public(mut self) -> Self {
        self.shard = self.account.shard_index();
        self.account = self.account.public();
        self
    }
}

impl TransferView {
    /// The view a client sees: shards' ids replaced by their accounts'.
    pub fn public(mut self) -> Self {
        self.from = self.from.public();
        self.to = self.to.public();
        self
    }
}

impl HoldView {
    /// The view a client sees: shards' ids replaced by their accounts'.
    pub fn public(mut self) -> Self {
        self.from = self.from.public();
        self.to = self.to.public();
        self
    }
}

impl DisbursementView {
    /// The view a client sees: shards' ids replaced by their accounts'.
    pub fn public(mut self) -> Self {
        self.from = self.from.public();
        for leg in &mut self.legs {
            leg.to = leg.to.public();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_kinds_serialize_to_their_wire_names() {
        // Proves as_str and serde agree for every kind, so listings print the wire form.
        for k in EntryKind::ALL {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
    }
}
