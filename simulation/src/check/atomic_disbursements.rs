//! Atomic disbursements (DESIGN.md 6.3 for Try-Confirm/Cancel): every disbursement ends with
//! all its legs credited or none, and none stays pending once faults heal.
//!
//! At every commit: a settled disbursement or a leg's final state never changes, nor does a
//! disbursement's legs; the payer decides `confirming` only when every receiver reserved its
//! leg, `completed` only when every leg is credited, `failed` only when every receiver
//! refused or dropped its leg, and records a leg as having answered a phase only when it did;
//! a receiver reserves a leg only while its payer tries or
//! cancels, credits it only once its payer confirms, and drops a reserved one only once its
//! payer cancels. At phase ends: the journal entries under
//! a disbursement's id are a hold of the total on the payer, then its debit and one credit of
//! each leg (completed), or its release and no credit (failed), or, while pending, the hold
//! and no more credits than legs; the payer marks it open and indexes it exactly while it is
//! pending, a receiver marks a leg open exactly while it is reserved; after the liveness phase
//! nothing is pending or reserved.

use crate::ledger::{Commit, Ledger, Row};
use node::ledger::records::{
    DisbursementPhase, DisbursementRecord, LegRecord, LegState, SagaRecord,
};
use std::collections::BTreeMap;

/// `account`'s record under `id` as `commit` leaves it.
fn record_now<'a>(
    before: &'a Ledger,
    commit: &'a Commit,
    account: &str,
    id: &str,
) -> Option<&'a SagaRecord> {
    commit
        .rows
        .iter()
        .rev()
        .find_map(|r| match r {
            Row::Saga(a, t, rec) if a == account && t == id => Some(rec.as_ref()),
            _ => None,
        })
        .unwrap_or_else(|| before.accounts.get(account)?.sagas.get(id))
}

/// The state of leg `to` of `id` at its receiver as `commit` leaves it.
fn leg_now(before: &Ledger, commit: &Commit, to: &str, id: &str) -> Option<LegState> {
    match record_now(before, commit, to, id)? {
        SagaRecord::Leg(l) => Some(l.state),
        _ => None,
    }
}

/// The checks of a payer's record as `commit` writes it.
pub(super) fn disbursement_step(
    before: &Ledger,
    commit: &Commit,
    payer: &str,
    id: &str,
    old: Option<&SagaRecord>,
    d: &DisbursementRecord,
) -> Result<(), String> {
    if let Some(SagaRecord::Disbursement(o)) = old {
        if !o.is_open() && o != d {
            return Err(format!(
                "disbursement {id} of {payer} left its final phase: {o:?} -> {d:?}"
            ));
        }
        if o.legs != d.legs || o.created_at != d.created_at {
            return Err(format!(
                "disbursement {id} changed its legs: {o:?} -> {d:?}"
            ));
        }
    }
    let states: Vec<Option<LegState>> = d
        .legs
        .iter()
        .map(|(to, _)| leg_now(before, commit, to.as_str(), id))
        .collect();
    let all = |ok: &dyn Fn(Option<LegState>) -> bool| states.iter().all(|s| ok(*s));
    let ok = match d.phase {
        DisbursementPhase::Trying | DisbursementPhase::Cancelling { .. } => true,
        DisbursementPhase::Confirming => {
            all(&|s| matches!(s, Some(LegState::Reserved | LegState::Credited)))
        }
        DisbursementPhase::Completed => all(&|s| s == Some(LegState::Credited)),
        DisbursementPhase::Failed { .. } => {
            all(&|s| matches!(s, Some(LegState::Refused(_) | LegState::Cancelled)))
        }
    };
    if !ok {
        return Err(format!(
            "disbursement {id} of {payer} is {:?} while its legs are {states:?}",
            d.phase
        ));
    }
    // A leg the payer records as having answered its phase is where that answer says.
    for &i in &d.answered {
        let s = states.get(i as usize).copied().flatten();
        let ok = match d.phase {
            DisbursementPhase::Trying => s == Some(LegState::Reserved),
            DisbursementPhase::Confirming => s == Some(LegState::Credited),
            DisbursementPhase::Cancelling { .. } => {
                matches!(s, Some(LegState::Refused(_) | LegState::Cancelled))
            }
            _ => true,
        };
        if !ok {
            return Err(format!(
                "disbursement {id} of {payer} ({:?}) records leg {i} as answered, but it is {s:?}",
                d.phase
            ));
        }
    }
    Ok(())
}

