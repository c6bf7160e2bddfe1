//! The ledger audit (DESIGN.md section 6, invariants 1, 2, 3 and 6), pure: no IO, no clock.
//!
//! One set of rules, three users: `walletctl audit` feeds it pages it reads over HTTP,
//! `GET /admin/audit` feeds it pages it reads from the store ([`super::audit_scan`]), and the
//! simulator feeds it the whole store at each phase end. Each user only decides where the
//! accounts, journals and pending transfers come from.
//!
//! An [`Auditor`] is fed one account at a time ([`Auditor::begin_account`], its journal in
//! pages with [`Auditor::feed`], then [`Auditor::end_account`]) and returns an [`AuditReport`]
//! from [`Auditor::finish`]. Journals are replayed as they stream in, so one account's entries
//! are never all in memory. What grows with the data: the per-transfer map (one small trace per
//! transfer id, needed because a transfer's legs sit in two journals read at different times),
//! the table of account ids and currencies that those traces point into, and the per-currency
//! totals. Violations kept for the report are capped at [`VIOLATIONS_LISTED_MAX`]; the rest are
//! only counted.
//!
//! After a bad entry the replay resynchronizes to the journal's own balance and available, so
//! one corrupt entry is reported once, not again on every later entry of the account.
//!
//! Transfers the caller names as pending ([`Auditor::set_pending`], or
//! [`Auditor::still_pending`] when pending is itself a violation) may stop after the hold or
//! after the credit; money credited but not yet captured counts as in flight in conservation,
//! so a pending transfer is reported once, not also as created money.
//!
//! The audit reads a ledger that may still be changing, one page at a time: entries written
//! after an account was listed are ignored, so that its replay ends at the listed state.
//!
//! Left out on purpose: what only the saga records, idempotency records and leases show
//! (exactly once, single writer, the saga's own bookkeeping; the simulator checks those on
//! every commit), and durability of acknowledged replies (only a client knows what it was
//! told). It judges transfers by their journal entries, not by their summaries' status.
//! An id held or released more than once with nothing debited or credited under it is
//! judged as a hold (it releases what it held, on one account): the audit does not know
//! which ids are holds, so a plain transfer held and released twice passes it (the simulator
//! checks every transfer's legs per id). A disbursement is a transfer with several credits:
//! completed, they add up to its hold and its debit; pending (named by
//! [`Auditor::set_disbursements`]), they add up to at most its hold. The journals do not say
//! which receiver a leg was for, so the audit judges the legs by their sum (one leg credited
//! twice and another never passes it); the simulator checks each leg against its record.

use protocol::admin::{AuditCheck, AuditCheckResult, AuditReport, AuditViolation, CheckStatus};
use protocol::api::{AccountView, Entry, EntryKind};
use protocol::{Currency, TransferId, AMOUNT_MAX};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Most violations listed in a report; further ones are counted in `violations_not_listed`.
pub const VIOLATIONS_LISTED_MAX: usize = 100;

/// Pending transfer ids quoted in the `settled` violation of [`Auditor::still_pending`].
pub const PENDING_IDS_QUOTED: usize = 5;

/// Sums per currency for the conservation check (u128: no overflow for any realistic ledger).
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    balances: u128,
    deposits: u128,
    withdrawals: u128,
}

/// The first entry of one kind seen for a transfer, how many there were, their sum, and
/// whether they were all on the first one's account.
#[derive(Clone, Copy, Debug, Default)]
struct Leg {
    count: u32,
    account: u32,
    amount: u64,
    total: u128,
    one_account: bool,
}

impl Leg {
    fn add(&mut self, account: u32, amount: u64) {
        if self.count == 0 {
            self.account = account;
            self.amount = amount;
            self.one_account = true;
        }
        self.one_account &= self.account == account;
        self.total += u128::from(amount);
        self.count = self.count.saturating_add(1);
    }
}

/// Every journal entry of one transfer, by kind (accounts as indexes into `Auditor::accounts`).
#[derive(Clone, Copy, Debug, Default)]
struct Trace {
    hold: Leg,
    out: Leg,
    credit: Leg,
    release: Leg,
}

/// Replay state of the account being fed.
#[derive(Debug)]
struct Replay {
    index: u32,
    view: AccountView,
    next_seq: u64,
    balance: u64,
    held: u64,
}

/// Streams accounts and journals through the checks.
#[derive(Debug, Default)]
pub struct Auditor {
    accounts: Vec<(String, Currency)>,
    current: Option<Replay>,
    totals: BTreeMap<Currency, Totals>,
    transfers: HashMap<TransferId, Trace>,
    pending: HashSet<TransferId>,
    disbursements: HashSet<TransferId>,
    entries: u64,
    listed: Vec<AuditViolation>,
    counts: BTreeMap<AuditCheck, u64>,
    /// Sharded accounts fed: shard count and currency.
    sharded: BTreeMap<String, (u16, Currency)>,
    /// Shards fed, by their account's id: number and currency.
    shards: BTreeMap<String, Vec<(u16, Currency)>>,
}

impl Auditor {
    /// An auditor with nothing fed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records transfers still pending (already a `settled` violation): their partial legs
    /// (a hold, or a hold and a credit) are not reported again as atomicity violations.
    pub fn set_pending(&mut self, ids: impl IntoIterator<Item = TransferId>) {
        self.pending.extend(ids);
    }

    /// Records which pending ids are disbursements: some of their legs may be credited, the
    /// rest not yet (they must also be named pending).
    pub fn set_disbursements(&mut self, ids: impl IntoIterator<Item = TransferId>) {
        self.disbursements.extend(ids);
    }

