//! A bug that panics costs one account's activation, never the host's other accounts, and never
//! leaves a caller waiting.

use super::host::{AccountMsg, CommandReply, HostMsg};
use super::table::IDLE_SCAN_BATCH_MAX;
use super::test_node::{balance, memory_node, memory_node_with, open_and_fund, until_inactive};
use crate::ledger::account::Command;
use crate::ledger::records::AccountRecord;
use crate::server::Node;
use crate::storage::codec::encode;
use crate::storage::keys::Keys;
use protocol::{AccountId, Currency, ErrorCode, AMOUNT_MAX};
use std::time::Duration;
use tokio::sync::oneshot;

fn id(s: &str) -> AccountId {
    AccountId::new(s).unwrap()
}

/// Two accounts that the directory puts on the same host.
fn same_host_pair(node: &Node) -> (AccountId, AccountId) {
    let dir = node.shell().directory();
    let first = id("p0");
    for i in 1..10_000 {
        let other = id(&format!("p{i}"));
        if dir.host_of(&other) == dir.host_of(&first) {
            return (first, other);
        }
    }
    unreachable!("some id among 10,000 shares a host");
}

#[test]
fn a_panic_drops_one_activation_and_the_host_goes_on() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (node, _) = memory_node().await;
        let (a, b) = same_host_pair(&node);
        open_and_fund(node.shell(), &a, 10).await;
        open_and_fund(node.shell(), &b, 20).await;
        let shell = node.shell();
        let active = shell.active_actors();
        assert!(shell.is_active(&a) && shell.is_active(&b));
        shell
            .directory()
            .send_host(&a, HostMsg::PanicFor(a.clone()));
        // The host handles its mailbox in order: once b answers, the panic was handled.
        assert_eq!(
            balance(node.shell(), &b).await,
            20,
            "the host's other account goes on"
        );
        assert!(
            !shell.is_active(&a),
            "the panicking account lost its activation"
        );
        assert!(shell.is_active(&b));
        assert_eq!(shell.active_actors(), active - 1);
        // Its next message activates it afresh, from storage.
        assert_eq!(balance(node.shell(), &a).await, 10);
        node.shutdown().await;
    });
}

#[test]
fn a_load_that_panics_answers_outcome_unknown_and_stops() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (node, store) = memory_node().await;
        let a = id("corrupt");
        open_and_fund(node.shell(), &a, 10).await;
        node.shell().passivate_all().await;
        assert!(!node.shell().is_active(&a));
        // A stored balance over the largest amount breaks an invariant that loading asserts.
        let bad = AccountRecord {
            shards: None,
            currency: Currency::new("EUR").unwrap(),
            status: protocol::api::AccountStatus::Active,
            balance: AMOUNT_MAX + 1,
            held: 0,
            seq: 1,
            opened_at: 0,
        };
        store
            .run(|txn| txn.set(&Keys::default().state(a.as_str()), &encode(&bad)))
            .unwrap();
        let (tx, rx) = oneshot::channel::<CommandReply>();
        let msg = AccountMsg::Command {
            cmd: Command::Get,
            reply: tx,
        };
        assert!(node.shell().directory().try_send(&a, msg).is_ok());
        let answer = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("answered, not left waiting")
            .expect("answered, not dropped");
        match answer {
            Err(super::Refusal::Api(e)) => assert_eq!(e.code, ErrorCode::Unavailable, "{e:?}"),
            other => panic!("expected outcome unknown, got {:?}", other.map(|r| r.0)),
        }
        // A failed first load stops the activation (right after it answered its callers).
        until_inactive(node.shell(), &a).await;
        node.shutdown().await;
    });
}

#[test]
fn one_idle_scan_passivates_every_idle_account_of_a_host_in_chunks() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Idle passivation far away: only the scan the test sends runs.
        let (node, _) = memory_node_with(|c| c.actors.idle_passivate_ms = 3_600_000).await;
        let shell = node.shell().clone();
        let dir = shell.directory();
        let first = id("idle0");
        let n = IDLE_SCAN_BATCH_MAX + 100;
        let ids: Vec<AccountId> = (0..)
            .map(|i| id(&format!("idle{i}")))
            .filter(|a| dir.host_of(a) == dir.host_of(&first))
            .take(n)
            .collect();
        let opens: Vec<_> = ids
            .iter()
            .map(|a| {
                let (shell, a) = (shell.clone(), a.clone());
                tokio::spawn(async move {
                    let open = Command::Open {
                        shards: None,
                        currency: Currency::new("EUR").unwrap(),
                    };
                    shell.execute(&a, open, Duration::ZERO).await.unwrap();
                })
            })
            .collect();
        for o in opens {
            o.await.unwrap();
        }
        assert_eq!(shell.active_actors(), n);
        dir.send_host(&first, HostMsg::IdleScan(Duration::ZERO));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while shell.active_actors() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} idle accounts still active after one scan",
                shell.active_actors()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        node.shutdown().await;
    });
}
