//! `walletctl bench`: opens and funds accounts, then drives random transfers from worker threads
//! and reports throughput and latency.
//!
//! Each worker has its own ureq agent, so each keeps its own connection alive. Every transfer
//! has a fresh idempotency key and is sent once: the bench measures the node, not the client's
//! retries, and counts a 503 or a lost answer as an unknown outcome. Latencies go into one
//! HDR histogram per worker (microseconds, 3 significant digits, up to [`LATENCY_MAX_US`]),
//! merged at the end: memory is fixed whatever the run's length.
//!
//! Closed loop (the default): each worker sends its next request when the previous one is
//! answered. Open loop (`--rate R`): requests are scheduled at a constant rate, R per second
//! in all, and the workers take the schedule's slots in turn; a request's latency counts from
//! its scheduled send time, so time spent waiting for a free worker (queueing) is counted,
//! not hidden. The workers are the most requests in flight at once.

use crate::client::{CliError, Client, ATTEMPTS, REQUEST_TIMEOUT};
use crate::commands::{transfer_outcome, Ctx, Failure};
use crate::output;
use crate::rng;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use protocol::api::{
    AccountView, BatchResult, BatchTransferItem, BatchTransfersResponse, Movement, MovementView,
    OpenAccount, TransferRequest, TransferStatus, TransferView, BATCH_TRANSFERS_MAX,
    TRANSFER_WAIT_MS_DEFAULT, TRANSFER_WAIT_MS_MAX,
};
use protocol::{AccountId, Amount, Currency, IdempotencyKey};
use rand::Rng as _;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest latency the histograms record, in microseconds (an hour); longer ones count as it.
pub const LATENCY_MAX_US: u64 = 3_600_000_000;

/// Most requests per second of an open-loop run.
pub const BENCH_RATE_MAX: u64 = 1_000_000;

/// Most accounts a bench opens.
pub const BENCH_ACCOUNTS_MAX: u64 = 1_000_000;

/// Most worker threads.
pub const BENCH_CONCURRENCY_MAX: u64 = 1_024;

/// Longest run, in seconds (a day).
pub const BENCH_DURATION_MAX_S: u64 = 86_400;

/// Largest amount of one bench transfer; amounts are drawn from 1 to this.
pub const TRANSFER_AMOUNT_MAX: u64 = 100;

/// Extra time a worker waits beyond `wait_ms` for a transfer's answer.
const TRANSFER_TIMEOUT_MARGIN: Duration = Duration::from_secs(10);

/// Progress redraw period, and the window of the live rate (four periods).
const TICK: Duration = Duration::from_millis(250);

/// `bench` arguments, as typed.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct BenchArgs {
    /// Accounts to open for this run, named `bench-<runid>-<i>` (at least 2).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub accounts: u64,
    /// Seconds of transfers.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub duration: u64,
    /// Worker threads, each with its own connection.
    #[arg(long, default_value_t = 4, value_name = "C")]
    pub concurrency: u64,
    /// Stop after this many transfers in total, if sooner than --duration.
    #[arg(long, value_name = "TOTAL")]
    pub count: Option<u64>,
    /// Currency of the accounts.
    #[arg(long, default_value = "EUR", value_name = "CUR")]
    pub currency: String,
    /// Minor units deposited into each account before the run.
    #[arg(long, default_value_t = 1_000_000, value_name = "B")]
    pub initial_balance: u64,
    /// Seed of the workload (which accounts, which amounts); random when absent.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// wait_ms sent with each transfer (the node's default when absent).
    #[arg(long, value_name = "MS")]
    pub wait_ms: Option<u64>,
    /// Transfers per request through POST /v1/transfers/batch (1 to 8190); without it, one
    /// transfer per request through POST /v1/transfers.
    #[arg(long, value_name = "N")]
    pub batch: Option<u64>,
    /// Open loop: send R requests per second in all, on a fixed schedule, and count each
    /// latency from its scheduled send time; without it, each worker sends when answered.
    #[arg(long, value_name = "R")]
    pub rate: Option<u64>,
    /// A hot account (opened beforehand, in the bench's currency) that receives
    /// --hot-share percent of the transfers, from the bench's own accounts.
    #[arg(long, value_name = "ID")]
    pub hot: Option<String>,
    /// Percent of the transfers paid into the --hot account (1 to 100).
    #[arg(long, default_value_t = 50, value_name = "PCT", requires = "hot")]
    pub hot_share: u64,
}

