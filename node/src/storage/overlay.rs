//! A transaction inside a transaction: [`Overlay`] buffers one body's writes over another
//! [`Txn`] and hands them on only if the body succeeds.
//!
//! The first step of group commit: many actors' batches run in one storage transaction, each
//! body in its own overlay, so a body that fails on its own (a fenced activation, a bug)
//! leaves nothing behind while the others commit. It needs nothing of the backend (no
//! savepoints), so it works the same on every backend, FoundationDB included.
//!
//! Reads see the overlay's own writes first, then the transaction below. A range read over
//! keys the overlay wrote or removed reads enough rows below to fill its limit: each overlay
//! key hides or replaces at most one row below, so `limit` plus the number of overlay keys in
//! the range is always enough (read in pages of at most [`RANGE_LIMIT_MAX`]). A range removal
//! is turned into one removal per key present, so the overlay holds only single keys.
//!
//! Left out: the reads of a failed body are not undone (on FoundationDB they stay in the
//! group's read-conflict ranges: a conflict then retries the whole group, which is safe).

use super::{Kv, StorageError, Txn, RANGE_LIMIT_MAX};
use std::collections::BTreeMap;

/// One body's writes, buffered over the transaction `inner`.
pub struct Overlay<'a> {
    inner: &'a mut dyn Txn,
    /// Key to its new value (`None`: removed).
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Overlay<'a> {
    /// An overlay with no write yet.
    pub fn new(inner: &'a mut dyn Txn) -> Self {
        Overlay {
            inner,
            writes: BTreeMap::new(),
        }
    }

    /// Hands every buffered write on to the transaction below, in key order. Dropping an
    /// overlay instead discards them.
    pub fn apply(self) -> Result<(), StorageError> {
        for (k, v) in self.writes {
            match v {
                Some(v) => self.inner.set(&k, &v)?,
                None => self.inner.clear(&k)?,
            }
        }
        Ok(())
    }

    /// Up to `n` rows below, in `[begin, end)`, read in pages of at most [`RANGE_LIMIT_MAX`].
    fn below(&mut self, begin: &[u8], end: &[u8], n: usize) -> Result<Vec<Kv>, StorageError> {
        let mut rows: Vec<Kv> = Vec::new();
        let mut from = begin.to_vec();
        while rows.len() < n {
            let want = (n - rows.len()).min(RANGE_LIMIT_MAX);
            let page = self.inner.get_range(&from, end, want)?;
            let full = page.len() == want;
            if let Some((k, _)) = page.last() {
                from = k.clone();
                from.push(0);
            }
            rows.extend(page);
            if !full {
                break;
            }
        }
        Ok(rows)
    }
}

