//! The account driver: every decision around one activation of an account, sans-IO.
//!
//! The core ([`super::account`]) decides what one input means; the driver decides everything
//! around it: when to load the account, when to commit a batch of queued inputs, what each
//! storage outcome means, when saga timers fire, who waits for a transfer's settlement, what
//! is published on the balance stream, and when the activation stops. It does no IO, reads no
//! clock and draws no random number: a runtime calls it with inputs (a command, a saga
//! message, a timer, the result of work it asked for, the time now) and carries out the
//! [`Out`]puts it emits. Two runtimes drive it: the ractor actor in `walletd`
//! (`crate::cluster::actor`) and the simulator's node runtime, so every decision here runs
//! under the simulator's faults.
//!
//! Life of a driver:
//! - **Loading.** [`Driver::new`] asks for [`Work::Load`] (`exec::activate`: read the account,
//!   take its lease). Inputs that arrive meanwhile queue. A first load that fails stops the
//!   driver ([`StopReason::LoadFailed`]) and answers its queued commands "outcome unknown"; a
//!   reload that fails is tried again after a backoff ([`RELOAD_BACKOFF_INITIAL_MS`] doubling
//!   to [`RELOAD_BACKOFF_MAX_MS`]).
//! - **Ready.** Inputs queue; the first one asks the runtime for a [`Out::Flush`], which comes
//!   back after every input that arrived before it (ractor's FIFO mailbox, the simulator's
//!   event queue), and then the queue is committed as one batch ([`Work::Commit`], at most
//!   [`BATCH_INPUTS_MAX`] inputs, or at once when that many are queued). At most one piece of
//!   work is in flight, so a batch commits after the previous one: per-account order.
//! - **Storage outcomes** of a batch: committed, the effects go out (replies, saga messages,
//!   publications, deadlines, settlements); a conflict, a transaction too old or a store
//!   unavailable (nothing committed) retries the same batch after a backoff, up to
//!   [`BATCH_RETRIES_MAX`] times, then answers its commands "outcome unknown"; an unknown
//!   result, or any other failure, answers the batch's commands "outcome unknown" and reloads
//!   the account to find out what storage holds (memory may be behind); fenced (a newer
//!   activation holds the lease) steps aside.
//! - **Stepping aside.** Nothing of a fenced batch ran: its commands and every queued command
//!   are answered [`Answer::Moved`] (the caller retries on the current ring), its saga messages
//!   and the queued ones are handed back to routing ([`Out::Reroute`]), and the driver stops
//!   ([`StopReason::SteppedAside`]). It never reloads itself: taking the lease back would fence
//!   the rightful owner. A stopped driver answers later commands `Moved` and reroutes later
//!   saga messages, so what the runtime still delivers to it is not lost. The pending sweep's
//!   [`Driver::resume`] steps aside the same way when a saga the activation does not know
//!   shows that the lease moved.
//! - **Deadlines.** One [`deadlines::Deadlines`] per driver: a saga's timer effect sets its
//!   entry, its settlement removes it, and the runtime keeps one timer armed for the earliest
//!   ([`Out::SetTimer`], [`Out::CancelTimer`], with a token so a stale firing is ignored).
//! - **Waiters.** A command that started a transfer still pending gets a waiter (at most
//!   [`WAITERS_PER_TRANSFER_MAX`] per transfer); the settlement answers them
//!   ([`Out::Settle`]). After a reload, waiters of transfers no longer open are answered from
//!   the stored summaries ([`Work::ReadTransfers`]).
//! - **Streams never stall.** The driver remembers the highest journal sequence it published.
//!   After every load, if the stored sequence is higher (an unknown commit that landed, or
//!   commits of another activation), it reads the head entry ([`Work::ReadEntry`]) and
//!   publishes it; a subscriber that sees a gap back-fills from the journal.
//! - **Passivation.** [`Driver::passivate`] stops an idle driver (nothing queued, nothing in
//!   flight, no open transfer or disbursement it pays, no waiter); idle passivation and
//!   eviction both go through it, so neither strands a caller or a saga. Open holds do not
//!   keep an account active: their expiry is found again from the index of holds by expiry.
//! - **Limits.** The batch size, the inputs held (queued or in the batch in flight, so a
//!   retried batch that goes back to the queue stays within it) and the waiters per transfer
//!   are a [`Limits`]; the node runs the defaults, the simulator draws small ones so every
//!   limit is reached under faults.
//!
//! Left out: the driver does not know about nodes or rings (the runtime routes what it
//! reroutes and retries `Moved` commands), and it does not bound how long a caller waits (the
//! runtime times out its callers; a waiter whose caller left is answered into the void).