/// A validated bench.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Accounts to open.
    pub accounts: u64,
    /// Length of the transfer phase.
    pub duration: Duration,
    /// Worker threads.
    pub concurrency: u64,
    /// Transfer budget, if any.
    pub count: Option<u64>,
    /// Currency.
    pub currency: Currency,
    /// Initial deposit per account.
    pub initial_balance: Amount,
    /// Workload seed.
    pub seed: u64,
    /// `wait_ms` of each transfer.
    pub wait_ms: Option<u64>,
    /// Transfers per batch request (`None`: one per request, on the single route).
    pub batch: Option<u64>,
    /// Open-loop requests per second (`None`: closed loop).
    pub rate: Option<u64>,
    /// The hot account and the percent of transfers paid into it.
    pub hot: Option<(AccountId, u64)>,
}

impl BenchArgs {
    /// Checks every bound; `seed_if_absent` fills a missing `--seed`.
    pub fn validate(&self, seed_if_absent: u64) -> Result<Plan, CliError> {
        let usage = |m: String| Err(CliError::Usage(m));
        if !(2..=BENCH_ACCOUNTS_MAX).contains(&self.accounts) {
            return usage(format!(
                "--accounts {}: a bench needs 2 to {BENCH_ACCOUNTS_MAX} accounts",
                self.accounts
            ));
        }
        if !(1..=BENCH_DURATION_MAX_S).contains(&self.duration) {
            return usage(format!(
                "--duration {}: give 1 to {BENCH_DURATION_MAX_S} seconds",
                self.duration
            ));
        }
        if !(1..=BENCH_CONCURRENCY_MAX).contains(&self.concurrency) {
            return usage(format!(
                "--concurrency {}: give 1 to {BENCH_CONCURRENCY_MAX} workers",
                self.concurrency
            ));
        }
        if self.count == Some(0) {
            return usage("--count 0: give at least 1 transfer".into());
        }
        if self.wait_ms.is_some_and(|w| w > TRANSFER_WAIT_MS_MAX) {
            return usage(format!("--wait-ms: at most {TRANSFER_WAIT_MS_MAX}"));
        }
        if self
            .batch
            .is_some_and(|b| !(1..=BATCH_TRANSFERS_MAX as u64).contains(&b))
        {
            return usage(format!(
                "--batch: give 1 to {BATCH_TRANSFERS_MAX} transfers per request"
            ));
        }
        if self
            .rate
            .is_some_and(|r| !(1..=BENCH_RATE_MAX).contains(&r))
        {
            return usage(format!(
                "--rate: give 1 to {BENCH_RATE_MAX} requests per second"
            ));
        }
        if !(1..=100).contains(&self.hot_share) {
            return usage(format!(
                "--hot-share {}: give 1 to 100 percent",
                self.hot_share
            ));
        }
        let hot = match &self.hot {
            Some(id) => Some((
                AccountId::new(id.as_str()).map_err(|m| CliError::Usage(format!("--hot: {m}")))?,
                self.hot_share,
            )),
            None => None,
        };
        let currency = Currency::new(&self.currency)
            .map_err(|m| CliError::Usage(format!("--currency: {m}")))?;
        let initial_balance = Amount::new(self.initial_balance)
            .map_err(|m| CliError::Usage(format!("--initial-balance: {m}")))?;
        Ok(Plan {
            accounts: self.accounts,
            duration: Duration::from_secs(self.duration),
            concurrency: self.concurrency,
            count: self.count,
            currency,
            initial_balance,
            seed: self.seed.unwrap_or(seed_if_absent),
            wait_ms: self.wait_ms,
            batch: self.batch,
            rate: self.rate,
            hot,
        })
    }
}

/// Latency figures of completed transfers, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum (exact, not sampled).
    pub max: f64,
    /// Samples the percentiles come from.
    pub samples: u64,
}