/// The checks of a receiver's leg record as `commit` writes it.
pub(super) fn leg_step(
    before: &Ledger,
    commit: &Commit,
    receiver: &str,
    id: &str,
    old: Option<&SagaRecord>,
    l: &LegRecord,
) -> Result<(), String> {
    let was = match old {
        Some(SagaRecord::Leg(o)) => Some(o.state),
        _ => None,
    };
    let allowed = matches!(
        (was, l.state),
        (None, _)
            | (
                Some(LegState::Reserved),
                LegState::Credited | LegState::Cancelled
            )
    ) || was == Some(l.state);
    if !allowed {
        return Err(format!(
            "leg {id} at {receiver} went from {was:?} to {:?}",
            l.state
        ));
    }
    if was == Some(l.state) {
        return Ok(());
    }
    let phase = match record_now(before, commit, l.from.as_str(), id) {
        Some(SagaRecord::Disbursement(d)) => Some(d.phase),
        _ => None,
    };
    let ok = match l.state {
        // A try reserves while the payer asks, or late, after it decided to cancel (its
        // cancel then drops the leg).
        LegState::Reserved => matches!(
            phase,
            Some(DisbursementPhase::Trying | DisbursementPhase::Cancelling { .. })
        ),
        LegState::Credited => matches!(
            phase,
            Some(DisbursementPhase::Confirming | DisbursementPhase::Completed)
        ),
        LegState::Cancelled if was == Some(LegState::Reserved) => matches!(
            phase,
            Some(DisbursementPhase::Cancelling { .. } | DisbursementPhase::Failed { .. })
        ),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "leg {id} at {receiver} became {:?} while its payer is {phase:?}",
            l.state
        ))
    }
}

/// The phase-end checks of every disbursement (see the module's notes).
pub(super) fn disbursements_at_phase_end(ledger: &Ledger, quiescent: bool) -> Result<(), String> {
    // Per disbursement and account: (holds, debits, releases, credits) as (count, sum).
    type Legs = [(u32, u64); 4];
    let mut seen: BTreeMap<(&str, &str), Legs> = BTreeMap::new();
    for (acct, a) in &ledger.accounts {
        for (e, _) in a.journal.values() {
            let Some(t) = e.transfer_id.as_ref().map(|t| t.as_str()) else {
                continue;
            };
            if !ledger.disbursements.contains_key(t) {
                continue;
            }
            let Some(i) = super::atomic::leg_slot(e.kind) else {
                continue;
            };
            let l = &mut seen.entry((t, acct.as_str())).or_default()[i];
            l.0 += 1;
            l.1 += e.amount;
        }
    }
    for (id, (payer, d)) in &ledger.disbursements {
        let legs_of = |acct: &str| seen.get(&(id.as_str(), acct)).copied().unwrap_or_default();
        let total = d.total();
        let paid = legs_of(payer);
        let credited: Vec<(u32, u64)> = d
            .legs
            .iter()
            .map(|(to, _)| legs_of(to.as_str())[3])
            .collect();
        let want_paid = match d.phase {
            DisbursementPhase::Completed => [(1, total), (1, total), (0, 0), (0, 0)],
            DisbursementPhase::Failed { .. } => [(1, total), (0, 0), (1, total), (0, 0)],
            _ => [(1, total), (0, 0), (0, 0), (0, 0)],
        };
        let credits_ok = d
            .legs
            .iter()
            .zip(&credited)
            .all(|((_, a), c)| match d.phase {
                DisbursementPhase::Completed => *c == (1, *a),
                DisbursementPhase::Failed { .. } => *c == (0, 0),
                DisbursementPhase::Confirming => *c == (1, *a) || *c == (0, 0),
                _ => *c == (0, 0),
            });
        if paid != want_paid || !credits_ok {
            return Err(format!(
                "disbursement {id} ({:?}) of {payer}: the payer's entries are {paid:?} (hold, debit, release, credit), the legs' credits {credited:?}",
                d.phase
            ));
        }
        let indexed = ledger.disbursing.get(id);
        super::atomic::open_where_it_should(ledger, payer, id, d.is_open(), indexed, quiescent)
            .map_err(|why| format!("disbursement {id} ({:?}) of {payer}: {why}", d.phase))?;
    }
    for (acct, a) in &ledger.accounts {
        for (id, rec) in &a.sagas {
            let SagaRecord::Leg(l) = rec else { continue };
            let reserved = l.state == LegState::Reserved;
            if a.open.contains(id) != reserved {
                return Err(format!(
                    "leg {id} at {acct} is {:?} but marked open {}",
                    l.state, !reserved
                ));
            }
            if quiescent && reserved {
                return Err(format!(
                    "leg {id} at {acct} is still reserved after every fault healed"
                ));
            }
        }
    }
    for (id, payer) in &ledger.disbursing {
        if !ledger
            .disbursements
            .get(id)
            .is_some_and(|(p, d)| p == payer && d.is_open())
        {
            return Err(format!(
                "the index of disbursements names {id} of {payer}, which is not pending there"
            ));
        }
    }
    Ok(())
}
