//! Transfers of an account, both sides (DESIGN.md section 5): the sender holds, sends
//! `Credit` and captures or releases on the receiver's recorded outcome; the receiver decides
//! a credit once per transfer id and answers a repeat with its decision; a sender with no
//! outcome in time resends the credit, then sends `Abort` with backoff until it has one.

use super::*;

impl AccountCore {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_transfer(
        &mut self,
        transfer_id: TransferId,
        to: AccountId,
        amount: Amount,
        reference: Option<String>,
        idem: Option<(String, String)>,
        now_ms: u64,
        step: &mut Step,
    ) -> Result<Reply, ApiError> {
        let r = self.movable()?;
        // Two shards of one account are one account, but for a move between them.
        if to.public() == self.id.public() && !shards::is_move(&transfer_id) {
            return Err(ErrorCode::SameAccount.into());
        }
        let a = amount.get();
        if r.available() < a {
            return Err(ErrorCode::InsufficientFunds.into());
        }
        self.room_for_one()?;
        assert!(
            !self.open.contains_key(&transfer_id),
            "transfer id {transfer_id} reused"
        );
        self.record.as_mut().expect("movable").held += a;
        self.journal(
            EntryKind::Hold,
            a,
            Some(transfer_id.clone()),
            reference.clone(),
            now_ms,
            step,
        );
        let saga = OpenSaga {
            to: to.clone(),
            amount: a,
            reference,
            created_at: now_ms,
            timeouts: 0,
            of_hold: None,
        };
        let view = self.transfer_view(&transfer_id, &saga, TransferStatus::Pending, None);
        step.writes.push(Write::Saga(self.sender_record(
            &transfer_id,
            &saga,
            SenderStatus::Holding,
        )));
        step.writes.push(Write::OpenMark(transfer_id.clone(), true));
        if !shards::is_move(&transfer_id) {
            step.writes
                .push(Write::Listed(transfer_id.clone(), now_ms, self.id.clone()));
        }
        if !planted(Bug::ForgetPending) {
            step.writes.push(Write::Pending(transfer_id.clone(), true));
        }
        // The record names the transfer: a replay reads its current view (the sender record),
        // so settlement need not rewrite it.
        remember(step, idem, StoredReply::TransferId(transfer_id.clone()));
        step.effects
            .push(Effect::Send(self.credit_msg(&transfer_id, &saga)));
        step.effects.push(Effect::Timer {
            transfer_id: transfer_id.clone(),
            after_ms: self.timing.credit_timeout_ms,
        });
        self.open.insert(transfer_id, saga);
        Ok(Reply::Transfer(view))
    }

    pub(super) fn credit_msg(&self, transfer_id: &TransferId, saga: &OpenSaga) -> SagaMsg {
        SagaMsg::Credit {
            transfer_id: transfer_id.clone(),
            from: self.id.clone(),
            to: saga.to.clone(),
            amount: Amount::new(saga.amount).expect("held amounts are valid"),
            currency: self.record.as_ref().expect("sender exists").currency,
            reference: saga.reference.clone(),
            created_at: saga.created_at,
        }
    }

    pub(super) fn transfer_view(
        &self,
        transfer_id: &TransferId,
        saga: &OpenSaga,
        status: TransferStatus,
        reason: Option<ErrorCode>,
    ) -> TransferView {
        TransferView {
            id: transfer_id.clone(),
            from: self.id.clone(),
            to: saga.to.clone(),
            amount: saga.amount,
            status,
            reason,
            created_at: saga.created_at,
        }
    }

    pub(super) fn sender_record(
        &self,
        transfer_id: &TransferId,
        saga: &OpenSaga,
        status: SenderStatus,
    ) -> SagaRecord {
        SagaRecord::Sender {
            transfer_id: transfer_id.clone(),
            to: saga.to.clone(),
            amount: saga.amount,
            status,
            idem_key: None,
            fingerprint: None,
            reference: saga.reference.clone(),
            created_at: saga.created_at,
        }
    }