/// The bench's result; serialized as the `--json` output.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchReport {
    /// Names the accounts: `bench-<run_id>-<i>`.
    pub run_id: String,
    /// Workload seed (pass as --seed to replay the same choices).
    pub seed: u64,
    /// Accounts used.
    pub accounts: u64,
    /// Worker threads.
    pub concurrency: u64,
    /// Transfers per batch request (null: one per request).
    pub batch: Option<u64>,
    /// Open-loop requests per second (null: closed loop).
    pub rate: Option<u64>,
    /// The hot account (null without --hot).
    pub hot: Option<AccountId>,
    /// Percent of the transfers aimed at it.
    pub hot_share: Option<u64>,
    /// Transfers into it answered `completed`.
    pub hot_completed: u64,
    /// Seconds spent opening and funding accounts.
    pub setup_s: f64,
    /// Seconds of the transfer phase (wall time, until the last worker stopped).
    pub run_s: f64,
    /// Transfers sent.
    pub attempted: u64,
    /// Transfers answered `completed`.
    pub completed: u64,
    /// Transfers answered `pending` (not settled within wait_ms; they settle later).
    pub pending: u64,
    /// Transfers with an unknown outcome (503 or no answer).
    pub unknown: u64,
    /// Transfers refused or failed, by error code.
    pub failed: BTreeMap<String, u64>,
    /// Completed transfers per second of run time.
    pub transfers_per_s: f64,
    /// Latency of completed transfers (from the scheduled send time in an open loop); null
    /// when none completed.
    pub latency_ms: Option<Latency>,
    /// CPU this walletctl process used during the transfer phase, in cores (CPU seconds per
    /// second of run time), so a run shows whether the client was the bottleneck; null where
    /// the system does not say (outside Linux).
    pub client_cpu_cores: Option<f64>,
}

/// CPU seconds this process has used so far (user and system), from `/proc/self/stat`, whose
/// times are in clock ticks of 1/100 s on Linux; `None` elsewhere.
fn process_cpu_s() -> Option<f64> {
    /// Linux reports process times in ticks of this many per second to every program.
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / USER_HZ)
}

/// An empty latency histogram (microseconds, 1 to [`LATENCY_MAX_US`], 3 significant digits).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("valid histogram bounds")
}

