//! The outbox: the webhook events of a change, written in the change's own storage
//! transaction (API.md "Webhooks").
//!
//! A batch's commit turns what its steps did into events: every journal entry the account
//! publishes (`Effect::Publish`) is an `entry` event; every saga record it writes in a final
//! state is a settlement (`transfer.settled` for a transfer the account sent, `hold.settled`,
//! `disbursement.settled`). Each event is written once per webhook that wants its type and
//! account, at `("outbox", webhook, account, seq, kind, id)`: the same transaction that
//! commits the change writes its events, so an event exists exactly when its change does, and
//! a retried commit writes the same keys. The publisher of the node owning the account
//! (`crate::webhooks`) delivers them in key order, so in `seq` order per account, and deletes
//! each once its receiver took it.
//!
//! An outbox record is a reference, not a copy: its key names the journal entry (`id` empty)
//! or the saga record (`id` the transfer's, hold's or disbursement's) the event tells of, and
//! its value holds only a settlement's time. [`read`] renders the event from the records it
//! names, which never change once written (entries are immutable; a saga record is not
//! written again once final), so every delivery of an event carries the same bytes. The
//! commit writes a few dozen bytes per event instead of the event's JSON.
//!
//! Pure: what is written follows from the batch's writes and effects, the account's `seq`
//! after them, the commit's time and the configured webhooks, nothing else.
//!
//! Left out: moves between a sharded account's shards are not settlements a client made (no
//! `transfer.settled`), though their entries are real entries of each shard and are sent. A
//! settlement's `seq` is the account's at the commit that settled it, not a number of its
//! own: two settlements at one `seq` are ordered by kind and id.

use super::account::{is_move, Effect, Write};
use super::exec::{get, get_saga};
use super::planted::{planted, Bug};
use super::records::{DisbursementPhase, SagaRecord, SenderStatus};
use crate::storage::keys::Keys;
use crate::storage::{StorageError, Txn};
use cluster_config::{account_matches, EventType};
use protocol::api::{Entry, HoldStatus};
use protocol::events::{EntryData, Event, EventData};
use protocol::AccountId;

/// One event a commit writes: its type, `seq`, the id of the record it tells of (empty for an
/// entry) and, for a settlement, the commit's time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRef {
    /// Its type.
    pub ty: EventType,
    /// The account's `seq` it belongs at (an entry's own).
    pub seq: u64,
    /// The transfer, hold or disbursement of a settlement; empty for an entry.
    pub id: String,
    /// When the settlement was committed (ms); 0 for an entry, which has its own time.
    pub at: u64,
}

/// The position of a type in the outbox's order: an entry comes before the settlements
/// written at its `seq`.
pub fn kind_of(ty: EventType) -> u64 {
    EventType::ALL
        .iter()
        .position(|t| *t == ty)
        .expect("every type is listed") as u64
}

/// The outbox records of one step or batch of `account`: keys and values. `seq` is the
/// account's after them, `now_ms` the commit's time.
pub fn records(
    keys: &Keys,
    account: &AccountId,
    seq: u64,
    writes: &[Write],
    effects: &[Effect],
    now_ms: u64,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    if keys.webhooks().is_empty() {
        return Vec::new();
    }
    let public = account.public_str();
    let mut out = Vec::new();
    for e in events(seq, writes, effects, now_ms) {
        for hook in keys.webhooks() {
            let wanted = hook.config.wants(e.ty)
                && hook
                    .config
                    .accounts
                    .as_ref()
                    .is_none_or(|ps| ps.iter().any(|p| account_matches(p, public)));
            if wanted {
                let key = keys.outbox(&hook.id, account.as_str(), e.seq, kind_of(e.ty), &e.id);
                let value = if e.id.is_empty() {
                    Vec::new()
                } else {
                    e.at.to_be_bytes().to_vec()
                };
                out.push((key, value));
            }
        }
    }
    out
}

/// Whether a settlement is left out by the planted bug `outbox-forgets-failures`.
fn forgotten(status: &SenderStatus) -> bool {
    planted(Bug::OutboxForgetsFailures) && matches!(status, SenderStatus::Failed(_))
}