    /// Records transfers still pending when the audit expected none: one `settled` violation
    /// (their count, `more` when the list is not all of them, and the first few ids), and
    /// [`Auditor::set_pending`] for them. `when` ends the sentence ("after 30s").
    pub fn still_pending(&mut self, ids: Vec<TransferId>, more: bool, when: &str) {
        if ids.is_empty() && !more {
            return;
        }
        let n = if more {
            format!("more than {}", ids.len())
        } else {
            ids.len().to_string()
        };
        let quoted: Vec<&str> = ids
            .iter()
            .take(PENDING_IDS_QUOTED)
            .map(|t| t.as_str())
            .collect();
        let etc = if ids.len() > quoted.len() || more {
            ", ..."
        } else {
            ""
        };
        let message = format!(
            "{n} transfers still pending {when} ({}{etc})",
            quoted.join(", ")
        );
        self.violation(AuditCheck::Settled, None, None, message);
        self.set_pending(ids);
    }

    /// Notes a sharded account's own record (it must hold nothing) or a shard.
    fn note_shards(&mut self, v: &AccountView) {
        let id = v.id.as_str();
        if let Some(k) = v.shards {
            self.sharded.insert(id.to_owned(), (k, v.currency));
            if (v.balance, v.held, v.seq) != (0, 0, 0) {
                let message = format!(
                    "account of {k} shards holds balance {} held {} seq {} in its own record (its money belongs in its shards)",
                    v.balance, v.held, v.seq
                );
                self.violation(AuditCheck::Shards, Some(id), None, message);
            }
        }
        if let Some(j) = v.id.shard_index() {
            let account = v.id.public_str().to_owned();
            self.shards
                .entry(account)
                .or_default()
                .push((j, v.currency));
        }
    }

    /// Every shard of a sharded account holds its currency. (A shard not there yet is an
    /// opening under way or cut short, which a retry of the open completes: the account's
    /// record is opened first, so it holds no money yet.)
    fn judge_shards(&mut self) {
        let sharded = std::mem::take(&mut self.sharded);
        let shards = std::mem::take(&mut self.shards);
        for (id, (k, currency)) in &sharded {
            let seen = shards.get(id).map(Vec::as_slice).unwrap_or(&[]);
            for (j, c) in seen {
                let message = if j >= k {
                    format!("shard {j} of an account of {k} shards")
                } else if c != currency {
                    format!("shard {j} holds {c}, the account {currency}")
                } else {
                    continue;
                };
                self.violation(AuditCheck::Shards, Some(id), None, message);
            }
        }
    }

    /// Records a violation found outside the journals (e.g. transfers still pending).
    pub fn violation(
        &mut self,
        check: AuditCheck,
        account: Option<&str>,
        transfer_id: Option<&str>,
        message: String,
    ) {
        let n = self.counts.entry(check).or_insert(0);
        *n += 1;
        if self.listed.len() < VIOLATIONS_LISTED_MAX {
            self.listed.push(AuditViolation {
                check,
                account: account.map(str::to_owned),
                transfer_id: transfer_id.map(str::to_owned),
                message,
            });
        }
    }

    /// Starts an account (its stored state as listed); ends the previous one if still open.
    pub fn begin_account(&mut self, view: &AccountView) {
        self.end_account();
        let index = u32::try_from(self.accounts.len()).unwrap_or(u32::MAX);
        self.accounts
            .push((view.id.as_str().to_owned(), view.currency));
        self.note_shards(view);
        self.current = Some(Replay {
            index,
            view: view.clone(),
            next_seq: 1,
            balance: 0,
            held: 0,
        });
    }

