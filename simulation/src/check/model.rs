//! Client-visible results (DESIGN.md 6.4 and 6.7 from the client's side): every reply a client
//! receives must be one a serial execution could have given.
//!
//! The serial model is the account's own stored history: the journal orders every change, and
//! a request may take effect at any point between its sending and its reply (the [`Window`]).
//! An acknowledged success must match its own journal entry (kind, amount, reference, balance
//! after); a refusal must be justified by a state the account had in the window (insufficient
//! funds by an available balance below the amount, frozen by a frozen state, and so on); a read
//! must show a state the account had in the window. An unknown outcome (`unavailable`, or no
//! reply) may have applied or not; the exactly-once check bounds it to at most once.

use super::{Check, ReplyCtx, Window};
use crate::ledger::Ledger;
use crate::workload::{ClientResult, OpKind, OpSpec, HISTORY_PAGE};
use node::ledger::account::Reply;
use node::ledger::records::StoredReply;
use protocol::api::{AccountStatus, AccountView, EntryKind, TransferStatus, TransferView};
use protocol::{ErrorCode, AMOUNT_MAX};

/// The checker (stateless: it reads the ledger).
pub struct ClientModel;

fn view_possible(w: &Window, v: &AccountView) -> bool {
    v.held == v.balance.wrapping_sub(v.available)
        && w.had_status(v.status)
        && w.balances
            .iter()
            .any(|&(s, b, a)| s == v.seq && b == v.balance && a == v.available)
}

fn refusal_justified(ctx: &ReplyCtx<'_>, w: &Window, code: ErrorCode, amount: u64) -> bool {
    match code {
        ErrorCode::AccountNotFound => w.absent,
        ErrorCode::AccountFrozen => w.had_status(AccountStatus::Frozen),
        ErrorCode::InsufficientFunds => w.balances.iter().any(|&(_, _, a)| a < amount),
        // Legs of disbursements reserved for the account take headroom: bounded above by
        // every leg it ever reserved.
        ErrorCode::BalanceOverflow => {
            let reserved = reserved_bound(ctx, ctx.op.account.as_str());
            w.balances
                .iter()
                .any(|&(_, b, _)| b.saturating_add(amount).saturating_add(reserved) > AMOUNT_MAX)
        }
        ErrorCode::IdempotencyKeyReused => key_used_by_other(ctx),
        _ => false,
    }
}

/// The most the account may have had reserved for disbursements: every leg it reserved.
fn reserved_bound(ctx: &ReplyCtx<'_>, account: &str) -> u64 {
    ctx.ledger.accounts.get(account).map_or(0, |a| {
        a.sagas
            .values()
            .filter_map(|r| match r {
                node::ledger::records::SagaRecord::Leg(l)
                    if !matches!(l.state, node::ledger::records::LegState::Refused(_)) =>
                {
                    Some(l.amount)
                }
                _ => None,
            })
            .fold(0u64, u64::saturating_add)
    })
}

/// The op's key holds another request's record.
fn key_used_by_other(ctx: &ReplyCtx<'_>) -> bool {
    let (Some(key), Some(a)) = (
        &ctx.op.idem_key,
        ctx.ledger.accounts.get(ctx.op.account.as_str()),
    ) else {
        return false;
    };
    let Some(rec) = a.idem.get(key) else {
        return false;
    };
    // The stored request: its reference, amount and (for a transfer) receiver.
    let stored = match &rec.reply {
        StoredReply::Movement(m) => a
            .journal
            .get(&m.seq)
            .map(|(e, _)| (e.reference.clone(), e.amount, None)),
        StoredReply::Transfer(TransferView { id, .. }) | StoredReply::TransferId(id) => {
            let to = ctx.ledger.transfers.get(id.as_str()).map(|t| t.to.clone());
            a.journal
                .values()
                .find(|(e, _)| e.kind == EntryKind::Hold && e.transfer_id.as_ref() == Some(id))
                .map(|(e, _)| (e.reference.clone(), e.amount, to))
        }
        StoredReply::HoldId(id) => ctx
            .ledger
            .holds
            .get(id.as_str())
            .map(|(_, h)| (h.reference.clone(), h.amount, Some(h.to.clone()))),
        // A capture's record keeps no copy of its request: another request under the key is
        // another op with the key.
        StoredReply::Capture { .. } | StoredReply::DisbursementId(_) => {
            return ctx.ops.iter().any(|o| {
                o.idem_key == ctx.op.idem_key
                    && o.account == ctx.op.account
                    && o.kind != ctx.op.kind
            })
        }
    };
    let asked = match &ctx.op.kind {
        OpKind::Deposit(a) | OpKind::Withdraw(a) => (Some(ctx.op.reference.clone()), *a, None),
        OpKind::Transfer { to, amount } | OpKind::Hold { to, amount, .. } => {
            (Some(ctx.op.reference.clone()), *amount, Some(to.clone()))
        }
        _ => return false,
    };
    stored.is_none_or(|s| s != asked)
}

