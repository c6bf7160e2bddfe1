//! Storage transaction bodies of the ledger, shared by every driver (actor shell, simulator).
//!
//! Every body here is idempotent, as `Store::run` requires (it may run again after a commit
//! whose result was unknown):
//! - [`activate`] reads the state and the lease and writes `lease = (node, epoch + 1)` where
//!   `epoch` is the value it read. If a first run committed, a second run reads the bumped
//!   lease and bumps it again: the activation ends up with a newer epoch than needed, which
//!   fences nobody but older activations. Safe.
//! - [`commit_batch`] reads the lease and aborts with `Fenced` unless it still carries this
//!   activation's epoch (after the check below); then every write is an absolute value computed from the
//!   activation's in-memory state (which only this activation can change) and from records read
//!   in the same transaction. Writing the same bytes twice would not be enough: if a first run
//!   committed, a second run would read back the records the first one wrote (an idempotency
//!   record, a receiver's outcome) and replay them *without* changing memory, leaving the
//!   activation behind its own storage. So a retry first asks whether an earlier attempt
//!   committed: if the stored account record and lease equal one earlier attempt's result, it
//!   did, and the retry returns that attempt's result unchanged. Every earlier attempt is
//!   asked, not only the last: an attempt reported unknown may land after a later attempt
//!   read (a FoundationDB commit that timed out), and that later attempt then conflicts. A batch that leaves the account
//!   record unchanged writes only recorded decisions, which a retry reads back and replays
//!   identically. Nothing is applied twice, and memory never falls behind storage.
//!
//! A batch is several inputs of one account committed in one transaction: the actor drains its
//! mailbox (up to a limit) and pays for one commit. [`commit_group`] commits the batches of
//! several accounts in one transaction, each in its own overlay: the body of group commit, whose
//! groups the node's committer forms (`super::committer`).

use super::account::{
    AccountCore, Effect, Input, OpenDisbursement, OpenSaga, Reads, Replay, Reply, SagaTiming,
    Unsettled, Write, LEGS_RESERVED_MAX,
};
use super::outbox;
use super::planted::{planted, Bug};
use super::records::{
    AccountRecord, HoldRecord, IdemRecord, Lease, LegState, SagaRecord, SenderStatus, StoredReply,
};
use crate::storage::codec::{decode, decode_json, encode, Stored};
use crate::storage::keys::{listed_rank, Keys};
use crate::storage::overlay::Overlay;
use crate::storage::prefetch::Prefetched;
use crate::storage::{StorageError, Store, Txn};
use protocol::api::{
    AccountView, DisbursementView, EntriesPage, Entry, HoldView, TransferStatus, TransferView,
    TransfersPage,
};
use protocol::{AccountId, TransferId};
use std::collections::BTreeMap;

/// An activated account: its core and the lease its writes must still find.
#[derive(Clone, Debug)]
pub struct Activation {
    /// The state machine.
    pub core: AccountCore,
    /// The lease this activation holds (`None` for an account not yet opened). A write
    /// commits only while the stored lease is exactly this one.
    pub lease: Option<Lease>,
    /// This activation's nonce, written in the leases it takes: two activations never
    /// mistake each other's lease for their own, even at the same epoch.
    pub nonce: u64,
}

impl Activation {
    /// The lease epoch (0 for an account not yet opened).
    pub fn epoch(&self) -> u64 {
        self.lease.as_ref().map(|l| l.epoch).unwrap_or(0)
    }
}

/// Loads an account and takes its lease for `node` (DESIGN.md section 4). `nonce` must be
/// unique per activation (the shell draws it at random, the simulator from its seed).
pub fn activate(
    store: &Store,
    keys: &Keys,
    node: &str,
    id: &AccountId,
    timing: SagaTiming,
    nonce: u64,
) -> Result<Activation, StorageError> {
    store.run(|txn| {
        let record: Option<AccountRecord> = get(txn, &keys.state(id.as_str()))?;
        let mut lease: Option<Lease> = get(txn, &keys.lease(id.as_str()))?;
        let mut open = BTreeMap::new();
        let mut holds = BTreeMap::new();
        let (mut disbursements, mut reserved) = (BTreeMap::new(), BTreeMap::new());
        if let Some(r) = &record {
            let taken = Lease {
                node: node.to_owned(),
                epoch: lease.as_ref().map(|l| l.epoch).unwrap_or(0) + 1,
                nonce,
            };
            txn.set(&keys.lease(id.as_str()), &encode(&taken))?;
            lease = Some(taken);
            let (begin, end) = keys.open_range(id.as_str());
            // A hold being captured has two marks (its own and its capture's).
            let marks = txn.get_range(
                &begin,
                &end,
                2 * super::account::OPEN_SAGAS_MAX + LEGS_RESERVED_MAX,
            )?;
            for (k, _) in marks {
                let tid = keys
                    .open_transfer_id(id.as_str(), &k)
                    .ok_or_else(|| StorageError::Corrupt("open-saga key".into()))?;
                let rec = get_saga(txn, keys, id.as_str(), &tid)?.ok_or_else(|| {
                    StorageError::Corrupt(format!("open saga {tid} has no record"))
                })?;
                let settled = || StorageError::Corrupt(format!("open mark {tid} is settled"));
                let rec = match rec {
                    SagaRecord::Hold(h) if h.status.is_open() => {
                        holds.insert(h.hold_id.clone(), h);
                        continue;
                    }
                    SagaRecord::Disbursement(d) if d.is_open() => {
                        disbursements.insert(d.id.clone(), OpenDisbursement::loaded(d));
                        continue;
                    }
                    SagaRecord::Leg(l) if l.state == LegState::Reserved => {
                        reserved.insert(l.disbursement_id, l.amount);
                        continue;
                    }
                    SagaRecord::Hold(_) | SagaRecord::Disbursement(_) | SagaRecord::Leg(_) => {
                        return Err(settled())
                    }
                    rec => rec,
                };
                let SagaRecord::Sender {
                    transfer_id,
                    to,
                    amount,
                    status: SenderStatus::Holding,
                    reference,
                    created_at,
                    ..
                } = rec
                else {
                    return Err(StorageError::Corrupt(format!(
                        "open saga {tid} is not holding"
                    )));
                };
                open.insert(
                    transfer_id,
                    OpenSaga {
                        to,
                        amount,
                        reference,
                        created_at,
                        timeouts: 0,
                        of_hold: None,
                    },
                );
            }
            link_captures(id, &mut open, &holds)?;
            let held: u64 = open.values().map(|s: &OpenSaga| s.amount).sum::<u64>()
                + holds.values().map(HoldRecord::remaining).sum::<u64>()
                + disbursements
                    .values()
                    .map(|d: &OpenDisbursement| d.record.total())
                    .sum::<u64>();
            if held != r.held {
                return Err(StorageError::Corrupt(format!(
                    "account {id}: held {} but open sagas and holds hold {held}",
                    r.held
                )));
            }
        }
        Ok(Activation {
            core: AccountCore::new(
                id.clone(),
                record,
                Unsettled {
                    sagas: open,
                    holds,
                    disbursements,
                    reserved,
                },
                timing,
            ),
            lease,
            nonce,
        })
    })
}

