//! `POST /v1/transfers/batch` against API.md's "Batch transfers", over a real socket.

mod common;
use common::{call, TestNode};
use serde_json::{json, Value};

fn post(n: &TestNode, path: &str, body: &Value) -> (u16, Value) {
    call(
        "POST",
        &format!("{}{path}", n.url),
        Some(&body.to_string()),
        None,
    )
}

fn open_funded(n: &TestNode, id: &str, cur: &str, amount: u64) {
    let (s, v) = post(n, "/v1/accounts", &json!({"id": id, "currency": cur}));
    assert_eq!(s, 201, "open {id}: {v}");
    if amount > 0 {
        let (s, v) = post(n, "/v1/deposits", &json!({"account": id, "amount": amount}));
        assert_eq!(s, 201, "deposit: {v}");
    }
}

fn balance(n: &TestNode, id: &str) -> u64 {
    let (s, v) = call("GET", &format!("{}/v1/accounts/{id}", n.url), None, None);
    assert_eq!(s, 200, "{v}");
    v["balance"].as_u64().unwrap()
}

/// The status of a transfer result, or the code of an error result.
fn outcome(r: &Value) -> String {
    match r["error"]["code"].as_str() {
        Some(code) => format!("error {code}"),
        None => {
            let status = r["status"].as_str().unwrap().to_owned();
            match r["reason"].as_str() {
                Some(reason) => format!("{status} {reason}"),
                None => status,
            }
        }
    }
}

fn outcomes(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(outcome)
        .collect()
}

#[test]
fn batch_answers_each_item_in_order_with_its_own_result() {
    // Proves every item is its own transfer: valid ones complete, a refused one fails alone
    // with its code, a malformed or invalid item is refused alone, and the results are in the
    // items' order.
    let n = TestNode::start();
    open_funded(&n, "a", "EUR", 1_000);
    open_funded(&n, "b", "EUR", 1_000);
    open_funded(&n, "usd", "USD", 0);
    let (s, v) = post(
        &n,
        "/v1/transfers/batch",
        &json!({"transfers": [
            {"from": "a", "to": "b", "amount": 100, "reference": "r1"},
            {"from": "b", "to": "a", "amount": 5},
            {"from": "a", "to": "a", "amount": 1},
            {"from": "a", "to": "b", "amount": -3},
            {"from": "a", "to": "ghost", "amount": 7},
            {"from": "a", "to": "usd", "amount": 7},
            {"from": "nobody", "to": "a", "amount": 7},
            {"from": "a", "to": "b", "amount": 1, "color": "red"},
        ]}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        outcomes(&v),
        [
            "completed",
            "completed",
            "error same_account",
            "error invalid_request",
            "failed account_not_found",
            "failed currency_mismatch",
            "error account_not_found",
            "error invalid_request",
        ],
        "{v}"
    );
    let first = &v["results"][0];
    assert_eq!(
        (
            first["from"].as_str(),
            first["to"].as_str(),
            first["amount"].as_u64()
        ),
        (Some("a"), Some("b"), Some(100))
    );
    assert_eq!((balance(&n, "a"), balance(&n, "b")), (905, 1_095));
}

#[test]
fn batch_applies_one_sender_s_items_in_the_order_given() {
    // Proves the items of one sender run in order: with 100 available, 60 then 60 then 40
    // leaves the second refused and the third applied (any other order differs).
    let n = TestNode::start();
    open_funded(&n, "s", "EUR", 100);
    open_funded(&n, "r1", "EUR", 0);
    open_funded(&n, "r2", "EUR", 0);
    let (s, v) = post(
        &n,
        "/v1/transfers/batch",
        &json!({"transfers": [
            {"from": "s", "to": "r1", "amount": 60},
            {"from": "s", "to": "r2", "amount": 60},
            {"from": "s", "to": "r2", "amount": 40},
        ]}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        outcomes(&v),
        ["completed", "error insufficient_funds", "completed"],
        "{v}"
    );
    assert_eq!(
        (balance(&n, "s"), balance(&n, "r1"), balance(&n, "r2")),
        (0, 60, 40)
    );
}

#[test]
fn batch_items_with_idempotency_keys_run_once() {
    // Proves an item's idempotency_key means what the header means: sending the batch again
    // answers the same transfers and moves no money twice.
    let n = TestNode::start();
    open_funded(&n, "a", "EUR", 1_000);
    open_funded(&n, "b", "EUR", 0);
    let body = json!({"transfers": [
        {"from": "a", "to": "b", "amount": 10, "idempotency_key": "k1"},
        {"from": "a", "to": "b", "amount": 20, "idempotency_key": "k2"},
    ]});
    let (s1, v1) = post(&n, "/v1/transfers/batch", &body);
    let (s2, v2) = post(&n, "/v1/transfers/batch", &body);
    assert_eq!((s1, s2), (200, 200));
    let ids = |v: &Value| -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&v1), ids(&v2), "the same transfers answered again");
    assert_eq!((balance(&n, "a"), balance(&n, "b")), (970, 30));
    let (_, v3) = post(
        &n,
        "/v1/transfers/batch",
        &json!({"transfers": [{"from": "a", "to": "b", "amount": 99, "idempotency_key": "k1"}]}),
    );
    assert_eq!(
        outcomes(&v3),
        ["error idempotency_key_reused"],
        "the same key with another body is refused: {v3}"
    );
}

