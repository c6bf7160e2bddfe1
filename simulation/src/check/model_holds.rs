//! Client-visible results of holds: what a serial execution could have answered a hold,
//! capture, void or read of a hold (the rules of `model` for the other operations).
//!
//! A hold's record keeps its statuses with the commits that wrote them
//! (`Ledger::hold_history`), so "the hold was not `held`" and "the hold did not exist yet" are
//! judged against the statuses it had while the request was in flight. A capture is checked
//! against its hold: the transfer moves what was asked (all when nothing was), never more than
//! the hold, to the hold's receiver; a void answers `voided`. That a capture and a void of one
//! hold are never both acknowledged follows from the durability check (an acknowledged final
//! status is the stored one, and a final status never changes).

use super::model::check_entry;
use super::ReplyCtx;
use crate::ledger::Ledger;
use crate::workload::OpKind;
use node::ledger::account::Reply;
use protocol::api::{EntryKind, HoldStatus, TransferStatus};
use protocol::{ApiError, ErrorCode, TransferId};

/// The statuses hold `id` had from commit `sent` on (none when it did not exist then or
/// later), and whether it existed when the request was sent.
fn statuses_since(ledger: &Ledger, id: &str, sent: u64) -> (Vec<HoldStatus>, bool) {
    let Some(h) = ledger.hold_history.get(id) else {
        return (Vec::new(), false);
    };
    let existed = h.first().is_some_and(|(c, _)| *c <= sent);
    let from = h.partition_point(|(c, _)| *c <= sent).saturating_sub(1);
    (h[from..].iter().map(|(_, s)| *s).collect(), existed)
}

