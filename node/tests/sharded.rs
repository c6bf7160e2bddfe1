//! Sharded (hot) accounts against API.md's "Sharded (hot) accounts": opening with `shards`,
//! credits spread over the shards, a debit larger than any one shard served by moving money
//! between shards, `insufficient_funds` only when the whole account lacks the money, reads
//! that sum the shards, entries and the stream per shard (`shard=`), the transfer list over
//! every shard, holds, disbursements, freezing, idempotency keys, and `walletctl`.

mod common;
use common::{code, deposit, open_account, walletctl, ws_connect, ws_next, ws_send, TestNode};
use node::ledger::shards::shard_for;
use serde_json::{json, Value};

/// A key for account `m` of `k` shards whose deposit lands on shard `j`.
fn key_for_shard(k: u16, j: u16, tag: &str) -> String {
    (0..)
        .map(|i| format!("{tag}-{i}"))
        .find(|key| shard_for(k, key) == j)
        .expect("some key picks every shard")
}

/// Balances of each shard, from `/admin/accounts/{id}/shards`.
fn shard_balances(n: &TestNode, id: &str) -> Vec<u64> {
    let (s, v) = n.get(&format!("/admin/accounts/{id}/shards"));
    assert_eq!(s, 200, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["balance"].as_u64().unwrap())
        .collect()
}

fn post_ok(n: &TestNode, path: &str, body: Value, key: Option<&str>, status: u16) -> Value {
    let (s, v) = n.post(path, body, key);
    assert_eq!(s, status, "{path}: {v}");
    v
}

