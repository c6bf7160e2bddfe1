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
//! - starts work less than [`RELOAD_BACKOFF_INITIAL_MS`] after a failure it backs off from
//!   (a batch it retries, a reload, a read of the head entry or of settled transfers), or
//!   backs off for other than the exponential sequence (doubling up to
//!   [`RELOAD_BACKOFF_MAX_MS`], from the start again after a success): a driver that hammers
//!   a failing store makes an outage worse;
//! - holds a caller for the settlement of a transfer that is not pending, or more callers
//!   than its limit; answers a waiting caller with a transfer still pending, or reads the
//!   summaries of no transfer;
//! - publishes a journal entry it already published, or reads one to publish it again;
//! - leaves a command unanswered for [`ANSWER_WITHIN_MS`] once every fault healed (a driver
//!   waiting for work it will never get back; before that, storage outages may keep a reload
//!   failing for longer), forgets a caller waiting for a settlement without answering it, or
//!   releases one unanswered while its transfer is still pending in storage or while its
//!   settled summary is stored (the caller is owed that summary).
//!
//! After every step it also holds the driver to what it reports of itself: its queue within
//! its limit, a quiet driver with its activation at hand, exactly one deadline per open saga
//! (a settled one costs no later timer), the runtime's one timer armed for the earliest, every caller the runtime holds for a settlement still on the driver's list and
//! none it released, and a stopped driver gone from its node.
//!
//! It also holds each committed batch's saga timers to the saga's timing (resend the credit
//! every credit timeout [`CREDIT_RESENDS_MAX`] times, then send `Abort` backing off by doubling
//! up to the longest abort backoff).

