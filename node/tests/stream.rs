//! The WebSocket API: ordered, gap-free, duplicate-free balance streams, resumable with
//! `from_seq`; commands with `req_id`; bad frames answered without closing the socket.

mod common;
use common::{call, TestNode};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use common::{ws_connect as connect, ws_next as next, ws_send as send};

fn post(n: &TestNode, path: &str, body: Value) -> Value {
    let (s, v) = call(
        "POST",
        &format!("{}{path}", n.url),
        Some(&body.to_string()),
        None,
    );
    assert!(s < 300, "{path}: {s} {v}");
    v
}

#[test]
fn stream_replays_from_seq_then_streams_live_in_order() {
    // Proves invariant 8 on one socket: replay after from_seq, then live, seq by seq.
    let n = TestNode::start();
    post(&n, "/v1/accounts", json!({"id": "s", "currency": "EUR"}));
    post(&n, "/v1/accounts", json!({"id": "r", "currency": "EUR"}));
    for i in 1..=3 {
        post(
            &n,
            "/v1/deposits",
            json!({"account": "s", "amount": i * 10}),
        );
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ws = connect(&n).await;
        send(&mut ws, json!({"op": "subscribe", "account": "s", "from_seq": 1})).await;
        let sub = next(&mut ws).await;
        assert_eq!((sub["type"].as_str(), sub["seq"].as_u64()), (Some("subscribed"), Some(3)));
        for seq in 2..=3 {
            let f = next(&mut ws).await;
            assert_eq!((f["type"].as_str(), f["seq"].as_u64()), (Some("balance"), Some(seq)), "{f}");
        }
        // Live updates from HTTP writes and from a WebSocket command, in order.
        let url = n.url.clone();
        tokio::task::spawn_blocking(move || {
            for _ in 0..20 {
                let (s, _) = common::call("POST", &format!("{url}/v1/deposits"), Some(r#"{"account":"s","amount":1}"#), None);
                assert_eq!(s, 201);
            }
        })
        .await
        .unwrap();
        send(&mut ws, json!({"op": "transfer", "req_id": "q1", "from": "s", "to": "r", "amount": 5, "idempotency_key": "ws-1"})).await;
        let mut seqs = vec![];
        let mut result = None;
        while seqs.len() < 22 || result.is_none() {
            let f = next(&mut ws).await;
            match f["type"].as_str() {
                Some("balance") => {
                    assert_eq!(f["held"].as_u64().unwrap(), f["balance"].as_u64().unwrap() - f["available"].as_u64().unwrap());
                    seqs.push(f["seq"].as_u64().unwrap());
                }
                Some("result") => result = Some(f),
                other => panic!("unexpected frame {other:?}: {f}"),
            }
        }
        assert_eq!(seqs, (4..=25).collect::<Vec<_>>(), "no gap, no duplicate");
        let r = result.unwrap();
        assert_eq!((r["req_id"].as_str(), r["result"]["status"].as_str()), (Some("q1"), Some("completed")));
    });
}

#[test]
fn stream_bad_frames_get_errors_and_socket_stays_open() {
    // Proves a malformed or invalid frame is answered with an error, and the socket keeps working.
    let n = TestNode::start();
    post(&n, "/v1/accounts", json!({"id": "a", "currency": "EUR"}));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ws = connect(&n).await;
        // An oversized frame (over 64 KiB) is refused like any bad frame.
        let oversized = format!(r#"{{"op":"ping","pad":"{}"}}"#, "x".repeat(100 * 1024));
        for bad in [
            "not json",
            r#"{"op":"fly"}"#,
            r#"{"op":"subscribe","account":"bad id"}"#,
            r#"{"op":"deposit","req_id":"x","account":"a","amount":0}"#,
            oversized.as_str(),
        ] {
            ws.send(Message::Text(bad.to_owned().into())).await.unwrap();
            let f = next(&mut ws).await;
            assert_eq!(
                (f["type"].as_str(), f["code"].as_str()),
                (Some("error"), Some("invalid_request")),
                "{} -> {f}",
                &bad[..bad.len().min(60)]
            );
        }
        send(&mut ws, json!({"op": "subscribe", "account": "nobody"})).await;
        let f = next(&mut ws).await;
        assert_eq!(f["code"].as_str(), Some("account_not_found"));
        send(
            &mut ws,
            json!({"op": "withdraw", "req_id": "w1", "account": "a", "amount": 5}),
        )
        .await;
        let f = next(&mut ws).await;
        assert_eq!(
            (f["code"].as_str(), f["req_id"].as_str()),
            (Some("insufficient_funds"), Some("w1"))
        );
        send(&mut ws, json!({"op": "ping"})).await;
        assert_eq!(next(&mut ws).await["type"].as_str(), Some("pong"));
        send(&mut ws, json!({"op": "get", "req_id": "g", "account": "a"})).await;
        let f = next(&mut ws).await;
        assert_eq!(
            (f["type"].as_str(), f["result"]["id"].as_str()),
            (Some("result"), Some("a"))
        );
    });
}

