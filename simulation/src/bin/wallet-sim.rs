//! `wallet-sim`: runs the deterministic simulator for one seed or a swarm of seeds.
//!
//! Exit codes: 0 every run passed; 1 an invariant was violated; 3 a liveness failure (a
//! pending transfer never settled after healing, or a phase got stuck); 4 the code under test
//! crashed (an assertion fired); 2 bad usage. For a swarm, the code is that of the lowest
//! failing seed.

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use simulation::check::FailureKind;
use simulation::{run, Report, RunConfig, OPS_DEFAULT};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "wallet-sim",
    version,
    about = "Deterministic simulation of a wallet cluster under faults"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one seed: print the options it drew, a summary and the trace hash.
    Run {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Client operations in the safety phase.
        #[arg(long, default_value_t = OPS_DEFAULT)]
        ops: u64,
        /// Print the event log.
        #[arg(long)]
        trace: bool,
        /// Plant a known bug (builds with the planted-bugs feature only).
        #[arg(long)]
        plant: Option<String>,
    },
    /// Run a range of seeds (`N..M`, M excluded) in parallel, with a progress bar.
    Swarm {
        /// Seeds, as `N..M`.
        #[arg(long)]
        seeds: String,
        /// Client operations per seed.
        #[arg(long, default_value_t = OPS_DEFAULT)]
        ops: u64,
        /// Worker threads (default: one per core).
        #[arg(long)]
        jobs: Option<usize>,
        /// Stop at the first failure.
        #[arg(long)]
        fail_fast: bool,
        /// Plant a known bug (builds with the planted-bugs feature only).
        #[arg(long)]
        plant: Option<String>,
    },
}

fn exit_code(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::Correctness => 1,
        FailureKind::Liveness => 3,
        FailureKind::Crash => 4,
    }
}

fn plant(name: Option<&str>) -> Result<(), String> {
    let Some(name) = name else { return Ok(()) };
    let bug = node::ledger::planted::Bug::from_name(name).ok_or_else(|| {
        let all: Vec<&str> = node::ledger::planted::Bug::ALL
            .iter()
            .map(|b| b.name())
            .collect();
        format!("unknown bug {name:?}; known: {}", all.join(", "))
    })?;
    #[cfg(feature = "planted-bugs")]
    {
        node::ledger::planted::plant(Some(bug));
        Ok(())
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        Err(format!(
            "cannot plant {bug}: build with --features planted-bugs"
        ))
    }
}

/// The `--plant` flag to repeat in a replay command.
fn plant_flag(bug: Option<&str>) -> String {
    bug.map(|b| format!(" --plant {b}")).unwrap_or_default()
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("seeds must be N..M, got {s:?}"))?;
    let a: u64 = a.trim().parse().map_err(|_| format!("bad seed {a:?}"))?;
    let b: u64 = b.trim().parse().map_err(|_| format!("bad seed {b:?}"))?;
    if a >= b {
        return Err(format!("empty seed range {a}..{b}"));
    }
    Ok((a, b))
}

