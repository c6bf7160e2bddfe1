//! The transfer saga through the real actor shell under storage faults: an actor whose commit
//! fails reloads by itself, and a credit lost to a receiver's storage outage is sent again, so
//! the transfer completes exactly once instead of failing.

mod common;
use common::{call, code, open_account, TestNode};
use node::ledger::driver::BATCH_RETRIES_MAX;
use node::storage::memory::{Fault, MemoryBackend};
use node::storage::RETRY_ATTEMPTS_MAX;
use std::sync::Arc;

#[test]
fn saga_receiver_commit_failure_resends_credit_and_completes_once() {
    // Proves the sender's timeout path end to end: the Credit is lost to a storage outage, the
    // receiver reloads by itself, the sender's timer sends the same Credit again (before it
    // would abort), and the transfer completes with the money moved exactly once.
    let mem = Arc::new(MemoryBackend::new());
    let n = TestNode::start_on(mem.clone(), |c| c.saga.credit_timeout_ms = 300);
    for id in ["a", "b"] {
        let (s, _) = call(
            "POST",
            &format!("{}/v1/accounts", n.url),
            Some(&format!(r#"{{"id":"{id}","currency":"EUR"}}"#)),
            None,
        );
        assert_eq!(s, 201);
    }
    let (s, _) = call(
        "POST",
        &format!("{}/v1/deposits", n.url),
        Some(r#"{"account":"a","amount":100}"#),
        None,
    );
    assert_eq!(s, 201);
    // The sender's hold commits; then every attempt of the receiver's credit fails.
    mem.inject(Fault::LatencyMs(0));
    for _ in 0..RETRY_ATTEMPTS_MAX {
        mem.inject(Fault::Unavailable);
    }
    let (s, v) = call(
        "POST",
        &format!("{}/v1/transfers", n.url),
        Some(r#"{"from":"a","to":"b","amount":40,"wait_ms":20000}"#),
        None,
    );
    assert_eq!((s, v["status"].as_str()), (200, Some("completed")), "{v}");
    assert_eq!(mem.faults_pending(), 0);
    let (_, a) = call("GET", &format!("{}/v1/accounts/a", n.url), None, None);
    let (_, b) = call("GET", &format!("{}/v1/accounts/b", n.url), None, None);
    assert_eq!(
        (
            a["balance"].as_u64(),
            a["held"].as_u64(),
            b["balance"].as_u64(),
            b["seq"].as_u64()
        ),
        (Some(60), Some(0), Some(40), Some(1)),
        "debited once, credited once"
    );
}

#[test]
fn saga_batch_that_did_not_commit_is_retried_by_the_driver() {
    // Proves a batch whose storage attempts all failed without committing is run again by the
    // account driver after a backoff, so a brief outage costs the caller a delay, not a 503.
    let mem = Arc::new(MemoryBackend::new());
    let n = TestNode::start_on(mem.clone(), |_| {});
    open_account(&n.url, "a");
    for _ in 0..RETRY_ATTEMPTS_MAX {
        mem.inject(Fault::Unavailable);
    }
    let (s, v) = call(
        "POST",
        &format!("{}/v1/deposits", n.url),
        Some(r#"{"account":"a","amount":5}"#),
        None,
    );
    assert_eq!((s, v["balance"].as_u64()), (201, Some(5)), "{v}");
    assert_eq!(mem.faults_pending(), 0);
}

#[test]
fn saga_sender_commit_failure_is_unavailable_then_recovers() {
    // Proves a client whose command could not be committed, after every retry of the store
    // and of the driver, is told the outcome is unknown (503, never a rejection), and that a
    // retry with the same key then applies it once.
    let mem = Arc::new(MemoryBackend::new());
    let n = TestNode::start_on(mem.clone(), |_| {});
    open_account(&n.url, "a");
    for _ in 0..RETRY_ATTEMPTS_MAX * (BATCH_RETRIES_MAX + 1) {
        mem.inject(Fault::Unavailable);
    }
    let body = r#"{"account":"a","amount":5}"#;
    let (s, v) = call(
        "POST",
        &format!("{}/v1/deposits", n.url),
        Some(body),
        Some("dep-k"),
    );
    assert_eq!((s, code(&v)), (503, "unavailable"), "{v}");
    let (s, v) = call(
        "POST",
        &format!("{}/v1/deposits", n.url),
        Some(body),
        Some("dep-k"),
    );
    assert_eq!((s, v["balance"].as_u64()), (201, Some(5)), "{v}");
    let (s, v) = call(
        "POST",
        &format!("{}/v1/deposits", n.url),
        Some(body),
        Some("dep-k"),
    );
    assert_eq!(
        (s, v["balance"].as_u64()),
        (201, Some(5)),
        "replayed, not applied again: {v}"
    );
}
