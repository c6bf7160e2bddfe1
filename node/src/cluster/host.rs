//! A host: one ractor actor that runs the account actors of its share of the accounts.
//!
//! Each account is a virtual actor: its [`Driver`] takes its inputs one at a time, in the
//! order they reached the host's FIFO mailbox, and makes every decision. A host holds many of
//! them in its [`Table`] and carries out their outputs without ever waiting: storage work runs
//! on the node's committer or a blocking thread and comes back as an [`Event`] message, timers
//! and backoffs are delayed messages, and an [`Out::Flush`] is a message to itself, which
//! arrives after every input that reached the host before it (so one flush commits them all).
//! A generation on every event tells it from the events of an earlier activation of the same
//! account.
//!
//! Why hosts and not one ractor actor per account: an actor costs its task, four mailbox
//! channels and its registry entries, about 7.6 KB before the account's own state, which puts
//! 1,000,000 active accounts far beyond a 2 GB node. A hosted idle account costs its driver
//! and two index entries, about 1.2 KB (BENCHMARKS.md, "Memory per active account").
//!
//! Loads (activation takes the account's lease, a write) run at most [`LOADS_PER_HOST_MAX`]
//! at once per host; the others wait their turn in order. Storage work that panics is
//! reported to the driver as a failure, and a panic while handling an account drops that
//! account's activation only.
//!
//! A host stops an activation when its driver stops (idle, stepped aside, failed first load),
//! and when it drains (shutdown, or the ring gave the account to another node) as soon as the
//! driver is drainable: nothing in flight, nothing queued. A draining account still takes its
//! inputs, so the transfers in flight on a stopping node finish rather than wait.

use super::table::{Table, IDLE_SCAN_BATCH_MAX};
use super::{overloaded, unavailable, Refusal, Shell};
use crate::ledger::account::{Command, Reply, ReqId};
use crate::ledger::driver::{Answer, Batch, Driver, Out, StopReason, Work};
use crate::ledger::exec::{self, Activation, Committed};
use crate::ledger::records::Lease;
use crate::storage::StorageError;
use protocol::api::{Entry, TransferView};
use protocol::saga::SagaMsg;
use protocol::{AccountId, TransferId};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

/// Most account loads one host runs at once; the others wait their turn. A load takes the
/// account's lease (a write), so a burst of activations (a sweep after a restart, a flood of
/// reads of cold accounts) would otherwise fill the blocking pool and queue the node's group
/// commits behind it.
pub const LOADS_PER_HOST_MAX: usize = 4;

/// What a caller gets back: the reply, and for a pending transfer a receiver of its settlement.
pub type CommandReply = Result<(Reply, Option<oneshot::Receiver<TransferView>>), Refusal>;

/// A message to one account's actor; every one activates the account if it is not active.
pub enum AccountMsg {
    /// A client command and where to answer it.
    Command {
        /// The command.
        cmd: Command,
        /// The reply port.
        reply: oneshot::Sender<CommandReply>,
    },
    /// Client commands in order, each with where to answer it (one sender's items of a batch:
    /// one message, so they queue together, in order, and commit in as few batches as the
    /// driver's batch cap allows).
    Commands(Vec<(Command, oneshot::Sender<CommandReply>)>),
    /// A saga message from another account.
    Saga(SagaMsg),
    /// The pending sweep found this unsettled transfer of the account: an activation that does
    /// not know it checks that it still holds the lease, and steps aside if not (a new
    /// activation resumes every unsettled transfer as it loads).
    Resume(TransferId),
}

/// Something that happens to one activation.
pub(crate) enum Event {
    /// The flush its driver asked for.
    Flush,
    /// The saga timer armed with this token fired.
    Timer(u64),
    /// The backoff announced with this token elapsed.
    Backoff(u64),
    /// The work in flight finished (boxed: a batch and its result are large).
    Done(Box<Done>),
}

/// The result of an activation's work (always boxed in `Event::Done`, so its variants may
/// differ in size).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Done {
    Loaded(Result<Activation, StorageError>),
    Committed(Batch, Committed),
    Lease(Result<Option<Lease>, StorageError>),
    Transfers(Result<Vec<TransferView>, StorageError>),
    Entry(Result<Option<Entry>, StorageError>),
}

