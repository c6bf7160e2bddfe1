//! Holds of an account (authorize, then capture, void or expire): the payer's side.
//!
//! A hold keeps `amount` of the payer's money held under the hold's id (journal `hold`). A
//! capture of `c` is a transfer of its own, with a fresh id: `c` moves from the hold to the
//! capture's transfer (`release` under the hold's id, `hold` under the transfer's, so the
//! entries of each id balance on their own and the audit judges the capture as any transfer),
//! and the transfer runs the ordinary saga. When it completes, the hold releases what is left
//! and is `captured`. When the receiver refuses, the transfer releases `c`, the hold takes it
//! back (`hold` under the hold's id) and is `held` again, expiring at once if its time passed
//! meanwhile. A void or the expiry releases everything.
//!
//! The first of capture, void and expiry that this account commits wins: a void or a second
//! capture of a hold that is `capturing` is `hold_not_active`, and its expiry waits for the
//! capture's outcome (its timer is disarmed while a capture is under way). The expiry is a
//! timer (armed at creation, at every activation, and when a capture fails); the
//! index of holds by expiry (`Write::HoldDue`) lets the node's sweep activate a payer whose
//! hold came due while it was not active.

use super::{remember, AccountCore, Effect, Reads, Reply, Step, Write};
use crate::ledger::planted::{planted, Bug};
use crate::ledger::records::{HoldRecord, SagaRecord, StoredReply};
use protocol::api::{EntryKind, HoldStatus, HoldView, TransferStatus, TransferView};
use protocol::{AccountId, Amount, ApiError, ErrorCode, TransferId};

/// A hold to create.
pub(super) struct NewHold {
    /// Its id.
    pub hold_id: TransferId,
    /// Account a capture pays.
    pub to: AccountId,
    /// Amount held.
    pub amount: Amount,
    /// Life, ms.
    pub expires_in_ms: u64,
    /// Free text.
    pub reference: Option<String>,
}

impl AccountCore {
    /// Holds `amount` of this account for `to`, until captured, voided or expired.
    pub(super) fn create_hold(
        &mut self,
        h: NewHold,
        idem: Option<(String, String)>,
        now_ms: u64,
        step: &mut Step,
    ) -> Result<Reply, ApiError> {
        let r = self.movable()?;
        if h.to.public() == self.id.public() {
            return Err(ErrorCode::SameAccount.into());
        }
        let a = h.amount.get();
        if r.available() < a {
            return Err(ErrorCode::InsufficientFunds.into());
        }
        self.room_for_one()?;
        assert!(!self.knows(&h.hold_id), "hold id {} reused", h.hold_id);
        self.record.as_mut().expect("movable").held += a;
        self.journal(
            EntryKind::Hold,
            a,
            Some(h.hold_id.clone()),
            h.reference.clone(),
            now_ms,
            step,
        );
        let rec = HoldRecord {
            hold_id: h.hold_id.clone(),
            to: h.to,
            amount: a,
            status: HoldStatus::Held,
            capture: None,
            expires_at: now_ms.saturating_add(h.expires_in_ms),
            reference: h.reference,
            created_at: now_ms,
        };
        let view = rec.view(&self.id);
        step.writes.push(Write::Saga(SagaRecord::Hold(rec.clone())));
        step.writes.push(Write::OpenMark(h.hold_id.clone(), true));
        step.writes
            .push(Write::HoldDue(h.hold_id.clone(), rec.expires_at, true));
        remember(step, idem, StoredReply::HoldId(h.hold_id.clone()));
        step.effects.push(Effect::Timer {
            transfer_id: h.hold_id.clone(),
            after_ms: h.expires_in_ms,
        });
        self.holds.insert(h.hold_id, rec);
        Ok(Reply::Hold(Box::new(view)))
    }

