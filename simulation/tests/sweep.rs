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
    let exercised: Mutex<[u64; 5]> = Mutex::new([0; 5]);
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= SEEDS {
                    return;
                }
                let r = run(seed, &RunConfig::default());
                assert_eq!(r.stats.ops, 1_000, "seed {seed} ran its operations");
                ops.fetch_add(r.stats.ops, Ordering::Relaxed);
                let st = &r.stats;
                let mut e = exercised.lock().unwrap();
                for (sum, n) in e.iter_mut().zip([
                    st.fenced,
                    st.evictions,
                    st.moved,
                    st.passivations,
                    st.streamed,
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
    // passivations and drains, and stream deliveries.
    let e = exercised.into_inner().unwrap();
    let names = ["fenced", "evictions", "moved", "passivations", "streamed"];
    for (name, n) in names.iter().zip(e) {
        assert!(n > 0, "no seed exercised {name}: {e:?}");
    }
}