pub mod deadlines;
#[cfg(test)]
mod tests;

use super::account::{BalanceUpdate, Command, Effect, Input, Reply, ReqId};
use super::exec::Activation;
use super::planted::{planted, Bug};
use super::records::Lease;
use crate::storage::StorageError;
use deadlines::Deadlines;
use protocol::api::{Entry, TransferView};
use protocol::saga::SagaMsg;
use protocol::{AccountId, ApiError, TransferId};
use std::collections::{BTreeMap, VecDeque};

/// Most inputs one batch commits in one transaction.
pub const BATCH_INPUTS_MAX: usize = 256;
/// Most inputs held by one account, queued or in the batch in flight, by default (the node's
/// `limits.actor_queue_max`); past it a command is answered [`Answer::Overloaded`] at once
/// (nothing ran) and a saga message is dropped (its sender re-drives it).
pub const QUEUE_INPUTS_MAX: usize = 10_000;
/// Most callers waiting on one transfer's settlement.
pub const WAITERS_PER_TRANSFER_MAX: usize = 64;
/// Times a batch that did not commit (conflict, too old, unavailable) is tried again before
/// its commands are answered "outcome unknown".
pub const BATCH_RETRIES_MAX: u32 = 3;
/// First wait before reloading an account, or retrying a batch, after a storage failure.
pub const RELOAD_BACKOFF_INITIAL_MS: u64 = 50;
/// Longest wait between reload attempts.
pub const RELOAD_BACKOFF_MAX_MS: u64 = 5_000;

/// The driver's named limits; the node runs with [`Limits::default`], the simulator draws
/// small ones so that every limit is reached under faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most inputs one batch commits ([`BATCH_INPUTS_MAX`]).
    pub batch_inputs: usize,
    /// Most inputs queued ([`QUEUE_INPUTS_MAX`]).
    pub queue_inputs: usize,
    /// Most callers waiting on one transfer ([`WAITERS_PER_TRANSFER_MAX`]).
    pub waiters_per_transfer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            batch_inputs: BATCH_INPUTS_MAX,
            queue_inputs: QUEUE_INPUTS_MAX,
            waiters_per_transfer: WAITERS_PER_TRANSFER_MAX,
        }
    }
}

/// Why a command got no reply from the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The core's reply.
    Reply(Result<Reply, ApiError>),
    /// Nothing ran and this activation no longer serves the account: ask its owner.
    Moved,
    /// Storage did not confirm: the outcome is unknown, retry with the same key.
    Unknown(&'static str),
    /// Refused before anything ran: the account holds as many inputs as it may; retry later
    /// with the same key.
    Overloaded,
}

/// Work the runtime does for the driver and reports back. At most one is in flight.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // one piece of work per driver at a time
pub enum Work {
    /// Load the account and take its lease (`exec::activate` with a fresh nonce); report with
    /// [`Driver::loaded`].
    Load,
    /// Commit a batch (`exec::commit_batch`); report with [`Driver::committed`].
    Commit(Batch),
    /// Read the account's stored lease (`exec::read_lease`); report with
    /// [`Driver::lease_read`].
    ReadLease,
    /// Read these transfers' summaries (`exec::read_transfer`); report with
    /// [`Driver::transfers_read`].
    ReadTransfers(Vec<TransferId>),
    /// Read the journal entry with this sequence (`exec::read_entry`); report with
    /// [`Driver::entry_read`].
    ReadEntry(u64),
}

/// A batch of inputs to commit in one transaction, and the activation it runs on.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The activation (handed back with the result).
    pub act: Activation,
    /// The inputs, in order.
    pub inputs: Vec<Input>,
}

