//! The node runtime: the simulator's thin runtime over the node crate's account driver.
//!
//! What the ractor actor does with a mailbox, blocking threads, oneshot channels and delayed
//! self-messages, this runtime does with events, and nothing more: every decision (when to
//! commit, what a storage outcome means, when to reload, step aside, fire a timer, answer a
//! waiter or stop) is the driver's ([`node::ledger::driver`]), so the simulator checks the
//! code that runs in `walletd`.
//!
//! Work the driver asks for runs at once against the simulated store (that is its commit
//! point; a batch goes through the node's committer, `super::group`), and its result reaches the driver after the simulated latency: a crash in between
//! loses the result and every effect, as it loses a reply in flight. A command answered
//! `Moved` is routed again with the shell's backoff (`Shell::execute`). A caller may wait for a
//! transfer's settlement (`transfer_wait_ms`); the runtime holds its pending reply until the
//! settlement or the wait's end. Eviction under a small `active_max` and forced passivations
//! ask the driver, which stops only an idle activation; a stop that leaves a waiting caller
//! behind is a failure.

use super::contract::Contract;
use super::*;
use node::cluster::directory::EVICTION_ASKS_MAX;
use node::cluster::{MOVE_BACKOFF_INITIAL, MOVE_BACKOFF_MAX, MOVE_RETRY_FOR};
use node::ledger::driver::{Answer, Batch, Driver, Out, StopReason, Work};
use node::ledger::records::Lease;
use protocol::api::{Entry, TransferView};

/// Something that happens to one actor.
#[derive(Clone, Debug)]
pub(super) enum ActorEvent {
    /// The flush the driver asked for.
    Flush,
    /// The work in flight completed (its latency passed).
    WorkDone,
    /// The timer armed with this token fired.
    Timer(u64),
    /// The backoff with this token elapsed.
    Backoff(u64),
    /// A caller's wait for a settlement ended.
    WaitExpired(ReqId),
}

/// A command on an actor and where its answer goes.
#[derive(Clone, Debug)]
pub(super) struct Caller {
    pub to: ReplyTo,
    pub account: AccountId,
    pub cmd: Command,
    /// Times it was routed again after `Moved`.
    pub moves: u32,
    /// Simulated time it reached this actor (set by the runtime).
    pub since: u64,
}

/// The result of the work in flight (at most one per actor, so the sizes of its variants do
/// not matter).
#[allow(clippy::large_enum_variant)]
pub(super) enum WorkResult {
    Loaded(Result<Activation, StorageError>),
    Committed(Batch, Result<(Activation, Vec<Effect>), StorageError>),
    Lease(Result<Option<Lease>, StorageError>),
    Transfers(Result<Vec<TransferView>, StorageError>),
    Entry(Result<Option<Entry>, StorageError>),
}

/// One activation of an account on a node.
pub(super) struct SimActor {
    /// Incarnation: events of an earlier actor of the account are ignored.
    pub inc: u64,
    pub driver: Driver,
    pub callers: BTreeMap<ReqId, Caller>,
    /// Callers waiting for a settlement, with the pending reply they get at the wait's end.
    pub waiters: BTreeMap<ReqId, (ReplyTo, Reply)>,
    pub done: Option<WorkResult>,
    /// Simulated time of its last input (for the LRU eviction).
    pub last_use: u64,
    /// It learned that a newer activation holds the lease: it must never load again.
    pub fenced: bool,
    /// What the driver's contract check knows of it.
    pub contract: Contract,
    /// The timer the driver armed and has not cancelled: its token and time.
    pub timer: Option<(u64, u64)>,
}

impl Sim {
    pub(super) fn actor_mut(
        &mut self,
        node: usize,
        account: &AccountId,
        inc: u64,
    ) -> Option<&mut SimActor> {
        let n = &mut self.nodes[node];
        if !n.alive {
            return None;
        }
        n.actors.get_mut(account).filter(|a| a.inc == inc)
    }