/// The verdict on a reply to a hold operation (`None` for other operations). An error the
/// verdict does not justify may still be justified by the account's state (the caller asks).
pub(super) fn judge(
    ctx: &ReplyCtx<'_>,
    reply: &Result<Reply, ApiError>,
) -> Option<Result<(), String>> {
    let op = ctx.op;
    let (l, sent) = (ctx.ledger, ctx.sent_commit);
    let hold_id: Option<&TransferId> = match &op.kind {
        OpKind::Capture { hold, .. } | OpKind::Void(hold) | OpKind::ShowHold(hold) => Some(hold),
        OpKind::Hold { .. } => None,
        _ => return None,
    };
    let stored = hold_id.and_then(|h| l.holds.get(h.as_str()));
    let (statuses, existed) =
        hold_id.map_or((Vec::new(), false), |h| statuses_since(l, h.as_str(), sent));
    let r = &op.reference;
    // A key recorded before this request was sent, when every request sent with it is this
    // same request (no variant with another body): the answer is a replay of the first one,
    // never a refusal.
    let replayed = op.idem_key.as_ref().is_some_and(|k| {
        let recorded_before = l
            .accounts
            .get(op.account.as_str())
            .and_then(|a| a.idem_at.get(k))
            .is_some_and(|&c| c <= sent);
        let only_this = ctx
            .ops
            .iter()
            .filter(|o| o.idem_key.as_ref() == Some(k) && o.account == op.account)
            .all(|o| o.kind == op.kind);
        recorded_before && only_this
    });
    if replayed && matches!(op.kind, OpKind::Capture { .. } | OpKind::Void(_)) {
        if let Err(e) = reply {
            return Some(Err(format!(
                "{r}: a repeat of a recorded request refused with {} ({}) instead of replayed",
                e.code, e.message
            )));
        }
    }
    Some(match (reply, &op.kind) {
        (
            Ok(Reply::Hold(v)),
            OpKind::Hold {
                to,
                amount,
                expires_in_ms,
            },
        ) => {
            let terms = (
                &v.from,
                &v.to,
                v.amount,
                v.expires_at,
                v.reference.as_deref(),
            );
            let want = (
                &op.account,
                to,
                *amount,
                v.created_at + expires_in_ms,
                Some(r.as_str()),
            );
            if terms != want || !l.holds.contains_key(v.id.as_str()) {
                return Some(Err(format!("{r}: hold acknowledged as {v:?}")));
            }
            let first = l.accounts.get(op.account.as_str()).and_then(|a| {
                a.journal.values().find(|(e, _)| {
                    e.kind == EntryKind::Hold && e.transfer_id.as_ref() == Some(&v.id)
                })
            });
            match first {
                Some((e, _)) => check_entry(l, op, e.seq, EntryKind::Hold, *amount, None),
                None => Err(format!("{r}: hold {} acknowledged without its entry", v.id)),
            }
        }
        (Ok(Reply::Hold(v)), OpKind::Void(h)) => {
            let stored_status = stored.map(|(_, s)| s.status);
            if &v.id != h
                || v.status != HoldStatus::Voided
                || stored_status != Some(HoldStatus::Voided)
            {
                Err(format!(
                    "{r}: void of {h} answered {v:?}, stored {stored_status:?}"
                ))
            } else {
                Ok(())
            }
        }
        (Ok(Reply::Hold(v)), OpKind::ShowHold(h)) => match stored {
            Some((payer, s)) => {
                let mut want = s.view(&protocol::AccountId::new(payer.clone()).expect("valid"));
                want.status = v.status;
                if v.status.is_open() {
                    // An older state: its capture fields may differ.
                    want.captured = v.captured;
                    want.capture_id = v.capture_id.clone();
                }
                if &v.id != h || **v != want || !statuses.contains(&v.status) {
                    Err(format!("{r}: hold {h} read as {v:?}; it is {s:?} and had {statuses:?} since the request"))
                } else {
                    Ok(())
                }
            }
            None => Err(format!("{r}: hold {h} read as {v:?} but is not stored")),
        },
        (Ok(Reply::Capture { hold, transfer }), OpKind::Capture { hold: h, amount }) => {
            let Some((_, s)) = stored else {
                return Some(Err(format!("{r}: capture of {h}, which is not stored")));
            };
            let moved = amount.unwrap_or(s.amount);
            let terms = (&hold.id, &transfer.from, &transfer.to, transfer.amount);
            if terms != (h, &op.account, &s.to, moved) || transfer.amount > s.amount {
                return Some(Err(format!(
                    "{r}: capture of {moved} of {h} (holding {}) acknowledged as {transfer:?}",
                    s.amount
                )));
            }
            let settled_before = l
                .settled_at
                .get(transfer.id.as_str())
                .is_some_and(|&c| c <= sent);
            let stored_t = l.transfers.get(transfer.id.as_str());
            let ok = (transfer.status == TransferStatus::Pending && !settled_before)
                || stored_t
                    .is_some_and(|t| (t.status, t.reason) == (transfer.status, transfer.reason));
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "{r}: capture {} replied {:?}, stored {stored_t:?}",
                    transfer.id, transfer.status
                ))
            }
        }
        (Err(e), OpKind::Capture { .. } | OpKind::Void(_) | OpKind::ShowHold(_))
            if e.code == ErrorCode::HoldNotFound =>
        {
            if existed {
                Err(format!(
                    "{r}: hold_not_found, but the hold existed when asked"
                ))
            } else {
                Ok(())
            }
        }
        (Err(e), OpKind::Capture { .. } | OpKind::Void(_))
            if e.code == ErrorCode::HoldNotActive =>
        {
            if statuses.iter().any(|s| *s != HoldStatus::Held) {
                Ok(())
            } else {
                Err(format!(
                    "{r}: hold_not_active, but the hold was held throughout ({statuses:?})"
                ))
            }
        }
        (Err(e), OpKind::Capture { amount, .. }) if e.code == ErrorCode::CaptureExceedsHold => {
            match (amount, stored) {
                (Some(a), Some((_, s))) if *a > s.amount => Ok(()),
                _ => Err(format!(
                    "{r}: capture_exceeds_hold for {amount:?} of {stored:?}"
                )),
            }
        }
        (Err(e), OpKind::Hold { to, .. }) if e.code == ErrorCode::SameAccount => {
            if to == &op.account {
                Ok(())
            } else {
                Err(format!("{r}: same_account for a hold for {to}"))
            }
        }
        (Err(e), kind) => Err(format!(
            "{kind:?} on {} refused with {} ({})",
            op.account, e.code, e.message
        )),
        (Ok(reply), kind) => Err(format!(
            "{kind:?} on {} got an unexpected reply {reply:?}",
            op.account
        )),
    })
}
