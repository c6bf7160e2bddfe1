//! The ledger audit at each phase end (DESIGN.md 6.1, 6.2, 6.3 and 6.6): the store's snapshot
//! goes through the node library's own [`Auditor`], the rules `walletctl audit` and
//! `GET /admin/audit` run, so the simulator's final audit is those rules, not a copy of them.
//!
//! Fed: every account with a stored state, in id order, with its whole journal, and the
//! pending index. At the safety phase's end a transfer in the pending index is in flight (it may
//! stop after its hold or its credit, and a credit not yet captured is money in flight); after
//! the liveness phase (quiescent) any transfer left there is a `settled` violation. Any
//! violation fails the run, with the report's first violations, and so does a report whose
//! counts (accounts, entries, transfers) are not those of what the audit was fed.
//!
//! Also here, because the audit finds accounts through the account index: every account with a
//! state is in the index, and an indexed account without a state is reported as the store
//! scan reports it. What the audit leaves out (saga records, leases, idempotency, the transfer
//! summaries' status, acknowledged replies) stays with the other checkers.

use super::Check;
use crate::ledger::Ledger;
use crate::workload::OpSpec;
use node::ledger::audit::Auditor;
use protocol::admin::{AuditCheck, AuditReport, CheckStatus};
use protocol::api::{AccountView, Entry};
use protocol::{AccountId, TransferId};
use std::collections::BTreeSet;

/// Violations quoted in a failure.
const VIOLATIONS_QUOTED: usize = 3;

/// The checker (stateless: it reads the ledger).
pub struct Audit;

impl Check for Audit {
    fn name(&self) -> &'static str {
        "ledger audit (DESIGN.md 6.1, 6.2, 6.3, 6.6)"
    }

    fn phase_end(
        &mut self,
        ledger: &Ledger,
        _ops: &[OpSpec],
        quiescent: bool,
    ) -> Result<(), String> {
        let fed = fed(ledger)?;
        let r = audit(&fed, quiescent);
        if !r.ok {
            return Err(describe(&r));
        }
        // What it says it audited is what it was fed.
        let mut accounts = 0u64;
        let mut entries = 0u64;
        let mut transfers = BTreeSet::new();
        for a in &fed.accounts {
            if let FedAccount::Stored(_, journal) = a {
                accounts += 1;
                entries += journal.len() as u64;
                transfers.extend(journal.iter().filter_map(|e| e.transfer_id.as_ref()));
            }
        }
        let fed_counts = (accounts, entries, transfers.len() as u64);
        if (r.accounts, r.entries, r.transfers) != fed_counts {
            return Err(format!(
                "the audit says it audited {} accounts, {} entries and {} transfers; it was fed {fed_counts:?}",
                r.accounts, r.entries, r.transfers
            ));
        }
        Ok(())
    }
}

/// What the audit is fed from the ledger: every account with a state in id order with its
/// whole journal (an indexed account without one as its id alone), and the pending index.
#[derive(Clone, Debug)]
pub struct Fed {
    /// Accounts in id order.
    pub accounts: Vec<FedAccount>,
    /// The pending index, in id order.
    pub pending: Vec<TransferId>,
    /// The open holds (the index of holds by expiry), which may still hold what they have not
    /// released.
    pub open_holds: Vec<TransferId>,
    /// The unsettled disbursements (the index), which may have some legs credited.
    pub disbursing: Vec<TransferId>,
    /// Every hold's and disbursement's id (not fed to the audit, which judges them by their
    /// legs' sums: the self-check of the audit leaves them alone).
    pub not_transfers: std::collections::BTreeSet<TransferId>,
}

/// One account as fed to the audit.
#[derive(Clone, Debug)]
pub enum FedAccount {
    /// Its stored state as listed, and its journal.
    Stored(AccountView, Vec<Entry>),
    /// Listed in the account index with no stored state.
    NoState(String),
}