    /// Receiver: decide a credit once per transfer, and answer with the recorded decision.
    pub(super) fn credit(&mut self, credit: Credit, reads: Reads, now_ms: u64, step: &mut Step) {
        let Credit {
            transfer_id,
            from,
            amount,
            currency,
            reference,
            listed_at,
        } = credit;
        if let Some(rec) = reads.saga.filter(|_| !planted(Bug::CreditTwice)) {
            let outcome = recorded_outcome(&rec, &transfer_id);
            step.effects.push(Effect::Send(SagaMsg::Outcome {
                transfer_id,
                from,
                outcome,
            }));
            return;
        }
        let a = amount.get();
        let ceiling = self.balance_ceiling();
        let decision = self.movable().and_then(|r| {
            if r.currency != currency {
                return Err(ErrorCode::CurrencyMismatch);
            }
            r.balance
                .checked_add(a)
                .filter(|b| *b <= ceiling)
                .ok_or(ErrorCode::BalanceOverflow)
        });
        let outcome = match decision {
            Ok(balance) => {
                self.record.as_mut().expect("movable").balance = balance;
                self.journal(
                    EntryKind::TransferIn,
                    a,
                    Some(transfer_id.clone()),
                    reference,
                    now_ms,
                    step,
                );
                CreditOutcome::Applied
            }
            Err(code) => CreditOutcome::Rejected(code),
        };
        step.writes.push(Write::Saga(SagaRecord::Receiver {
            transfer_id: transfer_id.clone(),
            from: from.clone(),
            amount: a,
            outcome,
        }));
        if !shards::is_move(&transfer_id) {
            step.writes
                .push(Write::Listed(transfer_id.clone(), listed_at, from.clone()));
        }
        step.effects.push(Effect::Send(SagaMsg::Outcome {
            transfer_id,
            from,
            outcome,
        }));
    }

    /// Receiver: the sender gave up waiting. Tombstone the transfer unless already decided.
    pub(super) fn abort(
        &mut self,
        transfer_id: TransferId,
        from: AccountId,
        reads: Reads,
        listed_at: u64,
        step: &mut Step,
    ) {
        let outcome = match reads.saga {
            Some(rec) => recorded_outcome(&rec, &transfer_id),
            None => {
                step.writes.push(Write::Saga(SagaRecord::Receiver {
                    transfer_id: transfer_id.clone(),
                    from: from.clone(),
                    amount: 0,
                    outcome: CreditOutcome::Aborted,
                }));
                if !planted(Bug::ForgetListed) && !shards::is_move(&transfer_id) {
                    step.writes
                        .push(Write::Listed(transfer_id.clone(), listed_at, from.clone()));
                }
                CreditOutcome::Aborted
            }
        };
        step.effects.push(Effect::Send(SagaMsg::Outcome {
            transfer_id,
            from,
            outcome,
        }));
    }

    /// Sender: the receiver's decision arrived. Capture or release, once.
    pub(super) fn outcome(
        &mut self,
        transfer_id: TransferId,
        outcome: CreditOutcome,
        now_ms: u64,
        step: &mut Step,
    ) {
        // A repeated or late outcome of a settled transfer: already acted on.
        let Some(saga) = self.open.remove(&transfer_id) else {
            return;
        };
        let (status, reason, sender_status) = match outcome {
            CreditOutcome::Applied => {
                let r = self.record.as_mut().expect("sender with open saga exists");
                r.balance -= saga.amount;
                r.held -= saga.amount;
                self.journal(
                    EntryKind::TransferOut,
                    saga.amount,
                    Some(transfer_id.clone()),
                    saga.reference.clone(),
                    now_ms,
                    step,
                );
                (TransferStatus::Completed, None, SenderStatus::Completed)
            }
            CreditOutcome::Rejected(code) => {
                self.release(&transfer_id, &saga, now_ms, step);
                (
                    TransferStatus::Failed,
                    Some(code),
                    SenderStatus::Failed(code),
                )
            }
            CreditOutcome::Aborted => {
                // The receiver never decided in time and is now bound to refuse.
                self.release(&transfer_id, &saga, now_ms, step);
                let code = ErrorCode::TransferAborted;
                (
                    TransferStatus::Failed,
                    Some(code),
                    SenderStatus::Failed(code),
                )
            }
        };
        let view = self.transfer_view(&transfer_id, &saga, status, reason);
        step.writes.push(Write::Saga(self.sender_record(
            &transfer_id,
            &saga,
            sender_status,
        )));
        step.writes
            .push(Write::OpenMark(transfer_id.clone(), false));
        if shards::is_move(&transfer_id) && !planted(Bug::ForgetMoveMark) {
            step.writes.push(Write::Moving(transfer_id.clone(), false));
        }
        step.writes.push(Write::Pending(transfer_id, false));
        if let Some(hold_id) = &saga.of_hold {
            self.capture_settled(hold_id, &view, now_ms, step);
        }
        step.effects.push(Effect::Settled(view));
    }

