//! What a seed picks for its run ("swarm testing"): the cluster's shape, the workload's shape,
//! and which faults are on and how often. Each fault class is on for about half the seeds, so
//! that some runs hammer one fault and others mix them all.

use crate::rng::Rng;
use node::ledger::audit_scan::{ScanLimits, AUDIT_ACCOUNTS_MAX};
use node::ledger::committer::GroupLimits;
use node::ledger::driver::Limits;
use std::fmt;

/// Most nodes in a simulated cluster.
pub const NODES_MAX: u64 = 7;
/// Most concurrent clients.
pub const CLIENTS_MAX: u64 = 8;

/// The run's parameters, all drawn from the seed except `ops`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Nodes in the cluster (1 to 7).
    pub nodes: usize,
    /// Virtual nodes per member on the ring.
    pub vnodes: u32,
    /// Concurrent clients.
    pub clients: usize,
    /// Accounts clients open and use; a few more ids are never opened.
    pub accounts: usize,
    /// Currencies in use (1 or 2).
    pub currencies: usize,
    /// Shards of the run's hot account `hot-0` (0: no sharded account; else 2 to 4, or 9 to 12).
    pub hot_shards: u16,
    /// Share of operations aimed at the hot account (as the account acted on, and as a
    /// transfer's receiver), ppm.
    pub hot_share_ppm: u32,
    /// Client operations in the safety phase (all clients together).
    pub ops: u64,
    /// A client gives up waiting for a reply after this long (then the outcome is unknown).
    pub client_timeout_ms: u64,
    /// Longest pause of a client between two requests.
    pub think_max_ms: u64,
    /// How long a sender waits for a credit's outcome before `Abort`.
    pub credit_timeout_ms: u64,
    /// Longest wait between two `Abort`s.
    pub abort_backoff_max_ms: u64,
    /// Pending-index sweep interval of each node.
    pub sweep_every_ms: u64,
    /// Network: largest normal one-way delay.
    pub net_delay_max_ms: u64,
    /// Network: share of messages delayed far longer (reordering), ppm.
    pub reorder_ppm: u32,
    /// Network: share of messages lost, ppm.
    pub loss_ppm: u32,
    /// Network: share of messages delivered twice, ppm.
    pub dup_ppm: u32,
    /// Mean time between partitions (0: none).
    pub partition_every_ms: u64,
    /// Longest partition.
    pub partition_max_ms: u64,
    /// Mean time between node crashes (0: none).
    pub crash_every_ms: u64,
    /// Longest time a crashed node stays down.
    pub down_max_ms: u64,
    /// Mean time between forced passivations of an idle actor (0: none).
    pub passivate_every_ms: u64,
    /// Mean time between membership changes (0: none).
    pub churn_every_ms: u64,
    /// Longest time a node takes to learn a membership change.
    pub ring_lag_max_ms: u64,
    /// Storage: share of attempts that conflict, ppm.
    pub conflict_ppm: u32,
    /// Storage: share of attempts whose commit happened but is reported unknown, ppm.
    pub unknown_committed_ppm: u32,
    /// Storage: share of attempts whose commit did not happen and is reported unknown, ppm.
    pub unknown_lost_ppm: u32,
    /// Storage: share of read-write attempts that read a few commits behind the newest (their
    /// overtaken reads then conflict for real), ppm.
    pub stale_read_ppm: u32,
    /// Storage: share of failed read-write attempts after which one of their accounts' lease
    /// moves before the retry (another node activated it), ppm.
    pub lease_moved_ppm: u32,
    /// Storage: extra latency of every read-write attempt (the disk's sync), which lets
    /// batches gather behind a group in flight.
    pub sync_ms: u64,
    /// Storage: share of attempts that take a latency spike, ppm.
    pub slow_ppm: u32,
    /// Storage: longest latency spike.
    pub slow_max_ms: u64,
    /// Mean time between storage outages (0: none).
    pub outage_every_ms: u64,
    /// Longest storage outage.
    pub outage_max_ms: u64,
    /// Most active actors per node (0: no cap); small caps make evictions happen under faults.
    pub active_max: usize,
    /// How long a caller whose transfer is still pending waits for its settlement (0: not at
    /// all, the pending reply goes out at once).
    pub transfer_wait_ms: u64,
    /// Balance-stream subscribers.
    pub subscribers: usize,
    /// Mean time between disconnects of a subscriber (0: none).
    pub stream_churn_every_ms: u64,
    /// The account driver's limits: the node's defaults, or for about half the seeds small
    /// ones, so that full queues, short batches and waiter caps happen under faults.
    pub limits: Limits,
    /// The committer's group caps: the node's defaults, or for about half the seeds small
    /// ones (and up to three groups in flight), so that groups fill, split and overlap.
    pub group: GroupLimits,
    /// Mean time between hangs of a node (0: none): it stops processing while its links stay
    /// up, then resumes.
    pub hang_every_ms: u64,
    /// Longest hang.
    pub hang_max_ms: u64,
    /// Interval of the heartbeats between members (failure detection runs when hangs are on).
    pub heartbeat_ms: u64,
    /// A member silent this long leaves the others' rings.
    pub failure_timeout_ms: u64,
    /// Page sizes and the account cap of the operators' reads checked at each phase end: the
    /// node's, or for about half the seeds pages of 1 to 4 (and for some a cap below the
    /// number of accounts), so that every page boundary is crossed.
    pub scan: ScanLimits,
}

