//! Authentication and authorization (API.md "Authentication"): every route of the gateway's
//! table walked with no token, a wrong token, a token per scope, and a token limited to
//! accounts; the WebSocket checked at the upgrade and on every subscription and command; and
//! `node.admin_listen` moving `/admin/*` and `/metrics` off the public listener.

mod common;
use cluster_config::{AuthConfig, Scope, TokenConfig};
use common::{agent, TestNode};
use node::gateway::auth::{digest, digest_hex};
use node::gateway::routes::{Access, RouteSpec, ROUTES};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// A token of the test config: its id, secret, scopes, and accounts.
struct Tok {
    id: &'static str,
    secret: &'static str,
    scopes: &'static [Scope],
    accounts: Option<&'static [&'static str]>,
}

const READ: Tok = Tok {
    id: "reader",
    secret: "secret-read",
    scopes: &[Scope::Read],
    accounts: None,
};
const WRITE: Tok = Tok {
    id: "writer",
    secret: "secret-write",
    scopes: &[Scope::Write],
    accounts: None,
};
const ADMIN: Tok = Tok {
    id: "operator",
    secret: "secret-admin",
    scopes: &[Scope::Admin],
    accounts: None,
};
const METRICS: Tok = Tok {
    id: "scraper",
    secret: "secret-metrics",
    scopes: &[Scope::Metrics],
    accounts: None,
};
/// Reads and writes, on `shop-*` only.
const SHOP: Tok = Tok {
    id: "shop",
    secret: "secret-shop",
    scopes: &[Scope::Read, Scope::Write],
    accounts: Some(&["shop-*"]),
};
/// Reads and writes everything (the test's own setup).
const ALL: Tok = Tok {
    id: "setup",
    secret: "secret-all",
    scopes: &[Scope::Read, Scope::Write],
    accounts: None,
};
const TOKENS: [&Tok; 6] = [&READ, &WRITE, &ADMIN, &METRICS, &SHOP, &ALL];

fn auth_config() -> AuthConfig {
    AuthConfig {
        tokens: TOKENS
            .iter()
            .map(|t| TokenConfig {
                id: t.id.into(),
                sha256: digest_hex(&digest(t.secret)),
                scopes: t.scopes.to_vec(),
                accounts: t
                    .accounts
                    .map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
            })
            .collect(),
    }
}

fn start(admin_listen: bool) -> TestNode {
    TestNode::start_with(|c| {
        c.auth = Some(auth_config());
        if admin_listen {
            c.node.admin_listen = Some("127.0.0.1:0".into());
        }
    })
}

/// The answer to a request: status, JSON body (Null if none), `WWW-Authenticate`.
struct Answer {
    status: u16,
    body: Value,
    challenge: Option<String>,
}

impl Answer {
    fn code(&self) -> &str {
        common::code(&self.body)
    }
}

fn send(method: &str, url: &str, body: Option<&Value>, token: Option<&str>) -> Answer {
    let a = agent();
    let auth = token.map(|t| format!("Bearer {t}"));
    let result = match method {
        "GET" => {
            let mut r = a.get(url);
            if let Some(h) = &auth {
                r = r.header("authorization", h);
            }
            r.call()
        }
        "POST" => {
            let mut r = a.post(url).header("content-type", "application/json");
            if let Some(h) = &auth {
                r = r.header("authorization", h);
            }
            // A capture or void runs once: its repeats (every token the matrix tries) replay
            // the first answer under one key.
            if url.contains("/v1/holds/") {
                let path = url.split_once("/v1/").map_or(url, |(_, p)| p);
                r = r.header(
                    "idempotency-key",
                    format!("matrix-{}", path.replace('/', "-")),
                );
            }
            r.send(body.map(Value::to_string).unwrap_or_default())
        }
        m => panic!("method {m}"),
    };
    let mut resp = result.expect("the node answers");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    Answer {
        status: resp.status().as_u16(),
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        challenge,
    }
}

