//! The corruptions the audit is shown, each with the violations it must produce (see the
//! parent module for how they are applied and judged).

use super::*;

/// The conservation violation of `currency` in the corrupted `fed`: the sum of its balances,
/// less what pending transfers credited before their capture, is off by `off_by`.
fn conservation(fed: &Fed, ix: &Index, currency: Currency, off_by: i128) -> Expect {
    let balances: u128 = stored(fed)
        .filter(|(_, v, _)| v.currency == currency)
        .map(|(_, v, _)| u128::from(v.balance))
        .sum();
    let flying: u128 = ix
        .find(|l| l.hold.is_some() && l.credit.is_some() && l.out.is_none() && l.release.is_none())
        .filter(|(t, _)| ix.pending.contains(*t))
        .filter_map(|(_, l)| l.credit)
        .filter(|&(i, _)| view(fed, i).currency == currency)
        .map(|(i, j)| match &fed.accounts[i] {
            FedAccount::Stored(_, journal) => u128::from(journal[j].amount),
            FedAccount::NoState(_) => 0,
        })
        .sum();
    // And what pending disbursements credited (their legs all in the payer's currency).
    let flying = flying
        + stored(fed)
            .filter(|(_, v, _)| v.currency == currency)
            .flat_map(|(_, _, j)| j.iter())
            .filter(|e| e.kind == EntryKind::TransferIn)
            .filter(|e| {
                e.transfer_id
                    .as_ref()
                    .is_some_and(|t| fed.disbursing.contains(t))
            })
            .map(|e| u128::from(e.amount))
            .sum::<u128>();
    let less = if flying > 0 {
        format!(" less {flying} credited by pending transfers not yet captured")
    } else {
        String::new()
    };
    expect(
        AuditCheck::Conservation,
        None,
        None,
        format!("{currency}: sum of balances {balances}{less} != "),
    )
    .with(format!("(off by {off_by})"))
}

impl Expect {
    /// Also requires `more` in the same message.
    fn with(mut self, more: String) -> Self {
        self.words = format!("{}\u{0}{more}", self.words);
        self
    }
}

/// A deposit's amount raised by one, its balances left: the replay and conservation see it.
fn deposit_amount(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    let at = first_entry(fed, |j, k| {
        j[k].kind == EntryKind::Deposit && j[k].amount < AMOUNT_MAX
    })?;
    let (id, currency) = (name(fed, at.0), view(fed, at.0).currency);
    let e = entry(fed, at);
    e.amount += 1;
    let words = format!(
        "entry seq {} (deposit {}): journal says balance {} available {}, replay gives balance {} available {}",
        e.seq,
        e.amount,
        e.balance,
        e.available,
        e.balance + 1,
        e.available + 1
    );
    Some(vec![
        expect(AuditCheck::Replay, Some(&id), None, words),
        conservation(fed, ix, currency, -1),
    ])
}

/// An entry in the middle of a journal dropped.
fn entry_dropped(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    let (i, j) = first_entry(fed, |j, k| k + 1 < j.len() && k == j.len() / 2)?;
    let id = name(fed, i);
    let FedAccount::Stored(_, journal) = &mut fed.accounts[i] else {
        return None;
    };
    let s = journal.remove(j).seq;
    Some(vec![expect(
        AuditCheck::Replay,
        Some(&id),
        None,
        format!("journal gap: seq {s} to {s} missing before seq {}", s + 1),
    )])
}

/// A journal's last entry dropped: it ends before the account's `seq`.
fn journal_short(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    let (i, _) = first_entry(fed, |_, _| true)?;
    let id = name(fed, i);
    let FedAccount::Stored(v, journal) = &mut fed.accounts[i] else {
        return None;
    };
    journal.pop();
    Some(vec![expect(
        AuditCheck::Replay,
        Some(&id),
        None,
        format!(
            "the journal ends at seq {} but the account's seq is {}",
            v.seq - 1,
            v.seq
        ),
    )])
}

/// An entry numbered like the one before it.
fn seq_repeated(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    let at = first_entry(fed, |_, k| k == 1)?;
    let id = name(fed, at.0);
    let e = entry(fed, at);
    e.seq -= 1;
    Some(vec![expect(
        AuditCheck::Replay,
        Some(&id),
        None,
        format!(
            "entry seq {} repeats or goes backwards (expected seq {}); skipped",
            e.seq,
            e.seq + 1
        ),
    )])
}

