//! Helpers of the shell's tests: a node on a memory store, and accounts on it.

use super::Shell;
use crate::ledger::account::{Command, Reply};
use crate::server::Node;
use crate::storage::memory::MemoryBackend;
use crate::storage::Store;
use protocol::{AccountId, Amount, Currency};
use std::sync::Arc;
use std::time::Duration;

/// A single node on a fresh memory store, and the store.
pub async fn memory_node() -> (Node, Store) {
    memory_node_with(|_| {}).await
}

/// A single node on a fresh memory store with its config adjusted by `adjust`, and the store.
pub async fn memory_node_with(adjust: impl FnOnce(&mut cluster_config::Config)) -> (Node, Store) {
    let mem = Arc::new(MemoryBackend::new());
    let mut config = cluster_config::Config::default();
    config.node.listen = "127.0.0.1:0".into();
    config.storage.backend = cluster_config::Backend::Memory;
    adjust(&mut config);
    let node = Node::start_with_backend(&config, mem.clone())
        .await
        .expect("node starts");
    (node, Store::new(mem))
}

/// A deposit of `v` without a key.
pub fn deposit(v: u64) -> Command {
    Command::Deposit {
        amount: Amount::new(v).unwrap(),
        reference: None,
        idem_key: None,
    }
}

/// Opens `a` in EUR and deposits `amount`.
pub async fn open_and_fund(shell: &Shell, a: &AccountId, amount: u64) {
    let open = Command::Open {
        shards: None,
        currency: Currency::new("EUR").unwrap(),
    };
    shell.execute(a, open, Duration::ZERO).await.unwrap();
    shell
        .execute(a, deposit(amount), Duration::ZERO)
        .await
        .unwrap();
}

/// The balance of `a`, read through the shell.
pub async fn balance(shell: &Shell, a: &AccountId) -> u64 {
    match shell.execute(a, Command::Get, Duration::ZERO).await {
        Ok(Reply::Account { view, .. }) => view.balance,
        other => panic!("{other:?}"),
    }
}

/// Waits (up to 2 s) until the account's activation on this node ended: a host answers an
/// activation's callers before it removes the activation, so a caller may see the answer
/// first.
pub async fn until_inactive(shell: &Shell, a: &AccountId) {
    for _ in 0..400 {
        if !shell.is_active(a) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{a} is still active");
}