/// Latency figures, in milliseconds, from per-worker histograms of microseconds.
pub fn latency(histograms: Vec<Histogram<u64>>) -> Option<Latency> {
    let mut all = histogram();
    for h in histograms {
        all.add(h).expect("histograms of the same bounds add up");
    }
    if all.is_empty() {
        return None;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Some(Latency {
        p50: ms(all.value_at_quantile(0.50)),
        p99: ms(all.value_at_quantile(0.99)),
        p999: ms(all.value_at_quantile(0.999)),
        max: ms(all.max()),
        samples: all.len(),
    })
}

/// What one worker saw.
#[derive(Debug)]
struct WorkerStats {
    attempted: u64,
    completed: u64,
    hot_completed: u64,
    pending: u64,
    unknown: u64,
    failed: BTreeMap<String, u64>,
    latencies: Histogram<u64>,
    /// When the worker's last transfer was answered.
    finished: Instant,
}

/// Shared counters of the transfer phase.
struct Shared {
    /// Start of the transfer phase (the open loop's schedule counts from it).
    started: Instant,
    /// Open-loop slots taken.
    slots: AtomicU64,
    issued: AtomicU64,
    completed: AtomicU64,
    stop: AtomicBool,
}

/// `bench ...`.
pub fn run(ctx: &Ctx, args: &BenchArgs) -> Result<(), Failure> {
    let plan = args.validate(rng::os_u64())?;
    let run_id = run_id();
    let ids: Vec<AccountId> = (0..plan.accounts)
        .map(|i| AccountId::new(format!("bench-{run_id}-{i}")))
        .collect::<Result<_, _>>()
        .map_err(|m| CliError::Usage(format!("bench account id: {m}")))?;

    if let Some((hot, _)) = &plan.hot {
        check_hot(ctx, hot, plan.currency)?;
    }
    let setup_started = Instant::now();
    setup(ctx, &plan, &run_id, &ids)?;
    let setup_s = setup_started.elapsed().as_secs_f64();

    let cpu_before = process_cpu_s();
    let (stats, run_s) = transfers(ctx, &plan, &run_id, &ids)?;
    let client_cpu_cores = match (cpu_before, process_cpu_s()) {
        (Some(a), Some(b)) if run_s > 0.0 => Some((b - a) / run_s),
        _ => None,
    };
    let mut report = BenchReport {
        run_id,
        seed: plan.seed,
        accounts: plan.accounts,
        concurrency: plan.concurrency,
        batch: plan.batch,
        rate: plan.rate,
        hot: plan.hot.as_ref().map(|(h, _)| h.clone()),
        hot_share: plan.hot.as_ref().map(|(_, s)| *s),
        hot_completed: 0,
        setup_s,
        run_s,
        attempted: 0,
        completed: 0,
        pending: 0,
        unknown: 0,
        failed: BTreeMap::new(),
        transfers_per_s: 0.0,
        latency_ms: None,
        client_cpu_cores,
    };
    let mut histograms = Vec::new();
    for s in stats {
        report.attempted += s.attempted;
        report.completed += s.completed;
        report.hot_completed += s.hot_completed;
        report.pending += s.pending;
        report.unknown += s.unknown;
        for (code, n) in s.failed {
            *report.failed.entry(code).or_insert(0) += n;
        }
        histograms.push(s.latencies);
    }
    report.transfers_per_s = if run_s > 0.0 {
        report.completed as f64 / run_s
    } else {
        0.0
    };
    report.latency_ms = latency(histograms);
    if ctx.json {
        output::json(&report)?;
    } else {
        output::line(render(&report, &plan))?;
    }
    if report.attempted > 0 && report.completed == 0 {
        return Err(CliError::Failed {
            code: "bench_failed",
            message: format!(
                "none of the {} transfers completed; see the failures above",
                report.attempted
            ),
        }
        .into());
    }
    Ok(())
}

/// Refuses a --hot account that is not opened, or not in the bench's currency: the bench
/// pays into it but does not open it (it may have been opened with settings of its own).
fn check_hot(ctx: &Ctx, hot: &AccountId, currency: Currency) -> Result<(), CliError> {
    let view: protocol::api::AccountView = ctx.client.get(&format!("/v1/accounts/{hot}")).map_err(|e| match e {
        CliError::Api { error } if error.code == protocol::ErrorCode::AccountNotFound => {
            CliError::Usage(format!(
                "--hot {hot}: no such account; open it first (walletctl account open {hot} --currency {currency})"
            ))
        }
        e => e,
    })?;
    if view.currency != currency {
        return Err(CliError::Usage(format!(
            "--hot {hot} holds {}, the bench's accounts {currency} (--currency)",
            view.currency
        )));
    }
    Ok(())
}

/// A run id unique enough for account names: seconds since the epoch and 32 random bits, hex.
fn run_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{secs:x}{:08x}", rng::os_u64() & 0xffff_ffff)
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(TICK);
    bar
}

/// Opens and funds every account, spread over the workers. Keys are derived from the run id,
/// so the client's retries of a setup request are safe.
fn setup(ctx: &Ctx, plan: &Plan, run_id: &str, ids: &[AccountId]) -> Result<(), CliError> {
    let bar = bar(
        plan.accounts,
        "setup [{bar:30}] {pos}/{len} accounts opened and funded ({elapsed})",
    );
    let failed = AtomicBool::new(false);
    let workers = plan.concurrency.min(plan.accounts) as usize;
    let result = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (bar, failed) = (&bar, &failed);
                s.spawn(move || -> Result<(), CliError> {
                    let client = ctx.client.fresh()?;
                    for (i, id) in ids.iter().enumerate().skip(w).step_by(workers) {
                        if failed.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let r = open_and_fund(&client, plan, run_id, i, id);
                        if r.is_err() {
                            failed.store(true, Ordering::Relaxed);
                            return r;
                        }
                        bar.inc(1);
                    }
                    Ok(())
                })
            })
            .collect();
        let mut first_err = None;
        for h in handles {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(CliError::Usage("a setup worker panicked".into())));
            if let (Err(e), None) = (r, &first_err) {
                first_err = Some(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    });
    bar.finish_and_clear();
    result
}

