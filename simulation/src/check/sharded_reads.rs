//! Sharded accounts (DESIGN.md 6.1, 6.2 and 6.3 for the money of one account spread over
//! shards): a read never counts money twice nor misses settled money, also while money moves
//! between shards, and moves stay inside their account.
//!
//! A read of the hot account is a sum over its shards made by the node
//! (`node::ledger::shards::sum`, from the move markers). This checker computes the account's
//! money independently ([`money_at`]), from what the ledger stored: each shard's balance and
//! `held` after every commit, and the journal entries of the moves between shards (a move is
//! held at its source from its `hold` entry to its `transfer_out` or `release`, and is in its
//! destination's balance from its `transfer_in`). At any commit, the account's balance is the
//! shards' less each move its destination applied and its source has not yet debited, and its
//! `held` is the shards' less every move still held at its source. A read must equal that at
//! some commit while it was in flight, with the status the account's own record had then;
//! an account whose record names shards is read as their sum, never as its own record.
//!
//! At every commit, each shard's move markers are exactly its moves not yet settled, and every
//! entry of a move is on a shard of the account its id names (a move never leaves it).

use super::{Check, ReplyCtx, Window};
use crate::ledger::{Commit, Ledger, Row};
use crate::workload::{ClientResult, OpKind, OpSpec};
use node::ledger::account::{Reply, MOVE_PREFIX};
use node::ledger::records::{SagaRecord, SenderStatus};
use protocol::api::EntryKind;
use protocol::ids::SHARD_SEPARATOR;
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
fn moves(ledger: &Ledger, shards: &[AccountId]) -> Vec<Stages> {
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
    out.into_values().collect()
}

/// The money of `account` (of `k` shards) after commit `c`, as (balance, held), computed from
/// its shards' stored states and its moves' journal entries; an error when they contradict.
pub fn money_at(
    ledger: &Ledger,
    account: &AccountId,
    k: u16,
    c: u64,
) -> Result<(u64, u64), String> {
    let shards: Vec<AccountId> = (0..k).map(|j| account.shard(j)).collect();
    let moves = moves(ledger, &shards);
    money_of(ledger, &shards, &moves, c)
}

fn money_of(
    ledger: &Ledger,
    shards: &[AccountId],
    moves: &[Stages],
    c: u64,
) -> Result<(u64, u64), String> {
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
    let bad = || format!("after commit {c}, the moves of {shards:?} exceed their shards' money");
    for m in moves {
        if m.applied_at <= c && c < m.settled_at {
            balance = balance.checked_sub(m.amount).ok_or_else(bad)?;
        }
        if m.held_at <= c && c < m.settled_at {
            held = held.checked_sub(m.amount).ok_or_else(bad)?;
        }
    }
    Ok((balance, held))
}

/// The shard count the account's own record names (now), if any.
fn shards_of(ledger: &Ledger, account: &str) -> Option<u16> {
    ledger.accounts.get(account)?.state()?.shards
}

/// The account a move's id names: `mv.{account}.{shard}.{seq}`.
fn move_account(t: &str) -> Option<&str> {
    let rest = t.strip_prefix(MOVE_PREFIX)?;
    let mut parts = rest.rsplitn(3, '.');
    let (_, _, account) = (parts.next()?, parts.next()?, parts.next()?);
    Some(account)
}

