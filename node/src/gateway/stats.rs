//! Per-second request samples of the last minutes, for the dashboard's charts
//! (`GET /admin/stats`, drawn by `GET /ui`).
//!
//! The gateway's middleware hands every answered request to [`Window::record`]. A `/v1`
//! request (the stream's upgrade excepted) is counted in the current second: a count, a count
//! of 5xx answers, and its latency in an hdrhistogram. When a later second begins, the finished
//! one is summarized (count, errors, p50, p99, max) into a ring of the last
//! [`STATS_WINDOW_SECS`] seconds and the histogram is reset, so the memory is fixed: one
//! histogram and 300 small samples. Seconds are counted on the monotonic clock from the
//! window's creation (a step of the wall clock neither drops nor doubles a sample) and
//! labelled with the wall time of that creation plus their number.
//!
//! Only `/v1` routes are counted: `/admin`, `/metrics`, health probes and the dashboard's own
//! assets are operators' traffic, and the dashboard's polling would otherwise be most of an
//! idle node's requests. A WebSocket's life is not a request's latency, so the stream's
//! upgrade is left out too.
//!
//! Left out: other members' figures (each node answers its own; open `/ui` on a member to see
//! its traffic), anything older than the window, and per-route breakdowns (`/metrics` has
//! them).

use super::auth::AdminScope;
use super::AppState;
use axum::extract::State;
use axum::Json;
use hdrhistogram::Histogram;
use protocol::admin::{StatsSample, StatsWindow, STATS_WINDOW_SECS};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest latency the histogram tells apart, in microseconds (slower requests count as this).
pub const LATENCY_US_MAX: u64 = 60_000_000;
/// Significant decimal digits of the latency histogram (1% precision).
const LATENCY_SIGNIFICANT_DIGITS: u8 = 2;

/// The samples of the last [`STATS_WINDOW_SECS`] seconds and the second under way.
pub struct Window {
    started: Instant,
    started_unix_ms: u64,
    inner: Mutex<Inner>,
}

struct Inner {
    /// The second under way, counted from `started`.
    second: u64,
    requests: u64,
    errors: u64,
    latencies_us: Histogram<u64>,
    /// Finished seconds, oldest first, at most [`STATS_WINDOW_SECS`].
    ring: VecDeque<StatsSample>,
}

impl Default for Window {
    fn default() -> Self {
        Self::new()
    }
}

impl Window {
    /// An empty window starting now.
    pub fn new() -> Self {
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Window {
            started: Instant::now(),
            started_unix_ms,
            inner: Mutex::new(Inner {
                second: 0,
                requests: 0,
                errors: 0,
                latencies_us: Histogram::new_with_bounds(
                    1,
                    LATENCY_US_MAX,
                    LATENCY_SIGNIFICANT_DIGITS,
                )
                .expect("valid histogram bounds"),
                ring: VecDeque::with_capacity(STATS_WINDOW_SECS as usize),
            }),
        }
    }

    /// Counts one answered request of `route` (a route template, or `unmatched`) if it is a
    /// `/v1` one.
    pub fn record(&self, route: &str, status: u16, latency: Duration) {
        if !counted(route) {
            return;
        }
        self.record_at(self.now_second(), status, latency);
    }

    /// The finished seconds of the window, oldest first.
    pub fn samples(&self) -> Vec<StatsSample> {
        self.samples_at(self.now_second())
    }