fn open_and_fund(
    client: &Client,
    plan: &Plan,
    run_id: &str,
    i: usize,
    id: &AccountId,
) -> Result<(), CliError> {
    let open = OpenAccount {
        id: id.clone(),
        currency: plan.currency,
        shards: None,
    };
    let key = format!("bench-{run_id}-{i}-open");
    let _: AccountView = client
        .post_raw("/v1/accounts", &open, &key, REQUEST_TIMEOUT, ATTEMPTS)?
        .into_result()?;
    let deposit = Movement {
        account: id.clone(),
        amount: plan.initial_balance,
        reference: Some(format!("bench {run_id} initial balance")),
    };
    let key = format!("bench-{run_id}-{i}-deposit");
    let _: MovementView = client
        .post_raw("/v1/deposits", &deposit, &key, REQUEST_TIMEOUT, ATTEMPTS)?
        .into_result()?;
    Ok(())
}

/// Runs the workers until the deadline or the budget; returns their stats and the wall time.
fn transfers(
    ctx: &Ctx,
    plan: &Plan,
    run_id: &str,
    ids: &[AccountId],
) -> Result<(Vec<WorkerStats>, f64), CliError> {
    let started = Instant::now();
    let shared = Shared {
        started,
        slots: AtomicU64::new(0),
        issued: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    };
    let progress = bar(1000, "run [{bar:30}] {msg}");
    progress.disable_steady_tick();
    let deadline = started + plan.duration;
    let result = std::thread::scope(|s| {
        let handles: Vec<_> = (0..plan.concurrency)
            .map(|w| {
                let shared = &shared;
                s.spawn(move || worker(ctx, plan, run_id, ids, w, deadline, shared))
            })
            .collect();
        // The main thread draws progress while the workers run.
        let mut window: VecDeque<(Instant, u64)> = VecDeque::new();
        while handles.iter().any(|h| !h.is_finished()) {
            let now = Instant::now();
            let done = shared.completed.load(Ordering::Relaxed);
            window.push_back((now, done));
            if window.len() > 4 {
                window.pop_front();
            }
            let rate = match (window.front(), window.back()) {
                (Some(&(t0, c0)), Some(&(t1, c1))) if t1 > t0 => {
                    (c1 - c0) as f64 / (t1 - t0).as_secs_f64()
                }
                _ => 0.0,
            };
            let elapsed = now - started;
            let mut frac = elapsed.as_secs_f64() / plan.duration.as_secs_f64();
            if let Some(c) = plan.count {
                frac = frac.max(shared.issued.load(Ordering::Relaxed) as f64 / c as f64);
            }
            progress.set_position((frac.min(1.0) * 1000.0) as u64);
            progress.set_message(format!(
                "{}s/{}s  {done} completed  {rate:.0} transfers/s",
                elapsed.as_secs(),
                plan.duration.as_secs()
            ));
            std::thread::sleep(TICK);
        }
        let mut stats = Vec::new();
        let mut first_err = None;
        for h in handles {
            match h.join() {
                Ok(Ok(s)) => stats.push(s),
                Ok(Err(e)) => first_err = first_err.or(Some(e)),
                Err(_) => {
                    first_err =
                        first_err.or(Some(CliError::Usage("a bench worker panicked".into())))
                }
            }
        }
        first_err.map_or(Ok(stats), Err)
    });
    progress.finish_and_clear();
    // Wall time until the last worker stopped, not until the progress loop noticed.
    result
        .map(|stats| {
            let end = stats.iter().map(|s| s.finished).max().unwrap_or(started);
            ((end - started).as_secs_f64(), stats)
        })
        .map(|(run_s, stats)| (stats, run_s))
}