/// A stored state one more than its journal.
fn state_balance(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    let (i, ..) = stored(fed).find(|(_, v, _)| v.balance < AMOUNT_MAX)?;
    let FedAccount::Stored(v, _) = &mut fed.accounts[i] else {
        return None;
    };
    let words = format!(
        "stored state is balance {} held {} available {}, the journal replays to balance {} held {} available {}",
        v.balance + 1,
        v.held,
        v.available + 1,
        v.balance,
        v.held,
        v.available
    );
    v.balance += 1;
    v.available += 1;
    let (id, currency) = (v.id.as_str().to_owned(), v.currency);
    Some(vec![
        expect(AuditCheck::Replay, Some(&id), None, words),
        conservation(fed, ix, currency, 1),
    ])
}

/// A stored state holding more than its balance.
fn state_overdrawn(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    let (i, ..) = stored(fed).next()?;
    let FedAccount::Stored(v, _) = &mut fed.accounts[i] else {
        return None;
    };
    v.held = v.balance + 1;
    v.available = 0;
    let id = v.id.as_str().to_owned();
    Some(vec![expect(
        AuditCheck::NoOverdraft,
        Some(&id),
        None,
        format!(
            "stored state holds {} of a balance of {} (available below zero)",
            v.held, v.balance
        ),
    )])
}

/// A stored state whose available is not its balance less its holds.
fn state_available(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    let (i, ..) = stored(fed).find(|(_, v, _)| v.available > 0)?;
    let FedAccount::Stored(v, _) = &mut fed.accounts[i] else {
        return None;
    };
    v.available -= 1;
    let id = v.id.as_str().to_owned();
    Some(vec![expect(
        AuditCheck::Replay,
        Some(&id),
        None,
        format!(
            "stored state shows available {} but balance {} - held {} = {}",
            v.available,
            v.balance,
            v.held,
            v.available + 1
        ),
    )])
}

/// A stored balance over the largest amount.
fn state_too_large(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    let (i, ..) = stored(fed).last()?;
    let FedAccount::Stored(v, _) = &mut fed.accounts[i] else {
        return None;
    };
    v.balance = AMOUNT_MAX + 1;
    v.available = v.balance - v.held;
    let id = v.id.as_str().to_owned();
    Some(vec![expect(
        AuditCheck::Replay,
        Some(&id),
        None,
        format!("stored balance {} exceeds 2^53-1", AMOUNT_MAX + 1),
    )])
}

/// A journal's first credit turned into a withdrawal from nothing.
fn withdrawal_overdraft(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    let at = first_entry(fed, |j, k| k == 0 && j[k].kind == EntryKind::Deposit)?;
    let id = name(fed, at.0);
    let e = entry(fed, at);
    e.kind = EntryKind::Withdrawal;
    Some(vec![expect(
        AuditCheck::NoOverdraft,
        Some(&id),
        None,
        format!(
            "entry seq {} (withdrawal): withdrawal of {} exceeds balance 0",
            e.seq, e.amount
        ),
    )])
}

/// A hold of more than was available.
fn hold_too_large(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    let at = first_entry(fed, |j, k| j[k].kind == EntryKind::Hold)?;
    let id = name(fed, at.0);
    let FedAccount::Stored(_, journal) = &fed.accounts[at.0] else {
        return None;
    };
    let (b, h) = before(journal, at.1);
    let e = entry(fed, at);
    e.amount = b - h + 1;
    Some(vec![expect(
        AuditCheck::NoOverdraft,
        Some(&id),
        None,
        format!(
            "entry seq {} (hold): available goes below zero (balance {b}, held {})",
            e.seq,
            h + e.amount
        ),
    )])
}

/// A hold turned into a capture (or a release) of money never held.
fn unheld(kind: EntryKind, fed: &mut Fed) -> Option<Vec<Expect>> {
    let at = first_entry(fed, |j, k| {
        j[k].kind == EntryKind::Hold && j[k].amount > before(j, k).1
    })?;
    let id = name(fed, at.0);
    let FedAccount::Stored(_, journal) = &fed.accounts[at.0] else {
        return None;
    };
    let (_, h) = before(journal, at.1);
    let e = entry(fed, at);
    e.kind = kind;
    let why = match kind {
        EntryKind::TransferOut => format!(
            "transfer_out of {} exceeds held {h} (captured without a hold)",
            e.amount
        ),
        _ => format!("release of {} exceeds held {h}", e.amount),
    };
    Some(vec![expect(
        AuditCheck::Replay,
        Some(&id),
        None,
        format!("entry seq {} ({}): {why}", e.seq, kind.as_str()),
    )])
}

