//! The account state machine: one account's commands, saga messages and timers.
//!
//! [`AccountCore::needs`] says which stored records an input depends on; the driver reads them
//! inside the storage transaction and calls [`AccountCore::step`], which mutates the core and
//! returns the [`Step`]: the writes to make in that same transaction and the effects to carry
//! out after it commits. Nothing here does IO, reads a clock or draws a random number.
//!
//! This file holds the state, its invariants and the dispatch of inputs; each kind of saga
//! has its own file: `transfers` (both sides of a transfer), `holds` (authorize, capture,
//! void, expire), `disbursements` (both sides of Try-Confirm/Cancel).

mod disbursements;
mod holds;
mod shards;
mod transfers;

use transfers::{listed_at, Credit};

pub use disbursements::{OpenDisbursement, LEGS_RESERVED_MAX};
pub use shards::{is_move, move_id, MOVES_OUT_MAX, MOVE_PREFIX};

use super::planted::{planted, Bug};
use super::records::{
    AccountRecord, HoldRecord, IdemRecord, SagaRecord, SenderStatus, StoredReply,
};
use protocol::api::{AccountStatus, Entry, EntryKind, MovementView, TransferStatus, TransferView};
pub use protocol::cluster::{Command, Reply};
use protocol::saga::{CreditOutcome, SagaMsg};
use protocol::{AccountId, Amount, ApiError, Currency, ErrorCode, TransferId, AMOUNT_MAX};
use std::collections::BTreeMap;

/// Most unsettled transfers, open holds and unsettled disbursements one account may have as
/// payer (a hold being captured counts once, with its capture's transfer); more are refused as
/// `unavailable` (nothing written, safe to retry) until some settle.
pub const OPEN_SAGAS_MAX: usize = 4_096;

/// Times a sender re-sends its `Credit` when the receiver does not answer in time, before it
/// gives up with `Abort`; a credit lost while the receiver's account moved between nodes then
/// costs a delay, not a failed transfer.
pub const CREDIT_RESENDS_MAX: u32 = 2;

/// Identifies a client request inside one node, so a reply finds its caller.
pub type ReqId = u64;

/// Timing rules of the saga, from the node's config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SagaTiming {
    /// How long a sender waits for the receiver's outcome before sending `Abort`.
    pub credit_timeout_ms: u64,
    /// Longest wait between two `Abort` resends.
    pub abort_backoff_max_ms: u64,
}

impl Default for SagaTiming {
    fn default() -> Self {
        SagaTiming {
            credit_timeout_ms: 2_000,
            abort_backoff_max_ms: 30_000,
        }
    }
}

/// One input to the state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A client command and its request id.
    Command(ReqId, Command),
    /// A message from another account.
    Saga(SagaMsg),
    /// A saga timer of this account fired (a transfer's, or a hold's expiry).
    Timer(TransferId),
}

/// The stored records an input depends on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// The idempotency record under this key.
    pub idem_key: Option<String>,
    /// This account's record of this transfer (or hold).
    pub saga: Option<TransferId>,
}

impl Needs {
    /// True when the input depends on no stored record.
    pub fn is_empty(&self) -> bool {
        self.idem_key.is_none() && self.saga.is_none()
    }
}

/// An idempotency record as the core replays it: the reply resolved to the current views of
/// the transfer or hold it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    /// The first request's parameters in canonical form.
    pub fingerprint: String,
    /// What a repeat answers.
    pub reply: Reply,
}

/// The records read for [`Needs`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reads {
    /// The idempotency record, if one exists, resolved.
    pub idem: Option<Replay>,
    /// The saga record, if one exists.
    pub saga: Option<SagaRecord>,
}

