//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of every `/v1` route, generated from
//! the code with utoipa.
//!
//! Each handler carries its own `#[utoipa::path]` (method, path, parameters, body, each
//! success status and the errors particular to it); the bodies' schemas are derived from the
//! protocol types by the same serde attributes that shape the wire. [`ApiDoc`] gathers them,
//! and [`Common`] adds what every route shares, taken from the route table
//! ([`super::routes::ROUTES`]) so that it cannot drift: the bearer scheme and the scope each
//! route needs, and the errors any route may answer (`invalid_request`, `unauthorized`,
//! `forbidden`, `unavailable`/`overloaded`). The tests hold the description's routes equal to
//! the table's `/v1` routes, so a route cannot be added without its description.
//!
//! Left out: the admin, metrics and health routes (operators' tools, not the client contract),
//! and the WebSocket's frames as operations (OpenAPI describes request and response, not
//! messages): `GET /v1/stream` is described as the upgrade, its frames as schemas.

use super::routes::{self, Access};
use super::{accounts, batch, disbursements, holds, movements, stream, transfers};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use protocol::error::ErrorBody;
use protocol::stream::{ClientFrame, ServerFrame};
use protocol::IdempotencyKey;
use std::sync::LazyLock;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{Schema, SchemaType};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, LicenseBuilder, ObjectBuilder, Ref, RefOr, Required, Response,
    ResponseBuilder, Type,
};
use utoipa::{IntoParams, Modify, OpenApi};

/// The path of the description itself.
pub const PATH: &str = "/v1/openapi.json";

/// The name of the bearer-token security scheme.
pub const BEARER: &str = "bearer";

/// The description of every `/v1` route.
#[derive(OpenApi)]
#[openapi(
    paths(
        accounts::open,
        accounts::get,
        accounts::freeze,
        accounts::unfreeze,
        accounts::entries,
        accounts::transfers,
        movements::deposit,
        movements::withdraw,
        transfers::create,
        transfers::get,
        batch::create,
        disbursements::create,
        disbursements::get,
        holds::create,
        holds::get,
        holds::capture,
        holds::void,
        stream::upgrade,
        document,
    ),
    components(schemas(ErrorBody, ClientFrame, ServerFrame)),
    modifiers(&Common),
    tags(
        (name = "accounts", description = "Open, read, freeze and unfreeze accounts; their journal and transfers."),
        (name = "movements", description = "Money in (deposits) and out (withdrawals) of the ledger."),
        (name = "transfers", description = "Transfers between two accounts, one by one or in batches."),
        (name = "holds", description = "Authorize, then capture or void (API.md \"Holds\")."),
        (name = "disbursements", description = "One debit, many credits, all or nothing (API.md \"Disbursements\")."),
        (name = "stream", description = "The WebSocket: live balances and pipelined commands."),
        (name = "meta", description = "This description."),
    )
)]
pub struct ApiDoc;

/// The description as served, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the description serializes")
});

/// The description as JSON text: what `GET /v1/openapi.json` answers.
pub fn document_json() -> &'static str {
    DOCUMENT.as_str()
}

/// `GET /v1/openapi.json`.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "get_openapi",
    tag = "meta",
    responses(
        (status = 200, description = "This document: the OpenAPI 3.1 description of every `/v1` route.",
         content_type = "application/json", body = Object),
    )
)]
pub async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], document_json())
}

/// What the description says of the API as a whole (its `info.description`).
const OVERVIEW: &str = "\
The HTTP API of the wallet ledger: accounts holding balances in one currency, deposits, \
withdrawals, transfers (one by one or in batches), holds and disbursements, and a WebSocket \
that streams balances. The contract is API.md; this description is generated from the code.

- JSON over HTTP. Amounts and balances are JSON integers in minor units (cents), from 1 to \
2^53-1, never floats. Times are integers: milliseconds since the Unix epoch.
- Mutating routes take an `Idempotency-Key` header (1 to 255 characters): the same key with \
the same body returns the first result again; with a different body it is refused \
(`idempotency_key_reused`). Keys are scoped to the account the request debits (the credited \
one for a deposit).
- Errors: an HTTP status and `{\"error\": {\"code\", \"message\"}}` (schema `ErrorBody`), \
`code` one of `ErrorCode`. `unavailable` means the outcome is unknown: retry with the same key. \
`overloaded` means nothing ran: retry after `Retry-After`, with the same key. A path that \
names no route answers 404 `not_found`.
- Authentication: with `[auth]` in the node's config, every route needs \
`Authorization: Bearer <token>` (scheme `bearer`; the WebSocket may pass `?access_token=` \
instead); each operation's security requirement names the scope it needs. A token limited to \
accounts reads and streams only those, and moves money only out of them (into them, for \
deposits). Without `[auth]` (a node on loopback for development) every route is open.";