/// Why a driver stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Nothing to do: passivated (idle or evicted).
    Idle,
    /// A newer activation holds the lease.
    SteppedAside,
    /// The first load failed.
    LoadFailed,
}

/// What the driver asks its runtime to do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Out {
    /// Carry out this work and report its result.
    Work(WorkKind),
    /// Call [`Driver::flush`] after every input delivered so far.
    Flush,
    /// Answer a command; `waiter` means its caller may wait for the transfer's settlement.
    Answer {
        /// The command.
        req: ReqId,
        /// The answer.
        answer: Answer,
        /// Whether a waiter was registered under `req`.
        waiter: bool,
    },
    /// A transfer of this account settled: answer these waiters (possibly none).
    Settle {
        /// The waiters (request ids of the commands that started it).
        waiters: Vec<ReqId>,
        /// The settled transfer.
        view: TransferView,
    },
    /// Waiters that will never be answered (their transfer settled but its sender record,
    /// the transfer's summary, is gone).
    DropWaiters(Vec<ReqId>),
    /// Send a saga message to its destination account.
    Send(SagaMsg),
    /// A saga message that did not run here: route it again to its destination's owner.
    Reroute(SagaMsg),
    /// Publish a balance update on the stream.
    Publish(BalanceUpdate),
    /// Arm the actor's one timer for `at_ms`, replacing any earlier one; when it fires, call
    /// [`Driver::timer_fired`] with `token`.
    SetTimer {
        /// Identifies this arming.
        token: u64,
        /// When, ms since the epoch.
        at_ms: u64,
    },
    /// Disarm the actor's timer.
    CancelTimer,
    /// Call [`Driver::backoff_elapsed`] with `token` after `after_ms`.
    Backoff {
        /// Identifies this backoff.
        token: u64,
        /// Delay.
        after_ms: u64,
    },
    /// The driver stopped; the runtime removes the actor (messages it still delivers are
    /// answered `Moved` or rerouted).
    Stop(StopReason),
}

/// The work in an [`Out::Work`]; taken out of the driver with [`Driver::take_work`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkKind {
    /// [`Work::Load`].
    Load,
    /// [`Work::Commit`].
    Commit,
    /// [`Work::ReadLease`].
    ReadLease,
    /// [`Work::ReadTransfers`].
    ReadTransfers,
    /// [`Work::ReadEntry`].
    ReadEntry,
}

