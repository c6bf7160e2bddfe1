//! Prometheus metrics of a node, served by `GET /metrics`.
//!
//! The counters, gauges, histograms and the text exposition are `prometheus-client`'s; this
//! file names the node's metrics, with their help texts and bucket bounds, and adds the values
//! that other parts of the node own, read at scrape time ([`Gauges`]).

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use protocol::api::TransferStatus;
use protocol::ErrorCode;

/// The `Content-Type` of [`Metrics::render`]: the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

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

/// Gauges read at scrape time from the rest of the node.
#[derive(Debug, Default, Clone)]
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
    /// Each webhook's outbox and deliveries on this node.
    pub webhooks: Vec<WebhookCounts>,
}

/// One webhook's counts on this node, read at scrape time.
#[derive(Debug, Default, Clone)]
pub struct WebhookCounts {
    /// The webhook's id (its outbox's).
    pub id: String,
    /// Events waiting in its outbox for this node's accounts.
    pub waiting: u64,
    /// Events delivered.
    pub delivered: u64,
    /// Delivery attempts that failed.
    pub failed: u64,
    /// Events dropped after failing for 24 hours.
    pub expired: u64,
}

/// A webhook counter: name, help, family, and its value in a webhook's counts.
type WebhookCounter = (
    &'static str,
    &'static str,
    Family<WebhookLabels, Counter>,
    fn(&WebhookCounts) -> u64,
);

/// The label of the webhook metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WebhookLabels {
    webhook: String,
}

/// Labels of `wallet_http_requests_total`, in the order they are exposed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

/// The label of `wallet_auth_refused_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefusalLabels {
    code: &'static str,
}

/// Every metric of a node.
///
/// Names are registered without the `_total` of counters: the encoder adds it, so that the
/// exposed names are `wallet_…_total`. Help texts are registered without their final period,
/// which the registry adds.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
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
    pub ws_connections: Gauge,
    /// Requests and WebSocket frames refused `unauthorized` (no or bad token).
    pub auth_unauthorized: Counter,
    /// Requests and WebSocket frames refused `forbidden` (scope or account not allowed).
    pub auth_forbidden: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        r.register(
            "wallet_http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let histogram = |r: &mut Registry, name: &str, help: &str, bounds: &[f64]| {
            let h = Histogram::new(bounds.iter().copied());
            r.register(name, help, h.clone());
            h
        };
        let request_latency = histogram(
            &mut r,
            "wallet_http_request_duration_seconds",
            "HTTP request latency",
            LATENCY_BOUNDS_S,
        );
        let batch_inputs = histogram(
            &mut r,
            "wallet_batch_inputs",
            "Inputs committed per account batch",
            BATCH_BOUNDS,
        );
        let group_batches = histogram(
            &mut r,
            "wallet_group_batches",
            "Account batches committed per storage transaction",
            GROUP_BOUNDS,
        );
        let group_commit_latency = histogram(
            &mut r,
            "wallet_group_commit_seconds",
            "Duration of one group commit (its storage transaction, retries included)",
            LATENCY_BOUNDS_S,
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        r.register(
            "wallet_auth_refused",
            "Requests and WebSocket frames refused by token checks, by code",
            refusals.clone(),
        );
        // Both codes are exposed from the start, at zero.
        let refused = |code| refusals.get_or_create(&RefusalLabels { code }).clone();
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let activations = counter(&mut r, "wallet_activations", "Account actor activations");
        let saga_messages = counter(
            &mut r,
            "wallet_saga_messages",
            "Saga messages sent between accounts",
        );
        let overloaded = counter(
            &mut r,
            "wallet_overloaded",
            "Requests, WebSocket connections and frames refused by admission control (503 overloaded)",
        );
        let peers_dropped = counter(
            &mut r,
            "wallet_peers_dropped",
            "Peers dropped from this node's ring after failure_timeout_ms of silence",
        );
        let rejoins = counter(
            &mut r,
            "wallet_rejoins",
            "Times this node passivated its accounts and rejoined after its peers dropped it",
        );
        let transfers_completed =
            counter(&mut r, "wallet_transfers_completed", "Transfers completed");
        let transfers_failed = counter(&mut r, "wallet_transfers_failed", "Transfers failed");
        let ws_connections = Gauge::default();
        r.register(
            "wallet_ws_connections",
            "Open WebSocket connections",
            ws_connections.clone(),
        );
        Metrics {
            auth_unauthorized: refused("unauthorized"),
            auth_forbidden: refused("forbidden"),
            registry: r,
            requests,
            request_latency,
            activations,
            saga_messages,
            overloaded,
            peers_dropped,
            rejoins,
            transfers_completed,
            transfers_failed,
            batch_inputs,
            group_batches,
            group_commit_latency,
            ws_connections,
        }
    }
}