/// A message to a host.
pub(crate) enum HostMsg {
    /// An input for an account.
    To(AccountId, AccountMsg),
    /// An event of the account's activation of generation `gen` (ignored if that activation
    /// ended).
    Event {
        account: AccountId,
        gen: u64,
        event: Event,
    },
    /// Ask the accounts unused for this long to passivate ([`IDLE_SCAN_BATCH_MAX`] at a
    /// time, until none is left).
    IdleScan(Duration),
    /// Drain the accounts this node no longer owns; answers how many.
    DrainMoved(oneshot::Sender<usize>),
    /// Drain every account, and answer once none is left.
    DrainAll(oneshot::Sender<()>),
    /// Panic while handling this account (tests of the containment of a bug).
    #[cfg(test)]
    PanicFor(AccountId),
}

// Local only: host messages never cross the network (saga messages travel as `PeerMsg`).
impl ractor::Message for HostMsg {}

/// The host's behaviour (stateless; state is in [`HostState`]).
pub(crate) struct Host;

/// What a host is started with.
pub(crate) struct HostArgs {
    /// The node's shell.
    pub shell: Shell,
    /// Its table (behind a mutex: a panic while the host handles it poisons it, and the host
    /// clears that and goes on).
    pub table: Arc<Mutex<Table>>,
}

/// A host's state: its table and the drains waiting for it to empty.
pub(crate) struct HostState {
    shell: Shell,
    table: Arc<Mutex<Table>>,
    me: ActorRef<HostMsg>,
    /// A drain of every account is under way: new activations drain too.
    draining_all: bool,
    drained: Vec<oneshot::Sender<()>>,
    /// Loads running, at most [`LOADS_PER_HOST_MAX`].
    loads: usize,
    /// Activations waiting for their load to start, in order.
    loads_waiting: VecDeque<(AccountId, u64)>,
    /// The account whose input is being handled (the one a panic is charged to).
    handling: Option<AccountId>,
}