/// What [`setup_pair`] made: a transfer from `a` to `b`, two holds of `a` for `b` (one to
/// capture, one to void), and a disbursement from `a` to `b`.
struct Made {
    transfer: String,
    capture: String,
    void: String,
    disbursement: String,
}

/// A concrete request for a route of the table, acting on account `a` (with `b` the other
/// account of its group, and `m` what was made between them), and the status it answers when
/// allowed. Every route of [`ROUTES`] must have one: the matrix fails on a new route until
/// it is added here.
fn example(r: &RouteSpec, a: &str, b: &str, m: &Made) -> (String, Option<Value>, u16) {
    let t = &m.transfer;
    let (path, body, status) = match r.path {
        "/v1/accounts" => (
            r.path.to_owned(),
            Some(json!({"id": a, "currency": "EUR"})),
            200,
        ),
        "/v1/accounts/{id}" => (format!("/v1/accounts/{a}"), None, 200),
        "/v1/accounts/{id}/freeze" => (format!("/v1/accounts/{a}/freeze"), None, 200),
        "/v1/accounts/{id}/unfreeze" => (format!("/v1/accounts/{a}/unfreeze"), None, 200),
        "/v1/accounts/{id}/entries" => (format!("/v1/accounts/{a}/entries"), None, 200),
        "/v1/accounts/{id}/transfers" => (format!("/v1/accounts/{a}/transfers"), None, 200),
        "/v1/deposits" => (
            r.path.to_owned(),
            Some(json!({"account": a, "amount": 1})),
            201,
        ),
        "/v1/withdrawals" => (
            r.path.to_owned(),
            Some(json!({"account": a, "amount": 1})),
            201,
        ),
        "/v1/transfers" => (
            r.path.to_owned(),
            Some(json!({"from": a, "to": b, "amount": 1})),
            200,
        ),
        "/v1/transfers/{id}" => (format!("/v1/transfers/{t}"), None, 200),
        "/v1/transfers/batch" => (
            r.path.to_owned(),
            Some(json!({"transfers": [{"from": a, "to": b, "amount": 1}]})),
            200,
        ),
        "/v1/disbursements" => (
            r.path.to_owned(),
            Some(json!({"from": a, "legs": [{"to": b, "amount": 1}]})),
            200,
        ),
        "/v1/disbursements/{id}" => (format!("/v1/disbursements/{}", m.disbursement), None, 200),
        "/v1/holds" => (
            r.path.to_owned(),
            Some(json!({"from": a, "to": b, "amount": 1})),
            201,
        ),
        "/v1/holds/{id}" => (format!("/v1/holds/{}", m.capture), None, 200),
        "/v1/holds/{id}/capture" => (format!("/v1/holds/{}/capture", m.capture), None, 200),
        "/v1/holds/{id}/void" => (format!("/v1/holds/{}/void", m.void), None, 200),
        // A plain GET without the upgrade headers: the upgrade itself refuses it.
        "/v1/stream" => (r.path.to_owned(), None, 400),
        "/v1/openapi.json" => (r.path.to_owned(), None, 200),
        "/admin/status" | "/admin/accounts" | "/admin/pending" | "/admin/audit"
        | "/admin/holds" | "/admin/stats" => (r.path.to_owned(), None, 200),
        "/admin/owner/{id}" => (format!("/admin/owner/{a}"), None, 200),
        "/admin/accounts/{id}/entries" => (format!("/admin/accounts/{a}/entries"), None, 200),
        // The example account is not sharded: an admin gets the route's 404 (the listing of
        // a sharded account's shards is covered by tests/sharded.rs).
        "/admin/accounts/{id}/shards" => (format!("/admin/accounts/{a}/shards"), None, 404),
        "/admin/drain" => (r.path.to_owned(), None, 200),
        "/healthz" | "/readyz" | "/metrics" | "/ui" => (r.path.to_owned(), None, 200),
        "/ui/{name}" => ("/ui/app.js".to_owned(), None, 200),
        other => panic!("route {other} has no example in the auth matrix: add one"),
    };
    (path, body, status)
}

