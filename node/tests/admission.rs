//! Admission control (API.md "Admission control"): past each limit of `[limits]` the request is
//! answered 503 `overloaded` with `Retry-After` and nothing of it ran; a request for an account
//! that was never opened activates nothing.

mod common;
use common::{agent, call, code, ws_next as next, ws_send as send, TestNode};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn post(n: &TestNode, path: &str, body: Value) -> (u16, Value) {
    call(
        "POST",
        &format!("{}{path}", n.url),
        Some(&body.to_string()),
        None,
    )
}

/// The value of an unlabelled gauge in `/metrics`.
fn gauge(n: &TestNode, name: &str) -> u64 {
    let mut resp = agent()
        .get(&format!("{}/metrics", n.url))
        .call()
        .expect("metrics answer");
    let text = resp.body_mut().read_to_string().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "{what} within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn admission_past_http_inflight_max_answers_overloaded_with_retry_after() {
    let n = TestNode::start_with(|c| c.limits.http_inflight_max = 1);
    post(&n, "/v1/accounts", json!({"id": "a", "currency": "EUR"}));
    // A request whose body has not all arrived yet holds the one place.
    let body = json!({"account": "a", "amount": 5}).to_string();
    let mut slow = std::net::TcpStream::connect(n.host()).unwrap();
    write!(
        slow,
        "POST /v1/deposits HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        n.host(),
        body.len(),
        &body[..1]
    )
    .unwrap();
    // /metrics is always admitted: it shows the place taken.
    until("the slow request counted in progress", || {
        gauge(&n, "wallet_http_inflight") == 1
    });
    let mut resp = agent()
        .get(&format!("{}/v1/accounts/a", n.url))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(retry.as_deref(), Some("1"));
    let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(code(&v), "overloaded", "{v}");
    // The slow request completes; its place is free again and the refused one did nothing.
    slow.write_all(&body.as_bytes()[1..]).unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let (s, v) = call("GET", &format!("{}/v1/accounts/a", n.url), None, None);
    assert_eq!((s, v["balance"].as_u64()), (200, Some(5)), "{v}");
}

#[test]
fn admission_full_account_queue_refuses_the_rest_of_a_batch_and_runs_none_of_it() {
    let n = TestNode::start_with(|c| c.limits.actor_queue_max = 1);
    for id in ["a", "b"] {
        post(&n, "/v1/accounts", json!({"id": id, "currency": "EUR"}));
    }
    post(&n, "/v1/deposits", json!({"account": "a", "amount": 100}));
    // One sender's items reach its account in one message: the first fills its queue of 1.
    let items: Vec<Value> = (0..3)
        .map(|i| json!({"from": "a", "to": "b", "amount": 1, "idempotency_key": format!("q{i}")}))
        .collect();
    let (s, v) = post(&n, "/v1/transfers/batch", json!({"transfers": items}));
    assert_eq!(s, 200, "{v}");
    let codes: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or("ok"))
        .collect();
    assert_eq!(codes, vec!["ok", "overloaded", "overloaded"], "{v}");
    let (_, a) = call("GET", &format!("{}/v1/accounts/a", n.url), None, None);
    assert_eq!(
        a["balance"].as_u64(),
        Some(99),
        "only the admitted transfer moved money"
    );
}

#[test]
fn admission_never_opened_accounts_activate_nothing() {
    let n = TestNode::start();
    let commits = gauge(&n, "wallet_storage_commits_total");
    for i in 0..50 {
        let (s, v) = call(
            "GET",
            &format!("{}/v1/accounts/ghost{i}", n.url),
            None,
            None,
        );
        assert_eq!((s, code(&v)), (404, "account_not_found"), "{v}");
        let (s, v) = post(
            &n,
            "/v1/deposits",
            json!({"account": format!("ghost{i}"), "amount": 1}),
        );
        assert_eq!((s, code(&v)), (404, "account_not_found"), "{v}");
    }
    let (s, v) = post(
        &n,
        "/v1/transfers/batch",
        json!({"transfers": [{"from": "ghost1", "to": "ghost2", "amount": 1}]}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["results"][0]["error"]["code"], "account_not_found", "{v}");
    // Subscribing to one over the WebSocket is refused the same way.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ws = common::ws_connect(&n).await;
        send(&mut ws, json!({"op": "subscribe", "account": "ghost7"})).await;
        let e = next(&mut ws).await;
        assert_eq!(e["code"], "account_not_found", "{e}");
    });
    assert_eq!(
        gauge(&n, "wallet_active_actors"),
        0,
        "no account was activated"
    );
    assert_eq!(
        gauge(&n, "wallet_storage_commits_total"),
        commits,
        "nothing was written"
    );
}

#[test]
fn admission_websocket_connections_and_subscriptions_have_limits() {
    let n = TestNode::start_with(|c| {
        c.limits.ws_connections_max = 1;
        c.limits.ws_subscriptions_max = 1;
    });
    for id in ["a", "b"] {
        post(&n, "/v1/accounts", json!({"id": id, "currency": "EUR"}));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("ws://{}/v1/stream", n.host());
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        // A second connection is refused before the upgrade.
        match tokio_tungstenite::connect_async(&url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 503);
                assert_eq!(resp.headers()["retry-after"], "1");
            }
            Err(e) => panic!("expected a 503, got {e}"),
            Ok(_) => panic!("a second connection past ws_connections_max was accepted"),
        }
        send(&mut ws, json!({"op": "subscribe", "account": "a"})).await;
        assert_eq!(next(&mut ws).await["type"], "subscribed");
        // A second subscription is refused; the socket stays open and the first stays.
        send(&mut ws, json!({"op": "subscribe", "account": "b"})).await;
        let e = next(&mut ws).await;
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str()),
            (Some("error"), Some("overloaded")),
            "{e}"
        );
        send(&mut ws, json!({"op": "ping"})).await;
        assert_eq!(next(&mut ws).await["type"], "pong");
        // Once the first connection closed, its place is free again.
        ws.close(None).await.unwrap();
        drop(ws);
        let mut again = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while again.is_none() {
            assert!(
                Instant::now() < deadline,
                "the closed connection's place came back"
            );
            match tokio_tungstenite::connect_async(&url).await {
                Ok((ws, _)) => again = Some(ws),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
}
