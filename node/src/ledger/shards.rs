//! Sharded (hot) accounts: where a request runs, and what the account as a whole holds.
//! Pure functions, shared by the gateway and the simulator.
//!
//! A sharded account `X` keeps its money in K shards `X~0` .. `X~{K-1}` (see
//! `account/shards.rs` for what a shard does). Routing:
//! - **A credit** (deposit, incoming transfer, hold's receiver, disbursement leg) goes to the
//!   shard [`shard_for`] a seed picks: the idempotency key when there is one (so a repeat
//!   finds its record), else an id of the request. No counter: any node routes alone.
//! - **A debit** (withdrawal, outgoing transfer, hold, disbursement) goes to the shard its seed
//!   picks, for the same reason: the key's record lives on that shard. When that shard has
//!   too little, it refuses and gathers from its siblings; the router then reads the account
//!   ([`sum`]) and asks [`after_short`] whether to answer `insufficient_funds` (the account
//!   as a whole lacks the money: a refusal changes nothing, so it is correct as of that
//!   read) or to try the shard again once the gathered money arrived.
//!
//! Reads: [`sum`] adds the shards of one consistent storage snapshot. Money moving between
//! two shards is counted once, at its source until its destination applied it: a move in
//! flight is held at its source (in its balance and its `held`) and, once applied, also in the
//! destination's balance; so the sum takes every move out of `held` (it is the account's own
//! money, not held for anyone) and each applied move out of the balance (it is counted at its
//! destination).

use super::planted::{planted, Bug};
use super::records::AccountRecord;
use protocol::api::{AccountStatus, AccountView};
use protocol::{AccountId, ErrorCode};

/// The shard of K that `seed` picks: FNV-1a of the seed, modulo K (stable across nodes,
/// releases and restarts).
pub fn shard_for(k: u16, seed: &str) -> u16 {
    assert!(k >= 1, "an account has at least one shard");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(k)) as u16
}

/// A move of a shard's money to a sibling, not yet settled, as a read found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoveInFlight {
    /// Amount.
    pub amount: u64,
    /// Whether the destination applied it (its record of the move says so).
    pub applied: bool,
}

/// One shard as one snapshot found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardState {
    /// Its record (`None`: never opened, so it holds nothing).
    pub record: Option<AccountRecord>,
    /// Its moves out, in flight.
    pub moves_out: Vec<MoveInFlight>,
}

/// The account as a whole, from its own record and its shards' states of one snapshot:
/// every shard's money counted once, money in motion at its source until applied.
///
/// Stored records that contradict each other (a shard holding less than its moves in flight)
/// are reported as an error, never summed into a wrong figure.
pub fn sum(
    id: &AccountId,
    account: &AccountRecord,
    shards: &[ShardState],
) -> Result<AccountView, String> {
    let k = account
        .shards
        .ok_or_else(|| format!("{id} is not sharded"))?;
    if shards.len() != usize::from(k) {
        return Err(format!(
            "{id}: {} shard states for {k} shards",
            shards.len()
        ));
    }
    let (mut balance, mut held) = (0u64, 0u64);
    for s in shards {
        let Some(r) = &s.record else { continue };
        let moving: u64 = s.moves_out.iter().map(|m| m.amount).sum();
        let applied: u64 = s
            .moves_out
            .iter()
            .filter(|m| m.applied && !planted(Bug::MoveCountedTwice))
            .map(|m| m.amount)
            .sum();
        // A move applied is in its source's balance, and every move in flight in its held.
        let (b, h) = (r.balance.checked_sub(applied), r.held.checked_sub(moving));
        let (Some(b), Some(h)) = (b, h) else {
            return Err(format!(
                "{id}: a shard holds less than its moves in flight: {r:?}, {s:?}"
            ));
        };
        balance = balance
            .checked_add(b)
            .ok_or_else(|| format!("{id}: balance overflow"))?;
        held += h;
    }
    let available = balance
        .checked_sub(held)
        .ok_or_else(|| format!("{id}: held {held} above balance {balance}"))?;
    Ok(AccountView {
        id: id.clone(),
        currency: account.currency,
        status: account.status,
        balance,
        available,
        held,
        seq: 0,
        shards: Some(k),
    })
}

