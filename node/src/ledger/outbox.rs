//! The outbox: the webhook events of a change, written in the change's own storage
//! transaction (API.md "Webhooks").
//!
//! A batch's commit turns what its steps did into events: every journal entry the account
//! publishes (`Effect::Publish`) is an `entry` event; every saga record it writes in a final
//! state is a settlement (`transfer.settled` for a transfer the account sent, `hold.settled`,
//! `disbursement.settled`). Each event is written once per webhook that wants its type and
//! account, at `("outbox", webhook, account, seq, kind, event_id)`: the same transaction that
//! commits the change writes its events, so an event exists exactly when its change does, and
//! a retried commit writes the same keys. The publisher of the node owning the account
//! (`crate::webhooks`) delivers them in key order, so in `seq` order per account, and deletes
//! each once its receiver took it.
//!
//! Pure: what is written follows from the batch's writes and effects, the account's `seq`
//! after them, the commit's time and the configured webhooks, nothing else.
//!
//! Left out: moves between a sharded account's shards are not settlements a client made (no
//! `transfer.settled`), though their entries are real entries of each shard and are sent. A
//! settlement's `seq` is the account's at the commit that settled it, not a number of its
//! own: two settlements at one `seq` are ordered by kind and id.

use super::account::{is_move, Effect, Write};
use super::planted::{planted, Bug};
use super::records::{DisbursementPhase, SagaRecord, SenderStatus};
use crate::storage::keys::Keys;
use cluster_config::{account_matches, EventType};
use protocol::api::{Entry, HoldStatus};
use protocol::events::{EntryData, Event, EventData};
use protocol::AccountId;

/// The outbox records of one step or batch of `account`: keys and values (the event's JSON,
/// as it is delivered). `seq` is the account's after them, `now_ms` the commit's time.
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
    let mut out = Vec::new();
    for (ty, event) in events(account, seq, writes, effects, now_ms) {
        let public = event.account.as_str();
        let mut json = None;
        for hook in keys.webhooks() {
            let wanted = hook.config.wants(ty)
                && hook
                    .config
                    .accounts
                    .as_ref()
                    .is_none_or(|ps| ps.iter().any(|p| account_matches(p, public)));
            if !wanted {
                continue;
            }
            let json = json
                .get_or_insert_with(|| serde_json::to_vec(&event).expect("an event serializes"));
            let kind = EventType::ALL
                .iter()
                .position(|t| *t == ty)
                .expect("every type is listed") as u64;
            out.push((
                keys.outbox(&hook.id, account.as_str(), event.seq, kind, &event.id),
                json.clone(),
            ));
        }
    }
    out
}

/// Whether a settlement is left out by the planted bug `outbox-forgets-failures`.
fn forgotten(status: &SenderStatus) -> bool {
    planted(Bug::OutboxForgetsFailures) && matches!(status, SenderStatus::Failed(_))
}

/// The events of a step or batch, with their types, in the order they happened.
fn events(
    account: &AccountId,
    seq: u64,
    writes: &[Write],
    effects: &[Effect],
    now_ms: u64,
) -> Vec<(EventType, Event)> {
    let shard = account.shard_index();
    let event = |ty: EventType, id: String, seq: u64, at: u64, data: EventData| Event {
        id,
        kind: ty.as_str().to_owned(),
        account: account.public(),
        shard,
        seq,
        at,
        data,
    };
    let mut out = Vec::new();
    for e in effects {
        if let Effect::Publish(u) = e {
            let entry = Entry {
                shard,
                ..u.entry.clone()
            };
            let data = EventData::Entry(EntryData {
                balance: entry.balance,
                available: entry.available,
                held: u.held,
                entry,
            });
            let id = format!("entry:{}:{}", account.as_str(), u.entry.seq);
            out.push((
                EventType::Entry,
                event(EventType::Entry, id, u.entry.seq, u.entry.at, data),
            ));
        }
    }
    for w in writes {
        let Write::Saga(rec) = w else { continue };
        let settled = match rec {
            SagaRecord::Sender {
                transfer_id,
                status: status @ (SenderStatus::Completed | SenderStatus::Failed(_)),
                ..
            } if !is_move(transfer_id) && !forgotten(status) => rec.view(account).map(|v| {
                (
                    EventType::TransferSettled,
                    v.id.clone(),
                    EventData::Transfer(v.public()),
                )
            }),
            SagaRecord::Hold(h)
                if matches!(
                    h.status,
                    HoldStatus::Captured | HoldStatus::Voided | HoldStatus::Expired
                ) =>
            {
                Some((
                    EventType::HoldSettled,
                    h.hold_id.clone(),
                    EventData::Hold(Box::new(h.view(account).public())),
                ))
            }
            SagaRecord::Disbursement(d)
                if matches!(
                    d.phase,
                    DisbursementPhase::Completed | DisbursementPhase::Failed { .. }
                ) =>
            {
                Some((
                    EventType::DisbursementSettled,
                    d.id.clone(),
                    EventData::Disbursement(Box::new(d.view(account).public())),
                ))
            }
            _ => None,
        };
        if let Some((ty, id, data)) = settled {
            let id = format!("{}:{}", ty.as_str(), id.as_str());
            out.push((ty, event(ty, id, seq, now_ms, data)));
        }
    }
    out
}