fn print_summary(r: &Report) {
    let s = &r.stats;
    println!(
        "summary: {} ops ({} requests): {} acknowledged, {} refused, {} unknown; transfers {} completed, {} failed",
        s.ops, s.requests, s.acked, s.refused, s.unknown, s.completed, s.failed
    );
    println!(
        "         holds {} created: {} captured, {} voided, {} expired; disbursements {}: {} completed, {} failed",
        s.holds[0], s.holds[1], s.holds[2], s.holds[3], s.disbursements[0], s.disbursements[1], s.disbursements[2]
    );
    println!(
        "         hot account: {} debits tried again on their shard, {} moves between shards ({} completed)",
        s.gathers, s.moves[0], s.moves[1]
    );
    println!(
        "         {} commits, {} activations, {} fenced batches, {} failed batches; storage {} attempts, {} faults, {} conflicts detected, {} leases moved between attempts, {} outages",
        s.commits, s.activations, s.fenced, s.failed_batches, s.attempts, s.storage_faults, s.storage_conflicts, s.leases_moved, s.outages
    );
    println!(
        "         {} messages ({} lost, {} duplicated); {} crashes, {} partitions, {} passivations, {} membership changes",
        s.messages, s.lost, s.duplicated, s.crashes, s.partitions, s.passivations, s.churns
    );
    println!(
        "         {} hangs, {} members dropped for silence, {} rejoins",
        s.hangs, s.drops, s.rejoins
    );
    println!(
        "         {} groups of {} batches ({:.2} per group), {} batches refused by a full commit queue",
        s.groups,
        s.grouped_batches,
        s.grouped_batches as f64 / s.groups.max(1) as f64,
        s.commit_queue_full
    );
    println!(
        "         {} evictions, {} commands moved, {} lease checks by the sweep, {} reads of settled transfers, {} stream deliveries",
        s.evictions, s.moved, s.lease_reads, s.settled_reads, s.streamed
    );
    println!(
        "         {} of {} corruptions shown to the audit; {} events; simulated {} ms of safety phase, {} ms of liveness phase",
        s.corruptions.count_ones(),
        simulation::check::audit_self::corruption_names().len(),
        r.events,
        s.safety_ms,
        s.liveness_ms
    );
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            seed,
            ops,
            trace,
            plant: bug,
        } => {
            if let Err(e) = plant(bug.as_deref()) {
                eprintln!("wallet-sim: {e}");
                return ExitCode::from(2);
            }
            simulation::quiet_panics();
            let started = Instant::now();
            let r = run(
                seed,
                &RunConfig {
                    ops,
                    keep_trace: trace,
                },
            );
            let took = started.elapsed();
            if let Some(lines) = &r.trace {
                for l in lines {
                    println!("{l}");
                }
            }
            println!("seed {seed}");
            println!("{}", r.options);
            print_summary(&r);
            println!("trace hash: {:016x}", r.trace_hash);
            eprintln!("wall time: {:.3} s", took.as_secs_f64());
            match &r.failure {
                None => {
                    println!("result: PASS");
                    ExitCode::SUCCESS
                }
                Some(f) => {
                    println!(
                        "result: FAIL ({:?}) at {} ms: {}: {}",
                        f.kind, f.at_ms, f.check, f.message
                    );
                    println!(
                        "replay: {}{}",
                        r.replay_command(),
                        plant_flag(bug.as_deref())
                    );
                    ExitCode::from(exit_code(f.kind))
                }
            }
        }
        Cmd::Swarm {
            seeds,
            ops,
            jobs,
            fail_fast,
            plant: bug,
        } => {
            let (from, to) = match parse_range(&seeds) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("wallet-sim: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = plant(bug.as_deref()) {
                eprintln!("wallet-sim: {e}");
                return ExitCode::from(2);
            }
            simulation::quiet_panics();
            let jobs = jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1);
            let bar = ProgressBar::new(to - from);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} seeds, {elapsed} elapsed, eta {eta} {msg}",
                )
                .expect("valid template"),
            );
            let next = AtomicU64::new(from);
            let failures: Mutex<Vec<Report>> = Mutex::new(Vec::new());
            let ops_done = AtomicU64::new(0);
            let busy_ns = AtomicU64::new(0);
            let stop = std::sync::atomic::AtomicBool::new(false);
            let finished = AtomicU64::new(0);
            let started = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..jobs {
                    s.spawn(|| {
                        let _ = plant(bug.as_deref());
                        loop {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            let seed = next.fetch_add(1, Ordering::Relaxed);
                            if seed >= to {
                                return;
                            }
                            let t = Instant::now();
                            let r = run(
                                seed,
                                &RunConfig {
                                    ops,
                                    keep_trace: false,
                                },
                            );
                            busy_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                            ops_done.fetch_add(r.stats.ops, Ordering::Relaxed);
                            if let Some(f) = &r.failure {
                                bar.println(format!(
                                    "seed {seed}: FAIL ({:?}) {}: {}\n  replay: {}{}",
                                    f.kind,
                                    f.check,
                                    f.message,
                                    r.replay_command(),
                                    plant_flag(bug.as_deref())
                                ));
                                failures.lock().expect("no panic holds it").push(r);
                                if fail_fast {
                                    stop.store(true, Ordering::Relaxed);
                                }
                            }
                            finished.fetch_add(1, Ordering::Relaxed);
                            bar.inc(1);
                            let n = failures.lock().expect("no panic holds it").len();
                            if n > 0 {
                                bar.set_message(format!("{n} failed"));
                            }
                        }
                    });
                }
            });
            bar.finish_and_clear();
            let wall = started.elapsed();
            let mut failures = failures.into_inner().expect("no panic holds it");
            failures.sort_by_key(|r| r.seed);
            let ran = finished.load(Ordering::Relaxed);
            let ops_total = ops_done.load(Ordering::Relaxed);
            let core_s = Duration::from_nanos(busy_ns.load(Ordering::Relaxed)).as_secs_f64();
            println!(
                "swarm {from}..{to}: {ran} seeds run, {} failed, in {:.1} s on {jobs} thread(s)",
                failures.len(),
                wall.as_secs_f64()
            );
            println!(
                "speed: {ops_total} client operations, {:.0} simulated operations per core-second ({:.3} s per seed per core)",
                ops_total as f64 / core_s.max(1e-9),
                core_s / ran.max(1) as f64
            );
            for r in &failures {
                let f = r.failure.as_ref().expect("failures have one");
                println!(
                    "FAIL seed {} ({:?}) {}: {}",
                    r.seed, f.kind, f.check, f.message
                );
                println!(
                    "  replay: {}{}",
                    r.replay_command(),
                    plant_flag(bug.as_deref())
                );
            }
            match failures.first().and_then(|r| r.failure.as_ref()) {
                None => ExitCode::SUCCESS,
                Some(f) => ExitCode::from(exit_code(f.kind)),
            }
        }
    }
}
