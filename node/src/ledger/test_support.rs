//! Helpers shared by the ledger's storage-level unit tests.

use super::account::{Command, Input, SagaTiming};
use super::exec::{self, Activation};
use crate::storage::keys::Keys;
use crate::storage::{Kv, StorageError, Store, Txn};
use protocol::{AccountId, Amount, Currency};
use std::sync::atomic::{AtomicUsize, Ordering};

/// An account id.
pub fn acct(s: &str) -> AccountId {
    AccountId::new(s).unwrap()
}

/// Activates `name` on node `n1` with this nonce.
pub fn load(store: &Store, keys: &Keys, name: &str, nonce: u64) -> Activation {
    exec::activate(store, keys, "n1", &acct(name), SagaTiming::default(), nonce).unwrap()
}

/// Opens `name` in EUR and deposits `funds` (none when 0); returns the activation after.
pub fn opened(store: &Store, keys: &Keys, name: &str, funds: u64) -> Activation {
    let act = load(store, keys, name, 1);
    let mut inputs = vec![Input::Command(
        1,
        Command::Open {
            shards: None,
            currency: Currency::new("EUR").unwrap(),
        },
    )];
    if funds > 0 {
        inputs.push(Input::Command(
            2,
            Command::Deposit {
                amount: Amount::new(funds).unwrap(),
                reference: None,
                idem_key: None,
            },
        ));
    }
    exec::commit_batch(store, keys, "n1", &act, &inputs, 1)
        .unwrap()
        .0
}

/// A transaction that counts the single and the batched reads reaching the one below.
pub struct CountingTxn<'a> {
    /// The transaction below.
    pub inner: &'a mut dyn Txn,
    /// Single reads.
    pub gets: &'a AtomicUsize,
    /// Batched reads.
    pub many: &'a AtomicUsize,
}

impl Txn for CountingTxn<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }
    fn get_many(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.many.fetch_add(1, Ordering::SeqCst);
        keys.iter().map(|k| self.inner.get(k)).collect()
    }
    fn get_range(&mut self, b: &[u8], e: &[u8], l: usize) -> Result<Vec<Kv>, StorageError> {
        self.inner.get_range(b, e, l)
    }
    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.inner.set(key, value)
    }
    fn clear(&mut self, key: &[u8]) -> Result<(), StorageError> {
        self.inner.clear(key)
    }
    fn clear_range(&mut self, begin: &[u8], end: &[u8]) -> Result<(), StorageError> {
        self.inner.clear_range(begin, end)
    }
}
