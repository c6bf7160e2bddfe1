//! The table of every route: method, path template, and who may call it.
//!
//! [`super::router`] refuses to build a route missing from [`ROUTES`], and the tests walk the
//! table, so a route cannot be added without deciding its access and being tested for it.

use cluster_config::Scope;

/// Who may call a route when `[auth]` is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token (health probes).
    Open,
    /// Any valid token; what it may do is checked inside (the WebSocket, per frame).
    Authenticated,
    /// A valid token with this scope.
    Scope(Scope),
}

/// One route of the gateway.
#[derive(Clone, Copy, Debug)]
pub struct RouteSpec {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path template, as the router matches it.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

const fn route(method: &'static str, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
    }
}

const READ: Access = Access::Scope(Scope::Read);
const WRITE: Access = Access::Scope(Scope::Write);
const ADMIN: Access = Access::Scope(Scope::Admin);

/// Every route the gateway serves.
pub const ROUTES: &[RouteSpec] = &[
    route("POST", "/v1/accounts", WRITE),
    route("GET", "/v1/accounts/{id}", READ),
    route("POST", "/v1/accounts/{id}/freeze", WRITE),
    route("POST", "/v1/accounts/{id}/unfreeze", WRITE),
    route("GET", "/v1/accounts/{id}/entries", READ),
    route("GET", "/v1/accounts/{id}/transfers", READ),
    route("POST", "/v1/deposits", WRITE),
    route("POST", "/v1/withdrawals", WRITE),
    route("POST", "/v1/transfers", WRITE),
    route("GET", "/v1/transfers/{id}", READ),
    route("POST", "/v1/transfers/batch", WRITE),
    route("POST", "/v1/disbursements", WRITE),
    route("GET", "/v1/disbursements/{id}", READ),
    route("POST", "/v1/holds", WRITE),
    route("GET", "/v1/holds/{id}", READ),
    route("POST", "/v1/holds/{id}/capture", WRITE),
    route("POST", "/v1/holds/{id}/void", WRITE),
    route("GET", "/v1/stream", Access::Authenticated),
    // The API's own description: a GET of /v1 like the others, so `read` (API.md: with
    // `[auth]`, every route but the health probes needs a token).
    route("GET", "/v1/openapi.json", READ),
    route("GET", "/admin/status", ADMIN),
    route("GET", "/admin/accounts", ADMIN),
    route("GET", "/admin/pending", ADMIN),
    route("GET", "/admin/holds", ADMIN),
    route("GET", "/admin/owner/{id}", ADMIN),
    route("GET", "/admin/accounts/{id}/shards", ADMIN),
    route("GET", "/admin/accounts/{id}/entries", ADMIN),
    route("GET", "/admin/audit", ADMIN),
    route("GET", "/admin/stats", ADMIN),
    route("POST", "/admin/drain", ADMIN),
    route("GET", "/healthz", Access::Open),
    route("GET", "/readyz", Access::Open),
    route("GET", "/metrics", Access::Scope(Scope::Metrics)),
    // The dashboard's page and assets: static code without data (see `super::ui`).
    route("GET", "/ui", Access::Open),
    route("GET", "/ui/{name}", Access::Open),
];

/// The route of a method and path template.
pub fn find(method: &str, path: &str) -> Option<&'static RouteSpec> {
    ROUTES.iter().find(|r| r.method == method && r.path == path)
}

/// The path template as a `'static` label, when some route has it (metrics stay bounded).
pub fn label(path: &str) -> Option<&'static str> {
    ROUTES.iter().find(|r| r.path == path).map(|r| r.path)
}

/// Whether a route belongs on the admin listener (`node.admin_listen`) when there is one.
pub fn is_admin(path: &str) -> bool {
    path.starts_with("/admin/") || path == "/metrics"
}

/// Whether a route is the dashboard's page or one of its assets (served on every listener).
pub fn is_dashboard(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}