/// A write the driver makes in the step's transaction. The account's own state record is not
/// listed: the driver writes it once per transaction when it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// The account was created: add it to the account index and take the first lease.
    Created,
    /// Append a journal entry.
    Journal(Entry),
    /// Write an idempotency record.
    Idem(String, IdemRecord),
    /// Write this account's record of a transfer.
    Saga(SagaRecord),
    /// Mark (true) or unmark (false) an open sender saga of this account.
    OpenMark(TransferId, bool),
    /// Add (true) or remove (false) a transfer from the pending index.
    Pending(TransferId, bool),
    /// Add a transfer to the account's transfer list (written with the account's first record
    /// of it, either side): at this time (ms, the transfer's creation), with its sender (whose
    /// record holds the transfer's view).
    Listed(TransferId, u64, AccountId),
    /// Add (true) or remove (false) an open hold, expiring at this time (ms), in the index
    /// of holds by expiry.
    HoldDue(TransferId, u64, bool),
    /// Add (true) or remove (false) a disbursement from the index of unsettled ones.
    Disbursing(TransferId, bool),
    /// Mark (true) or unmark (false) a move of this shard's money to a sibling, in flight.
    Moving(TransferId, bool),
}

/// A balance change to publish on the account's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceUpdate {
    /// Account.
    pub account: AccountId,
    /// Held after the entry.
    pub held: u64,
    /// The entry (carries seq, balance and available).
    pub entry: Entry,
}

/// Something the driver does after the step's transaction committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Answer a client request.
    Reply(ReqId, Result<Reply, ApiError>),
    /// Send a saga message to another account.
    Send(SagaMsg),
    /// Publish a journal entry on the balance stream.
    Publish(BalanceUpdate),
    /// Deliver `Input::Timer(transfer_id)` to this account after `after_ms` (replacing the
    /// timer this id had).
    Timer {
        /// Transfer.
        transfer_id: TransferId,
        /// Delay.
        after_ms: u64,
    },
    /// A transfer of this account (as sender) reached `completed` or `failed`.
    Settled(TransferView),
    /// Drop the timer of this id (a hold that settled, or whose capture is under way).
    Disarm(TransferId),
}

/// The result of one step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Writes for the step's transaction.
    pub writes: Vec<Write>,
    /// Effects for after the commit.
    pub effects: Vec<Effect>,
}

/// An unsettled transfer of this account as sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSaga {
    /// Receiver.
    pub to: AccountId,
    /// Amount held.
    pub amount: u64,
    /// Free text.
    pub reference: Option<String>,
    /// When it was accepted.
    pub created_at: u64,
    /// How many times its timer fired in this activation: the first [`CREDIT_RESENDS_MAX`]
    /// send the `Credit` again (it may have been lost while the receiver moved), later ones
    /// send `Abort`.
    pub timeouts: u32,
    /// The hold this transfer captures (`None` for a plain transfer).
    pub of_hold: Option<TransferId>,
}

/// What an account has not settled, as an activation loads it (every entry has an open
/// mark).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unsettled {
    /// Transfers it sends, not settled.
    pub sagas: BTreeMap<TransferId, OpenSaga>,
    /// Its open holds (`held` or `capturing`).
    pub holds: BTreeMap<TransferId, HoldRecord>,
    /// Disbursements it pays, not settled.
    pub disbursements: BTreeMap<TransferId, OpenDisbursement>,
    /// Legs of others' disbursements it reserved (not yet credited or dropped), by amount.
    pub reserved: BTreeMap<TransferId, u64>,
}

/// One account's in-memory state: the stored record, its open sender sagas, holds and
/// disbursements, and the legs it reserved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountCore {
    id: AccountId,
    record: Option<AccountRecord>,
    open: BTreeMap<TransferId, OpenSaga>,
    holds: BTreeMap<TransferId, HoldRecord>,
    disbs: BTreeMap<TransferId, OpenDisbursement>,
    reserved: BTreeMap<TransferId, u64>,
    timing: SagaTiming,
}

impl AccountCore {
    /// A core loaded from storage: `record` is `None` for an account never opened.
    pub fn new(
        id: AccountId,
        record: Option<AccountRecord>,
        unsettled: Unsettled,
        timing: SagaTiming,
    ) -> Self {
        let core = AccountCore {
            id,
            record,
            open: unsettled.sagas,
            holds: unsettled.holds,
            disbs: unsettled.disbursements,
            reserved: unsettled.reserved,
            timing,
        };
        core.validate();
        core
    }

    /// The account id.
    pub fn id(&self) -> &AccountId {
        &self.id
    }