impl Work {
    fn kind(&self) -> WorkKind {
        match self {
            Work::Load => WorkKind::Load,
            Work::Commit(_) => WorkKind::Commit,
            Work::ReadLease => WorkKind::ReadLease,
            Work::ReadTransfers(_) => WorkKind::ReadTransfers,
            Work::ReadEntry(_) => WorkKind::ReadEntry,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Loading,
    Ready,
    Stopped,
}

/// One activation of an account and everything around it (see the module doc).
#[derive(Debug)]
pub struct Driver {
    id: AccountId,
    limits: Limits,
    phase: Phase,
    /// Loaded at least once.
    loaded: bool,
    /// `None` while loading, stopped, or while its batch is in flight.
    act: Option<Activation>,
    queue: VecDeque<Input>,
    /// The work handed to the runtime and not yet reported back.
    in_flight: Option<WorkKind>,
    /// Inputs of the batch in flight: they count against the queue's limit, since a batch
    /// that is retried goes back to the queue's front.
    batch_len: usize,
    /// Work emitted and not yet taken by the runtime.
    ready_work: Option<Work>,
    /// Reads to do before the next batch (publication catch-up, settled waiters, lease).
    followups: VecDeque<Work>,
    flush_requested: bool,
    flush_due: bool,
    /// A backoff is running: no work starts before it elapses.
    backoff: Option<u64>,
    backoff_ms: u64,
    batch_retries: u32,
    deadlines: Deadlines,
    /// The armed timer: its token and time.
    armed: Option<(u64, u64)>,
    tokens: u64,
    waiters: BTreeMap<TransferId, Vec<ReqId>>,
    next_req: ReqId,
    /// Highest journal sequence published by this driver (or known published).
    published_seq: u64,
    out: Vec<Out>,
}

impl Driver {
    /// A driver for `id` with the default limits that asks for its first load.
    pub fn new(id: AccountId) -> Self {
        Self::with_limits(id, Limits::default())
    }

    /// A driver for `id` with `limits` (each at least 1) that asks for its first load.
    pub fn with_limits(id: AccountId, limits: Limits) -> Self {
        assert!(
            limits.batch_inputs > 0 && limits.queue_inputs > 0 && limits.waiters_per_transfer > 0,
            "every limit admits at least one: {limits:?}"
        );
        let mut d = Driver {
            id,
            limits,
            phase: Phase::Loading,
            loaded: false,
            act: None,
            queue: VecDeque::new(),
            in_flight: None,
            batch_len: 0,
            ready_work: None,
            followups: VecDeque::new(),
            flush_requested: false,
            flush_due: false,
            backoff: None,
            backoff_ms: RELOAD_BACKOFF_INITIAL_MS,
            batch_retries: 0,
            deadlines: Deadlines::default(),
            armed: None,
            tokens: 0,
            waiters: BTreeMap::new(),
            next_req: 0,
            published_seq: 0,
            out: Vec::new(),
        };
        d.pump();
        d
    }

    /// The account.
    pub fn id(&self) -> &AccountId {
        &self.id
    }

    /// The limits it runs with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The activation, when one is loaded and not in flight.
    pub fn activation(&self) -> Option<&Activation> {
        self.act.as_ref()
    }

    /// True once the driver stopped.
    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// Inputs held and not yet committed: queued, or in the batch in flight.
    pub fn queued(&self) -> usize {
        self.queue.len() + self.batch_len
    }

    /// Number of saga deadlines set.
    pub fn deadlines(&self) -> usize {
        self.deadlines.len()
    }

    /// The earliest saga deadline, for which the runtime's one timer must be armed.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.earliest()
    }

    /// Number of callers waiting for the settlement of `transfer`.
    pub fn waiters_of(&self, transfer: &TransferId) -> usize {
        self.waiters.get(transfer).map_or(0, Vec::len)
    }

    /// Number of callers waiting for a settlement.
    pub fn waiting(&self) -> usize {
        self.waiters.values().map(Vec::len).sum()
    }

    /// True while `req` waits for its transfer's settlement.
    pub fn is_waiting(&self, req: ReqId) -> bool {
        self.waiters.values().any(|w| w.contains(&req))
    }

    /// The outputs emitted since the last call, in order.
    pub fn take_out(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.out)
    }

    /// The work announced by the last [`Out::Work`], for the runtime to carry out.
    pub fn take_work(&mut self) -> Work {
        self.ready_work.take().expect("work was announced")
    }

    /// True when nothing is queued, in flight or waiting for a backoff: an actor drained now
    /// (shutdown, or its account moved to another node) loses no input, though its open
    /// sagas wait for the pending sweep and its waiters learn only "pending".
    pub fn is_quiet(&self) -> bool {
        self.phase == Phase::Ready
            && self.in_flight.is_none()
            && self.queue.is_empty()
            && self.followups.is_empty()
            && self.backoff.is_none()
    }

    /// True when a drain (shutdown, or the account moving away) may stop the activation now:
    /// quiet, or waiting out a backoff with no work in flight (storage is failing; callers of
    /// what is still queued learn "outcome unknown" when the runtime drops them).
    pub fn is_drainable(&self) -> bool {
        self.is_quiet()
            || (self.in_flight.is_none() && self.ready_work.is_none() && self.backoff.is_some())
    }

    /// True when the driver can stop without losing anything: quiet, no open transfer or
    /// disbursement it pays, no waiter.
    pub fn is_idle(&self) -> bool {
        let quiet = self.is_quiet();
        if planted(Bug::EvictWithWaiter) {
            return quiet;
        }
        quiet
            && self.waiters.is_empty()
            && self.act.as_ref().is_some_and(|a| {
                a.core.open_sagas().is_empty() && a.core.open_disbursements().is_empty()
            })
    }

    // ---- inputs ------------------------------------------------------------------------

