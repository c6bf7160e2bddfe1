//! `GET /admin/audit` and `walletctl audit`: one set of rules (the library's auditor), one
//! report, whether the ledger is read by the node from its store or by the CLI over HTTP.

mod common;
use common::{call, code, TestNode};
use node::ledger::records::AccountRecord;
use node::storage::codec::{decode, encode};
use node::storage::keys::Keys;
use node::storage::memory::{Fault, MemoryBackend};
use node::storage::{Store, RETRY_ATTEMPTS_MAX};
use protocol::admin::{AuditCheck, AuditReport, CheckStatus};
use serde_json::json;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn post(n: &TestNode, path: &str, body: serde_json::Value) -> serde_json::Value {
    let (s, v) = call(
        "POST",
        &format!("{}{path}", n.url),
        Some(&body.to_string()),
        None,
    );
    assert!((200..300).contains(&s), "POST {path} {body}: {s} {v}");
    v
}

/// Accounts in two currencies, deposits, a withdrawal and a completed transfer.
fn busy_ledger(n: &TestNode) {
    for (id, cur) in [("a", "EUR"), ("b", "EUR"), ("c", "USD")] {
        post(n, "/v1/accounts", json!({"id": id, "currency": cur}));
    }
    post(n, "/v1/deposits", json!({"account": "a", "amount": 100}));
    post(n, "/v1/deposits", json!({"account": "c", "amount": 7}));
    let t = post(
        n,
        "/v1/transfers",
        json!({"from": "a", "to": "b", "amount": 30}),
    );
    assert_eq!(t["status"], "completed", "{t}");
    post(n, "/v1/withdrawals", json!({"account": "b", "amount": 5}));
}

fn audit(n: &TestNode, query: &str) -> (u16, serde_json::Value) {
    call("GET", &format!("{}/admin/audit{query}", n.url), None, None)
}

fn report(v: &serde_json::Value) -> AuditReport {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not a report ({e}): {v}"))
}

fn walletctl(n: &TestNode) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_walletctl"))
        .args(["--node", &n.url, "--json", "audit", "--wait-secs", "0"])
        .output()
        .expect("walletctl runs")
}

fn cli_report(out: &Output) -> AuditReport {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not a report ({e}): {text}"))
}

fn failed(r: &AuditReport) -> Vec<AuditCheck> {
    r.checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .map(|c| c.check)
        .collect()
}

#[test]
fn audit_route_and_cli_agree_on_a_consistent_ledger() {
    // Proves GET /admin/audit passes a consistent ledger with every check PASS, in the JSON
    // shape `walletctl audit --json` prints, and that the CLI prints the same report and exits 0.
    let n = TestNode::start();
    busy_ledger(&n);
    let (s, v) = audit(&n, "");
    assert_eq!(s, 200, "{v}");
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "accounts",
            "checks",
            "entries",
            "ok",
            "transfers",
            "violations",
            "violations_not_listed"
        ]
    );
    assert_eq!(
        v["checks"][0],
        json!({"check": "settled", "status": "PASS", "violations": 0})
    );
    let r = report(&v);
    assert!(r.ok, "{r:?}");
    // a: deposit, hold, transfer_out; b: transfer_in, withdrawal; c: deposit.
    assert_eq!((r.accounts, r.entries, r.transfers), (3, 6, 1));
    let out = walletctl(&n);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(cli_report(&out), r);
}

#[test]
fn audit_route_reports_a_planted_inconsistency() {
    // Proves a balance changed behind the ledger's back (written to the store directly) is
    // reported by the route as replay and conservation violations naming the account, as a
    // 200 report with ok false; the CLI reports the same and exits 1 with audit_failed.
    let mem = Arc::new(MemoryBackend::new());
    let n = TestNode::start_on(mem.clone(), |_| {});
    busy_ledger(&n);
    let (store, keys) = (Store::new(mem), Keys::default());
    store
        .run(|txn| {
            let key = keys.state("b");
            let mut r: AccountRecord = decode(&txn.get(&key)?.expect("b is stored"))?;
            r.balance += 1;
            txn.set(&key, &encode(&r))
        })
        .unwrap();
    let (s, v) = audit(&n, "");
    assert_eq!(s, 200, "{v}");
    let r = report(&v);
    assert!(!r.ok);
    assert_eq!(
        failed(&r),
        vec![AuditCheck::Replay, AuditCheck::Conservation],
        "{r:?}"
    );
    let replay = r
        .violations
        .iter()
        .find(|v| v.check == AuditCheck::Replay)
        .unwrap();
    assert_eq!(replay.account.as_deref(), Some("b"), "{replay:?}");
    assert!(
        replay.message.contains("stored state is balance 26"),
        "{replay:?}"
    );
    assert!(
        r.violations
            .iter()
            .any(|v| v.message.starts_with("EUR:") && v.message.contains("off by 1")),
        "{r:?}"
    );
    let out = walletctl(&n);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("error: audit_failed:"),
        "{out:?}"
    );
    assert_eq!(cli_report(&out), r);
}

#[test]
fn audit_route_waits_for_pending_then_names_what_is_left() {
    // Proves wait_secs is bounded and validated, that the route waits that long for the pending
    // index to drain, and that a transfer still pending then fails only the settled check.
    let mem = Arc::new(MemoryBackend::new());
    let n = TestNode::start_on(mem.clone(), |_| {});
    busy_ledger(&n);
    for q in ["?wait_secs=61", "?wait_secs=-1", "?wait_secs=soon"] {
        let (s, v) = audit(&n, q);
        assert_eq!((s, code(&v)), (400, "invalid_request"), "{q}: {v}");
    }
    let (s, v) = audit(&n, "?wait_secs=60");
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");
    // A pending-index entry that no saga will ever clear.
    let (store, keys) = (Store::new(mem), Keys::default());
    store
        .run(|txn| {
            txn.set(
                &keys.pending("stuck-1"),
                &encode(&protocol::AccountId::new("a").unwrap()),
            )
        })
        .unwrap();
    let started = Instant::now();
    let (s, v) = audit(&n, "?wait_secs=1");
    assert!(started.elapsed() >= Duration::from_secs(1), "did not wait");
    assert_eq!(s, 200, "{v}");
    let r = report(&v);
    assert_eq!(failed(&r), vec![AuditCheck::Settled], "{r:?}");
    assert_eq!(
        r.violations[0].message,
        "1 transfers still pending after 1s (stuck-1)"
    );
    let (_, v) = audit(&n, "");
    assert!(
        report(&v).violations[0]
            .message
            .ends_with("when the audit started (wait_secs=0) (stuck-1)"),
        "{v}"
    );
}

#[test]
fn audit_route_storage_failure_is_unavailable_not_a_failed_audit() {
    // Proves a store that cannot be read makes the route answer 503 unavailable (the audit's
    // outcome is unknown), never a report of failed checks, and that it audits again after.
    let mem = Arc::new(MemoryBackend::new());
    let n = TestNode::start_on(mem.clone(), |_| {});
    busy_ledger(&n);
    for _ in 0..RETRY_ATTEMPTS_MAX {
        mem.inject(Fault::Unavailable);
    }
    let (s, v) = audit(&n, "");
    assert_eq!((s, code(&v)), (503, "unavailable"), "{v}");
    assert!(v.get("ok").is_none(), "{v}");
    let (s, v) = audit(&n, "");
    assert_eq!((s, v["ok"].as_bool()), (200, Some(true)), "{v}");
}