    /// The stored record, `None` before the account is opened.
    pub fn record(&self) -> Option<&AccountRecord> {
        self.record.as_ref()
    }

    /// The unsettled sender sagas.
    pub fn open_sagas(&self) -> &BTreeMap<TransferId, OpenSaga> {
        &self.open
    }

    /// The open holds (`held` or `capturing`).
    pub fn open_holds(&self) -> &BTreeMap<TransferId, HoldRecord> {
        &self.holds
    }

    /// The disbursements it pays, not settled.
    pub fn open_disbursements(&self) -> &BTreeMap<TransferId, OpenDisbursement> {
        &self.disbs
    }

    /// True when `id` needs a timer: an unsettled transfer or disbursement of this account,
    /// or a hold of it that is `held` (a capturing hold's expiry waits for its capture).
    pub fn wants_timer(&self, id: &TransferId) -> bool {
        self.awaits_settlement(id)
            || self
                .holds
                .get(id)
                .is_some_and(|h| h.status == protocol::api::HoldStatus::Held)
    }

    /// True when `id` is a transfer or disbursement of this account that has not settled
    /// (callers waiting for it wait on).
    pub fn awaits_settlement(&self, id: &TransferId) -> bool {
        self.open.contains_key(id) || self.disbs.contains_key(id)
    }

    /// The legs of others' disbursements it reserved.
    pub fn reserved(&self) -> &BTreeMap<TransferId, u64> {
        &self.reserved
    }

    /// True when `id` names an unsettled transfer or disbursement of this account as sender
    /// or an open hold of it: something a timer or the sweep may still need to drive.
    pub fn knows(&self, id: &TransferId) -> bool {
        self.open.contains_key(id) || self.holds.contains_key(id) || self.disbs.contains_key(id)
    }

    /// Gives back the memory of the emptied saga maps (an emptied `BTreeMap` keeps its last
    /// node, over a kilobyte here): a node keeps many idle accounts active.
    pub fn compact(&mut self) {
        if self.open.is_empty() {
            self.open = BTreeMap::new();
        }
        if self.holds.is_empty() {
            self.holds = BTreeMap::new();
        }
        if self.disbs.is_empty() {
            self.disbs = BTreeMap::new();
        }
        if self.reserved.is_empty() {
            self.reserved = BTreeMap::new();
        }
    }

    /// Asserts the state's invariants; a violation is a bug, so it crashes.
    pub fn validate(&self) {
        match &self.record {
            None => assert!(
                self.open.is_empty()
                    && self.holds.is_empty()
                    && self.disbs.is_empty()
                    && self.reserved.is_empty(),
                "{}: open sagas without an account",
                self.id
            ),
            Some(r) => {
                assert!(
                    r.held <= r.balance,
                    "{}: held {} > balance {}",
                    self.id,
                    r.held,
                    r.balance
                );
                assert!(r.balance <= AMOUNT_MAX, "{}: balance over 2^53-1", self.id);
                let open_sum: u64 = self.open.values().map(|s| s.amount).sum();
                let holds_sum: u64 = self.holds.values().map(HoldRecord::remaining).sum();
                let disbs_sum: u64 = self.disbs.values().map(|d| d.record.total()).sum();
                assert_eq!(
                    open_sum + holds_sum + disbs_sum,
                    r.held,
                    "{}: open sagas, holds and disbursements != held",
                    self.id
                );
                assert!(
                    self.slots_used() <= OPEN_SAGAS_MAX,
                    "{}: too many open sagas",
                    self.id
                );
                let reserved: u64 = self.reserved.values().sum();
                assert!(
                    r.balance + reserved <= AMOUNT_MAX && self.reserved.len() <= LEGS_RESERVED_MAX,
                    "{}: reserved {reserved} in {} legs over a balance of {}",
                    self.id,
                    self.reserved.len(),
                    r.balance
                );
                self.validate_holds();
            }
        }
    }