fn capture_unheld(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    unheld(EntryKind::TransferOut, fed)
}

fn release_unheld(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    unheld(EntryKind::Release, fed)
}

/// An entry claiming more available than its balance (negative holds).
fn negative_held(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    let at = first_entry(fed, |j, k| j[k].balance < AMOUNT_MAX)?;
    let id = name(fed, at.0);
    let e = entry(fed, at);
    e.available = e.balance + 1;
    Some(vec![expect(
        AuditCheck::Replay,
        Some(&id),
        None,
        format!(
            "entry seq {}: available {} exceeds balance {} (negative held)",
            e.seq, e.available, e.balance
        ),
    )])
}

/// A hold entry that lost its transfer id.
fn leg_without_id(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    let at = first_entry(fed, |j, k| j[k].kind == EntryKind::Hold)?;
    let id = name(fed, at.0);
    let e = entry(fed, at);
    e.transfer_id = None;
    Some(vec![expect(
        AuditCheck::AtomicTransfers,
        Some(&id),
        None,
        format!("entry seq {} (hold) has no transfer_id", e.seq),
    )])
}

/// Moves one leg of transfer `t` to transfer `to`.
fn move_leg(fed: &mut Fed, at: At, to: &TransferId) {
    entry(fed, at).transfer_id = Some(to.clone());
}

const SHAPES: &str =
    "; expected hold+transfer_out+transfer_in (completed) or hold+release (failed)";

/// One leg of transfer `t` (held at `hold`) moved to a fresh transfer id: `t` is left with
/// the shape `why`, and the fresh id has only that leg (`counts`, as the audit prints them).
fn leg_lost(
    fed: &mut Fed,
    t: &TransferId,
    hold: At,
    leg: At,
    why: &str,
    counts: &str,
) -> Vec<Expect> {
    move_leg(fed, leg, &fresh_id());
    vec![
        expect(
            AuditCheck::AtomicTransfers,
            Some(&name(fed, hold.0)),
            Some(t.as_str()),
            format!("{why}{SHAPES}"),
        ),
        expect(
            AuditCheck::AtomicTransfers,
            Some(&name(fed, leg.0)),
            Some(fresh_id().as_str()),
            format!("has no hold ({counts}){SHAPES}"),
        ),
    ]
}

/// A completed transfer's credit moved to another transfer id: debited, never credited.
fn credit_lost(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    let (t, l) = ix.completed().next()?;
    Some(leg_lost(
        fed,
        t,
        l.hold?,
        l.credit?,
        "half-applied: debited but never credited (hold and transfer_out without transfer_in)",
        "0 hold, 0 transfer_out, 1 transfer_in, 0 release",
    ))
}

/// A completed transfer's capture moved away: credited, never captured.
fn capture_lost(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    let (t, l) = ix.completed().next()?;
    Some(leg_lost(
        fed,
        t,
        l.hold?,
        l.out?,
        "half-applied: credited but the sender's hold was never captured",
        "0 hold, 1 transfer_out, 0 transfer_in, 0 release",
    ))
}

/// A failed transfer's release moved away: a hold never settled.
fn release_lost(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    let (t, l) = ix.failed().next()?;
    Some(leg_lost(
        fed,
        t,
        l.hold?,
        l.release?,
        "never settled: the hold was neither captured nor released",
        "0 hold, 0 transfer_out, 0 transfer_in, 1 release",
    ))
}

/// One leg of another transfer given to a completed one: counted twice, or both released and
/// settled.
fn leg_doubled(
    fed: &mut Fed,
    ix: &Index,
    pick: fn(&Legs) -> Option<At>,
    why: &str,
) -> Option<Vec<Expect>> {
    let mut done = ix.completed();
    let (t, l) = done.next()?;
    let (_, other) = ix
        .legs
        .iter()
        .find(|(o, ol)| *o != t && pick(ol).is_some())?;
    let hold = l.hold?;
    move_leg(fed, pick(other)?, t);
    Some(vec![expect(
        AuditCheck::AtomicTransfers,
        Some(&name(fed, hold.0)),
        Some(t.as_str()),
        format!("{why}{SHAPES}"),
    )])
}

fn credited_twice(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    leg_doubled(
        fed,
        ix,
        |l| l.credit,
        "credited 2 times (1 hold, 1 transfer_out, 2 transfer_in, 0 release)",
    )
}

