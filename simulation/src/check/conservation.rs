//! Conservation of money (DESIGN.md 6.1): per currency, the sum of balances equals deposits
//! minus withdrawals, counting money credited to a receiver whose sender has not yet captured
//! it as in flight (by the saga records). Checked at every commit, incrementally. Also at every
//! commit: the sum of holds equals the amounts of the sender sagas still holding and what
//! open holds (`POST /v1/holds`) still keep.
//!
//! At phase ends the audit (`check/audit.rs`) checks the same sum from the stored states and
//! journals (in flight: the credits of pending transfers not yet captured). What this checker
//! still checks there is what the audit does not see: the totals recomputed from the store
//! equal its running totals (so the per-commit rule, saga records included, holds of the
//! store as it is), holds equal the amounts of holding sagas, and at the final quiescent point
//! no saga record shows a credit not captured and nothing is held.

use super::Check;
use crate::ledger::{Commit, Ledger, Row};
use crate::workload::OpSpec;
use node::ledger::records::{
    DisbursementPhase, DisbursementRecord, LegRecord, LegState, SagaRecord, SenderStatus,
};
use protocol::api::EntryKind;
use protocol::saga::CreditOutcome;
use std::collections::BTreeMap;

/// Running totals per currency.
#[derive(Default)]
pub struct Conservation {
    totals: BTreeMap<String, Totals>,
}

#[derive(Default, Debug, Clone, PartialEq, Eq)]
struct Totals {
    balances: i128,
    held: i128,
    deposits_minus_withdrawals: i128,
    credited_not_captured: i128,
    holding_sagas: i128,
}

fn currency_of(before: &Ledger, commit: &Commit, id: &str) -> Option<String> {
    for r in &commit.rows {
        if let Row::State(a, Some(s)) = r {
            if a == id {
                return Some(s.currency.to_string());
            }
        }
    }
    before
        .accounts
        .get(id)?
        .state()
        .map(|s| s.currency.to_string())
}

fn totals_of(ledger: &Ledger) -> BTreeMap<String, Totals> {
    let mut t: BTreeMap<String, Totals> = BTreeMap::new();
    for a in ledger.accounts.values() {
        let Some(s) = a.state() else { continue };
        let e = t.entry(s.currency.to_string()).or_default();
        e.balances += s.balance as i128;
        e.held += s.held as i128;
        for (entry, _) in a.journal.values() {
            match entry.kind {
                EntryKind::Deposit => e.deposits_minus_withdrawals += entry.amount as i128,
                EntryKind::Withdrawal => e.deposits_minus_withdrawals -= entry.amount as i128,
                _ => {}
            }
        }
        for (tid, rec) in &a.sagas {
            match rec {
                SagaRecord::Sender {
                    amount,
                    status: SenderStatus::Holding,
                    ..
                } => e.holding_sagas += *amount as i128,
                SagaRecord::Hold(h) => e.holding_sagas += h.remaining() as i128,
                SagaRecord::Disbursement(d) if d.is_open() => e.holding_sagas += d.total() as i128,
                // A leg credited while its disbursement is not completed is in flight.
                SagaRecord::Leg(LegRecord {
                    from,
                    amount,
                    state: LegState::Credited,
                    ..
                }) => {
                    let completed = ledger.disbursements.get(tid).is_some_and(|(p, d)| {
                        p == from.as_str() && d.phase == DisbursementPhase::Completed
                    });
                    if !completed {
                        e.credited_not_captured += *amount as i128;
                    }
                }
                SagaRecord::Receiver {
                    from,
                    amount,
                    outcome: CreditOutcome::Applied,
                    ..
                } => {
                    let captured = ledger
                        .accounts
                        .get(from.as_str())
                        .and_then(|s| s.sagas.get(tid));
                    if !matches!(
                        captured,
                        Some(SagaRecord::Sender {
                            status: SenderStatus::Completed,
                            ..
                        })
                    ) {
                        e.credited_not_captured += *amount as i128;
                    }
                }
                _ => {}
            }
        }
    }
    t
}