    /// Effects that re-drive every open saga after an activation at `now_ms`: resend
    /// `Credit` (the receiver answers a repeat with its recorded outcome) and arm the timer;
    /// and arm every `held` hold's expiry (at once when it is due).
    pub fn resume(&self, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::with_capacity(self.open.len() * 2 + self.holds.len());
        for (tid, saga) in &self.open {
            effects.push(Effect::Send(self.credit_msg(tid, saga)));
            effects.push(Effect::Timer {
                transfer_id: tid.clone(),
                after_ms: self.timing.credit_timeout_ms,
            });
        }
        effects.extend(self.expiry_timers(now_ms));
        for id in self.disbs.keys() {
            effects.extend(self.disbursement_messages(id));
            effects.push(Effect::Timer {
                transfer_id: id.clone(),
                after_ms: self.timing.credit_timeout_ms,
            });
        }
        effects
    }

    /// The stored records `input` depends on.
    pub fn needs(&self, input: &Input) -> Needs {
        match input {
            Input::Command(_, cmd) => match cmd {
                Command::Deposit { idem_key, .. }
                | Command::Withdraw { idem_key, .. }
                | Command::Transfer { idem_key, .. }
                | Command::Hold { idem_key, .. }
                | Command::Disburse { idem_key, .. } => Needs {
                    idem_key: idem_key.clone(),
                    saga: None,
                },
                // A hold that is not open here is read, to tell "settled" from "no such".
                Command::Capture {
                    hold_id, idem_key, ..
                }
                | Command::Void { hold_id, idem_key } => Needs {
                    idem_key: idem_key.clone(),
                    saga: Some(hold_id.clone()),
                },
                Command::Open { .. } | Command::Freeze | Command::Unfreeze | Command::Get => {
                    Needs::default()
                }
            },
            Input::Saga(
                SagaMsg::Credit { transfer_id, .. } | SagaMsg::Abort { transfer_id, .. },
            ) => Needs {
                idem_key: None,
                saga: Some(transfer_id.clone()),
            },
            Input::Saga(
                SagaMsg::Try {
                    disbursement_id, ..
                }
                | SagaMsg::Confirm {
                    disbursement_id, ..
                }
                | SagaMsg::Cancel {
                    disbursement_id, ..
                },
            ) => Needs {
                idem_key: None,
                saga: Some(disbursement_id.clone()),
            },
            Input::Saga(
                SagaMsg::Outcome { .. } | SagaMsg::LegOutcome { .. } | SagaMsg::Gather { .. },
            )
            | Input::Timer(_) => Needs::default(),
        }
    }

    /// Applies one input, given the records its [`Needs`] named, at time `now_ms`.
    pub fn step(&mut self, input: Input, reads: Reads, now_ms: u64) -> Step {
        let mut step = Step::default();
        match input {
            Input::Command(req, cmd) => {
                let debit = shards::debit_of(&cmd);
                let result = self.command(cmd, reads, now_ms, &mut step);
                if let (Err(e), Some(amount)) = (&result, debit) {
                    if e.code == ErrorCode::InsufficientFunds {
                        self.gather_for(amount, &mut step);
                    }
                }
                step.effects.push(Effect::Reply(req, result));
            }
            Input::Saga(SagaMsg::Gather { from, to, want }) => {
                assert_eq!(to, self.id, "a gather delivered to the wrong account");
                self.gather(from, want, now_ms, &mut step);
            }
            Input::Saga(SagaMsg::Credit {
                transfer_id,
                from,
                to,
                amount,
                currency,
                reference,
                created_at,
            }) => {
                assert_eq!(to, self.id, "credit delivered to the wrong account");
                let credit = Credit {
                    transfer_id,
                    from,
                    amount,
                    currency,
                    reference,
                    listed_at: listed_at(created_at, now_ms),
                };
                self.credit(credit, reads, now_ms, &mut step);
            }
            Input::Saga(SagaMsg::Abort {
                transfer_id,
                from,
                to,
                created_at,
            }) => {
                assert_eq!(to, self.id, "abort delivered to the wrong account");
                let at = listed_at(created_at, now_ms);
                self.abort(transfer_id, from, reads, at, &mut step);
            }
            Input::Saga(SagaMsg::Outcome {
                transfer_id,
                from,
                outcome,
            }) => {
                assert_eq!(from, self.id, "outcome delivered to the wrong account");
                self.outcome(transfer_id, outcome, now_ms, &mut step);
            }
            Input::Saga(
                msg @ (SagaMsg::Try { .. } | SagaMsg::Confirm { .. } | SagaMsg::Cancel { .. }),
            ) => {
                assert_eq!(
                    msg.destination(),
                    &self.id,
                    "a leg delivered to the wrong account"
                );
                self.leg_message(msg, reads, now_ms, &mut step);
            }
            Input::Saga(SagaMsg::LegOutcome {
                disbursement_id,
                from,
                to,
                outcome,
            }) => {
                assert_eq!(
                    from, self.id,
                    "a leg's outcome delivered to the wrong account"
                );
                self.leg_outcome(disbursement_id, to, outcome, now_ms, &mut step);
            }
            Input::Timer(id) if self.disbs.contains_key(&id) => {
                self.disbursement_timer(id, now_ms, &mut step)
            }
            Input::Timer(transfer_id) if planted(Bug::ReleaseOnTimeout) => {
                self.outcome(transfer_id, CreditOutcome::Aborted, now_ms, &mut step)
            }
            Input::Timer(id) if self.holds.contains_key(&id) => {
                self.hold_timer(id, now_ms, &mut step)
            }
            Input::Timer(transfer_id) => self.timer(transfer_id, &mut step),
        }
        self.validate();
        step
    }