    pub(super) fn wall(&self) -> u64 {
        EPOCH_MS + self.now
    }

    /// The account's actor on `node`, activated if needed (evicting to make room).
    fn ensure_actor(&mut self, node: usize, account: &AccountId) -> &mut SimActor {
        if !self.nodes[node].actors.contains_key(account) {
            self.evict_for(node);
            self.next_inc += 1;
            let actor = SimActor {
                inc: self.next_inc,
                driver: Driver::with_limits(account.clone(), self.opts.limits),
                callers: BTreeMap::new(),
                waiters: BTreeMap::new(),
                done: None,
                last_use: self.now,
                fenced: false,
                contract: Contract::default(),
                timer: None,
            };
            self.nodes[node].actors.insert(account.clone(), actor);
            self.drive(node, account);
        }
        let now = self.now;
        let a = self.nodes[node]
            .actors
            .get_mut(account)
            .expect("just ensured");
        a.last_use = now;
        a
    }

    /// Activates the account on `node` if it is not active (the sweep's resumption).
    pub(super) fn activate(&mut self, node: usize, account: &AccountId) {
        self.ensure_actor(node, account);
    }

    /// Hands a command to the account's actor on `node`.
    pub(super) fn actor_command(&mut self, node: usize, mut caller: Caller) {
        let account = caller.account.clone();
        caller.since = self.now;
        self.contract_answered_in_time(node, &account);
        let a = self.ensure_actor(node, &account);
        let req = a.driver.command(caller.cmd.clone());
        a.callers.insert(req, caller);
        self.drive(node, &account);
    }

    /// Hands a saga message to the account's actor on `node`.
    pub(super) fn actor_saga(&mut self, node: usize, msg: SagaMsg) {
        let account = msg.destination().clone();
        let a = self.ensure_actor(node, &account);
        a.driver.saga(msg);
        self.drive(node, &account);
    }

    /// The sweep found `transfer` unsettled with `sender` as its sender.
    pub(super) fn actor_resume(&mut self, node: usize, sender: &AccountId, transfer: &TransferId) {
        let Some(a) = self.nodes[node].actors.get_mut(sender) else {
            return;
        };
        a.driver.resume(transfer);
        self.drive(node, sender);
    }

    /// Asks an actor to passivate; true when it stopped.
    pub(super) fn actor_passivate(&mut self, node: usize, account: &AccountId) -> bool {
        let Some(a) = self.nodes[node].actors.get_mut(account) else {
            return false;
        };
        let stopped = a.driver.passivate();
        self.drive(node, account);
        if stopped && self.nodes[node].actors.contains_key(account) {
            let why = format!(
                "n{} {account}: passivation said yes but the actor runs on",
                node + 1
            );
            self.fail(FailureKind::Correctness, "driver stop", why);
        }
        stopped
    }

    /// Stops a quiet actor as the shell's drain does (its waiters learn "pending").
    pub(super) fn drain_actor(&mut self, node: usize, account: &AccountId) {
        let a = self.nodes[node].actors.remove(account).expect("present");
        assert!(a.callers.is_empty(), "a quiet actor answered every command");
        for (_, (to, reply)) in a.waiters {
            self.send_client(node, to.client, to.attempt, ClientResult::Reply(Ok(reply)));
        }
    }

    /// Asks the least recently used actors of `node` to passivate when it is at its cap.
    fn evict_for(&mut self, node: usize) {
        let cap = self.opts.active_max;
        if cap == 0 || self.nodes[node].actors.len() < cap {
            return;
        }
        let mut lru: Vec<(u64, AccountId)> = self.nodes[node]
            .actors
            .iter()
            .map(|(id, a)| (a.last_use, id.clone()))
            .collect();
        lru.sort();
        for (_, id) in lru.into_iter().take(EVICTION_ASKS_MAX) {
            if self.actor_passivate(node, &id) {
                self.stats.evictions += 1;
                trace!(self, "n{} evicts {id}", node + 1);
                if self.nodes[node].actors.len() < cap {
                    return;
                }
            }
        }
    }

