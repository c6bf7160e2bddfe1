//! The outbox tells of exactly the committed changes (API.md "Webhooks"): a webhook event is
//! written in the same commit as its change, so no change goes untold and no event tells of
//! a change that did not happen, under every fault (unknown commit results, retries,
//! fencing, crashes).
//!
//! An outbox record names the entry or saga record its event is rendered from. At every
//! commit: each journal entry written has its `entry` record in that commit, at its `seq`;
//! each transfer, hold or disbursement record written in a final state (a move between shards
//! excepted) has its settlement record in that commit, with its time (8 bytes), and renders as
//! that record's event; each outbox record written has its change in the commit; nothing
//! is deleted (nothing delivers in the simulation), and a record written again is the same.
//! At phase ends: every entry and settled record of the store has its event, each event
//! renders from what the store holds, and the outbox holds nothing else.

use super::Check;
use crate::ledger::{Commit, Ledger, Row};
use crate::workload::OpSpec;
use node::ledger::account::is_move;
use node::ledger::outbox::{entry_event, settlement_event};
use node::ledger::records::{DisbursementPhase, SagaRecord, SenderStatus};
use protocol::api::HoldStatus;
use protocol::AccountId;
use std::collections::BTreeMap;

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

/// The type and id of the settlement a saga record tells of when it is written in this
/// state, decided here apart from the node's own rule: a transfer this account sent (a move
/// between shards excepted) completed or failed; a hold captured, voided or expired; a
/// disbursement completed or failed.
fn settled(rec: &SagaRecord) -> Option<(&'static str, &str)> {
    match rec {
        SagaRecord::Sender {
            transfer_id,
            status: SenderStatus::Completed | SenderStatus::Failed(_),
            ..
        } if !is_move(transfer_id) => Some(("transfer.settled", transfer_id.as_str())),
        SagaRecord::Hold(h)
            if matches!(
                h.status,
                HoldStatus::Captured | HoldStatus::Voided | HoldStatus::Expired
            ) =>
        {
            Some(("hold.settled", h.hold_id.as_str()))
        }
        SagaRecord::Disbursement(d)
            if matches!(
                d.phase,
                DisbursementPhase::Completed | DisbursementPhase::Failed { .. }
            ) =>
        {
            Some(("disbursement.settled", d.id.as_str()))
        }
        _ => None,
    }
}

/// The event id a final saga record of `account` tells of, checked to render as that event.
fn settled_id(account: &str, rec: &SagaRecord, at: u64) -> Option<Result<String, String>> {
    let (ty, record) = settled(rec)?;
    let want = format!("{ty}:{record}");
    Some(match settlement_event(&id(account), rec, 0, at) {
        Some(e) if e.id == want && e.kind == ty => Ok(want),
        other => Err(format!(
            "a final record of {account} renders {other:?}, not {want}: {rec:?}"
        )),
    })
}

/// A settlement's time, from its outbox value.
fn time_of(event: &str, value: &[u8]) -> Result<u64, String> {
    value
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| format!("{event}: a settlement's value is its time, 8 bytes; got {value:?}"))
}

impl Check for Outbox {
    fn name(&self) -> &'static str {
        "webhook outbox (API.md Webhooks)"
    }

    fn on_commit(&mut self, before: &Ledger, c: &Commit, _ops: &[OpSpec]) -> Result<(), String> {
        // The commit's outbox records: event id to account, seq and value.
        let mut written: BTreeMap<&str, (&str, u64, &[u8])> = BTreeMap::new();
        for row in &c.rows {
            if let Row::Outbox(account, seq, event, value) = row {
                let Some(v) = value else {
                    return Err(format!(
                        "event {event} of {account} was deleted, yet nothing delivers"
                    ));
                };
                if let Some(prev) = before.outbox.get(event) {
                    if prev != &(account.clone(), *seq, v.clone()) {
                        return Err(format!("event {event} written again otherwise: {prev:?}, then ({account}, {seq}, {v:?})"));
                    }
                }
                written.insert(event, (account, *seq, v));
            }
        }
        let mut told = 0;
        for row in &c.rows {
            let (account, event, seq) = match row {
                Row::Journal(account, _, Some(e)) => {
                    let ev = entry_event(&id(account), e);
                    (account, ev.id, Some(e.seq))
                }
                Row::Saga(account, _, Some(rec)) => match settled_id(account, rec, 0) {
                    None => continue,
                    Some(ev) => (account, ev?, None),
                },
                _ => continue,
            };
            let Some((at, s, value)) = written.get(event.as_str()) else {
                return Err(format!("{account} committed {event} without its event"));
            };
            if *at != account.as_str() {
                return Err(format!("event {event} of {account} was written under {at}"));
            }
            match seq {
                Some(seq) if *s != seq || !value.is_empty() => {
                    return Err(format!(
                        "entry event {event} is at seq {s} with value {value:?}"
                    ));
                }
                None => {
                    time_of(&event, value)?;
                }
                _ => {}
            }
            told += 1;
        }
        if told != written.len() {
            return Err(format!(
                "{} events were written without their change, among {:?}",
                written.len() - told,
                written.keys().collect::<Vec<_>>()
            ));
        }
        Ok(())
    }

    fn phase_end(
        &mut self,
        ledger: &Ledger,
        _ops: &[OpSpec],
        _quiescent: bool,
    ) -> Result<(), String> {
        let mut want: BTreeMap<String, &str> = BTreeMap::new();
        for (account, obs) in &ledger.accounts {
            for (e, _) in obs.journal.values() {
                want.insert(entry_event(&id(account), e).id, account);
            }
            for rec in obs.sagas.values() {
                if let Some(ev) = settled_id(account, rec, 0) {
                    want.insert(ev?, account);
                }
            }
        }
        for (event, account) in &want {
            let Some((at, _, _)) = ledger.outbox.get(event) else {
                return Err(format!("{account} has {event}'s change but no event"));
            };
            if at != account {
                return Err(format!("event {event} of {account} is under {at}"));
            }
        }
        if let Some(extra) = ledger.outbox.keys().find(|k| !want.contains_key(*k)) {
            return Err(format!(
                "the outbox holds {extra}, which no change tells of"
            ));
        }
        Ok(())
    }
}