    /// Starts the capture of `amount` (default all) of a `held` hold: the transfer
    /// `capture_id` to the hold's receiver.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn capture(
        &mut self,
        hold_id: TransferId,
        capture_id: TransferId,
        amount: Option<Amount>,
        idem: Option<(String, String)>,
        reads: &Reads,
        now_ms: u64,
        step: &mut Step,
    ) -> Result<Reply, ApiError> {
        self.active_or_any()?;
        self.expire_if_due(&hold_id, now_ms, step)?;
        let hold = self.held_hold(&hold_id, reads)?;
        let r = self.movable()?;
        let (held, to, reference) = (hold.amount, hold.to.clone(), hold.reference.clone());
        let c = amount.map_or(held, Amount::get);
        if c > held && !planted(Bug::CaptureMoreThanHeld) {
            return Err(ApiError::new(
                ErrorCode::CaptureExceedsHold,
                format!("hold {hold_id} holds {held}; a capture of {c} exceeds it"),
            ));
        }
        // Only with the planted bug can `c` exceed the hold: the excess is held from what
        // is available, as if the hold had been larger.
        let moved = c.min(held);
        if r.available() < c - moved {
            return Err(ErrorCode::InsufficientFunds.into());
        }
        // The capture's transfer takes no slot of its own: its hold already has one.
        assert!(!self.knows(&capture_id), "capture id {capture_id} reused");
        // Move the captured part from the hold to the capture's transfer, which holds it
        // again under its own id (nothing can fail past this point).
        self.record.as_mut().expect("movable").held -= moved;
        self.journal(
            EntryKind::Release,
            moved,
            Some(hold_id.clone()),
            reference.clone(),
            now_ms,
            step,
        );
        let hold = self.holds.get_mut(&hold_id).expect("checked held");
        hold.status = HoldStatus::Capturing;
        hold.capture = Some((capture_id.clone(), moved));
        // Its expiry waits for the capture's outcome (armed again if the capture fails).
        step.effects.push(Effect::Disarm(hold_id.clone()));
        let amount = Amount::new(c).expect("a capture within a hold's amount is valid");
        let transfer = match self.start_transfer(
            capture_id.clone(),
            to,
            amount,
            reference,
            None,
            now_ms,
            step,
        ) {
            Ok(Reply::Transfer(view)) => view,
            other => panic!("the checks above let the capture's transfer start: {other:?}"),
        };
        self.open
            .get_mut(&capture_id)
            .expect("just started")
            .of_hold = Some(hold_id.clone());
        let rec = self.holds[&hold_id].clone();
        step.writes.push(Write::Saga(SagaRecord::Hold(rec.clone())));
        remember(
            step,
            idem,
            StoredReply::Capture {
                hold: hold_id,
                transfer: capture_id,
            },
        );
        Ok(Reply::Capture {
            hold: Box::new(rec.view(&self.id)),
            transfer,
        })
    }

    /// Releases a `held` hold entirely.
    pub(super) fn void(
        &mut self,
        hold_id: TransferId,
        idem: Option<(String, String)>,
        reads: &Reads,
        now_ms: u64,
        step: &mut Step,
    ) -> Result<Reply, ApiError> {
        self.active_or_any()?;
        self.expire_if_due(&hold_id, now_ms, step)?;
        self.held_hold(&hold_id, reads)?;
        let view = self.end_hold(&hold_id, HoldStatus::Voided, now_ms, step);
        remember(step, idem, StoredReply::HoldId(hold_id));
        Ok(Reply::Hold(Box::new(view)))
    }

    /// The capture's transfer of `hold_id` settled as `view`: the hold ends `captured`, or
    /// takes the amount back and is `held` again (expired at once when its time passed).
    pub(super) fn capture_settled(
        &mut self,
        hold_id: &TransferId,
        view: &TransferView,
        now_ms: u64,
        step: &mut Step,
    ) {
        let hold = self.holds.get(hold_id).expect("a capture's hold is open");
        assert_eq!(hold.status, HoldStatus::Capturing, "hold {hold_id}");
        let (moved, reference) = (
            hold.capture.as_ref().expect("capturing").1,
            hold.reference.clone(),
        );
        match view.status {
            TransferStatus::Completed => {
                self.end_hold(hold_id, HoldStatus::Captured, now_ms, step);
            }
            TransferStatus::Failed => {
                // The transfer released the amount: the hold takes it back.
                self.record.as_mut().expect("payer exists").held += moved;
                self.journal(
                    EntryKind::Hold,
                    moved,
                    Some(hold_id.clone()),
                    reference,
                    now_ms,
                    step,
                );
                let hold = self.holds.get_mut(hold_id).expect("open");
                hold.status = HoldStatus::Held;
                let expires_at = hold.expires_at;
                if now_ms >= expires_at {
                    self.end_hold(hold_id, HoldStatus::Expired, now_ms, step);
                } else {
                    let rec = self.holds[hold_id].clone();
                    step.writes.push(Write::Saga(SagaRecord::Hold(rec)));
                    step.effects.push(Effect::Timer {
                        transfer_id: hold_id.clone(),
                        after_ms: expires_at - now_ms,
                    });
                }
            }
            TransferStatus::Pending => panic!("capture {} settled pending", view.id),
        }
    }

    /// A hold's timer fired: a `held` hold expires when its time came (else the timer is
    /// armed again for it); a `capturing` one waits for its capture's outcome.
    pub(super) fn hold_timer(&mut self, hold_id: TransferId, now_ms: u64, step: &mut Step) {
        let hold = &self.holds[&hold_id];
        match hold.status {
            HoldStatus::Held if now_ms >= hold.expires_at => {
                self.end_hold(&hold_id, HoldStatus::Expired, now_ms, step);
            }
            HoldStatus::Held => step.effects.push(Effect::Timer {
                after_ms: hold.expires_at - now_ms,
                transfer_id: hold_id,
            }),
            _ => {}
        }
    }

    /// Expires `hold_id` now if it is `held` and its time came, and answers
    /// `hold_not_active`: a capture or void that reaches the payer before the expiry's timer
    /// (the payer was passivated, or just activated) finds it expired, as it would have been.
    fn expire_if_due(
        &mut self,
        hold_id: &TransferId,
        now_ms: u64,
        step: &mut Step,
    ) -> Result<(), ApiError> {
        let due = self
            .holds
            .get(hold_id)
            .is_some_and(|h| h.status == HoldStatus::Held && now_ms >= h.expires_at);
        if !due {
            return Ok(());
        }
        self.end_hold(hold_id, HoldStatus::Expired, now_ms, step);
        Err(ApiError::new(
            ErrorCode::HoldNotActive,
            format!("hold {hold_id} is expired"),
        ))
    }

    /// The expiry timers of the `held` holds, for an activation at `now_ms`.
    pub(super) fn expiry_timers(&self, now_ms: u64) -> impl Iterator<Item = Effect> + '_ {
        self.holds
            .iter()
            .filter(|(_, h)| h.status == HoldStatus::Held)
            .map(move |(id, h)| Effect::Timer {
                transfer_id: id.clone(),
                after_ms: h.expires_at.saturating_sub(now_ms),
            })
    }

    /// Asserts the holds' invariants: every open hold is `held` or `capturing`, and a
    /// capturing hold and its capture's open transfer name each other.
    pub(super) fn validate_holds(&self) {
        for (id, h) in &self.holds {
            assert_eq!(&h.hold_id, id, "{}: hold filed under another id", self.id);
            match h.status {
                HoldStatus::Held => {}
                HoldStatus::Capturing => {
                    let (tid, _) = h.capture.as_ref().expect("capturing names its transfer");
                    let of = self.open.get(tid).and_then(|s| s.of_hold.as_ref());
                    assert_eq!(of, Some(id), "{}: capture {tid} of {id} not open", self.id);
                }
                s => panic!("{}: settled hold {id} ({s:?}) still open", self.id),
            }
        }
        for (tid, s) in &self.open {
            if let Some(h) = &s.of_hold {
                let capture = self.holds.get(h).and_then(|h| h.capture.as_ref());
                assert_eq!(
                    capture.map(|c| &c.0),
                    Some(tid),
                    "{}: capture {tid} of a hold not capturing it",
                    self.id
                );
            }
        }
    }

    /// The open hold `hold_id` if it is `held`; `hold_not_active` naming its status if it
    /// is capturing or settled; `hold_not_found` if this account has no such hold.
    fn held_hold(&self, hold_id: &TransferId, reads: &Reads) -> Result<&HoldRecord, ApiError> {
        let status = match self.holds.get(hold_id) {
            Some(h) if h.status == HoldStatus::Held => return Ok(h),
            Some(h) => h.status,
            None => match &reads.saga {
                Some(SagaRecord::Hold(h)) => h.status,
                _ => return Err(ErrorCode::HoldNotFound.into()),
            },
        };
        Err(ApiError::new(
            ErrorCode::HoldNotActive,
            format!("hold {hold_id} is {}", status.as_str()),
        ))
    }

    /// Ends an open hold as `status` (captured, voided or expired): releases what it still
    /// holds and settles its record. Returns its view.
    fn end_hold(
        &mut self,
        hold_id: &TransferId,
        status: HoldStatus,
        now_ms: u64,
        step: &mut Step,
    ) -> HoldView {
        let mut rec = self.holds.remove(hold_id).expect("an open hold");
        let rest = rec.remaining();
        rec.status = status;
        if rest > 0 {
            self.record.as_mut().expect("payer exists").held -= rest;
            self.journal(
                EntryKind::Release,
                rest,
                Some(hold_id.clone()),
                rec.reference.clone(),
                now_ms,
                step,
            );
        }
        let view = rec.view(&self.id);
        step.effects.push(Effect::Disarm(hold_id.clone()));
        step.writes
            .push(Write::HoldDue(hold_id.clone(), rec.expires_at, false));
        step.writes.push(Write::OpenMark(hold_id.clone(), false));
        step.writes.push(Write::Saga(SagaRecord::Hold(rec)));
        view
    }
}