    /// An event of one actor.
    pub(super) fn actor_event(
        &mut self,
        node: usize,
        account: &AccountId,
        inc: u64,
        ev: ActorEvent,
    ) {
        let wall = self.wall();
        let Some(a) = self.actor_mut(node, account, inc) else {
            return; // crashed or stopped meanwhile
        };
        // The contract check sees a result before the driver does (a failed load also after).
        let mut load_failed = None;
        if matches!(ev, ActorEvent::WorkDone) {
            let done = a.done.take();
            if let Some(d) = &done {
                load_failed = self.contract_result(node, account, d);
            }
            self.actor_mut(node, account, inc)
                .expect("still there")
                .done = done;
        }
        let a = self.actor_mut(node, account, inc).expect("still there");
        match ev {
            ActorEvent::Flush => a.driver.flush(),
            ActorEvent::Timer(token) => {
                if a.timer.is_some_and(|(t, _)| t == token) {
                    a.timer = None;
                }
                a.driver.timer_fired(token, wall)
            }
            ActorEvent::Backoff(token) => a.driver.backoff_elapsed(token),
            ActorEvent::WaitExpired(req) => {
                if a.waiters.contains_key(&req) && !a.driver.is_waiting(req) {
                    let why = format!(
                        "caller {req} still waits, but the driver forgot it without an answer"
                    );
                    self.contract_broken(node, account, why);
                    return;
                }
                let a = self.actor_mut(node, account, inc).expect("still there");
                if let Some((to, reply)) = a.waiters.remove(&req) {
                    self.send_client(node, to.client, to.attempt, ClientResult::Reply(Ok(reply)));
                }
                return;
            }
            ActorEvent::WorkDone => match a.done.take().expect("work was in flight") {
                WorkResult::Loaded(r) => a.driver.loaded(r, wall),
                WorkResult::Committed(b, r) => {
                    a.fenced |= r.as_ref().err() == Some(&StorageError::Fenced);
                    a.driver.committed(b, r, wall)
                }
                WorkResult::Lease(r) => {
                    let mine = a.driver.activation().map(|x| x.lease.clone());
                    a.fenced |= matches!((&r, mine), (Ok(stored), Some(m)) if *stored != m);
                    a.driver.lease_read(r)
                }
                WorkResult::Transfers(r) => a.driver.transfers_read(r),
                WorkResult::Entry(r) => a.driver.entry_read(r),
            },
        }
        self.drive(node, account);
        if let Some(was_loaded) = load_failed {
            self.contract_load_failed(node, account, inc, was_loaded);
        }
    }

    /// Carries out the driver's outputs until it asks for nothing more.
    fn drive(&mut self, node: usize, account: &AccountId) {
        loop {
            let Some(a) = self.nodes[node].actors.get_mut(account) else {
                return;
            };
            let inc = a.inc;
            let out = a.driver.take_out();
            if out.is_empty() {
                self.contract_consistent(node, account);
                return;
            }
            for o in out {
                self.carry_out(node, account, inc, o);
            }
        }
    }