    /// A client command; returns the request id its answer will carry.
    pub fn command(&mut self, cmd: Command) -> ReqId {
        self.next_req += 1;
        let req = self.next_req;
        if self.phase == Phase::Stopped {
            self.answer(req, Answer::Moved);
        } else if self.queue.len() + self.batch_len >= self.limits.queue_inputs {
            self.answer(req, Answer::Overloaded);
        } else {
            self.enqueue(Input::Command(req, cmd));
        }
        self.pump();
        req
    }

    /// A saga message for this account.
    pub fn saga(&mut self, msg: SagaMsg) {
        if self.phase == Phase::Stopped {
            self.out.push(Out::Reroute(msg));
        } else if self.queue.len() + self.batch_len < self.limits.queue_inputs {
            self.enqueue(Input::Saga(msg));
        }
        self.pump();
    }

    /// The runtime delivered the flush it was asked for.
    pub fn flush(&mut self) {
        self.flush_requested = false;
        self.flush_due = true;
        self.pump();
    }

    /// The timer armed with `token` fired at `now_ms`.
    pub fn timer_fired(&mut self, token: u64, now_ms: u64) {
        if self.phase == Phase::Stopped || self.armed.map(|(t, _)| t) != Some(token) {
            return; // disarmed or replaced: a stale firing
        }
        self.armed = None;
        for tid in self.deadlines.take_due(now_ms) {
            if self.queue.len() + self.batch_len < self.limits.queue_inputs {
                self.enqueue(Input::Timer(tid));
            } else {
                // Re-armed shortly: a saga never loses its timer.
                self.deadlines.set(tid, now_ms + RELOAD_BACKOFF_INITIAL_MS);
            }
        }
        self.sync_timer();
        self.pump();
    }

    /// The backoff announced with `token` elapsed.
    pub fn backoff_elapsed(&mut self, token: u64) {
        if self.backoff == Some(token) {
            self.backoff = None;
            self.pump();
        }
    }

    /// The pending sweep found `transfer` unsettled with this account as sender: an
    /// activation that does not know it checks that it still holds the lease, and steps aside
    /// if not.
    pub fn resume(&mut self, transfer: &TransferId) {
        let Some(act) = &self.act else {
            return; // loading (the load resumes every open saga) or a batch in flight
        };
        if self.phase != Phase::Ready || act.core.knows(transfer) {
            return;
        }
        if !self.followups.iter().any(|w| matches!(w, Work::ReadLease)) {
            self.followups.push_back(Work::ReadLease);
        }
        self.pump();
    }

    /// Asked to stop (idle passivation or eviction): stops and returns true when idle.
    pub fn passivate(&mut self) -> bool {
        if !self.is_idle() {
            return false;
        }
        self.stop(StopReason::Idle);
        true
    }

    // ---- results of work -----------------------------------------------------------------

    /// The result of [`Work::Load`]; `now_ms` is the time now.
    pub fn loaded(&mut self, result: Result<Activation, StorageError>, now_ms: u64) {
        self.done(WorkKind::Load);
        match result {
            Ok(act) => {
                self.loaded = true;
                self.phase = Phase::Ready;
                self.backoff_ms = RELOAD_BACKOFF_INITIAL_MS;
                self.batch_retries = 0;
                // Every open saga is re-driven under fresh deadlines.
                self.deadlines.clear();
                let resume = act.core.resume(now_ms);
                self.act = Some(act);
                if !planted(Bug::ForgetLandedPublications) {
                    self.queue_head_read();
                }
                // Waiters of transfers that settled in a commit this driver never learned of.
                self.queue_settled_reads();
                self.effects(resume, now_ms);
            }
            Err(_) if !self.loaded || planted(Bug::StopOnFailedReload) => {
                for input in std::mem::take(&mut self.queue) {
                    match input {
                        Input::Command(req, _) => self.answer(
                            req,
                            Answer::Unknown(
                                "the account could not be activated (storage unreachable)",
                            ),
                        ),
                        Input::Saga(_) | Input::Timer(_) => {} // the sender re-drives it
                    }
                }
                self.stop(StopReason::LoadFailed);
            }
            Err(_) => self.start_backoff(),
        }
        self.sync_timer();
        self.pump();
    }