impl Check for ShardedReads {
    fn name(&self) -> &'static str {
        "sharded accounts (6.1, 6.2, 6.3: reads count money once, moves stay inside)"
    }

    fn on_commit(&mut self, before: &Ledger, commit: &Commit, _: &[OpSpec]) -> Result<(), String> {
        for row in &commit.rows {
            // Every entry of a move is on a shard of the account its id names.
            if let Row::Journal(id, seq, Some(e)) = row {
                let Some(t) = e.transfer_id.as_ref().map(|t| t.as_str()) else {
                    continue;
                };
                if let Some(account) = t.strip_prefix(MOVE_PREFIX).and(move_account(t)) {
                    let on = AccountId::new(id.clone()).map_err(|e| e.to_string())?;
                    if !on.is_shard() || on.public_str() != account {
                        return Err(format!(
                            "{id} entry {seq}: {:?} of move {t}, which belongs to {account}'s shards",
                            e.kind
                        ));
                    }
                }
            }
        }
        // A shard's markers are exactly its moves not settled, after this commit; only shards
        // move money.
        let mut touched: BTreeSet<&String> = BTreeSet::new();
        for row in &commit.rows {
            match row {
                Row::Moving(id, t, _) if !id.contains(SHARD_SEPARATOR) => {
                    return Err(format!("{id}, not a shard, marks move {t}"));
                }
                Row::Moving(id, ..) | Row::Saga(id, ..) if id.contains(SHARD_SEPARATOR) => {
                    touched.insert(id);
                }
                _ => {}
            }
        }
        for id in touched {
            let mut marks = before
                .accounts
                .get(id)
                .map(|a| a.moving.clone())
                .unwrap_or_default();
            let mut open: BTreeMap<String, bool> = before
                .accounts
                .get(id)
                .map(|a| {
                    a.sagas
                        .range(MOVE_PREFIX.to_owned()..)
                        .take_while(|(t, _)| t.starts_with(MOVE_PREFIX))
                        .map(|(t, r)| (t.clone(), holding(r)))
                        .collect()
                })
                .unwrap_or_default();
            for row in &commit.rows {
                match row {
                    Row::Moving(a, t, on) if a == id => {
                        if *on {
                            marks.insert(t.clone());
                        } else {
                            marks.remove(t);
                        }
                    }
                    Row::Saga(a, t, Some(r)) if a == id && t.starts_with(MOVE_PREFIX) => {
                        open.insert(t.clone(), holding(r));
                    }
                    _ => {}
                }
            }
            let holding: BTreeSet<String> = open
                .into_iter()
                .filter_map(|(t, h)| h.then_some(t))
                .collect();
            if marks != holding {
                return Err(format!(
                    "{id}: move markers {marks:?}, but its moves not settled are {holding:?}"
                ));
            }
        }
        Ok(())
    }

    fn on_reply(&mut self, ctx: &ReplyCtx<'_>) -> Result<(), String> {
        let (OpKind::Get, ClientResult::Reply(Ok(Reply::Account { view, .. }))) =
            (&ctx.op.kind, ctx.result)
        else {
            return Ok(());
        };
        let l = ctx.ledger;
        let stored = shards_of(l, ctx.op.account.as_str());
        let Some(k) = view.shards.or(stored) else {
            return Ok(());
        };
        if view.shards != stored {
            return Err(format!(
                "{}: read {} as {:?} shards; its record names {stored:?}",
                ctx.op.reference, ctx.op.account, view.shards
            ));
        }
        let shards: Vec<AccountId> = (0..k).map(|j| ctx.op.account.shard(j)).collect();
        let moves = moves(l, &shards);
        // The commits in the window that changed a shard: the sum can change only there.
        let mut commits: BTreeSet<u64> = BTreeSet::from([ctx.sent_commit]);
        for s in &shards {
            if let Some(a) = l.accounts.get(s.as_str()) {
                commits.extend(a.states.iter().map(|(c, _)| *c));
            }
        }
        let possible = commits
            .range(ctx.sent_commit..=l.commits)
            .map(|&c| money_of(l, &shards, &moves, c))
            .collect::<Result<Vec<(u64, u64)>, String>>()?;
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

    fn phase_end(&mut self, ledger: &Ledger, _: &[OpSpec], quiescent: bool) -> Result<(), String> {
        // Once quiet, no money is in motion.
        if quiescent {
            if let Some((id, a)) = ledger.accounts.iter().find(|(_, a)| !a.moving.is_empty()) {
                return Err(format!("{id} still marks moves {:?} once quiet", a.moving));
            }
        }
        Ok(())
    }
}

/// True for a move's sender record that still holds the money.
fn holding(r: &SagaRecord) -> bool {
    matches!(
        r,
        SagaRecord::Sender {
            status: SenderStatus::Holding,
            ..
        }
    )
}