    fn carry_out(&mut self, node: usize, account: &AccountId, inc: u64, out: Out) {
        let ev = |ev| Event::Actor {
            node,
            account: account.clone(),
            inc,
            ev,
        };
        match out {
            Out::Work(_) => self.run_work(node, account, inc),
            Out::Flush => self.at(0, ev(ActorEvent::Flush)),
            Out::Answer {
                req,
                answer,
                waiter,
            } => self.answer(node, account, inc, req, answer, waiter),
            Out::Settle { waiters, view } => {
                trace!(self, "settled {} {:?}", view.id, view.status);
                self.contract_released(node, account, &waiters);
                if view.status == protocol::api::TransferStatus::Pending {
                    let why = format!("settles the callers of {} with a pending view", view.id);
                    self.contract_broken(node, account, why);
                }
                match view.status {
                    protocol::api::TransferStatus::Completed => self.stats.completed += 1,
                    _ => self.stats.failed += 1,
                }
                for req in waiters {
                    let Some(a) = self.actor_mut(node, account, inc) else {
                        return;
                    };
                    if let Some((to, reply)) = a.waiters.remove(&req) {
                        let r = ClientResult::Reply(Ok(reply.settled(view.clone())));
                        self.send_client(node, to.client, to.attempt, r);
                    }
                }
            }
            Out::DropWaiters(reqs) => {
                self.contract_drop_waiters(node, account, &reqs);
                self.contract_released(node, account, &reqs);
                for req in reqs {
                    self.release_waiter(node, account, inc, req);
                }
            }
            Out::Send(msg) => {
                let owner = self.owner(node, msg.destination());
                self.send_node(Some(node), owner, NodeMsg::Saga { msg, hops: 0 });
            }
            Out::Reroute(msg) => {
                // Handed back by an activation that stepped aside: routed again from here.
                self.at(
                    0,
                    Event::ToNode {
                        node,
                        msg: NodeMsg::Saga { msg, hops: 0 },
                    },
                );
            }
            Out::Publish(update) => {
                self.contract_publish(node, account, update.entry.seq);
                self.publish(node, update)
            }
            Out::SetTimer { token, at_ms } => {
                if let Some(a) = self.actor_mut(node, account, inc) {
                    a.timer = Some((token, at_ms));
                }
                let after = at_ms.saturating_sub(self.wall());
                self.at(after, ev(ActorEvent::Timer(token)));
            }
            Out::CancelTimer => {
                // Its firing carries a token the driver no longer knows.
                if let Some(a) = self.actor_mut(node, account, inc) {
                    a.timer = None;
                }
            }
            Out::Backoff { token, after_ms } => {
                self.contract_backoff(node, account, after_ms);
                self.at(after_ms, ev(ActorEvent::Backoff(token)))
            }
            Out::Stop(reason) => {
                self.contract_stop(node, account, reason);
                self.stopped(node, account, inc, reason)
            }
        }
    }

    fn release_waiter(&mut self, node: usize, account: &AccountId, inc: u64, req: ReqId) {
        let Some(a) = self.actor_mut(node, account, inc) else {
            return;
        };
        if let Some((to, reply)) = a.waiters.remove(&req) {
            self.send_client(node, to.client, to.attempt, ClientResult::Reply(Ok(reply)));
        }
    }

    fn stopped(&mut self, node: usize, account: &AccountId, inc: u64, reason: StopReason) {
        let Some(a) = self.actor_mut(node, account, inc) else {
            return;
        };
        let waiting = a.waiters.len();
        let unanswered = a.callers.len();
        trace!(self, "n{} {account} stops: {reason:?}", node + 1);
        if unanswered > 0 {
            let why =
                format!("{account} stopped ({reason:?}) with {unanswered} command(s) unanswered");
            self.fail(FailureKind::Correctness, "driver stop", why);
        }
        match reason {
            StopReason::Idle if waiting > 0 => {
                let why = format!(
                    "{account} passivated while {waiting} caller(s) waited for a settlement: they get a premature \"pending\""
                );
                self.fail(
                    FailureKind::Correctness,
                    "passivation strands no caller",
                    why,
                );
            }
            StopReason::SteppedAside => self.stats.fenced += 1,
            StopReason::Idle | StopReason::LoadFailed => {}
        }
        // Callers still waiting report the transfer pending (true from where they stand).
        let a = self.nodes[node].actors.remove(account).expect("present");
        for (_, (to, reply)) in a.waiters {
            self.send_client(node, to.client, to.attempt, ClientResult::Reply(Ok(reply)));
        }
    }

