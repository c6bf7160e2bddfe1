//! Exactly once (DESIGN.md 4): a retried request or a repeated message never applies twice, and
//! an idempotency key reused with different parameters is refused.
//!
//! Every client operation carries a unique reference in its entries. At every commit: an
//! operation's deposit, withdrawal or hold appears at most once; a transfer's hold, capture,
//! release and credit each appear at most once; and the requests applied under one
//! idempotency key of an account are all the same request. A hold (`POST /v1/holds`) holds
//! again what a refused capture gave back, so only its first `hold` entry is a request's; its
//! sums are checked by the atomic-transfers check, and its captures are transfers. A move of
//! money between two shards of an account is asked by the shard that holds it, whose entry it
//! names in its id.

use super::Check;
use crate::ledger::{Commit, Ledger, Row};
use crate::workload::{OpKind, OpSpec};
use node::ledger::account::{move_id, MOVE_PREFIX};
use node::ledger::records::{LegRecord, SagaRecord};
use protocol::api::EntryKind;
use protocol::AccountId;
use std::collections::BTreeMap;

/// What has been applied.
#[derive(Default)]
pub struct ExactlyOnce {
    /// (reference, kind) -> where.
    by_reference: BTreeMap<(String, &'static str), (String, u64)>,
    /// (account, transfer, kind) -> seq.
    by_transfer: BTreeMap<(String, String, &'static str), u64>,
    /// (account, idempotency key) -> the reference applied under it.
    by_key: BTreeMap<(String, String), String>,
}

fn op_of<'a>(ops: &'a [OpSpec], reference: &str) -> Option<&'a OpSpec> {
    let i: usize = reference.strip_prefix('o')?.parse().ok()?;
    ops.get(i).filter(|o| o.reference == reference)
}

/// The operations that carry `reference`: the one that drew it, then the later ones that
/// reused its key and reference with one field changed (the workload's variants).
fn ops_with<'a>(ops: &'a [OpSpec], reference: &'a str) -> impl Iterator<Item = &'a OpSpec> {
    let first = op_of(ops, reference);
    let later = reference
        .strip_prefix('o')
        .and_then(|i| i.parse::<usize>().ok())
        .map_or(&ops[..0], |i| ops.get(i + 1..).unwrap_or(&[]));
    first
        .into_iter()
        .chain(later.iter().filter(move |o| o.reference == reference))
}