fn debited_twice(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    leg_doubled(
        fed,
        ix,
        |l| l.out,
        "debited 2 times (1 hold, 2 transfer_out, 1 transfer_in, 0 release)",
    )
}

fn released_and_settled(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    leg_doubled(
        fed,
        ix,
        |l| l.release,
        "both released and settled (1 hold, 1 transfer_out, 1 transfer_in, 1 release)",
    )
}

/// A completed transfer's credit moved away and a failed transfer's release given to it:
/// captured and released.
fn captured_and_released(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    let (t, l) = ix.completed().next()?;
    let (_, f) = ix.failed().next()?;
    let (hold, credit, release) = (l.hold?, l.credit?, f.release?);
    move_leg(fed, credit, &fresh_id());
    move_leg(fed, release, t);
    Some(vec![expect(
        AuditCheck::AtomicTransfers,
        Some(&name(fed, hold.0)),
        Some(t.as_str()),
        format!(
            "both released and settled (1 hold, 1 transfer_out, 0 transfer_in, 1 release){SHAPES}"
        ),
    )])
}

/// A failed transfer given a completed transfer's credit: credited and released.
fn credited_and_released(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    let (t, l) = ix.failed().next()?;
    let (_, done) = ix.completed().next()?;
    let hold = l.hold?;
    move_leg(fed, done.credit?, t);
    Some(vec![expect(
        AuditCheck::AtomicTransfers,
        Some(&name(fed, hold.0)),
        Some(t.as_str()),
        format!(
            "both released and settled (1 hold, 0 transfer_out, 1 transfer_in, 1 release){SHAPES}"
        ),
    )])
}

/// A failed transfer given another failed transfer's release: released twice.
fn released_twice(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    let mut failed = ix.failed();
    let (t, l) = failed.next()?;
    let (_, other) = failed.next()?;
    let (hold, release, moved) = (l.hold?, l.release?, other.release?);
    move_leg(fed, moved, t);
    // Judged as a hold's legs (held once, released twice): by account, then by sums.
    let counts = "(1 hold, 0 transfer_out, 0 transfer_in, 2 release)";
    let words = if moved.0 != hold.0 {
        format!("held or released on several accounts {counts}")
    } else {
        let (held, released) = (entry(fed, hold).amount, entry(fed, release).amount);
        let released = released + entry(fed, moved).amount;
        format!("released {released} but held only {held} {counts}")
    };
    Some(vec![expect(
        AuditCheck::AtomicTransfers,
        Some(&name(fed, hold.0)),
        Some(t.as_str()),
        words,
    )])
}

/// A completed transfer given another transfer's hold: held twice.
fn held_twice(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    let (t, l) = ix.completed().next()?;
    let (_, other) = ix
        .legs
        .iter()
        .find(|(o, ol)| *o != t && ol.hold.is_some())?;
    let (hold, moved) = (l.hold?, other.hold?);
    move_leg(fed, moved, t);
    // Named after the hold fed first (accounts are fed in id order).
    Some(vec![expect(
        AuditCheck::AtomicTransfers,
        Some(&name(fed, hold.0.min(moved.0))),
        Some(t.as_str()),
        format!("inconsistent legs (2 hold, 1 transfer_out, 1 transfer_in, 0 release){SHAPES}"),
    )])
}

/// A completed transfer whose credit is one more than its hold.
fn amounts_differ(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    let (t, l) = ix.completed().next()?;
    let (hold, credit) = (l.hold?, l.credit?);
    let a = entry(fed, hold).amount;
    let e = entry(fed, credit);
    e.amount = a + 1;
    // The receiver's journal no longer replays either.
    let replay = format!(
        "entry seq {} (transfer_in {}): journal says balance {} available {}, replay gives balance {} available {}",
        e.seq,
        a + 1,
        e.balance,
        e.available,
        e.balance + 1,
        e.available + 1
    );
    Some(vec![
        expect(
            AuditCheck::AtomicTransfers,
            Some(&name(fed, hold.0)),
            Some(t.as_str()),
            format!(
                "amounts differ: hold {a}, transfer_out {a}, transfer_in {}",
                a + 1
            ),
        ),
        expect(AuditCheck::Replay, Some(&name(fed, credit.0)), None, replay),
    ])
}