/// Whether a route acts on the account its example names (and so obeys account patterns).
fn names_account(r: &RouteSpec) -> bool {
    r.path.starts_with("/v1/") && r.path != "/v1/stream" && r.path != "/v1/openapi.json"
}

/// What a route answers a token: `Ok(status)` when allowed, `Err((status, code))` when
/// refused.
fn expected(r: &RouteSpec, tok: &Tok, a: &str, ok_status: u16) -> Result<u16, (u16, &'static str)> {
    let scope_ok = match r.access {
        Access::Open | Access::Authenticated => true,
        Access::Scope(s) => tok.scopes.contains(&s),
    };
    if !scope_ok {
        return Err((403, "forbidden"));
    }
    let account_ok = tok
        .accounts
        .is_none_or(|ps| ps.iter().any(|p| a.starts_with(p.trim_end_matches('*'))));
    if names_account(r) && !account_ok {
        return Err((403, "forbidden"));
    }
    Ok(ok_status)
}

/// Opens `a` and `b` with money, moves some from `a` to `b` and holds some twice.
fn setup_pair(n: &TestNode, a: &str, b: &str) -> Made {
    for id in [a, b] {
        let r = send(
            "POST",
            &format!("{}/v1/accounts", n.url),
            Some(&json!({"id": id, "currency": "EUR"})),
            Some(ALL.secret),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let r = send(
            "POST",
            &format!("{}/v1/deposits", n.url),
            Some(&json!({"account": id, "amount": 1000})),
            Some(ALL.secret),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = send(
        "POST",
        &format!("{}/v1/transfers", n.url),
        Some(&json!({"from": a, "to": b, "amount": 5})),
        Some(ALL.secret),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let transfer = r.body["id"].as_str().unwrap().to_owned();
    let hold = || {
        let r = send(
            "POST",
            &format!("{}/v1/holds", n.url),
            Some(&json!({"from": a, "to": b, "amount": 7})),
            Some(ALL.secret),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    };
    let r = send(
        "POST",
        &format!("{}/v1/disbursements", n.url),
        Some(&json!({"from": a, "legs": [{"to": b, "amount": 3}]})),
        Some(ALL.secret),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    Made {
        transfer,
        capture: hold(),
        void: hold(),
        disbursement: r.body["id"].as_str().unwrap().to_owned(),
    }
}

fn balance(n: &TestNode, id: &str) -> u64 {
    let r = send(
        "GET",
        &format!("{}/v1/accounts/{id}", n.url),
        None,
        Some(ALL.secret),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["balance"].as_u64().unwrap()
}

fn check(n: &TestNode, r: &RouteSpec, token: Option<&Tok>, a: &str, b: &str, m: &Made) {
    let (path, body, ok_status) = example(r, a, b, m);
    let url = format!("{}{path}", n.url);
    let got = send(r.method, &url, body.as_ref(), token.map(|t| t.secret));
    let who = token.map_or("no token", |t| t.id);
    let want = match token {
        None if r.access != Access::Open => Err((401, "unauthorized")),
        None => Ok(ok_status),
        Some(tok) => expected(r, tok, a, ok_status),
    };
    match want {
        Ok(status) => assert_eq!(
            got.status, status,
            "{} {path} with {who}: {}",
            r.method, got.body
        ),
        Err((status, code)) => {
            assert_eq!(
                (got.status, got.code()),
                (status, code),
                "{} {path} with {who}: {}",
                r.method,
                got.body
            );
            if status == 401 {
                let c = got.challenge.unwrap_or_default();
                assert!(c.starts_with("Bearer"), "WWW-Authenticate {c:?}");
            }
        }
    }
}

#[test]
fn auth_matrix_walks_every_route_with_every_kind_of_token() {
    // Proves each route of the gateway's table answers 401 without a token or with a wrong
    // one (health excepted), 403 to a token without its scope, its business answer to a token
    // with it, and obeys account patterns: a `shop-*` token acts on shop accounts only, and a
    // refused request changed nothing.
    let n = start(false);
    let shop_t = setup_pair(&n, "shop-1", "shop-2");
    let other_t = setup_pair(&n, "other-1", "other-2");
    let paths: BTreeSet<&str> = ROUTES.iter().map(|r| r.path).collect();
    assert_eq!(paths.len(), ROUTES.len(), "one entry per route");
    let drain = ROUTES.iter().find(|r| r.path == "/admin/drain").unwrap();
    let others_before = (balance(&n, "other-1"), balance(&n, "other-2"));
    for r in ROUTES.iter().filter(|r| r.path != drain.path) {
        check(&n, r, None, "shop-1", "shop-2", &shop_t);
        // A wrong token: a near miss of a real one, and junk.
        for wrong in ["secret-reaD", "secret-rea", "Bearer"] {
            let (path, body, _) = example(r, "shop-1", "shop-2", &shop_t);
            let got = send(
                r.method,
                &format!("{}{path}", n.url),
                body.as_ref(),
                Some(wrong),
            );
            if r.access == Access::Open {
                assert_eq!(got.status, 200, "{path}");
            } else {
                assert_eq!(
                    (got.status, got.code()),
                    (401, "unauthorized"),
                    "{path} with {wrong:?}"
                );
            }
        }
        for tok in [&READ, &WRITE, &ADMIN, &METRICS] {
            check(&n, r, Some(tok), "shop-1", "shop-2", &shop_t);
        }
        check(&n, r, Some(&SHOP), "shop-1", "shop-2", &shop_t);
        check(&n, r, Some(&SHOP), "other-1", "other-2", &other_t);
    }
    assert_eq!(
        (balance(&n, "other-1"), balance(&n, "other-2")),
        others_before,
        "nothing the shop token was refused ran"
    );
    // A batch with one item the token may not send is refused whole: nothing runs.
    let shop_before = balance(&n, "shop-1");
    let got = send(
        "POST",
        &format!("{}/v1/transfers/batch", n.url),
        Some(&json!({"transfers": [
            {"from": "shop-1", "to": "shop-2", "amount": 1},
            {"from": "other-1", "to": "shop-1", "amount": 1},
        ]})),
        Some(SHOP.secret),
    );
    assert_eq!((got.status, got.code()), (403, "forbidden"), "{}", got.body);
    assert_eq!(balance(&n, "shop-1"), shop_before);
    // Money may move out of a shop account into any account, and a transfer from another
    // account into a shop one is readable by its id.
    let got = send(
        "POST",
        &format!("{}/v1/transfers", n.url),
        Some(&json!({"from": "shop-1", "to": "other-1", "amount": 1})),
        Some(SHOP.secret),
    );
    assert_eq!(got.status, 200, "{}", got.body);
    let incoming = send(
        "POST",
        &format!("{}/v1/transfers", n.url),
        Some(&json!({"from": "other-2", "to": "shop-2", "amount": 1})),
        Some(ALL.secret),
    );
    let id = incoming.body["id"].as_str().unwrap();
    let got = send(
        "GET",
        &format!("{}/v1/transfers/{id}", n.url),
        None,
        Some(SHOP.secret),
    );
    assert_eq!(got.status, 200, "{}", got.body);
    // `?access_token=` is the WebSocket's alone: elsewhere only the header counts.
    let got = send(
        "GET",
        &format!("{}/v1/accounts/shop-1?access_token={}", n.url, ALL.secret),
        None,
        None,
    );
    assert_eq!((got.status, got.code()), (401, "unauthorized"));
    // A path that names no route needs a token too, then is not found.
    let nowhere = format!("{}/v2/nowhere", n.url);
    let got = send("GET", &nowhere, None, None);
    assert_eq!((got.status, got.code()), (401, "unauthorized"));
    let got = send("GET", &nowhere, None, Some(READ.secret));
    assert_eq!((got.status, got.code()), (404, "not_found"));
    // Refusals are counted.
    let got = agent()
        .get(&format!("{}/metrics", n.url))
        .header("authorization", &format!("Bearer {}", METRICS.secret))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    for code in ["unauthorized", "forbidden"] {
        let line = format!("wallet_auth_refused_total{{code=\"{code}\"}} ");
        let count: u64 = got
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("{line} in /metrics"))
            .parse()
            .unwrap();
        assert!(count > 0, "{line}");
    }
    // Last, as it takes the node out of the ring: the drain route.
    for tok in [None, Some(&READ), Some(&WRITE), Some(&METRICS), Some(&SHOP)] {
        check(&n, drain, tok, "shop-1", "shop-2", &shop_t);
    }
    check(&n, drain, Some(&ADMIN), "shop-1", "shop-2", &shop_t);
}

#[test]
fn auth_off_without_auth_section_every_route_open() {
    // Proves a node without [auth] keeps every route open, ignoring any Authorization header.
    let n = TestNode::start();
    let r = send(
        "POST",
        &format!("{}/v1/accounts", n.url),
        Some(&json!({"id": "free", "currency": "EUR"})),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    for path in ["/admin/status", "/metrics", "/v1/accounts/free"] {
        let r = send("GET", &format!("{}{path}", n.url), None, Some("anything"));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
}

mod ws {
    use super::*;
    use common::{ws_next as next, ws_send as sendf};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Error as WsError;

    /// Connects to `/v1/stream` with a query token or a header token; `Err(status)` when the
    /// upgrade is refused.
    async fn connect(
        n: &TestNode,
        query: Option<&str>,
        header: Option<&str>,
    ) -> Result<common::Ws, u16> {
        let mut url = format!("ws://{}/v1/stream", n.host());
        if let Some(q) = query {
            url.push_str(&format!("?access_token={q}"));
        }
        let mut req = url.into_client_request().unwrap();
        if let Some(h) = header {
            req.headers_mut()
                .insert("authorization", format!("Bearer {h}").parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(ws),
            Err(WsError::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("connect: {e}"),
        }
    }

    fn is_error(f: &Value, code: &str, req_id: Option<&str>) -> bool {
        f["type"].as_str() == Some("error")
            && f["code"].as_str() == Some(code)
            && f["req_id"].as_str() == req_id
    }

    #[test]
    fn auth_websocket_checks_the_upgrade_and_every_subscription_and_command() {
        // Proves the upgrade needs a valid token (header or ?access_token=), and that each
        // subscription and command is checked against the token's scopes and accounts, a
        // refusal being a `forbidden` frame after which the socket keeps working.
        let n = start(false);
        setup_pair(&n, "shop-1", "shop-2");
        setup_pair(&n, "other-1", "other-2");
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            assert_eq!(connect(&n, None, None).await.err(), Some(401));
            assert_eq!(connect(&n, Some("nope"), None).await.err(), Some(401));
            assert_eq!(connect(&n, None, Some("nope")).await.err(), Some(401));
            // A token with neither read nor write may not hold a socket.
            assert_eq!(connect(&n, Some(METRICS.secret), None).await.err(), Some(403));
            assert_eq!(connect(&n, None, Some(ADMIN.secret)).await.err(), Some(403));

            let mut ws = connect(&n, Some(SHOP.secret), None).await.expect("query token");
            sendf(&mut ws, json!({"op": "subscribe", "account": "other-1"})).await;
            let f = next(&mut ws).await;
            assert!(is_error(&f, "forbidden", None), "{f}");
            sendf(&mut ws, json!({"op": "ping"})).await;
            assert_eq!(next(&mut ws).await["type"].as_str(), Some("pong"));
            sendf(&mut ws, json!({"op": "subscribe", "account": "shop-1"})).await;
            let f = next(&mut ws).await;
            assert_eq!(f["type"].as_str(), Some("subscribed"), "{f}");
            for (op, req_id) in [
                (json!({"op": "deposit", "req_id": "d", "account": "other-1", "amount": 1}), "d"),
                (json!({"op": "withdraw", "req_id": "w", "account": "other-1", "amount": 1}), "w"),
                (json!({"op": "transfer", "req_id": "t", "from": "other-1", "to": "shop-1", "amount": 1}), "t"),
                (json!({"op": "get", "req_id": "g", "account": "other-2"}), "g"),
            ] {
                sendf(&mut ws, op.clone()).await;
                let f = next(&mut ws).await;
                assert!(is_error(&f, "forbidden", Some(req_id)), "{op} -> {f}");
            }
            // Out of a shop account into another is allowed; its entry streams.
            sendf(&mut ws, json!({"op": "transfer", "req_id": "ok", "from": "shop-1", "to": "other-1", "amount": 1})).await;
            let mut result = None;
            while result.is_none() {
                let f = next(&mut ws).await;
                match f["type"].as_str() {
                    Some("result") => result = Some(f),
                    Some("balance") => assert_eq!(f["account"].as_str(), Some("shop-1")),
                    _ => panic!("unexpected {f}"),
                }
            }
            assert_eq!(result.unwrap()["req_id"].as_str(), Some("ok"));

            // A read-only token in the header: subscriptions and `get`, no money moves.
            let mut ws = connect(&n, None, Some(READ.secret)).await.expect("header token");
            sendf(&mut ws, json!({"op": "deposit", "req_id": "d", "account": "other-1", "amount": 1})).await;
            let f = next(&mut ws).await;
            assert!(is_error(&f, "forbidden", Some("d")), "{f}");
            sendf(&mut ws, json!({"op": "get", "req_id": "g", "account": "other-1"})).await;
            let f = next(&mut ws).await;
            assert_eq!((f["type"].as_str(), f["req_id"].as_str()), (Some("result"), Some("g")), "{f}");

            // A write-only token: commands, no subscriptions.
            let mut ws = connect(&n, None, Some(WRITE.secret)).await.expect("header token");
            sendf(&mut ws, json!({"op": "subscribe", "account": "other-1"})).await;
            let f = next(&mut ws).await;
            assert!(is_error(&f, "forbidden", None), "{f}");
            sendf(&mut ws, json!({"op": "deposit", "req_id": "d", "account": "other-1", "amount": 1})).await;
            let f = next(&mut ws).await;
            assert_eq!((f["type"].as_str(), f["req_id"].as_str()), (Some("result"), Some("d")), "{f}");
        });
    }
}

#[test]
fn auth_admin_listen_serves_admin_and_metrics_only_there() {
    // Proves node.admin_listen takes /admin/* and /metrics off the public listener (404
    // there, with a valid token) and serves them on its own address under the same token
    // rules, while /v1 stays on the public one and the dashboard's page is on both.
    let n = start(true);
    let admin = n.admin_url.clone().expect("an admin listener");
    for path in ["/admin/status", "/metrics"] {
        for tok in [&ADMIN, &METRICS] {
            let got = send("GET", &format!("{}{path}", n.url), None, Some(tok.secret));
            assert_eq!(
                (got.status, got.code()),
                (404, "not_found"),
                "public {path}"
            );
        }
    }
    let got = send(
        "GET",
        &format!("{admin}/admin/status"),
        None,
        Some(ADMIN.secret),
    );
    assert_eq!(got.status, 200, "{}", got.body);
    let got = send(
        "GET",
        &format!("{admin}/metrics"),
        None,
        Some(METRICS.secret),
    );
    assert_eq!(got.status, 200);
    let got = send("GET", &format!("{admin}/admin/status"), None, None);
    assert_eq!((got.status, got.code()), (401, "unauthorized"));
    let got = send(
        "GET",
        &format!("{admin}/admin/status"),
        None,
        Some(METRICS.secret),
    );
    assert_eq!((got.status, got.code()), (403, "forbidden"));
    let got = send("GET", &format!("{admin}/healthz"), None, None);
    assert_eq!(got.status, 200);
    // The dashboard's static page is on both listeners, without a token.
    for base in [&n.url, &admin] {
        for path in ["/ui", "/ui/app.js"] {
            let got = send("GET", &format!("{base}{path}"), None, None);
            assert_eq!(got.status, 200, "{base}{path}");
        }
    }
    let got = send(
        "GET",
        &format!("{admin}/v1/accounts/x"),
        None,
        Some(READ.secret),
    );
    assert_eq!((got.status, got.code()), (404, "not_found"));
    let got = send(
        "GET",
        &format!("{}/v1/accounts/x", n.url),
        None,
        Some(READ.secret),
    );
    assert_eq!((got.status, got.code()), (404, "account_not_found"));
}

#[test]
fn auth_admin_listen_without_auth_moves_the_routes_too() {
    // Proves node.admin_listen works on a node without [auth]: the routes move, open.
    let n = TestNode::start_with(|c| c.node.admin_listen = Some("127.0.0.1:0".into()));
    let admin = n.admin_url.clone().expect("an admin listener");
    let got = send("GET", &format!("{}/metrics", n.url), None, None);
    assert_eq!(got.status, 404);
    let got = send("GET", &format!("{admin}/metrics"), None, None);
    assert_eq!(got.status, 200);
    let got = send("GET", &format!("{admin}/admin/status"), None, None);
    assert_eq!(got.status, 200, "{}", got.body);
}

#[test]
fn auth_a_receiver_reads_only_its_own_legs_of_a_disbursement() {
    // Proves a token limited to a receiver's accounts reads a disbursement paying it with
    // its own legs only (not the other receivers' ids and amounts), and one naming no account
    // of it is refused.
    let n = start(false);
    setup_pair(&n, "other-1", "other-2");
    let r = send(
        "POST",
        &format!("{}/v1/accounts", n.url),
        Some(&json!({"id": "shop-9", "currency": "EUR"})),
        Some(ALL.secret),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let legs = json!([{"to": "other-2", "amount": 4}, {"to": "shop-9", "amount": 6}]);
    let r = send(
        "POST",
        &format!("{}/v1/disbursements", n.url),
        Some(&json!({"from": "other-1", "legs": legs})),
        Some(ALL.secret),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let url = format!(
        "{}/v1/disbursements/{}",
        n.url,
        r.body["id"].as_str().unwrap()
    );
    let shop = send("GET", &url, None, Some(SHOP.secret));
    assert_eq!(shop.status, 200, "{}", shop.body);
    assert_eq!(
        shop.body["legs"],
        json!([{"to": "shop-9", "amount": 6, "status": "completed"}])
    );
    let all = send("GET", &url, None, Some(ALL.secret));
    assert_eq!(all.body["legs"].as_array().unwrap().len(), 2);
    let none = send("GET", &made_other(&n), None, Some(SHOP.secret));
    assert_eq!((none.status, none.code()), (403, "forbidden"));
}

/// The URL of a disbursement that names no shop account.
fn made_other(n: &TestNode) -> String {
    let r = send(
        "POST",
        &format!("{}/v1/disbursements", n.url),
        Some(&json!({"from": "other-1", "legs": [{"to": "other-2", "amount": 1}]})),
        Some(ALL.secret),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    format!(
        "{}/v1/disbursements/{}",
        n.url,
        r.body["id"].as_str().unwrap()
    )
}