/// What a router does after a shard refused a debit for want of money.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Short {
    /// Refuse the debit with this code: `insufficient_funds` when the account as a whole has
    /// less available than the debit, `account_frozen` or `account_closed` when the account
    /// is (a freeze reaching its shards one after the other).
    Refuse(ErrorCode),
    /// The account has it, spread over shards: the refusing shard gathers it; try it again.
    Retry,
}

/// The verdict on a debit of `amount` a shard refused, from a read of the whole account
/// made after the refusal.
pub fn after_short(whole: &AccountView, amount: u64) -> Short {
    match whole.status {
        AccountStatus::Frozen => Short::Refuse(ErrorCode::AccountFrozen),
        AccountStatus::Closed => Short::Refuse(ErrorCode::AccountClosed),
        AccountStatus::Active
            if whole.available < amount
                || (planted(Bug::ShortVerdictOffByOne) && whole.available == amount) =>
        {
            Short::Refuse(ErrorCode::InsufficientFunds)
        }
        AccountStatus::Active => Short::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::Currency;

    fn record(balance: u64, held: u64, shards: Option<u16>) -> AccountRecord {
        AccountRecord {
            currency: Currency::new("EUR").unwrap(),
            status: AccountStatus::Active,
            balance,
            held,
            seq: 1,
            opened_at: 0,
            shards,
        }
    }

    #[test]
    fn a_move_counts_once_at_every_stage() {
        // Proves the sum counts 100 moving from shard 0 to shard 1 exactly once before it is
        // applied, once applied and not yet captured, and once settled; and that the money
        // in motion stays available (it is the account's own).
        let id = AccountId::new("m").unwrap();
        let parent = record(0, 0, Some(2));
        let stage = |s0: (u64, u64), m: Option<bool>, s1: u64| {
            let moves_out = m
                .map(|applied| {
                    vec![MoveInFlight {
                        amount: 100,
                        applied,
                    }]
                })
                .unwrap_or_default();
            sum(
                &id,
                &parent,
                &[
                    ShardState {
                        record: Some(record(s0.0, s0.1, Some(2))),
                        moves_out,
                    },
                    ShardState {
                        record: Some(record(s1, 0, Some(2))),
                        moves_out: vec![],
                    },
                ],
            )
            .unwrap()
        };
        // 150 on shard 0 (30 of it held by a hold), 20 on shard 1.
        for v in [
            stage((150, 130), Some(false), 20), // moving: held at its source
            stage((150, 130), Some(true), 120), // applied, not yet captured
            stage((50, 30), None, 120),         // settled
        ] {
            assert_eq!((v.balance, v.held, v.available), (170, 30, 140));
            assert_eq!((v.shards, v.seq), (Some(2), 0));
        }
        // Records that contradict their markers are an error, not a figure.
        let bad = ShardState {
            record: Some(record(50, 30, Some(1))),
            moves_out: vec![MoveInFlight {
                amount: 100,
                applied: true,
            }],
        };
        assert!(sum(&id, &record(0, 0, Some(1)), &[bad]).is_err());
    }

    #[test]
    fn seeds_pick_every_shard_and_always_the_same() {
        // Proves routing is stable for a seed and spreads seeds over all shards.
        let picked: std::collections::BTreeSet<u16> =
            (0..200).map(|i| shard_for(8, &format!("t_{i}"))).collect();
        assert_eq!(picked.len(), 8);
        assert_eq!(shard_for(8, "key-1"), shard_for(8, "key-1"));
        assert_eq!(shard_for(1, "anything"), 0);
    }

    #[test]
    fn a_short_shard_retries_only_when_the_account_has_the_money() {
        // Proves the verdict: the whole account's available decides, and a frozen account
        // never retries (it answers `account_frozen`, as any frozen account).
        let mut v = sum(
            &AccountId::new("m").unwrap(),
            &record(0, 0, Some(1)),
            &[ShardState {
                record: Some(record(100, 0, Some(1))),
                moves_out: vec![],
            }],
        )
        .unwrap();
        assert_eq!(after_short(&v, 100), Short::Retry);
        let refused = Short::Refuse(ErrorCode::InsufficientFunds);
        assert_eq!(after_short(&v, 101), refused);
        v.status = AccountStatus::Frozen;
        assert_eq!(after_short(&v, 1), Short::Refuse(ErrorCode::AccountFrozen));
    }
}
