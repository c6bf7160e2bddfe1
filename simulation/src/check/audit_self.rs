//! The audit's own check: at each phase end, the ledger the audit has just passed is corrupted
//! on purpose, one way at a time, and the audit must report each corruption under the right
//! check, naming the account or the transfer and the figures an operator needs.
//!
//! A clean run only shows that the audit raises no false alarm; an audit that reported nothing
//! at all would pass every seed. So the corruptions are applied to the run's real ledger (its
//! accounts, journals and transfers, different in every seed): an entry's amount changed, an
//! entry dropped or repeated, a stored state off its journal or holding more than its balance,
//! an overdraft, a capture or release without a hold, a transfer leg lost, doubled, moved to
//! another transfer or in another currency, a pending transfer left at quiescence, money
//! created by a journal that replays cleanly. Each names the violations it must produce
//! ([`Expect`]: check, account, transfer, and the message's words, figures included). Every
//! corrupted report must also be consistent: not `ok`, counts per check adding up to the
//! listed violations plus those not listed, at most [`VIOLATIONS_LISTED_MAX`] listed, each
//! listed under a failed check.
//!
//! Legal extremes must pass: an account whose balance reaches exactly the largest amount, and
//! one holding a single deposit of exactly that amount.
//!
//! Left out: corruptions the audit leaves to other checkers by design (saga records, leases,
//! idempotency, summaries' status), and cases this ledger does not contain in a given seed
//! (a corruption that needs, say, a failed transfer is skipped when there is none).

use super::audit::{audit, fed, Fed, FedAccount};
use crate::ledger::Ledger;
use node::ledger::audit::{PENDING_IDS_QUOTED, VIOLATIONS_LISTED_MAX};
use protocol::admin::{AuditCheck, AuditReport, CheckStatus};
use protocol::api::{AccountStatus, AccountView, Entry, EntryKind};
use protocol::{AccountId, Currency, TransferId, AMOUNT_MAX};
use std::collections::{BTreeMap, BTreeSet};

/// A violation a corruption must produce.
#[derive(Debug)]
struct Expect {
    check: AuditCheck,
    account: Option<String>,
    transfer: Option<String>,
    words: String,
}

fn expect(
    check: AuditCheck,
    account: Option<&str>,
    transfer: Option<&str>,
    words: String,
) -> Expect {
    Expect {
        check,
        account: account.map(str::to_owned),
        transfer: transfer.map(str::to_owned),
        words,
    }
}

/// Where one entry is: account index in [`Fed::accounts`], entry index in its journal.
type At = (usize, usize);

/// The journal entries of one transfer, by kind (the first of each).
#[derive(Clone, Copy, Debug, Default)]
struct Legs {
    hold: Option<At>,
    out: Option<At>,
    credit: Option<At>,
    release: Option<At>,
}

/// A corruption: changes `fed` and says what the audit must report, or `None` when this
/// ledger has nothing it applies to.
type Corruption = fn(&mut Fed, &Index) -> Option<Vec<Expect>>;

/// The transfers of the fed ledger, and which of them completed, failed or are pending with
/// their credit applied.
struct Index {
    legs: BTreeMap<TransferId, Legs>,
    pending: BTreeSet<TransferId>,
    quiescent: bool,
}

impl Index {
    fn new(fed: &Fed, quiescent: bool) -> Self {
        let mut legs: BTreeMap<TransferId, Legs> = BTreeMap::new();
        for (i, a) in fed.accounts.iter().enumerate() {
            let FedAccount::Stored(_, journal) = a else {
                continue;
            };
            for (j, e) in journal.iter().enumerate() {
                let Some(t) = &e.transfer_id else { continue };
                let l = legs.entry(t.clone()).or_default();
                let slot = match e.kind {
                    EntryKind::Hold => &mut l.hold,
                    EntryKind::TransferOut => &mut l.out,
                    EntryKind::TransferIn => &mut l.credit,
                    EntryKind::Release => &mut l.release,
                    EntryKind::Deposit | EntryKind::Withdrawal => continue,
                };
                slot.get_or_insert((i, j));
            }
        }
        let pending = fed.pending.iter().cloned().collect();
        Index {
            legs,
            pending,
            quiescent,
        }
    }

    /// Transfers whose legs match `pred`, in id order.
    fn find(&self, pred: impl Fn(&Legs) -> bool) -> impl Iterator<Item = (&TransferId, &Legs)> {
        self.legs.iter().filter(move |(_, l)| pred(l))
    }

    /// Settled transfers whose legs match `pred`, in id order.
    fn settled(&self, pred: impl Fn(&Legs) -> bool) -> impl Iterator<Item = (&TransferId, &Legs)> {
        self.find(pred).filter(|(t, _)| !self.pending.contains(*t))
    }

