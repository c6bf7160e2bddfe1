//! Admission control: the node's limits on requests in progress and WebSocket connections.
//!
//! Every limit is checked before anything runs, so a refused request is answered 503
//! `overloaded` with `Retry-After` and is safe to retry with the same key. Requests in
//! progress are counted by a semaphore taken for the whole request ([`admit`]); health,
//! readiness and metrics are never refused (probes and scrapes must work most of all under
//! load), and a WebSocket holds a permit of its own pool for as long as it is open
//! ([`Admission::try_socket`]) rather than one of the requests'. The other limits live where
//! their queues are: each account's queue in its driver (`limits.actor_queue_max`), the
//! subscriptions and commands of one socket in [`super::stream`], and the webhook outboxes'
//! in the shell ([`crate::webhooks::OutboxGate`], checked by the node owning the account).

use super::error::HttpError;
use super::AppState;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use cluster_config::LimitsConfig;
use protocol::{ApiError, ErrorCode};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What `Retry-After` says, in seconds.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Routes never refused by admission control.
const ALWAYS_ADMITTED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The node's admission limits and what is taken of them.
pub struct Admission {
    requests: Arc<Semaphore>,
    requests_max: usize,
    sockets: Arc<Semaphore>,
    /// Most subscriptions of one WebSocket.
    pub subscriptions_max: usize,
}

impl Admission {
    /// The limits of `[limits]`.
    pub fn new(limits: &LimitsConfig) -> Self {
        Admission {
            requests: Arc::new(Semaphore::new(limits.http_inflight_max as usize)),
            requests_max: limits.http_inflight_max as usize,
            sockets: Arc::new(Semaphore::new(limits.ws_connections_max as usize)),
            subscriptions_max: limits.ws_subscriptions_max as usize,
        }
    }

    /// A place for one request in progress, if there is one.
    pub fn try_request(&self) -> Option<OwnedSemaphorePermit> {
        self.requests.clone().try_acquire_owned().ok()
    }

    /// Requests in progress now (the scrape of `/metrics` itself is not counted).
    pub fn requests_in_progress(&self) -> usize {
        self.requests_max - self.requests.available_permits()
    }

    /// A place for one WebSocket connection, if there is one; held until it closes.
    pub fn try_socket(&self) -> Option<OwnedSemaphorePermit> {
        self.sockets.clone().try_acquire_owned().ok()
    }
}

/// An `overloaded` error naming the limit.
pub fn overloaded(limit: &str) -> HttpError {
    HttpError(ApiError::new(
        ErrorCode::Overloaded,
        format!("the node is at its limit of {limit}; nothing ran: retry after {RETRY_AFTER_SECS} s with the same idempotency key"),
    ))
}

/// Runs a request unless it is past `limits.http_inflight_max` requests in progress (part of
/// the gateway's one middleware).
pub async fn admit(st: &AppState, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if ALWAYS_ADMITTED.contains(&path) || path == "/v1/stream" {
        return next.run(req).await;
    }
    let Some(_permit) = st.admission.try_request() else {
        st.shell.metrics().overloaded.inc();
        return axum::response::IntoResponse::into_response(overloaded(
            "requests in progress (limits.http_inflight_max)",
        ));
    };
    next.run(req).await
}