fn verify(cur: &str, t: &Totals) -> Result<(), String> {
    if t.balances - t.credited_not_captured != t.deposits_minus_withdrawals {
        return Err(format!(
            "{cur}: balances {} - credited in flight {} != deposits - withdrawals {}",
            t.balances, t.credited_not_captured, t.deposits_minus_withdrawals
        ));
    }
    if t.held != t.holding_sagas {
        return Err(format!(
            "{cur}: holds {} != amounts of holding sagas {}",
            t.held, t.holding_sagas
        ));
    }
    Ok(())
}

impl Check for Conservation {
    fn name(&self) -> &'static str {
        "conservation (DESIGN.md 6.1)"
    }

    fn on_commit(
        &mut self,
        before: &Ledger,
        commit: &Commit,
        _ops: &[OpSpec],
    ) -> Result<(), String> {
        let mut touched = Vec::new();
        for row in &commit.rows {
            match row {
                Row::State(id, Some(s)) => {
                    let old = before.accounts.get(id).and_then(|a| a.state());
                    let t = self.totals.entry(s.currency.to_string()).or_default();
                    t.balances += s.balance as i128 - old.map_or(0, |o| o.balance as i128);
                    t.held += s.held as i128 - old.map_or(0, |o| o.held as i128);
                    touched.push(s.currency.to_string());
                }
                Row::Journal(id, seq, Some(e)) => {
                    let exists = before
                        .accounts
                        .get(id)
                        .is_some_and(|a| a.journal.contains_key(seq));
                    if exists {
                        continue; // a rewrite; the replay check reports it
                    }
                    let Some(cur) = currency_of(before, commit, id) else {
                        return Err(format!("journal entry of {id} without an account"));
                    };
                    let t = self.totals.entry(cur.clone()).or_default();
                    match e.kind {
                        EntryKind::Deposit => t.deposits_minus_withdrawals += e.amount as i128,
                        EntryKind::Withdrawal => t.deposits_minus_withdrawals -= e.amount as i128,
                        _ => {}
                    }
                    touched.push(cur);
                }
                Row::Saga(id, tid, Some(rec)) => {
                    let old = before.accounts.get(id).and_then(|a| a.sagas.get(tid));
                    let cur = currency_of(before, commit, id);
                    match rec {
                        SagaRecord::Receiver {
                            amount,
                            outcome: CreditOutcome::Applied,
                            ..
                        } => {
                            let was = matches!(
                                old,
                                Some(SagaRecord::Receiver {
                                    outcome: CreditOutcome::Applied,
                                    ..
                                })
                            );
                            if !was {
                                let cur =
                                    cur.ok_or_else(|| format!("credit applied to unopened {id}"))?;
                                self.totals
                                    .entry(cur.clone())
                                    .or_default()
                                    .credited_not_captured += *amount as i128;
                                touched.push(cur);
                            }
                        }
                        SagaRecord::Disbursement(d) => {
                            let cur =
                                cur.ok_or_else(|| format!("disbursement of unopened {id}"))?;
                            let was = match old {
                                Some(SagaRecord::Disbursement(o)) => Some(o),
                                _ => None,
                            };
                            let holding = |d: &DisbursementRecord| {
                                if d.is_open() {
                                    d.total() as i128
                                } else {
                                    0
                                }
                            };
                            let t = self.totals.entry(cur.clone()).or_default();
                            t.holding_sagas += holding(d) - was.map_or(0, holding);
                            touched.push(cur);
                            // Completed: every credited leg leaves flight (in each receiver's
                            // currency: the payer's, as the receivers reserved only in it).
                            let completed = d.phase == DisbursementPhase::Completed;
                            if completed
                                && was.is_none_or(|o| o.phase != DisbursementPhase::Completed)
                            {
                                let rcur = currency_of(before, commit, d.legs[0].0.as_str())
                                    .ok_or_else(|| {
                                        format!("{tid} credited to an unopened receiver")
                                    })?;
                                self.totals
                                    .entry(rcur.clone())
                                    .or_default()
                                    .credited_not_captured -= d.total() as i128;
                                touched.push(rcur);
                            }
                        }
                        SagaRecord::Leg(l) if l.state == LegState::Credited => {
                            let was = matches!(old, Some(SagaRecord::Leg(o)) if o.state == LegState::Credited);
                            if !was {
                                let cur =
                                    cur.ok_or_else(|| format!("leg credited to unopened {id}"))?;
                                self.totals
                                    .entry(cur.clone())
                                    .or_default()
                                    .credited_not_captured += l.amount as i128;
                                touched.push(cur);
                            }
                        }
                        SagaRecord::Hold(h) => {
                            let cur = cur.ok_or_else(|| format!("hold on unopened {id}"))?;
                            let was = match old {
                                Some(SagaRecord::Hold(o)) => o.remaining(),
                                _ => 0,
                            };
                            self.totals.entry(cur.clone()).or_default().holding_sagas +=
                                h.remaining() as i128 - was as i128;
                            touched.push(cur);
                        }
                        SagaRecord::Sender {
                            to, amount, status, ..
                        } => {
                            let cur = cur.ok_or_else(|| format!("sender saga on unopened {id}"))?;
                            let old_status = match old {
                                Some(SagaRecord::Sender { status, .. }) => Some(*status),
                                _ => None,
                            };
                            let t = self.totals.entry(cur.clone()).or_default();
                            let was_holding = old_status == Some(SenderStatus::Holding);
                            let is_holding = *status == SenderStatus::Holding;
                            t.holding_sagas +=
                                (is_holding as i128 - was_holding as i128) * *amount as i128;
                            if *status == SenderStatus::Completed
                                && old_status != Some(SenderStatus::Completed)
                            {
                                // The credit leaves flight when captured (if it was applied;
                                // the atomicity check reports a capture of an unapplied one).
                                let receiver = commit
                                    .rows
                                    .iter()
                                    .find_map(|r| match r {
                                        Row::Saga(a, t2, Some(rec))
                                            if a == to.as_str() && t2 == tid =>
                                        {
                                            Some(rec)
                                        }
                                        _ => None,
                                    })
                                    .or_else(|| {
                                        before
                                            .accounts
                                            .get(to.as_str())
                                            .and_then(|a| a.sagas.get(tid))
                                    });
                                if let Some(SagaRecord::Receiver {
                                    amount: credited,
                                    outcome: CreditOutcome::Applied,
                                    ..
                                }) = receiver
                                {
                                    // Out of flight in the receiver's currency, by the amount
                                    // it was credited (a mismatch shows at once).
                                    let rcur = currency_of(before, commit, to.as_str())
                                        .ok_or_else(|| {
                                            format!("{tid} credited to unopened {to}")
                                        })?;
                                    self.totals
                                        .entry(rcur.clone())
                                        .or_default()
                                        .credited_not_captured -= *credited as i128;
                                    touched.push(rcur);
                                }
                            }
                            touched.push(cur);
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        touched.sort();
        touched.dedup();
        for cur in touched {
            verify(&cur, &self.totals[&cur])?;
        }
        Ok(())
    }

    fn phase_end(
        &mut self,
        ledger: &Ledger,
        _ops: &[OpSpec],
        quiescent: bool,
    ) -> Result<(), String> {
        let fresh = totals_of(ledger);
        for (cur, t) in &fresh {
            if t.held != t.holding_sagas {
                return Err(format!(
                    "{cur}: holds {} != amounts of holding sagas {}",
                    t.held, t.holding_sagas
                ));
            }
            if quiescent && (t.credited_not_captured != 0 || t.held != 0) {
                return Err(format!(
                    "{cur}: at quiescence {} is credited but not captured and {} held",
                    t.credited_not_captured, t.held
                ));
            }
            let running = self.totals.get(cur).cloned().unwrap_or_default();
            if &running != t {
                return Err(format!(
                    "{cur}: running totals {running:?} != recomputed {t:?}"
                ));
            }
        }
        Ok(())
    }
}