impl Options {
    /// Draws a run's options from its seed; `ops` is the workload size asked for.
    pub fn draw(rng: &mut Rng, ops: u64) -> Self {
        let nodes = rng.range(1, NODES_MAX) as usize;
        let on = |rng: &mut Rng| rng.chance(500_000);
        let ppm = |rng: &mut Rng, on: bool, max: u32| {
            if on {
                rng.range(1_000, max as u64) as u32
            } else {
                0
            }
        };
        let every =
            |rng: &mut Rng, on: bool, lo: u64, hi: u64| if on { rng.range(lo, hi) } else { 0 };
        let credit_timeout_ms = rng.range(50, 2_000);
        let o_reorder = on(rng);
        let o_loss = on(rng);
        let o_dup = on(rng);
        let o_part = on(rng) && nodes > 1;
        let o_crash = on(rng);
        let o_passivate = on(rng);
        let o_churn = on(rng) && nodes > 1;
        let o_conflict = on(rng);
        let o_unknown_c = on(rng);
        let o_unknown_l = on(rng);
        let o_slow = on(rng);
        let o_outage = on(rng);
        let mut options = Options {
            nodes,
            vnodes: 16,
            clients: rng.range(1, CLIENTS_MAX) as usize,
            accounts: rng.range(2, 24) as usize,
            currencies: rng.range(1, 2) as usize,
            hot_shards: 0,
            hot_share_ppm: 0,
            ops,
            client_timeout_ms: rng.range(100, 3_000),
            think_max_ms: rng.range(0, 200),
            credit_timeout_ms,
            abort_backoff_max_ms: rng.range(credit_timeout_ms, 20_000),
            sweep_every_ms: rng.range(200, 5_000),
            net_delay_max_ms: rng.range(1, 60),
            reorder_ppm: ppm(rng, o_reorder, 200_000),
            loss_ppm: ppm(rng, o_loss, 100_000),
            dup_ppm: ppm(rng, o_dup, 100_000),
            partition_every_ms: every(rng, o_part, 500, 10_000),
            partition_max_ms: rng.range(50, 5_000),
            crash_every_ms: every(rng, o_crash, 500, 15_000),
            down_max_ms: rng.range(10, 5_000),
            passivate_every_ms: every(rng, o_passivate, 20, 2_000),
            churn_every_ms: every(rng, o_churn, 300, 10_000),
            ring_lag_max_ms: rng.range(0, 1_000),
            conflict_ppm: ppm(rng, o_conflict, 300_000),
            unknown_committed_ppm: ppm(rng, o_unknown_c, 100_000),
            unknown_lost_ppm: ppm(rng, o_unknown_l, 100_000),
            slow_ppm: ppm(rng, o_slow, 50_000),
            slow_max_ms: rng.range(10, 3_000),
            outage_every_ms: every(rng, o_outage, 500, 20_000),
            outage_max_ms: rng.range(10, 3_000),
            stale_read_ppm: 0,
            lease_moved_ppm: 0,
            sync_ms: 0,
            active_max: 0,
            transfer_wait_ms: 0,
            subscribers: 0,
            stream_churn_every_ms: 0,
            limits: Limits::default(),
            group: GroupLimits::default(),
            scan: ScanLimits::default(),
            hang_every_ms: 0,
            hang_max_ms: 0,
            heartbeat_ms: 500,
            failure_timeout_ms: 3_000,
        };
        // Drawn last, so that adding it left every other option of a seed as it was.
        let o_stale = on(rng);
        options.stale_read_ppm = ppm(rng, o_stale, 300_000);
        // Drawn after everything above, for the same reason.
        let o_cap = on(rng);
        options.active_max = if o_cap { rng.range(1, 8) as usize } else { 0 };
        // Most callers wait for their transfer's settlement (HTTP's default does).
        let o_wait = rng.chance(750_000);
        options.transfer_wait_ms = every(rng, o_wait, 1, 3 * credit_timeout_ms);
        options.subscribers = rng.range(0, 3) as usize;
        let o_stream_churn = on(rng);
        options.stream_churn_every_ms = every(rng, o_stream_churn, 100, 5_000);
        if on(rng) {
            options.limits = Limits {
                batch_inputs: rng.range(1, 8) as usize,
                queue_inputs: rng.range(1, 12) as usize,
                waiters_per_transfer: rng.range(1, 3) as usize,
            };
        }
        if on(rng) {
            let accounts_max = if rng.chance(250_000) {
                rng.range(1, options.accounts as u64) as usize
            } else {
                AUDIT_ACCOUNTS_MAX
            };
            options.scan = ScanLimits {
                accounts_page: rng.range(1, 4) as usize,
                entries_page: rng.range(1, 4) as usize,
                pending_page: rng.range(1, 4) as usize,
                accounts_max,
            };
        }
        // Drawn after everything above, for the same reason.
        options.sync_ms = rng.range(0, 20);
        // A quarter of the seeds get a crowd of clients, so that nodes are busy and groups
        // fill up behind the one in flight.
        if rng.chance(250_000) {
            options.clients += rng.range(8, 40) as usize;
        }
        if on(rng) {
            options.group = GroupLimits {
                batches: rng.range(1, 6) as usize,
                inputs: rng.range(1, 24) as usize,
                age_ms: rng.range(0, 20),
                in_flight: rng.range(1, 3) as usize,
                queue: rng.range(1, 6) as usize,
            };
        }
        // Drawn last, for the same reason.
        let o_moved = on(rng);
        options.lease_moved_ppm = ppm(rng, o_moved, 300_000);
        // Drawn last, for the same reason. Hangs as long as several failure timeouts, and
        // as short as a fraction of one.
        let o_hang = on(rng) && nodes > 1;
        options.heartbeat_ms = rng.range(50, 500);
        options.failure_timeout_ms =
            options.heartbeat_ms * rng.range(3, 8) + options.net_delay_max_ms;
        options.hang_every_ms = every(rng, o_hang, 1_000, 15_000);
        options.hang_max_ms = rng.range(100, 3 * options.failure_timeout_ms);
        // Drawn last, for the same reason. Most seeds have a hot account of a few shards
        // (few, so that debits often find their shard short and money moves between them),
        // and aim a large share of their operations at it.
        if rng.chance(700_000) {
            options.hot_shards = rng.range(2, 4) as u16;
            options.hot_share_ppm = rng.range(200_000, 600_000) as u32;
            // Some with many shards: a shard then has more siblings than moves it may send
            // at once, so the limit is reached.
            if rng.chance(200_000) {
                options.hot_shards = rng.range(9, 12) as u16;
            }
        }
        options
    }