    /// The result of [`Work::Commit`]: the batch handed back and what `exec::commit_batch`
    /// returned for it; `now_ms` is the time now.
    pub fn committed(
        &mut self,
        batch: Batch,
        result: Result<(Activation, Vec<Effect>), StorageError>,
        now_ms: u64,
    ) {
        self.done(WorkKind::Commit);
        self.batch_len = 0;
        match result {
            Ok((next, effects)) => {
                self.batch_retries = 0;
                self.backoff_ms = RELOAD_BACKOFF_INITIAL_MS;
                self.act = Some(next);
                self.effects(effects, now_ms);
            }
            Err(StorageError::Fenced) if !planted(Bug::ReloadAfterFenced) => {
                self.step_aside(batch.inputs);
            }
            Err(e)
                if (matches!(
                    e,
                    StorageError::Conflict | StorageError::TooOld | StorageError::Unavailable(_)
                ) || (e.maybe_committed() && planted(Bug::RetryUnknownCommit)))
                    && self.batch_retries < BATCH_RETRIES_MAX =>
            {
                // Nothing committed (an unknown attempt is reported as unknown): memory is
                // still storage's, so the same batch runs again after a backoff.
                self.batch_retries += 1;
                self.act = Some(batch.act);
                for input in batch.inputs.into_iter().rev() {
                    self.queue.push_front(input);
                }
                self.flush_due = true;
                self.start_backoff();
            }
            Err(e) => {
                self.batch_retries = 0;
                let why = if e.maybe_committed() {
                    "storage did not confirm the commit"
                } else {
                    "storage refused the commit"
                };
                let core = &batch.act.core;
                let open: Vec<TransferId> = batch
                    .inputs
                    .iter()
                    .filter_map(|i| match i {
                        Input::Timer(t) if core.wants_timer(t) => Some(t.clone()),
                        _ => None,
                    })
                    .collect();
                self.fail_inputs(batch.inputs, &open, why, now_ms);
                if matches!(
                    e,
                    StorageError::Conflict | StorageError::TooOld | StorageError::Unavailable(_)
                ) {
                    // Still nothing committed: keep the activation.
                    self.act = Some(batch.act);
                } else {
                    // The commit may have landed (or storage holds what memory does not
                    // explain): reload to find out before taking more input. The load
                    // re-arms every open saga.
                    self.phase = Phase::Loading;
                    self.deadlines.clear();
                    self.start_backoff();
                }
            }
        }
        self.sync_timer();
        self.pump();
    }

    /// The result of [`Work::ReadLease`].
    pub fn lease_read(&mut self, result: Result<Option<Lease>, StorageError>) {
        self.done(WorkKind::ReadLease);
        if let (Ok(stored), Some(act)) = (&result, &self.act) {
            if stored != &act.lease {
                self.step_aside(Vec::new());
            }
        }
        // A failed read proves nothing: the next sweep asks again.
        self.sync_timer();
        self.pump();
    }

    /// The result of [`Work::ReadTransfers`]: the summaries found (a transfer missing from
    /// the result has no summary).
    pub fn transfers_read(&mut self, result: Result<Vec<TransferView>, StorageError>) {
        self.done(WorkKind::ReadTransfers);
        match result {
            Ok(views) => {
                for view in views {
                    if let Some(waiters) = self.waiters.remove(&view.id) {
                        self.out.push(Out::Settle { waiters, view });
                    }
                }
                // Waiters of transfers that are settled but have no summary: never answered.
                let gone: Vec<TransferId> = self
                    .waiters
                    .keys()
                    .filter(|t| {
                        self.act
                            .as_ref()
                            .is_some_and(|a| !a.core.awaits_settlement(t))
                    })
                    .cloned()
                    .collect();
                let mut dropped = Vec::new();
                for t in gone {
                    dropped.extend(self.waiters.remove(&t).unwrap_or_default());
                }
                if !dropped.is_empty() {
                    self.out.push(Out::DropWaiters(dropped));
                }
            }
            Err(_) => {
                // Asked again after a backoff: a waiter is answered once storage answers.
                self.queue_settled_reads();
                self.start_backoff();
            }
        }
        self.pump();
    }