    fn command(
        &mut self,
        cmd: Command,
        reads: Reads,
        now_ms: u64,
        step: &mut Step,
    ) -> Result<Reply, ApiError> {
        match cmd {
            Command::Open { currency, shards } => self.open_account(currency, shards, now_ms, step),
            Command::Get => Ok(Reply::Account {
                view: self.active_or_any()?.view(&self.id),
                created: false,
            }),
            Command::Freeze => self.set_status(AccountStatus::Frozen),
            Command::Unfreeze => self.set_status(AccountStatus::Active),
            Command::Deposit {
                amount,
                reference,
                idem_key,
            } => {
                let fingerprint = if planted(Bug::KeyIgnoresBody) {
                    "deposit".to_string()
                } else {
                    format!(
                        "deposit|{}|{}",
                        amount.get(),
                        reference.as_deref().unwrap_or("")
                    )
                };
                if let Some(reply) = replay(&reads, &fingerprint)? {
                    return Ok(reply);
                }
                self.movement(
                    EntryKind::Deposit,
                    amount,
                    reference,
                    idem_key.map(|k| (k, fingerprint)),
                    now_ms,
                    step,
                )
            }
            Command::Withdraw {
                amount,
                reference,
                idem_key,
            } => {
                let fingerprint = format!(
                    "withdrawal|{}|{}",
                    amount.get(),
                    reference.as_deref().unwrap_or("")
                );
                if let Some(reply) = replay(&reads, &fingerprint)? {
                    return Ok(reply);
                }
                self.movement(
                    EntryKind::Withdrawal,
                    amount,
                    reference,
                    idem_key.map(|k| (k, fingerprint)),
                    now_ms,
                    step,
                )
            }
            Command::Transfer {
                transfer_id,
                to,
                amount,
                reference,
                idem_key,
            } => {
                // The receiver as the client named it: a shard of a sharded receiver is a
                // routing choice, not part of the request.
                let fingerprint = format!(
                    "transfer|{}|{}|{}",
                    to.public(),
                    amount.get(),
                    reference.as_deref().unwrap_or("")
                );
                if let Some(reply) = replay(&reads, &fingerprint)? {
                    return Ok(reply);
                }
                self.start_transfer(
                    transfer_id,
                    to,
                    amount,
                    reference,
                    idem_key.map(|k| (k, fingerprint)),
                    now_ms,
                    step,
                )
            }
            Command::Hold {
                hold_id,
                to,
                amount,
                expires_in_ms,
                reference,
                idem_key,
            } => {
                let fingerprint = format!(
                    "hold|{}|{}|{}|{}",
                    to.public(),
                    amount.get(),
                    expires_in_ms,
                    reference.as_deref().unwrap_or("")
                );
                if let Some(reply) = replay(&reads, &fingerprint)? {
                    return Ok(reply);
                }
                let hold = holds::NewHold {
                    hold_id,
                    to,
                    amount,
                    expires_in_ms,
                    reference,
                };
                self.create_hold(hold, idem_key.map(|k| (k, fingerprint)), now_ms, step)
            }
            Command::Capture {
                hold_id,
                capture_id,
                amount,
                idem_key,
            } => {
                let fingerprint = format!(
                    "capture|{}|{}",
                    hold_id,
                    amount.map_or(String::new(), |a| a.get().to_string())
                );
                if let Some(reply) = replay(&reads, &fingerprint)? {
                    return Ok(reply);
                }
                let idem = idem_key.map(|k| (k, fingerprint));
                self.capture(hold_id, capture_id, amount, idem, &reads, now_ms, step)
            }
            Command::Void { hold_id, idem_key } => {
                let fingerprint = format!("void|{hold_id}");
                if let Some(reply) = replay(&reads, &fingerprint)? {
                    return Ok(reply);
                }
                let idem = idem_key.map(|k| (k, fingerprint));
                self.void(hold_id, idem, &reads, now_ms, step)
            }
            Command::Disburse {
                disbursement_id,
                legs,
                reference,
                idem_key,
            } => {
                let legs_text: Vec<String> = legs
                    .iter()
                    .map(|(to, a)| format!("{}:{}", to.public(), a.get()))
                    .collect();
                let fingerprint = format!(
                    "disburse|{}|{}",
                    legs_text.join(","),
                    reference.as_deref().unwrap_or("")
                );
                if let Some(reply) = replay(&reads, &fingerprint)? {
                    return Ok(reply);
                }
                let idem = idem_key.map(|k| (k, fingerprint));
                self.disburse(disbursement_id, legs, reference, idem, now_ms, step)
            }
        }
    }

