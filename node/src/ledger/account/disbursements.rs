//! Disbursements (one payer, many receivers, all or nothing) as Try-Confirm/Cancel: both sides.
//!
//! The payer coordinates. It holds the total (journal `hold` under the disbursement's id) and
//! records the disbursement `trying`, then asks every receiver to reserve its leg (`Try`).
//! A receiver decides once per disbursement, as for a credit: it reserves the leg (counted
//! against its headroom, not in its balance: nobody can spend it) or refuses it (frozen,
//! closed, unknown, other currency, overflow), records that, and answers. When every leg is
//! reserved the payer records `confirming` and tells every receiver to credit its leg
//! (`Confirm`: journal `transfer_in`); once all confirmed, it debits the total (`transfer_out`)
//! and the disbursement is `completed`. The first refusal, or no answer from a leg after the
//! credit timeout and its resends, makes it record `cancelling` with that leg and reason and
//! tell every receiver to drop its leg (`Cancel`); once all answered, it releases the total
//! (`release`) and the disbursement is `failed`. Receivers are credited before the payer is
//! debited, as in a transfer: the credited legs of a disbursement still confirming are money
//! in flight, counted once.
//!
//! A `Cancel` that reaches a receiver before its `Try` leaves a mark (the leg recorded
//! `cancelled`), so the late `Try` is refused. `Confirm` and `Cancel` are resent with backoff
//! until every receiver answered, as `Abort` is for a transfer. The payer's record holds the
//! phase status of every leg: the phase, and which legs answered it (rewritten with each
//! answer), so a reload asks only the others again (a receiver answers a repeated message
//! with its recorded state). A receiver drives nothing and keeps no timer.

use super::{remember, AccountCore, Effect, Reads, Reply, Step, Write, CREDIT_RESENDS_MAX};
use crate::ledger::planted::{planted, Bug};
use crate::ledger::records::{
    DisbursementPhase, DisbursementRecord, LegRecord, LegState, SagaRecord, StoredReply,
};
use protocol::api::{EntryKind, DISBURSEMENT_LEGS_MAX};
use protocol::saga::{LegOutcome, SagaMsg};
use protocol::{AccountId, Amount, ApiError, ErrorCode, TransferId, AMOUNT_MAX};
use std::collections::BTreeSet;

/// Most legs one account may have reserved for others' disbursements at once; past it a
/// `Try` is left unanswered, as if the account were slow (the payer asks again, then cancels
/// the disbursement with `transfer_aborted`; nothing moved). A reservation lasts
/// from its try to its confirm or cancel, a few round trips. With the payer's own open
/// marks (two per hold being captured) an activation reads at most 9,216 marks, within one
/// range read.
pub const LEGS_RESERVED_MAX: usize = 1_024;

/// Most legs of unsettled disbursements one account may pay at once; past it a new
/// disbursement is refused as `unavailable` (nothing written, safe to retry). It bounds the
/// messages one timer tick or activation sends, as `OPEN_SAGAS_MAX` does for transfers.
pub const OPEN_LEGS_MAX: usize = 4_096;

/// A disbursement this account pays, not settled: its record (with which legs answered the
/// current phase) and, in memory, how often its timer fired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenDisbursement {
    /// The stored record (`trying`, `confirming` or `cancelling`).
    pub record: DisbursementRecord,
    /// Times its timer fired in this phase and activation.
    pub timeouts: u32,
}

impl OpenDisbursement {
    /// A disbursement loaded from its record.
    pub fn loaded(record: DisbursementRecord) -> Self {
        OpenDisbursement {
            record,
            timeouts: 0,
        }
    }
}