/// Marks the open transfer of every capturing hold as that hold's capture.
fn link_captures(
    id: &AccountId,
    open: &mut BTreeMap<TransferId, OpenSaga>,
    holds: &BTreeMap<TransferId, HoldRecord>,
) -> Result<(), StorageError> {
    for (hold_id, h) in holds {
        if h.status != protocol::api::HoldStatus::Capturing {
            continue;
        }
        let capture = h.capture.as_ref().map(|c| &c.0);
        match capture.and_then(|t| open.get_mut(t)) {
            Some(saga) => saga.of_hold = Some(hold_id.clone()),
            None => {
                return Err(StorageError::Corrupt(format!(
                    "account {id}: hold {hold_id} is capturing with no open capture"
                )))
            }
        }
    }
    Ok(())
}

/// Runs a batch of inputs of one account in one transaction: [`commit_group`] of one batch.
/// Returns the activation after the batch and the effects to carry out, or the error (then
/// nothing changed in memory, and after `CommitUnknown` the caller must reload: storage may
/// be ahead of memory).
pub fn commit_batch(
    store: &Store,
    keys: &Keys,
    node: &str,
    act: &Activation,
    inputs: &[Input],
    now_ms: u64,
) -> Committed {
    let mut results = commit_group(store, keys, node, &[(act, inputs)], now_ms);
    results.pop().expect("one result per batch")
}

/// One batch of a group: the activation it runs on and its inputs.
pub type GroupBatch<'a> = (&'a Activation, &'a [Input]);

/// What a batch's commit gives back: the activation after it and the effects to carry out.
pub type Committed = Result<(Activation, Vec<Effect>), StorageError>;

/// The results of a batch's attempts so far, in order: any of them may have committed
/// although it was reported unknown (and a later attempt may not have seen it land). At most
/// `RETRY_ATTEMPTS_MAX` entries.
type Attempts = Vec<Attempt>;

/// One attempt's result.
struct Attempt {
    /// The activation after the batch and the effects to carry out.
    result: (Activation, Vec<Effect>),
    /// Whether the attempt wrote anything (then, if its commit's result was unknown, it may
    /// have changed storage).
    wrote: bool,
}