fn worker(
    ctx: &Ctx,
    plan: &Plan,
    run_id: &str,
    ids: &[AccountId],
    w: u64,
    deadline: Instant,
    shared: &Shared,
) -> Result<WorkerStats, CliError> {
    let client = ctx.client.fresh()?;
    // Each worker's stream is fixed by the seed and its number, so --seed replays the workload.
    let mut rng = rng::seeded(plan.seed ^ w.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let n = ids.len() as u64;
    let wait = Duration::from_millis(plan.wait_ms.unwrap_or(TRANSFER_WAIT_MS_DEFAULT));
    let mut st = WorkerStats {
        attempted: 0,
        completed: 0,
        hot_completed: 0,
        pending: 0,
        unknown: 0,
        failed: BTreeMap::new(),
        latencies: histogram(),
        finished: Instant::now(),
    };
    loop {
        if shared.stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            break;
        }
        let per_request = plan.batch.unwrap_or(1);
        let nth = shared.issued.fetch_add(per_request, Ordering::Relaxed);
        let mut k = per_request;
        if let Some(c) = plan.count {
            if nth >= c {
                shared.stop.store(true, Ordering::Relaxed);
                break;
            }
            k = k.min(c - nth);
        }
        let mut items = Vec::with_capacity(k as usize);
        for _ in 0..k {
            let from = rng.random_range(0..n);
            let mut to = rng.random_range(0..n - 1);
            if to >= from {
                to += 1;
            }
            let hot = plan
                .hot
                .as_ref()
                .filter(|(_, share)| rng.random_range(0..100) < *share)
                .map(|(h, _)| h.clone());
            let amount = Amount::new(rng.random_range(1..=TRANSFER_AMOUNT_MAX))
                .map_err(|m| CliError::Usage(format!("bench amount: {m}")))?;
            let key = format!("bench-{run_id}-w{w}-{}", st.attempted);
            st.attempted += 1;
            items.push(BatchTransferItem {
                from: ids[from as usize].clone(),
                to: hot.unwrap_or_else(|| ids[to as usize].clone()),
                amount,
                reference: None,
                idempotency_key: Some(
                    IdempotencyKey::new(key)
                        .map_err(|m| CliError::Usage(format!("bench key: {m}")))?,
                ),
            });
        }
        // Closed loop: now. Open loop: the next slot of the schedule, waited for if ahead.
        let t0 = match plan.rate {
            None => Instant::now(),
            Some(r) => {
                let slot = shared.slots.fetch_add(1, Ordering::Relaxed);
                let at = shared.started + Duration::from_secs_f64(slot as f64 / r as f64);
                if at >= deadline {
                    st.attempted -= k;
                    break;
                }
                if let Some(ahead) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(ahead);
                }
                at
            }
        };
        let outcomes = if plan.batch.is_some() {
            send_batch(&client, plan, items, wait)?
        } else {
            let item = items.pop().expect("one transfer");
            let key = item.idempotency_key.expect("a key").as_str().to_owned();
            let body = TransferRequest {
                from: item.from,
                to: item.to,
                amount: item.amount,
                reference: None,
                wait_ms: plan.wait_ms,
            };
            let timeout = wait + TRANSFER_TIMEOUT_MARGIN;
            vec![client
                .post_raw("/v1/transfers", &body, &key, timeout, 1)
                .and_then(transfer_outcome)
                .map_err(Miss::from)]
        };
        let us = t0.elapsed().as_micros() as u64;
        for outcome in outcomes {
            match outcome {
                Ok(v) => match v.status {
                    TransferStatus::Completed => {
                        st.completed += 1;
                        if plan.hot.as_ref().is_some_and(|(h, _)| *h == v.to) {
                            st.hot_completed += 1;
                        }
                        shared.completed.fetch_add(1, Ordering::Relaxed);
                        st.latencies.saturating_record(us.max(1));
                    }
                    TransferStatus::Pending => st.pending += 1,
                    TransferStatus::Failed => {
                        let code = v.reason.map_or("failed", |r| r.as_str());
                        *st.failed.entry(code.to_owned()).or_insert(0) += 1;
                    }
                },
                Err(m) if m.unknown => st.unknown += 1,
                Err(m) => *st.failed.entry(m.code).or_insert(0) += 1,
            }
        }
    }
    st.finished = Instant::now();
    Ok(st)
}

/// A transfer that did not come back as a transfer: whether its outcome is unknown, and the
/// error's code.
struct Miss {
    unknown: bool,
    code: String,
}

impl From<CliError> for Miss {
    fn from(e: CliError) -> Self {
        Miss {
            unknown: e.outcome_unknown(),
            code: e.code().to_owned(),
        }
    }
}

