//! Reads a transaction will need, fetched together up front: [`Prefetched`].
//!
//! A group commit's bodies read a few keys each (a lease, an idempotency record, a saga
//! record), one `get` after another. On FoundationDB every `get` is a network round trip, so a
//! group of a thousand batches would wait for thousands of them in a row. The group names the
//! keys its bodies will read before they run, [`Txn::get_many`] fetches them at once (the
//! FoundationDB adapter issues every read before it waits for the first), and [`Prefetched`]
//! serves the bodies' `get`s of those keys from what came back. On the embedded store
//! `get_many` is a loop of local reads: the same work as before, in another order.
//!
//! A prefetched value stays right for the whole attempt because every write of the attempt
//! goes through this adapter, which updates the cached value (a range removal drops the
//! cached keys in its range). Keys not named up front are read as usual.
//!
//! Left out: range reads are not prefetched (a group's bodies read a range only to find a
//! transfer's current view when they replay an idempotency record, rare on the hot path), and
//! activation reads its keys one by one (it runs outside groups, once per activation).

use super::{Kv, StorageError, Txn};
use std::collections::HashMap;

/// A transaction whose reads of some keys were fetched together at its start.
pub struct Prefetched<'a> {
    inner: &'a mut dyn Txn,
    /// Key to its value as of the prefetch, then as written since (`None`: absent).
    cache: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Prefetched<'a> {
    /// Fetches `keys` in one [`Txn::get_many`] (duplicates are read once).
    pub fn new(inner: &'a mut dyn Txn, keys: Vec<Vec<u8>>) -> Result<Self, StorageError> {
        let mut keys = keys;
        keys.sort_unstable();
        keys.dedup();
        let values = inner.get_many(&keys)?;
        assert_eq!(values.len(), keys.len(), "one value per key");
        Ok(Prefetched {
            inner,
            cache: keys.into_iter().zip(values).collect(),
        })
    }
}

impl Txn for Prefetched<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match self.cache.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.inner.get(key),
        }
    }

    fn get_range(
        &mut self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Kv>, StorageError> {
        // Writes went through to `inner`, so its ranges are current.
        self.inner.get_range(begin, end, limit)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.inner.set(key, value)?;
        if let Some(v) = self.cache.get_mut(key) {
            *v = Some(value.to_vec());
        }
        Ok(())
    }

    fn clear(&mut self, key: &[u8]) -> Result<(), StorageError> {
        self.inner.clear(key)?;
        if let Some(v) = self.cache.get_mut(key) {
            *v = None;
        }
        Ok(())
    }

    fn clear_range(&mut self, begin: &[u8], end: &[u8]) -> Result<(), StorageError> {
        self.inner.clear_range(begin, end)?;
        for (k, v) in self.cache.iter_mut() {
            if begin <= k.as_slice() && k.as_slice() < end {
                *v = None;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::test_support::CountingTxn;
    use crate::storage::memory::MemoryBackend;
    use crate::storage::Store;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn prefetch_serves_named_keys_from_one_read_and_sees_the_attempts_writes() {
        // Proves the named keys cost one `get_many` and no `get`, a write or a removal
        // (single or by range) is what a later read of the key returns, and an unnamed key
        // is read from below.
        let store = Store::new(Arc::new(MemoryBackend::new()));
        store
            .run(|txn| {
                txn.set(b"a", b"1")?;
                txn.set(b"b", b"2")?;
                txn.set(b"z", b"9")
            })
            .unwrap();
        store
            .run(|txn| {
                let (gets, many) = (AtomicUsize::new(0), AtomicUsize::new(0));
                let mut below = CountingTxn {
                    inner: txn,
                    gets: &gets,
                    many: &many,
                };
                {
                    let keys = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"a".to_vec()];
                    let mut p = Prefetched::new(&mut below, keys)?;
                    assert_eq!(p.get(b"a")?, Some(b"1".to_vec()));
                    assert_eq!(p.get(b"c")?, None);
                    p.set(b"c", b"3")?;
                    p.clear(b"a")?;
                    assert_eq!((p.get(b"a")?, p.get(b"c")?), (None, Some(b"3".to_vec())));
                    p.clear_range(b"b", b"c")?;
                    assert_eq!(p.get(b"b")?, None);
                    assert_eq!(p.get(b"z")?, Some(b"9".to_vec()));
                }
                let counts = (many.load(Ordering::SeqCst), gets.load(Ordering::SeqCst));
                assert_eq!(counts, (1, 1), "one get_many; z read below");
                Ok(())
            })
            .unwrap();
        let rows = store.read(|txn| txn.get_range(b"a", b"zz", 10)).unwrap();
        assert_eq!(
            rows,
            vec![
                (b"c".to_vec(), b"3".to_vec()),
                (b"z".to_vec(), b"9".to_vec())
            ]
        );
    }
}