pub(super) fn check_entry(
    ledger: &Ledger,
    op: &OpSpec,
    seq: u64,
    kind: EntryKind,
    amount: u64,
    balance: Option<u64>,
) -> Result<(), String> {
    let acct = op.account.as_str();
    let Some((e, _)) = ledger.accounts.get(acct).and_then(|a| a.journal.get(&seq)) else {
        return Err(format!("{acct} entry {seq} acknowledged but not stored"));
    };
    let same = e.kind == kind
        && e.amount == amount
        && e.reference.as_deref() == Some(op.reference.as_str())
        && balance.is_none_or(|b| b == e.balance);
    if !same {
        return Err(format!(
            "{} acknowledged as {kind:?} {amount} at {acct} entry {seq} (balance {balance:?}), but that entry is {e:?}",
            op.reference
        ));
    }
    Ok(())
}

impl Check for ClientModel {
    fn name(&self) -> &'static str {
        "client-visible results match a serial model"
    }

    fn on_reply(&mut self, ctx: &ReplyCtx<'_>) -> Result<(), String> {
        let op = ctx.op;
        let acct = op.account.as_str();
        let w = Window::of(ctx.ledger, acct, ctx.sent_commit);
        let reply = match ctx.result {
            ClientResult::Page(Ok(None)) => {
                return if w.absent {
                    Ok(())
                } else {
                    Err(format!("history of {acct}: not found, but it existed"))
                };
            }
            ClientResult::Page(Ok(Some(page))) => {
                let OpKind::History(after) = op.kind else {
                    return Err("a page for a command".into());
                };
                let journal = ctx.ledger.accounts.get(acct).map(|a| &a.journal);
                for (i, e) in page.entries.iter().enumerate() {
                    let want = after + 1 + i as u64;
                    let stored = journal.and_then(|j| j.get(&want)).map(|(e, _)| e);
                    if e.seq != want || stored != Some(e) {
                        return Err(format!("history of {acct} after {after}: entry {i} is {e:?}, stored {stored:?}"));
                    }
                }
                if page.entries.len() > HISTORY_PAGE {
                    return Err(format!("history page of {} entries", page.entries.len()));
                }
                // The cursor: a next page is announced exactly after a full page, from its last
                // entry, and only when an entry follows; without one, the page reached every
                // entry that existed when the request was sent.
                let end = after + page.entries.len() as u64;
                match page.next_after_seq {
                    Some(next) => {
                        let follows = journal.is_some_and(|j| j.contains_key(&(end + 1)));
                        if next != end || page.entries.len() != HISTORY_PAGE || !follows {
                            return Err(format!(
                                "history of {acct} after {after}: {} entries, next_after_seq {next}, but the journal {} entry {}",
                                page.entries.len(),
                                if follows { "has" } else { "has no" },
                                end + 1
                            ));
                        }
                    }
                    None => {
                        let existed = journal
                            .and_then(|j| j.iter().rev().find(|(_, (_, c))| *c <= ctx.sent_commit))
                            .map_or(0, |(s, _)| *s);
                        if end < existed {
                            return Err(format!(
                                "history of {acct} after {after}: the page ends at {end} without a cursor, but entry {existed} existed when it was asked"
                            ));
                        }
                    }
                }
                return Ok(());
            }
            ClientResult::Page(Err(e)) => return Err(format!("history refused with {}", e.code)),
            ClientResult::Reply(r) => r,
        };
        let amount = match &op.kind {
            OpKind::Deposit(a)
            | OpKind::Withdraw(a)
            | OpKind::Transfer { amount: a, .. }
            | OpKind::Hold { amount: a, .. } => *a,
            OpKind::Disburse { legs } => legs.iter().map(|(_, a)| a).sum(),
            _ => 0,
        };
        let verdict = super::model_holds::judge(ctx, reply)
            .or_else(|| super::model_disbursements::judge(ctx, reply));
        if let Some(verdict) = verdict {
            return verdict.or_else(|why| match reply {
                Err(e) if refusal_justified(ctx, &w, e.code, amount) => Ok(()),
                _ => Err(why),
            });
        }
        match (reply, &op.kind) {
            (Ok(Reply::Transfer(t)), OpKind::ShowTransfer(id)) => {
                // A summary the transfer had while the request was in flight: pending only if
                // it had not settled when the request was sent, else the settled summary.
                let stored = ctx.ledger.transfers.get(id.as_str());
                let settled_before = ctx.ledger.settled_at.get(id.as_str()).is_some_and(|&c| c <= ctx.sent_commit);
                let same_transfer = stored.is_some_and(|s| {
                    (&s.id, &s.from, &s.to, s.amount, s.created_at) == (&t.id, &t.from, &t.to, t.amount, t.created_at)
                });
                let possible = (t.status == TransferStatus::Pending && t.reason.is_none() && !settled_before)
                    || stored == Some(t);
                if &t.id != id || !same_transfer || !possible {
                    return Err(format!("summary of {id}: got {t:?}, stored {stored:?} (settled before the request: {settled_before})"));
                }
                Ok(())
            }
            (Err(e), OpKind::ShowTransfer(id)) if e.code == ErrorCode::TransferNotFound => {
                let existed = ctx.ledger.created_at.get(id.as_str()).is_some_and(|&c| c <= ctx.sent_commit);
                if existed { Err(format!("summary of {id}: transfer_not_found, but it existed when asked")) } else { Ok(()) }
            }
            (Err(e), _) if e.code == ErrorCode::AccountNotFound && !matches!(op.kind, OpKind::Open(_)) => {
                if w.absent { Ok(()) } else { Err(format!("{acct}: account_not_found, but it existed throughout")) }
            }
            (Ok(Reply::Account { view, created }), OpKind::Open(c)) => {
                if view.currency != *c || (!created && !view_possible(&w, view)) || (*created && view.seq != 0) {
                    return Err(format!("open {acct} {c}: got {view:?} (created {created}), not a state it had; window {w:?}"));
                }
                Ok(())
            }
            (Err(e), OpKind::Open(c)) if e.code == ErrorCode::AccountExists => {
                let other = ctx.ledger.accounts.get(acct).and_then(|a| a.state()).is_some_and(|s| s.currency != *c);
                if other { Ok(()) } else { Err(format!("open {acct} {c}: account_exists without another currency")) }
            }
            // A sharded account's read is a sum over its shards: `sharded_reads` checks it.
            (Ok(Reply::Account { view, created: false }), OpKind::Get) if view.shards.is_some() => Ok(()),
            (Ok(Reply::Account { view, created: false }), OpKind::Get | OpKind::Freeze | OpKind::Unfreeze) => {
                let want = match op.kind {
                    OpKind::Freeze => Some(AccountStatus::Frozen),
                    OpKind::Unfreeze => Some(AccountStatus::Active),
                    _ => None,
                };
                if want.is_some_and(|s| s != view.status) || !view_possible(&w, view) {
                    return Err(format!("{:?} {acct}: got {view:?}, not a state it had while the request was in flight; window {w:?}", op.kind));
                }
                Ok(())
            }
            (Ok(Reply::Movement(m)), OpKind::Deposit(a)) => {
                check_entry(ctx.ledger, op, m.seq, EntryKind::Deposit, *a, Some(m.balance))
            }
            (Ok(Reply::Movement(m)), OpKind::Withdraw(a)) => {
                check_entry(ctx.ledger, op, m.seq, EntryKind::Withdrawal, *a, Some(m.balance))
            }
            (Ok(Reply::Transfer(t)), OpKind::Transfer { to, amount }) => {
                if t.from != op.account || &t.to != to || t.amount != *amount {
                    return Err(format!("{}: transfer acknowledged as {t:?}", op.reference));
                }
                // A replayed transfer shows its status as of some point in the window: pending
                // only if it had not settled when the request was sent, else the settled
                // status its summary holds.
                let stored = ctx.ledger.transfers.get(t.id.as_str());
                let settled_before = ctx
                    .ledger
                    .settled_at
                    .get(t.id.as_str())
                    .is_some_and(|&c| c <= ctx.sent_commit);
                let settled_ok = (t.status == TransferStatus::Pending && !settled_before)
                    || stored.is_some_and(|s| s.status == t.status && s.reason == t.reason);
                if !settled_ok {
                    return Err(format!(
                        "{}: transfer replied as {:?} {:?}, stored as {:?}",
                        op.reference,
                        t.status,
                        t.reason,
                        stored.map(|s| (s.status, s.reason))
                    ));
                }
                let hold = ctx.ledger.accounts.get(acct).and_then(|a| {
                    a.journal.values().find(|(e, _)| e.kind == EntryKind::Hold && e.transfer_id.as_ref() == Some(&t.id))
                });
                match hold {
                    Some((e, _)) => check_entry(ctx.ledger, op, e.seq, EntryKind::Hold, *amount, None),
                    None => Err(format!("{}: transfer {} acknowledged without its hold", op.reference, t.id)),
                }
            }
            (Err(e), OpKind::Transfer { to, .. }) if e.code == ErrorCode::SameAccount => {
                if to == &op.account { Ok(()) } else { Err(format!("{}: same_account for a transfer to {to}", op.reference)) }
            }
            (Err(e), _) if refusal_justified(ctx, &w, e.code, amount) => Ok(()),
            (Err(e), kind) => Err(format!("{kind:?} on {acct} refused with {} ({}) though no state in flight justifies it; window {w:?}", e.code, e.message)),
            (Ok(r), kind) => Err(format!("{kind:?} on {acct} got an unexpected reply {r:?}")),
        }
    }
}