/// Runs the batches of several accounts in one transaction (one commit, one `fsync`): each
/// batch's body runs in its own [`Overlay`], so a batch that fails on its own (`Fenced`, a
/// corrupt record) leaves nothing behind and gets its error while the others commit (or
/// `CommitUnknown` when an earlier attempt of the group whose result was unknown ran its
/// body: that attempt may have landed before the lease moved). An error
/// of the transaction itself (a conflict, an unknown result, storage unavailable) retries the
/// whole group, every batch keeping its own record of its earlier attempts (see the module's
/// notes); if the group fails for good, every batch that had no result of its own gets that
/// error. Results are in the order of `batches`. At most one batch per account (per-account
/// order is the caller's). Each attempt first reads every key the bodies will read in one
/// [`Txn::get_many`] ([`Prefetched`]): one round trip on FoundationDB.
///
/// No input is stepped twice in one attempt: a batch of inputs that read no stored record is
/// stepped once, before the transaction (`Plan`), and each attempt makes its writes; the
/// other batches are stepped in each attempt, with what they read. Every batch, even one that
/// writes nothing (a read, an `Outcome` already acted on, a timer that resends a message),
/// has its lease checked in the group's transaction: a fenced activation never answers from
/// stale memory (one that drops an `Outcome` as "already settled" may simply not know the
/// saga a newer activation started, and must step aside, `Fenced`, so the message reaches
/// that saga), and an activation whose lease moved learns it at its next timer instead of
/// resending its sagas' messages for as long as it lives. An attempt works on one copy of
/// the activation (the original must stay as it was if the attempt fails), and its result is
/// handed back without a copy.
pub fn commit_group(
    store: &Store,
    keys: &Keys,
    node: &str,
    batches: &[GroupBatch<'_>],
    now_ms: u64,
) -> Vec<Committed> {
    let plans: Vec<Plan> = batches
        .iter()
        .map(|(act, inputs)| plan(act, inputs, now_ms))
        .collect();
    let mut earlier: Vec<Attempts> = batches.iter().map(|_| Vec::new()).collect();
    let group = store.run_knowing(|txn, unknown_before| {
        if planted(Bug::GroupForgetsAttempts) {
            earlier.iter_mut().for_each(Vec::clear);
        }
        // Every key the bodies will read, in one round trip (on FoundationDB).
        let wanted = batches
            .iter()
            .zip(&earlier)
            .flat_map(|((act, inputs), e)| reads_of(keys, act, inputs, !e.is_empty()))
            .collect();
        let mut txn = Prefetched::new(txn, wanted)?;
        let mut out = Vec::with_capacity(batches.len());
        for (i, (act, inputs)) in batches.iter().enumerate() {
            let mut overlay = Overlay::new(&mut txn);
            match batch_body(
                &mut overlay,
                keys,
                node,
                act,
                inputs,
                &plans[i],
                now_ms,
                &mut earlier[i],
            ) {
                Ok(attempt) => {
                    overlay.apply()?;
                    out.push(Ok(attempt));
                }
                Err(e @ (StorageError::Fenced | StorageError::Corrupt(_))) => {
                    // An earlier attempt whose result was unknown wrote this batch and may
                    // have landed: then "fenced" would claim that nothing ran, so the batch's
                    // outcome is unknown (as `Store::run` reports for a lone batch). A batch
                    // none of whose attempts wrote anything changed nothing: fenced it is.
                    let e = if unknown_before
                        && earlier[i].iter().any(|a| a.wrote)
                        && !planted(Bug::FencedAfterUnknown)
                    {
                        StorageError::CommitUnknown
                    } else {
                        e
                    };
                    out.push(Err(e))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    });
    match group {
        // The attempt that stands is handed back as it is, not copied.
        Ok(out) => out
            .into_iter()
            .zip(&mut earlier)
            .map(|(r, e)| r.map(|attempt| e.swap_remove(attempt).result))
            .collect(),
        Err(e) => batches.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// How a batch's inputs are stepped.
enum Plan {
    /// Some input reads a stored record: every input is stepped in the transaction.
    InTxn,
    /// No input reads a stored record: all were stepped once, before the transaction, on a
    /// copy of the activation; an attempt checks the lease and makes these writes.
    Stepped {
        /// The activation after the inputs (before the writes' effect on its lease); boxed, as
        /// the other variant holds nothing.
        work: Box<Activation>,
        /// The writes, in order.
        writes: Vec<Write>,
        /// The effects, in order.
        effects: Vec<Effect>,
    },
}

fn plan(act: &Activation, inputs: &[Input], now_ms: u64) -> Plan {
    if !inputs.iter().all(|i| act.core.needs(i).is_empty()) {
        return Plan::InTxn;
    }
    let mut work = act.clone();
    let (mut writes, mut effects) = (Vec::new(), Vec::new());
    for input in inputs {
        let step = work.core.step(input.clone(), Reads::default(), now_ms);
        writes.extend(step.writes);
        effects.extend(step.effects);
    }
    Plan::Stepped {
        work: Box::new(work),
        writes,
        effects,
    }
}

/// The keys a batch's body reads (see [`batch_body`]): the lease; the account record when the
/// batch had an earlier attempt; each input's idempotency record and saga record, the
/// latter also where releases before 0.2 kept it (read when the first is absent).
fn reads_of(keys: &Keys, act: &Activation, inputs: &[Input], retry: bool) -> Vec<Vec<u8>> {
    let id = act.core.id().as_str();
    let mut out = vec![keys.lease(id)];
    if retry {
        out.push(keys.state(id));
    }
    for input in inputs {
        let needs = act.core.needs(input);
        if let Some(k) = &needs.idem_key {
            out.push(keys.idem(id, k));
        }
        if let Some(t) = &needs.saga {
            out.push(keys.saga(id, t.as_str()));
            out.push(keys.legacy_saga(id, t.as_str()));
        }
    }
    out
}

/// One attempt of a batch's transaction body: returns the index in `earlier` of the result
/// that stands (this attempt's, pushed there, or an earlier one's that landed; see the
/// module's notes on idempotency).
#[allow(clippy::too_many_arguments)]
fn batch_body(
    txn: &mut dyn Txn,
    keys: &Keys,
    node: &str,
    act: &Activation,
    inputs: &[Input],
    plan: &Plan,
    now_ms: u64,
    earlier: &mut Attempts,
) -> Result<usize, StorageError> {
    let id = act.core.id().as_str();
    let stored_lease = get::<Lease>(txn, &keys.lease(id))?;
    if planted(Bug::AckUnknownCommit) && !earlier.is_empty() {
        return Ok(earlier.len() - 1);
    }
    // The lease carries this activation's nonce, so another activation's commit is never
    // taken for ours.
    let may_have_landed = |a: &Attempt| {
        let prev = &a.result.0;
        prev.core.record() != act.core.record() && stored_lease == prev.lease
    };
    if earlier.iter().any(may_have_landed) {
        let stored: Option<AccountRecord> = get(txn, &keys.state(id))?;
        let landed = earlier
            .iter()
            .position(|a| may_have_landed(a) && stored.as_ref() == a.result.0.core.record());
        if let Some(i) = landed {
            return Ok(i);
        }
    }
    if stored_lease != act.lease && !planted(Bug::SkipEpochCheck) {
        return Err(StorageError::Fenced);
    }
    let (work, effects, mut wrote) = match plan {
        Plan::Stepped {
            work,
            writes,
            effects,
        } => {
            let mut work = Activation::clone(work);
            for w in writes {
                apply_write(txn, keys, node, &mut work, w)?;
            }
            let events = write_events(txn, keys, &work, writes, effects, now_ms)?;
            (work, effects.clone(), !writes.is_empty() || events)
        }
        Plan::InTxn => {
            let mut work = act.clone();
            let mut effects = Vec::new();
            let mut wrote = false;
            for input in inputs {
                let needs = work.core.needs(input);
                let reads = Reads {
                    idem: match &needs.idem_key {
                        Some(k) => get_idem(txn, keys, id, k)?,
                        None => None,
                    },
                    saga: match &needs.saga {
                        Some(t) => get_saga(txn, keys, id, t.as_str())?,
                        None => None,
                    },
                };
                let step = work.core.step(input.clone(), reads, now_ms);
                for w in &step.writes {
                    apply_write(txn, keys, node, &mut work, w)?;
                }
                let events = write_events(txn, keys, &work, &step.writes, &step.effects, now_ms)?;
                wrote |= !step.writes.is_empty() || events;
                effects.extend(step.effects);
            }
            (work, effects, wrote)
        }
    };
    if work.core.record() != act.core.record() {
        let r = work.core.record().expect("an account is never un-created");
        txn.set(&keys.state(id), &encode(r))?;
        wrote = true;
    }
    earlier.push(Attempt {
        result: (work, effects),
        wrote,
    });
    Ok(earlier.len() - 1)
}

/// Writes the outbox records of what a step or batch did (see [`outbox`]); true when there
/// were some.
fn write_events(
    txn: &mut dyn Txn,
    keys: &Keys,
    work: &Activation,
    writes: &[Write],
    effects: &[Effect],
    now_ms: u64,
) -> Result<bool, StorageError> {
    let seq = work.core.record().map_or(0, |r| r.seq);
    let records = outbox::records(keys, work.core.id(), seq, writes, effects, now_ms);
    for (k, v) in &records {
        txn.set(k, v)?;
    }
    Ok(!records.is_empty())
}

/// Whether the account was ever opened (its state is stored), read without a lease or a
/// write: a lookup of a never-opened account costs no activation.
pub fn is_opened(store: &Store, keys: &Keys, id: &AccountId) -> Result<bool, StorageError> {
    store.read(|txn| Ok(txn.get(&keys.state(id.as_str()))?.is_some()))
}

/// Reads an account's stored lease (a fenced activation finds another one there).
pub fn read_lease(
    store: &Store,
    keys: &Keys,
    id: &AccountId,
) -> Result<Option<Lease>, StorageError> {
    store.read(|txn| get::<Lease>(txn, &keys.lease(id.as_str())))
}

/// Reads one journal entry of an account.
pub fn read_entry(
    store: &Store,
    keys: &Keys,
    id: &AccountId,
    seq: u64,
) -> Result<Option<Entry>, StorageError> {
    store.read(|txn| get::<Entry>(txn, &keys.journal(id.as_str(), seq)))
}

/// Reads the summaries of `ids` that exist (a disbursement's as its waiters take it).
pub fn read_transfers(
    store: &Store,
    keys: &Keys,
    ids: &[TransferId],
) -> Result<Vec<TransferView>, StorageError> {
    store.read(|txn| read_each(txn, keys, ids, get_settlement))
}

fn apply_write(
    txn: &mut dyn Txn,
    keys: &Keys,
    node: &str,
    work: &mut Activation,
    w: &Write,
) -> Result<(), StorageError> {
    let id = work.core.id().as_str().to_owned();
    match w {
        Write::Created => {
            txn.set(&keys.account_index(&id), b"")?;
            let taken = Lease {
                node: node.to_owned(),
                epoch: work.epoch() + 1,
                nonce: work.nonce,
            };
            txn.set(&keys.lease(&id), &encode(&taken))?;
            work.lease = Some(taken);
        }
        Write::Journal(e) => txn.set(&keys.journal(&id, e.seq), &encode(e))?,
        Write::Idem(k, rec) => txn.set(&keys.idem(&id, k), &encode(rec))?,
        Write::Saga(rec) => txn.set(&keys.saga(&id, rec.id().as_str()), &encode(rec))?,
        Write::OpenMark(tid, true) => txn.set(&keys.open(&id, tid.as_str()), b"")?,
        Write::OpenMark(tid, false) => txn.clear(&keys.open(&id, tid.as_str()))?,
        Write::Pending(tid, true) => {
            txn.set(&keys.pending(tid.as_str()), &encode(work.core.id()))?
        }
        Write::Pending(tid, false) => txn.clear(&keys.pending(tid.as_str()))?,
        // Under the account's id: a sharded account's list covers every shard.
        Write::Listed(tid, at_ms, sender) => txn.set(
            &keys.listed(
                work.core.id().public_str(),
                listed_rank(*at_ms),
                tid.as_str(),
            ),
            &encode(sender),
        )?,
        Write::Moving(tid, true) => txn.set(&keys.moving(&id, tid.as_str()), b"")?,
        Write::Moving(tid, false) => txn.clear(&keys.moving(&id, tid.as_str()))?,
        Write::HoldDue(hid, at_ms, true) => txn.set(
            &keys.hold_due(*at_ms, hid.as_str()),
            &encode(work.core.id()),
        )?,
        Write::HoldDue(hid, at_ms, false) => txn.clear(&keys.hold_due(*at_ms, hid.as_str()))?,
        Write::Disbursing(d, true) => {
            txn.set(&keys.disbursing(d.as_str()), &encode(work.core.id()))?
        }
        Write::Disbursing(d, false) => txn.clear(&keys.disbursing(d.as_str()))?,
    }
    Ok(())
}

/// One side's record of a transfer: where it is kept now, else where releases before 0.2 kept
/// it (read when the first is absent; in a group both are fetched in its one batched read, so
/// the second lookup costs a local B-tree miss on the embedded store and nothing more on
/// FoundationDB).
pub(super) fn get_saga(
    txn: &mut dyn Txn,
    keys: &Keys,
    account: &str,
    transfer_id: &str,
) -> Result<Option<SagaRecord>, StorageError> {
    match get(txn, &keys.saga(account, transfer_id))? {
        Some(rec) => Ok(Some(rec)),
        None => get(txn, &keys.legacy_saga(account, transfer_id)),
    }
}

/// Most records under one transfer's prefix: its sender's and its receiver's.
const SIDES_MAX: usize = 2;

/// A transfer's current summary: from its sender's record (the first of the transfer's two
/// records that is a sender's), else the summary releases before 0.2 kept.
fn get_view(
    txn: &mut dyn Txn,
    keys: &Keys,
    transfer_id: &str,
) -> Result<Option<TransferView>, StorageError> {
    match first_view(txn, keys, transfer_id, SagaRecord::view)? {
        Some(view) => Ok(Some(view)),
        None => get_legacy(txn, &keys.legacy_transfer(transfer_id)),
    }
}

/// The first view `view_of` finds among the records under `id` (a transfer's two sides, or a
/// hold's one record), each with the account it belongs to.
fn first_view<T>(
    txn: &mut dyn Txn,
    keys: &Keys,
    id: &str,
    view_of: impl Fn(&SagaRecord, &AccountId) -> Option<T>,
) -> Result<Option<T>, StorageError> {
    let (begin, end) = keys.saga_range(id);
    for (k, v) in txn.get_range(&begin, &end, SIDES_MAX)? {
        let account = keys
            .saga_account(id, &k)
            .ok_or_else(|| StorageError::Corrupt(format!("record key of {id}")))?;
        let account = AccountId::new(account).map_err(StorageError::Corrupt)?;
        if let Some(view) = view_of(&decode::<SagaRecord>(&v)?, &account) {
            return Ok(Some(view));
        }
    }
    Ok(None)
}

/// An idempotency record, its reply resolved to the current views of the transfer or hold
/// it names (the core replays it as is).
fn get_idem(
    txn: &mut dyn Txn,
    keys: &Keys,
    account: &str,
    key: &str,
) -> Result<Option<Replay>, StorageError> {
    let Some(rec) = get::<IdemRecord>(txn, &keys.idem(account, key))? else {
        return Ok(None);
    };
    let missing = |what: &str, id: &TransferId| {
        StorageError::Corrupt(format!("idempotency key {key} names a missing {what} {id}"))
    };
    let transfer = |txn: &mut dyn Txn, id: &TransferId| {
        get_view(txn, keys, id.as_str())?.ok_or_else(|| missing("transfer", id))
    };
    let hold = |txn: &mut dyn Txn, id: &TransferId| {
        get_hold(txn, keys, id.as_str())?.ok_or_else(|| missing("hold", id))
    };
    let reply = match &rec.reply {
        StoredReply::Movement(m) => Reply::Movement(m.clone()),
        StoredReply::Transfer(TransferView { id, .. }) | StoredReply::TransferId(id) => {
            Reply::Transfer(transfer(txn, id)?)
        }
        StoredReply::HoldId(id) => Reply::Hold(Box::new(hold(txn, id)?)),
        StoredReply::DisbursementId(id) => Reply::Disbursement(Box::new(
            get_disbursement(txn, keys, id.as_str())?.ok_or_else(|| missing("disbursement", id))?,
        )),
        StoredReply::Capture {
            hold: h,
            transfer: t,
        } => Reply::Capture {
            hold: Box::new(hold(txn, h)?),
            transfer: transfer(txn, t)?,
        },
    };
    Ok(Some(Replay {
        fingerprint: rec.fingerprint,
        reply,
    }))
}

/// A hold's current view, from its payer's record (the only record under the hold's id).
fn get_hold(
    txn: &mut dyn Txn,
    keys: &Keys,
    hold_id: &str,
) -> Result<Option<HoldView>, StorageError> {
    first_view(txn, keys, hold_id, SagaRecord::hold_view)
}

/// A disbursement's current view, from its payer's record. Its receivers' records share its
/// id: the first record under the id is the payer's, or a receiver's naming the payer.
fn get_disbursement(
    txn: &mut dyn Txn,
    keys: &Keys,
    id: &str,
) -> Result<Option<DisbursementView>, StorageError> {
    let (begin, end) = keys.saga_range(id);
    let Some((k, v)) = txn.get_range(&begin, &end, 1)?.pop() else {
        return Ok(None);
    };
    let account = keys
        .saga_account(id, &k)
        .ok_or_else(|| StorageError::Corrupt(format!("record key of {id}")))?;
    let (payer, rec) = match decode::<SagaRecord>(&v)? {
        SagaRecord::Leg(l) => {
            let rec = get::<SagaRecord>(txn, &keys.saga(l.from.as_str(), id))?;
            (l.from, rec)
        }
        rec => (
            AccountId::new(account).map_err(StorageError::Corrupt)?,
            Some(rec),
        ),
    };
    Ok(match rec {
        Some(SagaRecord::Disbursement(d)) => Some(d.view(&payer)),
        _ => None,
    })
}

/// Reads a disbursement's current view.
pub fn read_disbursement(
    store: &Store,
    keys: &Keys,
    id: &TransferId,
) -> Result<Option<DisbursementView>, StorageError> {
    store.read(|txn| get_disbursement(txn, keys, id.as_str()))
}

/// A transfer's summary, or a disbursement's as its waiters take it (see
/// [`DisbursementView::summary`]).
fn get_settlement(
    txn: &mut dyn Txn,
    keys: &Keys,
    id: &str,
) -> Result<Option<TransferView>, StorageError> {
    match get_view(txn, keys, id)? {
        Some(v) => Ok(Some(v)),
        None => Ok(get_disbursement(txn, keys, id)?.map(|d| d.summary())),
    }
}

/// Reads up to `limit` unsettled disbursements after `after` (by id), with their views.
/// Returns them and whether more exist.
pub fn read_disbursing(
    store: &Store,
    keys: &Keys,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<DisbursementView>, bool), StorageError> {
    store.read(|txn| {
        let (begin, end) = keys.disbursing_after(after);
        let rows = txn.get_range(&begin, &end, limit + 1)?;
        let more = rows.len() > limit;
        let mut out = Vec::with_capacity(rows.len().min(limit));
        for (k, _) in rows.iter().take(limit) {
            let id = keys
                .disbursing_id(k)
                .ok_or_else(|| StorageError::Corrupt("disbursement index key".into()))?;
            let view = get_disbursement(txn, keys, &id)?.ok_or_else(|| {
                StorageError::Corrupt(format!("unsettled disbursement {id} has no record"))
            })?;
            out.push(view);
        }
        Ok((out, more))
    })
}

/// Reads the views of the holds of `ids` that exist, in order.
pub fn read_holds(
    store: &Store,
    keys: &Keys,
    ids: &[TransferId],
) -> Result<Vec<HoldView>, StorageError> {
    store.read(|txn| read_each(txn, keys, ids, get_hold))
}

/// Reads the view of one id in a transaction (`get_view`, `get_hold`).
type GetView<T> = fn(&mut dyn Txn, &Keys, &str) -> Result<Option<T>, StorageError>;

/// The views `get` finds for `ids`, in order (an id without one is left out).
fn read_each<T>(
    txn: &mut dyn Txn,
    keys: &Keys,
    ids: &[TransferId],
    get: GetView<T>,
) -> Result<Vec<T>, StorageError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(get(txn, keys, id.as_str())?);
    }
    Ok(out)
}

/// Reads a hold's current view.
pub fn read_hold(
    store: &Store,
    keys: &Keys,
    id: &TransferId,
) -> Result<Option<HoldView>, StorageError> {
    store.read(|txn| get_hold(txn, keys, id.as_str()))
}

/// A time after every hold's expiry: [`read_due_holds`] until it reads every open hold.
pub const EXPIRY_MAX: u64 = i64::MAX as u64 - 1;

/// Reads up to `limit` open holds that expire at or before `until_ms`, after the entry
/// `after` (by expiry, then id): each hold's expiry, id and payer. Returns them and whether
/// more are due.
#[allow(clippy::type_complexity)]
pub fn read_due_holds(
    store: &Store,
    keys: &Keys,
    until_ms: u64,
    after: Option<(u64, String)>,
    limit: usize,
) -> Result<(Vec<((u64, TransferId), AccountId)>, bool), StorageError> {
    store.read(|txn| {
        let after = after.as_ref().map(|(at, h)| (*at, h.as_str()));
        let (begin, end) = keys.holds_due(until_ms, after);
        let rows = txn.get_range(&begin, &end, limit + 1)?;
        let more = rows.len() > limit;
        let mut out = Vec::with_capacity(rows.len().min(limit));
        for (k, v) in rows.iter().take(limit) {
            let (at, hold) = keys
                .hold_due_row(k)
                .ok_or_else(|| StorageError::Corrupt("due-hold key".into()))?;
            let hold = TransferId::new(hold).map_err(StorageError::Corrupt)?;
            out.push(((at, hold), decode::<AccountId>(v)?));
        }
        Ok((out, more))
    })
}

pub(super) fn get<T: Stored>(txn: &mut dyn Txn, key: &[u8]) -> Result<Option<T>, StorageError> {
    txn.get(key)?.map(|b| decode(&b)).transpose()
}

/// Reads a value only releases before 0.2 wrote (JSON).
fn get_legacy<T: serde::de::DeserializeOwned>(
    txn: &mut dyn Txn,
    key: &[u8],
) -> Result<Option<T>, StorageError> {
    txn.get(key)?.map(|b| decode_json(&b)).transpose()
}

/// Reads a page of an account's journal after `after_seq` (committed entries are immutable, so
/// this needs no actor).
pub fn read_entries(
    store: &Store,
    keys: &Keys,
    id: &AccountId,
    after_seq: u64,
    limit: usize,
) -> Result<Option<EntriesPage>, StorageError> {
    store.read(|txn| {
        if txn.get(&keys.state(id.as_str()))?.is_none() {
            return Ok(None);
        }
        let (begin, end) = keys.journal_after(id.as_str(), after_seq);
        // One more than asked tells whether a next page exists.
        let rows = txn.get_range(&begin, &end, limit + 1)?;
        let more = rows.len() > limit;
        let entries = rows
            .iter()
            .take(limit)
            .map(|(_, v)| decode::<Entry>(v))
            .collect::<Result<Vec<_>, _>>()?;
        let next_after_seq = if more {
            entries.last().map(|e| e.seq)
        } else {
            None
        };
        Ok(Some(EntriesPage {
            entries,
            next_after_seq,
        }))
    })
}

/// Most rows of an account's transfer list one request reads while it filters by status
/// (the page then ends early, with a cursor to go on from).
pub const LISTED_SCAN_MAX: usize = 1_000;
/// Rows read per range read while a status filter skips rows.
pub const LISTED_CHUNK: usize = 100;

/// A page of an account's transfers, newest first: at most `limit` of those with `status`
/// (any when `None`), after the row `after`, reading at most `scan_max` rows of the list;
/// `None` when the account was never opened.
pub fn list_transfers(
    store: &Store,
    keys: &Keys,
    id: &AccountId,
    status: Option<TransferStatus>,
    after: Option<(u64, String)>,
    limit: usize,
    scan_max: usize,
) -> Result<Option<TransfersPage>, StorageError> {
    assert!(
        limit > 0 && scan_max > 0,
        "a page and a scan read something"
    );
    store.read(|txn| {
        if txn.get(&keys.state(id.as_str()))?.is_none() {
            return Ok(None);
        }
        let mut cursor = after.clone();
        let mut transfers = Vec::with_capacity(limit.min(LISTED_CHUNK));
        let mut scanned = 0;
        loop {
            // Unfiltered, every row is a result: read what the page still needs. Filtered, read
            // in chunks, the page filling as rows match.
            let budget = scan_max - scanned;
            let want = match status {
                None => (limit - transfers.len()).min(budget),
                Some(_) => LISTED_CHUNK.min(budget),
            };
            let (begin, end) =
                keys.listed_after(id.as_str(), cursor.as_ref().map(|(r, t)| (*r, t.as_str())));
            // One more than asked tells whether rows remain.
            let rows = txn.get_range(&begin, &end, want + 1)?;
            let rows_after = rows.len() > want;
            let chunk = listed_views(txn, keys, id, &rows[..rows.len().min(want)])?;
            let mut consumed = 0;
            for (row, view) in chunk.iter() {
                consumed += 1;
                scanned += 1;
                cursor = Some(row.clone());
                if status.is_none_or(|s| s == view.status) {
                    transfers.push(view.clone());
                    if transfers.len() == limit {
                        break;
                    }
                }
            }
            let more = consumed < chunk.len() || rows_after;
            if !more || transfers.len() == limit || scanned >= scan_max {
                return Ok(Some(TransfersPage {
                    transfers,
                    next_after: cursor
                        .filter(|_| more)
                        .map(|(r, t)| encode_list_cursor(r, &t)),
                }));
            }
        }
    })
}

/// The rows of a transfer list with each transfer's view, read from the senders' records in
/// one batched read (a transfer of releases before 0.2 from where they kept it).
#[allow(clippy::type_complexity)]
fn listed_views(
    txn: &mut dyn Txn,
    keys: &Keys,
    id: &AccountId,
    rows: &[(Vec<u8>, Vec<u8>)],
) -> Result<Vec<((u64, String), TransferView)>, StorageError> {
    let mut listed = Vec::with_capacity(rows.len());
    for (k, v) in rows {
        let (rank, tid) = keys
            .listed_row(id.as_str(), k)
            .ok_or_else(|| StorageError::Corrupt(format!("transfer-list key of account {id}")))?;
        let sender: AccountId = decode(v)?;
        listed.push(((rank, tid), sender));
    }
    let record_keys: Vec<Vec<u8>> = listed
        .iter()
        .map(|((_, tid), sender)| keys.saga(sender.as_str(), tid))
        .collect();
    let records = txn.get_many(&record_keys)?;
    let mut out = Vec::with_capacity(listed.len());
    for ((row, sender), record) in listed.into_iter().zip(records) {
        let view = match record {
            Some(bytes) => decode::<SagaRecord>(&bytes)?.view(&sender),
            None => None,
        };
        let view = match view {
            Some(v) => v,
            None => get_view(txn, keys, &row.1)?.ok_or_else(|| {
                StorageError::Corrupt(format!("listed transfer {} of {id} has no record", row.1))
            })?,
        };
        out.push((row, view));
    }
    Ok(out)
}

/// The opaque cursor of a transfer-list row.
pub fn encode_list_cursor(rank: u64, transfer_id: &str) -> String {
    format!("{rank:016x}{transfer_id}")
}

/// Decodes a cursor made by [`encode_list_cursor`].
pub fn decode_list_cursor(cursor: &str) -> Option<(u64, String)> {
    let (rank, tid) = (cursor.get(..16)?, cursor.get(16..)?);
    let rank = u64::from_str_radix(rank, 16).ok()?;
    TransferId::new(tid).ok()?;
    Some((rank, tid.to_owned()))
}

/// Reads a transfer summary.
pub fn read_transfer(
    store: &Store,
    keys: &Keys,
    id: &TransferId,
) -> Result<Option<TransferView>, StorageError> {
    store.read(|txn| get_view(txn, keys, id.as_str()))
}

/// Reads a page of accounts, as stored, in id order after `after`; a record holding more
/// than its balance is reported as corrupt.
pub fn read_accounts(
    store: &Store,
    keys: &Keys,
    after: Option<&AccountId>,
    limit: usize,
) -> Result<(Vec<AccountView>, Option<AccountId>), StorageError> {
    store.read(|txn| {
        let (begin, end) = keys.account_index_after(after.map(|a| a.as_str()));
        let rows = txn.get_range(&begin, &end, limit + 1)?;
        let more = rows.len() > limit;
        let mut out = Vec::with_capacity(rows.len().min(limit));
        for (k, _) in rows.iter().take(limit) {
            let raw = keys
                .account_index_id(k)
                .ok_or_else(|| StorageError::Corrupt("account index key".into()))?;
            let id = AccountId::new(raw).map_err(StorageError::Corrupt)?;
            let rec: AccountRecord = get(txn, &keys.state(id.as_str()))?.ok_or_else(|| {
                StorageError::Corrupt(format!("indexed account {id} has no state"))
            })?;
            // A view asserts holds within the balance; a record that breaks it is reported
            // (the audit names it), not a reason to stop the node's thread.
            if rec.held > rec.balance {
                return Err(StorageError::Corrupt(format!(
                    "account {id} holds {} of a balance of {}",
                    rec.held, rec.balance
                )));
            }
            out.push(rec.view(&id));
        }
        let next = if more {
            out.last().map(|a| a.id.clone())
        } else {
            None
        };
        Ok((out, next))
    })
}

/// Reads up to `limit` unsettled transfers after `after` (by id): the pending index joined with
/// the senders' records (the transfers' summaries). Returns them and whether more exist.
pub fn read_pending(
    store: &Store,
    keys: &Keys,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<(TransferView, AccountId)>, bool), StorageError> {
    store.read(|txn| {
        let (begin, end) = keys.pending_after(after);
        let rows = txn.get_range(&begin, &end, limit + 1)?;
        let more = rows.len() > limit;
        let mut out = Vec::with_capacity(rows.len().min(limit));
        for (k, v) in rows.iter().take(limit) {
            let tid = keys
                .pending_transfer_id(k)
                .ok_or_else(|| StorageError::Corrupt("pending key".into()))?;
            let sender: AccountId = decode(v)?;
            let view = match get_saga(txn, keys, sender.as_str(), &tid)? {
                Some(rec) => rec.view(&sender),
                None => get_legacy::<TransferView>(txn, &keys.legacy_transfer(&tid))?,
            }
            .ok_or_else(|| StorageError::Corrupt(format!("pending {tid} has no summary")))?;
            out.push((view, sender));
        }
        Ok((out, more))
    })
}

/// The store's identity: the one already written, or `fresh` written now. Nodes compare it to
/// refuse a peer that uses another store. Idempotent: a retry after an unknown commit reads the
/// value the first attempt wrote, or writes `fresh` again.
pub fn store_identity(store: &Store, keys: &Keys, fresh: &str) -> Result<String, StorageError> {
    let key = keys.store_id();
    store.run(|txn| match txn.get(&key)? {
        Some(bytes) => String::from_utf8(bytes)
            .map_err(|_| StorageError::Corrupt("store id is not UTF-8".into())),
        None => {
            txn.set(&key, fresh.as_bytes())?;
            Ok(fresh.to_owned())
        }
    })
}

/// Counts the pending index, up to `limit`, reading it in pages of `page` keys (the node
/// passes the range limit, `storage::RANGE_LIMIT_MAX`).
pub fn count_pending(
    store: &Store,
    keys: &Keys,
    limit: usize,
    page: usize,
) -> Result<u64, StorageError> {
    assert!(page > 0, "pages of no key");
    store.read(|txn| {
        let (mut begin, end) = keys.pending_range();
        let mut count = 0usize;
        while count < limit {
            let page = (limit - count).min(page);
            let rows = txn.get_range(&begin, &end, page)?;
            count += rows.len();
            match rows.last() {
                Some((k, _)) if rows.len() == page => {
                    begin = k.clone();
                    begin.push(0);
                }
                _ => break,
            }
        }
        Ok(count as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryBackend;
    use protocol::api::AccountStatus;
    use protocol::Currency;
    use std::sync::Arc;

    #[test]
    fn account_listing_reports_a_record_holding_more_than_its_balance() {
        // Proves the operators' account listing answers an error naming a corrupt record
        // instead of panicking on it (a view asserts holds within the balance).
        let (store, keys) = (Store::new(Arc::new(MemoryBackend::new())), Keys::default());
        let rec = |balance, held| AccountRecord {
            shards: None,
            currency: Currency::new("EUR").unwrap(),
            status: AccountStatus::Active,
            balance,
            held,
            seq: 0,
            opened_at: 0,
        };
        store
            .run(|txn| {
                for (id, r) in [("a", rec(10, 3)), ("b", rec(10, 11))] {
                    txn.set(&keys.account_index(id), b"")?;
                    txn.set(&keys.state(id), &encode(&r))?;
                }
                Ok(())
            })
            .unwrap();
        let (page, next) = read_accounts(&store, &keys, None, 1).unwrap();
        assert_eq!(
            (page[0].available, next.as_ref().map(|a| a.as_str())),
            (7, Some("a"))
        );
        let err = read_accounts(&store, &keys, next.as_ref(), 1).unwrap_err();
        assert!(
            matches!(&err, StorageError::Corrupt(m) if m == "account b holds 11 of a balance of 10"),
            "{err:?}"
        );
    }
}