/// Sends one batch request; one outcome per item (a request that failed as a whole gives its
/// error to every item).
fn send_batch(
    client: &Client,
    plan: &Plan,
    items: Vec<BatchTransferItem>,
    wait: Duration,
) -> Result<Vec<Result<TransferView, Miss>>, CliError> {
    let k = items.len();
    // The route's body (`BatchTransfersRequest`), serialized straight from the items.
    #[derive(Serialize)]
    struct Body<'a> {
        transfers: &'a [BatchTransferItem],
        #[serde(skip_serializing_if = "Option::is_none")]
        wait_ms: Option<u64>,
    }
    let body = Body {
        transfers: &items,
        wait_ms: plan.wait_ms,
    };
    // The route reads each item's own key; the header only names the request.
    let key = items[0].idempotency_key.as_ref().map_or("", |k| k.as_str());
    let answer = client
        .post_raw(
            "/v1/transfers/batch",
            &body,
            key,
            wait + TRANSFER_TIMEOUT_MARGIN,
            1,
        )
        .and_then(|raw| raw.into_result::<BatchTransfersResponse>());
    Ok(match answer {
        Ok(r) if r.results.len() == k => r
            .results
            .into_iter()
            .map(|r| match r {
                BatchResult::Transfer(v) => Ok(v),
                BatchResult::Error { error } => Err(CliError::Api { error }.into()),
            })
            .collect(),
        Ok(r) => {
            return Err(CliError::BadResponse {
                url: "/v1/transfers/batch".into(),
                status: 200,
                detail: format!("{} results for {k} items", r.results.len()),
            })
        }
        Err(e) => {
            let (unknown, code) = (e.outcome_unknown(), e.code().to_owned());
            (0..k)
                .map(|_| {
                    Err(Miss {
                        unknown,
                        code: code.clone(),
                    })
                })
                .collect()
        }
    })
}