    /// The names of the fault classes this run has on.
    pub fn faults(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        let mut add = |on: bool, name| {
            if on {
                f.push(name)
            }
        };
        add(self.reorder_ppm > 0, "reorder");
        add(self.loss_ppm > 0, "loss");
        add(self.dup_ppm > 0, "duplication");
        add(self.partition_every_ms > 0, "partitions");
        add(self.crash_every_ms > 0, "crashes");
        add(self.passivate_every_ms > 0, "passivation");
        add(self.churn_every_ms > 0, "membership-churn");
        add(self.hang_every_ms > 0, "hangs");
        add(self.conflict_ppm > 0, "conflicts");
        add(self.unknown_committed_ppm > 0, "unknown-committed");
        add(self.unknown_lost_ppm > 0, "unknown-not-committed");
        add(self.stale_read_ppm > 0, "stale-reads");
        add(self.lease_moved_ppm > 0, "leases-moved-between-attempts");
        add(self.slow_ppm > 0, "latency-spikes");
        add(self.outage_every_ms > 0, "storage-outages");
        add(self.active_max > 0, "evictions");
        add(self.stream_churn_every_ms > 0, "stream-disconnects");
        f
    }
}

impl fmt::Display for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "cluster:  {} node(s), {} vnodes each; sweep every {} ms",
            self.nodes, self.vnodes, self.sweep_every_ms
        )?;
        writeln!(
            f,
            "workload: {} ops by {} client(s) over {} accounts in {} currenc{}; timeout {} ms, think <= {} ms",
            self.ops,
            self.clients,
            self.accounts,
            self.currencies,
            if self.currencies == 1 { "y" } else { "ies" },
            self.client_timeout_ms,
            self.think_max_ms
        )?;
        if self.hot_shards > 0 {
            writeln!(
                f,
                "hot:      hot-0 in {} shards, {} ppm of the operations",
                self.hot_shards, self.hot_share_ppm
            )?;
        }
        writeln!(
            f,
            "saga:     credit timeout {} ms, abort backoff <= {} ms",
            self.credit_timeout_ms, self.abort_backoff_max_ms
        )?;
        writeln!(
            f,
            "network:  delay <= {} ms, reorder {} ppm, loss {} ppm, dup {} ppm",
            self.net_delay_max_ms, self.reorder_ppm, self.loss_ppm, self.dup_ppm
        )?;
        writeln!(
            f,
            "nodes:    partition every ~{} ms (<= {} ms), crash every ~{} ms (down <= {} ms), passivate every ~{} ms, churn every ~{} ms (ring lag <= {} ms)",
            self.partition_every_ms,
            self.partition_max_ms,
            self.crash_every_ms,
            self.down_max_ms,
            self.passivate_every_ms,
            self.churn_every_ms,
            self.ring_lag_max_ms
        )?;
        writeln!(
            f,
            "liveness: hang every ~{} ms (<= {} ms), heartbeat {} ms, failure timeout {} ms",
            self.hang_every_ms, self.hang_max_ms, self.heartbeat_ms, self.failure_timeout_ms
        )?;
        writeln!(
            f,
            "storage:  conflict {} ppm, unknown(committed) {} ppm, unknown(lost) {} ppm, stale read {} ppm, lease moved after a failed attempt {} ppm, slow {} ppm (<= {} ms), outage every ~{} ms (<= {} ms)",
            self.conflict_ppm,
            self.unknown_committed_ppm,
            self.unknown_lost_ppm,
            self.stale_read_ppm,
            self.lease_moved_ppm,
            self.slow_ppm,
            self.slow_max_ms,
            self.outage_every_ms,
            self.outage_max_ms
        )?;
        writeln!(
            f,
            "actors:   active_max {} (0: none), transfer wait {} ms; {} stream subscriber(s), disconnect every ~{} ms",
            self.active_max, self.transfer_wait_ms, self.subscribers, self.stream_churn_every_ms
        )?;
        writeln!(
            f,
            "driver:   batch <= {} inputs, queue <= {} inputs, <= {} waiter(s) per transfer",
            self.limits.batch_inputs, self.limits.queue_inputs, self.limits.waiters_per_transfer
        )?;
        writeln!(
            f,
            "groups:   <= {} batches, <= {} inputs, age <= {} ms, {} in flight, queue <= {}; sync {} ms",
            self.group.batches,
            self.group.inputs,
            self.group.age_ms,
            self.group.in_flight,
            self.group.queue,
            self.sync_ms
        )?;
        writeln!(
            f,
            "reads:    operators' pages of {} accounts, {} entries, {} pending; audit <= {} accounts",
            self.scan.accounts_page,
            self.scan.entries_page,
            self.scan.pending_page,
            self.scan.accounts_max
        )?;
        write!(f, "faults:   {}", {
            let names = self.faults();
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        })
    }
}