    fn now_second(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn record_at(&self, second: u64, status: u16, latency: Duration) {
        let mut inner = self.inner.lock().expect("stats lock");
        self.roll(&mut inner, second);
        inner.requests += 1;
        if status >= 500 {
            inner.errors += 1;
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        inner.latencies_us.saturating_record(us.max(1));
    }

    fn samples_at(&self, second: u64) -> Vec<StatsSample> {
        let mut inner = self.inner.lock().expect("stats lock");
        self.roll(&mut inner, second);
        inner.ring.iter().copied().collect()
    }

    /// Moves the window to `second`: the second under way, if earlier, is summarized into the
    /// ring, followed by a sample of zeros for each second without requests since.
    fn roll(&self, inner: &mut Inner, second: u64) {
        if second <= inner.second {
            return;
        }
        let finished = self.summary(inner);
        push(&mut inner.ring, finished);
        // Only the last window's worth of empty seconds can still be in the ring.
        let empty_from = (inner.second + 1).max(second.saturating_sub(STATS_WINDOW_SECS));
        for s in empty_from..second {
            push(
                &mut inner.ring,
                StatsSample {
                    at_ms: self.at_ms(s),
                    ..StatsSample::default()
                },
            );
        }
        inner.second = second;
        inner.requests = 0;
        inner.errors = 0;
        inner.latencies_us.reset();
    }

    fn summary(&self, inner: &Inner) -> StatsSample {
        let h = &inner.latencies_us;
        let (p50_us, p99_us, max_us) = if h.is_empty() {
            (0, 0, 0)
        } else {
            (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max())
        };
        StatsSample {
            at_ms: self.at_ms(inner.second),
            requests: inner.requests,
            errors: inner.errors,
            p50_us,
            p99_us,
            max_us,
        }
    }

    fn at_ms(&self, second: u64) -> u64 {
        self.started_unix_ms + second * 1000
    }
}

/// Appends a finished second, dropping the oldest past [`STATS_WINDOW_SECS`].
fn push(ring: &mut VecDeque<StatsSample>, sample: StatsSample) {
    if ring.len() == STATS_WINDOW_SECS as usize {
        ring.pop_front();
    }
    ring.push_back(sample);
}

/// Whether requests of a route are counted: the clients' `/v1` routes but the stream.
fn counted(route: &str) -> bool {
    route.starts_with("/v1/") && route != "/v1/stream"
}

/// `GET /admin/stats`: this node's `/v1` requests of each of the last
/// [`STATS_WINDOW_SECS`] seconds.
pub async fn stats(_: AdminScope, State(st): State<AppState>) -> Json<StatsWindow> {
    Json(StatsWindow {
        node_id: st.shell.config().node_id.clone(),
        interval_ms: 1000,
        samples: st.stats.samples(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn stats_seconds_are_summarized_with_percentiles_and_errors() {
        // Proves a finished second holds its count, its 5xx count and the percentiles of its
        // latencies, and the second under way is not answered until it ends.
        let w = Window::new();
        for i in 1..=100 {
            w.record_at(0, if i <= 3 { 503 } else { 200 }, ms(i));
        }
        assert!(w.samples_at(0).is_empty(), "second 0 is under way");
        let s = w.samples_at(1);
        assert_eq!(s.len(), 1);
        let s = s[0];
        assert_eq!((s.requests, s.errors), (100, 3));
        assert_eq!(s.at_ms, w.started_unix_ms);
        // Two significant digits: within 1% of 50 ms, 99 ms and 100 ms.
        for (got, want) in [(s.p50_us, 50_000), (s.p99_us, 99_000), (s.max_us, 100_000)] {
            assert!(got.abs_diff(want) <= want / 100, "{got} vs {want}: {s:?}");
        }
    }

    #[test]
    fn stats_quiet_seconds_are_zeros_and_the_window_is_bounded() {
        // Proves seconds without requests appear as zeros (no gap), a second's histogram does
        // not leak into the next, and the ring keeps only the last STATS_WINDOW_SECS seconds,
        // also after a silence longer than the window.
        let w = Window::new();
        w.record_at(0, 200, ms(500));
        w.record_at(3, 200, ms(2));
        let s = w.samples_at(4);
        assert_eq!(
            s.iter().map(|x| x.requests).collect::<Vec<_>>(),
            [1, 0, 0, 1]
        );
        assert_eq!(s[1].p99_us, 0);
        assert!(s[3].max_us < 3_000, "{:?}", s[3]);
        let at: Vec<u64> = s.iter().map(|x| x.at_ms - w.started_unix_ms).collect();
        assert_eq!(at, [0, 1000, 2000, 3000]);

        let far = 10 * STATS_WINDOW_SECS;
        w.record_at(far, 200, ms(1));
        let s = w.samples_at(far + 1);
        assert_eq!(s.len(), STATS_WINDOW_SECS as usize);
        assert_eq!(s.last().unwrap().requests, 1);
        assert!(s[..s.len() - 1].iter().all(|x| x.requests == 0));
        assert_eq!(
            s[0].at_ms,
            w.at_ms(far + 1 - STATS_WINDOW_SECS),
            "consecutive seconds, the newest last"
        );
    }

    #[test]
    fn stats_count_only_client_routes() {
        // Proves only /v1 routes other than the stream are counted.
        let w = Window::new();
        for route in ["/admin/stats", "/metrics", "/ui", "/v1/stream", "unmatched"] {
            w.record(route, 200, ms(1));
        }
        w.record("/v1/deposits", 201, ms(1));
        let inner = w.inner.lock().unwrap();
        assert_eq!(inner.requests, 1);
    }
}