    fn completed(&self) -> impl Iterator<Item = (&TransferId, &Legs)> {
        self.settled(|l| {
            l.hold.is_some() && l.out.is_some() && l.credit.is_some() && l.release.is_none()
        })
    }

    fn failed(&self) -> impl Iterator<Item = (&TransferId, &Legs)> {
        self.settled(|l| {
            l.hold.is_some() && l.release.is_some() && l.out.is_none() && l.credit.is_none()
        })
    }
}

fn view(fed: &Fed, i: usize) -> &AccountView {
    match &fed.accounts[i] {
        FedAccount::Stored(v, _) => v,
        FedAccount::NoState(_) => unreachable!("legs are only in stored accounts"),
    }
}

fn entry(fed: &mut Fed, (i, j): At) -> &mut Entry {
    match &mut fed.accounts[i] {
        FedAccount::Stored(_, journal) => &mut journal[j],
        FedAccount::NoState(_) => unreachable!("legs are only in stored accounts"),
    }
}

fn name(fed: &Fed, i: usize) -> String {
    view(fed, i).id.as_str().to_owned()
}

/// Stored accounts with their index, in id order.
fn stored(fed: &Fed) -> impl Iterator<Item = (usize, &AccountView, &Vec<Entry>)> {
    fed.accounts
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a {
            FedAccount::Stored(v, j) => Some((i, v, j)),
            FedAccount::NoState(_) => None,
        })
}

/// Balance and held before entry `j` of `journal` (the previous entry's, as it says).
fn before(journal: &[Entry], j: usize) -> (u64, u64) {
    j.checked_sub(1).map_or((0, 0), |p| {
        (
            journal[p].balance,
            journal[p].balance - journal[p].available,
        )
    })
}

/// The first entry of a stored account that `pred` accepts (given the journal and index).
fn first_entry(fed: &Fed, pred: impl Fn(&[Entry], usize) -> bool) -> Option<At> {
    stored(fed).find_map(|(i, _, journal)| {
        (0..journal.len())
            .find(|&j| pred(journal, j))
            .map(|j| (i, j))
    })
}