#[test]
fn stream_resume_after_reconnect_has_no_gap_or_duplicate() {
    // Proves a client that reconnects with from_seq = last seen gets exactly the rest.
    let n = TestNode::start();
    post(&n, "/v1/accounts", json!({"id": "a", "currency": "EUR"}));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ws = connect(&n).await;
        send(&mut ws, json!({"op": "subscribe", "account": "a"})).await;
        assert_eq!(next(&mut ws).await["seq"].as_u64(), Some(0));
        let url = n.url.clone();
        let deposit = move |k: u64| {
            let url = url.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    for _ in 0..k {
                        common::call(
                            "POST",
                            &format!("{url}/v1/deposits"),
                            Some(r#"{"account":"a","amount":2}"#),
                            None,
                        );
                    }
                })
                .await
                .unwrap()
            }
        };
        deposit(5).await;
        let mut last = 0;
        for _ in 0..3 {
            last = next(&mut ws).await["seq"].as_u64().unwrap();
        }
        assert_eq!(last, 3);
        drop(ws);
        deposit(4).await;
        let mut ws = connect(&n).await;
        send(
            &mut ws,
            json!({"op": "subscribe", "account": "a", "from_seq": last}),
        )
        .await;
        assert_eq!(next(&mut ws).await["type"].as_str(), Some("subscribed"));
        let got: Vec<u64> = {
            let mut v = vec![];
            while v.len() < 6 {
                v.push(next(&mut ws).await["seq"].as_u64().unwrap());
            }
            v
        };
        assert_eq!(got, vec![4, 5, 6, 7, 8, 9]);
    });
}

#[test]
fn stream_pipelined_commands_are_each_answered_by_req_id() {
    // Proves commands may be pipelined on one socket: 40 transfers sent before any answer is
    // read are all answered, each exactly once under its req_id, and all of them ran once.
    let n = TestNode::start();
    post(&n, "/v1/accounts", json!({"id": "p", "currency": "EUR"}));
    post(&n, "/v1/accounts", json!({"id": "q", "currency": "EUR"}));
    post(&n, "/v1/deposits", json!({"account": "p", "amount": 1_000}));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ws = connect(&n).await;
        for i in 0..40 {
            send(
                &mut ws,
                json!({"op": "transfer", "req_id": format!("r{i}"), "from": "p", "to": "q",
                       "amount": 1 + i % 3, "idempotency_key": format!("pipe-{i}")}),
            )
            .await;
        }
        let mut answered = std::collections::BTreeMap::new();
        while answered.len() < 40 {
            let f = next(&mut ws).await;
            assert_eq!(f["type"].as_str(), Some("result"), "{f}");
            let id = f["req_id"].as_str().unwrap().to_owned();
            let status = f["result"]["status"].as_str().unwrap().to_owned();
            assert!(
                answered.insert(id.clone(), status).is_none(),
                "{id} answered twice"
            );
        }
        assert!(answered.values().all(|s| s == "completed"), "{answered:?}");
        let expected: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
        let mut got: Vec<String> = answered.into_keys().collect();
        got.sort_by_key(|r| r[1..].parse::<u32>().unwrap());
        assert_eq!(got, expected);
    });
    let moved: u64 = (0..40u64).map(|i| 1 + i % 3).sum();
    let (_, q) = call("GET", &format!("{}/v1/accounts/q", n.url), None, None);
    assert_eq!(q["balance"].as_u64(), Some(moved));
}
