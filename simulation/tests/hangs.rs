//! Hung nodes: a node that stops processing while its links stay up is dropped by its peers'
//! failure detectors, its accounts move, and when it resumes it rejoins; every seed keeps its
//! invariants.

use simulation::{options_of, run_passing};

/// Seeds run.
const SEEDS: u64 = 40;
/// Client operations per seed.
const OPS: u64 = 1_000;

#[test]
fn hung_nodes_are_dropped_and_rejoin_and_every_seed_still_passes() {
    // Proves the failure detection of the node crate, run by the simulator on every node, drops
    // a hung member and brings it back (it finds it was stopped, or is told, and rejoins), and
    // that neither the hang nor the moves it causes break an invariant: with three nodes and a
    // hang every ~2 s as long as three failure timeouts (on top of each seed's own faults).
    let (mut hangs, mut drops, mut rejoins) = (0, 0, 0);
    let mut seeds_with_drops = 0;
    for seed in 0..SEEDS {
        let mut opts = options_of(seed, OPS);
        opts.nodes = 3;
        opts.hang_every_ms = 2_000;
        opts.hang_max_ms = 3 * opts.failure_timeout_ms;
        let stats = run_passing(seed, opts, "hangs");
        hangs += stats.hangs;
        drops += stats.drops;
        rejoins += stats.rejoins;
        seeds_with_drops += u64::from(stats.drops > 0);
    }
    println!("{hangs} hangs, {drops} drops, {rejoins} rejoins; drops in {seeds_with_drops} of {SEEDS} seeds");
    assert!(
        seeds_with_drops * 2 > SEEDS,
        "members dropped in only {seeds_with_drops} of {SEEDS} seeds"
    );
    assert!(rejoins > 0, "{hangs} hangs, {drops} drops, no rejoin");
}