/// The human summary.
fn render(r: &BenchReport, plan: &Plan) -> String {
    let failed = if r.failed.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = r.failed.iter().map(|(c, n)| format!("{c} {n}")).collect();
        format!("  ({})", parts.join(", "))
    };
    let failed_total: u64 = r.failed.values().sum();
    let latency = match &r.latency_ms {
        None => "no completed transfer".to_owned(),
        Some(l) => format!(
            "p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  ({} completed transfers{})",
            l.p50,
            l.p99,
            l.p999,
            l.max,
            l.samples,
            if plan.rate.is_some() {
                ", from their scheduled send times"
            } else {
                ""
            }
        ),
    };
    let client_cpu = match r.client_cpu_cores {
        Some(c) => format!("{c:.2} cores"),
        None => "not known on this system".to_owned(),
    };
    let hot = match (&r.hot, r.hot_share) {
        (Some(h), Some(share)) => format!(
            "\nhot         {share}% of the transfers paid into {h}: {} completed, {:.1}/s",
            r.hot_completed,
            if r.run_s > 0.0 {
                r.hot_completed as f64 / r.run_s
            } else {
                0.0
            }
        ),
        _ => String::new(),
    };
    format!(
        "bench run {} (seed {}): {} accounts in {}, {} workers, {}\n\
         setup       {:.2} s (open and fund the accounts)\n\
         run         {:.2} s\n\
         attempted   {}\n\
         completed   {}\n\
         pending     {} (not settled within wait_ms; they settle later)\n\
         unknown     {} (503 or no answer)\n\
         failed      {failed_total}{failed}\n\
         throughput  {:.1} transfers/s (completed / run time)\n\
         latency     {latency}\n\
         client CPU  {client_cpu} (this walletctl during the run){hot}",
        r.run_id,
        r.seed,
        r.accounts,
        plan.currency,
        r.concurrency,
        match (plan.batch, plan.rate) {
            (Some(b), None) => format!("{b} transfers per request (batch route), closed loop"),
            (None, None) => "one transfer per request, closed loop".to_owned(),
            (Some(b), Some(r)) =>
                format!("{b} transfers per request (batch route), open loop at {r} requests/s"),
            (None, Some(r)) => {
                format!("one transfer per request, open loop at {r} requests/s")
            }
        },
        r.setup_s,
        r.run_s,
        r.attempted,
        r.completed,
        r.pending,
        r.unknown,
        r.transfers_per_s,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> BenchArgs {
        BenchArgs {
            accounts: 10,
            duration: 5,
            concurrency: 2,
            count: None,
            currency: "EUR".into(),
            initial_balance: 1_000,
            seed: None,
            wait_ms: None,
            batch: None,
            rate: None,
            hot: None,
            hot_share: 50,
        }
    }

    #[test]
    fn latency_merges_histograms_into_millisecond_figures() {
        // Proves per-worker histograms merge, quantiles and the maximum come out in ms within
        // the histogram's precision (3 significant digits), and no sample gives no figures.
        let mut a = histogram();
        let mut b = histogram();
        for us in 1..=5_000u64 {
            a.saturating_record(us);
        }
        for us in 5_001..=10_000u64 {
            b.saturating_record(us);
        }
        let l = latency(vec![a, b, histogram()]).unwrap();
        assert_eq!(l.samples, 10_000);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(l.p50, 5.0), "{l:?}");
        assert!(close(l.p99, 9.9), "{l:?}");
        assert!(close(l.p999, 9.99), "{l:?}");
        assert!(close(l.max, 10.0), "{l:?}");
        let mut huge = histogram();
        huge.saturating_record(u64::MAX);
        assert!(close(
            latency(vec![huge]).unwrap().max,
            LATENCY_MAX_US as f64 / 1000.0
        ));
        assert_eq!(latency(vec![histogram()]), None);
    }

    #[test]
    fn bench_arguments_are_validated() {
        // Proves each bound is enforced with a message naming the flag, and a good set passes.
        let plan = args().validate(42).unwrap();
        assert_eq!(plan.seed, 42);
        assert_eq!(plan.duration, Duration::from_secs(5));
        let cases: Vec<(BenchArgs, &str)> = vec![
            (
                BenchArgs {
                    accounts: 1,
                    ..args()
                },
                "--accounts",
            ),
            (
                BenchArgs {
                    duration: 0,
                    ..args()
                },
                "--duration",
            ),
            (
                BenchArgs {
                    concurrency: 0,
                    ..args()
                },
                "--concurrency",
            ),
            (
                BenchArgs {
                    concurrency: BENCH_CONCURRENCY_MAX + 1,
                    ..args()
                },
                "--concurrency",
            ),
            (
                BenchArgs {
                    count: Some(0),
                    ..args()
                },
                "--count",
            ),
            (
                BenchArgs {
                    currency: "euro".into(),
                    ..args()
                },
                "--currency",
            ),
            (
                BenchArgs {
                    initial_balance: 0,
                    ..args()
                },
                "--initial-balance",
            ),
            (
                BenchArgs {
                    batch: Some(0),
                    ..args()
                },
                "--batch",
            ),
            (
                BenchArgs {
                    batch: Some(BATCH_TRANSFERS_MAX as u64 + 1),
                    ..args()
                },
                "--batch",
            ),
            (
                BenchArgs {
                    rate: Some(0),
                    ..args()
                },
                "--rate",
            ),
            (
                BenchArgs {
                    rate: Some(BENCH_RATE_MAX + 1),
                    ..args()
                },
                "--rate",
            ),
            (
                BenchArgs {
                    wait_ms: Some(TRANSFER_WAIT_MS_MAX + 1),
                    ..args()
                },
                "--wait-ms",
            ),
        ];
        for (a, flag) in cases {
            let e = a.validate(1).unwrap_err();
            assert_eq!(e.code(), "invalid_argument");
            assert!(e.to_string().contains(flag), "{flag}: {e}");
        }
        assert_eq!(
            BenchArgs {
                seed: Some(9),
                ..args()
            }
            .validate(1)
            .unwrap()
            .seed,
            9
        );
    }

    #[test]
    fn run_ids_make_valid_distinct_account_names() {
        // Proves bench account names fit the account id rules and two runs do not collide.
        let (a, b) = (run_id(), run_id());
        assert_ne!(a, b);
        assert!(AccountId::new(format!("bench-{a}-{}", BENCH_ACCOUNTS_MAX - 1)).is_ok());
    }
}
