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

mod corruptions;
use corruptions::{CORRUPTIONS, EXACT};

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

/// The transfers of the fed ledger (not its holds nor disbursements), and which of them completed, failed or
/// are pending with their credit applied.
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
                let Some(t) = e
                    .transfer_id
                    .as_ref()
                    .filter(|t| !fed.not_transfers.contains(*t))
                else {
                    continue;
                };
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
        shard: None,
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
        shards: None,
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