    pub(super) fn release(
        &mut self,
        transfer_id: &TransferId,
        saga: &OpenSaga,
        now_ms: u64,
        step: &mut Step,
    ) {
        self.record
            .as_mut()
            .expect("sender with open saga exists")
            .held -= saga.amount;
        self.journal(
            EntryKind::Release,
            saga.amount,
            Some(transfer_id.clone()),
            saga.reference.clone(),
            now_ms,
            step,
        );
    }

    /// Sender: no outcome in time. Send `Abort`, and again with backoff until one arrives.
    pub(super) fn timer(&mut self, transfer_id: TransferId, step: &mut Step) {
        let Some(saga) = self.open.get(&transfer_id) else {
            return; // settled meanwhile
        };
        let timeouts = saga.timeouts.saturating_add(1);
        if timeouts <= CREDIT_RESENDS_MAX {
            // Resending is safe: the receiver applies a credit once per transfer id.
            step.effects
                .push(Effect::Send(self.credit_msg(&transfer_id, saga)));
            step.effects.push(Effect::Timer {
                transfer_id: transfer_id.clone(),
                after_ms: self.timing.credit_timeout_ms,
            });
        } else {
            let shift = (timeouts - CREDIT_RESENDS_MAX).min(16);
            let after_ms = self
                .timing
                .credit_timeout_ms
                .saturating_mul(1 << shift)
                .min(self.timing.abort_backoff_max_ms)
                .max(self.timing.credit_timeout_ms);
            step.effects.push(Effect::Send(SagaMsg::Abort {
                transfer_id: transfer_id.clone(),
                from: self.id.clone(),
                to: saga.to.clone(),
                created_at: saga.created_at,
            }));
            step.effects.push(Effect::Timer {
                transfer_id: transfer_id.clone(),
                after_ms,
            });
        }
        if let Some(saga) = self.open.get_mut(&transfer_id) {
            saga.timeouts = timeouts;
        }
    }
}

/// A `Credit` as the receiver applies it.
pub(super) struct Credit {
    pub(super) transfer_id: TransferId,
    pub(super) from: AccountId,
    pub(super) amount: Amount,
    pub(super) currency: Currency,
    pub(super) reference: Option<String>,
    /// Where the receiver lists the transfer: its creation time (see [`listed_at`]).
    pub(super) listed_at: u64,
}

/// The time a receiver lists a transfer at: its creation time as the sender sent it, so both
/// sides' lists order it alike; the receiver's own time for a sender that did not send it.
pub(super) fn listed_at(created_at: u64, now_ms: u64) -> u64 {
    if created_at > 0 {
        created_at
    } else {
        now_ms
    }
}

/// The decision a receiver recorded for a transfer.
fn recorded_outcome(rec: &SagaRecord, transfer_id: &TransferId) -> CreditOutcome {
    match rec {
        SagaRecord::Receiver { outcome, .. } => *outcome,
        SagaRecord::Sender { .. }
        | SagaRecord::Hold(_)
        | SagaRecord::Disbursement(_)
        | SagaRecord::Leg(_) => {
            panic!("transfer {transfer_id}: receiver found a sender's or a hold's record")
        }
    }
}
