//! The simulated cluster and its event loop.
//!
//! One thread, one seeded scheduler: events wait in a queue ordered by simulated time and
//! then by insertion, so the run is a pure function of the seed. What the real node does with
//! ractor and tokio, the simulator does with events:
//! - an account actor is a [`SimActor`]: a FIFO mailbox, an [`Activation`] of the core, at most
//!   one storage operation in flight. Draining the mailbox into one `commit_batch` mirrors the
//!   shell's self-`Flush`; a failed commit drops the activation and reloads it with backoff; a
//!   fenced one steps aside. The storage operation runs at once (its commit point) and its
//!   effects (replies, saga messages, timers) are released after the simulated latency, so a
//!   crash in between loses them exactly as it would lose a reply in flight;
//! - placement is the node crate's own [`Ring`], one view per node, updated after a lag when
//!   membership changes, so two nodes can believe they own one account and race;
//! - the network delays, reorders, loses and duplicates messages and honours partitions;
//! - storage is [`SimBackend`], shared by every node and never lost on a crash.

use crate::check::{Checks, FailureKind, ReplyCtx};
use crate::ledger::Ledger;
use crate::options::Options;
use crate::rng::Rng;
use crate::store::{SimBackend, StorageFaults, Writer};
use crate::trace::Trace;
use crate::workload::{ClientResult, Drawn, Generator, OpKind, OpSpec, Universe};
use crate::workload::{RETRIES_MAX, RETRY_BACKOFF_MS};
use node::cluster::placement::{Member, Ring};
use node::cluster::BATCH_INPUTS_MAX;
use node::ledger::account::{Command, Effect, Input, ReqId, SagaTiming, CREDIT_RESENDS_MAX};
use node::ledger::exec::{self, Activation};
use node::storage::keys::Keys;
use node::storage::{RetryPolicy, StorageError, Store};
use protocol::saga::SagaMsg;
use protocol::{AccountId, Amount, ApiError, ErrorCode, TransferId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Simulated wall clock at time zero (the core stamps entries with it), ms since the epoch.
pub const EPOCH_MS: u64 = 1_767_225_600_000;
/// Most times a node forwards a message to the owner it believes in.
pub const HOPS_MAX: u8 = 3;
/// First wait before reloading an account after a failed commit.
pub const RELOAD_BACKOFF_MS: u64 = 50;
/// Longest wait between reloads.
pub const RELOAD_BACKOFF_MAX_MS: u64 = 5_000;
/// Longest extra delay of a reordered message.
pub const REORDER_MAX_MS: u64 = 1_000;
/// Most senders one sweep activates.
pub const SWEEP_ACTIVATIONS_MAX: usize = 1_000;
/// Pending-index rows read per page.
pub const SWEEP_PAGE: usize = 1_000;
/// Most pending-index rows one sweep reads.
pub const SWEEP_ROWS_MAX: usize = 100_000;
/// Most events one run may handle before it is declared stuck (a liveness failure).
pub const EVENTS_MAX: u64 = 20_000_000;
/// Longest simulated safety phase before it is declared stuck.
pub const SAFETY_TIME_MAX_MS: u64 = 6 * 3_600_000;

/// A message to a node.
#[derive(Clone, Debug)]
enum NodeMsg {
    /// A client's request at its gateway.
    Request {
        client: usize,
        attempt: u64,
        op: usize,
    },
    /// A command on its way to the account's owner.
    Command {
        client: usize,
        attempt: u64,
        account: AccountId,
        cmd: Command,
        hops: u8,
    },
    /// A saga message on its way to the account's owner.
    Saga { msg: SagaMsg, hops: u8 },
}

#[derive(Clone, Debug)]
enum Event {
    ClientWake(usize),
    ClientTimeout(usize, u64),
    ToNode {
        node: usize,
        msg: NodeMsg,
    },
    ToClient {
        client: usize,
        attempt: u64,
        result: ClientResult,
    },
    ActorRun {
        node: usize,
        account: AccountId,
        inc: u64,
    },
    StorageDone {
        node: usize,
        account: AccountId,
        inc: u64,
    },
    Timer {
        node: usize,
        account: AccountId,
        inc: u64,
        gen: u64,
        tid: TransferId,
    },
    Reload {
        node: usize,
        account: AccountId,
        inc: u64,
    },
    Sweep {
        node: usize,
        life: u64,
    },
    Restart(usize),
    RingUpdate {
        node: usize,
        version: usize,
    },
    Heal(usize, usize),
    FaultCrash,
    FaultPartition,
    FaultPassivate,
    FaultChurn,
    FaultOutage,
}

/// Where a command's reply goes.
#[derive(Clone, Copy, Debug)]
struct ReplyTo {
    client: usize,
    attempt: u64,
}

/// One activation of an account on a node.
struct SimActor {
    inc: u64,
    act: Option<Activation>,
    /// Whether it was ever activated (a first activation that fails removes the actor).
    loaded: bool,
    busy: bool,
    run_scheduled: bool,
    reload_scheduled: bool,
    reload_backoff: u64,
    mailbox: VecDeque<Input>,
    replies: BTreeMap<ReqId, ReplyTo>,
    next_req: ReqId,
    timer_gen: u64,
    /// Effects released when the storage operation in flight completes.
    done: Vec<Effect>,
}

struct SimNode {
    id: String,
    alive: bool,
    /// Bumped by every crash: events of an earlier life are ignored.
    life: u64,
    ring: Ring,
    ring_version: usize,
    actors: BTreeMap<AccountId, SimActor>,
}

enum ClientState {
    /// Will draw a new operation when it wakes.
    Idle,
    /// Will send `op` again when it wakes.
    Retrying { op: usize, tries: u32 },
    /// Waiting for the reply to `attempt`.
    Waiting { op: usize, attempt: u64, tries: u32 },
    /// Spent its share of the workload.
    Done,
}

struct Client {
    state: ClientState,
    keyed: Vec<usize>,
}

/// Counters of a run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Client operations issued (repeats included).
    pub ops: u64,
    /// Requests sent (retries included).
    pub requests: u64,
    /// Replies that acknowledged a success.
    pub acked: u64,
    /// Replies that refused with a business error.
    pub refused: u64,
    /// Operations whose outcome stayed unknown to the client.
    pub unknown: u64,
    /// Messages sent between nodes and to and from clients.
    pub messages: u64,
    /// Messages lost (loss, partition, dead node).
    pub lost: u64,
    /// Messages duplicated.
    pub duplicated: u64,
    /// Activations.
    pub activations: u64,
    /// Commits observed.
    pub commits: u64,
    /// Batches fenced.
    pub fenced: u64,
    /// Batches that failed on storage.
    pub failed_batches: u64,
    /// Crashes.
    pub crashes: u64,
    /// Partitions.
    pub partitions: u64,
    /// Forced passivations.
    pub passivations: u64,
    /// Membership changes.
    pub churns: u64,
    /// Storage outages.
    pub outages: u64,
    /// Storage attempts.
    pub attempts: u64,
    /// Storage faults injected.
    pub storage_faults: u64,
    /// Conflicts the store detected (stale reads overtaken by a later commit).
    pub storage_conflicts: u64,
    /// Transfers completed.
    pub completed: u64,
    /// Transfers failed.
    pub failed: u64,
    /// Events handled.
    pub events: u64,
    /// Simulated time at the end of the safety phase.
    pub safety_ms: u64,
    /// Simulated time the liveness phase took.
    pub liveness_ms: u64,
}