    fn answer(
        &mut self,
        node: usize,
        account: &AccountId,
        inc: u64,
        req: ReqId,
        answer: Answer,
        waiter: bool,
    ) {
        let wait = self.opts.transfer_wait_ms;
        if matches!(answer, Answer::Unknown(_)) && self.actor_mut(node, account, inc).is_some() {
            self.contract_unknown(node, account, req);
        }
        let Some(a) = self.actor_mut(node, account, inc) else {
            return;
        };
        let Some(caller) = a.callers.remove(&req) else {
            return;
        };
        let to = caller.to;
        self.contract_waiter(node, account, &answer, waiter);
        let Some(a) = self.actor_mut(node, account, inc) else {
            return;
        };
        match answer {
            Answer::Reply(Ok(reply)) if waiter && wait > 0 => {
                a.waiters.insert(req, (to, reply));
                let ev = Event::Actor {
                    node,
                    account: account.clone(),
                    inc,
                    ev: ActorEvent::WaitExpired(req),
                };
                self.at(wait, ev);
            }
            Answer::Reply(result) => {
                self.send_client(node, to.client, to.attempt, ClientResult::Reply(result))
            }
            Answer::Unknown(why) => {
                let r = ClientResult::Reply(Err(unavailable(why)));
                self.send_client(node, to.client, to.attempt, r);
            }
            Answer::Overloaded => {
                let e = ApiError::new(ErrorCode::Overloaded, "the account's queue is full");
                self.send_client(node, to.client, to.attempt, ClientResult::Reply(Err(e)));
            }
            Answer::Moved => {
                // `Shell::execute`: nothing ran, retry on the current ring with backoff.
                self.stats.moved += 1;
                let spent: u64 = (0..caller.moves).map(move_backoff_ms).sum();
                let backoff = move_backoff_ms(caller.moves);
                if spent + backoff > MOVE_RETRY_FOR.as_millis() as u64 {
                    let r = ClientResult::Reply(Err(unavailable(
                        "the account kept moving between nodes",
                    )));
                    self.send_client(node, to.client, to.attempt, r);
                    return;
                }
                let msg = NodeMsg::Command {
                    client: to.client,
                    attempt: to.attempt,
                    account: caller.account,
                    cmd: caller.cmd,
                    hops: 0,
                    moves: caller.moves + 1,
                };
                self.at(backoff, Event::ToNode { node, msg });
            }
        }
    }

