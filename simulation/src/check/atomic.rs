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
//!
//! Holds: at every commit a settled hold never changes, a hold's terms never change, a
//! capture under way leaves `capturing` only as its transfer settles (`captured` when it
//! completed, anything else when it failed), `captured` only with its capture's transfer
//! completed, `expired` never before its time, and a capture never above the hold. At phase ends, the entries under
//! a hold's id hold on its payer what it still holds (nothing once settled), an open hold is
//! marked open and in the index of holds by expiry and a settled one in neither, a captured
//! hold's transfer completed with the captured amount, and after the liveness phase no hold
//! is open.

use super::Check;
use crate::ledger::{Commit, Ledger, Row};
use crate::workload::OpSpec;
use node::ledger::records::{HoldRecord, SagaRecord, SenderStatus};
use protocol::api::{EntryKind, HoldStatus, TransferStatus};
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
        _ => None,
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
        _ => None,
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
                SagaRecord::Hold(h) => {
                    let old = match old {
                        Some(SagaRecord::Hold(o)) => Some(o),
                        _ => None,
                    };
                    hold_step(before, commit, id, tid, old, h)?;
                }
                SagaRecord::Disbursement(d) => {
                    super::atomic_disbursements::disbursement_step(before, commit, id, tid, old, d)?
                }
                SagaRecord::Leg(l) => {
                    super::atomic_disbursements::leg_step(before, commit, id, tid, old, l)?
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
                let Some(i) = leg_slot(e.kind) else { continue };
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
            let known = ledger.transfers.contains_key(*tid)
                || ledger.holds.contains_key(*tid)
                || ledger.disbursements.contains_key(*tid);
            if !known {
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
        holds_at_phase_end(ledger, quiescent)?;
        super::atomic_disbursements::disbursements_at_phase_end(ledger, quiescent)
    }
}

/// The checks of a hold's record as `commit` writes it (`old` is the record before). One
/// commit may take a hold through several steps (a batch that creates and captures it, or
/// sees a capture refused and then voids it), so what is checked is what any path allows.
fn hold_step(
    before: &Ledger,
    commit: &Commit,
    payer: &str,
    hid: &str,
    old: Option<&HoldRecord>,
    h: &HoldRecord,
) -> Result<(), String> {
    if let Some(o) = old {
        if !o.status.is_open() && o != h {
            return Err(format!(
                "hold {hid} of {payer} left its final status: {o:?} -> {h:?}"
            ));
        }
        if (&o.to, o.amount, o.expires_at) != (&h.to, h.amount, h.expires_at) {
            return Err(format!("hold {hid} changed its terms: {o:?} -> {h:?}"));
        }
    }
    if let Some((c, a)) = &h.capture {
        if *a > h.amount {
            return Err(format!(
                "hold {hid} of {} captures {a} through {c}",
                h.amount
            ));
        }
    }
    let status_of = |c: &str| sender_status(before, commit, payer, c);
    // The capture that was under way settled in this commit: completed only into
    // `captured`, failed only into a hold that is no longer captured by it.
    if let Some(HoldRecord {
        status: HoldStatus::Capturing,
        capture: Some((was, _)),
        ..
    }) = old
    {
        let same = h.capture.as_ref().is_some_and(|(c, _)| c == was);
        let settled = status_of(was.as_str());
        let ok = match settled {
            Some(SenderStatus::Holding) => same && h.status == HoldStatus::Capturing,
            Some(SenderStatus::Completed) => same && h.status == HoldStatus::Captured,
            Some(SenderStatus::Failed(_)) => {
                !same
                    || matches!(
                        h.status,
                        HoldStatus::Held | HoldStatus::Voided | HoldStatus::Expired
                    )
            }
            None => false,
        };
        if !ok {
            return Err(format!(
                "hold {hid} was capturing through {was}, which is {settled:?}; the hold is now {:?} through {:?}",
                h.status, h.capture
            ));
        }
    }
    if h.status == HoldStatus::Captured {
        let c = h.capture.as_ref().map(|c| c.0.as_str()).unwrap_or("");
        if status_of(c) != Some(SenderStatus::Completed) {
            return Err(format!(
                "hold {hid} captured while its capture {c} is {:?}",
                status_of(c)
            ));
        }
    }
    if h.status == HoldStatus::Expired && crate::sim::EPOCH_MS + commit.at_ms < h.expires_at {
        return Err(format!(
            "hold {hid} expired at {} ms, before its time {}",
            crate::sim::EPOCH_MS + commit.at_ms,
            h.expires_at
        ));
    }
    Ok(())
}

