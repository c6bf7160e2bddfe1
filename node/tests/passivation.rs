//! Eviction goes through the account driver: an actor with an open transfer and a caller
//! waiting for its settlement is not evicted to make room under `active_max`.

mod common;
use common::{call, deposit, open_account, TestNode};

#[test]
fn eviction_under_active_max_does_not_strand_a_waiting_caller() {
    // With room for one actor, the receiver's activation asks the sender's actor to
    // passivate while the sender still waits for the credit's outcome; the sender's driver is
    // not idle, so it stays, and the caller gets the settled transfer, not "pending".
    let n = TestNode::start_with(|c| c.actors.active_max = 1);
    open_account(&n.url, "a");
    open_account(&n.url, "b");
    deposit(&n.url, "a", 100);
    for round in 0..5 {
        let (s, v) = call(
            "POST",
            &format!("{}/v1/transfers", n.url),
            Some(r#"{"from":"a","to":"b","amount":10,"wait_ms":10000}"#),
            None,
        );
        assert_eq!(
            (s, v["status"].as_str()),
            (200, Some("completed")),
            "round {round}: {v}"
        );
    }
    let (_, b) = call("GET", &format!("{}/v1/accounts/b", n.url), None, None);
    assert_eq!(b["balance"].as_u64(), Some(50));
}
