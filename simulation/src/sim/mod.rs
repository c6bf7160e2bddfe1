//! The simulated cluster and its event loop.
//!
//! One thread, one seeded scheduler: events wait in a queue ordered by simulated time and
//! then by insertion, so the run is a pure function of the seed. What the real node does with
//! ractor and tokio, the simulator does with events. This module is the scheduler and the two
//! phases of a run; the rest is one concern per file:
//! - [`contract`]: the driver's promises to its callers (retries, reloads, stepping aside),
//!   checked on every activation;
//! - [`runtime`]: the node runtime, a thin runtime over the node crate's own account driver
//!   (the same one the ractor actor runs): work at its commit point, results after latency,
//!   `Moved` commands routed again, waiters, eviction under a small `active_max`;
//! - [`group`]: each node's committer (the node crate's own), which commits the batches of
//!   many actors in one transaction, with whole-group faults;
//! - [`routing`]: the gateway and message routing by each node's own view of the [`Ring`]
//!   (updated after a lag when membership changes, so two nodes can believe they own one
//!   account and race);
//! - [`network`]: delays, reordering, loss, duplication and partitions;
//! - [`sweep`]: each node's pending-index sweep, which resumes unsettled transfers;
//! - [`streams`]: balance-stream subscribers, with disconnects and resumption, checked for
//!   invariant 8;
//! - [`liveness`]: hangs (a node stops processing while its links stay up, then resumes) and
//!   failure detection with the node crate's own detector on every node;
//! - [`faults`]: crashes, partitions, passivations, membership churn, storage outages, and
//!   healing them all;
//! - [`clients`]: the clients, their retries with idempotency keys, and their timeouts.
//!
//! Storage is [`SimBackend`], shared by every node and never lost on a crash.

/// Appends one line to the run's trace.
macro_rules! trace {
    ($sim:expr, $($arg:tt)*) => {
        $sim.trace.event($sim.now, format_args!($($arg)*))
    };
}

mod clients;
mod contract;
mod faults;
mod group;
mod liveness;
mod network;
mod routing;
mod runtime;
mod streams;
mod sweep;

use crate::check::{audit_self, store_reads, Checks, FailureKind, ReplyCtx};
use crate::ledger::Ledger;
use crate::options::Options;
use crate::rng::Rng;
use crate::store::{SimBackend, StorageFaults, Writer};
use crate::trace::Trace;
use crate::workload::{ClientResult, Drawn, Generator, OpKind, OpSpec, Universe};
use crate::workload::{RETRIES_MAX, RETRY_BACKOFF_MS};
use clients::{Client, ClientState};
use node::cluster::placement::{Member, Ring};
use node::cluster::SAGA_HOPS_MAX;
use node::ledger::account::{Command, Effect, Input, Reply, ReqId, SagaTiming, CREDIT_RESENDS_MAX};
use node::ledger::exec::{self, Activation};
use node::ledger::shard_reads;
use node::storage::keys::Keys;
use node::storage::{RetryPolicy, StorageError, Store};
use protocol::saga::SagaMsg;
use protocol::{AccountId, Amount, ApiError, ErrorCode, TransferId};
use routing::{describe, NodeMsg};
use runtime::{ActorEvent, SimActor};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// Simulated wall clock at time zero (the core stamps entries with it), ms since the epoch.
pub const EPOCH_MS: u64 = 1_767_225_600_000;
/// Longest extra delay of a reordered message.
pub const REORDER_MAX_MS: u64 = 1_000;
/// Most events one run may handle before it is declared stuck (a liveness failure).
pub const EVENTS_MAX: u64 = 20_000_000;
/// Longest simulated safety phase before it is declared stuck.
pub const SAFETY_TIME_MAX_MS: u64 = 6 * 3_600_000;

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
    Actor {
        node: usize,
        account: AccountId,
        inc: u64,
        ev: ActorEvent,
    },
    Stream(streams::StreamEvent),
    Sweep {
        node: usize,
        life: u64,
    },
    GroupDone {
        node: usize,
        life: u64,
        id: u64,
    },
    CommitterWake {
        node: usize,
        life: u64,
    },
    Restart(usize),
    RingUpdate {
        node: usize,
        version: usize,
    },
    Heal(usize, usize),
    /// A hung node goes on.
    Resume {
        node: usize,
        life: u64,
    },
    /// A node's failure-detection tick.
    HeartbeatTick {
        node: usize,
        life: u64,
    },
    /// A heartbeat of `from` in its `from_life` reaches `to`.
    Heartbeat {
        to: usize,
        life: u64,
        from: usize,
        from_life: u64,
        incarnation: u64,
    },
    /// `to` is told it was dropped at `incarnation`.
    Dropped {
        to: usize,
        life: u64,
        incarnation: u64,
    },
    FaultHang,
    FaultCrash,
    FaultPartition,
    FaultPassivate,
    FaultChurn,
    FaultOutage,
}