    /// True while the current account's journal has not reached its listed `seq`.
    pub fn wants_more(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|r| r.next_seq <= r.view.seq)
    }

    /// Replays a page of the current account's journal (entries in seq order).
    ///
    /// Entries after the account's listed `seq` were written after the listing; they are ignored
    /// so that the replay ends exactly at the stored state that was listed.
    pub fn feed(&mut self, entries: &[Entry]) {
        let Some(mut r) = self.current.take() else {
            return;
        };
        for e in entries {
            self.apply(&mut r, e);
        }
        self.current = Some(r);
    }

    /// Finishes the current account: compares the replay's end with the stored state.
    pub fn end_account(&mut self) {
        let Some(r) = self.current.take() else {
            return;
        };
        let v = &r.view;
        let id = v.id.as_str();
        // The stored state on its own: holds within the balance, available = balance - held.
        match v.balance.checked_sub(v.held) {
            None => self.violation(
                AuditCheck::NoOverdraft,
                Some(id),
                None,
                format!(
                    "stored state holds {} of a balance of {} (available below zero)",
                    v.held, v.balance
                ),
            ),
            Some(a) if a != v.available => self.violation(
                AuditCheck::Replay,
                Some(id),
                None,
                format!(
                    "stored state shows available {} but balance {} - held {} = {a}",
                    v.available, v.balance, v.held
                ),
            ),
            Some(_) => {}
        }
        if v.balance > AMOUNT_MAX {
            self.violation(
                AuditCheck::Replay,
                Some(id),
                None,
                format!("stored balance {} exceeds 2^53-1", v.balance),
            );
        }
        let last = r.next_seq - 1;
        if last < v.seq {
            self.violation(
                AuditCheck::Replay,
                Some(id),
                None,
                format!(
                    "the journal ends at seq {last} but the account's seq is {}",
                    v.seq
                ),
            );
        }
        let available = r.balance.checked_sub(r.held);
        if (r.balance, r.held, available) != (v.balance, v.held, Some(v.available)) {
            self.violation(
                AuditCheck::Replay,
                Some(id),
                None,
                format!(
                    "stored state is balance {} held {} available {}, the journal replays to balance {} held {} available {}",
                    v.balance,
                    v.held,
                    v.available,
                    r.balance,
                    r.held,
                    fmt_opt(available)
                ),
            );
        }
        let t = self.totals.entry(v.currency).or_default();
        t.balances += u128::from(v.balance);
    }

    /// Feeds one whole account: begin, one page holding every entry, end.
    #[cfg(test)]
    pub fn check_account(&mut self, view: &AccountView, entries: &[Entry]) {
        self.begin_account(view);
        self.feed(entries);
        self.end_account();
    }

    fn apply(&mut self, r: &mut Replay, e: &Entry) {
        if e.seq > r.view.seq {
            return;
        }
        let id = r.view.id.as_str().to_owned();
        let id = Some(id.as_str());
        if e.seq < r.next_seq {
            self.violation(
                AuditCheck::Replay,
                id,
                None,
                format!(
                    "entry seq {} repeats or goes backwards (expected seq {}); skipped",
                    e.seq, r.next_seq
                ),
            );
            return;
        }
        if e.seq > r.next_seq {
            self.violation(
                AuditCheck::Replay,
                id,
                None,
                format!(
                    "journal gap: seq {} to {} missing before seq {}",
                    r.next_seq,
                    e.seq - 1,
                    e.seq
                ),
            );
        }
        r.next_seq = e.seq + 1;
        self.entries += 1;
        let s = e.seq;
        let a = e.amount;
        let kind = e.kind.as_str();
        if a == 0 || a > AMOUNT_MAX {
            self.violation(
                AuditCheck::Replay,
                id,
                None,
                format!("entry seq {s} ({kind}): amount {a} is outside 1 to {AMOUNT_MAX}"),
            );
        }

        // Apply the entry with checked arithmetic; a failed subtraction names its check.
        let (b, h) = (r.balance, r.held);
        let step: Result<(u64, u64), (AuditCheck, String)> = match e.kind {
            EntryKind::Deposit => b.checked_add(a).map(|b| (b, h)).ok_or((
                AuditCheck::Replay,
                format!("deposit of {a} overflows balance {b}"),
            )),
            EntryKind::Withdrawal => b.checked_sub(a).map(|b| (b, h)).ok_or((
                AuditCheck::NoOverdraft,
                format!("withdrawal of {a} exceeds balance {b}"),
            )),
            EntryKind::Hold => h.checked_add(a).map(|h| (b, h)).ok_or((
                AuditCheck::Replay,
                format!("hold of {a} overflows held {h}"),
            )),
            EntryKind::TransferOut => match (b.checked_sub(a), h.checked_sub(a)) {
                (Some(b), Some(h)) => Ok((b, h)),
                (None, _) => Err((
                    AuditCheck::NoOverdraft,
                    format!("transfer_out of {a} exceeds balance {b}"),
                )),
                (_, None) => Err((
                    AuditCheck::Replay,
                    format!("transfer_out of {a} exceeds held {h} (captured without a hold)"),
                )),
            },
            EntryKind::Release => h.checked_sub(a).map(|h| (b, h)).ok_or((
                AuditCheck::Replay,
                format!("release of {a} exceeds held {h}"),
            )),
            EntryKind::TransferIn => b.checked_add(a).map(|b| (b, h)).ok_or((
                AuditCheck::Replay,
                format!("transfer_in of {a} overflows balance {b}"),
            )),
        };
        let consistent = match step {
            Err((check, why)) => {
                self.violation(check, id, None, format!("entry seq {s} ({kind}): {why}"));
                false
            }
            Ok((nb, nh)) => match nb.checked_sub(nh) {
                None => {
                    self.violation(
                        AuditCheck::NoOverdraft,
                        id,
                        None,
                        format!("entry seq {s} ({kind}): available goes below zero (balance {nb}, held {nh})"),
                    );
                    false
                }
                Some(na) if (nb, na) != (e.balance, e.available) => {
                    self.violation(
                        AuditCheck::Replay,
                        id,
                        None,
                        format!(
                            "entry seq {s} ({kind} {a}): journal says balance {} available {}, replay gives balance {nb} available {na}",
                            e.balance, e.available
                        ),
                    );
                    false
                }
                Some(_) => {
                    r.balance = nb;
                    r.held = nh;
                    true
                }
            },
        };
        if !consistent {
            // Resynchronize to the journal's own values so later entries are judged on their own.
            if e.available > e.balance {
                self.violation(
                    AuditCheck::Replay,
                    id,
                    None,
                    format!(
                        "entry seq {s}: available {} exceeds balance {} (negative held)",
                        e.available, e.balance
                    ),
                );
            }
            r.balance = e.balance;
            r.held = e.balance.saturating_sub(e.available);
        }
        if r.balance > AMOUNT_MAX {
            self.violation(
                AuditCheck::Replay,
                id,
                None,
                format!("entry seq {s}: balance {} exceeds 2^53-1", r.balance),
            );
        }

        let currency = r.view.currency;
        match e.kind {
            EntryKind::Deposit => {
                self.totals.entry(currency).or_default().deposits += u128::from(a)
            }
            EntryKind::Withdrawal => {
                self.totals.entry(currency).or_default().withdrawals += u128::from(a)
            }
            EntryKind::Hold
            | EntryKind::TransferOut
            | EntryKind::TransferIn
            | EntryKind::Release => match &e.transfer_id {
                None => self.violation(
                    AuditCheck::AtomicTransfers,
                    id,
                    None,
                    format!("entry seq {s} ({kind}) has no transfer_id"),
                ),
                Some(t) => {
                    let trace = self.transfers.entry(t.clone()).or_default();
                    let leg = match e.kind {
                        EntryKind::Hold => &mut trace.hold,
                        EntryKind::TransferOut => &mut trace.out,
                        EntryKind::TransferIn => &mut trace.credit,
                        _ => &mut trace.release,
                    };
                    leg.add(r.index, a);
                }
            },
        }
    }

    /// Runs the cross-account checks (conservation, atomic transfers) and builds the report.
    pub fn finish(mut self) -> AuditReport {
        self.end_account();
        self.judge_shards();
        let transfers = std::mem::take(&mut self.transfers);
        // Money a pending transfer credited before its sender captured it is in flight: it is
        // in the receiver's balance and still in the sender's (DESIGN.md 6.1 counts it once).
        let mut in_flight: BTreeMap<Currency, u128> = BTreeMap::new();
        for (t, trace) in &transfers {
            let (h, o, c, r) = (
                trace.hold.count,
                trace.out.count,
                trace.credit.count,
                trace.release.count,
            );
            if (h, o, r) == (1, 0, 0) && c >= 1 && self.pending.contains(t) {
                if let Some(&(_, currency)) = self.accounts.get(trace.credit.account as usize) {
                    *in_flight.entry(currency).or_default() += trace.credit.total;
                }
            }
        }
        let totals = std::mem::take(&mut self.totals);
        for (currency, t) in &totals {
            let expected = t.deposits as i128 - t.withdrawals as i128;
            let flying = in_flight.get(currency).copied().unwrap_or(0);
            let settled = t.balances as i128 - flying as i128;
            if settled != expected {
                let less = if flying > 0 {
                    format!(" less {flying} credited by pending transfers not yet captured")
                } else {
                    String::new()
                };
                self.violation(
                    AuditCheck::Conservation,
                    None,
                    None,
                    format!(
                        "{currency}: sum of balances {}{less} != deposits {} - withdrawals {} = {expected} (off by {})",
                        t.balances,
                        t.deposits,
                        t.withdrawals,
                        settled - expected
                    ),
                );
            }
        }
        // Sorted so that the listed violations do not depend on hash order.
        let mut bad: Vec<(&TransferId, String, u32)> = transfers
            .iter()
            .filter_map(|(t, trace)| {
                let disbursing = self.disbursements.contains(t);
                self.judge(trace, self.pending.contains(t), disbursing)
                    .map(|(msg, acct)| (t, msg, acct))
            })
            .collect();
        bad.sort_by(|a, b| a.0.cmp(b.0));
        for (t, msg, acct) in bad {
            let account = self.accounts.get(acct as usize).map(|a| a.0.clone());
            self.violation(
                AuditCheck::AtomicTransfers,
                account.as_deref(),
                Some(t.as_str()),
                msg,
            );
        }
        let checks: Vec<AuditCheckResult> = AuditCheck::ALL
            .iter()
            .map(|&check| {
                let n = self.counts.get(&check).copied().unwrap_or(0);
                AuditCheckResult {
                    check,
                    status: if n == 0 {
                        CheckStatus::Pass
                    } else {
                        CheckStatus::Fail
                    },
                    violations: n,
                }
            })
            .collect();
        let total: u64 = self.counts.values().sum();
        AuditReport {
            ok: total == 0,
            accounts: self.accounts.len() as u64,
            entries: self.entries,
            transfers: transfers.len() as u64,
            checks,
            violations_not_listed: total - self.listed.len() as u64,
            violations: self.listed,
        }
    }

    /// Why a transfer's legs are not a completed or failed transfer (`None` when they are),
    /// with the account to name (the sender's when known).
    fn judge(&self, t: &Trace, pending: bool, disbursing: bool) -> Option<(String, u32)> {
        let name = |i: u32| self.accounts.get(i as usize).map_or("?", |a| a.0.as_str());
        let currency = |i: u32| self.accounts.get(i as usize).map(|a| a.1);
        let (h, o, c, r) = (t.hold.count, t.out.count, t.credit.count, t.release.count);
        let who = if h > 0 {
            t.hold.account
        } else if o > 0 {
            t.out.account
        } else if c > 0 {
            t.credit.account
        } else {
            t.release.account
        };
        let counts = format!("{h} hold, {o} transfer_out, {c} transfer_in, {r} release");
        if o == 0 && c == 0 && h >= 1 && (h > 1 || r > 1 || (r == 1 && pending)) {
            return self.judge_hold(t, pending, &counts);
        }
        let hold = u128::from(t.hold.amount);
        // A disbursement: completed, its credits add up to its hold and its debit; still
        // pending, some are credited and they add up to no more than its hold.
        let completed_disbursement = (h, o, r) == (1, 1, 0)
            && c > 1
            && t.credit.total == hold
            && u128::from(t.out.amount) == hold;
        let pending_disbursement =
            pending && disbursing && (h, o, r) == (1, 0, 0) && t.credit.total <= hold;
        if completed_disbursement || pending_disbursement {
            let (credit, held) = (t.credit.account, t.hold.account);
            if c > 0 && currency(credit) != currency(held) {
                return Some((
                    format!(
                        "{} holds {} but {} holds {}",
                        name(held),
                        fmt_currency(currency(held)),
                        name(credit),
                        fmt_currency(currency(credit))
                    ),
                    who,
                ));
            }
            return None;
        }
        let shape = match (h, o, c, r) {
            (1, 1, 1, 0) | (1, 0, 0, 1) => None,
            // Pending sagas legitimately stop after the hold, or after the credit.
            (1, 0, 0, 0) | (1, 0, 1, 0) if pending => None,
            (1, 1, 0, 0) => Some("half-applied: debited but never credited (hold and transfer_out without transfer_in)".to_owned()),
            (1, 0, 1, 0) => Some("half-applied: credited but the sender's hold was never captured".to_owned()),
            (1, 0, 0, 0) => Some("never settled: the hold was neither captured nor released".to_owned()),
            (0, ..) => Some(format!("has no hold ({counts})")),
            (_, _, c, _) if c > 1 => Some(format!("credited {c} times ({counts})")),
            (_, o, ..) if o > 1 => Some(format!("debited {o} times ({counts})")),
            (_, _, _, r) if r > 0 && (o > 0 || c > 0) => {
                Some(format!("both released and settled ({counts})"))
            }
            _ => Some(format!("inconsistent legs ({counts})")),
        };
        if let Some(why) = shape {
            return Some((
                format!("{why}; expected hold+transfer_out+transfer_in (completed) or hold+release (failed)"),
                who,
            ));
        }
        let hold = t.hold;
        if o == 1 {
            let (out, credit) = (t.out, t.credit);
            if out.account != hold.account {
                return Some((
                    format!(
                        "transfer_out on {} but the hold is on {}",
                        name(out.account),
                        name(hold.account)
                    ),
                    who,
                ));
            }
            if out.amount != hold.amount || credit.amount != hold.amount {
                return Some((
                    format!(
                        "amounts differ: hold {}, transfer_out {}, transfer_in {}",
                        hold.amount, out.amount, credit.amount
                    ),
                    who,
                ));
            }
            if credit.account == hold.account {
                return Some((
                    format!("credited to the debited account {}", name(hold.account)),
                    who,
                ));
            }
            if currency(credit.account) != currency(hold.account) {
                return Some((
                    format!(
                        "{} holds {} but {} holds {}",
                        name(hold.account),
                        fmt_currency(currency(hold.account)),
                        name(credit.account),
                        fmt_currency(currency(credit.account))
                    ),
                    who,
                ));
            }
        } else if r == 1 {
            let release = t.release;
            if release.account != hold.account || release.amount != hold.amount {
                return Some((
                    format!(
                        "release of {} on {} does not match the hold of {} on {}",
                        release.amount,
                        name(release.account),
                        hold.amount,
                        name(hold.account)
                    ),
                    who,
                ));
            }
        } else if c == 1 && (t.credit.amount != hold.amount || t.credit.account == hold.account) {
            // A pending transfer with its credit applied: the credit must still match the hold.
            return Some((
                format!(
                    "pending transfer credited {} on {} for a hold of {} on {}",
                    t.credit.amount,
                    name(t.credit.account),
                    hold.amount,
                    name(hold.account)
                ),
                who,
            ));
        }
        None
    }
}