    /// The result of [`Work::ReadEntry`].
    pub fn entry_read(&mut self, result: Result<Option<Entry>, StorageError>) {
        self.done(WorkKind::ReadEntry);
        match result {
            Ok(Some(entry)) => {
                if entry.seq > self.published_seq {
                    self.published_seq = entry.seq;
                    self.out.push(Out::Publish(BalanceUpdate {
                        account: self.id.clone(),
                        held: entry.balance - entry.available,
                        entry,
                    }));
                }
            }
            Ok(None) => {} // cannot happen for a committed head; nothing to publish
            Err(_) => {
                // Read again after a backoff: streams must not wait for the next commit.
                self.queue_head_read();
                self.start_backoff();
            }
        }
        self.pump();
    }

    // ---- internals -----------------------------------------------------------------------

    fn enqueue(&mut self, input: Input) {
        self.queue.push_back(input);
    }

    /// Asks for the head journal entry when storage holds entries this driver has not
    /// published (written by an unknown-but-landed commit or by another activation).
    fn queue_head_read(&mut self) {
        let head = self
            .act
            .as_ref()
            .and_then(|a| a.core.record())
            .map_or(0, |r| r.seq);
        if head > self.published_seq {
            self.followups.push_back(Work::ReadEntry(head));
        }
    }

    /// Asks for the summaries of transfers that have waiters but are no longer open.
    fn queue_settled_reads(&mut self) {
        let Some(act) = &self.act else {
            return;
        };
        let settled: Vec<TransferId> = self
            .waiters
            .keys()
            .filter(|t| !act.core.awaits_settlement(t))
            .cloned()
            .collect();
        if !settled.is_empty() {
            self.followups.push_back(Work::ReadTransfers(settled));
        }
    }

    fn answer(&mut self, req: ReqId, answer: Answer) {
        self.out.push(Out::Answer {
            req,
            answer,
            waiter: false,
        });
    }

    fn done(&mut self, kind: WorkKind) {
        assert_eq!(
            self.in_flight.take(),
            Some(kind),
            "{}: a result for work that was not in flight",
            self.id
        );
    }

    fn start_backoff(&mut self) {
        self.tokens += 1;
        self.backoff = Some(self.tokens);
        self.out.push(Out::Backoff {
            token: self.tokens,
            after_ms: self.backoff_ms,
        });
        self.backoff_ms = (self.backoff_ms * 2).min(RELOAD_BACKOFF_MAX_MS);
    }

    /// Answers the commands of a batch that did not (or may not have) run "outcome unknown";
    /// its saga messages are dropped (their senders re-drive them) and the timers the core
    /// still wants (`wants_timer`) re-armed after a backoff, so no open saga, disbursement or
    /// held hold is left without a deadline (and a settled one, or a hold being captured,
    /// costs no timer).
    fn fail_inputs(
        &mut self,
        inputs: Vec<Input>,
        open: &[TransferId],
        why: &'static str,
        now_ms: u64,
    ) {
        for input in inputs {
            match input {
                Input::Command(req, _) => self.answer(req, Answer::Unknown(why)),
                Input::Saga(_) => {}
                Input::Timer(tid) if open.contains(&tid) => self
                    .deadlines
                    .set(tid, now_ms.saturating_add(RELOAD_BACKOFF_INITIAL_MS)),
                Input::Timer(_) => {} // settled before its timer ran
            }
        }
    }

    /// Nothing of `inputs` ran and a newer activation holds the lease: hand everything back
    /// and stop, without ever reloading.
    fn step_aside(&mut self, inputs: Vec<Input>) {
        let queued: Vec<Input> = self.queue.drain(..).collect();
        for input in inputs.into_iter().chain(queued) {
            match input {
                Input::Command(req, _) => self.answer(req, Answer::Moved),
                Input::Saga(msg) => self.out.push(Out::Reroute(msg)),
                Input::Timer(_) => {} // the saga belongs to the newer activation now
            }
        }
        self.stop(StopReason::SteppedAside);
    }

    fn stop(&mut self, reason: StopReason) {
        self.phase = Phase::Stopped;
        self.act = None;
        self.followups.clear();
        self.deadlines.clear();
        self.backoff = None;
        self.sync_timer();
        self.out.push(Out::Stop(reason));
    }