/// Where a command's reply goes.
#[derive(Clone, Copy, Debug)]
pub(super) struct ReplyTo {
    client: usize,
    attempt: u64,
}

struct SimNode {
    id: String,
    alive: bool,
    /// Bumped by every crash: events of an earlier life are ignored.
    life: u64,
    ring: Ring,
    ring_version: usize,
    actors: BTreeMap<AccountId, SimActor>,
    /// The node's committer (lost with the node on a crash).
    group: group::NodeCommitter,
    /// Its failure detection, and whether it hangs.
    liveness: liveness::Liveness,
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
    /// Groups committed by the nodes' committers.
    pub groups: u64,
    /// Batches in those groups.
    pub grouped_batches: u64,
    /// Batches fenced in a group whose other batches committed.
    pub fenced_in_group: u64,
    /// Batches handed back because a committer's queue was full.
    pub commit_queue_full: u64,
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
    /// Hangs of a node.
    pub hangs: u64,
    /// Members dropped for silence by a peer's failure detector.
    pub drops: u64,
    /// Rejoins of a node that learnt it was dropped (or found it was stopped).
    pub rejoins: u64,
    /// Actors evicted to stay under `active_max`.
    pub evictions: u64,
    /// Commands answered `Moved` and routed again.
    pub moved: u64,
    /// Journal entries delivered to stream subscribers.
    pub streamed: u64,
    /// Lease checks of activations the sweep found not knowing an unsettled transfer.
    pub lease_reads: u64,
    /// Reads of the summaries of transfers settled in a commit whose result was unknown.
    pub settled_reads: u64,
    /// Storage outages.
    pub outages: u64,
    /// The corruptions of the ledger the audit was shown at the phase ends (a mask: bit `i`
    /// for the `i`-th of `check::audit_self::corruption_names`).
    pub corruptions: u64,
    /// Storage attempts.
    pub attempts: u64,
    /// Storage faults injected.
    pub storage_faults: u64,
    /// Conflicts the store detected (stale reads overtaken by a later commit).
    pub storage_conflicts: u64,
    /// Leases moved between two attempts of a transaction (another node activated the
    /// account in between).
    pub leases_moved: u64,
    /// Transfers completed.
    pub completed: u64,
    /// Transfers failed.
    pub failed: u64,
    /// Holds created, and how many ended captured, voided and expired.
    pub holds: [u64; 4],
    /// Disbursements started, and how many completed and failed.
    pub disbursements: [u64; 3],
    /// Debits a shard of the hot account refused for want of money that were sent again
    /// (the account as a whole had it).
    pub gathers: u64,
    /// Moves of money between the hot account's shards, and how many completed.
    pub moves: [u64; 2],
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
    rng_streams: Rng,
    gen: Generator,
    /// The accounts of the run (which one is sharded, in how many shards).
    universe: Universe,
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
    subscribers: Vec<streams::Subscriber>,
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
        let keys = Keys::default().with_webhooks(&[crate::check::outbox::webhook()]);
        let backend = SimBackend::new(Rng::stream(seed, 1), keys.clone());
        backend.set_faults(StorageFaults {
            conflict_ppm: opts.conflict_ppm,
            unknown_committed_ppm: opts.unknown_committed_ppm,
            unknown_lost_ppm: opts.unknown_lost_ppm,
            slow_ppm: opts.slow_ppm,
            slow_max_ms: opts.slow_max_ms,
            stale_read_ppm: opts.stale_read_ppm,
            lease_moved_ppm: opts.lease_moved_ppm,
        });
        backend.set_sync_ms(opts.sync_ms);
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
                group: group::NodeCommitter::new(&opts),
                liveness: liveness::Liveness::new(0, &opts),
            })
            .collect();
        let universe = Universe::new(
            opts.accounts,
            opts.currencies,
            opts.hot_shards,
            opts.hot_share_ppm,
        );
        let mut rng_subs = Rng::stream(seed, 7);
        let subscribers = (0..opts.subscribers)
            .map(|_| {
                let node = rng_subs.below(opts.nodes as u64) as usize;
                streams::Subscriber::new(node, &universe.journals())
            })
            .collect();
        let mut sim = Sim {
            now: 0,
            events: BTreeMap::new(),
            next_event: 0,
            rng_net: Rng::stream(seed, 2),
            rng_fault: Rng::stream(seed, 3),
            rng_ids: Rng::stream(seed, 4),
            rng_streams: Rng::stream(seed, 6),
            gen: Generator::new(Rng::stream(seed, 5), universe.clone()),
            universe,
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
                    gathers: 0,
                })
                .collect(),
            ops: Vec::new(),
            attempts: BTreeMap::new(),
            next_attempt: 0,
            next_inc: 0,
            next_tid: 0,
            healed: false,
            subscribers,
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
        sim.streams_start();
        for n in 0..sim.nodes.len() {
            let first = sim.rng_fault.range(1, sim.opts.sweep_every_ms);
            sim.at(first, Event::Sweep { node: n, life: 0 });
        }
        if sim.detecting() {
            for n in 0..sim.nodes.len() {
                let first = sim.rng_fault.range(1, sim.opts.heartbeat_ms);
                sim.at(first, Event::HeartbeatTick { node: n, life: 0 });
            }
        }
        let o = sim.opts.clone();
        for (every, ev) in [
            (o.hang_every_ms, Event::FaultHang),
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
        self.stats.leases_moved = self.backend.leases_moved();
        for (_, d) in self.ledger.disbursements.values() {
            self.stats.disbursements[0] += 1;
            match d.phase {
                node::ledger::records::DisbursementPhase::Completed => {
                    self.stats.disbursements[1] += 1
                }
                node::ledger::records::DisbursementPhase::Failed { .. } => {
                    self.stats.disbursements[2] += 1
                }
                _ => {}
            }
        }
        for (id, t) in &self.ledger.transfers {
            if id.starts_with(node::ledger::account::MOVE_PREFIX) {
                self.stats.moves[0] += 1;
                if t.status == protocol::api::TransferStatus::Completed {
                    self.stats.moves[1] += 1;
                }
            }
        }
        for (_, h) in self.ledger.holds.values() {
            self.stats.holds[0] += 1;
            match h.status {
                protocol::api::HoldStatus::Captured => self.stats.holds[1] += 1,
                protocol::api::HoldStatus::Voided => self.stats.holds[2] += 1,
                protocol::api::HoldStatus::Expired => self.stats.holds[3] += 1,
                _ => {}
            }
        }
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
            + crate::workload::HOLD_LIFE_MS.1
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
            if self.failure.is_some() || !self.ledger.unsettled() {
                break;
            }
        }
        self.stats.liveness_ms = self.now - start;
        if self.failure.is_none() {
            self.phase_end(true);
        }
        if self.failure.is_none() {
            self.check_streams();
        }
        for node in 0..self.nodes.len() {
            let accounts: Vec<AccountId> = self.nodes[node].actors.keys().cloned().collect();
            for account in accounts {
                self.contract_answered_in_time(node, &account);
            }
        }
    }

    /// Runs until no transfer is pending and no hold open, or fails the run once `bound` has
    /// passed.
    fn settle_pending(&mut self, start: u64, bound: u64) {
        while self.failure.is_none() && self.ledger.unsettled() {
            if self.now > start + bound || !self.step() {
                let why = format!(
                    "{} transfer(s) still pending and {} hold(s) open {} ms after every fault healed (bound {bound} ms): {}",
                    self.ledger.pending.len(),
                    self.ledger.open_holds().count(),
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
                            "active epoch {} queued {} deadlines {} waiting {} stopped {}",
                            a.driver.activation().map_or(-1, |x| x.epoch() as i64),
                            a.driver.queued(),
                            a.driver.deadlines(),
                            a.driver.waiting(),
                            a.driver.is_stopped()
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
            return self.fail(FailureKind::Correctness, check, msg);
        }
        if let Err(msg) = store_reads::check(&snapshot, &fresh, quiescent, &self.opts.scan) {
            return self.fail(
                FailureKind::Correctness,
                "operators' reads of the store",
                msg,
            );
        }
        match audit_self::check(&fresh, quiescent) {
            Ok(mask) => self.stats.corruptions |= mask,
            Err(msg) => self.fail(
                FailureKind::Correctness,
                "the audit reports corruption",
                msg,
            ),
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
        self.streams_heal();
        self.blocked.clear();
        self.opts.loss_ppm = 0;
        self.opts.dup_ppm = 0;
        self.opts.reorder_ppm = 0;
        for n in 0..self.nodes.len() {
            self.resume(n);
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
        let Some(ev) = self.hold_if_hung(ev) else {
            return;
        };
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
            Event::Actor {
                node,
                account,
                inc,
                ev,
            } => self.actor_event(node, &account, inc, ev),
            Event::Stream(ev) => self.stream_event(ev),
            Event::Sweep { node, life } => {
                if self.nodes[node].alive && self.nodes[node].life == life {
                    self.sweep(node);
                    let every = self.opts.sweep_every_ms;
                    self.at(every, Event::Sweep { node, life });
                }
            }
            Event::GroupDone { node, life, id } => self.group_done(node, life, id),
            Event::CommitterWake { node, life } => self.committer_wake(node, life),
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
            Event::Resume { node, life } => {
                if self.nodes[node].life == life {
                    self.resume(node);
                }
            }
            Event::HeartbeatTick { node, life } => {
                if self.nodes[node].alive && self.nodes[node].life == life {
                    self.heartbeat_tick(node);
                    let every = self.opts.heartbeat_ms;
                    self.at(every, Event::HeartbeatTick { node, life });
                }
            }
            Event::Heartbeat {
                to,
                life,
                from,
                from_life,
                incarnation,
            } => {
                // A heartbeat of an earlier life of its sender died with that life's session.
                if self.nodes[to].alive
                    && self.nodes[to].life == life
                    && self.nodes[from].life == from_life
                {
                    self.heartbeat(to, from, incarnation);
                }
            }
            Event::Dropped {
                to,
                life,
                incarnation,
            } => {
                if self.nodes[to].alive && self.nodes[to].life == life {
                    self.told_dropped(to, incarnation);
                }
            }
            Event::FaultHang => self.fault_hang(),
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

    /// Runs a storage operation on behalf of `writers` (none for a plain read, several for a
    /// group commit) and returns its result and latency.
    fn storage<T>(&mut self, writers: Vec<Writer>, f: impl FnOnce(&Store, &Keys) -> T) -> (T, u64) {
        self.backend.set_writers(writers);
        let out = f(&self.store, &self.keys);
        self.backend.set_writers(Vec::new());
        self.observe();
        (out, self.backend.take_latency())
    }
}
