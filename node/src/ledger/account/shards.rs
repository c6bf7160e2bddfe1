//! Sharded (hot) accounts, as each shard's core sees them.
//!
//! A sharded account `X` of K shards is K + 1 account records: `X` itself, which holds no
//! money and names K (`AccountRecord::shards`), and the shards `X~0` .. `X~{K-1}`, ordinary
//! accounts that hold its money, each with its own journal, lease and place on the ring (each
//! record names K too). Routing picks the shard a request runs on (`crate::ledger::shards`);
//! here is what a shard does that a plain account does not:
//! - **A debit that finds too little here** is refused like on any account, and the shard
//!   asks each sibling to [`SagaMsg::Gather`] the missing amount to it; the caller's router
//!   then reads the account as a whole and either answers `insufficient_funds` (the account
//!   lacks the money) or tries the same shard again once the money arrived.
//! - **A sibling asked to gather** moves what it can spare, at most the amount asked, as an
//!   ordinary transfer saga to the asking shard (a *move*, id [`move_id`]), so a move is
//!   exactly-once and atomic by the saga's own rules. A shard sends at most one move at a
//!   time to each sibling and [`MOVES_OUT_MAX`] in all; a gather it cannot serve now is
//!   dropped (the next attempt asks again).
//! - **Moves are marked** (`Write::Moving`) from their start to their settlement, so a read of
//!   the account as a whole finds the money in motion and counts it once: at its source until
//!   its destination applied it (`crate::ledger::shards::sum`).
//! - **Moves are not the account's transfers**: they are not in its transfer list.
//!
//! The record of `X` refuses every movement (`account_not_found`: no money account has that
//! id); a request reaches it only when it raced the account's opening.
//!
//! Left out: moving money between shards ahead of need (a rebalancer), and changing K.

use super::*;

/// How the id of a move between two shards begins; ids the nodes make never do.
pub const MOVE_PREFIX: &str = "mv.";

/// Most moves one shard has in flight at once.
pub const MOVES_OUT_MAX: usize = 8;

/// True when `id` names a move between two shards of one account.
pub fn is_move(id: &TransferId) -> bool {
    id.as_str().starts_with(MOVE_PREFIX)
}

/// The id of the move a shard starts with journal entry `seq`: `mv.{account}.{shard}.{seq}`,
/// unique because a shard's sequence numbers are.
pub fn move_id(shard: &AccountId, seq: u64) -> TransferId {
    let index = shard.shard_index().expect("moves leave shards");
    TransferId::new(format!("{MOVE_PREFIX}{}.{index}.{seq}", shard.public_str()))
        .expect("move ids fit the transfer id alphabet and length")
}

/// The amount a command takes out of the account's available money, if it is a debit.
pub(super) fn debit_of(cmd: &Command) -> Option<u64> {
    match cmd {
        Command::Withdraw { amount, .. }
        | Command::Transfer { amount, .. }
        | Command::Hold { amount, .. } => Some(amount.get()),
        Command::Disburse { legs, .. } => legs
            .iter()
            .try_fold(0u64, |t, (_, a)| t.checked_add(a.get())),
        _ => None,
    }
}

impl AccountCore {
    /// The account's shards, when this is a shard or the record of a sharded account.
    pub fn shards(&self) -> Option<u16> {
        self.record.as_ref().and_then(|r| r.shards)
    }

    /// A debit of `amount` found too little available money on this shard: ask every sibling
    /// to gather what is missing here.
    pub(super) fn gather_for(&self, amount: u64, step: &mut Step) {
        let (Some(k), Some(r)) = (self.shards(), self.record.as_ref()) else {
            return;
        };
        let Some(me) = self.id.shard_index() else {
            return;
        };
        let Some(want) = amount
            .checked_sub(r.available())
            .and_then(|w| Amount::new(w).ok())
        else {
            return;
        };
        let account = self.id.public();
        for j in (0..k).filter(|j| *j != me) {
            step.effects.push(Effect::Send(SagaMsg::Gather {
                from: self.id.clone(),
                to: account.shard(j),
                want,
            }));
        }
    }

    /// A sibling asks for up to `want`: move what this shard can spare to it, unless a move
    /// to it is already in flight or this shard has as many moves out as it may.
    pub(super) fn gather(&mut self, from: AccountId, want: Amount, now_ms: u64, step: &mut Step) {
        assert!(
            from.is_shard() && from.public() == self.id.public() && from != self.id,
            "{}: a gather from {from}, not a sibling",
            self.id
        );
        let Ok(r) = self.movable() else {
            return;
        };
        let give = want.get().min(r.available());
        let next_seq = r.seq + 1;
        let moves = self.open.iter().filter(|(id, _)| is_move(id));
        let (busy, moving) = moves.fold((false, 0), |(b, n), (_, s)| (b || s.to == from, n + 1));
        if give == 0 || busy || moving >= MOVES_OUT_MAX || self.room_for_one().is_err() {
            return;
        }
        let id = move_id(&self.id, next_seq);
        let amount = Amount::new(give).expect("a positive amount below the balance");
        self.start_transfer(id.clone(), from, amount, None, None, now_ms, step)
            .expect("a move this shard can afford starts");
        step.writes.push(Write::Moving(id, true));
    }
}
