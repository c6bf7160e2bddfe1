//! The HTTP and WebSocket gateway (axum): thin handlers over the actor shell.
//!
//! Transport is separated from protocol as in mini-redis: [`error`] turns request parts into
//! validated values (every malformed input becomes `invalid_request` with a sentence) and
//! errors into responses; each resource has its own file with handlers of one shape: validate,
//! call the account's actor (or read committed records from storage), map the reply.
//!
//! Writes and strongly consistent reads go through [`crate::cluster::Shell::execute`]; history,
//! transfer summaries and admin listings read committed records directly, which is consistent
//! because records are written only by committed transactions and journal entries never
//! change. Storage calls run on blocking threads ([`blocking`]).
//!
//! Left out on purpose: authentication (`unauthorized`/`forbidden` are reserved codes; no
//! token scheme is configured yet) and TLS (terminate it in front of the node).

pub mod accounts;
pub mod admin;
pub mod admission;
pub mod batch;
pub mod error;
pub mod movements;
pub mod stream;
pub mod transfers;

use crate::cluster::Shell;
use crate::metrics::Gauges;
use crate::storage::StorageError;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use error::{invalid, HttpError};
use protocol::{AccountId, ApiError, ErrorCode};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// Largest request body, in bytes.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// What every handler gets: one shared [`AppShared`], so that the clone each layer and
/// handler takes per request is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<AppShared>);

impl AppState {
    /// The state of a node's gateway.
    pub fn new(shared: AppShared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppShared;
    fn deref(&self) -> &AppShared {
        &self.0
    }
}

/// The gateway's state, shared by every request.
pub struct AppShared {
    /// The actor shell.
    pub shell: Shell,
    /// Set to true when a drain finished: the node stops.
    pub drained: Arc<watch::Sender<bool>>,
    /// When the node started.
    pub started: Instant,
    /// Turns true when the node shuts down (WebSockets close).
    pub shutdown: watch::Receiver<bool>,
    /// Turns true once the node finished starting (resumed unsettled transfers).
    pub ready: watch::Receiver<bool>,
    /// Admission control: the node's limits.
    pub admission: Arc<admission::Admission>,
}

/// The node's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/accounts", post(accounts::open))
        .route("/v1/accounts/{id}", get(accounts::get))
        .route("/v1/accounts/{id}/freeze", post(accounts::freeze))
        .route("/v1/accounts/{id}/unfreeze", post(accounts::unfreeze))
        .route("/v1/accounts/{id}/entries", get(accounts::entries))
        .route("/v1/deposits", post(movements::deposit))
        .route("/v1/withdrawals", post(movements::withdraw))
        .route("/v1/transfers", post(transfers::create))
        .route("/v1/transfers/{id}", get(transfers::get))
        .route(
            "/v1/transfers/batch",
            post(batch::create).layer(DefaultBodyLimit::max(batch::BATCH_BODY_BYTES_MAX)),
        )
        .route("/v1/stream", get(stream::upgrade))
        .route("/admin/status", get(admin::status))
        .route("/admin/accounts", get(admin::accounts))
        .route("/admin/pending", get(admin::pending))
        .route("/admin/owner/{id}", get(admin::owner))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/drain", post(admin::drain))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(error::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(state)
}

/// Counts every request by route template and status, with its latency.
/// Middleware of every request: admission control ([`admission::admit`]), then the request's
/// count and latency in the metrics.
async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| route_name(p.as_str()))
        .unwrap_or("unmatched");
    let method = match *req.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        _ => "OTHER",
    };
    let resp = admission::admit(&st, req, next).await;
    st.shell.metrics().request(
        route,
        method,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// Maps a matched path to a static label (a fixed set, so metrics stay bounded).
fn route_name(path: &str) -> &'static str {
    const ROUTES: &[&str] = &[
        "/v1/accounts",
        "/v1/accounts/{id}",
        "/v1/accounts/{id}/freeze",
        "/v1/accounts/{id}/unfreeze",
        "/v1/accounts/{id}/entries",
        "/v1/deposits",
        "/v1/withdrawals",
        "/v1/transfers",
        "/v1/transfers/{id}",
        "/v1/stream",
        "/admin/status",
        "/admin/accounts",
        "/admin/pending",
        "/admin/owner/{id}",
        "/admin/audit",
        "/admin/drain",
        "/healthz",
        "/readyz",
        "/metrics",
    ];
    ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or("other")
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when startup finished and storage answers.
async fn readyz(State(st): State<AppState>) -> Response {
    if !*st.ready.borrow() {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    }
    let (store, key) = (st.shell.store().clone(), st.shell.keys().store_id());
    // A key of this ledger: every backend can read it (FoundationDB refuses reads of its
    // system keys, at `\xff` and above, to ordinary transactions).
    match blocking(move || store.read(|txn| txn.get(&key).map(|_| ()))).await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage unreachable\n").into_response(),
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    let (store, keys) = (st.shell.store().clone(), st.shell.keys().clone());
    let pending = blocking(move || {
        crate::ledger::exec::count_pending(
            &store,
            &keys,
            admin::PENDING_COUNT_MAX,
            crate::storage::RANGE_LIMIT_MAX,
        )
    })
    .await
    .unwrap_or(0);
    let stats = st.shell.store().stats();
    let g = Gauges {
        active_actors: st.shell.active_actors() as u64,
        http_inflight: st.admission.requests_in_progress() as u64,
        pending_sagas: pending,
        commits: stats.commits.load(Ordering::Relaxed),
        retries: stats.retries.load(Ordering::Relaxed),
        storage_failures: stats.failures.load(Ordering::Relaxed),
    };
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        st.shell.metrics().render(g),
    )
        .into_response()
}

/// Runs a storage call on a blocking thread; a storage failure is `unavailable`.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, HttpError> {
    match tokio::task::spawn_blocking(f)
        .await
        .expect("storage calls do not panic")
    {
        Ok(v) => Ok(v),
        Err(e) => {
            tracing::warn!(error = %e, "storage read failed");
            Err(HttpError(ApiError::new(
                ErrorCode::Unavailable,
                format!("storage unreachable ({e}); retry"),
            )))
        }
    }
}

/// Validates an account id from a path.
pub fn parse_account(raw: String) -> Result<AccountId, HttpError> {
    AccountId::new(raw).map_err(invalid)
}
