//! The account driver's contract with its callers, checked on every activation.
//!
//! The invariants of the ledger (money conserved, exactly once, single writer) hold whether
//! the driver retries a failed batch or gives up on it, reloads or stops: every such choice is
//! safe. But each is also a promise to the caller, and a driver that breaks one fails clients
//! that should have succeeded, or makes them wait for nothing. The runtime tells this module
//! what the driver was asked, what storage answered and what the driver did, and it fails the
//! run when the driver:
//! - runs a command again after storage said its commit's outcome was unknown (it may have
//!   landed: only a reload can tell);
//! - answers "outcome unknown" to a command whose batch failed with nothing committed
//!   (conflict, too old, unavailable) before the activation's batches failed so
//!   [`BATCH_RETRIES_MAX`] + 1 times in a row, or tries it again after that (the count is the
//!   activation's, not the command's: a command that joins a failing batch shares its fate);
//! - answers "outcome unknown" to a command that never ran, once its activation had loaded (a
//!   reload that fails keeps the queue and tries again), or stops because a reload failed;
//! - lingers after its first load failed (nothing was loaded, so its callers are answered at
//!   once and may retry with the same key);
//! - steps aside while the stored lease is still its own;
//! - leaves a command unanswered for [`ANSWER_WITHIN_MS`] once every fault healed (a driver
//!   waiting for work it will never get back; before that, storage outages may keep a reload
//!   failing for longer), forgets a caller waiting for a settlement without answering it, or
//!   releases one while its transfer is still pending in storage.
//!
//! What it leaves out: the timing of retries (backoff lengths are the driver's unit tests').

use super::runtime::Caller;
use super::*;
use node::ledger::driver::{StopReason, BATCH_RETRIES_MAX, QUEUE_INPUTS_MAX};
use node::ledger::records::Lease;

/// What the contract check knows of one activation.
#[derive(Debug, Default)]
pub(super) struct Contract {
    /// A load succeeded.
    loaded: bool,
    /// The lease its last successful load took.
    lease: Option<Lease>,
    /// Commands whose batch failed: how they failed so far.
    failed: BTreeMap<ReqId, Failed>,
    /// Batches in a row that failed with nothing committed.
    consecutive: u32,
}

/// How the batches of one command failed.
#[derive(Clone, Copy, Debug, Default)]
struct Failed {
    /// Failures with nothing committed.
    retryable: u32,
    /// A failure whose commit may have happened.
    unknown: bool,
}

/// Longest a command may wait on its actor for an answer once every fault healed: far past
/// the longest reload backoff and batch retries.
pub const ANSWER_WITHIN_MS: u64 = 30_000;

impl Contract {
    /// A load of this activation succeeded.
    pub(super) fn loaded(&self) -> bool {
        self.loaded
    }
}

impl Sim {
    /// The actor is about to commit `inputs`.
    pub(super) fn contract_commit(&mut self, node: usize, account: &AccountId, inputs: &[Input]) {
        let Some(a) = self.nodes[node].actors.get_mut(account) else {
            return;
        };
        let mut broken = None;
        let mut retried = false;
        for input in inputs {
            let Input::Command(req, _) = input else {
                continue;
            };
            let Some(f) = a.contract.failed.get(req) else {
                continue;
            };
            if f.unknown {
                broken = Some(format!(
                    "command {req} runs again after its commit's outcome was unknown (it may have landed)"
                ));
            } else if a.contract.consecutive > BATCH_RETRIES_MAX {
                broken = Some(format!(
                    "command {req} runs again after {} failed batches in a row: at most {BATCH_RETRIES_MAX} retries",
                    a.contract.consecutive
                ));
            }
            retried = true;
        }
        if !retried && a.contract.consecutive > BATCH_RETRIES_MAX {
            // The driver gave up on the failing batch: a new one starts a new count.
            a.contract.consecutive = 0;
        }
        if let Some(why) = broken {
            self.contract_broken(node, account, why);
        }
    }

    /// The result of a commit reached the actor.
    pub(super) fn contract_committed(
        &mut self,
        node: usize,
        account: &AccountId,
        inputs: &[Input],
        result: Result<(), &StorageError>,
    ) {
        let Some(a) = self.nodes[node].actors.get_mut(account) else {
            return;
        };
        match result {
            Ok(()) | Err(StorageError::Fenced) => a.contract.consecutive = 0,
            Err(e) if e.maybe_committed() || !e.is_retryable() => a.contract.consecutive = 0,
            Err(_) => a.contract.consecutive += 1,
        }
        for input in inputs {
            let Input::Command(req, _) = input else {
                continue;
            };
            match result {
                Ok(()) | Err(StorageError::Fenced) => {
                    a.contract.failed.remove(req);
                }
                Err(e) => {
                    let f = a.contract.failed.entry(*req).or_default();
                    if e.maybe_committed() || !e.is_retryable() {
                        f.unknown = true;
                    } else {
                        f.retryable += 1;
                    }
                }
            }
        }
    }

