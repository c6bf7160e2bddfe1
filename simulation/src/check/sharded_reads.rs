//! Reads of a sharded account (DESIGN.md 6.1 and 6.2 as a client sees them: a read never
//! counts money twice nor misses settled money, also while money moves between shards).
//!
//! A read of the hot account is a sum over its shards made by the node
//! (`node::ledger::shards::sum`, from the move markers). This checker computes the account's
//! money independently, from what the ledger stored: each shard's balance and `held` after
//! every commit, and the journal entries of the moves between shards (a move is held at its
//! source from its `hold` entry to its `transfer_out` or `release`, and is in its destination's
//! balance from its `transfer_in`). At any commit, the account's balance is the shards' less
//! each move its destination applied and its source has not yet debited, and its `held` is the
//! shards' less every move still held at its source. The read must equal that at some commit
//! while it was in flight, with the status the account's own record had then.

use super::{Check, ReplyCtx, Window};
use crate::ledger::Ledger;
use crate::workload::{ClientResult, OpKind};
use node::ledger::account::{Reply, MOVE_PREFIX};
use protocol::api::EntryKind;
use protocol::AccountId;
use std::collections::{BTreeMap, BTreeSet};

/// The checker (stateless: it reads the ledger).
pub struct ShardedReads;

/// A move between two shards as the journals show it: amount and the commits of its stages
/// (`u64::MAX`: not reached).
#[derive(Clone, Copy, Debug)]
struct Stages {
    amount: u64,
    held_at: u64,
    applied_at: u64,
    settled_at: u64,
}

/// Every move of the account's shards, from their journals.
fn moves(ledger: &Ledger, shards: &[AccountId]) -> BTreeMap<String, Stages> {
    let mut out: BTreeMap<String, Stages> = BTreeMap::new();
    for s in shards {
        let Some(a) = ledger.accounts.get(s.as_str()) else {
            continue;
        };
        for (e, commit) in a.journal.values() {
            let Some(t) = e
                .transfer_id
                .as_ref()
                .filter(|t| t.as_str().starts_with(MOVE_PREFIX))
            else {
                continue;
            };
            let m = out.entry(t.as_str().to_owned()).or_insert(Stages {
                amount: e.amount,
                held_at: u64::MAX,
                applied_at: u64::MAX,
                settled_at: u64::MAX,
            });
            match e.kind {
                EntryKind::Hold => m.held_at = *commit,
                EntryKind::TransferIn => m.applied_at = *commit,
                EntryKind::TransferOut | EntryKind::Release => m.settled_at = *commit,
                _ => {}
            }
        }
    }
    out
}

/// The account's (balance, held) after commit `c`.
fn money_at(ledger: &Ledger, shards: &[AccountId], moves: &[Stages], c: u64) -> (u64, u64) {
    let (mut balance, mut held) = (0u64, 0u64);
    for s in shards {
        let Some(a) = ledger.accounts.get(s.as_str()) else {
            continue;
        };
        let i = a.states.partition_point(|(at, _)| *at <= c);
        if let Some((_, r)) = i.checked_sub(1).map(|i| &a.states[i]) {
            balance += r.balance;
            held += r.held;
        }
    }
    for m in moves {
        if m.applied_at <= c && c < m.settled_at {
            balance -= m.amount;
        }
        if m.held_at <= c && c < m.settled_at {
            held -= m.amount;
        }
    }
    (balance, held)
}

impl Check for ShardedReads {
    fn name(&self) -> &'static str {
        "sharded reads (6.1, 6.2: a read of a sharded account counts its money once)"
    }

    fn on_reply(&mut self, ctx: &ReplyCtx<'_>) -> Result<(), String> {
        let (OpKind::Get, ClientResult::Reply(Ok(Reply::Account { view, .. }))) =
            (&ctx.op.kind, ctx.result)
        else {
            return Ok(());
        };
        let Some(k) = view.shards else {
            return Ok(());
        };
        let l = ctx.ledger;
        let shards: Vec<AccountId> = (0..k).map(|j| ctx.op.account.shard(j)).collect();
        let moves: Vec<Stages> = moves(l, &shards).into_values().collect();
        // The commits in the window that changed a shard: the sum can change only there.
        let mut commits: BTreeSet<u64> = BTreeSet::from([ctx.sent_commit]);
        for s in &shards {
            if let Some(a) = l.accounts.get(s.as_str()) {
                commits.extend(a.states.iter().map(|(c, _)| *c));
            }
        }
        let possible: Vec<(u64, u64)> = commits
            .range(ctx.sent_commit..=l.commits)
            .map(|&c| money_at(l, &shards, &moves, c))
            .collect();
        let money = (view.balance, view.held);
        let w = Window::of(l, ctx.op.account.as_str(), ctx.sent_commit);
        if !possible.contains(&money)
            || view.available != view.balance - view.held
            || !w.had_status(view.status)
        {
            return Err(format!(
                "{}: read {} of {k} shards as balance {} held {} available {} ({:?}), but while it was in flight the account had (balance, held) in {possible:?}",
                ctx.op.reference, ctx.op.account, view.balance, view.held, view.available, view.status
            ));
        }
        Ok(())
    }
}
