//! A data directory written by an earlier release still opens and serves what it holds.
//!
//! `tests/data/store-0.1.0/wallet.db` was written by walletd 0.1.0 (built at fb5aeb0, with
//! records in the versioned JSON encoding every build so far has written) through its HTTP API: accounts alice and bob (EUR) and carol (USD); a deposit of
//! 10,000 to alice under the key `dep-1` (reference "salary"), a withdrawal of 500, a
//! transfer of 2,500 to bob under `pay-1` (completed), one of 100 to carol under `pay-2`
//! (failed: currency_mismatch), bob frozen, one of 7 to bob under `pay-3` (failed:
//! account_frozen). The node then stopped cleanly. Any change of the stored records' encoding
//! must keep this test passing: old records keep decoding.

mod common;
use common::{call, TestNode};
use node::storage::sqlite::{SqliteBackend, SyncMode};
use serde_json::{json, Value};
use std::sync::Arc;

fn post(n: &TestNode, path: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
    call(
        "POST",
        &format!("{}{path}", n.url),
        Some(&body.to_string()),
        key,
    )
}

fn get(n: &TestNode, path: &str) -> Value {
    let (s, v) = call("GET", &format!("{}{path}", n.url), None, None);
    assert_eq!(s, 200, "{path}: {v}");
    v
}

#[test]
fn old_store_a_data_directory_of_release_0_1_0_opens_and_serves_its_ledger() {
    // Proves the stored records of release 0.1.0 decode: balances, statuses, journals,
    // transfer summaries and idempotency records read back as written, the audit passes,
    // and the ledger takes new work.
    let dir = tempfile::tempdir().expect("temporary directory");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/store-0.1.0/wallet.db"
    );
    std::fs::copy(fixture, dir.path().join("wallet.db")).expect("copy the fixture");
    let backend = SqliteBackend::open(dir.path(), SyncMode::Full).expect("the old file opens");
    let n = TestNode::start_backend(Arc::new(backend), |_| {});

    let alice = get(&n, "/v1/accounts/alice");
    assert_eq!(
        alice,
        json!({"id":"alice","currency":"EUR","status":"active","balance":7000,"available":7000,"held":0,"seq":8})
    );
    let bob = get(&n, "/v1/accounts/bob");
    assert_eq!(
        (bob["status"].as_str(), bob["balance"].as_u64()),
        (Some("frozen"), Some(2_500))
    );
    assert_eq!(get(&n, "/v1/accounts/carol")["currency"], "USD");

    let entries = get(&n, "/v1/accounts/alice/entries");
    let kinds: Vec<&str> = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "deposit",
            "withdrawal",
            "hold",
            "transfer_out",
            "hold",
            "release",
            "hold",
            "release"
        ]
    );
    assert_eq!(entries["entries"][0]["reference"], "salary");
    let transfer = |seq: usize| {
        let id = entries["entries"][seq - 1]["transfer_id"]
            .as_str()
            .unwrap()
            .to_owned();
        get(&n, &format!("/v1/transfers/{id}"))
    };
    let (t1, t2, t3) = (transfer(3), transfer(5), transfer(7));
    assert_eq!(
        (t1["status"].as_str(), t1["amount"].as_u64()),
        (Some("completed"), Some(2_500))
    );
    assert_eq!(
        (t2["status"].as_str(), t2["reason"].as_str()),
        (Some("failed"), Some("currency_mismatch"))
    );
    assert_eq!(
        (t3["status"].as_str(), t3["reason"].as_str()),
        (Some("failed"), Some("account_frozen"))
    );

    // Old idempotency records replay what they recorded.
    let (s, dep) = post(
        &n,
        "/v1/deposits",
        &json!({"account":"alice","amount":10000,"reference":"salary"}),
        Some("dep-1"),
    );
    assert_eq!(
        (s, dep["id"].as_str(), dep["seq"].as_u64()),
        (201, Some("alice:1"), Some(1)),
        "{dep}"
    );
    let (s, again) = post(
        &n,
        "/v1/transfers",
        &json!({"from":"alice","to":"bob","amount":2500,"reference":"rent"}),
        Some("pay-1"),
    );
    assert_eq!((s, &again["id"]), (200, &t1["id"]), "{again}");
    let (s, reused) = post(
        &n,
        "/v1/deposits",
        &json!({"account":"alice","amount":1}),
        Some("dep-1"),
    );
    assert_eq!(
        (s, reused["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{reused}"
    );

    let (s, audit) = call("GET", &format!("{}/admin/audit", n.url), None, None);
    assert_eq!((s, audit["ok"].as_bool()), (200, Some(true)), "{audit}");

    // And it takes new work.
    let (s, _) = post(&n, "/v1/accounts/bob/unfreeze", &json!({}), None);
    assert_eq!(s, 200);
    let (s, t4) = post(
        &n,
        "/v1/transfers",
        &json!({"from":"alice","to":"bob","amount":100}),
        Some("pay-4"),
    );
    assert_eq!((s, t4["status"].as_str()), (200, Some("completed")), "{t4}");
    assert_eq!(get(&n, "/v1/accounts/alice")["balance"], 6_900);
    assert_eq!(get(&n, "/v1/accounts/alice")["seq"], 10);
}