    /// A load's result reached the actor: `ok` with the lease it took.
    pub(super) fn contract_loaded(
        &mut self,
        node: usize,
        account: &AccountId,
        lease: Option<Lease>,
    ) {
        if let Some(a) = self.nodes[node].actors.get_mut(account) {
            a.contract.loaded = true;
            a.contract.lease = lease;
        }
    }

    /// After the driver took a failed load: a first load that failed stops the activation.
    pub(super) fn contract_load_failed(
        &mut self,
        node: usize,
        account: &AccountId,
        inc: u64,
        was_loaded: bool,
    ) {
        if !was_loaded && self.actor_mut(node, account, inc).is_some() {
            let why = "its first load failed, yet it lingers with its callers waiting".to_owned();
            self.contract_broken(node, account, why);
        }
    }

    /// The driver answers "outcome unknown" to `req`.
    pub(super) fn contract_unknown(&mut self, node: usize, account: &AccountId, req: ReqId) {
        let Some(a) = self.nodes[node].actors.get(account) else {
            return;
        };
        let why = match a.contract.failed.get(&req) {
            Some(f) if !f.unknown && a.contract.consecutive <= BATCH_RETRIES_MAX => format!(
                "command {req} answered \"outcome unknown\" after {} failed batch(es) in a row with nothing committed ({} of its own): a batch is retried {BATCH_RETRIES_MAX} times first",
                a.contract.consecutive, f.retryable
            ),
            Some(_) => return,
            None if a.contract.loaded && a.driver.queued() < QUEUE_INPUTS_MAX => format!(
                "command {req} answered \"outcome unknown\" without ever running, by an activation that had loaded"
            ),
            None => return,
        };
        self.contract_broken(node, account, why);
    }

    /// The driver stops for `reason`.
    pub(super) fn contract_stop(&mut self, node: usize, account: &AccountId, reason: StopReason) {
        let Some(a) = self.nodes[node].actors.get(account) else {
            return;
        };
        let why = match reason {
            StopReason::LoadFailed if a.contract.loaded => {
                "stops on a failed reload: an activation that loaded keeps its queue and tries again"
                    .to_owned()
            }
            StopReason::SteppedAside => {
                let stored = self
                    .ledger
                    .accounts
                    .get(account.as_str())
                    .and_then(|r| r.lease.clone());
                if stored.is_none() || stored != a.contract.lease {
                    return;
                }
                "steps aside while the stored lease is still its own".to_owned()
            }
            _ => return,
        };
        self.contract_broken(node, account, why);
    }

    /// Every command on the actor of `account` on `node` was answered in time (counted from
    /// the healing at the earliest; nothing is checked before it).
    pub(super) fn contract_answered_in_time(&mut self, node: usize, account: &AccountId) {
        if !self.healed {
            return;
        }
        let (now, healed_at) = (self.now, self.stats.safety_ms);
        let Some(a) = self.nodes[node].actors.get(account) else {
            return;
        };
        let waited = |c: &Caller| now.saturating_sub(c.since.max(healed_at));
        let Some((req, c)) = a.callers.iter().find(|(_, c)| waited(c) > ANSWER_WITHIN_MS) else {
            return;
        };
        let why = format!(
            "command {req} ({:?}) is unanswered {} ms after every fault healed",
            c.cmd,
            waited(c)
        );
        self.fail(
            FailureKind::Liveness,
            "driver contract",
            format!("n{} {account}: {why}", node + 1),
        );
    }

    /// The driver releases `reqs` with a "pending" answer: that is for transfers settled in
    /// storage (whose summary is gone), never for one still pending there.
    pub(super) fn contract_drop_waiters(
        &mut self,
        node: usize,
        account: &AccountId,
        reqs: &[ReqId],
    ) {
        let Some(a) = self.nodes[node].actors.get(account) else {
            return;
        };
        let pending = &self.ledger.pending;
        let early = reqs.iter().find_map(|req| match a.waiters.get(req) {
            Some((_, Reply::Transfer(view))) if pending.contains_key(view.id.as_str()) => {
                Some((*req, view.id.clone()))
            }
            _ => None,
        });
        if let Some((req, id)) = early {
            let why = format!("caller {req} is released while {id} is still pending in storage");
            self.contract_broken(node, account, why);
        }
    }

    pub(super) fn contract_broken(&mut self, node: usize, account: &AccountId, why: String) {
        let why = format!("n{} {account}: {why}", node + 1);
        self.fail(FailureKind::Correctness, "driver contract", why);
    }
}