/// A completed transfer's receiver in another currency.
fn other_currency(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    let zzz = Currency::new("ZZZ").expect("valid currency");
    let (t, l) = ix.completed().next()?;
    let (hold, credit) = (l.hold?, l.credit?);
    let FedAccount::Stored(v, _) = &mut fed.accounts[credit.0] else {
        return None;
    };
    v.currency = zzz;
    let (x, y) = (name(fed, hold.0), name(fed, credit.0));
    let cx = view(fed, hold.0).currency;
    Some(vec![expect(
        AuditCheck::AtomicTransfers,
        Some(&x),
        Some(t.as_str()),
        format!("{x} holds {cx} but {y} holds {zzz}"),
    )])
}

/// A failed transfer releasing one more than it held.
fn release_differs(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    let (t, l) = ix.failed().next()?;
    let (hold, release) = (l.hold?, l.release?);
    let a = entry(fed, hold).amount;
    entry(fed, release).amount = a + 1;
    let x = name(fed, hold.0);
    Some(vec![expect(
        AuditCheck::AtomicTransfers,
        Some(&x),
        Some(t.as_str()),
        format!(
            "release of {} on {x} does not match the hold of {a} on {x}",
            a + 1
        ),
    )])
}

/// A pending transfer, credited but not captured, whose credit is one more than its hold.
fn pending_credit_differs(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    let (t, l) = ix
        .find(|l| l.hold.is_some() && l.credit.is_some() && l.out.is_none() && l.release.is_none())
        .find(|(t, _)| ix.pending.contains(*t))?;
    let (hold, credit) = (l.hold?, l.credit?);
    let a = entry(fed, hold).amount;
    entry(fed, credit).amount = a + 1;
    let (x, y) = (name(fed, hold.0), name(fed, credit.0));
    Some(vec![expect(
        AuditCheck::AtomicTransfers,
        Some(&x),
        Some(t.as_str()),
        format!(
            "pending transfer credited {} on {y} for a hold of {a} on {x}",
            a + 1
        ),
    )])
}

/// A completed transfer still in the pending index after every fault healed.
fn left_pending(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    if !ix.quiescent {
        return None;
    }
    let (t, _) = ix.completed().next()?;
    fed.pending.push(t.clone());
    Some(vec![expect(
        AuditCheck::Settled,
        None,
        None,
        format!("1 transfers still pending after every fault healed ({t})"),
    )])
}

/// Every settled transfer still in the pending index after every fault healed: the report
/// counts them and quotes the first few.
fn many_left_pending(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    if !ix.quiescent {
        return None;
    }
    let ids: Vec<TransferId> = ix.settled(|_| true).map(|(t, _)| t.clone()).collect();
    if ids.len() <= PENDING_IDS_QUOTED {
        return None;
    }
    let quoted: Vec<&str> = ids
        .iter()
        .take(PENDING_IDS_QUOTED)
        .map(|t| t.as_str())
        .collect();
    let words = format!(
        "{} transfers still pending after every fault healed ({}, ...)",
        ids.len(),
        quoted.join(", ")
    );
    fed.pending.extend(ids);
    Some(vec![expect(AuditCheck::Settled, None, None, words)])
}

/// A deposit of nothing, or of more than the largest amount.
fn amount_out_of_range(fed: &mut Fed, amount: u64) -> Option<Vec<Expect>> {
    let at = first_entry(fed, |j, k| j[k].kind == EntryKind::Deposit)?;
    let id = name(fed, at.0);
    let e = entry(fed, at);
    e.amount = amount;
    Some(vec![expect(
        AuditCheck::Replay,
        Some(&id),
        None,
        format!(
            "entry seq {} (deposit): amount {amount} is outside 1 to {AMOUNT_MAX}",
            e.seq
        ),
    )])
}

fn amount_zero(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    amount_out_of_range(fed, 0)
}

fn amount_too_large(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    amount_out_of_range(fed, AMOUNT_MAX + 1)
}

/// A completed transfer credited one more than its hold, the receiver's journal and state
/// raised to match: every journal replays, but money was created.
fn money_created(fed: &mut Fed, ix: &Index) -> Option<Vec<Expect>> {
    let (_, l) = ix.completed().next()?;
    let (i, j) = l.credit?;
    let FedAccount::Stored(v, journal) = &mut fed.accounts[i] else {
        return None;
    };
    // Every balance from the credit on goes up by one: none may already be at the cap (a
    // balance past 2^53-1 is a violation of its own).
    if v.balance >= AMOUNT_MAX || journal[j..].iter().any(|e| e.balance >= AMOUNT_MAX) {
        return None;
    }
    journal[j].amount += 1;
    for e in &mut journal[j..] {
        e.balance += 1;
        e.available += 1;
    }
    v.balance += 1;
    v.available += 1;
    let (currency, a) = (v.currency, journal[j].amount - 1);
    let hold = l.hold?;
    Some(vec![
        conservation(fed, ix, currency, 1),
        expect(
            AuditCheck::AtomicTransfers,
            Some(&name(fed, hold.0)),
            None,
            format!(
                "amounts differ: hold {a}, transfer_out {a}, transfer_in {}",
                a + 1
            ),
        ),
    ])
}