impl Actor for Host {
    type Msg = HostMsg;
    type State = HostState;
    type Arguments = HostArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<HostMsg>,
        args: HostArgs,
    ) -> Result<HostState, ActorProcessingErr> {
        Ok(HostState {
            shell: args.shell,
            table: args.table,
            me: myself,
            draining_all: false,
            drained: Vec::new(),
            loads: 0,
            loads_waiting: VecDeque::new(),
            handling: None,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<HostMsg>,
        msg: HostMsg,
        state: &mut HostState,
    ) -> Result<(), ActorProcessingErr> {
        // A panic is a bug in one account's handling: that account's activation is dropped
        // (its callers learn "outcome unknown"; what it committed is in storage, and its next
        // message activates it afresh), and the host's other accounts go on.
        if std::panic::catch_unwind(AssertUnwindSafe(|| state.handle(msg))).is_err() {
            state.contain_panic();
        }
        Ok(())
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl HostState {
    fn handle(&mut self, msg: HostMsg) {
        let table = self.table.clone();
        let mut t = table.lock().expect("a panic clears the poison");
        match msg {
            HostMsg::To(id, msg) => self.input(&mut t, id, msg),
            HostMsg::Event {
                account,
                gen,
                event,
            } => self.event(&mut t, &account, gen, event),
            HostMsg::IdleScan(idle) => {
                let ids = t.idle(idle);
                let more = ids.len() == IDLE_SCAN_BATCH_MAX;
                for id in &ids {
                    self.passivate(&mut t, id);
                }
                // The rest in another chunk, behind what reached the mailbox meanwhile, so a
                // scan never holds the host long and still passivates every idle account
                // (the accounts asked are touched, so the scan moves on and ends).
                if more {
                    let _ = self.me.send_message(HostMsg::IdleScan(idle));
                }
            }
            HostMsg::DrainMoved(done) => {
                let membership = self.shell.membership().clone();
                let moved: Vec<AccountId> = t
                    .ids()
                    .into_iter()
                    .filter(|id| !membership.owns(id.as_str()))
                    .collect();
                for id in &moved {
                    self.drain(&mut t, id);
                }
                let _ = done.send(moved.len());
            }
            HostMsg::DrainAll(done) => {
                self.draining_all = true;
                self.drained.push(done);
                for id in t.ids() {
                    self.drain(&mut t, &id);
                }
            }
            #[cfg(test)]
            HostMsg::PanicFor(id) => {
                self.handling = Some(id.clone());
                panic!("planted panic while handling {id}");
            }
        }
        self.handling = None;
        if self.draining_all && t.is_empty() {
            self.draining_all = false;
            for done in self.drained.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Recovers from a panic in [`HostState::handle`]: the account being handled loses its
    /// activation, and the table is usable again.
    fn contain_panic(&mut self) {
        self.table.clear_poison();
        let mut t = self.table.lock().expect("poison cleared");
        let Some(id) = self.handling.take() else {
            tracing::error!("an account host panicked outside any account's handling; it goes on");
            return;
        };
        tracing::error!(account = %id, "handling this account panicked (a bug); its activation is dropped and its callers learn the outcome is unknown");
        if let Some(slot) = t.remove(&id) {
            self.loads_waiting
                .retain(|(a, g)| !(a == &id && *g == slot.gen));
            self.shell.directory().deactivated(&id);
        }
    }

    fn input(&mut self, t: &mut Table, id: AccountId, msg: AccountMsg) {
        self.handling = Some(id.clone());
        if t.contains(&id) {
            t.touch(&id);
        } else {
            for victim in t.evictions() {
                self.passivate(t, &victim);
            }
            let limits = self.shell.config().driver_limits;
            t.insert(
                id.clone(),
                Driver::with_limits(id.clone(), limits),
                self.draining_all,
            );
            self.shell.directory().activated(&id);
        }
        let slot = t.get_mut(&id).expect("activated above");
        let gen = slot.gen;
        match msg {
            AccountMsg::Command { cmd, reply } => {
                let req = slot.driver.command(cmd);
                t.replies.insert((gen, req), reply);
            }
            AccountMsg::Commands(cmds) => {
                for (cmd, reply) in cmds {
                    let req = t.get_mut(&id).expect("active").driver.command(cmd);
                    t.replies.insert((gen, req), reply);
                }
            }
            AccountMsg::Saga(m) => slot.driver.saga(m),
            AccountMsg::Resume(tid) => slot.driver.resume(&tid),
        }
        self.drive(t, &id);
    }

    fn event(&mut self, t: &mut Table, id: &AccountId, gen: u64, event: Event) {
        if matches!(&event, Event::Done(d) if matches!(**d, Done::Loaded(_))) {
            // Counted even if the activation ended meanwhile (a panic dropped it).
            self.loads -= 1;
            self.start_waiting_loads(t);
        }
        let Some(slot) = t.current(id, gen) else {
            return; // that activation ended
        };
        self.handling = Some(id.clone());
        let d = &mut slot.driver;
        match event {
            Event::Flush => d.flush(),
            Event::Timer(token) => d.timer_fired(token, now_ms()),
            Event::Backoff(token) => d.backoff_elapsed(token),
            Event::Done(done) => match *done {
                Done::Loaded(r) => {
                    match &r {
                        Ok(_) => {
                            self.shell.metrics().activations.inc();
                        }
                        Err(e) => {
                            tracing::warn!(account = %id, error = %e, "account could not be loaded")
                        }
                    }
                    d.loaded(r, now_ms());
                }
                Done::Committed(batch, r) => {
                    if let Err(e) = &r {
                        tracing::warn!(account = %id, error = %e, "batch not committed");
                    }
                    d.committed(batch, r, now_ms());
                }
                Done::Lease(r) => d.lease_read(r),
                Done::Transfers(r) => d.transfers_read(r),
                Done::Entry(r) => d.entry_read(r),
            },
        }
        self.drive(t, id);
    }

    /// Starts the loads that waited for a turn, up to [`LOADS_PER_HOST_MAX`] running.
    fn start_waiting_loads(&mut self, t: &mut Table) {
        while self.loads < LOADS_PER_HOST_MAX {
            let Some((id, gen)) = self.loads_waiting.pop_front() else {
                return;
            };
            // A waiting load's activation cannot end: its driver has work in flight.
            assert!(t.current(&id, gen).is_some(), "{id} waits for its load");
            self.start_load(&id, gen);
        }
    }

    /// Asks an account to stop if it is idle.
    fn passivate(&mut self, t: &mut Table, id: &AccountId) {
        if let Some(slot) = t.get_mut(id) {
            slot.driver.passivate();
            self.drive(t, id);
        }
    }

    /// Makes an account stop as soon as it is drainable, committing what it has queued first.
    fn drain(&mut self, t: &mut Table, id: &AccountId) {
        if let Some(slot) = t.get_mut(id) {
            slot.draining = true;
            slot.driver.flush();
            self.drive(t, id);
        }
    }

    /// Carries out an account's outputs until its driver asks for nothing more, then ends the
    /// activation if it stopped or drained.
    fn drive(&mut self, t: &mut Table, id: &AccountId) {
        self.handling = Some(id.clone());
        let mut stopped = false;
        loop {
            let Some(slot) = t.get_mut(id) else {
                return;
            };
            let gen = slot.gen;
            let out = slot.driver.take_out();
            if out.is_empty() {
                break;
            }
            for o in out {
                match o {
                    Out::Work(_) => {
                        let work = t.get_mut(id).expect("active").driver.take_work();
                        self.start(id, gen, work);
                    }
                    Out::Flush => self.send(id, gen, Event::Flush),
                    Out::Answer {
                        req,
                        answer,
                        waiter,
                    } => answer_caller(t, gen, req, answer, waiter),
                    Out::Settle { waiters, view } => {
                        self.shell.metrics().transfers_settled(view.status);
                        for req in waiters {
                            if let Some(w) = t.waiters.remove(&(gen, req)) {
                                let _ = w.send(view.clone());
                            }
                        }
                    }
                    Out::DropWaiters(reqs) => {
                        for req in reqs {
                            t.waiters.remove(&(gen, req));
                        }
                    }
                    Out::Send(msg) => {
                        self.shell.metrics().saga_messages.inc();
                        // To an account this node owns: straight into its host's mailbox.
                        if let Some(msg) = self.shell.deliver_now(msg) {
                            let shell = self.shell.clone();
                            tokio::spawn(async move { shell.deliver(msg).await });
                        }
                    }
                    Out::Reroute(msg) => {
                        let shell = self.shell.clone();
                        tokio::spawn(async move { shell.deliver(msg).await });
                    }
                    Out::Publish(update) => self.shell.publish(update),
                    Out::SetTimer { token, at_ms } => {
                        let after = Duration::from_millis(at_ms.saturating_sub(now_ms()));
                        let timer = self.after(after, id, gen, Event::Timer(token));
                        let slot = t.get_mut(id).expect("active");
                        slot.cancel_timer();
                        slot.timer = Some(timer);
                    }
                    Out::CancelTimer => t.get_mut(id).expect("active").cancel_timer(),
                    Out::Backoff { token, after_ms } => {
                        self.after(
                            Duration::from_millis(after_ms),
                            id,
                            gen,
                            Event::Backoff(token),
                        );
                    }
                    Out::Stop(reason) => {
                        match reason {
                            StopReason::SteppedAside => {
                                tracing::info!(account = %id, "stale activation steps aside")
                            }
                            StopReason::Idle => {}
                            StopReason::LoadFailed => {
                                tracing::warn!(account = %id, "activation failed")
                            }
                        }
                        stopped = true;
                    }
                }
            }
            if stopped {
                break;
            }
        }
        let slot = t.get_mut(id).expect("still active");
        if stopped || (slot.draining && slot.driver.is_drainable()) {
            // Callers still waiting for a settlement report the transfer pending.
            t.remove(id);
            self.shell.directory().deactivated(id);
        }
    }

    /// Sends an event to one of this host's activations.
    fn send(&self, id: &AccountId, gen: u64, event: Event) {
        send_event(&self.me, id.clone(), gen, event);
    }

    /// Sends an event after a delay; the handle cancels it.
    fn after(&self, delay: Duration, id: &AccountId, gen: u64, event: Event) -> AbortHandle {
        let (me, account) = (self.me.clone(), id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            send_event(&me, account, gen, event);
        })
        .abort_handle()
    }

    /// Starts the announced work; its result comes back as [`Event::Done`].
    fn start(&mut self, id: &AccountId, gen: u64, work: Work) {
        let shell = &self.shell;
        let (store, keys) = (shell.store().clone(), shell.keys().clone());
        let (me, id) = (self.me.clone(), id.clone());
        match work {
            Work::Commit(batch) => {
                shell
                    .metrics()
                    .batch_inputs
                    .observe(batch.inputs.len() as f64);
                let committer = shell.committer().clone();
                tokio::spawn(async move {
                    // None: the runtime shuts down, and nobody is left to tell.
                    if let Some((batch, r)) = committer.commit(batch).await {
                        send_event(
                            &me,
                            id,
                            gen,
                            Event::Done(Box::new(Done::Committed(batch, r))),
                        );
                    }
                });
            }
            Work::Load if self.loads < LOADS_PER_HOST_MAX => self.start_load(&id, gen),
            Work::Load => self.loads_waiting.push_back((id, gen)),
            Work::ReadLease => blocking(me, id, gen, Done::Lease, move |id| {
                exec::read_lease(&store, &keys, id)
            }),
            Work::ReadTransfers(ids) => blocking(me, id, gen, Done::Transfers, move |_| {
                exec::read_transfers(&store, &keys, &ids)
            }),
            Work::ReadEntry(seq) => blocking(me, id, gen, Done::Entry, move |id| {
                exec::read_entry(&store, &keys, id, seq)
            }),
        }
    }

    /// Starts an account's load (`exec::activate` with a fresh nonce).
    fn start_load(&mut self, id: &AccountId, gen: u64) {
        self.loads += 1;
        let shell = &self.shell;
        let (store, keys) = (shell.store().clone(), shell.keys().clone());
        let node = shell.config().node_id.clone();
        let timing = shell.config().timing;
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).expect("the OS provides randomness");
        let nonce = u64::from_le_bytes(nonce);
        blocking(self.me.clone(), id.clone(), gen, Done::Loaded, move |id| {
            exec::activate(&store, &keys, &node, id, timing, nonce)
        });
    }
}

/// Answers a caller, registering its settlement waiter when it has one.
fn answer_caller(t: &mut Table, gen: u64, req: ReqId, answer: Answer, waiter: bool) {
    let Some(port) = t.replies.remove(&(gen, req)) else {
        return; // the caller gave up
    };
    let reply = match answer {
        Answer::Reply(Ok(reply)) => {
            let settle = waiter.then(|| {
                let (tx, rx) = oneshot::channel();
                t.waiters.insert((gen, req), tx);
                rx
            });
            Ok((reply, settle))
        }
        Answer::Reply(Err(e)) => Err(Refusal::Api(e)),
        Answer::Moved => Err(Refusal::Moved),
        Answer::Unknown(why) => Err(Refusal::Api(unavailable(why))),
        Answer::Overloaded => Err(Refusal::Api(overloaded(
            "the account has as many requests waiting as it may hold",
        ))),
    };
    let _ = port.send(reply);
}

fn send_event(me: &ActorRef<HostMsg>, account: AccountId, gen: u64, event: Event) {
    // A host that stopped (a bug made it panic) took its activations with it: nobody waits.
    let _ = me.send_message(HostMsg::Event {
        account,
        gen,
        event,
    });
}

/// Runs storage work on a blocking thread and sends its result to the host. A panic (a bug,
/// or a stored record that breaks an invariant) is reported as a failure, so the driver
/// decides what follows (a first load that fails stops the activation; a read is retried
/// after a backoff) and the account is never left waiting for a result.
fn blocking<T: 'static>(
    me: ActorRef<HostMsg>,
    id: AccountId,
    gen: u64,
    wrap: fn(Result<T, StorageError>) -> Done,
    f: impl FnOnce(&AccountId) -> Result<T, StorageError> + Send + 'static,
) {
    tokio::task::spawn_blocking(move || {
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(&id))).unwrap_or_else(|_| {
            tracing::error!(account = %id, "storage work panicked");
            Err(StorageError::Failed(
                "storage work panicked (a bug, or a stored record that breaks an invariant)".into(),
            ))
        });
        send_event(&me, id, gen, Event::Done(Box::new(wrap(r))));
    });
}
