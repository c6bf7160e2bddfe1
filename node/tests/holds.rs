//! `/v1/holds` against API.md's "Holds": create, show, capture (in full or in part, once),
//! void, expiry with no request (also when the payer was passivated or its node down), the
//! receiver refusing a capture, idempotency keys, and every error code of the section.

mod common;
use common::{call, code, deposit, open_account, walletctl, TestNode};
use node::storage::memory::MemoryBackend;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Creates a hold and returns its view.
fn hold(n: &TestNode, from: &str, to: &str, amount: u64, extra: Value) -> Value {
    let mut body = json!({"from": from, "to": to, "amount": amount});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (s, v) = n.post("/v1/holds", body, None);
    assert_eq!(s, 201, "{v}");
    v
}

/// (kind, amount, transfer_id) of every entry of an account.
fn entries(n: &TestNode, id: &str) -> Vec<(String, u64, String)> {
    n.entries(&format!("/v1/accounts/{id}/entries"))
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["amount"].as_u64().unwrap(),
                e["transfer_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// Polls the hold until `status` or `within` passes; returns the view and when it got there.
fn wait_status(n: &TestNode, hold: &str, status: &str, within: Duration) -> (Value, Instant) {
    let deadline = Instant::now() + within;
    loop {
        let (s, v) = n.get(&format!("/v1/holds/{hold}"));
        assert_eq!(s, 200, "{v}");
        if v["status"] == status {
            return (v, Instant::now());
        }
        assert!(
            Instant::now() < deadline,
            "hold {hold} still {v} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn holds_capture_in_part_moves_it_and_releases_the_rest() {
    // Proves a hold takes its amount out of `available`, shows as API.md's hold, replays
    // under its key, and a partial capture moves that amount to the receiver as a transfer
    // and releases the rest, once: a second capture or a void is hold_not_active.
    let n = TestNode::start();
    open_account(&n.url, "alice");
    open_account(&n.url, "bob");
    deposit(&n.url, "alice", 1_000);
    let body = json!({"from": "alice", "to": "bob", "amount": 300, "reference": "ride 7"});
    let (s, h) = n.post("/v1/holds", body.clone(), Some("k1"));
    assert_eq!(s, 201, "{h}");
    assert_eq!(
        (
            &h["from"],
            &h["to"],
            &h["amount"],
            &h["captured"],
            &h["status"],
            &h["reference"]
        ),
        (
            &json!("alice"),
            &json!("bob"),
            &json!(300),
            &json!(0),
            &json!("held"),
            &json!("ride 7")
        )
    );
    let created = h["created_at"].as_u64().unwrap();
    assert_eq!(
        h["expires_at"].as_u64().unwrap(),
        created + 7 * 24 * 3_600_000
    );
    assert_eq!(n.money("alice"), (1_000, 700, 300));
    let (s, again) = n.post("/v1/holds", body, Some("k1"));
    assert_eq!(
        (s, &again["id"]),
        (201, &h["id"]),
        "the key replays the hold"
    );
    let (s, v) = n.post(
        "/v1/holds",
        json!({"from": "alice", "to": "bob", "amount": 301}),
        Some("k1"),
    );
    assert_eq!((s, code(&v)), (422, "idempotency_key_reused"));
    let hid = id_of(&h);
    let (s, shown) = n.get(&format!("/v1/holds/{hid}"));
    assert_eq!((s, &shown), (200, &h));

    let capture = format!("/v1/holds/{hid}/capture");
    let (s, c) = n.post(&capture, json!({"amount": 120}), Some("c1"));
    assert_eq!(s, 200, "{c}");
    assert_eq!(
        (&c["status"], &c["captured"], &c["amount"]),
        (&json!("captured"), &json!(120), &json!(300))
    );
    let tid = c["capture_id"].as_str().unwrap().to_owned();
    assert_eq!(n.money("alice"), (880, 880, 0));
    assert_eq!(n.money("bob"), (120, 120, 0));
    let (s, replayed) = n.post(&capture, json!({"amount": 120}), Some("c1"));
    assert_eq!((s, &replayed), (200, &c), "the key replays the capture");
    let (s, v) = n.post(&capture, json!({}), Some("c2"));
    assert_eq!((s, code(&v)), (422, "hold_not_active"));
    assert!(
        v["error"]["message"].as_str().unwrap().contains("captured"),
        "{v}"
    );
    let (s, v) = n.post(&format!("/v1/holds/{hid}/void"), json!({}), None);
    assert_eq!((s, code(&v)), (422, "hold_not_active"));
    assert_eq!(
        n.money("alice"),
        (880, 880, 0),
        "refused requests moved nothing"
    );

    // The capture is a transfer: shown, listed on both sides, in both journals.
    let (s, t) = n.get(&format!("/v1/transfers/{tid}"));
    assert_eq!(
        (s, &t["status"], &t["amount"], &t["to"]),
        (200, &json!("completed"), &json!(120), &json!("bob"))
    );
    let (s, list) = n.get("/v1/accounts/bob/transfers");
    assert_eq!((s, &list["transfers"][0]["id"]), (200, &json!(tid)));
    let e = |k: &str, a: u64, t: &str| (k.to_owned(), a, t.to_owned());
    assert_eq!(
        entries(&n, "alice")[1..],
        [
            e("hold", 300, &hid),
            e("release", 120, &hid),
            e("hold", 120, &tid),
            e("transfer_out", 120, &tid),
            e("release", 180, &hid)
        ]
    );
    assert_eq!(entries(&n, "bob"), [e("transfer_in", 120, &tid)]);
}

#[test]
fn holds_refuse_what_api_md_refuses() {
    // Proves every error of the section with its status: hold_not_found, capture_exceeds_hold,
    // insufficient_funds, same_account, account_not_found, a frozen payer, bad
    // expires_in_ms, wait_ms and bodies; and that a capture the receiver refuses (frozen,
    // other currency) answers 422 with its code and leaves the hold held, capturable later.
    let n = TestNode::start();
    for id in ["alice", "bob"] {
        open_account(&n.url, id);
    }
    let (s, _) = n.post(
        "/v1/accounts",
        json!({"id": "dollar", "currency": "USD"}),
        None,
    );
    assert_eq!(s, 201);
    deposit(&n.url, "alice", 500);
    for (path, method) in [
        ("/v1/holds/h_nope", "GET"),
        ("/v1/holds/h_nope/capture", "POST"),
        ("/v1/holds/h_nope/void", "POST"),
    ] {
        let (s, v) = call(method, &format!("{}{path}", n.url), Some("{}"), None);
        assert_eq!((s, code(&v)), (404, "hold_not_found"), "{method} {path}");
    }
    let refused = |body: Value| n.post("/v1/holds", body, None);
    let (s, v) = refused(json!({"from": "alice", "to": "bob", "amount": 501}));
    assert_eq!((s, code(&v)), (422, "insufficient_funds"));
    let (s, v) = refused(json!({"from": "alice", "to": "alice", "amount": 5}));
    assert_eq!((s, code(&v)), (422, "same_account"));
    let (s, v) = refused(json!({"from": "ghost", "to": "bob", "amount": 5}));
    assert_eq!((s, code(&v)), (404, "account_not_found"));
    for bad in [0u64, 999, 30 * 24 * 3_600_000 + 1] {
        let (s, v) =
            refused(json!({"from": "alice", "to": "bob", "amount": 5, "expires_in_ms": bad}));
        assert_eq!(
            (s, code(&v)),
            (400, "invalid_request"),
            "expires_in_ms {bad}"
        );
    }
    let (s, v) = refused(json!({"from": "alice", "to": "bob", "amount": 0}));
    assert_eq!((s, code(&v)), (400, "invalid_request"));

    let h = id_of(&hold(&n, "alice", "bob", 200, json!({})));
    let capture = format!("/v1/holds/{h}/capture");
    let (s, v) = n.post(&capture, json!({"amount": 201}), None);
    assert_eq!((s, code(&v)), (422, "capture_exceeds_hold"));
    let (s, v) = n.post(&capture, json!({"wait_ms": 60_001}), None);
    assert_eq!((s, code(&v)), (400, "invalid_request"));
    let (s, v) = call(
        "POST",
        &format!("{}{capture}", n.url),
        Some("{\"amount\": -1}"),
        None,
    );
    assert_eq!((s, code(&v)), (400, "invalid_request"));
    // The receiver refuses: the hold is held again and can be captured once it accepts.
    let (s, _) = n.post("/v1/accounts/bob/freeze", json!({}), None);
    assert_eq!(s, 200);
    let (s, v) = n.post(&capture, json!({"amount": 50}), None);
    assert_eq!(
        (s, code(&v), &v["hold"]["status"]),
        (422, "account_frozen", &json!("held")),
        "{v}"
    );
    assert_eq!(n.money("alice"), (500, 300, 200));
    let (s, _) = n.post("/v1/accounts/bob/unfreeze", json!({}), None);
    assert_eq!(s, 200);
    // A frozen payer captures nothing, but may void.
    let (s, _) = n.post("/v1/accounts/alice/freeze", json!({}), None);
    assert_eq!(s, 200);
    let (s, v) = n.post(&capture, json!({}), None);
    assert_eq!((s, code(&v)), (422, "account_frozen"));
    let (s, _) = n.post("/v1/accounts/alice/unfreeze", json!({}), None);
    assert_eq!(s, 200);
    // An empty body captures everything.
    let (s, v) = call("POST", &format!("{}{capture}", n.url), None, None);
    assert_eq!(
        (s, &v["status"], &v["captured"]),
        (200, &json!("captured"), &json!(200)),
        "{v}"
    );
    assert_eq!(n.money("bob"), (200, 200, 0));

    // Another currency refuses the capture; the void then releases everything, once.
    let h = id_of(&hold(&n, "alice", "dollar", 100, json!({})));
    let (s, v) = n.post(&format!("/v1/holds/{h}/capture"), json!({}), None);
    assert_eq!((s, code(&v)), (422, "currency_mismatch"));
    let (s, v) = n.post(&format!("/v1/holds/{h}/void"), json!({}), Some("v1"));
    assert_eq!((s, &v["status"]), (200, &json!("voided")));
    let (s, again) = n.post(&format!("/v1/holds/{h}/void"), json!({}), Some("v1"));
    assert_eq!((s, &again), (200, &v), "the key replays the void");
    let (s, v) = n.post(&format!("/v1/holds/{h}/void"), json!({}), None);
    assert_eq!((s, code(&v)), (422, "hold_not_active"));
    assert_eq!(n.money("alice"), (300, 300, 0));
}

#[test]
fn holds_expire_with_no_request() {
    // Proves a hold expires by itself at its time (not before), releasing everything, and
    // a capture after that is hold_not_active.
    let n = TestNode::start();
    open_account(&n.url, "alice");
    open_account(&n.url, "bob");
    deposit(&n.url, "alice", 100);
    let start = Instant::now();
    let h = hold(&n, "alice", "bob", 60, json!({"expires_in_ms": 1_000}));
    let hid = id_of(&h);
    let (v, at) = wait_status(&n, &hid, "expired", Duration::from_secs(5));
    assert!(
        at - start >= Duration::from_millis(1_000),
        "expired after {:?}",
        at - start
    );
    assert_eq!(
        (&v["captured"], n.money("alice")),
        (&json!(0), (100, 100, 0))
    );
    let (s, v) = n.post(&format!("/v1/holds/{hid}/capture"), json!({}), None);
    assert_eq!((s, code(&v)), (422, "hold_not_active"));
    assert!(
        v["error"]["message"].as_str().unwrap().contains("expired"),
        "{v}"
    );
}

#[test]
fn holds_expire_after_passivation_and_after_a_restart() {
    // Proves the index of holds by expiry: a hold whose payer was passivated expires (the
    // sweep activates the payer), and so does one that came due while its node was down (the
    // next start's sweep).
    let backend = Arc::new(MemoryBackend::new());
    let n = TestNode::start_on(backend.clone(), |c| c.actors.idle_passivate_ms = 100);
    open_account(&n.url, "alice");
    open_account(&n.url, "bob");
    deposit(&n.url, "alice", 100);
    let hid = id_of(&hold(
        &n,
        "alice",
        "bob",
        10,
        json!({"expires_in_ms": 1_000}),
    ));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, o) = n.get("/admin/owner/alice");
        if o["active"] == json!(false) {
            break;
        }
        assert!(Instant::now() < deadline, "alice never passivated: {o}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Passivated before its expiry: nothing in memory will fire; the sweep must.
    let (_, v) = n.get(&format!("/v1/holds/{hid}"));
    assert_eq!(v["status"], "held");
    wait_status(&n, &hid, "expired", Duration::from_secs(12));
    let down = id_of(&hold(
        &n,
        "alice",
        "bob",
        20,
        json!({"expires_in_ms": 1_000}),
    ));
    drop(n);
    std::thread::sleep(Duration::from_millis(1_100));
    let n = TestNode::start_on(backend, |_| {});
    // The start's sweep ran before the node declared itself ready.
    wait_status(&n, &down, "expired", Duration::from_secs(2));
    assert_eq!(n.money("alice"), (100, 100, 0));
}

#[test]
fn holds_through_walletctl() {
    // Proves `walletctl hold create|show|capture|void`: JSON views as the API answers them,
    // a partial capture, a refusal's code on stderr with a non-zero exit, and a void.
    let n = TestNode::start();
    open_account(&n.url, "wa");
    open_account(&n.url, "wb");
    deposit(&n.url, "wa", 100);
    let json = |out: std::process::Output| -> Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let h = json(walletctl(
        &n.url,
        &[
            "--json",
            "hold",
            "create",
            "wa",
            "wb",
            "40",
            "--reference",
            "room 4",
        ],
    ));
    let id = id_of(&h);
    assert_eq!((&h["status"], &h["amount"]), (&json!("held"), &json!(40)));
    let shown = json(walletctl(&n.url, &["--json", "hold", "show", &id]));
    assert_eq!(shown, h);
    let out = walletctl(&n.url, &["hold", "capture", &id, "--amount", "41"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("capture_exceeds_hold"), "{err}");
    let c = json(walletctl(
        &n.url,
        &["--json", "hold", "capture", &id, "--amount", "15"],
    ));
    assert_eq!(
        (&c["status"], &c["captured"]),
        (&json!("captured"), &json!(15))
    );
    let text = walletctl(&n.url, &["hold", "show", &id]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("captured   15") && text.contains("reference  room 4"),
        "{text}"
    );
    let other = json(walletctl(
        &n.url,
        &["--json", "hold", "create", "wa", "wb", "30"],
    ));
    let v = json(walletctl(
        &n.url,
        &["--json", "hold", "void", &id_of(&other)],
    ));
    assert_eq!(v["status"], "voided");
    assert_eq!(n.money("wa"), (85, 85, 0));
}