/// Every entry's amount raised: more violations than a report lists.
fn flood(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    let n: usize = stored(fed).map(|(_, _, j)| j.len()).sum();
    if n <= VIOLATIONS_LISTED_MAX {
        return None;
    }
    for a in &mut fed.accounts {
        if let FedAccount::Stored(_, journal) = a {
            for e in journal.iter_mut().filter(|e| e.amount < AMOUNT_MAX) {
                e.amount += 1;
            }
        }
    }
    // The report's consistency (checked for every corruption) covers the cap.
    Some(vec![])
}

/// Corruptions whose every violation is known: the audit reports those and nothing more (a
/// false alarm beside the right one is a defect too).
pub(super) const EXACT: [&str; 7] = [
    "deposit amount",
    "state balance",
    "credit lost",
    "capture lost",
    "release lost",
    "amounts differ",
    "money created",
];

/// Every corruption, with its name for failures.
/// A shard of a sharded account in another currency than the account's.
fn shard_other_currency(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    let (account, currency) =
        stored(fed).find_map(|(_, v, _)| v.shards.map(|_| (v.id.clone(), v.currency)))?;
    let i = stored(fed)
        .find_map(|(i, v, _)| (v.id.public() == account && v.id.is_shard()).then_some(i))?;
    let FedAccount::Stored(v, _) = &mut fed.accounts[i] else {
        return None;
    };
    let other = ["EUR", "USD"]
        .into_iter()
        .map(|c| Currency::new(c).expect("valid"))
        .find(|c| *c != currency)?;
    v.currency = other;
    let j = v.id.shard_index().expect("a shard");
    let words = format!("shard {j} holds {other}, the account {currency}");
    Some(vec![expect(
        AuditCheck::Shards,
        Some(account.as_str()),
        None,
        words,
    )])
}

/// Money in a sharded account's own record (it belongs in its shards).
fn sharded_record_holds_money(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    let i = stored(fed).find_map(|(i, v, _)| v.shards.is_some().then_some(i))?;
    let FedAccount::Stored(v, _) = &mut fed.accounts[i] else {
        return None;
    };
    v.balance += 7;
    v.available += 7;
    let (id, k) = (v.id.as_str().to_owned(), v.shards.expect("sharded"));
    let words = format!("account of {k} shards holds balance 7 held 0 seq 0 in its own record");
    Some(vec![expect(AuditCheck::Shards, Some(&id), None, words)])
}

pub(super) const CORRUPTIONS: [(&str, Corruption); 37] = [
    ("deposit amount", deposit_amount),
    ("entry dropped", entry_dropped),
    ("journal short", journal_short),
    ("seq repeated", seq_repeated),
    ("state balance", state_balance),
    ("state overdrawn", state_overdrawn),
    ("state available", state_available),
    ("state too large", state_too_large),
    ("withdrawal overdraft", withdrawal_overdraft),
    ("hold too large", hold_too_large),
    ("capture without hold", capture_unheld),
    ("release without hold", release_unheld),
    ("negative held", negative_held),
    ("leg without id", leg_without_id),
    ("credit lost", credit_lost),
    ("capture lost", capture_lost),
    ("release lost", release_lost),
    ("credited twice", credited_twice),
    ("debited twice", debited_twice),
    ("released and settled", released_and_settled),
    ("captured and released", captured_and_released),
    ("credited and released", credited_and_released),
    ("released twice", released_twice),
    ("held twice", held_twice),
    ("amounts differ", amounts_differ),
    ("other currency", other_currency),
    ("release differs", release_differs),
    ("pending credit differs", pending_credit_differs),
    ("left pending", left_pending),
    ("many left pending", many_left_pending),
    ("amount zero", amount_zero),
    ("amount too large", amount_too_large),
    ("balance too large", balance_too_large),
    ("money created", money_created),
    ("flood", flood),
    ("shard in another currency", shard_other_currency),
    ("sharded record holds money", sharded_record_holds_money),
];