impl Check for ExactlyOnce {
    fn name(&self) -> &'static str {
        "exactly once (DESIGN.md 6.4)"
    }

    fn on_commit(
        &mut self,
        before: &Ledger,
        commit: &Commit,
        ops: &[OpSpec],
    ) -> Result<(), String> {
        for row in &commit.rows {
            let Row::Journal(id, seq, Some(e)) = row else {
                continue;
            };
            if before
                .accounts
                .get(id)
                .is_some_and(|a| a.journal.contains_key(seq))
            {
                continue; // a rewrite, reported by the replay check
            }
            let kind = e.kind.as_str();
            let tid = e.transfer_id.as_ref().map(|t| t.as_str());
            let is_hold = tid.is_some_and(|t| names_hold(before, commit, t));
            let is_capture = tid.is_some_and(|t| names_capture(before, commit, t));
            // A hold's later `hold` entries take back what a refused capture gave back.
            let first_of_hold = is_hold
                && !before.accounts.get(id).is_some_and(|a| {
                    a.journal
                        .values()
                        .any(|(x, _)| x.kind == EntryKind::Hold && x.transfer_id == e.transfer_id)
                });
            if let Some(t) = e.transfer_id.as_ref().filter(|_| !is_hold) {
                let k = (id.clone(), t.as_str().to_owned(), kind);
                if let Some(first) = self.by_transfer.insert(k, *seq) {
                    return Err(format!(
                        "{id}: {kind} of {t} applied twice (entries {first} and {seq})"
                    ));
                }
            }
            if e.kind == EntryKind::TransferIn {
                // A credit is exactly the amount its sender holds.
                let t = e.transfer_id.as_ref().map(|t| t.as_str()).unwrap_or("");
                // The credit's own commit records the decision, naming the sender (the payer,
                // for a disbursement's leg).
                let sender = commit.rows.iter().find_map(|r| match r {
                    Row::Saga(a, t2, Some(SagaRecord::Receiver { from, .. }))
                    | Row::Saga(a, t2, Some(SagaRecord::Leg(LegRecord { from, .. })))
                        if a == id && t2 == t =>
                    {
                        Some(from.as_str())
                    }
                    _ => None,
                });
                let held = sender
                    .and_then(|f| before.accounts.get(f))
                    .and_then(|a| a.sagas.get(t))
                    .and_then(|r| match r {
                        SagaRecord::Sender { amount, .. } => Some(*amount),
                        // This receiver's leg of the disbursement.
                        SagaRecord::Disbursement(d) => d
                            .legs
                            .iter()
                            .find(|(to, _)| to.as_str() == id.as_str())
                            .map(|(_, a)| *a),
                        _ => None,
                    });
                if held != Some(e.amount) {
                    return Err(format!(
                        "{id} entry {seq}: credit of {} for {t}, whose sender holds {held:?}",
                        e.amount
                    ));
                }
            }
            // A move between two shards of an account is asked by a shard, not a client: its
            // id names the shard and the journal entry that holds it, so it holds once.
            if let Some(t) = tid.filter(|t| t.starts_with(MOVE_PREFIX)) {
                let own = AccountId::new(id.clone())
                    .ok()
                    .filter(|a| a.is_shard())
                    .map(|a| move_id(&a, *seq));
                if e.kind == EntryKind::Hold && own.as_ref().map(|m| m.as_str()) != Some(t) {
                    return Err(format!(
                        "{id} entry {seq}: hold of move {t}, which is not this shard's move of this entry"
                    ));
                }
                continue;
            }
            let by_request = match e.kind {
                EntryKind::Deposit | EntryKind::Withdrawal => true,
                EntryKind::Hold => (!is_hold || first_of_hold) && !is_capture,
                _ => false,
            };
            if by_request {
                // Every movement is one some client asked for, on this account, of this amount.
                let mut candidates = e
                    .reference
                    .as_deref()
                    .into_iter()
                    .flat_map(|r| ops_with(ops, r));
                let asked = candidates.any(|o| {
                    o.account.as_str() == id.as_str()
                        && match (&o.kind, e.kind) {
                            (OpKind::Deposit(a), EntryKind::Deposit)
                            | (OpKind::Withdraw(a), EntryKind::Withdrawal)
                            | (OpKind::Transfer { amount: a, .. }, EntryKind::Hold) => {
                                *a == e.amount && !is_hold
                            }
                            (OpKind::Hold { amount: a, .. }, EntryKind::Hold) => {
                                *a == e.amount && is_hold
                            }
                            (OpKind::Disburse { legs }, EntryKind::Hold) => {
                                legs.iter().map(|(_, a)| a).sum::<u64>() == e.amount
                            }
                            _ => false,
                        }
                });
                if !asked {
                    return Err(format!(
                        "{id} entry {seq}: {kind} of {} (reference {:?}) that no request asked for",
                        e.amount, e.reference
                    ));
                }
            }
            let Some(reference) = e.reference.as_ref().filter(|_| by_request) else {
                continue;
            };
            if let Some((acct, first)) = self
                .by_reference
                .insert((reference.clone(), kind), (id.clone(), *seq))
            {
                return Err(format!(
                    "request {reference} applied twice: {kind} at {acct} entry {first} and {id} entry {seq}"
                ));
            }
            if let Some(op) = op_of(ops, reference) {
                if let Some(key) = &op.idem_key {
                    let k = (id.clone(), key.clone());
                    if let Some(other) = self.by_key.get(&k) {
                        if other != reference {
                            return Err(format!(
                                "{id}: key {key} applied for two different requests, {other} and {reference}"
                            ));
                        }
                    }
                    self.by_key.insert(k, reference.clone());
                }
            }
        }
        Ok(())
    }
}

/// True when `t` is a hold's id (its record is a hold's, stored or written by `commit`).
fn names_hold(before: &Ledger, commit: &Commit, t: &str) -> bool {
    before.holds.contains_key(t)
        || commit
            .rows
            .iter()
            .any(|r| matches!(r, Row::Saga(_, t2, Some(SagaRecord::Hold(_))) if t2 == t))
}

/// True when `t` is the transfer of a hold's capture (named by the hold's record).
fn names_capture(before: &Ledger, commit: &Commit, t: &str) -> bool {
    before.captures.contains_key(t)
        || commit.rows.iter().any(|r| {
            matches!(r, Row::Saga(_, _, Some(SagaRecord::Hold(h)))
                if h.capture.as_ref().is_some_and(|(c, _)| c.as_str() == t))
        })
}