#[test]
fn a_sharded_account_spreads_credits_gathers_debits_and_reads_its_sums() {
    // Proves the section's rules end to end on one node: credits land on several shards, a
    // withdrawal larger than any single shard succeeds (money moves between shards), one
    // larger than the whole account is refused `insufficient_funds` and changes nothing, and
    // the account's view is the exact sum at every step; keys replay, views never show a
    // shard's id, and the transfer list holds the account's transfers (not the moves).
    let n = TestNode::start();
    let v = post_ok(
        &n,
        "/v1/accounts",
        json!({"id": "m", "currency": "EUR", "shards": 4}),
        None,
        201,
    );
    assert_eq!((v["shards"].as_u64(), v.get("seq")), (Some(4), None), "{v}");
    let again = json!({"id": "m", "currency": "EUR", "shards": 4});
    assert_eq!(n.post("/v1/accounts", again, None).0, 200);
    let (s, v) = n.post(
        "/v1/accounts",
        json!({"id": "m", "currency": "EUR", "shards": 2}),
        None,
    );
    assert_eq!((s, code(&v)), (409, "account_exists"), "{v}");
    for bad in [0, 65] {
        let body = json!({"id": "z", "currency": "EUR", "shards": bad});
        let (s, v) = n.post("/v1/accounts", body, None);
        assert_eq!((s, code(&v)), (400, "invalid_request"), "{v}");
    }
    open_account(&n.url, "alice");
    deposit(&n.url, "alice", 10_000);

    // 40 deposits of 10, each key on the shard it picks.
    for i in 0..40 {
        let key = format!("dep-{i}");
        let body = json!({"account": "m", "amount": 10});
        let v = post_ok(&n, "/v1/deposits", body, Some(&key), 201);
        assert_eq!(v["account"], "m", "{v}");
    }
    let per_shard = shard_balances(&n, "m");
    assert_eq!(per_shard.iter().sum::<u64>(), 400);
    assert!(
        per_shard.iter().filter(|b| **b > 0).count() >= 3,
        "{per_shard:?}"
    );
    assert_eq!(n.money("m"), (400, 400, 0));

    // More than any one shard holds, less than the account: served.
    let biggest = *per_shard.iter().max().unwrap();
    assert!(biggest < 350, "{per_shard:?}");
    let v = post_ok(
        &n,
        "/v1/withdrawals",
        json!({"account": "m", "amount": 350}),
        Some("w-1"),
        201,
    );
    assert_eq!(v["account"], "m");
    assert_eq!(n.money("m"), (50, 50, 0));
    // A repeat replays; more than the account holds is refused and changes nothing.
    let again = json!({"account": "m", "amount": 350});
    assert_eq!(n.post("/v1/withdrawals", again, Some("w-1")).1, v);
    let (s, e) = n.post(
        "/v1/withdrawals",
        json!({"account": "m", "amount": 51}),
        None,
    );
    assert_eq!((s, code(&e)), (422, "insufficient_funds"), "{e}");
    assert_eq!(n.money("m"), (50, 50, 0));

    // Transfers both ways, shown with the account's id.
    let t_in = post_ok(
        &n,
        "/v1/transfers",
        json!({"from": "alice", "to": "m", "amount": 100}),
        None,
        200,
    );
    assert_eq!(
        (t_in["from"].as_str(), t_in["to"].as_str()),
        (Some("alice"), Some("m"))
    );
    let body = json!({"from": "m", "to": "alice", "amount": 120});
    let t_out = post_ok(&n, "/v1/transfers", body.clone(), Some("t-1"), 200);
    assert_eq!(t_out["from"], "m", "{t_out}");
    assert_eq!(
        n.post("/v1/transfers", body, Some("t-1")).1["id"],
        t_out["id"]
    );
    let (s, e) = n.post(
        "/v1/transfers",
        json!({"from": "m", "to": "m", "amount": 1}),
        None,
    );
    assert_eq!((s, code(&e)), (422, "same_account"), "{e}");
    assert_eq!(n.money("m"), (30, 30, 0));
    let (_, got) = n.get(&format!("/v1/transfers/{}", t_out["id"].as_str().unwrap()));
    assert_eq!(
        (got["from"].as_str(), got["to"].as_str()),
        (Some("m"), Some("alice"))
    );

    // The account's transfer list: both transfers, no move between shards.
    let (s, list) = n.get("/v1/accounts/m/transfers");
    assert_eq!(s, 200, "{list}");
    let ids: Vec<&str> = list["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [t_out["id"].as_str().unwrap(), t_in["id"].as_str().unwrap()]
    );
    assert!(list["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| !t["from"].as_str().unwrap().contains('~')
            && !t["to"].as_str().unwrap().contains('~')));

    // A hold out of the sharded account, captured; a disbursement paying it.
    let h = post_ok(
        &n,
        "/v1/holds",
        json!({"from": "m", "to": "alice", "amount": 10}),
        None,
        201,
    );
    assert_eq!(
        (h["from"].as_str(), n.money("m")),
        (Some("m"), (30, 20, 10))
    );
    let path = format!("/v1/holds/{}/capture", h["id"].as_str().unwrap());
    let c = post_ok(&n, &path, json!({}), None, 200);
    assert_eq!(
        (c["status"].as_str(), c["from"].as_str()),
        (Some("captured"), Some("m"))
    );
    open_account(&n.url, "bob");
    let body =
        json!({"from": "alice", "legs": [{"to": "m", "amount": 5}, {"to": "bob", "amount": 5}]});
    let d = post_ok(&n, "/v1/disbursements", body, None, 200);
    assert_eq!(d["legs"][0]["to"], "m", "{d}");
    assert_eq!(n.money("m"), (25, 25, 0));

    // Conservation over every account (the shards included, through the audit).
    let total = n.money("alice").0 + n.money("bob").0 + n.money("m").0;
    assert_eq!(total, 10_000 + 400 - 350);
    let out = walletctl(&n.url, &["audit"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn entries_streams_freezing_and_client_ids_follow_the_shards() {
    // Proves entries and the stream are per shard (`shard=` required and checked, each with
    // its own seq, entries tagged), a shard's internal id is refused from clients, freezing
    // freezes every shard, and walletctl opens and shows sharded accounts.
    let n = TestNode::start();
    let body = json!({"id": "h", "currency": "EUR", "shards": 3});
    post_ok(&n, "/v1/accounts", body, None, 201);
    open_account(&n.url, "plain");
    for (j, amount) in [(0u16, 7u64), (2, 9), (2, 11)] {
        let key = key_for_shard(3, j, &format!("e{amount}"));
        let body = json!({"account": "h", "amount": amount});
        let m = post_ok(&n, "/v1/deposits", body, Some(&key), 201);
        // The shard that took it is named: the balance and seq are that shard's.
        assert_eq!(
            (m["account"].as_str(), m["shard"].as_u64()),
            (Some("h"), Some(u64::from(j))),
            "{m}"
        );
    }
    let (s, v) = n.get("/v1/accounts/h/entries");
    assert_eq!((s, code(&v)), (400, "invalid_request"), "{v}");
    let (s, v) = n.get("/v1/accounts/h/entries?shard=3");
    assert_eq!((s, code(&v)), (400, "invalid_request"), "{v}");
    let (s, v) = n.get("/v1/accounts/plain/entries?shard=0");
    assert_eq!((s, code(&v)), (400, "invalid_request"), "{v}");
    let amounts = |j: u16| -> Vec<(u64, u64, u64)> {
        n.entries(&format!("/v1/accounts/h/entries?shard={j}"))
            .iter()
            .map(|e| {
                assert_eq!(e["shard"].as_u64(), Some(u64::from(j)), "{e}");
                (
                    e["seq"].as_u64().unwrap(),
                    e["amount"].as_u64().unwrap(),
                    e["balance"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(amounts(0), [(1, 7, 7)]);
    assert_eq!(amounts(1), []);
    assert_eq!(amounts(2), [(1, 9, 9), (2, 11, 20)]);

    // Ids with '~' are internal.
    let (s, v) = n.post("/v1/deposits", json!({"account": "h~1", "amount": 1}), None);
    assert_eq!((s, code(&v)), (400, "invalid_request"), "{v}");
    let (s, v) = n.get("/v1/accounts/h~1");
    assert_eq!((s, code(&v)), (400, "invalid_request"), "{v}");
    let body = json!({"from": "plain", "to": "h~0", "amount": 1});
    let (s, v) = n.post("/v1/transfers", body, None);
    assert_eq!((s, code(&v)), (400, "invalid_request"), "{v}");

    // Freezing freezes every shard.
    let v = post_ok(&n, "/v1/accounts/h/freeze", json!({}), None, 200);
    assert_eq!(
        (v["status"].as_str(), v["balance"].as_u64()),
        (Some("frozen"), Some(27))
    );
    for j in 0..3 {
        let key = key_for_shard(3, j, "frozen");
        let body = json!({"account": "h", "amount": 1});
        let (s, v) = n.post("/v1/deposits", body, Some(&key));
        assert_eq!((s, code(&v)), (422, "account_frozen"), "shard {j}: {v}");
    }
    post_ok(&n, "/v1/accounts/h/unfreeze", json!({}), None, 200);

    // The stream: per shard, each with its own seq, resumable.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut ws = ws_connect(&n).await;
        ws_send(&mut ws, json!({"op": "subscribe", "account": "h"})).await;
        let f = ws_next(&mut ws).await;
        assert_eq!(
            (f["type"].as_str(), f["code"].as_str()),
            (Some("error"), Some("invalid_request")),
            "{f}"
        );
        let sub = json!({"op": "subscribe", "account": "h", "shard": 2, "from_seq": 0});
        ws_send(&mut ws, sub).await;
        let f = ws_next(&mut ws).await;
        assert_eq!(
            (f["type"].as_str(), f["shard"].as_u64(), f["seq"].as_u64()),
            (Some("subscribed"), Some(2), Some(2)),
            "{f}"
        );
        for want in [1u64, 2] {
            let f = ws_next(&mut ws).await;
            assert_eq!(
                (
                    f["type"].as_str(),
                    f["account"].as_str(),
                    f["shard"].as_u64()
                ),
                (Some("balance"), Some("h"), Some(2)),
                "{f}"
            );
            assert_eq!(
                (f["seq"].as_u64(), f["entry"]["shard"].as_u64()),
                (Some(want), Some(2))
            );
        }
        let key = key_for_shard(3, 2, "live");
        let body = json!({"account": "h", "amount": 5});
        post_ok(&n, "/v1/deposits", body, Some(&key), 201);
        let f = ws_next(&mut ws).await;
        assert_eq!(
            (f["seq"].as_u64(), f["balance"].as_u64()),
            (Some(3), Some(25)),
            "{f}"
        );
        // Unsubscribing from a shard number past the largest is answered, and the socket
        // (and the node) go on.
        let bad = json!({"op": "unsubscribe", "account": "h", "shard": 64});
        ws_send(&mut ws, bad).await;
        assert_eq!(ws_next(&mut ws).await["type"], "unsubscribed");
        ws_send(&mut ws, json!({"op": "ping"})).await;
        assert_eq!(ws_next(&mut ws).await["type"], "pong");
    });

    // walletctl: open with --shards, show lists each shard and its node.
    let out = walletctl(
        &n.url,
        &["account", "open", "w", "--currency", "EUR", "--shards", "3"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = walletctl(&n.url, &["account", "show", "w"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("shards     3"),
        "{text}"
    );
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("shard  node"))
        .skip(1)
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    let out = walletctl(&n.url, &["account", "history", "h", "--shard", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
