//! Client-visible results of disbursements: what a serial execution could have answered a
//! disbursement or a read of one (the rules of `model` for the other operations).
//!
//! An acknowledged disbursement names the legs asked, from the account asked, with its hold
//! entry in the payer's journal; it shows `pending` only if it had not settled when the
//! request was sent, else its stored status, reason and legs. A read shows a state the
//! disbursement had while the request was in flight.

use super::model::check_entry;
use super::ReplyCtx;
use crate::workload::OpKind;
use node::ledger::account::Reply;
use protocol::api::{DisbursementView, EntryKind, TransferStatus};
use protocol::{AccountId, ApiError, ErrorCode};

/// The verdict on a reply to a disbursement or a read of one (`None` for other operations).
/// An error the verdict does not justify may still be justified by the account's state.
pub(super) fn judge(
    ctx: &ReplyCtx<'_>,
    reply: &Result<Reply, ApiError>,
) -> Option<Result<(), String>> {
    let op = ctx.op;
    let (l, sent, r) = (ctx.ledger, ctx.sent_commit, &op.reference);
    // A view the disbursement could have shown while the request was in flight.
    let possible = |v: &DisbursementView| -> Result<(), String> {
        let Some((payer, d)) = l.disbursements.get(v.id.as_str()) else {
            return Err(format!(
                "{r}: disbursement {} answered but not stored",
                v.id
            ));
        };
        let stored = d.view(&AccountId::new(payer.clone()).expect("valid"));
        let (_, settled) = l.disbursement_commits[v.id.as_str()];
        let settled_before = settled.is_some_and(|c| c <= sent);
        let mut pending = stored.clone();
        pending.status = TransferStatus::Pending;
        pending.reason = None;
        for leg in &mut pending.legs {
            leg.status = protocol::api::LegStatus::Pending;
            leg.reason = None;
        }
        if *v == stored || (*v == pending && !settled_before) {
            Ok(())
        } else {
            Err(format!(
                "{r}: disbursement shown as {v:?}; stored {stored:?} (settled before the request: {settled_before})"
            ))
        }
    };
    Some(match (reply, &op.kind) {
        (Ok(Reply::Disbursement(v)), OpKind::Disburse { legs }) => {
            let asked: Vec<(&AccountId, u64)> = legs.iter().map(|(t, a)| (t, *a)).collect();
            let got: Vec<(&AccountId, u64)> = v.legs.iter().map(|g| (&g.to, g.amount)).collect();
            let total: u64 = legs.iter().map(|(_, a)| a).sum();
            if v.from != op.account || got != asked || v.total != total {
                return Some(Err(format!("{r}: disbursement acknowledged as {v:?}")));
            }
            possible(v).and_then(|()| {
                let hold = l.accounts.get(op.account.as_str()).and_then(|a| {
                    a.journal.values().find(|(e, _)| {
                        e.kind == EntryKind::Hold && e.transfer_id.as_ref() == Some(&v.id)
                    })
                });
                match hold {
                    Some((e, _)) => check_entry(l, op, e.seq, EntryKind::Hold, total, None),
                    None => Err(format!("{r}: disbursement {} without its hold", v.id)),
                }
            })
        }
        (Ok(Reply::Disbursement(v)), OpKind::ShowDisbursement(id)) => {
            if &v.id != id {
                Err(format!("{r}: read of {id} answered {}", v.id))
            } else {
                possible(v)
            }
        }
        (Err(e), OpKind::ShowDisbursement(id)) if e.code == ErrorCode::DisbursementNotFound => {
            let existed = l
                .disbursement_commits
                .get(id.as_str())
                .is_some_and(|(c, _)| *c <= sent);
            if existed {
                Err(format!(
                    "{r}: disbursement_not_found, but {id} existed when asked"
                ))
            } else {
                Ok(())
            }
        }
        (Err(e), OpKind::Disburse { legs }) if e.code == ErrorCode::InvalidRequest => {
            let sum = legs.iter().try_fold(0u64, |t, (_, a)| t.checked_add(*a));
            if sum.is_none_or(|s| s > protocol::AMOUNT_MAX) {
                Ok(())
            } else {
                Err(format!(
                    "{r}: invalid_request for legs {legs:?} ({})",
                    e.message
                ))
            }
        }
        (Err(e), OpKind::Disburse { legs }) if e.code == ErrorCode::SameAccount => {
            if legs.iter().any(|(to, _)| to == &op.account) {
                Ok(())
            } else {
                Err(format!("{r}: same_account for legs {legs:?}"))
            }
        }
        (Err(e), kind @ (OpKind::Disburse { .. } | OpKind::ShowDisbursement(_))) => Err(format!(
            "{kind:?} on {} refused with {} ({})",
            op.account, e.code, e.message
        )),
        (Ok(reply), kind @ (OpKind::Disburse { .. } | OpKind::ShowDisbursement(_))) => {
            Err(format!(
                "{kind:?} on {} got an unexpected reply {reply:?}",
                op.account
            ))
        }
        _ => return None,
    })
}