impl Auditor {
    /// Why the legs of an id held or released more than once (or released while pending),
    /// with nothing debited or credited under it, are not a settled hold: a hold (`POST /v1/holds`) holds again what a refused capture
    /// gave back, and releases what it held, all on its payer (`None` when they are). An open
    /// hold (named pending) may still hold more than it released.
    fn judge_hold(&self, t: &Trace, pending: bool, counts: &str) -> Option<(String, u32)> {
        let name = |i: u32| self.accounts.get(i as usize).map_or("?", |a| a.0.as_str());
        let (hold, release) = (t.hold, t.release);
        let why = if !hold.one_account || (release.count > 0 && !release.one_account) {
            format!("held or released on several accounts ({counts})")
        } else if release.count > 0 && release.account != hold.account {
            format!(
                "released on {} but held on {}",
                name(release.account),
                name(hold.account)
            )
        } else if release.total > hold.total {
            format!(
                "released {} but held only {} ({counts})",
                release.total, hold.total
            )
        } else if release.total < hold.total && !pending {
            format!(
                "never settled: held {} but released only {} ({counts})",
                hold.total, release.total
            )
        } else {
            return None;
        };
        Some((why, hold.account))
    }
}

fn fmt_opt(v: Option<u64>) -> String {
    v.map_or_else(|| "below zero".to_owned(), |v| v.to_string())
}

