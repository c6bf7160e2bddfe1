//! The `/v1` HTTP API against API.md: shapes, statuses and error codes, over a real socket.

mod common;
use common::{call, code, TestNode};
use serde_json::json;

fn open(n: &TestNode, id: &str, cur: &str) {
    let (s, _) = call(
        "POST",
        &format!("{}/v1/accounts", n.url),
        Some(&json!({"id": id, "currency": cur}).to_string()),
        None,
    );
    assert!(s == 201 || s == 200, "open {id}: {s}");
}

fn deposit(n: &TestNode, id: &str, amount: u64) {
    let (s, v) = call(
        "POST",
        &format!("{}/v1/deposits", n.url),
        Some(&json!({"account": id, "amount": amount}).to_string()),
        None,
    );
    assert_eq!(s, 201, "deposit: {v}");
}

#[test]
fn api_account_lifecycle_and_transfer_roundtrip() {
    // Proves the happy path of every /v1 route returns API.md's status and shape.
    let n = TestNode::start();
    let (s, v) = call(
        "POST",
        &format!("{}/v1/accounts", n.url),
        Some(r#"{"id":"alice","currency":"EUR"}"#),
        None,
    );
    assert_eq!(s, 201);
    assert_eq!(
        v,
        json!({"id":"alice","currency":"EUR","status":"active","balance":0,"available":0,"held":0,"seq":0})
    );
    let (s, _) = call(
        "POST",
        &format!("{}/v1/accounts", n.url),
        Some(r#"{"id":"alice","currency":"EUR"}"#),
        None,
    );
    assert_eq!(s, 200, "re-open with the same settings");
    open(&n, "bob", "EUR");
    let (s, v) = call(
        "POST",
        &format!("{}/v1/deposits", n.url),
        Some(r#"{"account":"alice","amount":1000,"reference":"salary"}"#),
        Some("d1"),
    );
    assert_eq!(s, 201);
    assert_eq!(
        (
            v["account"].as_str(),
            v["amount"].as_u64(),
            v["balance"].as_u64(),
            v["seq"].as_u64()
        ),
        (Some("alice"), Some(1000), Some(1000), Some(1))
    );
    assert!(v["id"].is_string());
    let (s, v) = call(
        "POST",
        &format!("{}/v1/withdrawals", n.url),
        Some(r#"{"account":"alice","amount":100}"#),
        None,
    );
    assert_eq!((s, v["balance"].as_u64()), (201, Some(900)));
    let (s, t) = call(
        "POST",
        &format!("{}/v1/transfers", n.url),
        Some(r#"{"from":"alice","to":"bob","amount":250}"#),
        Some("t1"),
    );
    assert_eq!(s, 200, "completed within wait_ms: {t}");
    assert_eq!(t["status"], "completed");
    let tid = t["id"].as_str().unwrap().to_owned();
    let (s, g) = call("GET", &format!("{}/v1/transfers/{tid}", n.url), None, None);
    assert_eq!(
        (s, &g["status"], &g["from"], &g["to"], g["amount"].as_u64()),
        (
            200,
            &json!("completed"),
            &json!("alice"),
            &json!("bob"),
            Some(250)
        )
    );
    assert!(g["created_at"].as_u64().unwrap() > 0);
    let (_, a) = call("GET", &format!("{}/v1/accounts/alice", n.url), None, None);
    assert_eq!(
        (
            a["balance"].as_u64(),
            a["available"].as_u64(),
            a["held"].as_u64()
        ),
        (Some(650), Some(650), Some(0))
    );
    let (_, b) = call("GET", &format!("{}/v1/accounts/bob", n.url), None, None);
    assert_eq!(b["balance"].as_u64(), Some(250));
    let (s, h) = call(
        "GET",
        &format!("{}/v1/accounts/alice/entries?after_seq=0&limit=2", n.url),
        None,
        None,
    );
    assert_eq!(s, 200);
    let kinds: Vec<_> = h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["deposit", "withdrawal"]);
    assert_eq!(h["next_after_seq"].as_u64(), Some(2));
    let (_, h2) = call(
        "GET",
        &format!("{}/v1/accounts/alice/entries?after_seq=2", n.url),
        None,
        None,
    );
    let kinds: Vec<_> = h2["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["hold", "transfer_out"]);
    assert!(h2["next_after_seq"].is_null());
    assert_eq!(h2["entries"][0]["transfer_id"].as_str(), Some(tid.as_str()));
    let (s, f) = call(
        "POST",
        &format!("{}/v1/accounts/alice/freeze", n.url),
        None,
        None,
    );
    assert_eq!((s, &f["status"]), (200, &json!("frozen")));
    let (s, e) = call(
        "POST",
        &format!("{}/v1/withdrawals", n.url),
        Some(r#"{"account":"alice","amount":1}"#),
        None,
    );
    assert_eq!((s, code(&e)), (422, "account_frozen"));
    let (s, f) = call(
        "POST",
        &format!("{}/v1/accounts/alice/unfreeze", n.url),
        None,
        None,
    );
    assert_eq!((s, &f["status"]), (200, &json!("active")));
}

#[test]
fn api_errors_carry_stable_codes_and_statuses() {
    // Proves each error of API.md's table is produced where it applies, with its status.
    let n = TestNode::start();
    open(&n, "a", "EUR");
    open(&n, "b", "EUR");
    open(&n, "u", "USD");
    deposit(&n, "a", 100);
    let u = &n.url;
    let cases: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        (
            "GET",
            format!("{u}/v1/accounts/nobody"),
            None,
            404,
            "account_not_found",
        ),
        (
            "GET",
            format!("{u}/v1/accounts/bad%20id"),
            None,
            400,
            "invalid_request",
        ),
        (
            "GET",
            format!("{u}/v1/transfers/t_none"),
            None,
            404,
            "transfer_not_found",
        ),
        (
            "POST",
            format!("{u}/v1/accounts"),
            Some(r#"{"id":"a","currency":"USD"}"#),
            409,
            "account_exists",
        ),
        (
            "POST",
            format!("{u}/v1/accounts"),
            Some(r#"{"id":"x","currency":"eur"}"#),
            400,
            "invalid_request",
        ),
        (
            "POST",
            format!("{u}/v1/accounts"),
            Some("{not json"),
            400,
            "invalid_request",
        ),
        (
            "POST",
            format!("{u}/v1/deposits"),
            Some(r#"{"account":"a","amount":0}"#),
            400,
            "invalid_request",
        ),
        (
            "POST",
            format!("{u}/v1/deposits"),
            Some(r#"{"account":"a","amount":1.5}"#),
            400,
            "invalid_request",
        ),
        (
            "POST",
            format!("{u}/v1/deposits"),
            Some(r#"{"account":"a","amount":-1}"#),
            400,
            "invalid_request",
        ),
        (
            "POST",
            format!("{u}/v1/deposits"),
            Some(r#"{"account":"a","amount":9007199254740992}"#),
            400,
            "invalid_request",
        ),
        (
            "POST",
            format!("{u}/v1/deposits"),
            Some(r#"{"account":"a","amount":"5"}"#),
            400,
            "invalid_request",
        ),
        (
            "POST",
            format!("{u}/v1/deposits"),
            Some(r#"{"account":"a"}"#),
            400,
            "invalid_request",
        ),
        (
            "POST",
            format!("{u}/v1/deposits"),
            Some(r#"{"account":"a","amount":5,"extra":1}"#),
            400,
            "invalid_request",
        ),
        (
            "POST",
            format!("{u}/v1/deposits"),
            Some(r#"{"account":"nobody","amount":5}"#),
            404,
            "account_not_found",
        ),
        (
            "POST",
            format!("{u}/v1/deposits"),
            Some(r#"{"account":"a","amount":9007199254740991}"#),
            422,
            "balance_overflow",
        ),
        (
            "POST",
            format!("{u}/v1/withdrawals"),
            Some(r#"{"account":"a","amount":101}"#),
            422,
            "insufficient_funds",
        ),
        (
            "POST",
            format!("{u}/v1/transfers"),
            Some(r#"{"from":"a","to":"a","amount":1}"#),
            422,
            "same_account",
        ),
        (
            "POST",
            format!("{u}/v1/transfers"),
            Some(r#"{"from":"a","to":"b","amount":101}"#),
            422,
            "insufficient_funds",
        ),
        (
            "POST",
            format!("{u}/v1/transfers"),
            Some(r#"{"from":"a","to":"u","amount":1}"#),
            422,
            "currency_mismatch",
        ),
        (
            "POST",
            format!("{u}/v1/transfers"),
            Some(r#"{"from":"a","to":"nobody","amount":1}"#),
            422,
            "account_not_found",
        ),
        (
            "POST",
            format!("{u}/v1/transfers"),
            Some(r#"{"from":"a","to":"b","amount":1,"wait_ms":999999}"#),
            400,
            "invalid_request",
        ),
        (
            "GET",
            format!("{u}/v1/accounts/a/entries?limit=0"),
            None,
            400,
            "invalid_request",
        ),
        (
            "GET",
            format!("{u}/v1/accounts/a/entries?after_seq=x"),
            None,
            400,
            "invalid_request",
        ),
        ("GET", format!("{u}/v1/nothing"), None, 404, "not_found"),
    ];
    for (method, url, body, status, want) in cases {
        let (s, v) = call(method, &url, body, None);
        assert_eq!(
            (s, code(&v)),
            (status, want),
            "{method} {url} {body:?} -> {v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "a sentence: {v}"
        );
    }
    // Failed transfers were released: the money is all there.
    let (_, a) = call("GET", &format!("{u}/v1/accounts/a"), None, None);
    assert_eq!(
        (a["balance"].as_u64(), a["held"].as_u64()),
        (Some(100), Some(0))
    );
}

#[test]
fn api_idempotency_key_replays_first_result_and_refuses_other_body() {
    // Proves the same key and body return the first result without applying twice, and a
    // different body under the same key is refused.
    let n = TestNode::start();
    open(&n, "a", "EUR");
    open(&n, "b", "EUR");
    let body = r#"{"account":"a","amount":70}"#;
    let (s1, v1) = call(
        "POST",
        &format!("{}/v1/deposits", n.url),
        Some(body),
        Some("k-dep"),
    );
    let (s2, v2) = call(
        "POST",
        &format!("{}/v1/deposits", n.url),
        Some(body),
        Some("k-dep"),
    );
    assert_eq!((s1, &v1), (s2, &v2));
    let (s3, v3) = call(
        "POST",
        &format!("{}/v1/deposits", n.url),
        Some(r#"{"account":"a","amount":71}"#),
        Some("k-dep"),
    );
    assert_eq!((s3, code(&v3)), (422, "idempotency_key_reused"));
    let t = r#"{"from":"a","to":"b","amount":30}"#;
    let (s1, t1) = call(
        "POST",
        &format!("{}/v1/transfers", n.url),
        Some(t),
        Some("k-t"),
    );
    let (s2, t2) = call(
        "POST",
        &format!("{}/v1/transfers", n.url),
        Some(t),
        Some("k-t"),
    );
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(t1["id"], t2["id"], "one transfer");
    let (_, a) = call("GET", &format!("{}/v1/accounts/a", n.url), None, None);
    assert_eq!(a["balance"].as_u64(), Some(40));
    let (s, bad) = call(
        "POST",
        &format!("{}/v1/idem-nothing", n.url),
        None,
        Some(&"k".repeat(300)),
    );
    assert_eq!(s, 404, "{bad}");
    let (s, bad) = call(
        "POST",
        &format!("{}/v1/deposits", n.url),
        Some(body),
        Some(&"k".repeat(256)),
    );
    assert_eq!((s, code(&bad)), (400, "invalid_request"));
}

#[test]
fn api_health_ready_metrics_and_admin() {
    // Proves the operations routes answer and metrics expose the documented families.
    let n = TestNode::start();
    open(&n, "a", "EUR");
    deposit(&n, "a", 5);
    assert_eq!(
        call("GET", &format!("{}/healthz", n.url), None, None).0,
        200
    );
    assert_eq!(call("GET", &format!("{}/readyz", n.url), None, None).0, 200);
    let mut resp = common::agent()
        .get(format!("{}/metrics", n.url))
        .call()
        .unwrap();
    // The Prometheus text format, as Prometheus scrapes it.
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = resp.body_mut().read_to_string().unwrap();
    for family in [
        "wallet_http_requests_total{route=\"/v1/deposits\",method=\"POST\",status=\"201\"} 1",
        "wallet_http_request_duration_seconds_bucket",
        "wallet_active_actors 1",
        "wallet_storage_commits_total",
        "wallet_pending_sagas 0",
        "wallet_group_batches_count",
        "wallet_group_commit_seconds_count",
    ] {
        assert!(text.contains(family), "missing {family} in\n{text}");
    }
    let (s, st) = call("GET", &format!("{}/admin/status", n.url), None, None);
    assert_eq!(
        (s, st["backend"].as_str(), st["active_actors"].as_u64()),
        (200, Some("memory"), Some(1))
    );
    let (s, page) = call(
        "GET",
        &format!("{}/admin/accounts?limit=10", n.url),
        None,
        None,
    );
    assert_eq!(
        (
            s,
            page["accounts"][0]["id"].as_str(),
            page["accounts"][0]["balance"].as_u64()
        ),
        (200, Some("a"), Some(5))
    );
    let (s, p) = call("GET", &format!("{}/admin/pending", n.url), None, None);
    assert_eq!(
        (s, p["transfers"].as_array().map(|a| a.len())),
        (200, Some(0))
    );
    let (s, o) = call("GET", &format!("{}/admin/owner/a", n.url), None, None);
    assert_eq!(
        (s, o["node_id"].as_str(), o["active"].as_bool()),
        (200, Some("n1"), Some(true))
    );
}

#[test]
fn api_idle_actors_passivate_and_reactivate_with_state() {
    // Proves idle passivation frees the actor and the next request reloads the same state.
    let n = TestNode::start_with(|c| c.actors.idle_passivate_ms = 100);
    open(&n, "a", "EUR");
    deposit(&n, "a", 42);
    let active =
        || call("GET", &format!("{}/admin/status", n.url), None, None).1["active_actors"].as_u64();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while active() != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "actor never passivated"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (_, a) = call("GET", &format!("{}/v1/accounts/a", n.url), None, None);
    assert_eq!(a["balance"].as_u64(), Some(42));
}

#[test]
fn api_active_actor_cap_evicts_least_recently_used() {
    // Proves the active_max cap holds and evicted accounts keep their state.
    let n = TestNode::start_with(|c| c.actors.active_max = 3);
    for i in 0..10 {
        open(&n, &format!("acct{i}"), "EUR");
        deposit(&n, &format!("acct{i}"), i + 1);
    }
    let (_, st) = call("GET", &format!("{}/admin/status", n.url), None, None);
    assert!(st["active_actors"].as_u64().unwrap() <= 3, "{st}");
    for i in 0..10 {
        let (_, a) = call("GET", &format!("{}/v1/accounts/acct{i}", n.url), None, None);
        assert_eq!(a["balance"].as_u64(), Some(i + 1));
    }
}