use super::runtime::{Caller, WorkResult};
use super::*;
use node::ledger::driver::{
    StopReason, BATCH_RETRIES_MAX, RELOAD_BACKOFF_INITIAL_MS, RELOAD_BACKOFF_MAX_MS,
};
use node::ledger::exec::Activation;
use node::ledger::records::{Lease, LegState, SagaRecord};

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
    /// When the last failure it must back off from came back.
    backoff_from: Option<u64>,
    /// The highest journal sequence it published.
    published: u64,
    /// The backoff it must announce next, if it backs off: it starts at
    /// [`RELOAD_BACKOFF_INITIAL_MS`], doubles with every backoff up to
    /// [`RELOAD_BACKOFF_MAX_MS`], and starts again after a load or commit that succeeded.
    next_backoff_ms: u64,
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

    /// A committed batch's saga timers follow the saga's timing: a new saga waits
    /// `credit_timeout_ms`; its first [`CREDIT_RESENDS_MAX`] timeouts resend the credit and
    /// wait as long again; each later one sends `Abort` and waits twice as long as the one
    /// before, from `2 × credit_timeout_ms` up to `abort_backoff_max_ms` (never below
    /// `credit_timeout_ms`). Each timer goes with its message (`Credit` when the saga starts
    /// and on a resend, `Abort` after). The `i`-th of a saga's `n` timers in one batch is its
    /// timeout count after the batch less `n - 1 - i`.
    fn contract_saga_timers(
        &mut self,
        node: usize,
        account: &AccountId,
        act: &Activation,
        effects: &[Effect],
    ) {
        let (timeout, max) = (self.opts.credit_timeout_ms, self.opts.abort_backoff_max_ms);
        // Per saga, each timer's wait and the message sent with it (the last before it).
        let mut timers: BTreeMap<&TransferId, Vec<(u64, Option<bool>)>> = BTreeMap::new();
        let mut sent: BTreeMap<&TransferId, bool> = BTreeMap::new();
        for e in effects {
            match e {
                Effect::Send(SagaMsg::Credit { transfer_id, .. }) => {
                    sent.insert(transfer_id, false);
                }
                Effect::Send(SagaMsg::Abort { transfer_id, .. }) => {
                    sent.insert(transfer_id, true);
                }
                Effect::Timer {
                    transfer_id,
                    after_ms,
                } => {
                    let with = sent.remove(transfer_id);
                    timers
                        .entry(transfer_id)
                        .or_default()
                        .push((*after_ms, with));
                }
                _ => {}
            }
        }
        for (t, waits) in timers {
            // A saga settled in the same batch has no count left to judge by.
            let Some(saga) = act.core.open_sagas().get(t) else {
                continue;
            };
            let n = waits.len() as u32;
            for (i, &(after_ms, aborted)) in waits.iter().enumerate() {
                let Some(k) = (saga.timeouts + 1 + i as u32).checked_sub(n) else {
                    let why = format!(
                        "{n} timers for {t} in one batch after {} timeouts",
                        saga.timeouts
                    );
                    return self.contract_broken(node, account, why);
                };
                let want = match k.checked_sub(CREDIT_RESENDS_MAX) {
                    None | Some(0) => timeout,
                    Some(aborts) => timeout
                        .saturating_mul(1 << aborts.min(16))
                        .min(max)
                        .max(timeout),
                };
                if after_ms != want {
                    let why = format!(
                        "saga {t} after {k} timeouts waits {after_ms} ms; its timing says {want} ms (credit timeout {timeout} ms, abort backoff up to {max} ms)"
                    );
                    return self.contract_broken(node, account, why);
                }
                let abort = k > CREDIT_RESENDS_MAX;
                if aborted != Some(abort) {
                    let why = format!(
                        "saga {t} after {k} timeouts sent {aborted:?} (true: Abort, false: Credit) with its timer; the saga sends {} then",
                        if abort { "Abort" } else { "Credit" }
                    );
                    return self.contract_broken(node, account, why);
                }
            }
        }
    }

    /// The result of a commit reached the actor.
    fn contract_committed(
        &mut self,
        node: usize,
        account: &AccountId,
        inputs: &[Input],
        result: Result<(), &StorageError>,
    ) {
        let Some(a) = self.nodes[node].actors.get_mut(account) else {
            return;
        };
        let now = self.now;
        if result.is_ok() {
            a.contract.next_backoff_ms = RELOAD_BACKOFF_INITIAL_MS;
        }
        match result {
            Ok(()) | Err(StorageError::Fenced) => a.contract.consecutive = 0,
            Err(e) if e.maybe_committed() || !e.is_retryable() => {
                // Reloaded after a backoff.
                a.contract.consecutive = 0;
                a.contract.backoff_from = Some(now);
            }
            Err(_) => {
                a.contract.consecutive += 1;
                if a.contract.consecutive <= BATCH_RETRIES_MAX {
                    // Retried after a backoff (past the retries, the next batch may start).
                    a.contract.backoff_from = Some(now);
                }
            }
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

    /// A failure the driver backs off from reached the actor of `account`.
    fn contract_backoff_due(&mut self, node: usize, account: &AccountId) {
        let now = self.now;
        if let Some(a) = self.nodes[node].actors.get_mut(account) {
            a.contract.backoff_from = Some(now);
        }
    }

    /// The actor of `account` starts a piece of work.
    pub(super) fn contract_work_starts(&mut self, node: usize, account: &AccountId) {
        let now = self.now;
        let Some(a) = self.nodes[node].actors.get_mut(account) else {
            return;
        };
        let Some(from) = a.contract.backoff_from.take() else {
            return;
        };
        if now - from < RELOAD_BACKOFF_INITIAL_MS {
            let why = format!(
                "starts work {} ms after a failure, without the backoff of at least {RELOAD_BACKOFF_INITIAL_MS} ms",
                now - from
            );
            self.contract_broken(node, account, why);
        }
    }

    /// The actor of `account` announces a backoff of `after_ms`.
    pub(super) fn contract_backoff(&mut self, node: usize, account: &AccountId, after_ms: u64) {
        let Some(a) = self.nodes[node].actors.get_mut(account) else {
            return;
        };
        let want = a.contract.next_backoff_ms.max(RELOAD_BACKOFF_INITIAL_MS);
        a.contract.next_backoff_ms = (want * 2).min(RELOAD_BACKOFF_MAX_MS);
        if after_ms != want {
            let why = format!("backs off {after_ms} ms where the sequence says {want} ms");
            self.contract_broken(node, account, why);
        }
    }

    /// The actor of `account` publishes the entry `seq`.
    pub(super) fn contract_publish(&mut self, node: usize, account: &AccountId, seq: u64) {
        let Some(a) = self.nodes[node].actors.get_mut(account) else {
            return;
        };
        let before = std::mem::replace(&mut a.contract.published, seq);
        if seq <= before {
            let why = format!("publishes entry {seq} after entry {before}");
            self.contract_broken(node, account, why);
        }
    }

    /// The actor of `account` reads its head entry `seq` to publish it.
    pub(super) fn contract_head_read(&mut self, node: usize, account: &AccountId, seq: u64) {
        let Some(a) = self.nodes[node].actors.get(account) else {
            return;
        };
        if seq <= a.contract.published {
            let why = format!(
                "reads entry {seq} to publish it, having published entry {}",
                a.contract.published
            );
            self.contract_broken(node, account, why);
        }
    }

    /// The result of the actor's work reached it (before the driver takes it); for a failed
    /// load, whether the activation had loaded before (checked once the driver took it).
    pub(super) fn contract_result(
        &mut self,
        node: usize,
        account: &AccountId,
        done: &WorkResult,
    ) -> Option<bool> {
        match done {
            WorkResult::Committed(b, r) => {
                if let Ok((act, effects)) = r {
                    self.contract_saga_timers(node, account, act, effects);
                }
                let r = r.as_ref().map(|_| ());
                self.contract_committed(node, account, &b.inputs, r);
            }
            WorkResult::Loaded(Ok(act)) => {
                if let Some(a) = self.nodes[node].actors.get_mut(account) {
                    a.contract.loaded = true;
                    a.contract.lease = act.lease.clone();
                    a.contract.next_backoff_ms = RELOAD_BACKOFF_INITIAL_MS;
                }
            }
            WorkResult::Loaded(Err(_)) => {
                let was_loaded = self.nodes[node].actors.get(account)?.contract.loaded;
                if was_loaded {
                    self.contract_backoff_due(node, account);
                }
                return Some(was_loaded);
            }
            WorkResult::Transfers(Err(_)) | WorkResult::Entry(Err(_)) => {
                self.contract_backoff_due(node, account);
            }
            WorkResult::Lease(_) | WorkResult::Transfers(Ok(_)) | WorkResult::Entry(Ok(_)) => {}
        }
        None
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
            None if a.contract.loaded && a.driver.queued() < a.driver.limits().queue_inputs => format!(
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
            _ if !a.driver.is_stopped() => "emits a stop but says it runs on".to_owned(),
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
    /// storage whose summary is gone, never for one still pending there or whose summary is
    /// stored.
    pub(super) fn contract_drop_waiters(
        &mut self,
        node: usize,
        account: &AccountId,
        reqs: &[ReqId],
    ) {
        let Some(a) = self.nodes[node].actors.get(account) else {
            return;
        };
        let (pending, summaries) = (&self.ledger.pending, &self.ledger.transfers);
        // Released unanswered: only a transfer settled without a summary. One still pending
        // must keep its caller; one whose settled summary is stored must answer with it.
        let wrong = reqs.iter().find_map(|req| match a.waiters.get(req) {
            Some((_, Reply::Transfer(view))) => {
                let id = view.id.as_str();
                if pending.contains_key(id) {
                    Some(format!("caller {req} is released while {id} is still pending in storage"))
                } else {
                    summaries.get(id).map(|s| {
                        format!(
                            "caller {req} is released unanswered though {id}'s summary ({:?}) is stored",
                            s.status
                        )
                    })
                }
            }
            _ => None,
        });
        if let Some(why) = wrong {
            self.contract_broken(node, account, why);
        }
    }

    /// What the driver of a live actor reports of itself agrees with what it did.
    pub(super) fn contract_consistent(&mut self, node: usize, account: &AccountId) {
        let Some(a) = self.nodes[node].actors.get(account) else {
            return;
        };
        let d = &a.driver;
        let limit = d.limits().queue_inputs;
        let why = if d.is_stopped() {
            "the driver says it stopped, yet emitted no stop".to_owned()
        } else if d.queued() > limit {
            format!("{} inputs queued, past the limit of {limit}", d.queued())
        } else if d.waiting() < a.waiters.len() {
            format!(
                "the runtime holds {} caller(s) waiting for a settlement, the driver lists {}",
                a.waiters.len(),
                d.waiting()
            )
        } else if d.is_quiet() && d.activation().is_none() {
            "a quiet driver without its activation".to_owned()
        } else if d.is_quiet() && d.queued() > 0 {
            format!("a quiet driver with {} inputs queued", d.queued())
        } else if a.timer.map(|(_, at)| at) != d.next_deadline() {
            format!(
                "the timer is armed for {:?}, the earliest deadline is {:?}",
                a.timer.map(|(_, at)| at),
                d.next_deadline()
            )
        } else if let Some(act) = d.activation().filter(|_| d.is_quiet()) {
            let open = act.core.open_sagas().len();
            let held = act
                .core
                .open_holds()
                .values()
                .filter(|h| h.status == protocol::api::HoldStatus::Held)
                .count();
            let disbursing = act.core.open_disbursements().len();
            if d.deadlines() != open + held + disbursing {
                format!(
                    "{open} open saga(s), {held} held hold(s) and {disbursing} disbursement(s) but {} deadline(s)",
                    d.deadlines()
                )
            } else if let Some(why) = self.memory_behind_storage(account, act) {
                why
            } else {
                return;
            }
        } else {
            return;
        };
        self.contract_broken(node, account, why);
    }

    /// Where a quiet activation that still holds its account's lease disagrees with what is
    /// stored about its disbursements: the legs it reserved, and the ones it pays (a try or a
    /// cancel changes no account record, so a retry after an unknown commit that landed must
    /// still bring memory in line).
    fn memory_behind_storage(&self, account: &AccountId, act: &Activation) -> Option<String> {
        let obs = self.ledger.accounts.get(account.as_str())?;
        if obs.lease != act.lease {
            return None; // a stale activation: fencing, not memory, is what holds it
        }
        let stored: BTreeMap<&str, u64> = obs
            .sagas
            .iter()
            .filter_map(|(t, r)| match r {
                SagaRecord::Leg(l) if l.state == LegState::Reserved => Some((t.as_str(), l.amount)),
                _ => None,
            })
            .collect();
        let memory: BTreeMap<&str, u64> = act
            .core
            .reserved()
            .iter()
            .map(|(t, a)| (t.as_str(), *a))
            .collect();
        if stored != memory {
            return Some(format!(
                "reserves {memory:?} in memory, {stored:?} in storage"
            ));
        }
        let stored: Vec<&str> = self
            .ledger
            .disbursements
            .iter()
            .filter(|(_, (p, d))| p == account.as_str() && d.is_open())
            .map(|(t, _)| t.as_str())
            .collect();
        let memory: Vec<&str> = act
            .core
            .open_disbursements()
            .keys()
            .map(|t| t.as_str())
            .collect();
        (stored != memory).then(|| format!("pays {memory:?} in memory, {stored:?} in storage"))
    }

    /// The driver answers a command, asking the runtime to hold the answer until its transfer
    /// settles (`waiter`) or not: it holds a pending transfer's, while fewer callers than the
    /// limit wait for it, and nothing else.
    pub(super) fn contract_waiter(
        &mut self,
        node: usize,
        account: &AccountId,
        answer: &node::ledger::driver::Answer,
        waiter: bool,
    ) {
        let Some(a) = self.nodes[node].actors.get(account) else {
            return;
        };
        let (id, status) = match answer {
            node::ledger::driver::Answer::Reply(Ok(
                Reply::Transfer(view) | Reply::Capture { transfer: view, .. },
            )) => (&view.id, view.status),
            node::ledger::driver::Answer::Reply(Ok(Reply::Disbursement(d))) => (&d.id, d.status),
            _ if waiter => {
                let why = format!("holds a caller for a settlement without a transfer: {answer:?}");
                return self.contract_broken(node, account, why);
            }
            _ => return,
        };
        let pending = status == protocol::api::TransferStatus::Pending;
        let (limit, waiting) = (
            a.driver.limits().waiters_per_transfer,
            a.driver.waiters_of(id),
        );
        let why = if waiter && !pending {
            format!("holds a caller until {id} settles, already {status:?}")
        } else if waiter && waiting > limit {
            format!("{waiting} callers wait for {id}, past the limit of {limit}")
        } else if !waiter
            && pending
            && waiting < limit
            && (self.ledger.pending.contains_key(id.as_str())
                || self.ledger.disbursing.contains_key(id.as_str()))
        {
            // (A transfer settled since the answer was decided has no list any more.)
            format!("answers a caller of pending {id} at once while only {waiting} of {limit} wait")
        } else {
            return;
        };
        self.contract_broken(node, account, why);
    }

    /// The driver answered or released `reqs`: none may stay on its list.
    pub(super) fn contract_released(&mut self, node: usize, account: &AccountId, reqs: &[ReqId]) {
        let Some(a) = self.nodes[node].actors.get(account) else {
            return;
        };
        if let Some(req) = reqs.iter().find(|r| a.driver.is_waiting(**r)) {
            let why = format!("caller {req} was released but the driver still lists it");
            self.contract_broken(node, account, why);
        }
    }

    pub(super) fn contract_broken(&mut self, node: usize, account: &AccountId, why: String) {
        let why = format!("n{} {account}: {why}", node + 1);
        self.fail(FailureKind::Correctness, "driver contract", why);
    }
}