#[test]
fn batch_envelope_errors_fail_the_whole_request() {
    // Proves a malformed envelope is a 400 for the whole request: no items, too many items,
    // a wait past the maximum, unknown fields, a body that is not JSON.
    let n = TestNode::start();
    let item = json!({"from": "a", "to": "b", "amount": 1});
    let too_many: Vec<Value> = (0..8_191).map(|_| item.clone()).collect();
    for body in [
        json!({"transfers": []}),
        json!({"transfers": too_many}),
        json!({"transfers": [item.clone()], "wait_ms": 60_001}),
        json!({"transfers": [item.clone()], "extra": 1}),
        json!({"items": [item.clone()]}),
    ] {
        let (s, v) = post(&n, "/v1/transfers/batch", &body);
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{v}"
        );
    }
    let (s, _) = call(
        "POST",
        &format!("{}/v1/transfers/batch", n.url),
        Some("not json"),
        None,
    );
    assert_eq!(s, 400);
}

#[test]
fn batch_of_the_largest_size_is_accepted_and_all_of_it_runs() {
    // Proves 8,190 items fit the request (the body limit of this route is larger than the
    // other routes') and that every one of them runs: 8,190 transfers of 1 spread over
    // several senders and receivers.
    let n = TestNode::start();
    let senders = 8;
    for i in 0..senders {
        open_funded(&n, &format!("s{i}"), "EUR", 10_000);
        open_funded(&n, &format!("r{i}"), "EUR", 0);
    }
    let items: Vec<Value> = (0..8_190)
        .map(|k| {
            json!({"from": format!("s{}", k % senders), "to": format!("r{}", (k / senders) % senders),
                   "amount": 1, "reference": "x".repeat(200), "idempotency_key": format!("key-{k}")})
        })
        .collect();
    let (s, v) = post(
        &n,
        "/v1/transfers/batch",
        &json!({"transfers": items, "wait_ms": 30_000}),
    );
    assert_eq!(s, 200, "{}", &v.to_string()[..200.min(v.to_string().len())]);
    let results = outcomes(&v);
    assert_eq!(results.len(), 8_190);
    assert!(
        results.iter().all(|r| r == "completed"),
        "{:?}",
        results.iter().find(|r| *r != "completed")
    );
    let received: u64 = (0..senders).map(|i| balance(&n, &format!("r{i}"))).sum();
    assert_eq!(received, 8_190);
}