    /// Carries out a committed batch's effects.
    fn effects(&mut self, effects: Vec<Effect>, now_ms: u64) {
        for effect in effects {
            match effect {
                Effect::Reply(req, result) => {
                    let waiter = match result.as_ref().ok().and_then(Reply::awaits) {
                        Some(id) => {
                            let list = self.waiters.entry(id.clone()).or_default();
                            let room = list.len() < self.limits.waiters_per_transfer;
                            if room {
                                list.push(req);
                            }
                            room
                        }
                        None => false,
                    };
                    self.out.push(Out::Answer {
                        req,
                        answer: Answer::Reply(result),
                        waiter,
                    });
                }
                Effect::Send(msg) => self.out.push(Out::Send(msg)),
                Effect::Publish(update) => {
                    self.published_seq = self.published_seq.max(update.entry.seq);
                    self.out.push(Out::Publish(update));
                }
                Effect::Timer {
                    transfer_id,
                    after_ms,
                } => self
                    .deadlines
                    .set(transfer_id, now_ms.saturating_add(after_ms)),
                Effect::Disarm(id) => self.deadlines.remove(&id),
                Effect::Settled(view) => {
                    self.deadlines.remove(&view.id);
                    let waiters = self.waiters.remove(&view.id).unwrap_or_default();
                    self.out.push(Out::Settle { waiters, view });
                }
            }
        }
    }

    /// Keeps the runtime's one timer armed for the earliest deadline.
    fn sync_timer(&mut self) {
        let want = self.deadlines.earliest();
        match (want, self.armed) {
            (None, None) => {}
            (None, Some(_)) => {
                self.armed = None;
                self.out.push(Out::CancelTimer);
            }
            (Some(at), Some((_, armed_at))) if at == armed_at => {}
            (Some(at), _) => {
                self.tokens += 1;
                self.armed = Some((self.tokens, at));
                self.out.push(Out::SetTimer {
                    token: self.tokens,
                    at_ms: at,
                });
            }
        }
    }

    /// Starts the next piece of work if none is in flight, then gives back the memory of
    /// what emptied.
    fn pump(&mut self) {
        self.start_next();
        self.compact();
    }

    /// Gives back the memory of emptied queues and maps: an emptied `VecDeque` or `BTreeMap`
    /// keeps its last allocation (half a kilobyte to over a kilobyte each here), and a node
    /// keeps up to `active_max` idle accounts active, so an idle driver holds only itself.
    fn compact(&mut self) {
        if self.queue.is_empty() {
            self.queue = VecDeque::new();
        }
        if self.followups.is_empty() {
            self.followups = VecDeque::new();
        }
        if self.waiters.is_empty() {
            self.waiters = BTreeMap::new();
        }
        self.deadlines.compact();
        if let Some(act) = &mut self.act {
            act.core.compact();
        }
    }

    /// Starts the next piece of work if none is in flight.
    fn start_next(&mut self) {
        if self.in_flight.is_some() || self.backoff.is_some() {
            return;
        }
        let work = match self.phase {
            Phase::Stopped => return,
            Phase::Loading => Work::Load,
            Phase::Ready => {
                if let Some(w) = self.followups.pop_front() {
                    w
                } else if self.queue.is_empty() {
                    self.flush_due = false;
                    return;
                } else if self.flush_due || self.queue.len() >= self.limits.batch_inputs {
                    self.flush_due = false;
                    let take = self.queue.len().min(self.limits.batch_inputs);
                    let inputs: Vec<Input> = self.queue.drain(..take).collect();
                    self.batch_len = inputs.len();
                    let act = self
                        .act
                        .take()
                        .expect("a ready driver holds its activation");
                    Work::Commit(Batch { act, inputs })
                } else {
                    if !self.flush_requested {
                        self.flush_requested = true;
                        self.out.push(Out::Flush);
                    }
                    return;
                }
            }
        };
        self.in_flight = Some(work.kind());
        self.out.push(Out::Work(work.kind()));
        self.ready_work = Some(work);
    }
}