/// The type of the settlement a saga record written in this state tells of, if it is final
/// (a move between shards excepted).
pub fn settlement(rec: &SagaRecord) -> Option<EventType> {
    match rec {
        SagaRecord::Sender {
            transfer_id,
            status: status @ (SenderStatus::Completed | SenderStatus::Failed(_)),
            ..
        } if !is_move(transfer_id) && !forgotten(status) => Some(EventType::TransferSettled),
        SagaRecord::Hold(h)
            if matches!(
                h.status,
                HoldStatus::Captured | HoldStatus::Voided | HoldStatus::Expired
            ) =>
        {
            Some(EventType::HoldSettled)
        }
        SagaRecord::Disbursement(d)
            if matches!(
                d.phase,
                DisbursementPhase::Completed | DisbursementPhase::Failed { .. }
            ) =>
        {
            Some(EventType::DisbursementSettled)
        }
        _ => None,
    }
}

/// The events of a step or batch, in the order they happened.
fn events(seq: u64, writes: &[Write], effects: &[Effect], now_ms: u64) -> Vec<EventRef> {
    let mut out = Vec::new();
    for e in effects {
        if let Effect::Publish(u) = e {
            out.push(EventRef {
                ty: EventType::Entry,
                seq: u.entry.seq,
                id: String::new(),
                at: 0,
            });
        }
    }
    for w in writes {
        if let Write::Saga(rec) = w {
            if let Some(ty) = settlement(rec) {
                out.push(EventRef {
                    ty,
                    seq,
                    id: rec.id().as_str().to_owned(),
                    at: now_ms,
                });
            }
        }
    }
    out
}

/// The event an entry of `account` tells of.
pub fn entry_event(account: &AccountId, e: &Entry) -> Event {
    let shard = account.shard_index();
    let entry = Entry { shard, ..e.clone() };
    Event {
        id: format!("entry:{}:{}", account.as_str(), e.seq),
        kind: EventType::Entry.as_str().to_owned(),
        account: account.public(),
        shard,
        seq: e.seq,
        at: e.at,
        data: EventData::Entry(EntryData {
            balance: e.balance,
            available: e.available,
            held: e
                .balance
                .checked_sub(e.available)
                .expect("available never exceeds balance"),
            entry,
        }),
    }
}

/// The settlement event a final saga record of `account` tells of, written at `seq` and
/// `at`; `None` for a record that is not final.
pub fn settlement_event(account: &AccountId, rec: &SagaRecord, seq: u64, at: u64) -> Option<Event> {
    let ty = settlement(rec)?;
    let data = match rec {
        SagaRecord::Sender { .. } => EventData::Transfer(rec.view(account)?.public()),
        SagaRecord::Hold(h) => EventData::Hold(Box::new(h.view(account).public())),
        SagaRecord::Disbursement(d) => EventData::Disbursement(Box::new(d.view(account).public())),
        _ => return None,
    };
    Some(Event {
        id: format!("{}:{}", ty.as_str(), rec.id().as_str()),
        kind: ty.as_str().to_owned(),
        account: account.public(),
        shard: account.shard_index(),
        seq,
        at,
        data,
    })
}

/// The event an outbox record of `hook` names, rendered from the records it refers to (see
/// the module's notes): its JSON, as delivered. A record whose referent is missing or not
/// final is corrupt.
pub fn read(
    txn: &mut dyn Txn,
    keys: &Keys,
    hook: &str,
    key: &[u8],
    value: &[u8],
) -> Result<Vec<u8>, StorageError> {
    let corrupt = |what: &str| StorageError::Corrupt(format!("outbox record {key:?}: {what}"));
    let (account, seq, id) = keys
        .outbox_row(hook, key)
        .ok_or_else(|| corrupt("undecodable key"))?;
    let account = AccountId::new(account).map_err(StorageError::Corrupt)?;
    let event = if id.is_empty() {
        let e: Entry = get(txn, &keys.journal(account.as_str(), seq))?
            .ok_or_else(|| corrupt("its entry is missing"))?;
        entry_event(&account, &e)
    } else {
        let at = u64::from_be_bytes(
            value
                .try_into()
                .map_err(|_| corrupt("its time is not 8 bytes"))?,
        );
        let rec = get_saga(txn, keys, account.as_str(), &id)?
            .ok_or_else(|| corrupt("its record is missing"))?;
        settlement_event(&account, &rec, seq, at)
            .ok_or_else(|| corrupt("its record is not final"))?
    };
    Ok(serde_json::to_vec(&event).expect("an event serializes"))
}