/// A failure found by a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Its class (decides the exit code).
    pub kind: FailureKind,
    /// The check or phase that found it.
    pub check: String,
    /// What was wrong.
    pub message: String,
    /// Simulated time.
    pub at_ms: u64,
}

/// The simulation of one seed.
pub struct Sim {
    opts: Options,
    now: u64,
    events: BTreeMap<(u64, u64), Event>,
    next_event: u64,
    rng_net: Rng,
    rng_fault: Rng,
    rng_ids: Rng,
    gen: Generator,
    backend: Arc<SimBackend>,
    store: Store,
    keys: Keys,
    timing: SagaTiming,
    nodes: Vec<SimNode>,
    memberships: Vec<BTreeSet<usize>>,
    blocked: BTreeMap<(usize, usize), u32>,
    clients: Vec<Client>,
    ops: Vec<OpSpec>,
    /// Every attempt sent: its operation and the commit count when it was sent.
    attempts: BTreeMap<u64, (usize, u64)>,
    next_attempt: u64,
    next_inc: u64,
    next_tid: u64,
    healed: bool,
    /// The observed store and the checkers.
    pub ledger: Ledger,
    checks: Checks,
    /// The event log.
    pub trace: Trace,
    /// Counters.
    pub stats: Stats,
    /// The first failure found.
    pub failure: Option<Failure>,
}

macro_rules! trace {
    ($sim:expr, $($arg:tt)*) => {
        $sim.trace.event($sim.now, format_args!($($arg)*))
    };
}

fn ring_of(members: &BTreeSet<usize>, nodes: &[String], vnodes: u32) -> Ring {
    Ring::new(
        members
            .iter()
            .map(|&i| Member {
                node_id: nodes[i].clone(),
                http: String::new(),
            })
            .collect(),
        vnodes,
    )
}

fn unavailable(why: &str) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, why.to_string())
}

impl Sim {
    /// A cluster for `seed` with `opts`, its stores empty and its clients about to start.
    pub fn new(seed: u64, opts: Options, keep_trace: bool) -> Self {
        let keys = Keys::default();
        let backend = SimBackend::new(Rng::stream(seed, 1), keys.clone());
        backend.set_faults(StorageFaults {
            conflict_ppm: opts.conflict_ppm,
            unknown_committed_ppm: opts.unknown_committed_ppm,
            unknown_lost_ppm: opts.unknown_lost_ppm,
            slow_ppm: opts.slow_ppm,
            slow_max_ms: opts.slow_max_ms,
            stale_read_ppm: opts.stale_read_ppm,
        });
        let store = Store::with_policy(
            backend.clone(),
            RetryPolicy {
                backoff_initial: Duration::ZERO,
                backoff_max: Duration::ZERO,
                ..RetryPolicy::default()
            },
        );
        let names: Vec<String> = (0..opts.nodes).map(|i| format!("n{}", i + 1)).collect();
        let all: BTreeSet<usize> = (0..opts.nodes).collect();
        let nodes = names
            .iter()
            .map(|id| SimNode {
                id: id.clone(),
                alive: true,
                life: 0,
                ring: ring_of(&all, &names, opts.vnodes),
                ring_version: 0,
                actors: BTreeMap::new(),
            })
            .collect();
        let universe = Universe::new(opts.accounts, opts.currencies);
        let mut sim = Sim {
            now: 0,
            events: BTreeMap::new(),
            next_event: 0,
            rng_net: Rng::stream(seed, 2),
            rng_fault: Rng::stream(seed, 3),
            rng_ids: Rng::stream(seed, 4),
            gen: Generator::new(Rng::stream(seed, 5), universe),
            backend,
            store,
            keys,
            timing: SagaTiming {
                credit_timeout_ms: opts.credit_timeout_ms,
                abort_backoff_max_ms: opts.abort_backoff_max_ms,
            },
            nodes,
            memberships: vec![all],
            blocked: BTreeMap::new(),
            clients: (0..opts.clients)
                .map(|_| Client {
                    state: ClientState::Idle,
                    keyed: Vec::new(),
                })
                .collect(),
            ops: Vec::new(),
            attempts: BTreeMap::new(),
            next_attempt: 0,
            next_inc: 0,
            next_tid: 0,
            healed: false,
            ledger: Ledger::default(),
            checks: Checks::all(),
            trace: Trace::new(keep_trace),
            stats: Stats::default(),
            failure: None,
            opts,
        };
        for c in 0..sim.clients.len() {
            sim.at(c as u64, Event::ClientWake(c));
        }
        for n in 0..sim.nodes.len() {
            let first = sim.rng_fault.range(1, sim.opts.sweep_every_ms);
            sim.at(first, Event::Sweep { node: n, life: 0 });
        }
        let o = sim.opts.clone();
        for (every, ev) in [
            (o.crash_every_ms, Event::FaultCrash),
            (o.partition_every_ms, Event::FaultPartition),
            (o.passivate_every_ms, Event::FaultPassivate),
            (o.churn_every_ms, Event::FaultChurn),
            (o.outage_every_ms, Event::FaultOutage),
        ] {
            if every > 0 {
                let t = sim.rng_fault.around(every);
                sim.at(t, ev);
            }
        }
        sim
    }

    /// The options of the run.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Simulated time now.
    pub fn now(&self) -> u64 {
        self.now
    }

    fn at(&mut self, delay_ms: u64, ev: Event) {
        self.next_event += 1;
        self.events
            .insert((self.now + delay_ms, self.next_event), ev);
    }