    /// The record, or `account_not_found`.
    fn active_or_any(&self) -> Result<&AccountRecord, ApiError> {
        self.record
            .as_ref()
            .ok_or_else(|| ErrorCode::AccountNotFound.into())
    }

    /// The record if it accepts movements, or the reason it does not.
    fn movable(&self) -> Result<&AccountRecord, ErrorCode> {
        let r = self.record.as_ref().ok_or(ErrorCode::AccountNotFound)?;
        if r.shards.is_some() && !self.id.is_shard() {
            // A sharded account's own record: its money is in its shards (see `shards`).
            return Err(ErrorCode::AccountNotFound);
        }
        match r.status {
            AccountStatus::Active => Ok(r),
            AccountStatus::Frozen => Err(ErrorCode::AccountFrozen),
            AccountStatus::Closed => Err(ErrorCode::AccountClosed),
        }
    }

    fn open_account(
        &mut self,
        currency: Currency,
        shards: Option<u16>,
        now_ms: u64,
        step: &mut Step,
    ) -> Result<Reply, ApiError> {
        assert!(
            shards.is_none_or(|k| (2..=protocol::ids::SHARDS_MAX).contains(&k)),
            "{}: opened with {shards:?} shards",
            self.id
        );
        if let Some(r) = &self.record {
            if r.currency != currency || r.shards != shards {
                let shards_text = |k: Option<u16>| k.unwrap_or(1);
                return Err(ApiError::new(
                    ErrorCode::AccountExists,
                    format!(
                        "account {} exists with currency {} and {} shard(s)",
                        self.id.public(),
                        r.currency,
                        shards_text(r.shards)
                    ),
                ));
            }
            return Ok(Reply::Account {
                view: r.view(&self.id),
                created: false,
            });
        }
        let r = AccountRecord {
            currency,
            status: AccountStatus::Active,
            balance: 0,
            held: 0,
            seq: 0,
            opened_at: now_ms,
            shards,
        };
        let view = r.view(&self.id);
        self.record = Some(r);
        step.writes.push(Write::Created);
        Ok(Reply::Account {
            view,
            created: true,
        })
    }

    fn set_status(&mut self, status: AccountStatus) -> Result<Reply, ApiError> {
        let id = self.id.clone();
        let r = self.record.as_mut().ok_or(ErrorCode::AccountNotFound)?;
        if r.status == AccountStatus::Closed {
            return Err(ErrorCode::AccountClosed.into());
        }
        r.status = status;
        Ok(Reply::Account {
            view: r.view(&id),
            created: false,
        })
    }

