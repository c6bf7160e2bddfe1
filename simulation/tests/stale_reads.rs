//! Stale reads: with read versions a few commits behind the newest (FoundationDB transactions
//! that overlap), the store detects real conflicts and every seed still keeps its invariants.

use simulation::{options_of, run_passing};

/// Seeds run.
const SEEDS: u64 = 40;
/// Client operations per seed.
const OPS: u64 = 1_000;
/// Share of read-write attempts that draw a stale read version.
const STALE_READ_PPM: u32 = 500_000;

#[test]
fn stale_reads_conflict_for_real_and_every_seed_still_passes() {
    // Proves the ledger's transaction bodies are safe under FoundationDB's optimistic
    // concurrency: with half the read-write attempts reading up to 8 commits behind (on top of
    // each seed's own faults), the store detects real conflicts in most seeds, the Store loop
    // retries them, every seed runs its operations, and no checker finds a violation.
    let mut conflicts = 0;
    let mut seeds_with_conflicts = 0;
    for seed in 0..SEEDS {
        let mut opts = options_of(seed, OPS);
        opts.stale_read_ppm = STALE_READ_PPM;
        let stats = run_passing(seed, opts, "stale reads");
        conflicts += stats.storage_conflicts;
        seeds_with_conflicts += u64::from(stats.storage_conflicts > 0);
    }
    println!("{conflicts} conflicts detected, in {seeds_with_conflicts} of {SEEDS} seeds");
    assert!(
        seeds_with_conflicts * 2 > SEEDS,
        "conflicts in only {seeds_with_conflicts} of {SEEDS} seeds"
    );
}