    fn fail(&mut self, kind: FailureKind, check: &str, message: String) {
        if self.failure.is_none() {
            trace!(self, "FAILURE {check}: {message}");
            self.failure = Some(Failure {
                kind,
                check: check.to_string(),
                message,
                at_ms: self.now,
            });
        }
    }

    // ---- phases --------------------------------------------------------------------------

    /// Runs both phases and the final checks; the outcome is in `failure`.
    pub fn run(&mut self) {
        self.run_phases();
        let (attempts, faults) = self.backend.counts();
        self.stats.attempts = attempts;
        self.stats.storage_faults = faults;
        self.stats.storage_conflicts = self.backend.conflicts_detected();
    }

    fn run_phases(&mut self) {
        // Safety: the workload with faults, until every client spent its operations.
        while self.failure.is_none() && !self.clients_done() {
            if !self.step() || self.now > SAFETY_TIME_MAX_MS {
                let why = format!("safety phase stuck at {} ms", self.now);
                self.fail(FailureKind::Liveness, "safety phase", why);
                return;
            }
        }
        if self.failure.is_some() {
            return;
        }
        self.stats.safety_ms = self.now;
        self.phase_end(false);
        if self.failure.is_some() {
            return;
        }
        // Liveness: every fault healed; every pending transfer must settle in bounded time.
        self.heal();
        let start = self.now;
        let bound = 60_000
            + u64::from(CREDIT_RESENDS_MAX) * self.opts.credit_timeout_ms
            + 3 * self.opts.abort_backoff_max_ms
            + 3 * self.opts.sweep_every_ms;
        loop {
            self.settle_pending(start, bound);
            if self.failure.is_some() {
                return;
            }
            // Let replies, effects and abandoned requests in flight land (nothing new starts);
            // one of them may still start a transfer, which must settle too.
            let settle_until = self.now + 10_000;
            while self.failure.is_none()
                && self
                    .events
                    .keys()
                    .next()
                    .is_some_and(|(t, _)| *t <= settle_until)
            {
                self.step();
            }
            if self.failure.is_some() || self.ledger.pending.is_empty() {
                break;
            }
        }
        self.stats.liveness_ms = self.now - start;
        if self.failure.is_none() {
            self.phase_end(true);
        }
    }

    /// Runs until the pending index is empty, or fails the run once `bound` has passed.
    fn settle_pending(&mut self, start: u64, bound: u64) {
        while self.failure.is_none() && !self.ledger.pending.is_empty() {
            if self.now > start + bound || !self.step() {
                let why = format!(
                    "{} transfer(s) still pending {} ms after every fault healed (bound {bound} ms): {}",
                    self.ledger.pending.len(),
                    self.now - start,
                    self.describe_pending()
                );
                self.fail(
                    FailureKind::Liveness,
                    "atomic transfers (DESIGN.md 6.3)",
                    why,
                );
                return;
            }
        }
    }

    /// The first few pending transfers, their senders and every activation of those senders.
    fn describe_pending(&self) -> String {
        let mut out = Vec::new();
        for (tid, sender) in self.ledger.pending.iter().take(3) {
            let mut acts = Vec::new();
            for n in &self.nodes {
                let owner = &n.ring.owner(sender).node_id;
                let actor = AccountId::new(sender.clone())
                    .ok()
                    .and_then(|id| n.actors.get(&id))
                    .map(|a| {
                        format!(
                            "active epoch {} busy {} queued {} reload {} run {}",
                            a.act.as_ref().map_or(-1, |x| x.epoch() as i64),
                            a.busy,
                            a.mailbox.len(),
                            a.reload_scheduled,
                            a.run_scheduled
                        )
                    })
                    .unwrap_or_else(|| "no actor".into());
                acts.push(format!(
                    "{} (alive {}, thinks owner {owner}): {actor}",
                    n.id, n.alive
                ));
            }
            out.push(format!("{tid} from {sender} [{}]", acts.join("; ")));
        }
        out.join(" | ")
    }

    fn clients_done(&self) -> bool {
        self.clients
            .iter()
            .all(|c| matches!(c.state, ClientState::Done))
    }

    fn phase_end(&mut self, quiescent: bool) {
        let snapshot = self.backend.snapshot();
        if snapshot != self.ledger.mirror {
            let diff = snapshot
                .iter()
                .find(|(k, v)| self.ledger.mirror.get(*k) != Some(*v))
                .map(|(k, _)| crate::ledger::decode_row(k, None));
            self.fail(
                FailureKind::Correctness,
                "observer",
                format!("the store holds writes no observed commit made, e.g. {diff:?}"),
            );
            return;
        }
        let fresh = match Ledger::from_snapshot(&snapshot) {
            Ok(l) => l,
            Err(e) => return self.fail(FailureKind::Correctness, "decode", e),
        };
        trace!(
            self,
            "phase end ({}): {} keys, {} pending",
            if quiescent { "liveness" } else { "safety" },
            snapshot.len(),
            fresh.pending.len()
        );
        if let Err((check, msg)) = self.checks.phase_end(&fresh, &self.ops, quiescent) {
            self.fail(FailureKind::Correctness, check, msg);
        }
    }

    fn heal(&mut self) {
        self.healed = true;
        trace!(
            self,
            "heal: faults off, partitions healed, nodes restarted, all members"
        );
        self.backend.set_faults(StorageFaults::default());
        self.backend.end_outage();
        self.blocked.clear();
        self.opts.loss_ppm = 0;
        self.opts.dup_ppm = 0;
        self.opts.reorder_ppm = 0;
        for n in 0..self.nodes.len() {
            if !self.nodes[n].alive {
                self.restart(n);
            }
        }
        let all: BTreeSet<usize> = (0..self.nodes.len()).collect();
        if self.memberships.last() != Some(&all) {
            self.change_membership(all, 0);
        }
    }

