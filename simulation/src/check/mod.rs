//! The checkers: one file per property of DESIGN.md section 6, each naming its invariant.
//!
//! A checker sees every commit as it happens (`on_commit`, with the ledger as it was before
//! the commit), every reply a client receives (`on_reply`), and the whole store at the end of
//! each phase (`phase_end`, rebuilt from the store's own snapshot). Per-commit checks are
//! incremental, so checking after every step stays cheap; the phase-end checks recompute
//! everything from scratch. The first violation ends the run.
//!
//! At phase ends, [`audit`] runs the node library's ledger audit (the rules of `walletctl
//! audit` and `GET /admin/audit`: conservation, no overdraft, atomic transfers, replay, nothing
//! left pending at quiescence) over the whole store. The other checkers' phase-end rules keep
//! only what the audit does not see: saga records, leases, idempotency, transfer summaries,
//! acknowledged replies, and their own incremental bookkeeping against the store.
//!
//! Two phase-end checks are not `Check`s, because they need more than the decoded ledger and
//! run only once the checkers passed: [`store_reads`] reads the raw snapshot the way the
//! operators' routes do (store audit, listings, counts, in pages), and [`audit_self`] shows the
//! audit corrupted copies of the ledger it just passed and requires each corruption reported.
//!
//! Invariant 8 (monotonic streams) is checked where the streams are modelled, by the
//! simulator's subscribers (`sim::streams`); the rules a runtime must keep around the account
//! driver (a fenced activation never loads again, a passivation strands no waiting caller, no
//! command left unanswered) are checked by the node runtime (`sim::runtime`).

mod atomic;
mod atomic_disbursements;
mod audit;
pub mod audit_self;
mod conservation;
mod durability;
mod exactly_once;
mod model;
mod model_disbursements;
mod model_holds;
pub mod outbox;
mod overdraft;
mod replay;
pub mod sharded_reads;
mod single_writer;
pub mod store_reads;

use crate::ledger::{Commit, Ledger};
use crate::workload::{ClientResult, OpSpec};
use protocol::api::AccountStatus;

/// The class of a failure, which decides the exit code of `wallet-sim`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// An invariant was violated.
    Correctness,
    /// Something that must finish did not (a pending transfer after healing, a stuck phase).
    Liveness,
    /// The code under test panicked: an assertion of the core fired.
    Crash,
}

/// A reply a client received, with what is needed to judge it.
pub struct ReplyCtx<'a> {
    /// The store as observed when the reply arrived.
    pub ledger: &'a Ledger,
    /// The operation.
    pub op: &'a OpSpec,
    /// Every operation so far.
    pub ops: &'a [OpSpec],
    /// Commits the store had made when the request was sent.
    pub sent_commit: u64,
    /// The reply.
    pub result: &'a ClientResult,
}

/// A checker of one property.
pub trait Check {
    /// The property and the invariant of DESIGN.md section 6 it checks.
    fn name(&self) -> &'static str;
    /// Checks a commit about to be applied to `before`.
    fn on_commit(
        &mut self,
        _before: &Ledger,
        _commit: &Commit,
        _ops: &[OpSpec],
    ) -> Result<(), String> {
        Ok(())
    }
    /// Checks a reply a client received.
    fn on_reply(&mut self, _ctx: &ReplyCtx<'_>) -> Result<(), String> {
        Ok(())
    }
    /// Checks the whole store at the end of a phase; `quiescent` after the liveness phase.
    fn phase_end(
        &mut self,
        _ledger: &Ledger,
        _ops: &[OpSpec],
        _quiescent: bool,
    ) -> Result<(), String> {
        Ok(())
    }
}

/// Every checker.
pub struct Checks {
    list: Vec<Box<dyn Check>>,
}

impl Checks {
    /// All checkers, fresh.
    pub fn all() -> Self {
        Checks {
            list: vec![
                // Most specific first: a fenced write also breaks conservation, but the
                // single-writer report names the cause.
                Box::new(single_writer::SingleWriter),
                Box::new(replay::Replay::default()),
                Box::new(exactly_once::ExactlyOnce::default()),
                Box::new(atomic::AtomicTransfers),
                Box::new(overdraft::NoOverdraft),
                Box::new(conservation::Conservation::default()),
                Box::new(audit::Audit),
                Box::new(durability::Durability::default()),
                Box::new(model::ClientModel),
                Box::new(sharded_reads::ShardedReads),
                Box::new(outbox::Outbox),
            ],
        }
    }

    /// Runs every checker on a commit.
    pub fn on_commit(
        &mut self,
        before: &Ledger,
        c: &Commit,
        ops: &[OpSpec],
    ) -> Result<(), (&'static str, String)> {
        for ch in &mut self.list {
            ch.on_commit(before, c, ops)
                .map_err(|e| (ch.name(), format!("commit {}: {e}", c.seq)))?;
        }
        Ok(())
    }

    /// Runs every checker on a reply.
    pub fn on_reply(&mut self, ctx: &ReplyCtx<'_>) -> Result<(), (&'static str, String)> {
        for ch in &mut self.list {
            ch.on_reply(ctx).map_err(|e| (ch.name(), e))?;
        }
        Ok(())
    }

    /// Runs every checker at a phase's end.
    pub fn phase_end(
        &mut self,
        ledger: &Ledger,
        ops: &[OpSpec],
        quiescent: bool,
    ) -> Result<(), (&'static str, String)> {
        for ch in &mut self.list {
            ch.phase_end(ledger, ops, quiescent)
                .map_err(|e| (ch.name(), e))?;
        }
        Ok(())
    }
}

/// The states an account may have had while a request was in flight: from the state current
/// when it was sent to the latest one. Journal entries give the balances inside a batch.
#[derive(Debug, Default)]
pub struct Window {
    /// The account may not have existed.
    pub absent: bool,
    /// `(seq, balance, available)` the account had at some point.
    pub balances: Vec<(u64, u64, u64)>,
    /// Statuses it had.
    pub statuses: Vec<AccountStatus>,
    /// A batch in the window changed the status more than once: any status may have been seen.
    pub any_status: bool,
}

impl Window {
    /// The window of `account` since commit `sent_commit`.
    pub fn of(ledger: &Ledger, account: &str, sent_commit: u64) -> Window {
        let mut w = Window::default();
        let Some(a) = ledger.accounts.get(account) else {
            w.absent = true;
            return w;
        };
        let first_in = a.states.partition_point(|(c, _)| *c <= sent_commit);
        if first_in == 0 {
            w.absent = true;
        }
        let from = first_in.saturating_sub(1);
        for (_, r) in &a.states[from..] {
            if !w.statuses.contains(&r.status) {
                w.statuses.push(r.status);
            }
        }
        // Freshly opened, before its first entry (possibly inside one batch with it).
        let opened = !a.states.is_empty();
        if opened && a.journal.get(&1).is_none_or(|(_, c)| *c > sent_commit) {
            w.balances.push((0, 0, 0));
        }
        for (seq, (e, _)) in &a.journal {
            let superseded_before = a
                .journal
                .get(&(seq + 1))
                .is_some_and(|(_, c)| *c <= sent_commit);
            if !superseded_before {
                w.balances.push((*seq, e.balance, e.available));
            }
        }
        w.any_status = ledger
            .mixed_status
            .get(account)
            .is_some_and(|s| s.range(2 * sent_commit + 1..).next().is_some());
        w
    }

    /// True when the account could have had `status`.
    pub fn had_status(&self, status: AccountStatus) -> bool {
        self.any_status || self.statuses.contains(&status)
    }
}