    /// Runs the announced work against the store now and releases its result after the
    /// simulated latency; a batch goes to the node's committer, which does the same for its
    /// group.
    fn run_work(&mut self, node: usize, account: &AccountId, inc: u64) {
        let node_id = self.nodes[node].id.clone();
        self.contract_work_starts(node, account);
        let a = self.actor_mut(node, account, inc).expect("present");
        let work = a.driver.take_work();
        if matches!(work, Work::Load) && a.fenced {
            // Taking the lease back would fence the activation that rightfully holds it
            // (and under load the lease would ping-pong between two nodes).
            let why = format!("n{} {account}: a fenced activation loads again", node + 1);
            self.fail(
                FailureKind::Correctness,
                "fenced activations step aside",
                why,
            );
        }
        let (result, lat) = match work {
            Work::Load => {
                let nonce = self.rng_ids.next_u64();
                let timing = self.timing;
                let writer = Writer {
                    node: node_id.clone(),
                    account: account.as_str().to_owned(),
                    nonce,
                    epoch: 0,
                    activating: true,
                };
                let (r, lat) = self.storage(vec![writer], |s, k| {
                    exec::activate(s, k, &node_id, account, timing, nonce)
                });
                trace!(
                    self,
                    "n{} activate {account}: {}",
                    node + 1,
                    match &r {
                        Ok(a) => format!("epoch {}, {} open", a.epoch(), a.core.open_sagas().len()),
                        Err(e) => format!("error: {e}"),
                    }
                );
                if r.is_ok() {
                    self.stats.activations += 1;
                }
                // The store holds only what the ledger wrote: an activation that cannot read
                // it, or finds it contradicting itself, is a bug of the ledger.
                if let Err(StorageError::Corrupt(why)) = &r {
                    let msg = format!(
                        "n{} {account}: activation found a corrupt record: {why}",
                        node + 1
                    );
                    self.fail(FailureKind::Correctness, "stored records", msg);
                }
                (WorkResult::Loaded(r), lat)
            }
            Work::Commit(batch) => {
                self.contract_commit(node, account, &batch.inputs);
                // Its result comes back through the node's committer.
                self.submit_batch(node, account, inc, batch);
                return;
            }
            Work::ReadLease => {
                self.stats.lease_reads += 1;
                let (r, lat) = self.storage(Vec::new(), |s, k| exec::read_lease(s, k, account));
                (WorkResult::Lease(r), lat)
            }
            Work::ReadTransfers(ids) => {
                self.stats.settled_reads += 1;
                if ids.is_empty() {
                    self.contract_broken(
                        node,
                        account,
                        "reads the summaries of no transfer".into(),
                    );
                }
                let (r, lat) = self.storage(Vec::new(), |s, k| exec::read_transfers(s, k, &ids));
                (WorkResult::Transfers(r), lat)
            }
            Work::ReadEntry(seq) => {
                self.contract_head_read(node, account, seq);
                let (r, lat) =
                    self.storage(Vec::new(), |s, k| exec::read_entry(s, k, account, seq));
                (WorkResult::Entry(r), lat)
            }
        };
        let a = self.actor_mut(node, account, inc).expect("still there");
        a.done = Some(result);
        let ev = Event::Actor {
            node,
            account: account.clone(),
            inc,
            ev: ActorEvent::WorkDone,
        };
        self.at(lat, ev);
    }

    /// Every batch that committed must have run on the activation that holds the lease, timers
    /// included (each batch checks its lease in its group's transaction): a stale activation
    /// answers from memory a newer activation may have overtaken, drops a message meant for a
    /// saga it does not know, or goes on resending its sagas' messages beside the owner.
    pub(super) fn check_lease_held(
        &mut self,
        node: usize,
        account: &AccountId,
        r: &Result<(Activation, Vec<Effect>), StorageError>,
    ) {
        let Ok((next, _)) = r else {
            return;
        };
        let stored = self
            .ledger
            .accounts
            .get(account.as_str())
            .and_then(|a| a.lease.clone());
        if stored != next.lease {
            let why = format!(
                "n{} {account}: a batch ran on an activation without the lease (epoch {}, stored {:?})",
                node + 1,
                next.epoch(),
                stored.map(|l| l.epoch)
            );
            self.fail(
                FailureKind::Correctness,
                "single writer (DESIGN.md 6.5)",
                why,
            );
        }
    }

    /// Two commands that set the status (opening sets it too) in one committed batch: replies
    /// from inside it may show a status no stored state has (even none at all, when the batch
    /// ends where it began and writes nothing). Marked at 2 * commits + 1: after every request
    /// sent before this batch ran.
    pub(super) fn mark_mixed_status(&mut self, account: &AccountId, inputs: &[Input], ok: bool) {
        let status_cmds = inputs
            .iter()
            .filter(|i| {
                matches!(
                    i,
                    Input::Command(
                        _,
                        Command::Open { .. } | Command::Freeze | Command::Unfreeze
                    )
                )
            })
            .count();
        if ok && status_cmds >= 2 {
            let mark = 2 * self.ledger.commits + 1;
            self.ledger
                .mixed_status
                .entry(account.as_str().to_owned())
                .or_default()
                .insert(mark);
        }
    }
}

/// The shell's wait before the `n`th retry of a command that met `Moved`.
fn move_backoff_ms(n: u32) -> u64 {
    (MOVE_BACKOFF_INITIAL.as_millis() as u64)
        .saturating_mul(1 << n.min(16))
        .min(MOVE_BACKOFF_MAX.as_millis() as u64)
}