    /// Handles the next event; false when none is left.
    fn step(&mut self) -> bool {
        let Some(((t, _), ev)) = self.events.pop_first() else {
            return false;
        };
        self.stats.events += 1;
        if self.stats.events > EVENTS_MAX {
            let why = format!("more than {EVENTS_MAX} events");
            self.fail(FailureKind::Liveness, "event budget", why);
            return false;
        }
        self.now = t;
        self.backend.set_now(t);
        self.handle(ev);
        true
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::ClientWake(c) => self.client_wake(c),
            Event::ClientTimeout(c, attempt) => {
                if matches!(self.clients[c].state, ClientState::Waiting { attempt: a, .. } if a == attempt)
                {
                    trace!(self, "c{c} timeout a{attempt}");
                    self.client_unknown(c);
                }
            }
            Event::ToNode { node, msg } => self.node_receive(node, msg),
            Event::ToClient {
                client,
                attempt,
                result,
            } => self.client_receive(client, attempt, result),
            Event::ActorRun { node, account, inc } => self.actor_run(node, &account, inc),
            Event::StorageDone { node, account, inc } => self.storage_done(node, &account, inc),
            Event::Timer {
                node,
                account,
                inc,
                gen,
                tid,
            } => {
                if let Some(a) = self.actor_mut(node, &account, inc) {
                    if a.timer_gen == gen {
                        a.mailbox.push_back(Input::Timer(tid));
                        self.schedule_run(node, &account);
                    }
                }
            }
            Event::Reload { node, account, inc } => {
                if let Some(a) = self.actor_mut(node, &account, inc) {
                    a.reload_scheduled = false;
                    if a.act.is_none() && !a.busy {
                        self.actor_run(node, &account, inc);
                    }
                }
            }
            Event::Sweep { node, life } => {
                if self.nodes[node].alive && self.nodes[node].life == life {
                    self.sweep(node);
                    let every = self.opts.sweep_every_ms;
                    self.at(every, Event::Sweep { node, life });
                }
            }
            Event::Restart(n) => {
                if !self.nodes[n].alive {
                    self.restart(n);
                }
            }
            Event::RingUpdate { node, version } => {
                if version > self.nodes[node].ring_version {
                    let names: Vec<String> = self.nodes.iter().map(|n| n.id.clone()).collect();
                    let ring = ring_of(&self.memberships[version], &names, self.opts.vnodes);
                    let n = &mut self.nodes[node];
                    n.ring = ring;
                    n.ring_version = version;
                    trace!(self, "{} ring v{version}", self.nodes[node].id);
                }
            }
            Event::Heal(a, b) => {
                if let Some(c) = self.blocked.get_mut(&(a, b)) {
                    *c -= 1;
                    if *c == 0 {
                        self.blocked.remove(&(a, b));
                        trace!(self, "link n{}->n{} healed", a + 1, b + 1);
                    }
                }
            }
            Event::FaultCrash => self.fault_crash(),
            Event::FaultPartition => self.fault_partition(),
            Event::FaultPassivate => self.fault_passivate(),
            Event::FaultChurn => self.fault_churn(),
            Event::FaultOutage => self.fault_outage(),
        }
    }

    // ---- storage and observation ---------------------------------------------------------

    /// Feeds the commits the store made since the last call to the ledger and the checkers.
    fn observe(&mut self) {
        for raw in self.backend.take_commits() {
            let commit = match self.ledger.decode(&raw, self.now) {
                Ok(c) => c,
                Err(e) => return self.fail(FailureKind::Correctness, "decode", e),
            };
            self.stats.commits += 1;
            if let Err((check, msg)) = self.checks.on_commit(&self.ledger, &commit, &self.ops) {
                self.fail(FailureKind::Correctness, check, msg);
            }
            self.ledger.apply(&commit, &raw.writes);
        }
    }

    /// Runs a storage operation on behalf of `writer` and returns its result and latency.
    fn storage<T>(
        &mut self,
        writer: Option<Writer>,
        f: impl FnOnce(&Store, &Keys) -> T,
    ) -> (T, u64) {
        self.backend.set_writer(writer);
        let out = f(&self.store, &self.keys);
        self.backend.set_writer(None);
        self.observe();
        (out, self.backend.take_latency())
    }

    // ---- network ---------------------------------------------------------------------------

    /// A one-way delay, or `None` when the message is lost.
    fn link_delay(&mut self, from: Option<usize>, to: Option<usize>) -> Option<u64> {
        self.stats.messages += 1;
        if let (Some(a), Some(b)) = (from, to) {
            if a == b {
                // In-process: never lost, but the shell sends each saga message from its own
                // task, so one may overtake another.
                if self.rng_net.chance(self.opts.reorder_ppm) {
                    return Some(self.rng_net.range(1, REORDER_MAX_MS));
                }
                return Some(0);
            }
            if self.blocked.contains_key(&(a, b)) {
                self.stats.lost += 1;
                return None;
            }
        }
        if self.rng_net.chance(self.opts.loss_ppm) {
            self.stats.lost += 1;
            return None;
        }
        let mut d = self.rng_net.range(1, self.opts.net_delay_max_ms);
        if self.rng_net.chance(self.opts.reorder_ppm) {
            d += self.rng_net.range(1, REORDER_MAX_MS);
        }
        Some(d)
    }

    fn send_node(&mut self, from: Option<usize>, to: usize, msg: NodeMsg) {
        let Some(d) = self.link_delay(from, Some(to)) else {
            trace!(self, "lost -> n{}: {}", to + 1, describe(&msg));
            return;
        };
        // Only saga messages are duplicated: they are the at-least-once channel the saga is
        // built for. A request is one HTTP exchange and a forwarded command one RPC; neither is
        // ever re-sent by the transport (a client's retry is a new attempt with its key).
        let dup = matches!(msg, NodeMsg::Saga { .. });
        if dup && self.rng_net.chance(self.opts.dup_ppm) {
            self.stats.duplicated += 1;
            let d2 = self
                .rng_net
                .range(1, self.opts.net_delay_max_ms + REORDER_MAX_MS);
            self.at(
                d2,
                Event::ToNode {
                    node: to,
                    msg: msg.clone(),
                },
            );
        }
        self.at(d, Event::ToNode { node: to, msg });
    }

    fn send_client(&mut self, from: usize, client: usize, attempt: u64, result: ClientResult) {
        let Some(d) = self.link_delay(Some(from), None) else {
            trace!(self, "lost reply -> c{client} a{attempt}");
            return;
        };
        self.at(
            d,
            Event::ToClient {
                client,
                attempt,
                result,
            },
        );
    }

    // ---- nodes -----------------------------------------------------------------------------

    fn owner(&self, node: usize, account: &AccountId) -> usize {
        let id = &self.nodes[node].ring.owner(account.as_str()).node_id;
        self.nodes
            .iter()
            .position(|n| &n.id == id)
            .expect("ring members are nodes")
    }

    fn node_receive(&mut self, node: usize, msg: NodeMsg) {
        if !self.nodes[node].alive {
            self.stats.lost += 1;
            trace!(self, "n{} down, dropped {}", node + 1, describe(&msg));
            return;
        }
        trace!(self, "n{} recv {}", node + 1, describe(&msg));
        match msg {
            NodeMsg::Request {
                client,
                attempt,
                op,
            } => self.gateway(node, client, attempt, op),
            NodeMsg::Command {
                client,
                attempt,
                account,
                cmd,
                hops,
            } => {
                let owner = self.owner(node, &account);
                if owner == node {
                    let a = self.ensure_actor(node, &account);
                    a.next_req += 1;
                    let req = a.next_req;
                    a.replies.insert(req, ReplyTo { client, attempt });
                    a.mailbox.push_back(Input::Command(req, cmd));
                    self.schedule_run(node, &account);
                } else if hops < HOPS_MAX {
                    let msg = NodeMsg::Command {
                        client,
                        attempt,
                        account,
                        cmd,
                        hops: hops + 1,
                    };
                    self.send_node(Some(node), owner, msg);
                } else {
                    let r = ClientResult::Reply(Err(unavailable("account is moving; retry")));
                    self.send_client(node, client, attempt, r);
                }
            }
            NodeMsg::Saga { msg, hops } => {
                let account = msg.destination().clone();
                let owner = self.owner(node, &account);
                if owner == node {
                    self.ensure_actor(node, &account)
                        .mailbox
                        .push_back(Input::Saga(msg));
                    self.schedule_run(node, &account);
                } else if hops < HOPS_MAX {
                    self.send_node(
                        Some(node),
                        owner,
                        NodeMsg::Saga {
                            msg,
                            hops: hops + 1,
                        },
                    );
                }
            }
        }
    }

    /// A node accepting a client request: reads history itself, routes commands.
    fn gateway(&mut self, node: usize, client: usize, attempt: u64, op: usize) {
        let spec = self.ops[op].clone();
        let cmd = match &spec.kind {
            OpKind::History(after) => {
                let (page, lat) = self.storage(None, |s, k| {
                    exec::read_entries(s, k, &spec.account, *after, crate::workload::HISTORY_PAGE)
                });
                let r = ClientResult::Page(page.map_err(|e| unavailable(&e.to_string())));
                let Some(d) = self.link_delay(Some(node), None) else {
                    return;
                };
                self.at(
                    d + lat,
                    Event::ToClient {
                        client,
                        attempt,
                        result: r,
                    },
                );
                return;
            }
            OpKind::Open(c) => Command::Open { currency: *c },
            OpKind::Deposit(a) => Command::Deposit {
                amount: Amount::new(*a).expect("workload amounts are valid"),
                reference: Some(spec.reference.clone()),
                idem_key: spec.idem_key.clone(),
            },
            OpKind::Withdraw(a) => Command::Withdraw {
                amount: Amount::new(*a).expect("workload amounts are valid"),
                reference: Some(spec.reference.clone()),
                idem_key: spec.idem_key.clone(),
            },
            OpKind::Transfer { to, amount } => {
                self.next_tid += 1;
                Command::Transfer {
                    transfer_id: TransferId::new(format!("t{}", self.next_tid)).expect("valid"),
                    to: to.clone(),
                    amount: Amount::new(*amount).expect("workload amounts are valid"),
                    reference: Some(spec.reference.clone()),
                    idem_key: spec.idem_key.clone(),
                }
            }
            OpKind::Freeze => Command::Freeze,
            OpKind::Unfreeze => Command::Unfreeze,
            OpKind::Get => Command::Get,
        };
        self.node_receive(
            node,
            NodeMsg::Command {
                client,
                attempt,
                account: spec.account,
                cmd,
                hops: 0,
            },
        );
    }

    fn ensure_actor(&mut self, node: usize, account: &AccountId) -> &mut SimActor {
        if !self.nodes[node].actors.contains_key(account) {
            self.next_inc += 1;
            let inc = self.next_inc;
            self.nodes[node].actors.insert(
                account.clone(),
                SimActor {
                    inc,
                    act: None,
                    loaded: false,
                    busy: false,
                    run_scheduled: false,
                    reload_scheduled: false,
                    reload_backoff: RELOAD_BACKOFF_MS,
                    mailbox: VecDeque::new(),
                    replies: BTreeMap::new(),
                    next_req: 0,
                    timer_gen: 0,
                    done: Vec::new(),
                },
            );
            self.schedule_run(node, account);
        }
        self.nodes[node]
            .actors
            .get_mut(account)
            .expect("just ensured")
    }

    fn actor_mut(&mut self, node: usize, account: &AccountId, inc: u64) -> Option<&mut SimActor> {
        let n = &mut self.nodes[node];
        if !n.alive {
            return None;
        }
        n.actors.get_mut(account).filter(|a| a.inc == inc)
    }

    fn schedule_run(&mut self, node: usize, account: &AccountId) {
        let Some(a) = self.nodes[node].actors.get_mut(account) else {
            return;
        };
        if a.busy || a.run_scheduled {
            return;
        }
        a.run_scheduled = true;
        let inc = a.inc;
        self.at(
            0,
            Event::ActorRun {
                node,
                account: account.clone(),
                inc,
            },
        );
    }

    fn actor_run(&mut self, node: usize, account: &AccountId, inc: u64) {
        let node_id = self.nodes[node].id.clone();
        let Some(a) = self.actor_mut(node, account, inc) else {
            return;
        };
        a.run_scheduled = false;
        if a.busy {
            return;
        }
        if a.act.is_none() {
            return self.activate(node, account, inc);
        }
        if a.mailbox.is_empty() {
            return;
        }
        let take = a.mailbox.len().min(BATCH_INPUTS_MAX);
        let inputs: Vec<Input> = a.mailbox.drain(..take).collect();
        let act = a.act.clone().expect("checked above");
        let writer = Writer {
            node: node_id.clone(),
            account: account.as_str().to_owned(),
            nonce: act.nonce,
            epoch: act.epoch(),
            activating: false,
        };
        let now = EPOCH_MS + self.now;
        let (result, lat) = self.storage(Some(writer), |s, k| {
            exec::commit_batch(s, k, &node_id, &act, &inputs, now)
        });
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
        if result.is_ok() && status_cmds >= 2 {
            // Two commands that set the status (opening sets it too): replies from inside
            // this batch may show a status no stored state has (even
            // none at all, when the batch ends where it began and writes nothing). Marked at
            // 2 * commits + 1: after every request sent before this batch ran.
            let mark = 2 * self.ledger.commits + 1;
            self.ledger
                .mixed_status
                .entry(account.as_str().to_owned())
                .or_default()
                .insert(mark);
        }
        trace!(
            self,
            "n{} {account} batch of {} (epoch {}): {}",
            node + 1,
            inputs.len(),
            act.epoch(),
            match &result {
                Ok((_, fx)) => format!("ok, {} effects", fx.len()),
                Err(e) => format!("error: {e}"),
            }
        );
        let a = self.actor_mut(node, account, inc).expect("still there");
        match result {
            Ok((next, effects)) => {
                a.act = Some(next);
                a.busy = true;
                a.done = effects;
                let acc = account.clone();
                self.at(
                    lat,
                    Event::StorageDone {
                        node,
                        account: acc,
                        inc,
                    },
                );
            }
            Err(e) => {
                let failed: Vec<ReplyTo> = inputs
                    .iter()
                    .filter_map(|i| match i {
                        Input::Command(req, _) => a.replies.remove(req),
                        _ => None,
                    })
                    .collect();
                if e != StorageError::Fenced {
                    a.act = None;
                }
                let why = if e == StorageError::Fenced {
                    "the account moved to another activation"
                } else {
                    "storage did not confirm the commit"
                };
                for r in failed {
                    let res = ClientResult::Reply(Err(unavailable(why)));
                    self.send_client(node, r.client, r.attempt, res);
                }
                if e == StorageError::Fenced {
                    self.stats.fenced += 1;
                    // Step aside; whatever was still queued is routed afresh.
                    let a = self.nodes[node].actors.remove(account).expect("present");
                    let replies = a.replies;
                    for input in a.mailbox {
                        self.reroute(node, input, &replies);
                    }
                } else {
                    self.stats.failed_batches += 1;
                    self.schedule_reload(node, account);
                }
            }
        }
    }

    /// Routes a queued input of a removed actor again, as a fresh message to this node.
    fn reroute(&mut self, node: usize, input: Input, replies: &BTreeMap<ReqId, ReplyTo>) {
        match input {
            Input::Command(req, cmd) => {
                if let Some(r) = replies.get(&req) {
                    let account = self.ops_account_of(r);
                    if let Some(account) = account {
                        let msg = NodeMsg::Command {
                            client: r.client,
                            attempt: r.attempt,
                            account,
                            cmd,
                            hops: 0,
                        };
                        self.at(0, Event::ToNode { node, msg });
                    }
                }
            }
            Input::Saga(msg) => self.at(
                0,
                Event::ToNode {
                    node,
                    msg: NodeMsg::Saga { msg, hops: 0 },
                },
            ),
            Input::Timer(_) => {} // the next activation re-arms every open saga
        }
    }

    /// The account a client's command was for (from the client's operation in flight).
    fn ops_account_of(&self, r: &ReplyTo) -> Option<AccountId> {
        let (op, _) = self.attempts.get(&r.attempt)?;
        Some(self.ops[*op].account.clone())
    }

    fn schedule_reload(&mut self, node: usize, account: &AccountId) {
        let a = self.nodes[node].actors.get_mut(account).expect("present");
        if a.reload_scheduled {
            return;
        }
        a.reload_scheduled = true;
        let (inc, after) = (a.inc, a.reload_backoff);
        a.reload_backoff = (a.reload_backoff * 2).min(RELOAD_BACKOFF_MAX_MS);
        self.at(
            after,
            Event::Reload {
                node,
                account: account.clone(),
                inc,
            },
        );
    }

    /// Activates (or reloads) an account: takes the lease, then re-drives its open sagas.
    fn activate(&mut self, node: usize, account: &AccountId, inc: u64) {
        let node_id = self.nodes[node].id.clone();
        let nonce = self.rng_ids.next_u64();
        let timing = self.timing;
        let writer = Writer {
            node: node_id.clone(),
            account: account.as_str().to_owned(),
            nonce,
            epoch: 0,
            activating: true,
        };
        let (result, lat) = self.storage(Some(writer), |s, k| {
            exec::activate(s, k, &node_id, account, timing, nonce)
        });
        trace!(
            self,
            "n{} activate {account}: {}",
            node + 1,
            match &result {
                Ok(a) => format!("epoch {}, {} open", a.epoch(), a.core.open_sagas().len()),
                Err(e) => format!("error: {e}"),
            }
        );
        if result.is_ok() {
            self.stats.activations += 1;
        }
        let a = self.actor_mut(node, account, inc).expect("still there");
        match result {
            Ok(act) => {
                a.timer_gen += 1;
                a.reload_backoff = RELOAD_BACKOFF_MS;
                a.loaded = true;
                a.busy = true;
                a.done = act.core.resume();
                a.act = Some(act);
                let acc = account.clone();
                self.at(
                    lat,
                    Event::StorageDone {
                        node,
                        account: acc,
                        inc,
                    },
                );
            }
            Err(_) => {
                // Commands waiting on it learn nothing: outcome unknown, retry.
                let waiting: Vec<ReplyTo> = a.replies.values().copied().collect();
                a.replies.clear();
                a.mailbox.retain(|i| !matches!(i, Input::Command(..)));
                let loaded = a.loaded;
                for r in waiting {
                    let res = ClientResult::Reply(Err(unavailable("storage is unreachable")));
                    self.send_client(node, r.client, r.attempt, res);
                }
                if loaded {
                    self.schedule_reload(node, account);
                } else {
                    // Never activated: nothing is lost by forgetting it (saga senders retry).
                    self.nodes[node].actors.remove(account);
                }
            }
        }
    }

    fn storage_done(&mut self, node: usize, account: &AccountId, inc: u64) {
        let Some(a) = self.actor_mut(node, account, inc) else {
            return; // crashed or passivated meanwhile: the effects are lost with it
        };
        a.busy = false;
        let effects = std::mem::take(&mut a.done);
        self.run_effects(node, account, inc, effects);
        self.schedule_run(node, account);
    }

    fn run_effects(&mut self, node: usize, account: &AccountId, inc: u64, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Reply(req, result) => {
                    let Some(a) = self.actor_mut(node, account, inc) else {
                        return;
                    };
                    if let Some(r) = a.replies.remove(&req) {
                        self.send_client(node, r.client, r.attempt, ClientResult::Reply(result));
                    }
                }
                Effect::Send(msg) => {
                    let owner = self.owner(node, msg.destination());
                    self.send_node(Some(node), owner, NodeMsg::Saga { msg, hops: 0 });
                }
                Effect::Publish(_) => {}
                Effect::Timer {
                    transfer_id,
                    after_ms,
                } => {
                    let Some(a) = self.actor_mut(node, account, inc) else {
                        return;
                    };
                    let gen = a.timer_gen;
                    self.at(
                        after_ms,
                        Event::Timer {
                            node,
                            account: account.clone(),
                            inc,
                            gen,
                            tid: transfer_id,
                        },
                    );
                }
                Effect::Settled(view) => {
                    trace!(self, "settled {} {:?}", view.id, view.status);
                    match view.status {
                        protocol::api::TransferStatus::Completed => self.stats.completed += 1,
                        _ => self.stats.failed += 1,
                    }
                }
            }
        }
    }

    fn sweep(&mut self, node: usize) {
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let cursor = after.clone();
            let (page, _) = self.storage(None, |s, k| {
                exec::read_pending(s, k, cursor.as_deref(), SWEEP_PAGE)
            });
            let Ok((page, more)) = page else {
                return; // storage down: the next sweep tries again
            };
            after = page.last().map(|(v, _)| v.id.as_str().to_owned());
            rows.extend(page);
            if !more || rows.len() >= SWEEP_ROWS_MAX {
                break;
            }
        }
        let mut activated = 0;
        for (view, sender) in rows {
            if activated >= SWEEP_ACTIVATIONS_MAX {
                break;
            }
            if self.owner(node, &sender) != node {
                continue;
            }
            // A local activation that does not know the saga may be stale (a newer one
            // elsewhere started it, then died): if it lost the lease, it steps aside.
            let stale = match self.nodes[node].actors.get(&sender) {
                None => true,
                Some(a) if a.busy => false,
                Some(a) => match a.act.clone() {
                    Some(act) => {
                        let (stale, _) =
                            self.storage(None, |s, k| exec::stale_for(s, k, &act, &view.id));
                        stale == Ok(true)
                    }
                    None => false,
                },
            };
            if stale {
                trace!(self, "n{} sweep resumes {sender} for {}", node + 1, view.id);
                if let Some(old) = self.nodes[node].actors.remove(&sender) {
                    for input in old.mailbox {
                        self.reroute(node, input, &old.replies);
                    }
                }
                self.ensure_actor(node, &sender);
                activated += 1;
            }
        }
    }

    fn restart(&mut self, n: usize) {
        let latest = self.memberships.len() - 1;
        let names: Vec<String> = self.nodes.iter().map(|x| x.id.clone()).collect();
        let ring = ring_of(&self.memberships[latest], &names, self.opts.vnodes);
        let node = &mut self.nodes[n];
        node.alive = true;
        node.ring = ring;
        node.ring_version = latest;
        let life = node.life;
        trace!(self, "n{} restarts", n + 1);
        self.at(1, Event::Sweep { node: n, life });
        if self.opts.churn_every_ms > 0 && !self.memberships[latest].contains(&n) {
            let mut m = self.memberships[latest].clone();
            m.insert(n);
            self.change_membership(m, self.opts.ring_lag_max_ms);
        }
    }

    fn change_membership(&mut self, members: BTreeSet<usize>, lag_max: u64) {
        assert!(!members.is_empty(), "membership never empties");
        self.stats.churns += 1;
        self.memberships.push(members);
        let version = self.memberships.len() - 1;
        trace!(
            self,
            "membership v{version}: {:?}",
            self.memberships[version]
        );
        for node in 0..self.nodes.len() {
            let lag = self.rng_fault.range(0, lag_max);
            self.at(lag, Event::RingUpdate { node, version });
        }
    }

    // ---- faults ----------------------------------------------------------------------------

    fn again(&mut self, every: u64, ev: Event) {
        if !self.healed {
            let t = self.rng_fault.around(every);
            self.at(t, ev);
        }
    }

    fn fault_crash(&mut self) {
        if self.healed {
            return;
        }
        let alive: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].alive)
            .collect();
        if !alive.is_empty() {
            let n = *self.rng_fault.pick(&alive);
            self.stats.crashes += 1;
            let node = &mut self.nodes[n];
            node.alive = false;
            node.life += 1;
            node.actors.clear();
            trace!(self, "CRASH n{}", n + 1);
            let down = self.rng_fault.range(1, self.opts.down_max_ms);
            self.at(down, Event::Restart(n));
            // With a membership service, the crashed node is taken off the ring (failover).
            let latest = self.memberships.last().expect("one").clone();
            if self.opts.churn_every_ms > 0 && latest.contains(&n) && latest.len() > 1 {
                let mut m = latest;
                m.remove(&n);
                self.change_membership(m, self.opts.ring_lag_max_ms);
            }
        }
        self.again(self.opts.crash_every_ms, Event::FaultCrash);
    }

    fn fault_partition(&mut self) {
        if self.healed {
            return;
        }
        let n = self.nodes.len() as u64;
        let a = self.rng_fault.below(n) as usize;
        let mut b = self.rng_fault.below(n - 1) as usize;
        if b >= a {
            b += 1;
        }
        let len = self.rng_fault.range(1, self.opts.partition_max_ms);
        let mut links = Vec::new();
        match self.rng_fault.below(3) {
            0 => links.push((a, b)),             // one-way
            1 => links.extend([(a, b), (b, a)]), // symmetric pair
            _ => {
                for o in 0..self.nodes.len() {
                    // isolate a
                    if o != a {
                        links.extend([(a, o), (o, a)]);
                    }
                }
            }
        }
        self.stats.partitions += 1;
        trace!(self, "PARTITION {links:?} for {len} ms");
        for l in links {
            *self.blocked.entry(l).or_insert(0) += 1;
            self.at(len, Event::Heal(l.0, l.1));
        }
        self.again(self.opts.partition_every_ms, Event::FaultPartition);
    }

    fn fault_passivate(&mut self) {
        if self.healed {
            return;
        }
        let mut idle = Vec::new();
        for (n, node) in self.nodes.iter().enumerate() {
            if !node.alive {
                continue;
            }
            for (id, a) in &node.actors {
                if !a.busy && a.mailbox.is_empty() && a.replies.is_empty() {
                    idle.push((n, id.clone()));
                }
            }
        }
        if !idle.is_empty() {
            let (n, id) = self.rng_fault.pick(&idle).clone();
            self.stats.passivations += 1;
            trace!(self, "PASSIVATE n{} {id}", n + 1);
            self.nodes[n].actors.remove(&id);
        }
        self.again(self.opts.passivate_every_ms, Event::FaultPassivate);
    }

    fn fault_churn(&mut self) {
        if self.healed {
            return;
        }
        let n = self.rng_fault.below(self.nodes.len() as u64) as usize;
        let mut m = self.memberships.last().expect("one").clone();
        if m.contains(&n) {
            if m.len() > 1 {
                m.remove(&n);
                self.change_membership(m, self.opts.ring_lag_max_ms);
            }
        } else if self.nodes[n].alive {
            m.insert(n);
            self.change_membership(m, self.opts.ring_lag_max_ms);
        }
        self.again(self.opts.churn_every_ms, Event::FaultChurn);
    }

    fn fault_outage(&mut self) {
        if self.healed {
            return;
        }
        let len = self.rng_fault.range(1, self.opts.outage_max_ms);
        self.stats.outages += 1;
        trace!(self, "STORAGE OUTAGE {len} ms");
        self.backend.outage_until(self.now + len);
        self.again(self.opts.outage_every_ms, Event::FaultOutage);
    }

    // ---- clients ---------------------------------------------------------------------------

    fn client_wake(&mut self, c: usize) {
        match self.clients[c].state {
            ClientState::Idle => {}
            ClientState::Retrying { op, tries } => return self.send_request(c, op, tries),
            ClientState::Waiting { .. } | ClientState::Done => return,
        }
        if self.stats.ops >= self.opts.ops {
            self.clients[c].state = ClientState::Done;
            return;
        }
        self.stats.ops += 1;
        let op = match self.gen.next(c, &self.ops, &self.clients[c].keyed) {
            Drawn::New(spec) => {
                self.ops.push(spec);
                let i = self.ops.len() - 1;
                if self.ops[i].idem_key.is_some() {
                    self.clients[c].keyed.push(i);
                }
                i
            }
            Drawn::Repeat(i) => i,
        };
        self.send_request(c, op, 1);
    }

    fn send_request(&mut self, c: usize, op: usize, tries: u32) {
        self.next_attempt += 1;
        let attempt = self.next_attempt;
        self.stats.requests += 1;
        self.clients[c].state = ClientState::Waiting { op, attempt, tries };
        self.attempts.insert(attempt, (op, self.ledger.commits));
        let alive: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].alive)
            .collect();
        let gw = if !alive.is_empty() && self.rng_net.chance(900_000) {
            *self.rng_net.pick(&alive)
        } else {
            self.rng_net.below(self.nodes.len() as u64) as usize
        };
        trace!(
            self,
            "c{c} a{attempt} try {tries} {} via n{}",
            short(&self.ops[op]),
            gw + 1
        );
        self.send_node(
            None,
            gw,
            NodeMsg::Request {
                client: c,
                attempt,
                op,
            },
        );
        let timeout = self.opts.client_timeout_ms;
        self.at(timeout, Event::ClientTimeout(c, attempt));
    }

    fn client_receive(&mut self, c: usize, attempt: u64, result: ClientResult) {
        trace!(self, "c{c} a{attempt} got {}", brief(&result));
        // Every reply is checked, even a late one for an attempt the client gave up on.
        let Some((op, sent_commit, current)) = self.attempt_info(c, attempt) else {
            return;
        };
        if !result.is_unknown() {
            let ctx = ReplyCtx {
                ledger: &self.ledger,
                op: &self.ops[op],
                ops: &self.ops,
                sent_commit,
                result: &result,
            };
            if let Err((check, msg)) = self.checks.on_reply(&ctx) {
                let msg = format!(
                    "{msg} (reply to {} attempt {attempt})",
                    self.ops[op].reference
                );
                return self.fail(FailureKind::Correctness, check, msg);
            }
        }
        if !current {
            return;
        }
        if result.is_unknown() {
            return self.client_unknown(c);
        }
        match &result {
            ClientResult::Reply(Ok(_)) | ClientResult::Page(Ok(_)) => self.stats.acked += 1,
            _ => self.stats.refused += 1,
        }
        self.client_next(c);
    }

    /// The operation, commit count at sending and whether it is the client's current attempt.
    fn attempt_info(&self, c: usize, attempt: u64) -> Option<(usize, u64, bool)> {
        let &(op, sent_commit) = self.attempts.get(&attempt)?;
        let current = matches!(
            self.clients[c].state,
            ClientState::Waiting { attempt: a, .. } if a == attempt
        );
        Some((op, sent_commit, current))
    }

    fn client_unknown(&mut self, c: usize) {
        let ClientState::Waiting { op, tries, .. } = self.clients[c].state else {
            return;
        };
        let spec = &self.ops[op];
        let retryable = spec.idem_key.is_some() || spec.kind.naturally_idempotent();
        if retryable && tries < RETRIES_MAX {
            let backoff = RETRY_BACKOFF_MS << (tries - 1).min(6);
            self.clients[c].state = ClientState::Retrying {
                op,
                tries: tries + 1,
            };
            self.at(backoff, Event::ClientWake(c));
        } else {
            self.stats.unknown += 1;
            self.client_next(c);
        }
    }

    fn client_next(&mut self, c: usize) {
        self.clients[c].state = ClientState::Idle;
        let think = self.gen.think(self.opts.think_max_ms);
        self.at(think, Event::ClientWake(c));
    }
}

