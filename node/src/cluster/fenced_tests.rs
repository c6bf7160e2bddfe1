//! A fenced activation steps aside through the real shell: what it holds is answered `Moved`
//! (nothing of it ran), saga messages go back to routing, and it never takes the lease back
//! by itself; only a new message, routed here because this node owns the account, starts a
//! new activation.

use super::host::{AccountMsg, CommandReply};
use super::test_node::{balance, deposit, memory_node, open_and_fund, until_inactive};
use super::{Refusal, Shell};
use crate::ledger::account::{Command, SagaTiming};
use crate::ledger::exec;
use crate::ledger::records::Lease;
use crate::server::Node;
use crate::storage::keys::Keys;
use crate::storage::Store;
use protocol::saga::SagaMsg;
use protocol::{AccountId, Amount, Currency, TransferId};
use std::time::Duration;
use tokio::sync::oneshot;

fn a() -> AccountId {
    AccountId::new("a").unwrap()
}

/// Sends a command straight to the account's activation on this node.
fn send(shell: &Shell, cmd: Command) -> oneshot::Receiver<CommandReply> {
    let (tx, rx) = oneshot::channel();
    let msg = AccountMsg::Command { cmd, reply: tx };
    assert!(
        shell.directory().try_send(&a(), msg).is_ok(),
        "the host takes messages"
    );
    rx
}

/// Sends a saga message straight to the account's activation on this node.
fn send_saga(shell: &Shell, msg: AccountMsg) {
    assert!(
        shell.directory().try_send(&a(), msg).is_ok(),
        "the host takes messages"
    );
}

/// The balance as stored (read without activating the account).
fn stored_balance(store: &Store) -> u64 {
    let (page, _) = exec::read_accounts(store, &Keys::default(), None, 10).unwrap();
    page.iter()
        .find(|v| v.id == a())
        .expect("a is opened")
        .balance
}

fn moved(r: CommandReply) -> bool {
    matches!(r, Err(Refusal::Moved))
}

/// A node, and an opened account `a` funded with 10, active on it (the activation that the
/// test makes stale).
async fn setup() -> (Node, Store) {
    let (node, store) = memory_node().await;
    open_and_fund(node.shell(), &a(), 10).await;
    assert!(node.shell().is_active(&a()));
    (node, store)
}

/// Another node ("n2") activates `a`, fencing every older activation; returns its lease.
fn fence(store: &Store) -> Option<Lease> {
    let newer = exec::activate(
        store,
        &Keys::default(),
        "n2",
        &a(),
        SagaTiming::default(),
        7,
    )
    .unwrap();
    let lease = exec::read_lease(store, &Keys::default(), &a()).unwrap();
    assert_eq!(lease, newer.lease);
    lease
}

#[test]
fn fenced_activation_answers_moved_and_never_takes_the_lease_back() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (node, store) = setup().await;
        let shell = node.shell().clone();
        // Another node activates the account: this node's activation lost its lease.
        let lease = fence(&store);
        // Two commands reach the stale activation in one message, so they are in its next
        // batch: the batch is fenced, nothing of it ran.
        let (tx1, first) = oneshot::channel();
        let (tx2, second) = oneshot::channel();
        let both = AccountMsg::Commands(vec![(deposit(1), tx1), (deposit(2), tx2)]);
        assert!(shell.directory().try_send(&a(), both).is_ok());
        assert!(moved(first.await.unwrap()));
        assert!(moved(second.await.unwrap()));
        assert_eq!(
            stored_balance(&store),
            10,
            "nothing of the fenced batch ran"
        );
        // It stepped aside and did not reload itself, which would take the lease back from
        // the rightful owner.
        until_inactive(&shell, &a()).await;
        assert_eq!(
            exec::read_lease(&store, &Keys::default(), &a()).unwrap(),
            lease,
            "the newer activation keeps its lease"
        );
        // A saga message that reaches a fenced activation goes back to routing: this node
        // owns `a` (the ring says so), so the credit reaches a new activation and applies once.
        // A new message activates the account again here, and another node fences it again.
        let reactivated = send(&shell, Command::Get);
        assert!(
            reactivated.await.unwrap().is_ok(),
            "a new activation answers"
        );
        fence(&store);
        let credit = SagaMsg::Credit {
            transfer_id: TransferId::new("t-fenced").unwrap(),
            from: AccountId::new("b").unwrap(),
            to: a(),
            amount: Amount::new(7).unwrap(),
            currency: Currency::new("EUR").unwrap(),
            reference: None,
            created_at: 0,
        };
        send_saga(&shell, AccountMsg::Saga(credit));
        let mut seen = 0;
        for _ in 0..200 {
            seen = balance(&shell, &a()).await;
            if seen == 17 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(
            seen, 17,
            "the rerouted credit applied once, nothing else ran"
        );
        node.shutdown().await;
    });
}

#[test]
fn sweep_resume_of_an_unknown_saga_steps_a_stale_activation_aside() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (node, store) = setup().await;
        let shell = node.shell().clone();
        let lease = fence(&store);
        send_saga(
            &shell,
            AccountMsg::Resume(TransferId::new("t-other").unwrap()),
        );
        // The resume made it read its lease and step aside, with no command at all.
        until_inactive(&shell, &a()).await;
        assert_eq!(
            exec::read_lease(&store, &Keys::default(), &a()).unwrap(),
            lease,
            "stays aside, never reloads"
        );
        node.shutdown().await;
    });
}
