//! Prometheus metrics of a node, rendered as text for `GET /metrics`.
//!
//! Counters and histograms are atomics; the per-route request counts sit in a small map
//! behind a lock (routes are a fixed set of templates, so it is bounded).

use protocol::api::TransferStatus;
use protocol::ErrorCode;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum of observations, in millionths.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// Bucket bounds of latencies, in seconds.
pub const LATENCY_BOUNDS_S: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Bucket bounds of batch sizes.
pub const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Bucket bounds of the account batches per group.
pub const GROUP_BOUNDS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

impl Histogram {
    /// A histogram with these bucket bounds.
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add((v * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Gauges read at scrape time from the rest of the node.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    /// Active account actors.
    pub active_actors: u64,
    /// HTTP requests in progress (counted by admission control).
    pub http_inflight: u64,
    /// Unsettled transfers (pending index size, capped).
    pub pending_sagas: u64,
    /// Storage commits.
    pub commits: u64,
    /// Storage retries.
    pub retries: u64,
    /// Storage transactions that failed for good.
    pub storage_failures: u64,
}

/// Every metric of a node.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    /// HTTP request latency, seconds.
    pub request_latency: Histogram,
    /// Account activations.
    pub activations: Counter,
    /// Saga messages sent between accounts.
    pub saga_messages: Counter,
    /// Requests, WebSocket connections and frames refused by admission control.
    pub overloaded: Counter,
    /// Peers dropped from this node's ring for silence.
    pub peers_dropped: Counter,
    /// Rejoins of this node after its peers dropped it.
    pub rejoins: Counter,
    /// Transfers that completed.
    pub transfers_completed: Counter,
    /// Transfers that failed.
    pub transfers_failed: Counter,
    /// Inputs committed per account batch.
    pub batch_inputs: Histogram,
    /// Account batches committed per storage transaction (group commit).
    pub group_batches: Histogram,
    /// Duration of one group's storage transaction, retries included, seconds.
    pub group_commit_latency: Histogram,
    /// Open WebSocket connections.
    pub ws_connections: AtomicU64,
    /// Requests and WebSocket frames refused `unauthorized` (no or bad token).
    pub auth_unauthorized: Counter,
    /// Requests and WebSocket frames refused `forbidden` (scope or account not allowed).
    pub auth_forbidden: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            request_latency: Histogram::new(LATENCY_BOUNDS_S),
            activations: Counter::default(),
            saga_messages: Counter::default(),
            overloaded: Counter::default(),
            peers_dropped: Counter::default(),
            rejoins: Counter::default(),
            transfers_completed: Counter::default(),
            transfers_failed: Counter::default(),
            batch_inputs: Histogram::new(BATCH_BOUNDS),
            group_batches: Histogram::new(GROUP_BOUNDS),
            group_commit_latency: Histogram::new(LATENCY_BOUNDS_S),
            ws_connections: AtomicU64::new(0),
            auth_unauthorized: Counter::default(),
            auth_forbidden: Counter::default(),
        }
    }
}

impl Metrics {
    /// Counts one HTTP request by route template, method and status, and its latency.
    pub fn request(&self, route: &'static str, method: &'static str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((route, method, status))
            .or_default() += 1;
        self.request_latency.observe(seconds);
    }

    /// Counts a refusal by authentication (`unauthorized`) or authorization (`forbidden`).
    pub fn auth_refused(&self, code: ErrorCode) {
        match code {
            ErrorCode::Unauthorized => self.auth_unauthorized.inc(),
            ErrorCode::Forbidden => self.auth_forbidden.inc(),
            other => debug_assert!(false, "{other:?} is not an auth refusal"),
        }
    }

    /// Counts a settled transfer.
    pub fn transfers_settled(&self, status: TransferStatus) {
        match status {
            TransferStatus::Completed => self.transfers_completed.inc(),
            TransferStatus::Failed => self.transfers_failed.inc(),
            TransferStatus::Pending => {}
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, g: Gauges) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP wallet_http_requests_total HTTP requests by route, method and status.\n",
        );
        out.push_str("# TYPE wallet_http_requests_total counter\n");
        for ((route, method, status), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "wallet_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP wallet_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE wallet_http_request_duration_seconds histogram\n");
        self.request_latency
            .render(&mut out, "wallet_http_request_duration_seconds", "");
        out.push_str("# HELP wallet_batch_inputs Inputs committed per account batch.\n");
        out.push_str("# TYPE wallet_batch_inputs histogram\n");
        self.batch_inputs
            .render(&mut out, "wallet_batch_inputs", "");
        out.push_str(
            "# HELP wallet_group_batches Account batches committed per storage transaction.\n",
        );
        out.push_str("# TYPE wallet_group_batches histogram\n");
        self.group_batches
            .render(&mut out, "wallet_group_batches", "");
        out.push_str(
            "# HELP wallet_group_commit_seconds Duration of one group commit (its storage transaction, retries included).\n",
        );
        out.push_str("# TYPE wallet_group_commit_seconds histogram\n");
        self.group_commit_latency
            .render(&mut out, "wallet_group_commit_seconds", "");
        let counters = [
            (
                "wallet_activations_total",
                "Account actor activations.",
                self.activations.get(),
            ),
            (
                "wallet_saga_messages_total",
                "Saga messages sent between accounts.",
                self.saga_messages.get(),
            ),
            (
                "wallet_overloaded_total",
                "Requests, WebSocket connections and frames refused by admission control (503 overloaded).",
                self.overloaded.get(),
            ),
            (
                "wallet_peers_dropped_total",
                "Peers dropped from this node's ring after failure_timeout_ms of silence.",
                self.peers_dropped.get(),
            ),
            (
                "wallet_rejoins_total",
                "Times this node passivated its accounts and rejoined after its peers dropped it.",
                self.rejoins.get(),
            ),
            (
                "wallet_transfers_completed_total",
                "Transfers completed.",
                self.transfers_completed.get(),
            ),
            (
                "wallet_transfers_failed_total",
                "Transfers failed.",
                self.transfers_failed.get(),
            ),
            (
                "wallet_storage_commits_total",
                "Committed storage transactions.",
                g.commits,
            ),
            (
                "wallet_storage_retries_total",
                "Storage attempts retried.",
                g.retries,
            ),
            (
                "wallet_storage_failures_total",
                "Storage transactions failed after retries.",
                g.storage_failures,
            ),
        ];
        out.push_str("# HELP wallet_auth_refused_total Requests and WebSocket frames refused by token checks, by code.\n# TYPE wallet_auth_refused_total counter\n");
        for (code, n) in [
            ("unauthorized", self.auth_unauthorized.get()),
            ("forbidden", self.auth_forbidden.get()),
        ] {
            let _ = writeln!(out, "wallet_auth_refused_total{{code=\"{code}\"}} {n}");
        }
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let gauges = [
            (
                "wallet_active_actors",
                "Active account actors on this node.",
                g.active_actors,
            ),
            (
                "wallet_http_inflight",
                "HTTP requests in progress, against limits.http_inflight_max.",
                g.http_inflight,
            ),
            (
                "wallet_pending_sagas",
                "Unsettled transfers in the pending index.",
                g.pending_sagas,
            ),
            (
                "wallet_ws_connections",
                "Open WebSocket connections.",
                self.ws_connections.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}