fn short(op: &OpSpec) -> String {
    format!(
        "{} {} {:?}{}",
        op.reference,
        op.account,
        op.kind,
        op.idem_key
            .as_ref()
            .map(|k| format!(" key {k}"))
            .unwrap_or_default()
    )
}

fn brief(r: &ClientResult) -> String {
    match r {
        ClientResult::Reply(Ok(rep)) => format!("{rep:?}"),
        ClientResult::Reply(Err(e)) | ClientResult::Page(Err(e)) => format!("error {}", e.code),
        ClientResult::Page(Ok(Some(p))) => format!("page of {}", p.entries.len()),
        ClientResult::Page(Ok(None)) => "no such account".into(),
    }
}

fn describe(msg: &NodeMsg) -> String {
    match msg {
        NodeMsg::Request {
            client,
            attempt,
            op,
        } => format!("request c{client} a{attempt} o{op}"),
        NodeMsg::Command {
            client,
            attempt,
            account,
            hops,
            ..
        } => format!("command c{client} a{attempt} for {account} (hop {hops})"),
        NodeMsg::Saga { msg, hops } => format!("{} (hop {hops})", describe_saga(msg)),
    }
}

fn describe_saga(m: &SagaMsg) -> String {
    match m {
        SagaMsg::Credit {
            transfer_id,
            from,
            to,
            amount,
            ..
        } => format!("credit {transfer_id} {from}->{to} {}", amount.get()),
        SagaMsg::Abort {
            transfer_id, to, ..
        } => format!("abort {transfer_id} ->{to}"),
        SagaMsg::Outcome {
            transfer_id,
            from,
            outcome,
        } => format!("outcome {transfer_id} ->{from} {outcome:?}"),
    }
}