impl Txn for Overlay<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match self.writes.get(key) {
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
        if begin >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let hidden = self.writes.range(begin.to_vec()..end.to_vec()).count();
        let below = self.below(begin, end, limit + hidden)?;
        let mut over = self.writes.range(begin.to_vec()..end.to_vec()).peekable();
        let mut below = below.into_iter().peekable();
        let mut out = Vec::with_capacity(limit);
        while out.len() < limit {
            // The smaller key next; on a tie the overlay's value wins and the row below goes.
            let order = match (over.peek(), below.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((ok, _)), Some((bk, _))) => ok.as_slice().cmp(bk.as_slice()),
            };
            if order == std::cmp::Ordering::Equal {
                below.next();
            }
            let take_over = order != std::cmp::Ordering::Greater;
            if take_over {
                let (k, v) = over.next().expect("peeked");
                if let Some(v) = v {
                    out.push((k.clone(), v.clone()));
                }
            } else {
                out.push(below.next().expect("peeked"));
            }
        }
        Ok(out)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.writes.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn clear(&mut self, key: &[u8]) -> Result<(), StorageError> {
        self.writes.insert(key.to_vec(), None);
        Ok(())
    }

    fn clear_range(&mut self, begin: &[u8], end: &[u8]) -> Result<(), StorageError> {
        // Every key present in the range, as this overlay sees it, removed one by one.
        let mut from = begin.to_vec();
        loop {
            let page = self.get_range(&from, end, RANGE_LIMIT_MAX)?;
            let full = page.len() == RANGE_LIMIT_MAX;
            for (k, _) in &page {
                self.writes.insert(k.clone(), None);
            }
            match page.last() {
                Some((k, _)) if full => {
                    from = k.clone();
                    from.push(0);
                }
                _ => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryBackend;
    use crate::storage::Store;
    use proptest::prelude::*;
    use std::sync::Arc;

    /// One operation of a body, on keys of one byte.
    #[derive(Clone, Debug)]
    enum Op {
        Get(u8),
        Range(u8, u8, usize),
        Set(u8, u8),
        Clear(u8),
        ClearRange(u8, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            any::<u8>().prop_map(|k| Op::Get(k % 16)),
            (any::<u8>(), any::<u8>(), 0usize..8).prop_map(|(a, b, n)| Op::Range(
                a % 16,
                b % 17,
                n
            )),
            (any::<u8>(), any::<u8>()).prop_map(|(k, v)| Op::Set(k % 16, v)),
            any::<u8>().prop_map(|k| Op::Clear(k % 16)),
            (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::ClearRange(a % 16, b % 17)),
        ]
    }

    /// Runs `ops` on `txn`, returning every read's result.
    fn run(txn: &mut dyn Txn, ops: &[Op]) -> Vec<Vec<Kv>> {
        let mut reads = Vec::new();
        for o in ops {
            match *o {
                Op::Get(k) => reads.push(
                    txn.get(&[k])
                        .unwrap()
                        .map(|v| vec![(vec![k], v)])
                        .unwrap_or_default(),
                ),
                Op::Range(a, b, n) => reads.push(txn.get_range(&[a], &[b], n).unwrap()),
                Op::Set(k, v) => txn.set(&[k], &[v]).unwrap(),
                Op::Clear(k) => txn.clear(&[k]).unwrap(),
                Op::ClearRange(a, b) => {
                    if a < b {
                        txn.clear_range(&[a], &[b]).unwrap()
                    }
                }
            }
        }
        reads
    }

    /// A store holding `initial` (keys of one byte).
    fn store(initial: &[(u8, u8)]) -> Store {
        let s = Store::new(Arc::new(MemoryBackend::new()));
        s.run(|txn| {
            for (k, v) in initial {
                txn.set(&[*k], &[*v])?;
            }
            Ok(())
        })
        .unwrap();
        s
    }

    fn all(s: &Store) -> Vec<Kv> {
        s.read(|txn| txn.get_range(&[0], &[255], 100)).unwrap()
    }

    #[test]
    fn overlay_range_read_past_the_range_limit_fills_its_limit() {
        // Proves a range read at the largest limit over removed keys reads below in more than
        // one page and still returns a full page, and a range removal of more keys than one
        // page removes them all.
        let n = RANGE_LIMIT_MAX + 5;
        let key = |i: usize| (i as u32).to_be_bytes().to_vec();
        let s = Store::new(Arc::new(MemoryBackend::new()));
        for chunk in (0..n).collect::<Vec<_>>().chunks(2_000) {
            s.run(|txn| {
                for &i in chunk {
                    txn.set(&key(i), b"v")?;
                }
                Ok(())
            })
            .unwrap();
        }
        s.run(|txn| {
            let mut o = Overlay::new(txn);
            for i in [0, 1, 2] {
                o.clear(&key(i))?;
            }
            let rows = o.get_range(&key(0), &key(n), RANGE_LIMIT_MAX)?;
            assert_eq!(rows.len(), RANGE_LIMIT_MAX);
            assert_eq!(
                (rows[0].0.clone(), rows[RANGE_LIMIT_MAX - 1].0.clone()),
                (key(3), key(RANGE_LIMIT_MAX + 2))
            );
            o.clear_range(&key(0), &key(n))?;
            assert!(o.get_range(&key(0), &key(n), 10)?.is_empty());
            Ok(())
        })
        .unwrap();
    }

    proptest! {
        #[test]
        fn overlay_reads_and_applies_like_the_transaction_itself(
            initial in proptest::collection::vec((0u8..16, any::<u8>()), 0..12),
            ops in proptest::collection::vec(op(), 0..40),
            keep in any::<bool>(),
        ) {
            // Proves a body run in an overlay reads exactly what it would read run directly
            // (its own writes, removals and range removals included, across range limits),
            // leaves the store as the direct run does once applied, and untouched if dropped.
            let direct = store(&initial);
            let want = direct.run(|txn| Ok(run(txn, &ops))).unwrap();
            let layered = store(&initial);
            let before = all(&layered);
            let got = layered
                .run(|txn| {
                    let mut o = Overlay::new(txn);
                    let reads = run(&mut o, &ops);
                    if keep {
                        o.apply()?;
                    }
                    Ok(reads)
                })
                .unwrap();
            prop_assert_eq!(got, want);
            if keep {
                prop_assert_eq!(all(&layered), all(&direct));
            } else {
                prop_assert_eq!(all(&layered), before);
            }
        }
    }
}
