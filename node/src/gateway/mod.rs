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
//! Every route is listed with its access in [`routes::ROUTES`]; with `[auth]` configured,
//! [`auth`] checks the bearer token before admission control, and handlers check the accounts
//! a request names. With `node.admin_listen`, `/admin/*` and `/metrics` are served by a router
//! of their own on that address ([`Listener`]) and the public one answers them 404.
//!
//! Every `/v1` route is described in [`openapi`] (served at `GET /v1/openapi.json`), from the
//! handlers' own annotations and the protocol types.
//!
//! Left out on purpose: TLS is served by [`crate::tls`], not here.

pub mod accounts;
pub mod admin;
pub mod admission;
pub mod auth;
pub mod batch;
pub mod disbursements;
pub mod error;
pub mod holds;
pub mod movements;
pub mod openapi;
pub mod routes;
pub mod sharded;
pub mod stats;
pub mod stream;
pub mod transfers;
pub mod ui;

use crate::cluster::Shell;
use crate::metrics::Gauges;
use crate::storage::StorageError;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
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
    /// The accepted tokens; `None` without `[auth]` (every route open).
    pub auth: Option<Arc<auth::Auth>>,
    /// The layouts (sharded or not) of the accounts seen.
    pub layouts: sharded::Layouts,
    /// Each webhook's id and delivery counts on this node.
    pub webhooks: Vec<(String, Arc<crate::webhooks::HookStats>)>,
    /// Per-second request samples of the last minutes (the dashboard's charts).
    pub stats: stats::Window,
}

/// Which routes a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Every route (no `node.admin_listen`).
    All,
    /// Every route but `/admin/*` and `/metrics`.
    Public,
    /// `/admin/*`, `/metrics`, the health routes and the dashboard.
    Admin,
}

impl Listener {
    fn serves(self, path: &str) -> bool {
        match self {
            Listener::All => true,
            Listener::Public => !routes::is_admin(path),
            Listener::Admin => {
                routes::is_admin(path)
                    || routes::is_dashboard(path)
                    || path == "/healthz"
                    || path == "/readyz"
            }
        }
    }
}

/// The node's routes, all on one listener.
pub fn router(state: AppState) -> Router {
    router_for(state, Listener::All)
}

/// Every route with its handler; each must be in [`routes::ROUTES`].
fn handlers() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("POST", "/v1/accounts", post(accounts::open)),
        ("GET", "/v1/accounts/{id}", get(accounts::get)),
        ("POST", "/v1/accounts/{id}/freeze", post(accounts::freeze)),
        (
            "POST",
            "/v1/accounts/{id}/unfreeze",
            post(accounts::unfreeze),
        ),
        ("GET", "/v1/accounts/{id}/entries", get(accounts::entries)),
        (
            "GET",
            "/v1/accounts/{id}/transfers",
            get(accounts::transfers),
        ),
        ("POST", "/v1/deposits", post(movements::deposit)),
        ("POST", "/v1/withdrawals", post(movements::withdraw)),
        ("POST", "/v1/transfers", post(transfers::create)),
        ("GET", "/v1/transfers/{id}", get(transfers::get)),
        (
            "POST",
            "/v1/transfers/batch",
            post(batch::create).layer(DefaultBodyLimit::max(batch::BATCH_BODY_BYTES_MAX)),
        ),
        ("POST", "/v1/disbursements", post(disbursements::create)),
        ("GET", "/v1/disbursements/{id}", get(disbursements::get)),
        ("POST", "/v1/holds", post(holds::create)),
        ("GET", "/v1/holds/{id}", get(holds::get)),
        ("POST", "/v1/holds/{id}/capture", post(holds::capture)),
        ("POST", "/v1/holds/{id}/void", post(holds::void)),
        ("GET", "/v1/stream", get(stream::upgrade)),
        ("GET", openapi::PATH, get(openapi::document)),
        ("GET", "/admin/status", get(admin::status)),
        ("GET", "/admin/accounts", get(admin::accounts)),
        ("GET", "/admin/pending", get(admin::pending)),
        ("GET", "/admin/holds", get(admin::holds)),
        ("GET", "/admin/owner/{id}", get(admin::owner)),
        ("GET", "/admin/accounts/{id}/shards", get(admin::shards)),
        ("GET", "/admin/accounts/{id}/entries", get(admin::entries)),
        ("GET", "/admin/audit", get(admin::audit)),
        ("GET", "/admin/stats", get(stats::stats)),
        ("POST", "/admin/drain", post(admin::drain)),
        ("GET", "/healthz", get(healthz)),
        ("GET", "/readyz", get(readyz)),
        ("GET", "/metrics", get(metrics)),
        ("GET", "/ui", get(ui::page)),
        ("GET", "/ui/{name}", get(ui::asset)),
    ]
}

/// The routes one listener serves.
pub fn router_for(state: AppState, listener: Listener) -> Router {
    let handlers = handlers();
    assert_eq!(
        handlers.len(),
        routes::ROUTES.len(),
        "every route has one entry in routes::ROUTES"
    );
    let mut router = Router::new();
    for (method, path, handler) in handlers {
        assert!(
            routes::find(method, path).is_some(),
            "route {method} {path} is missing from routes::ROUTES"
        );
        if listener.serves(path) {
            router = router.route(path, handler);
        }
    }
    router
        .fallback(error::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(state)
}

/// Middleware of every request: authentication and the route's scope ([`auth::authorize`]),
/// then admission control ([`admission::admit`]), then the request's count and latency in the
/// metrics. Tokens are checked first so that requests without a valid one take no place
/// among the requests in progress.
async fn track(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
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
    let resp = match auth::authorize(&st, &mut req) {
        Ok(()) => admission::admit(&st, req, next).await,
        Err(refused) => refused.into_response(),
    };
    match resp.status() {
        StatusCode::UNAUTHORIZED => st.shell.metrics().auth_refused(ErrorCode::Unauthorized),
        StatusCode::FORBIDDEN => st.shell.metrics().auth_refused(ErrorCode::Forbidden),
        _ => {}
    }
    st.shell.metrics().request(
        route,
        method,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    st.stats
        .record(route, resp.status().as_u16(), started.elapsed());
    resp
}

/// Maps a matched path to a static label (a fixed set, so metrics stay bounded).
fn route_name(path: &str) -> &'static str {
    routes::label(path).unwrap_or("other")
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

async fn metrics(_: auth::MetricsScope, State(st): State<AppState>) -> Response {
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
        webhooks: st
            .webhooks
            .iter()
            .map(|(id, s)| crate::metrics::WebhookCounts {
                id: id.clone(),
                waiting: s.waiting.load(Ordering::Relaxed),
                delivered: s.delivered.load(Ordering::Relaxed),
                failed: s.failed.load(Ordering::Relaxed),
                expired: s.expired.load(Ordering::Relaxed),
            })
            .collect(),
    };
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
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

/// Validates an account id from a path (a shard's internal id is refused).
pub fn parse_account(raw: String) -> Result<AccountId, HttpError> {
    let id = AccountId::new(raw).map_err(invalid)?;
    sharded::client_id(&id)?;
    Ok(id)
}
