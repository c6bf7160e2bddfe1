//! The CI sweep: 200 seeds of 1,000 client operations each must all pass.

use simulation::{run, RunConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Seeds the sweep runs.
const SEEDS: u64 = 200;

#[test]
fn sweep_200_seeds_of_1000_ops_find_no_failure() {
    // Proves the core and the account driver keep every invariant under every swarm of faults
    // these seeds draw, that each seed really runs its 1,000 operations, and that the driver's
    // rarer paths are among what ran.
    simulation::quiet_panics();
    let next = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    let ops = AtomicU64::new(0);
    // How often the driver's rarer paths ran, summed over the seeds.
    let exercised: Mutex<[u64; 19]> = Mutex::new([0; 19]);
    // The corruptions the audit was shown (a mask per seed, united).
    let corruptions = AtomicU64::new(0);
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                // The first failure ends the sweep: one failing seed is the verdict, and its
                // replay line says how to look at it.
                if seed >= SEEDS || !failures.lock().unwrap().is_empty() {
                    return;
                }
                let r = run(seed, &RunConfig::default());
                assert_eq!(r.stats.ops, 1_000, "seed {seed} ran its operations");
                ops.fetch_add(r.stats.ops, Ordering::Relaxed);
                let st = &r.stats;
                corruptions.fetch_or(st.corruptions, Ordering::Relaxed);
                let mut e = exercised.lock().unwrap();
                for (sum, n) in e.iter_mut().zip([
                    st.fenced,
                    st.evictions,
                    st.moved,
                    st.passivations,
                    st.streamed,
                    st.lease_reads,
                    st.settled_reads,
                    st.completed,
                    st.grouped_batches - st.groups,
                    st.fenced_in_group,
                    st.commit_queue_full,
                    st.leases_moved,
                    st.holds[1],
                    st.holds[2],
                    st.holds[3],
                    st.disbursements[1],
                    st.disbursements[2],
                    st.gathers,
                    st.moves[1],
                ]) {
                    *sum += n;
                }
                drop(e);
                if let Some(f) = r.failure {
                    failures.lock().unwrap().push(format!(
                        "seed {seed}: {:?} {}: {}\n  replay: wallet-sim run --seed {seed} --trace",
                        f.kind, f.check, f.message
                    ));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(ops.load(Ordering::Relaxed), SEEDS * 1_000);
    // The seeds exercise the driver's rarer paths, so passing them means something: fenced
    // activations stepping aside, evictions, commands answered `Moved` and routed again,
    // passivations and drains, stream deliveries, the sweep's lease checks of activations
    // that do not know a pending transfer, the reads that answer the waiters of transfers
    // settled in a commit whose result was unknown, and transfers that completed (every
    // transfer failing is a valid history under faults, but not of all 200 seeds), groups of
    // several batches, a batch fenced in a group whose other batches committed, and batches
    // handed back by a full commit queue, and leases that moved between two attempts of one
    // transaction; and holds that ended captured, voided and expired, and disbursements that
    // completed and failed; and debits of the hot account sent again to a short shard, and
    // moves of money between its shards that completed.
    let e = exercised.into_inner().unwrap();
    let names = [
        "fenced",
        "evictions",
        "moved",
        "passivations",
        "streamed",
        "lease checks",
        "settled-transfer reads",
        "completed transfers",
        "batches sharing a group",
        "batches fenced alone in a group",
        "full commit queues",
        "leases moved between attempts",
        "captured holds",
        "voided holds",
        "expired holds",
        "completed disbursements",
        "failed disbursements",
        "debits tried again on a shard",
        "moves between shards",
    ];
    for (name, n) in names.iter().zip(e) {
        assert!(n > 0, "no seed exercised {name}: {e:?}");
    }
    // Every corruption of the audit's own check applied to some seed's real ledger.
    let shown = corruptions.load(Ordering::Relaxed);
    let missing: Vec<&str> = simulation::check::audit_self::corruption_names()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| shown & (1 << i) == 0)
        .map(|(_, n)| n)
        .collect();
    assert!(
        missing.is_empty(),
        "no seed's ledger let the audit be shown: {missing:?}"
    );
}