/// The phase-end checks of every hold (see the module's notes).
fn holds_at_phase_end(ledger: &Ledger, quiescent: bool) -> Result<(), String> {
    // Per hold: the sums of its hold and release entries, and whether anything else names it.
    let mut legs: BTreeMap<&str, (&str, u64, u64, bool)> = BTreeMap::new();
    for (id, a) in &ledger.accounts {
        for (e, _) in a.journal.values() {
            let Some(t) = e.transfer_id.as_ref().map(|t| t.as_str()) else {
                continue;
            };
            if !ledger.holds.contains_key(t) {
                continue;
            }
            let l = legs.entry(t).or_insert((id.as_str(), 0, 0, false));
            match e.kind {
                EntryKind::Hold if l.0 == id => l.1 += e.amount,
                EntryKind::Release if l.0 == id => l.2 += e.amount,
                _ => l.3 = true,
            }
        }
    }
    for (hid, (payer, h)) in &ledger.holds {
        let (on, held, released, other) = legs.get(hid.as_str()).copied().unwrap_or_default();
        if other || on != payer {
            return Err(format!(
                "hold {hid} of {payer} has entries that are not its payer's holds and releases"
            ));
        }
        let keeps = h.remaining();
        if held.checked_sub(released) != Some(keeps) {
            return Err(format!(
                "hold {hid} ({:?}) of {payer}: entries hold {held} and release {released}, but it keeps {keeps}",
                h.status
            ));
        }
        let open = h.status.is_open();
        let indexed = ledger.holds_due.get(&(h.expires_at, hid.clone()));
        open_where_it_should(ledger, payer, hid, open, indexed, quiescent)
            .map_err(|why| format!("hold {hid} ({:?}) of {payer}: {why}", h.status))?;
        if h.status == HoldStatus::Captured {
            let (c, a) = h
                .capture
                .as_ref()
                .expect("a captured hold names its capture");
            let t = ledger.transfers.get(c.as_str());
            if t.is_none_or(|t| t.status != TransferStatus::Completed || t.amount != *a) {
                return Err(format!(
                    "hold {hid} captured {a} through {c}, whose transfer is {t:?}"
                ));
            }
        }
    }
    for ((_, hid), payer) in &ledger.holds_due {
        if !ledger
            .holds
            .get(hid)
            .is_some_and(|(p, h)| p == payer && h.status.is_open())
        {
            return Err(format!("the index of holds by expiry names {hid} of {payer}, which is not an open hold of it"));
        }
    }
    Ok(())
}

/// The marks of something `payer` keeps open (a hold, a disbursement): marked open and in its
/// index (`indexed`: the payer the index names) exactly while `open`, and not open at all
/// after the liveness phase.
pub(super) fn open_where_it_should(
    ledger: &Ledger,
    payer: &str,
    id: &str,
    open: bool,
    indexed: Option<&String>,
    quiescent: bool,
) -> Result<(), String> {
    let marked = ledger
        .accounts
        .get(payer)
        .is_some_and(|a| a.open.contains(id));
    if marked != open
        || (indexed.map(String::as_str) == Some(payer)) != open
        || (!open && indexed.is_some())
    {
        return Err(format!("marked open {marked}, indexed as {indexed:?}"));
    }
    if quiescent && open {
        return Err("still open after every fault healed".into());
    }
    Ok(())
}

/// The slot of a journal entry's kind among a saga's legs: hold, transfer_out, release,
/// transfer_in (`None` for a deposit or withdrawal).
pub(super) fn leg_slot(kind: EntryKind) -> Option<usize> {
    match kind {
        EntryKind::Hold => Some(0),
        EntryKind::TransferOut => Some(1),
        EntryKind::Release => Some(2),
        EntryKind::TransferIn => Some(3),
        EntryKind::Deposit | EntryKind::Withdrawal => None,
    }
}