/// The audit's input from the ledger. Errors name what the audit cannot even be fed.
pub fn fed(ledger: &Ledger) -> Result<Fed, String> {
    let pending = ledger
        .pending
        .keys()
        .map(|t| TransferId::new(t.clone()).map_err(|e| format!("pending id {t:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let open_holds = ledger
        .holds_due
        .keys()
        .map(|(_, h)| TransferId::new(h.clone()).map_err(|e| format!("hold id {h:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut accounts = Vec::with_capacity(ledger.accounts.len());
    for (id, a) in &ledger.accounts {
        let Some(s) = a.state() else {
            if a.indexed {
                accounts.push(FedAccount::NoState(id.clone()));
            }
            // A journal without a state is the replay checker's.
            continue;
        };
        if !a.indexed {
            return Err(format!(
                "{id} has a stored state but is not in the account index (an audit of the store would miss it)"
            ));
        }
        let id = AccountId::new(id.clone()).map_err(|e| format!("account id {id:?}: {e}"))?;
        let view = AccountView {
            shards: s.shards.filter(|_| !id.is_shard()),
            id,
            currency: s.currency,
            status: s.status,
            balance: s.balance,
            // Not asserted here: the auditor checks the stored state on its own.
            available: s.balance.saturating_sub(s.held),
            held: s.held,
            seq: s.seq,
        };
        let journal = a.journal.values().map(|(e, _)| e.clone()).collect();
        accounts.push(FedAccount::Stored(view, journal));
    }
    let id = |h: &String| TransferId::new(h.clone()).map_err(|e| format!("id {h:?}: {e}"));
    let not_transfers = ledger
        .holds
        .keys()
        .chain(ledger.disbursements.keys())
        .map(id)
        .collect::<Result<_, _>>()?;
    let disbursing = ledger.disbursing.keys().map(id).collect::<Result<_, _>>()?;
    Ok(Fed {
        accounts,
        pending,
        open_holds,
        disbursing,
        not_transfers,
    })
}

/// The audit's report of what it is fed: the pending index is in flight at the safety
/// phase's end, a `settled` violation when `quiescent`; journals are fed one entry at a time.
pub fn audit(fed: &Fed, quiescent: bool) -> AuditReport {
    let mut au = Auditor::new();
    let pending = fed.pending.iter().chain(&fed.disbursing).cloned().collect();
    feed_pending(&mut au, pending, false, quiescent);
    au.set_disbursements(fed.disbursing.iter().cloned());
    au.set_pending(fed.open_holds.iter().cloned());
    for a in &fed.accounts {
        match a {
            FedAccount::NoState(id) => au.violation(
                AuditCheck::Replay,
                Some(id),
                None,
                "listed in the account index but has no stored state".to_owned(),
            ),
            FedAccount::Stored(view, journal) => {
                au.begin_account(view);
                for e in journal {
                    au.feed(std::slice::from_ref(e));
                }
                au.end_account();
            }
        }
    }
    au.finish()
}

/// The audit's report of the ledger ([`fed`], then [`audit`]).
pub fn report(ledger: &Ledger, quiescent: bool) -> Result<AuditReport, String> {
    Ok(audit(&fed(ledger)?, quiescent))
}

/// Tells the auditor which transfers are pending: in flight, or a violation when `quiescent`.
pub fn feed_pending(au: &mut Auditor, pending: Vec<TransferId>, more: bool, quiescent: bool) {
    if quiescent {
        au.still_pending(pending, more, "after every fault healed");
    } else {
        au.set_pending(pending);
    }
}

/// The failed checks with their counts, then the first violations.
fn describe(r: &AuditReport) -> String {
    let failed: Vec<String> = r
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| format!("{} ({})", c.check.as_str(), c.violations))
        .collect();
    let first: Vec<String> = r
        .violations
        .iter()
        .take(VIOLATIONS_QUOTED)
        .map(|v| {
            let mut at = String::new();
            if let Some(a) = &v.account {
                at.push_str(&format!(" account {a}"));
            }
            if let Some(t) = &v.transfer_id {
                at.push_str(&format!(" transfer {t}"));
            }
            format!("[{}]{at}: {}", v.check.as_str(), v.message)
        })
        .collect();
    format!("audit failed: {}; {}", failed.join(", "), first.join("; "))
}

#[cfg(test)]
mod tests {
    //! Each phase-end rule the other checkers gave up to the audit, broken on purpose: the
    //! audit checker must fail it.
    use super::*;
    use crate::ledger::AccountObs;
    use node::ledger::records::AccountRecord;
    use protocol::api::{AccountStatus, Entry, EntryKind};
    use protocol::{Currency, AMOUNT_MAX};

    fn entry(seq: u64, kind: EntryKind, amount: u64, balance: u64, available: u64) -> Entry {
        Entry {
            shard: None,
            seq,
            kind,
            amount,
            balance,
            available,
            transfer_id: matches!(
                kind,
                EntryKind::Hold | EntryKind::TransferOut | EntryKind::TransferIn
            )
            .then(|| TransferId::new("t1").unwrap()),
            reference: None,
            at: 0,
        }
    }

    fn account(journal: Vec<Entry>, balance: u64, held: u64) -> AccountObs {
        let seq = journal.last().map_or(0, |e| e.seq);
        AccountObs {
            states: vec![(
                1,
                AccountRecord {
                    shards: None,
                    currency: Currency::new("EUR").unwrap(),
                    status: AccountStatus::Active,
                    balance,
                    held,
                    seq,
                    opened_at: 0,
                },
            )],
            journal: journal.into_iter().map(|e| (e.seq, (e, 1))).collect(),
            indexed: true,
            ..AccountObs::default()
        }
    }

    /// a deposits 100 and holds 30 for t1; b is credited 30; t1 is pending (not captured).
    fn credited_not_captured() -> Ledger {
        use EntryKind::*;
        let mut l = Ledger::default();
        l.accounts.insert(
            "a".into(),
            account(
                vec![
                    entry(1, Deposit, 100, 100, 100),
                    entry(2, Hold, 30, 100, 70),
                ],
                100,
                30,
            ),
        );
        l.accounts.insert(
            "b".into(),
            account(vec![entry(1, TransferIn, 30, 30, 30)], 30, 0),
        );
        l.pending.insert("t1".into(), "a".into());
        l
    }

    /// t1 captured: a's transfer_out is in and the pending entry is gone.
    fn settled() -> Ledger {
        let mut l = credited_not_captured();
        let a = l.accounts.get_mut("a").unwrap();
        a.journal
            .insert(3, (entry(3, EntryKind::TransferOut, 30, 70, 70), 2));
        a.states[0].1.balance = 70;
        a.states[0].1.held = 0;
        a.states[0].1.seq = 3;
        l.pending.clear();
        l
    }

    fn audit(l: &Ledger, quiescent: bool) -> Result<(), String> {
        Audit.phase_end(l, &[], quiescent)
    }

    #[test]
    fn audit_checker_passes_in_flight_and_settled_ledgers() {
        // Proves a pending transfer credited but not captured is no violation at the safety
        // phase's end, and a settled ledger passes at quiescence.
        assert_eq!(audit(&credited_not_captured(), false), Ok(()));
        assert_eq!(audit(&settled(), true), Ok(()));
    }

    #[test]
    fn audit_checker_fails_pending_at_quiescence() {
        // Proves a transfer left in the pending index after the liveness phase fails the run
        // (the atomic checker's former quiescent rule).
        let e = audit(&credited_not_captured(), true).unwrap_err();
        assert!(e.contains("settled (1)") && e.contains("t1"), "{e}");
    }

    #[test]
    fn audit_checker_fails_overdrawn_or_oversized_states() {
        // Proves a stored state holding more than its balance, or a balance over the largest
        // amount, fails (the no-overdraft checker's former phase-end rule).
        let mut l = settled();
        l.accounts.get_mut("b").unwrap().states[0].1.held = 31;
        let e = audit(&l, false).unwrap_err();
        assert!(e.contains("no_overdraft"), "{e}");
        let mut l = settled();
        l.accounts.get_mut("b").unwrap().states[0].1.balance = AMOUNT_MAX + 1;
        let e = audit(&l, false).unwrap_err();
        assert!(e.contains("exceeds 2^53-1"), "{e}");
    }

    #[test]
    fn audit_checker_fails_journals_that_do_not_replay() {
        // Proves a gap, an entry whose balance is not the fold's, and a state whose balance or
        // holds are not the fold's each fail (the replay checker's former phase-end rules).
        let mut l = settled();
        let b = l.accounts.get_mut("b").unwrap();
        let (e, c) = b.journal.remove(&1).unwrap();
        b.journal.insert(2, (Entry { seq: 2, ..e }, c));
        b.states[0].1.seq = 2;
        assert!(audit(&l, false).unwrap_err().contains("journal gap"));
        let mut l = settled();
        l.accounts
            .get_mut("b")
            .unwrap()
            .journal
            .get_mut(&1)
            .unwrap()
            .0
            .balance = 31;
        assert!(audit(&l, false)
            .unwrap_err()
            .contains("journal says balance 31"));
        for (balance, held) in [(31, 0), (30, 1)] {
            let mut l = settled();
            let s = &mut l.accounts.get_mut("b").unwrap().states[0].1;
            (s.balance, s.held) = (balance, held);
            assert!(audit(&l, false)
                .unwrap_err()
                .contains("stored state is balance"));
        }
    }

    #[test]
    fn audit_checker_fails_money_created_or_lost() {
        // Proves per-currency conservation from states and journals fails at either phase end
        // when a receiver was credited more than its sender paid, though each journal replays
        // (the conservation checker's former phase-end rule).
        for quiescent in [false, true] {
            let mut l = settled();
            let b = l.accounts.get_mut("b").unwrap();
            b.journal.get_mut(&1).unwrap().0 = entry(1, EntryKind::TransferIn, 35, 35, 35);
            b.states[0].1.balance = 35;
            let e = audit(&l, quiescent).unwrap_err();
            assert!(e.contains("conservation (1)"), "{e}");
            assert!(e.contains("EUR: sum of balances 105"), "{e}");
        }
    }

    #[test]
    fn audit_checker_requires_the_account_index() {
        // Proves a stored account missing from the account index fails (a store scan would
        // miss it), and an indexed account without a state is reported.
        let mut l = settled();
        l.accounts.get_mut("b").unwrap().indexed = false;
        assert!(audit(&l, false)
            .unwrap_err()
            .contains("not in the account index"));
        let mut l = settled();
        l.accounts.insert(
            "ghost".into(),
            AccountObs {
                indexed: true,
                ..AccountObs::default()
            },
        );
        assert!(audit(&l, false).unwrap_err().contains("no stored state"));
    }
}