fn fmt_currency(c: Option<Currency>) -> String {
    c.map_or_else(|| "?".to_owned(), |c| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::api::AccountStatus;
    use protocol::AccountId;

    fn view(id: &str, balance: u64, held: u64, seq: u64) -> AccountView {
        AccountView {
            shards: None,
            id: AccountId::new(id).unwrap(),
            currency: Currency::new("EUR").unwrap(),
            status: AccountStatus::Active,
            balance,
            available: balance - held,
            held,
            seq,
        }
    }

    /// Builds a journal by replaying `ops` correctly, so tests only break what they mean to.
    fn journal(ops: &[(EntryKind, u64, Option<&str>)]) -> Vec<Entry> {
        let (mut b, mut h) = (0u64, 0u64);
        ops.iter()
            .enumerate()
            .map(|(i, &(kind, a, t))| {
                match kind {
                    EntryKind::Deposit | EntryKind::TransferIn => b += a,
                    EntryKind::Withdrawal => b -= a,
                    EntryKind::Hold => h += a,
                    EntryKind::TransferOut => {
                        b -= a;
                        h -= a
                    }
                    EntryKind::Release => h -= a,
                }
                Entry {
                    shard: None,
                    seq: i as u64 + 1,
                    kind,
                    amount: a,
                    balance: b,
                    available: b - h,
                    transfer_id: t.map(|t| TransferId::new(t).unwrap()),
                    reference: None,
                    at: 0,
                }
            })
            .collect()
    }

    /// The end state of a well-formed journal, as the account would store it.
    fn end_view(id: &str, j: &[Entry]) -> AccountView {
        match j.last() {
            None => view(id, 0, 0, 0),
            Some(e) => view(id, e.balance, e.balance - e.available, e.seq),
        }
    }

    /// alice pays bob 30 (t1, completed) and tries 500 (t2, failed and released).
    fn clean_ledger() -> Vec<(AccountView, Vec<Entry>)> {
        use EntryKind::*;
        let a = journal(&[
            (Deposit, 100, None),
            (Hold, 30, Some("t1")),
            (TransferOut, 30, Some("t1")),
            (Hold, 50, Some("t2")),
            (Release, 50, Some("t2")),
            (Withdrawal, 20, None),
        ]);
        let b = journal(&[(TransferIn, 30, Some("t1"))]);
        vec![(end_view("alice", &a), a), (end_view("bob", &b), b)]
    }

    fn audit(ledger: &[(AccountView, Vec<Entry>)]) -> AuditReport {
        let mut au = Auditor::new();
        for (v, j) in ledger {
            au.check_account(v, j);
        }
        au.finish()
    }

    fn checks_failed(r: &AuditReport) -> Vec<AuditCheck> {
        r.checks
            .iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .map(|c| c.check)
            .collect()
    }

    fn has(r: &AuditReport, check: AuditCheck, words: &str) -> bool {
        r.violations
            .iter()
            .any(|v| v.check == check && v.message.contains(words))
    }

    #[test]
    fn audit_checks_sharded_accounts_hold_money_only_in_their_shards() {
        // Proves the shards check: a sharded account with every shard passes, and so does
        // one whose shards are not all there yet (an opening under way); a shard in another
        // currency, a shard number past the account's count, or money in the account's own
        // record fails.
        let run = |accounts: &[AccountView]| {
            let mut a = Auditor::new();
            for v in accounts {
                a.begin_account(v);
            }
            a.finish()
        };
        let sharded = |balance| AccountView {
            shards: Some(2),
            ..view("m", balance, 0, 0)
        };
        let whole = run(&[sharded(0), view("m~0", 0, 0, 0), view("m~1", 0, 0, 0)]);
        assert!(whole.ok, "{whole:?}");
        // An opening under way: the record is there, a shard not yet.
        assert!(run(&[sharded(0), view("m~1", 0, 0, 0)]).ok);
        let usd = AccountView {
            currency: Currency::new("USD").unwrap(),
            ..view("m~1", 0, 0, 0)
        };
        let r = run(&[sharded(0), view("m~0", 0, 0, 0), usd]);
        assert!(
            has(&r, AuditCheck::Shards, "shard 1 holds USD, the account EUR"),
            "{r:?}"
        );
        let r = run(&[sharded(0), view("m~2", 0, 0, 0)]);
        assert!(
            has(&r, AuditCheck::Shards, "shard 2 of an account of 2"),
            "{r:?}"
        );
        let r = run(&[sharded(5), view("m~0", 0, 0, 0), view("m~1", 0, 0, 0)]);
        assert!(has(&r, AuditCheck::Shards, "holds balance 5"), "{r:?}");
        assert!(run(&[view("n~0", 0, 0, 0)]).ok);
    }

    #[test]
    fn audit_clean_ledger_passes() {
        // Proves a consistent ledger passes every check and the counts are right.
        let r = audit(&clean_ledger());
        assert!(r.ok, "{r:?}");
        assert_eq!((r.accounts, r.entries, r.transfers), (2, 7, 2));
        assert!(r.checks.iter().all(|c| c.status == CheckStatus::Pass));
        assert!(r.violations.is_empty());
    }

    #[test]
    fn audit_paged_feed_equals_whole_feed() {
        // Proves feeding a journal in pages gives the same report as in one piece.
        let ledger = clean_ledger();
        let mut au = Auditor::new();
        for (v, j) in &ledger {
            au.begin_account(v);
            for page in j.chunks(2) {
                assert!(au.wants_more());
                au.feed(page);
            }
            assert!(!au.wants_more());
        }
        assert_eq!(au.finish(), audit(&ledger));
    }

    #[test]
    fn audit_seq_gap_is_a_replay_violation() {
        // Proves a missing journal sequence number is reported as a gap, once.
        let mut ledger = clean_ledger();
        // The withdrawal is numbered 7 instead of 6: seq 6 is missing.
        ledger[0].1[5].seq = 7;
        ledger[0].0.seq = 7;
        let r = audit(&ledger);
        assert!(
            has(&r, AuditCheck::Replay, "journal gap: seq 6 to 6 missing"),
            "{r:?}"
        );
        assert!(!r.ok);
    }

    #[test]
    fn audit_wrong_balance_is_a_replay_violation() {
        // Proves an entry whose balance disagrees with the replay, and a stored state that
        // disagrees with the journal's end, are both named.
        let mut ledger = clean_ledger();
        ledger[1].1[0].balance = 31;
        ledger[1].1[0].available = 31;
        let r = audit(&ledger);
        assert!(
            has(&r, AuditCheck::Replay, "journal says balance 31"),
            "{r:?}"
        );
        let mut ledger = clean_ledger();
        ledger[0].0.balance += 1;
        ledger[0].0.available += 1;
        let r = audit(&ledger);
        assert!(
            has(&r, AuditCheck::Replay, "stored state is balance 51"),
            "{r:?}"
        );
    }

    #[test]
    fn audit_negative_available_is_an_overdraft() {
        // Proves a hold larger than the balance (available would go below zero) is no_overdraft.
        use EntryKind::*;
        let mut j = journal(&[
            (Deposit, 10, None),
            (Hold, 10, Some("t9")),
            (Release, 10, Some("t9")),
        ]);
        j[1].amount = 20; // hold 20 on a balance of 10
        let v = end_view("carol", &j);
        let r = audit(&[(v, j)]);
        assert_eq!(
            checks_failed(&r),
            vec![AuditCheck::NoOverdraft, AuditCheck::AtomicTransfers],
            "{r:?}"
        );
        assert!(
            has(&r, AuditCheck::NoOverdraft, "available goes below zero"),
            "{r:?}"
        );
        let mut j = journal(&[(Deposit, 10, None)]);
        j.push(Entry {
            shard: None,
            seq: 2,
            kind: Withdrawal,
            amount: 11,
            balance: 0,
            available: 0,
            transfer_id: None,
            reference: None,
            at: 0,
        });
        let r = audit(&[(view("dan", 0, 0, 2), j)]);
        assert!(
            has(
                &r,
                AuditCheck::NoOverdraft,
                "withdrawal of 11 exceeds balance 10"
            ),
            "{r:?}"
        );
    }

    #[test]
    fn audit_broken_conservation_is_named_per_currency() {
        // Proves a credit without its debit breaks conservation (and atomicity), per currency.
        let mut ledger = clean_ledger();
        let extra = journal(&[(EntryKind::TransferIn, 5, Some("t7"))]);
        ledger.push((end_view("eve", &extra), extra));
        let r = audit(&ledger);
        assert!(
            has(&r, AuditCheck::Conservation, "EUR: sum of balances 85"),
            "{r:?}"
        );
        assert!(has(&r, AuditCheck::AtomicTransfers, "has no hold"), "{r:?}");
    }

    /// alice holds 100 for bob (h1): a capture of 60 (c1) that bob refuses, one of 60 (c2)
    /// that completes, and the rest released; then a hold of 10 (h2), still open.
    fn hold_ledger() -> Vec<(AccountView, Vec<Entry>)> {
        use EntryKind::*;
        let a = journal(&[
            (Deposit, 200, None),
            (Hold, 100, Some("h1")),
            (Release, 60, Some("h1")),
            (Hold, 60, Some("c1")),
            (Release, 60, Some("c1")),
            (Hold, 60, Some("h1")),
            (Release, 60, Some("h1")),
            (Hold, 60, Some("c2")),
            (TransferOut, 60, Some("c2")),
            (Release, 40, Some("h1")),
            (Hold, 10, Some("h2")),
        ]);
        let b = journal(&[(TransferIn, 60, Some("c2"))]);
        vec![(end_view("alice", &a), a), (end_view("bob", &b), b)]
    }

    #[test]
    fn audit_holds_pass_when_they_release_what_they_held() {
        // Proves a hold that held again what a refused capture gave back, was captured in part
        // and released the rest passes, and an open hold passes when named pending.
        let mut au = Auditor::new();
        au.set_pending([TransferId::new("h2").unwrap()]);
        for (v, j) in &hold_ledger() {
            au.check_account(v, j);
        }
        let r = au.finish();
        assert!(r.ok, "{r:?}");
    }

    #[test]
    fn audit_hold_not_released_or_released_twice_is_named() {
        // Proves an open hold not named pending is "never settled", and a hold that releases
        // more than it held (a void applied twice) is named.
        use EntryKind::*;
        let r = audit(&hold_ledger());
        assert!(
            has(&r, AuditCheck::AtomicTransfers, "never settled"),
            "{r:?}"
        );
        assert_eq!(r.violations.len(), 1, "{r:?}");
        let a = journal(&[
            (Deposit, 50, None),
            (Hold, 10, Some("h3")),
            (Hold, 5, Some("t9")),
            (Release, 10, Some("h3")),
            (Release, 5, Some("h3")),
        ]);
        let mut au = Auditor::new();
        au.set_pending([TransferId::new("t9").unwrap()]);
        au.check_account(&end_view("alice", &a), &a);
        let r = au.finish();
        assert!(
            has(
                &r,
                AuditCheck::AtomicTransfers,
                "released 15 but held only 10"
            ),
            "{r:?}"
        );
        assert_eq!(r.violations.len(), 1, "{r:?}");
    }

    #[test]
    fn audit_disbursements_add_up_completed_or_pending() {
        // Proves a completed disbursement (one hold and one debit of the total, a credit per
        // leg) passes, a pending one with some legs credited passes when named, and a leg
        // credited twice is named.
        use EntryKind::*;
        let ledger = |pay: &[(EntryKind, u64, Option<&str>)],
                      b: &[(EntryKind, u64, Option<&str>)]| {
            let a = journal(pay);
            let b = journal(b);
            let c = journal(&[(TransferIn, 20, Some("d1"))]);
            vec![
                (end_view("alice", &a), a),
                (end_view("bob", &b), b),
                (end_view("carol", &c), c),
            ]
        };
        let paid = [
            (Deposit, 100, None),
            (Hold, 50, Some("d1")),
            (TransferOut, 50, Some("d1")),
        ];
        assert!(audit(&ledger(&paid, &[(TransferIn, 30, Some("d1"))])).ok);
        // Pending: carol credited, bob not yet; in flight, counted once.
        let pending = [(Deposit, 100, None), (Hold, 50, Some("d1"))];
        let mut au = Auditor::new();
        au.set_pending([TransferId::new("d1").unwrap()]);
        au.set_disbursements([TransferId::new("d1").unwrap()]);
        for (v, j) in &ledger(&pending, &[]) {
            au.check_account(v, j);
        }
        let r = au.finish();
        assert!(r.ok, "{r:?}");
        // Not named a disbursement, the same legs are a half-applied transfer.
        let r = audit(&ledger(&pending, &[]));
        assert!(!r.ok);
        // Bob credited twice: the credits exceed the hold.
        let twice = [(TransferIn, 30, Some("d1")), (TransferIn, 30, Some("d1"))];
        let r = audit(&ledger(&paid, &twice));
        assert!(
            has(&r, AuditCheck::AtomicTransfers, "credited 3 times"),
            "{r:?}"
        );
    }

    #[test]
    fn audit_half_applied_transfer_is_named() {
        // Proves a hold and transfer_out without the receiver's transfer_in is reported.
        let mut ledger = clean_ledger();
        ledger[1].1.clear();
        ledger[1].0 = view("bob", 0, 0, 0);
        let r = audit(&ledger);
        let v = r
            .violations
            .iter()
            .find(|v| v.check == AuditCheck::AtomicTransfers)
            .expect("atomicity violation");
        assert_eq!(v.transfer_id.as_deref(), Some("t1"));
        assert_eq!(v.account.as_deref(), Some("alice"));
        assert!(
            v.message
                .contains("half-applied: debited but never credited"),
            "{v:?}"
        );
    }

    #[test]
    fn audit_double_transfer_in_is_named() {
        // Proves a transfer credited twice is reported as credited 2 times.
        use EntryKind::*;
        let mut ledger = clean_ledger();
        let b = journal(&[(TransferIn, 30, Some("t1")), (TransferIn, 30, Some("t1"))]);
        ledger[1] = (end_view("bob", &b), b);
        let r = audit(&ledger);
        assert!(
            has(&r, AuditCheck::AtomicTransfers, "credited 2 times"),
            "{r:?}"
        );
        assert!(has(&r, AuditCheck::Conservation, "off by 30"), "{r:?}");
    }

    #[test]
    fn audit_pending_transfers_are_not_reported_twice() {
        // Proves a known-pending transfer's hold-only legs are not an atomicity violation.
        use EntryKind::*;
        let a = journal(&[(Deposit, 100, None), (Hold, 30, Some("t5"))]);
        let mut au = Auditor::new();
        au.set_pending([TransferId::new("t5").unwrap()]);
        au.check_account(&end_view("alice", &a), &a);
        assert!(au.finish().ok);
        let mut au = Auditor::new();
        au.check_account(&end_view("alice", &a), &a);
        let r = au.finish();
        assert!(
            has(&r, AuditCheck::AtomicTransfers, "never settled"),
            "{r:?}"
        );
    }

    #[test]
    fn audit_credit_of_a_pending_transfer_is_in_flight_not_created() {
        // Proves a pending transfer credited but not yet captured counts its money once:
        // conservation passes while it is pending, and still_pending names it under `settled`
        // only; the same legs without the pending mark break conservation and atomicity.
        use EntryKind::*;
        let a = journal(&[(Deposit, 100, None), (Hold, 30, Some("t6"))]);
        let b = journal(&[(TransferIn, 30, Some("t6"))]);
        let ledger = vec![(end_view("alice", &a), a), (end_view("bob", &b), b)];
        let mut au = Auditor::new();
        au.set_pending([TransferId::new("t6").unwrap()]);
        for (v, j) in &ledger {
            au.check_account(v, j);
        }
        let r = au.finish();
        assert!(r.ok, "{r:?}");
        let mut au = Auditor::new();
        au.still_pending(vec![TransferId::new("t6").unwrap()], false, "after 3s");
        for (v, j) in &ledger {
            au.check_account(v, j);
        }
        let r = au.finish();
        assert_eq!(checks_failed(&r), vec![AuditCheck::Settled], "{r:?}");
        assert!(
            has(
                &r,
                AuditCheck::Settled,
                "1 transfers still pending after 3s (t6)"
            ),
            "{r:?}"
        );
        let r = audit(&ledger);
        assert!(has(&r, AuditCheck::Conservation, "off by 30"), "{r:?}");
        assert!(
            has(&r, AuditCheck::AtomicTransfers, "half-applied"),
            "{r:?}"
        );
    }

    #[test]
    fn audit_still_pending_quotes_a_few_ids() {
        // Proves the settled violation counts every pending transfer and quotes only the first.
        let ids: Vec<TransferId> = (0..8)
            .map(|i| TransferId::new(format!("t{i}")).unwrap())
            .collect();
        let mut au = Auditor::new();
        au.still_pending(ids, true, "at the end");
        au.still_pending(Vec::new(), false, "never");
        let r = au.finish();
        assert_eq!(r.checks[0].violations, 1, "{r:?}");
        assert_eq!(
            r.violations[0].message,
            "more than 8 transfers still pending at the end (t0, t1, t2, t3, t4, ...)"
        );
    }

    #[test]
    fn audit_stored_state_is_checked_on_its_own() {
        // Proves a stored state holding more than its balance is an overdraft, and one whose
        // available is not balance - held (or whose balance is over 2^53-1) a replay violation.
        let ledger = clean_ledger();
        let (v, j) = &ledger[1];
        let mut over = v.clone();
        over.held = v.balance + 1;
        over.available = 0;
        let r = audit(&[(over, j.clone())]);
        assert!(
            has(
                &r,
                AuditCheck::NoOverdraft,
                "stored state holds 31 of a balance of 30"
            ),
            "{r:?}"
        );
        let mut skew = v.clone();
        skew.available -= 1;
        let r = audit(&[(skew, j.clone())]);
        assert!(
            has(&r, AuditCheck::Replay, "stored state shows available 29"),
            "{r:?}"
        );
        let mut big = v.clone();
        big.balance = AMOUNT_MAX + 1;
        big.available = AMOUNT_MAX + 1;
        let r = audit(&[(big, j.clone())]);
        assert!(has(&r, AuditCheck::Replay, "exceeds 2^53-1"), "{r:?}");
    }

    #[test]
    fn audit_entries_after_listing_are_ignored_and_short_journal_is_named() {
        // Proves entries written after the account was listed are ignored, and a journal that
        // ends before the listed seq is a replay violation.
        let ledger = clean_ledger();
        let (v, j) = &ledger[0];
        let mut early = v.clone();
        early.seq = 1;
        early.balance = 100;
        early.available = 100;
        let mut au = Auditor::new();
        au.begin_account(&early);
        au.feed(j);
        let r = au.finish();
        assert_eq!(r.entries, 1);
        assert!(r.ok, "{r:?}");
        let mut late = v.clone();
        late.seq = 9;
        let r = audit(&[(late, j.clone())]);
        assert!(
            has(&r, AuditCheck::Replay, "journal ends at seq 6"),
            "{r:?}"
        );
    }

    #[test]
    fn audit_caps_listed_violations() {
        // Proves no more than VIOLATIONS_LISTED_MAX violations are listed and the rest are counted.
        let mut au = Auditor::new();
        for i in 0..(VIOLATIONS_LISTED_MAX + 7) {
            au.violation(AuditCheck::Settled, None, None, format!("v{i}"));
        }
        let r = au.finish();
        assert_eq!(r.violations.len(), VIOLATIONS_LISTED_MAX);
        assert_eq!(r.violations_not_listed, 7);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["violations"][0]["check"], "settled");
        assert!(json["violations"][0].get("account").is_none());
    }
}
