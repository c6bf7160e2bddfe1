//! The deterministic simulator of a wallet cluster (`wallet-sim`).
//!
//! It runs the node crate's own code for a whole simulated cluster in one thread: the same
//! account driver ([`node::ledger::driver`]: batching, storage outcomes, reloads, stepping
//! aside, saga deadlines, waiters, passivation), the same account state machine and saga
//! ([`node::ledger::account`]), the same storage transaction bodies with their fencing
//! ([`node::ledger::exec`]), the same placement ring ([`node::cluster::placement`]), the same
//! ledger audit ([`node::ledger::audit`]) and the same storage retry loop
//! ([`node::storage::Store`]) over the `memory` backend. Ractor is not run (it is not
//! seed-reproducible); the simulator is a second runtime of the sans-IO driver, next to the
//! ractor actor.
//!
//! One `u64` seed decides everything ([`rng`]): the cluster's shape and which faults are on
//! ([`options`], "swarm testing"), the workload ([`workload`]), every network delay, loss and
//! duplicate, every crash, partition, passivation and membership change, every storage fault,
//! and every activation nonce. Time is simulated. The same seed gives the same trace, byte for
//! byte, and the same trace hash ([`trace`]).
//!
//! A run has two phases ([`sim::Sim::run`]): a safety phase, the workload under faults, then a
//! liveness phase with every fault healed, in which every pending transfer must settle within
//! a bounded simulated time. The checkers ([`check`]) watch every commit and every reply and
//! recheck the whole store at the end of each phase.
//!
//! Storage concurrency follows FoundationDB's optimistic model ([`store`]): an attempt may read
//! a few commits behind the newest, and if a later commit wrote a key it read, it gets a real
//! conflict from the memory backend's read-conflict ranges (conflicts are also injected).
//!
//! Left out: the HTTP and WebSocket gateways and ractor itself (thin shells over the same core,
//! tested by the node's own tests; the stream gateway's delivery rules are modelled by the
//! simulator's subscribers), idle passivation by timer (forced passivations and evictions
//! under a small `active_max` stand in for it), and transactions that really run side by side
//! (the simulator runs one attempt at a time; a stale read version stands for the overlap).

pub mod check;
pub mod ledger;
pub mod options;
pub mod rng;
pub mod sim;
pub mod store;
pub mod trace;
pub mod workload;

use check::FailureKind;
use options::Options;
use rng::Rng;
use sim::{Failure, Sim, Stats};
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};

/// Client operations per seed unless asked otherwise.
pub const OPS_DEFAULT: u64 = 1_000;

/// What a run is asked to do.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Client operations in the safety phase.
    pub ops: u64,
    /// Keep the event log's lines.
    pub keep_trace: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            ops: OPS_DEFAULT,
            keep_trace: false,
        }
    }
}

/// The result of one seed.
#[derive(Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// What the seed drew.
    pub options: Options,
    /// Counters.
    pub stats: Stats,
    /// Hash of the event log.
    pub trace_hash: u64,
    /// Events in the log.
    pub events: u64,
    /// The log's lines, if kept.
    pub trace: Option<Vec<String>>,
    /// The first failure, if any.
    pub failure: Option<Failure>,
}

impl Report {
    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "wallet-sim run --seed {} --ops {} --trace",
            self.seed, self.options.ops
        )
    }
}

thread_local! {
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs a panic hook that records where a panic happened instead of printing it, so a
/// run's panic becomes a reported `crash` failure with its location.
pub fn quiet_panics() {
    panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        PANIC_AT.with(|p| *p.borrow_mut() = Some(at));
    }));
}

/// Draws the options of `seed`.
pub fn options_of(seed: u64, ops: u64) -> Options {
    Options::draw(&mut Rng::stream(seed, 0), ops)
}

/// Runs `seed` with `options` (drawn, then changed by a test) and returns its counters;
/// panics naming the seed and `what` when a checker fails or its operations did not all run.
pub fn run_passing(seed: u64, options: Options, what: &str) -> sim::Stats {
    let ops = options.ops;
    let mut sim = Sim::new(seed, options, false);
    sim.run();
    if let Some(f) = &sim.failure {
        panic!(
            "seed {seed} with {what}: {:?} {}: {}\n  at {} ms",
            f.kind, f.check, f.message, f.at_ms
        );
    }
    assert_eq!(sim.stats.ops, ops, "seed {seed} ran its operations");
    sim.stats
}

/// Runs one seed.
pub fn run(seed: u64, cfg: &RunConfig) -> Report {
    let options = options_of(seed, cfg.ops);
    let mut sim = Sim::new(seed, options.clone(), cfg.keep_trace);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| sim.run()));
    if let Err(payload) = outcome {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        let at = PANIC_AT.with(|p| p.borrow_mut().take()).unwrap_or_default();
        sim.failure = Some(Failure {
            kind: FailureKind::Crash,
            check: "panic".into(),
            message: format!("{msg}{at}"),
            at_ms: sim.now(),
        });
        sim.trace.event(sim.now(), format_args!("PANIC {msg}{at}"));
    }
    Report {
        seed,
        options,
        stats: sim.stats.clone(),
        trace_hash: sim.trace.hash(),
        events: sim.trace.events(),
        trace: sim.trace.take_lines(),
        failure: sim.failure.take(),
    }
}
