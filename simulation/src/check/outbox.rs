//! The outbox tells of exactly the committed changes (API.md "Webhooks"): a webhook event is
//! written in the same commit as its change, so no change goes untold and no event tells of
//! a change that did not happen, under every fault (unknown commit results, retries,
//! fencing, crashes).
//!
//! At every commit: each journal entry written has its `entry` event in that commit, with the
//! entry and the balances after it; each `entry` event has its entry; each transfer, hold or
//! disbursement record written in a final state (a move between shards excepted) has its
//! settlement event in that commit, showing that record, and each settlement event has its
//! record; nothing is deleted (nothing delivers in the simulation), and an event written again
//! carries the same body. At phase ends: every entry and every settled transfer, hold and
//! disbursement of the store has its event, and the outbox holds nothing else.

use super::Check;
use crate::ledger::{Commit, Ledger, Row};
use crate::workload::OpSpec;
use node::ledger::account::is_move;
use node::ledger::records::{DisbursementPhase, SagaRecord, SenderStatus};
use protocol::api::{Entry, HoldStatus};
use protocol::events::{EntryData, Event, EventData};
use protocol::{AccountId, TransferId};
use std::collections::{BTreeMap, BTreeSet};

/// The webhook of every simulated cluster (it wants every event of every account).
pub const HOOK: &str = "sim";

/// The webhook of every simulated cluster: every event of every account, written to its
/// outbox (nothing delivers them: the publisher does IO and is tested end to end).
pub fn webhook() -> cluster_config::WebhookConfig {
    cluster_config::WebhookConfig {
        id: Some(HOOK.into()),
        url: "http://webhook.invalid/events".into(),
        secret: "simulated-webhook-secret".into(),
        events: None,
        accounts: None,
        retry_max_ms: None,
    }
}

/// Checks the outbox against the commits.
pub struct Outbox;

fn id(s: &str) -> AccountId {
    AccountId::new(s).expect("stored account ids are valid")
}

/// The `entry` event an entry of `account` must have: id and data.
fn entry_event(account: &str, e: &Entry) -> (String, EventData) {
    let shard = id(account).shard_index();
    let entry = Entry { shard, ..e.clone() };
    let data = EventData::Entry(EntryData {
        balance: e.balance,
        available: e.available,
        held: e.balance - e.available,
        entry,
    });
    (format!("entry:{account}:{}", e.seq), data)
}

/// The settlement event a saga record of `account` must have, when it is final.
fn settlement(account: &str, t: &str, rec: &SagaRecord) -> Option<(String, EventData)> {
    let a = id(account);
    let (kind, data) = match rec {
        SagaRecord::Sender {
            status: SenderStatus::Completed | SenderStatus::Failed(_),
            ..
        } if !is_move(&TransferId::new(t).expect("stored transfer ids are valid")) => (
            "transfer.settled",
            EventData::Transfer(rec.view(&a)?.public()),
        ),
        SagaRecord::Hold(h)
            if matches!(
                h.status,
                HoldStatus::Captured | HoldStatus::Voided | HoldStatus::Expired
            ) =>
        {
            (
                "hold.settled",
                EventData::Hold(Box::new(h.view(&a).public())),
            )
        }
        SagaRecord::Disbursement(d)
            if matches!(
                d.phase,
                DisbursementPhase::Completed | DisbursementPhase::Failed { .. }
            ) =>
        {
            (
                "disbursement.settled",
                EventData::Disbursement(Box::new(d.view(&a).public())),
            )
        }
        _ => return None,
    };
    Some((format!("{kind}:{t}"), data))
}

/// Whether `e` is the event `want` of stored account `account`.
fn matches(e: &Event, account: &str, want: &EventData) -> Result<(), String> {
    let a = id(account);
    if e.account != a.public() || e.shard != a.shard_index() || &e.data != want {
        return Err(format!(
            "event {} of {account} is {e:?}; its change says {want:?}",
            e.id
        ));
    }
    Ok(())
}

impl Check for Outbox {
    fn name(&self) -> &'static str {
        "webhook outbox (API.md Webhooks)"
    }

    fn on_commit(&mut self, before: &Ledger, c: &Commit, _ops: &[OpSpec]) -> Result<(), String> {
        let mut events: BTreeMap<&str, (&str, &Event)> = BTreeMap::new();
        for row in &c.rows {
            if let Row::Outbox(account, _, event, body) = row {
                let Some(e) = body else {
                    return Err(format!(
                        "event {event} of {account} was deleted, yet nothing delivers"
                    ));
                };
                if e.id != *event {
                    return Err(format!("event stored as {event} names itself {}", e.id));
                }
                if let Some((_, prev)) = before.outbox.get(event) {
                    if prev.data != e.data || prev.kind != e.kind {
                        return Err(format!(
                            "event {event} written again with another body: {prev:?}, then {e:?}"
                        ));
                    }
                }
                events.insert(event, (account, e));
            }
        }
        let mut told: BTreeSet<&str> = BTreeSet::new();
        for row in &c.rows {
            let want = match row {
                Row::Journal(account, _, Some(e)) => Some((account, entry_event(account, e))),
                Row::Saga(account, t, Some(rec)) => {
                    settlement(account, t, rec).map(|w| (account, w))
                }
                _ => None,
            };
            let Some((account, (event, data))) = want else {
                continue;
            };
            let Some((at, e)) = events.get(event.as_str()) else {
                return Err(format!("{account} committed {event} without its event"));
            };
            if *at != account.as_str() {
                return Err(format!("event {event} of {account} was written under {at}"));
            }
            matches(e, account, &data)?;
            told.insert(e.id.as_str());
        }
        if let Some(extra) = events.keys().find(|k| !told.contains(*k)) {
            return Err(format!("event {extra} was written without its change"));
        }
        Ok(())
    }

    fn phase_end(
        &mut self,
        ledger: &Ledger,
        _ops: &[OpSpec],
        _quiescent: bool,
    ) -> Result<(), String> {
        let mut want: BTreeMap<String, (&str, EventData)> = BTreeMap::new();
        for (account, obs) in &ledger.accounts {
            for (e, _) in obs.journal.values() {
                let (event, data) = entry_event(account, e);
                want.insert(event, (account, data));
            }
            for (t, rec) in &obs.sagas {
                if let Some((event, data)) = settlement(account, t, rec) {
                    want.insert(event, (account, data));
                }
            }
        }
        for (event, (account, data)) in &want {
            let Some((at, e)) = ledger.outbox.get(event) else {
                return Err(format!("{account} has {event}'s change but no event"));
            };
            if at != account {
                return Err(format!("event {event} of {account} is under {at}"));
            }
            matches(e, account, data)?;
        }
        if let Some(extra) = ledger.outbox.keys().find(|k| !want.contains_key(*k)) {
            return Err(format!(
                "the outbox holds {extra}, which no change tells of"
            ));
        }
        Ok(())
    }
}
