//! Atomic transfers (DESIGN.md 6.3): a transfer ends `completed` (debited once, credited once)
//! or `failed` (neither), and none stays pending once faults heal.
//!
//! At every commit: a receiver never changes its recorded decision; a sender never leaves a
//! final status; a sender captures only a credit the receiver applied, and fails only one it
//! did not. At phase ends, every transfer's journal entries agree with its summary's status and
//! every transfer with entries has a summary; after the liveness phase, no account still marks
//! a saga open. The audit (`check/audit.rs`) checks at phase ends that each transfer's legs are
//! a completed or a failed transfer with matching amounts and accounts, and, after the
//! liveness phase, that the pending index is empty.

use super::Check;
use crate::ledger::{Commit, Ledger, Row};
use crate::workload::OpSpec;
use node::ledger::records::{SagaRecord, SenderStatus};
use protocol::api::{EntryKind, TransferStatus};
use protocol::saga::CreditOutcome;
use std::collections::BTreeMap;

/// The checker (stateless: it reads the ledger).
pub struct AtomicTransfers;

fn receiver_outcome(
    before: &Ledger,
    commit: &Commit,
    to: &str,
    tid: &str,
) -> Option<CreditOutcome> {
    for r in &commit.rows {
        if let Row::Saga(a, t, Some(SagaRecord::Receiver { outcome, .. })) = r {
            if a == to && t == tid {
                return Some(*outcome);
            }
        }
    }
    match before.accounts.get(to)?.sagas.get(tid)? {
        SagaRecord::Receiver { outcome, .. } => Some(*outcome),
        SagaRecord::Sender { .. } => None,
    }
}

fn sender_status(before: &Ledger, commit: &Commit, from: &str, tid: &str) -> Option<SenderStatus> {
    for r in &commit.rows {
        if let Row::Saga(a, t, Some(SagaRecord::Sender { status, .. })) = r {
            if a == from && t == tid {
                return Some(*status);
            }
        }
    }
    match before.accounts.get(from)?.sagas.get(tid)? {
        SagaRecord::Sender { status, .. } => Some(*status),
        SagaRecord::Receiver { .. } => None,
    }
}

impl Check for AtomicTransfers {
    fn name(&self) -> &'static str {
        "atomic transfers (DESIGN.md 6.3)"
    }

    fn on_commit(
        &mut self,
        before: &Ledger,
        commit: &Commit,
        _ops: &[OpSpec],
    ) -> Result<(), String> {
        for row in &commit.rows {
            let Row::Saga(id, tid, Some(rec)) = row else {
                continue;
            };
            let old = before.accounts.get(id).and_then(|a| a.sagas.get(tid));
            match rec {
                SagaRecord::Receiver { from, outcome, .. } => {
                    if let Some(SagaRecord::Receiver { outcome: was, .. }) = old {
                        if was != outcome {
                            return Err(format!(
                                "{tid}: receiver {id} changed its decision {was:?} -> {outcome:?}"
                            ));
                        }
                    }
                    if *outcome == CreditOutcome::Applied {
                        if let Some(SenderStatus::Failed(code)) =
                            sender_status(before, commit, from.as_str(), tid)
                        {
                            return Err(format!(
                                "{tid}: credited to {id} after the sender failed it ({code})"
                            ));
                        }
                    }
                }
                SagaRecord::Sender { to, status, .. } => {
                    if let Some(SagaRecord::Sender { status: was, .. }) = old {
                        if *was != SenderStatus::Holding && was != status {
                            return Err(format!(
                                "{tid}: sender {id} left final status {was:?} for {status:?}"
                            ));
                        }
                    }
                    let decided = receiver_outcome(before, commit, to.as_str(), tid);
                    match status {
                        SenderStatus::Completed if decided != Some(CreditOutcome::Applied) => {
                            return Err(format!(
                                "{tid}: sender {id} captured but receiver {to} decided {decided:?}"
                            ));
                        }
                        SenderStatus::Failed(code) if decided == Some(CreditOutcome::Applied) => {
                            return Err(format!("{tid}: sender {id} released ({code}) but receiver {to} applied the credit"));
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn phase_end(
        &mut self,
        ledger: &Ledger,
        _ops: &[OpSpec],
        quiescent: bool,
    ) -> Result<(), String> {
        // Journal entries per transfer: (hold, out, release, in).
        let mut seen: BTreeMap<&str, [u32; 4]> = BTreeMap::new();
        for a in ledger.accounts.values() {
            for (e, _) in a.journal.values() {
                let Some(t) = &e.transfer_id else { continue };
                let i = match e.kind {
                    EntryKind::Hold => 0,
                    EntryKind::TransferOut => 1,
                    EntryKind::Release => 2,
                    EntryKind::TransferIn => 3,
                    _ => continue,
                };
                seen.entry(t.as_str()).or_default()[i] += 1;
            }
        }
        for (tid, view) in &ledger.transfers {
            let [hold, out, release, credit] = seen.get(tid.as_str()).copied().unwrap_or_default();
            let ok = match view.status {
                TransferStatus::Completed => hold == 1 && out == 1 && release == 0 && credit == 1,
                TransferStatus::Failed => hold == 1 && out == 0 && release == 1 && credit == 0,
                TransferStatus::Pending => {
                    !quiescent && hold == 1 && out == 0 && release == 0 && credit <= 1
                }
            };
            if !ok {
                return Err(format!(
                    "{tid} is {:?} with hold {hold}, out {out}, release {release}, in {credit}",
                    view.status
                ));
            }
        }
        for tid in seen.keys() {
            if !ledger.transfers.contains_key(*tid) {
                return Err(format!("journal entries for {tid}, which has no summary"));
            }
        }
        if quiescent {
            for (id, a) in &ledger.accounts {
                if let Some(t) = a.open.iter().next() {
                    return Err(format!("{id} still marks {t} open"));
                }
            }
        }
        Ok(())
    }
}
