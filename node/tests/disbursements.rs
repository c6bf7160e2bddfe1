//! `/v1/disbursements` against API.md's "Disbursements": all or nothing over several
//! receivers, the failing leg marked, idempotency keys, and every error code of the section.

mod common;
use common::{code, deposit, open_account, walletctl, TestNode};
use serde_json::{json, Value};

/// (kind, amount) of the entries of `id` naming `t`.
fn entries_of(n: &TestNode, id: &str, t: &str) -> Vec<(String, u64)> {
    let (s, v) = n.get(&format!("/v1/accounts/{id}/entries"));
    assert_eq!(s, 200, "{v}");
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["transfer_id"] == t)
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["amount"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Each leg's (to, status, reason).
fn legs(v: &Value) -> Vec<(String, String, Value)> {
    v["legs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["to"].as_str().unwrap().to_owned(),
                l["status"].as_str().unwrap().to_owned(),
                l["reason"].clone(),
            )
        })
        .collect()
}

fn setup() -> TestNode {
    let n = TestNode::start();
    for id in ["payer", "r1", "r2", "r3", "frozen"] {
        open_account(&n.url, id);
    }
    let (s, _) = n.post(
        "/v1/accounts",
        json!({"id": "dollar", "currency": "USD"}),
        None,
    );
    assert_eq!(s, 201);
    let (s, _) = n.post("/v1/accounts/frozen/freeze", json!({}), None);
    assert_eq!(s, 200);
    deposit(&n.url, "payer", 1_000);
    n
}

#[test]
fn disbursements_credit_every_leg_or_none() {
    // Proves a disbursement credits every leg and debits the payer once (journals with the
    // disbursement's id on every participant), replays under its key, and reads back; and
    // that one refusing receiver (frozen, other currency, unknown) fails it whole: no leg
    // credited, the total released, the failing leg marked with its code.
    let n = setup();
    let body = json!({"from": "payer", "legs": [{"to": "r1", "amount": 100}, {"to": "r2", "amount": 50}, {"to": "r3", "amount": 25}], "reference": "payroll"});
    let (s, d) = n.post("/v1/disbursements", body.clone(), Some("p1"));
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        (&d["status"], &d["total"], &d["from"], &d["reference"]),
        (
            &json!("completed"),
            &json!(175),
            &json!("payer"),
            &json!("payroll")
        )
    );
    assert!(legs(&d).iter().all(|(_, st, _)| st == "completed"), "{d}");
    assert_eq!(n.money("payer"), (825, 825, 0));
    assert_eq!(
        (n.money("r1").0, n.money("r2").0, n.money("r3").0),
        (100, 50, 25)
    );
    let id = d["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("d_"), "{id}");
    let h = |k: &str, a: u64| (k.to_owned(), a);
    assert_eq!(
        entries_of(&n, "payer", &id),
        [h("hold", 175), h("transfer_out", 175)]
    );
    assert_eq!(entries_of(&n, "r2", &id), [h("transfer_in", 50)]);
    let (s, again) = n.post("/v1/disbursements", body, Some("p1"));
    assert_eq!((s, &again), (200, &d), "the key replays it");
    let (s, v) = n.post(
        "/v1/disbursements",
        json!({"from": "payer", "legs": [{"to": "r1", "amount": 1}]}),
        Some("p1"),
    );
    assert_eq!((s, code(&v)), (422, "idempotency_key_reused"));
    let (s, shown) = n.get(&format!("/v1/disbursements/{id}"));
    assert_eq!((s, &shown), (200, &d));

    for (bad, reason) in [
        ("frozen", "account_frozen"),
        ("dollar", "currency_mismatch"),
        ("nobody", "account_not_found"),
    ] {
        let before = n.money("payer");
        let body = json!({"from": "payer", "legs": [{"to": "r1", "amount": 10}, {"to": bad, "amount": 20}, {"to": "r2", "amount": 30}]});
        let (s, v) = n.post("/v1/disbursements", body, None);
        assert_eq!((s, code(&v)), (422, reason), "{v}");
        let d = &v["disbursement"];
        assert_eq!(
            (&d["status"], &d["reason"]),
            (&json!("failed"), &json!(reason))
        );
        assert_eq!(
            legs(d),
            [
                ("r1".to_owned(), "cancelled".to_owned(), Value::Null),
                (bad.to_owned(), "failed".to_owned(), json!(reason)),
                ("r2".to_owned(), "cancelled".to_owned(), Value::Null),
            ]
        );
        let fid = d["id"].as_str().unwrap();
        assert_eq!(n.money("payer"), before, "nothing moved");
        assert_eq!(
            entries_of(&n, "payer", fid),
            [h("hold", 60), h("release", 60)]
        );
        assert!(entries_of(&n, "r1", fid).is_empty() && entries_of(&n, "r2", fid).is_empty());
    }
    assert_eq!(
        (n.money("r1").0, n.money("r2").0),
        (100, 50),
        "no failed leg credited"
    );
}