/// What the description says of the bearer scheme.
const BEARER_DOC: &str = "\
`Authorization: Bearer <token>`, needed on every route when the node's config has `[auth]` \
(none without it). The config holds only each token's SHA-256; `walletctl token new` makes \
one. Scopes: `read` (GET routes, stream subscriptions), `write` (mutating routes); the \
WebSocket opens with either.";

/// Adds what every route shares: info, the bearer scheme and each route's scope (from
/// [`routes::ROUTES`]), and the errors any route may answer.
pub struct Common;

/// Reusable responses: (name, status, description).
const COMMON_ERRORS: [(&str, &str, &str); 4] = [
    (
        "InvalidRequest",
        "400",
        "`invalid_request`: malformed JSON, a missing or ill-typed field, a bad id, an amount \
         out of range, a bad query parameter or header.",
    ),
    (
        "Unauthorized",
        "401",
        "`unauthorized`: no token, or one the node does not know (only with `[auth]`).",
    ),
    (
        "Forbidden",
        "403",
        "`forbidden`: the token lacks the route's scope, or may not act on the account.",
    ),
    (
        "Unavailable",
        "503",
        "`unavailable`: storage or the owner node unreachable, the outcome is unknown (retry \
         with the same idempotency key); or `overloaded`: refused by admission control before \
         anything ran (retry after `Retry-After`, with the same key).",
    ),
];

impl Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.info = InfoBuilder::new()
            .title("wallet ledger HTTP API")
            .version(env!("CARGO_PKG_VERSION"))
            .description(Some(OVERVIEW))
            .license(Some(
                LicenseBuilder::new()
                    .name("Apache-2.0")
                    .identifier(Some("Apache-2.0"))
                    .build(),
            ))
            .build();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(BEARER_DOC))
                    .build(),
            ),
        );
        for (name, status, description) in COMMON_ERRORS {
            components
                .responses
                .insert(name.to_owned(), error_response(status, description).into());
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in [("GET", &mut item.get), ("POST", &mut item.post)] {
                if let Some(op) = op {
                    complete(op, routes::find(method, path).map(|r| r.access));
                }
            }
        }
    }
}

/// An error response of the common kind: the error body, and the headers its status carries.
fn error_response(status: &str, description: &str) -> Response {
    let mut r = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
    match status {
        "401" => {
            r = r.header(
                "WWW-Authenticate",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some("`Bearer realm=\"wallet\"`"))
                    .build(),
            )
        }
        "503" => {
            r = r.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("Seconds to wait before a retry (with `overloaded`)."))
                    .build(),
            )
        }
        _ => {}
    }
    r.build()
}

/// Sets an operation's security from its route's access, and adds the common errors it may
/// answer (400 only where the route takes input; a route's own answer for a status stays).
fn complete(op: &mut Operation, access: Option<Access>) {
    let Some(access) = access else {
        // Not in the table: the route-table test fails on it; nothing to take from it here.
        return;
    };
    let scopes: Vec<String> = match access {
        Access::Scope(s) => vec![s.to_string()],
        // The stream checks the scope itself (read or write), and each frame's account.
        Access::Open | Access::Authenticated => Vec::new(),
    };
    if access != Access::Open {
        op.security = Some(vec![SecurityRequirement::new(BEARER, scopes)]);
    }
    absent_not_null(op);
    let takes_input =
        op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    for (name, status, _) in COMMON_ERRORS {
        let applies = match status {
            "400" => takes_input,
            "401" | "403" => access != Access::Open,
            _ => true,
        };
        if applies {
            op.responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
        }
    }
}

/// An optional request body (`Option<T>` in a path) is one the client may leave empty, never
/// JSON `null` (which the route refuses): its schema is `T`'s, not `T` or null.
fn absent_not_null(op: &mut Operation) {
    let Some(body) = op.request_body.as_mut() else {
        return;
    };
    if body.required == Some(Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        if let Some(RefOr::T(Schema::OneOf(one))) = &content.schema {
            let mut not_null = one.items.iter().filter(|s| !is_null(s));
            if let (Some(only), None) = (not_null.next(), not_null.next()) {
                content.schema = Some(only.clone());
            }
        }
    }
}

/// Whether a schema is `{"type": "null"}`.
fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null))
}

/// The `Idempotency-Key` header of a route that records it.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// Makes the request safe to retry: the same key with the same body returns the first
    /// result again (status and body), with a different body it is refused
    /// `idempotency_key_reused`. Scoped to the debited account (the credited one for a
    /// deposit); kept at least 24 hours.
    #[param(rename = "Idempotency-Key", nullable = false)]
    pub idempotency_key: Option<IdempotencyKey>,
}

/// The `Idempotency-Key` header of a route that is idempotent by itself.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotentAnyway {
    /// Accepted, as on every mutating route; this operation is idempotent by itself
    /// (repeating it with the same input gives the same result), so the key is not recorded.
    #[param(rename = "Idempotency-Key", nullable = false)]
    pub idempotency_key: Option<IdempotencyKey>,
}
