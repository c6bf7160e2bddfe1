//! A fenced activation steps aside through the real actor shell: it answers what it still
//! receives `Moved`, hands saga messages back to routing, and never takes the lease back from
//! the newer activation that fenced it.

use node::cluster::actor::{AccountActor, AccountMsg, ActorArgs, CommandReply};
use node::cluster::{Refusal, Shell};
use node::ledger::account::{Command, Reply, SagaTiming};
use node::ledger::exec;
use node::ledger::records::Lease;
use node::server::Node;
use node::storage::keys::Keys;
use node::storage::memory::MemoryBackend;
use node::storage::Store;
use protocol::saga::SagaMsg;
use protocol::{AccountId, Amount, Currency, TransferId};
use ractor::{Actor, ActorRef};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

fn a() -> AccountId {
    AccountId::new("a").unwrap()
}

fn deposit(v: u64) -> Command {
    Command::Deposit {
        amount: Amount::new(v).unwrap(),
        reference: None,
        idem_key: None,
    }
}

async fn send(actor: &ActorRef<AccountMsg>, cmd: Command) -> oneshot::Receiver<CommandReply> {
    let (tx, rx) = oneshot::channel();
    actor
        .send_message(AccountMsg::Command { cmd, reply: tx })
        .expect("the actor takes messages");
    rx
}

fn moved(r: CommandReply) -> bool {
    matches!(r, Err(Refusal::Moved))
}

async fn balance(shell: &Shell) -> u64 {
    match shell.execute(&a(), Command::Get, Duration::ZERO).await {
        Ok(Reply::Account { view, .. }) => view.balance,
        other => panic!("{other:?}"),
    }
}

/// A node, an opened account `a` funded with 10, and a second activation of `a` (the stale
/// one under test) spawned outside the directory, so only the test talks to it.
async fn setup() -> (Node, Store, ActorRef<AccountMsg>) {
    let mem = Arc::new(MemoryBackend::new());
    let mut config = cluster_config::Config::default();
    config.node.listen = "127.0.0.1:0".into();
    config.storage.backend = cluster_config::Backend::Memory;
    let node = Node::start_with_backend(&config, mem.clone())
        .await
        .expect("node starts");
    let shell = node.shell().clone();
    let open = Command::Open {
        currency: Currency::new("EUR").unwrap(),
    };
    shell.execute(&a(), open, Duration::ZERO).await.unwrap();
    shell
        .execute(&a(), deposit(10), Duration::ZERO)
        .await
        .unwrap();
    let args = ActorArgs {
        shell: shell.clone(),
        id: a(),
    };
    let (stale, _) = Actor::spawn(None, AccountActor, args).await.unwrap();
    (node, Store::new(mem), stale)
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
fn fenced_actor_answers_moved_and_never_takes_the_lease_back() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (node, store, stale) = setup().await;
        // Another node activates the account: the stale actor's lease is gone.
        let lease = fence(&store);
        // A first batch is fenced: nothing of it ran.
        let first = send(&stale, deposit(1)).await;
        let second = send(&stale, deposit(2)).await;
        assert!(moved(first.await.unwrap()));
        assert!(moved(second.await.unwrap()));
        // Later messages are answered `Moved` too: the stale actor does not reload itself,
        // which would take the lease back from the rightful owner and commit.
        let later = send(&stale, deposit(3)).await;
        assert!(moved(later.await.unwrap()), "a later command is not run");
        assert_eq!(
            exec::read_lease(&store, &Keys::default(), &a()).unwrap(),
            lease,
            "the newer activation keeps its lease"
        );
        // A saga message it receives is handed back to routing: this node owns `a`, so the
        // credit reaches a fresh activation and applies once.
        let credit = SagaMsg::Credit {
            transfer_id: TransferId::new("t-fenced").unwrap(),
            from: AccountId::new("b").unwrap(),
            to: a(),
            amount: Amount::new(7).unwrap(),
            currency: Currency::new("EUR").unwrap(),
            reference: None,
        };
        stale.send_message(AccountMsg::Saga(credit)).unwrap();
        let shell = node.shell().clone();
        let mut seen = 0;
        for _ in 0..200 {
            seen = balance(&shell).await;
            if seen == 17 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(
            seen, 17,
            "the rerouted credit applied once, nothing else ran"
        );
        stale.stop(None);
        node.shutdown().await;
    });
}

#[test]
fn sweep_resume_of_an_unknown_saga_steps_a_stale_actor_aside() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (node, store, stale) = setup().await;
        let lease = fence(&store);
        stale
            .send_message(AccountMsg::Resume(TransferId::new("t-other").unwrap()))
            .unwrap();
        let after = send(&stale, deposit(1)).await;
        assert!(moved(after.await.unwrap()));
        let again = send(&stale, deposit(1)).await;
        assert!(moved(again.await.unwrap()), "stays aside, never reloads");
        assert_eq!(
            exec::read_lease(&store, &Keys::default(), &a()).unwrap(),
            lease
        );
        stale.stop(None);
        node.shutdown().await;
    });
}