    /// Appends a journal entry to the record and returns it (after the balances changed).
    fn journal(
        &mut self,
        kind: EntryKind,
        amount: u64,
        transfer_id: Option<TransferId>,
        reference: Option<String>,
        now_ms: u64,
        step: &mut Step,
    ) -> Entry {
        let r = self.record.as_mut().expect("journal of an opened account");
        r.seq = r.seq.checked_add(1).expect("journal sequence overflow");
        let entry = Entry {
            seq: r.seq,
            kind,
            amount,
            balance: r.balance,
            available: r.available(),
            transfer_id,
            reference,
            at: now_ms,
            shard: None,
        };
        step.writes.push(Write::Journal(entry.clone()));
        step.effects.push(Effect::Publish(BalanceUpdate {
            account: self.id.clone(),
            held: r.held,
            entry: entry.clone(),
        }));
        entry
    }

    fn movement(
        &mut self,
        kind: EntryKind,
        amount: Amount,
        reference: Option<String>,
        idem: Option<(String, String)>,
        now_ms: u64,
        step: &mut Step,
    ) -> Result<Reply, ApiError> {
        let ceiling = self.balance_ceiling();
        let r = self.movable()?;
        let a = amount.get();
        let balance = match kind {
            EntryKind::Deposit => r
                .balance
                .checked_add(a)
                .filter(|b| *b <= ceiling)
                .ok_or(ErrorCode::BalanceOverflow)?,
            EntryKind::Withdrawal => {
                if r.available() < a {
                    return Err(ErrorCode::InsufficientFunds.into());
                }
                r.balance - a
            }
            _ => unreachable!("movement of kind {kind:?}"),
        };
        self.record.as_mut().expect("movable").balance = balance;
        let entry = self.journal(kind, a, None, reference, now_ms, step);
        let view = MovementView {
            shard: None,
            id: format!("{}:{}", self.id, entry.seq),
            account: self.id.clone(),
            amount: a,
            balance: entry.balance,
            seq: entry.seq,
        };
        remember(step, idem, StoredReply::Movement(view.clone()));
        Ok(Reply::Movement(view))
    }

    /// The highest balance a credit may bring the account to: 2^53-1 less the legs it reserved
    /// (each must still fit when confirmed).
    fn balance_ceiling(&self) -> u64 {
        AMOUNT_MAX - self.reserved.values().sum::<u64>()
    }

    /// Open transfers, holds and disbursements, a hold being captured counting once (with
    /// its capture's transfer).
    fn slots_used(&self) -> usize {
        let capturing = self
            .holds
            .values()
            .filter(|h| h.status == protocol::api::HoldStatus::Capturing)
            .count();
        // (Saturating: in the middle of a capture's step, the hold is capturing before its
        // transfer opened.)
        (self.open.len() + self.holds.len() + self.disbs.len()).saturating_sub(capturing)
    }

    /// The reason a new transfer, hold or disbursement cannot open now: as many are open as
    /// the account may have.
    fn room_for_one(&self) -> Result<(), ApiError> {
        if self.slots_used() >= OPEN_SAGAS_MAX {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "account {} has {OPEN_SAGAS_MAX} transfers and holds in flight; retry shortly",
                    self.id
                ),
            ));
        }
        Ok(())
    }
}

/// Keeps `reply` under the request's idempotency key and fingerprint, if it has a key.
fn remember(step: &mut Step, idem: Option<(String, String)>, reply: StoredReply) {
    if let Some((key, fingerprint)) = idem {
        step.writes
            .push(Write::Idem(key, IdemRecord { fingerprint, reply }));
    }
}

/// The reply kept under an idempotency key, if the key was used; an error if it was used for
/// a different request.
fn replay(reads: &Reads, fingerprint: &str) -> Result<Option<Reply>, ApiError> {
    let Some(rec) = &reads.idem else {
        return Ok(None);
    };
    if rec.fingerprint != fingerprint {
        return Err(ErrorCode::IdempotencyKeyReused.into());
    }
    Ok(Some(rec.reply.clone()))
}