#[test]
fn disbursements_refuse_what_api_md_refuses() {
    // Proves the request's own errors: no legs or more than 256, a leg twice or to the payer,
    // more than the payer has, an unknown payer, a frozen payer, a bad wait_ms, and
    // disbursement_not_found for an unknown id.
    let n = setup();
    let refused = |body: Value| n.post("/v1/disbursements", body, None);
    let leg = |to: &str| json!({"to": to, "amount": 1});
    let many: Vec<Value> = (0..257).map(|i| leg(&format!("x{i}"))).collect();
    for (body, status, c) in [
        (json!({"from": "payer", "legs": []}), 400, "invalid_request"),
        (
            json!({"from": "payer", "legs": many}),
            400,
            "invalid_request",
        ),
        (
            json!({"from": "payer", "legs": [leg("r1"), leg("r1")]}),
            400,
            "invalid_request",
        ),
        (
            json!({"from": "payer", "legs": [leg("r1"), leg("payer")]}),
            422,
            "same_account",
        ),
        (
            json!({"from": "payer", "legs": [{"to": "r1", "amount": 1001}]}),
            422,
            "insufficient_funds",
        ),
        (
            json!({"from": "payer", "legs": [{"to": "r1", "amount": 0}]}),
            400,
            "invalid_request",
        ),
        (
            json!({"from": "ghost", "legs": [leg("r1")]}),
            404,
            "account_not_found",
        ),
        (
            json!({"from": "frozen", "legs": [leg("r1")]}),
            422,
            "account_frozen",
        ),
        (
            json!({"from": "payer", "legs": [leg("r1")], "wait_ms": 60_001}),
            400,
            "invalid_request",
        ),
    ] {
        let (s, v) = refused(body.clone());
        assert_eq!((s, code(&v)), (status, c), "{body}: {v}");
    }
    assert_eq!(n.money("payer"), (1_000, 1_000, 0));
    let (s, v) = n.get("/v1/disbursements/d_nope");
    assert_eq!((s, code(&v)), (404, "disbursement_not_found"));
}

#[test]
fn disbursements_through_walletctl() {
    // Proves `walletctl disburse FROM TO:AMOUNT...`: a completed one printed with its legs
    // (JSON as the API answers it), a failed one exits non-zero with the failing code.
    let n = setup();
    let out = walletctl(&n.url, &["--json", "disburse", "payer", "r1:10", "r2:20"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&d["status"], &d["total"]),
        (&json!("completed"), &json!(30))
    );
    let out = walletctl(&n.url, &["disburse", "payer", "r1:10", "frozen:5"]);
    assert!(!out.status.success());
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(text.contains("failed") && text.contains("frozen"), "{text}");
    assert!(err.contains("account_frozen"), "{err}");
    let out = walletctl(&n.url, &["disburse", "payer", "r1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TO:AMOUNT"));
    assert_eq!(n.money("payer"), (970, 970, 0));
}
