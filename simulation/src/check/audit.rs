//! The ledger audit at each phase end (DESIGN.md 6.1, 6.2, 6.3 and 6.6): the store's snapshot
//! goes through the node library's own [`Auditor`], the rules `walletctl audit` and
//! `GET /admin/audit` run, so the simulator's final audit is those rules, not a copy of them.
//!
//! Fed: every account with a stored state, in id order, with its whole journal, and the
//! pending index. At the safety phase's end a transfer in the pending index is in flight (it may
//! stop after its hold or its credit, and a credit not yet captured is money in flight); after
//! the liveness phase (quiescent) any transfer left there is a `settled` violation. Any
//! violation fails the run, with the report's first violations.
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
use protocol::api::AccountView;
use protocol::{AccountId, TransferId};

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
        let mut au = Auditor::new();
        let pending = ledger
            .pending
            .keys()
            .map(|t| TransferId::new(t.clone()).map_err(|e| format!("pending id {t:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if quiescent {
            au.still_pending(pending, false, "after every fault healed");
        } else {
            au.set_pending(pending);
        }
        for (id, a) in &ledger.accounts {
            let Some(s) = a.state() else {
                if a.indexed {
                    au.violation(
                        AuditCheck::Replay,
                        Some(id),
                        None,
                        "listed in the account index but has no stored state".to_owned(),
                    );
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
            au.begin_account(&AccountView {
                id,
                currency: s.currency,
                status: s.status,
                balance: s.balance,
                // Not asserted here: the auditor checks the stored state on its own.
                available: s.balance.saturating_sub(s.held),
                held: s.held,
                seq: s.seq,
            });
            for (e, _) in a.journal.values() {
                au.feed(std::slice::from_ref(e));
            }
            au.end_account();
        }
        let r = au.finish();
        if r.ok {
            Ok(())
        } else {
            Err(describe(&r))
        }
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