/// A transfer id no transfer of the run has.
fn fresh_id() -> TransferId {
    TransferId::new("corrupt-leg").expect("valid id")
}

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
    let hold = l.hold?;
    move_leg(fed, other.release?, t);
    Some(vec![expect(
        AuditCheck::AtomicTransfers,
        Some(&name(fed, hold.0)),
        Some(t.as_str()),
        format!("inconsistent legs (1 hold, 0 transfer_out, 0 transfer_in, 2 release){SHAPES}"),
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
    if v.balance >= AMOUNT_MAX {
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
const EXACT: [&str; 7] = [
    "deposit amount",
    "state balance",
    "credit lost",
    "capture lost",
    "release lost",
    "amounts differ",
    "money created",
];

/// Every corruption, with its name for failures.
const CORRUPTIONS: [(&str, Corruption); 35] = [
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
];

/// A legal extreme the audit must pass: the first account with a deposit gets that deposit
/// raised so that its highest balance is exactly the largest amount, every later balance and
/// its stored state raised alike. False when no account has a deposit.
fn top_up_to_max(fed: &mut Fed) -> bool {
    let Some((i, j)) = first_entry(fed, |j, k| j[k].kind == EntryKind::Deposit) else {
        return false;
    };
    let FedAccount::Stored(v, journal) = &mut fed.accounts[i] else {
        return false;
    };
    let highest = journal[j..].iter().map(|e| e.balance).max().unwrap_or(0);
    let d = AMOUNT_MAX - highest;
    journal[j].amount += d;
    for e in &mut journal[j..] {
        e.balance += d;
        e.available += d;
    }
    v.balance += d;
    v.available += d;
    true
}

/// Id of the account the checks add (after every account of the run in id order).
const MAX_ACCOUNT: &str = "zz-max";

/// Adds an account that holds exactly the largest amount, from one deposit of it, and then
/// `more` deposits of 1 (balances past the largest amount: corrupt when `more > 0`).
fn add_max_account(fed: &mut Fed, more: u64) {
    let currency = stored(fed).next().map_or_else(
        || Currency::new("EUR").expect("valid"),
        |(_, v, _)| v.currency,
    );
    let deposit = |seq: u64, amount: u64, balance: u64| Entry {
        seq,
        kind: EntryKind::Deposit,
        amount,
        balance,
        available: balance,
        transfer_id: None,
        reference: None,
        at: 0,
    };
    let mut journal = vec![deposit(1, AMOUNT_MAX, AMOUNT_MAX)];
    for k in 1..=more {
        journal.push(deposit(k + 1, 1, AMOUNT_MAX + k));
    }
    let balance = AMOUNT_MAX + more;
    let view = AccountView {
        id: AccountId::new(MAX_ACCOUNT).expect("valid id"),
        currency,
        status: AccountStatus::Active,
        balance,
        available: balance,
        held: 0,
        seq: more + 1,
    };
    fed.accounts.push(FedAccount::Stored(view, journal));
}

/// Balances past the largest amount, in a journal that otherwise replays.
fn balance_too_large(fed: &mut Fed, _: &Index) -> Option<Vec<Expect>> {
    add_max_account(fed, 1);
    let over = AMOUNT_MAX + 1;
    Some(vec![
        expect(
            AuditCheck::Replay,
            Some(MAX_ACCOUNT),
            None,
            format!("entry seq 2: balance {over} exceeds 2^53-1"),
        ),
        expect(
            AuditCheck::Replay,
            Some(MAX_ACCOUNT),
            None,
            format!("stored balance {over} exceeds 2^53-1"),
        ),
    ])
}

/// The names of the corruptions, in the order of the bits of [`check`]'s mask.
pub fn corruption_names() -> Vec<&'static str> {
    CORRUPTIONS.iter().map(|(n, _)| *n).collect()
}

/// Corrupts the ledger (already passed by the audit) every way that applies to it, one at a
/// time, and checks the audit's report of each; returns the mask of corruptions applied (bit
/// `i` for the `i`-th of [`corruption_names`]).
pub fn check(ledger: &Ledger, quiescent: bool) -> Result<u64, String> {
    let clean = fed(ledger)?;
    let ix = Index::new(&clean, quiescent);
    // Legal extremes: balances and a deposit of exactly the largest amount.
    let mut top = clean.clone();
    if top_up_to_max(&mut top) {
        let r = audit(&top, quiescent);
        if !r.ok {
            return Err(format!(
                "an account topped up to exactly the largest amount failed the audit: {:?}",
                r.violations.first()
            ));
        }
    }
    let mut max = clean.clone();
    add_max_account(&mut max, 0);
    let r = audit(&max, quiescent);
    if !r.ok {
        return Err(format!(
            "an account holding one deposit of exactly the largest amount failed the audit: {:?}",
            r.violations.first()
        ));
    }
    let mut applied = 0u64;
    for (i, (what, corrupt)) in CORRUPTIONS.iter().enumerate() {
        let mut bad = clean.clone();
        let Some(expects) = corrupt(&mut bad, &ix) else {
            continue;
        };
        applied |= 1 << i;
        let r = audit(&bad, quiescent);
        consistent(&r).map_err(|e| format!("corruption \"{what}\": {e}"))?;
        if EXACT.contains(what) && r.violations.len() != expects.len() {
            return Err(format!(
                "corruption \"{what}\": the audit reported {} violations, not exactly {:?}: {:?}",
                r.violations.len(),
                expects,
                r.violations
            ));
        }
        for x in &expects {
            if !reported(&r, x) {
                return Err(format!(
                    "corruption \"{what}\": the audit did not report {x:?}; it reported {:?}",
                    r.violations.iter().take(5).collect::<Vec<_>>()
                ));
            }
        }
    }
    Ok(applied)
}

/// A report of a corrupted ledger: failed, counts adding up, the cap kept, each listed
/// violation under a failed check.
fn consistent(r: &AuditReport) -> Result<(), String> {
    let total: u64 = r.checks.iter().map(|c| c.violations).sum();
    let failed = |check: AuditCheck| {
        r.checks
            .iter()
            .any(|c| c.check == check && c.status == CheckStatus::Fail && c.violations > 0)
    };
    if r.ok || total == 0 {
        return Err(format!("the report passed: {:?}", r.checks));
    }
    if total != r.violations.len() as u64 + r.violations_not_listed {
        return Err(format!(
            "{total} violations counted, {} listed and {} not",
            r.violations.len(),
            r.violations_not_listed
        ));
    }
    if r.violations.len() != (total as usize).min(VIOLATIONS_LISTED_MAX) {
        return Err(format!(
            "{} of {total} violations listed",
            r.violations.len()
        ));
    }
    if let Some(v) = r.violations.iter().find(|v| !failed(v.check)) {
        return Err(format!("{v:?} is listed under a check that passed"));
    }
    if let Some(c) = r
        .checks
        .iter()
        .find(|c| (c.status == CheckStatus::Fail) != (c.violations > 0))
    {
        return Err(format!("check {c:?}"));
    }
    Ok(())
}

/// The report lists a violation as `x` says (all its words, in one message).
fn reported(r: &AuditReport, x: &Expect) -> bool {
    r.violations.iter().any(|v| {
        v.check == x.check
            && (x.account.is_none() || v.account == x.account)
            && (x.transfer.is_none() || v.transfer_id == x.transfer)
            && x.words.split('\u{0}').all(|w| v.message.contains(w))
    })
}