impl Metrics {
    /// Counts one HTTP request by route template, method and status, and its latency.
    pub fn request(&self, route: &'static str, method: &'static str, status: u16, seconds: f64) {
        let labels = RequestLabels {
            route,
            method,
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.request_latency.observe(seconds);
    }

    /// Counts a refusal by authentication (`unauthorized`) or authorization (`forbidden`).
    pub fn auth_refused(&self, code: ErrorCode) {
        let counter = match code {
            ErrorCode::Unauthorized => &self.auth_unauthorized,
            ErrorCode::Forbidden => &self.auth_forbidden,
            other => {
                debug_assert!(false, "{other:?} is not an auth refusal");
                return;
            }
        };
        counter.inc();
    }

    /// Counts a settled transfer.
    pub fn transfers_settled(&self, status: TransferStatus) {
        let counter = match status {
            TransferStatus::Completed => &self.transfers_completed,
            TransferStatus::Failed => &self.transfers_failed,
            TransferStatus::Pending => return,
        };
        counter.inc();
    }

    /// The Prometheus text exposition (version 0.0.4, [`CONTENT_TYPE`]): this node's metrics
    /// and the values read at scrape time.
    pub fn render(&self, g: Gauges) -> String {
        let mut out = String::with_capacity(8192);
        prometheus_text::encode(&mut out, &self.registry).expect("writing to a String");
        prometheus_text::encode(&mut out, &scraped(g)).expect("writing to a String");
        out
    }
}

/// A registry of the values that other parts of the node own, as they are now.
fn scraped(g: Gauges) -> Registry {
    let mut r = Registry::default();
    for (name, help, v) in [
        (
            "wallet_storage_commits",
            "Committed storage transactions",
            g.commits,
        ),
        (
            "wallet_storage_retries",
            "Storage attempts retried",
            g.retries,
        ),
        (
            "wallet_storage_failures",
            "Storage transactions failed after retries",
            g.storage_failures,
        ),
    ] {
        r.register(name, help, ConstCounter::new(v));
    }
    for (name, help, v) in [
        (
            "wallet_active_actors",
            "Active account actors on this node",
            g.active_actors,
        ),
        (
            "wallet_http_inflight",
            "HTTP requests in progress, against limits.http_inflight_max",
            g.http_inflight,
        ),
        (
            "wallet_pending_sagas",
            "Unsettled transfers in the pending index",
            g.pending_sagas,
        ),
    ] {
        r.register(name, help, ConstGauge::new(v));
    }
    if !g.webhooks.is_empty() {
        let waiting = Family::<WebhookLabels, Gauge>::default();
        let counters: [WebhookCounter; 3] = [
            (
                "wallet_webhook_deliveries",
                "Webhook events delivered (2xx)",
                Family::default(),
                |h| h.delivered,
            ),
            (
                "wallet_webhook_failures",
                "Webhook delivery attempts that failed",
                Family::default(),
                |h| h.failed,
            ),
            (
                "wallet_webhook_events_expired",
                "Webhook events dropped after failing for 24 hours",
                Family::default(),
                |h| h.expired,
            ),
        ];
        for h in &g.webhooks {
            let labels = WebhookLabels {
                webhook: h.id.clone(),
            };
            waiting.get_or_create(&labels).set(h.waiting as i64);
            for (_, _, family, value) in &counters {
                family.get_or_create(&labels).inc_by(value(h));
            }
        }
        r.register(
            "wallet_webhook_outbox_events",
            "Events waiting in a webhook's outbox for this node's accounts, against limits.webhook_outbox_max",
            waiting,
        );
        for (name, help, family, _) in counters {
            r.register(name, help, family);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `line` (name and labels) in `text`.
    fn sample(text: &str, line: &str) -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {line} in\n{text}"))
            .to_owned()
    }

    #[test]
    fn metrics_keep_their_names_help_types_and_buckets() {
        let m = Metrics::default();
        m.request("/v1/deposits", "POST", 201, 0.003);
        m.request("/v1/deposits", "POST", 201, 0.02);
        m.auth_refused(ErrorCode::Forbidden);
        m.transfers_settled(TransferStatus::Completed);
        m.batch_inputs.observe(3.0);
        m.ws_connections.inc();
        let text = m.render(Gauges {
            active_actors: 4,
            http_inflight: 1,
            pending_sagas: 2,
            commits: 7,
            retries: 1,
            storage_failures: 0,
            webhooks: vec![WebhookCounts {
                id: "shop".into(),
                waiting: 3,
                delivered: 10,
                failed: 2,
                expired: 1,
            }],
        });
        for (line, value) in [
            ("wallet_webhook_outbox_events{webhook=\"shop\"}", "3"),
            ("wallet_webhook_deliveries_total{webhook=\"shop\"}", "10"),
            ("wallet_webhook_failures_total{webhook=\"shop\"}", "2"),
            ("wallet_webhook_events_expired_total{webhook=\"shop\"}", "1"),
        ] {
            assert_eq!(sample(&text, line), value, "{line}");
        }
        for (name, kind, help) in [
            (
                "wallet_http_requests_total",
                "counter",
                "HTTP requests by route, method and status.",
            ),
            (
                "wallet_http_request_duration_seconds",
                "histogram",
                "HTTP request latency.",
            ),
            (
                "wallet_batch_inputs",
                "histogram",
                "Inputs committed per account batch.",
            ),
            (
                "wallet_group_batches",
                "histogram",
                "Account batches committed per storage transaction.",
            ),
            (
                "wallet_group_commit_seconds",
                "histogram",
                "Duration of one group commit (its storage transaction, retries included).",
            ),
            (
                "wallet_auth_refused_total",
                "counter",
                "Requests and WebSocket frames refused by token checks, by code.",
            ),
            (
                "wallet_activations_total",
                "counter",
                "Account actor activations.",
            ),
            (
                "wallet_saga_messages_total",
                "counter",
                "Saga messages sent between accounts.",
            ),
            (
                "wallet_overloaded_total",
                "counter",
                "Requests, WebSocket connections and frames refused by admission control (503 overloaded).",
            ),
            (
                "wallet_peers_dropped_total",
                "counter",
                "Peers dropped from this node's ring after failure_timeout_ms of silence.",
            ),
            (
                "wallet_rejoins_total",
                "counter",
                "Times this node passivated its accounts and rejoined after its peers dropped it.",
            ),
            (
                "wallet_transfers_completed_total",
                "counter",
                "Transfers completed.",
            ),
            ("wallet_transfers_failed_total", "counter", "Transfers failed."),
            (
                "wallet_storage_commits_total",
                "counter",
                "Committed storage transactions.",
            ),
            (
                "wallet_storage_retries_total",
                "counter",
                "Storage attempts retried.",
            ),
            (
                "wallet_storage_failures_total",
                "counter",
                "Storage transactions failed after retries.",
            ),
            (
                "wallet_active_actors",
                "gauge",
                "Active account actors on this node.",
            ),
            (
                "wallet_http_inflight",
                "gauge",
                "HTTP requests in progress, against limits.http_inflight_max.",
            ),
            (
                "wallet_pending_sagas",
                "gauge",
                "Unsettled transfers in the pending index.",
            ),
            ("wallet_ws_connections", "gauge", "Open WebSocket connections."),
            (
                "wallet_webhook_outbox_events",
                "gauge",
                "Events waiting in a webhook's outbox for this node's accounts, against limits.webhook_outbox_max.",
            ),
            (
                "wallet_webhook_deliveries_total",
                "counter",
                "Webhook events delivered (2xx).",
            ),
            (
                "wallet_webhook_failures_total",
                "counter",
                "Webhook delivery attempts that failed.",
            ),
            (
                "wallet_webhook_events_expired_total",
                "counter",
                "Webhook events dropped after failing for 24 hours.",
            ),
        ] {
            let head = format!("# HELP {name} {help}\n# TYPE {name} {kind}\n");
            assert!(text.contains(&head), "missing\n{head}in\n{text}");
        }
        assert_eq!(text.matches("# TYPE ").count(), 24, "{text}");
        let requests =
            r#"wallet_http_requests_total{route="/v1/deposits",method="POST",status="201"}"#;
        assert_eq!(sample(&text, requests), "2");
        assert_eq!(
            sample(&text, r#"wallet_auth_refused_total{code="forbidden"}"#),
            "1"
        );
        assert_eq!(
            sample(&text, r#"wallet_auth_refused_total{code="unauthorized"}"#),
            "0"
        );
        assert_eq!(sample(&text, "wallet_transfers_completed_total"), "1");
        assert_eq!(sample(&text, "wallet_transfers_failed_total"), "0");
        assert_eq!(sample(&text, "wallet_storage_commits_total"), "7");
        assert_eq!(sample(&text, "wallet_active_actors"), "4");
        assert_eq!(sample(&text, "wallet_pending_sagas"), "2");
        assert_eq!(sample(&text, "wallet_ws_connections"), "1");
        // Bucket bounds as they were always written, cumulative counts, then +Inf.
        let latency = "wallet_http_request_duration_seconds";
        for (le, n) in [("0.0025", "0"), ("0.005", "1"), ("0.025", "2"), ("10", "2")] {
            assert_eq!(
                sample(&text, &format!("{latency}_bucket{{le=\"{le}\"}}")),
                n
            );
        }
        assert_eq!(
            sample(&text, &format!("{latency}_bucket{{le=\"+Inf\"}}")),
            "2"
        );
        assert_eq!(sample(&text, &format!("{latency}_count")), "2");
        let sum: f64 = sample(&text, &format!("{latency}_sum")).parse().unwrap();
        assert!((sum - 0.023).abs() < 1e-9, "{sum}");
        for (name, bounds) in [
            (latency, LATENCY_BOUNDS_S),
            ("wallet_batch_inputs", BATCH_BOUNDS),
            ("wallet_group_batches", GROUP_BOUNDS),
            ("wallet_group_commit_seconds", LATENCY_BOUNDS_S),
        ] {
            let les: Vec<String> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{name}_bucket{{le=\"")))
                .filter_map(|l| l.split('"').next())
                .map(str::to_owned)
                .collect();
            let mut want: Vec<String> = bounds.iter().map(|b| b.to_string()).collect();
            want.push("+Inf".into());
            assert_eq!(les, want, "{name}");
        }
        assert_eq!(sample(&text, r#"wallet_batch_inputs_bucket{le="2"}"#), "0");
        assert_eq!(sample(&text, r#"wallet_batch_inputs_bucket{le="4"}"#), "1");
    }
}