impl AccountCore {
    /// Starts a disbursement: holds the total and asks every receiver to reserve its leg.
    pub(super) fn disburse(
        &mut self,
        id: TransferId,
        legs: Vec<(AccountId, Amount)>,
        reference: Option<String>,
        idem: Option<(String, String)>,
        now_ms: u64,
        step: &mut Step,
    ) -> Result<Reply, ApiError> {
        let r = self.movable()?;
        let invalid = |m: String| ApiError::new(ErrorCode::InvalidRequest, m);
        if legs.is_empty() || legs.len() > DISBURSEMENT_LEGS_MAX {
            return Err(invalid(format!(
                "a disbursement has 1 to {DISBURSEMENT_LEGS_MAX} legs, got {}",
                legs.len()
            )));
        }
        let receivers: BTreeSet<&AccountId> = legs.iter().map(|(to, _)| to).collect();
        let publics: BTreeSet<AccountId> = legs.iter().map(|(to, _)| to.public()).collect();
        if receivers.len() != legs.len()
            || publics.len() != legs.len()
            || publics.contains(&self.id.public())
        {
            return Err(invalid(
                "the legs' receivers must be distinct and not the paying account".into(),
            ));
        }
        let total = legs
            .iter()
            .try_fold(0u64, |t, (_, a)| t.checked_add(a.get()))
            .filter(|t| *t <= AMOUNT_MAX)
            .ok_or_else(|| invalid(format!("the legs add up to more than {AMOUNT_MAX}")))?;
        if r.available() < total {
            return Err(ErrorCode::InsufficientFunds.into());
        }
        self.room_for_one()?;
        let open_legs: usize = self.disbs.values().map(|d| d.record.legs.len()).sum();
        if open_legs + legs.len() > OPEN_LEGS_MAX {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "account {} has {open_legs} legs of disbursements in flight (at most {OPEN_LEGS_MAX}); retry shortly",
                    self.id
                ),
            ));
        }
        assert!(!self.knows(&id), "disbursement id {id} reused");
        self.record.as_mut().expect("movable").held += total;
        self.journal(
            EntryKind::Hold,
            total,
            Some(id.clone()),
            reference.clone(),
            now_ms,
            step,
        );
        let record = DisbursementRecord {
            id: id.clone(),
            legs: legs.into_iter().map(|(to, a)| (to, a.get())).collect(),
            phase: DisbursementPhase::Trying,
            answered: BTreeSet::new(),
            reference,
            created_at: now_ms,
        };
        let view = record.view(&self.id);
        step.writes
            .push(Write::Saga(SagaRecord::Disbursement(record.clone())));
        step.writes.push(Write::OpenMark(id.clone(), true));
        step.writes.push(Write::Disbursing(id.clone(), true));
        remember(step, idem, StoredReply::DisbursementId(id.clone()));
        self.disbs
            .insert(id.clone(), OpenDisbursement::loaded(record));
        step.effects.extend(self.disbursement_messages(&id));
        step.effects.push(Effect::Timer {
            transfer_id: id,
            after_ms: self.timing.credit_timeout_ms,
        });
        Ok(Reply::Disbursement(Box::new(view)))
    }

    /// The messages of the current phase to every leg that has not answered it.
    pub(super) fn disbursement_messages(&self, id: &TransferId) -> Vec<Effect> {
        let d = &self.disbs[id];
        let rec = &d.record;
        let currency = self.record.as_ref().expect("payer exists").currency;
        rec.legs
            .iter()
            .enumerate()
            .filter(|(i, _)| !rec.answered.contains(&(*i as u32)))
            .map(|(_, (to, amount))| {
                let (disbursement_id, from, to) = (id.clone(), self.id.clone(), to.clone());
                Effect::Send(match rec.phase {
                    DisbursementPhase::Trying => SagaMsg::Try {
                        disbursement_id,
                        from,
                        to,
                        amount: Amount::new(*amount).expect("legs are valid amounts"),
                        currency,
                        created_at: rec.created_at,
                    },
                    DisbursementPhase::Confirming => SagaMsg::Confirm {
                        disbursement_id,
                        from,
                        to,
                        reference: rec.reference.clone(),
                    },
                    _ => SagaMsg::Cancel {
                        disbursement_id,
                        from,
                        to,
                        created_at: rec.created_at,
                    },
                })
            })
            .collect()
    }

    /// Payer: a receiver answered. Moves the disbursement on when a phase is decided or done.
    pub(super) fn leg_outcome(
        &mut self,
        id: TransferId,
        to: AccountId,
        outcome: LegOutcome,
        now_ms: u64,
        step: &mut Step,
    ) {
        let Some(d) = self.disbs.get_mut(&id) else {
            return; // settled: a repeated or late answer
        };
        let Some(leg) = d.record.legs.iter().position(|(t, _)| *t == to) else {
            return; // not a receiver of it (a bug elsewhere; nothing to act on)
        };
        let leg = leg as u32;
        match (d.record.phase, outcome) {
            (DisbursementPhase::Trying, LegOutcome::Reserved) => {
                if !d.record.answered.insert(leg) {
                    return; // a repeated answer
                }
                if d.record.answered.len() == d.record.legs.len() {
                    self.decide(&id, DisbursementPhase::Confirming, step);
                } else {
                    step.writes
                        .push(Write::Saga(SagaRecord::Disbursement(d.record.clone())));
                }
            }
            (DisbursementPhase::Trying, LegOutcome::Refused(reason)) => {
                self.decide(&id, DisbursementPhase::Cancelling { leg, reason }, step);
                // Its receiver recorded the refusal: nothing to cancel there.
                self.answered(&id, leg, now_ms, step);
            }
            (DisbursementPhase::Confirming, LegOutcome::Confirmed)
            | (
                DisbursementPhase::Cancelling { .. },
                LegOutcome::Cancelled | LegOutcome::Refused(_),
            ) => self.answered(&id, leg, now_ms, step),
            // A late answer to an earlier phase: the current phase's messages are resent.
            _ => {}
        }
    }

    /// Records a decision (confirm or cancel) and sends its messages to every leg.
    fn decide(&mut self, id: &TransferId, phase: DisbursementPhase, step: &mut Step) {
        let d = self.disbs.get_mut(id).expect("open");
        d.record.phase = phase;
        d.record.answered.clear();
        d.timeouts = 0;
        step.writes
            .push(Write::Saga(SagaRecord::Disbursement(d.record.clone())));
        step.effects.extend(self.disbursement_messages(id));
        step.effects.push(Effect::Timer {
            transfer_id: id.clone(),
            after_ms: self.timing.credit_timeout_ms,
        });
    }

    /// Leg `leg` answered the current decision; the last answer settles the disbursement.
    fn answered(&mut self, id: &TransferId, leg: u32, now_ms: u64, step: &mut Step) {
        let d = self.disbs.get_mut(id).expect("open");
        if !d.record.answered.insert(leg) {
            return; // a repeated answer
        }
        if d.record.answered.len() < d.record.legs.len() {
            step.writes
                .push(Write::Saga(SagaRecord::Disbursement(d.record.clone())));
            return;
        }
        let mut d = self.disbs.remove(id).expect("open");
        let total = d.record.total();
        let reference = d.record.reference.clone();
        let r = self.record.as_mut().expect("payer exists");
        r.held -= total;
        let kind = match d.record.phase {
            DisbursementPhase::Confirming => {
                r.balance -= total;
                d.record.phase = DisbursementPhase::Completed;
                EntryKind::TransferOut
            }
            DisbursementPhase::Cancelling { leg, reason } => {
                d.record.phase = DisbursementPhase::Failed { leg, reason };
                EntryKind::Release
            }
            p => panic!("disbursement {id} settles from phase {p:?}"),
        };
        self.journal(kind, total, Some(id.clone()), reference, now_ms, step);
        step.writes.push(Write::OpenMark(id.clone(), false));
        step.writes.push(Write::Disbursing(id.clone(), false));
        step.effects
            .push(Effect::Settled(d.record.summary(&self.id)));
        step.writes
            .push(Write::Saga(SagaRecord::Disbursement(d.record)));
    }

    /// Payer: no answer in time. While trying, asks again ([`CREDIT_RESENDS_MAX`] times), then
    /// cancels for the first leg that never answered (`transfer_aborted`); once decided,
    /// resends the decision with backoff until every receiver answered.
    pub(super) fn disbursement_timer(&mut self, id: TransferId, _now_ms: u64, step: &mut Step) {
        let d = self.disbs.get_mut(&id).expect("checked open");
        d.timeouts = d.timeouts.saturating_add(1);
        let (phase, timeouts) = (d.record.phase, d.timeouts);
        if phase == DisbursementPhase::Trying && timeouts > CREDIT_RESENDS_MAX {
            let silent = (0..d.record.legs.len() as u32)
                .find(|i| !d.record.answered.contains(i))
                .expect("a disbursement still trying waits for some leg");
            let reason = ErrorCode::TransferAborted;
            self.decide(
                &id,
                DisbursementPhase::Cancelling {
                    leg: silent,
                    reason,
                },
                step,
            );
            return;
        }
        let shift = timeouts.saturating_sub(CREDIT_RESENDS_MAX).min(16);
        let after_ms = match phase {
            DisbursementPhase::Trying => self.timing.credit_timeout_ms,
            _ => self
                .timing
                .credit_timeout_ms
                .saturating_mul(1 << shift)
                .min(self.timing.abort_backoff_max_ms)
                .max(self.timing.credit_timeout_ms),
        };
        step.effects.extend(self.disbursement_messages(&id));
        step.effects.push(Effect::Timer {
            transfer_id: id,
            after_ms,
        });
    }

    /// Receiver: a `Try`, `Confirm` or `Cancel` of one leg. Decides a try once, credits a
    /// reserved leg once, drops a leg (or marks one never tried), and answers its state.
    pub(super) fn leg_message(&mut self, msg: SagaMsg, reads: Reads, now_ms: u64, step: &mut Step) {
        let recorded = match reads.saga {
            Some(SagaRecord::Leg(l)) => Some(l),
            Some(other) => panic!("{}: a leg found another record: {other:?}", self.id),
            None => None,
        };
        // Memory follows what is stored: a transaction retried after its first attempt landed
        // (reported unknown) finds the leg recorded already, and must not leave the
        // reservations in memory behind it (a try or a cancel changes no account record, so
        // the retry cannot tell it landed).
        if let Some(l) = recorded
            .as_ref()
            .filter(|_| !planted(Bug::LegReplayKeepsMemory))
        {
            match l.state {
                LegState::Reserved => self.reserved.insert(l.disbursement_id.clone(), l.amount),
                _ => self.reserved.remove(&l.disbursement_id),
            };
        }
        let (id, from, state) = match msg {
            SagaMsg::Try {
                disbursement_id,
                from,
                amount,
                currency,
                ..
            } => {
                let state = match recorded {
                    Some(l)
                        if !(planted(Bug::TryAfterCancel) && l.state == LegState::Cancelled) =>
                    {
                        l.state
                    }
                    _ if self.reserved.len() >= LEGS_RESERVED_MAX => {
                        // Busy: no decision yet and no answer. The payer asks again, and
                        // cancels (`transfer_aborted`) if this account stays this busy.
                        return;
                    }
                    _ => {
                        let decision = self.movable().and_then(|r| {
                            let reserved: u64 = self.reserved.values().sum();
                            if r.currency != currency {
                                Err(ErrorCode::CurrencyMismatch)
                            } else if r.balance + reserved + amount.get() > AMOUNT_MAX {
                                Err(ErrorCode::BalanceOverflow)
                            } else {
                                Ok(())
                            }
                        });
                        let state = match decision {
                            Ok(()) => {
                                self.reserved.insert(disbursement_id.clone(), amount.get());
                                step.writes
                                    .push(Write::OpenMark(disbursement_id.clone(), true));
                                LegState::Reserved
                            }
                            Err(code) => LegState::Refused(code),
                        };
                        self.write_leg(&disbursement_id, &from, amount.get(), state, step);
                        state
                    }
                };
                (disbursement_id, from, state)
            }
            SagaMsg::Confirm {
                disbursement_id,
                from,
                reference,
                ..
            } => {
                let state = match recorded {
                    Some(l)
                        if l.state == LegState::Reserved
                            || (planted(Bug::ConfirmTwice) && l.state == LegState::Credited) =>
                    {
                        // The reservation guaranteed the headroom.
                        self.reserved.remove(&disbursement_id);
                        self.record
                            .as_mut()
                            .expect("a reserved leg's account exists")
                            .balance += l.amount;
                        self.journal(
                            EntryKind::TransferIn,
                            l.amount,
                            Some(disbursement_id.clone()),
                            reference,
                            now_ms,
                            step,
                        );
                        step.writes
                            .push(Write::OpenMark(disbursement_id.clone(), false));
                        self.write_leg(&disbursement_id, &from, l.amount, LegState::Credited, step);
                        LegState::Credited
                    }
                    // Confirmed already, or (a payer's bug) never reserved: answer as it is.
                    Some(l) => l.state,
                    None => LegState::Cancelled,
                };
                (disbursement_id, from, state)
            }
            SagaMsg::Cancel {
                disbursement_id,
                from,
                ..
            } => {
                let state = match recorded {
                    Some(l) if l.state == LegState::Reserved => {
                        self.reserved.remove(&disbursement_id);
                        step.writes
                            .push(Write::OpenMark(disbursement_id.clone(), false));
                        self.write_leg(
                            &disbursement_id,
                            &from,
                            l.amount,
                            LegState::Cancelled,
                            step,
                        );
                        LegState::Cancelled
                    }
                    Some(l) => l.state,
                    None => {
                        // Before its try: the mark that refuses the late try.
                        self.write_leg(&disbursement_id, &from, 0, LegState::Cancelled, step);
                        LegState::Cancelled
                    }
                };
                (disbursement_id, from, state)
            }
            other => panic!("not a leg message: {other:?}"),
        };
        let outcome = match state {
            LegState::Reserved => LegOutcome::Reserved,
            LegState::Refused(code) => LegOutcome::Refused(code),
            LegState::Credited => LegOutcome::Confirmed,
            LegState::Cancelled => LegOutcome::Cancelled,
        };
        step.effects.push(Effect::Send(SagaMsg::LegOutcome {
            disbursement_id: id,
            from,
            to: self.id.clone(),
            outcome,
        }));
    }

    fn write_leg(
        &self,
        id: &TransferId,
        from: &AccountId,
        amount: u64,
        state: LegState,
        step: &mut Step,
    ) {
        step.writes.push(Write::Saga(SagaRecord::Leg(LegRecord {
            disbursement_id: id.clone(),
            from: from.clone(),
            amount,
            state,
        })));
    }
}
