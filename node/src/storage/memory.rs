//! The `memory` backend: an ordered map behind one lock, for unit tests and the simulator.
//!
//! Design: a `BTreeMap<Vec<u8>, Vec<u8>>` behind a `std::sync::Mutex`. An attempt holds the
//! lock from before its body runs until its writes are applied, so transactions run one at a
//! time and are serializable by construction (and a body must not start another transaction
//! on the same backend: it would wait for itself). The body writes into an overlay (a sorted
//! map of new values and tombstones) that its own reads consult first; the overlay reaches the
//! map only when the body returns `Ok` and no injected fault says otherwise, so an aborted
//! attempt leaves nothing behind. A panicking body poisons the lock but cannot have changed
//! the map, which is why a poisoned lock is simply taken over.
//!
//! Faults ([`Fault`]) are queued with [`MemoryBackend::inject`] and consumed one per attempt,
//! in order, by read-write and read-only attempts alike, so a test or the simulator can make
//! the next attempt conflict, lose its commit result, find the store unavailable or run late.
//!
//! Left out: durability (everything lives in the process), concurrency between transactions
//! (the lock serializes them, readers included), optimistic conflict detection (real conflicts
//! cannot happen; [`Fault::Conflict`] imitates one), virtual time ([`Fault::LatencyMs`] really
//! sleeps), and the time limit, which [`super::LimitedTxn`] enforces for every backend.

use super::{Backend, Body, Kv, StorageError, Txn};
use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// A fault applied to one attempt of a [`MemoryBackend`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The body runs, nothing is applied, the attempt reports [`StorageError::Conflict`].
    Conflict,
    /// The body runs, its writes are applied, the attempt reports [`StorageError::CommitUnknown`].
    CommitUnknownCommitted,
    /// The body runs, nothing is applied, the attempt reports [`StorageError::CommitUnknown`].
    CommitUnknownNotCommitted,
    /// The body does not run, the attempt reports [`StorageError::Unavailable`] (`"injected"`).
    Unavailable,
    /// The attempt sleeps this many milliseconds before taking the lock, then runs normally.
    LatencyMs(u64),
}

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// An in-memory ordered key space with serializable transactions and injectable faults.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    data: Mutex<Map>,
    faults: Mutex<VecDeque<Fault>>,
}

impl MemoryBackend {
    /// An empty store with no fault queued.
    pub fn new() -> Self {
        MemoryBackend::default()
    }

    /// Queues a fault for the next attempt that has none (first in, first out).
    pub fn inject(&self, fault: Fault) {
        lock(&self.faults).push_back(fault);
    }

    /// Number of faults queued and not yet consumed by an attempt.
    pub fn faults_pending(&self) -> usize {
        lock(&self.faults).len()
    }

    /// A copy of every committed key and value, for checkers.
    pub fn snapshot(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        lock(&self.data).clone()
    }

    fn run_attempt(&self, body: &mut Body<'_>, read_only: bool) -> Result<(), StorageError> {
        // Taken before the data lock and released at once: the two locks are never nested.
        let fault = lock(&self.faults).pop_front();
        match fault {
            Some(Fault::LatencyMs(ms)) => std::thread::sleep(Duration::from_millis(ms)),
            Some(Fault::Unavailable) => {
                return Err(StorageError::Unavailable("injected".to_string()))
            }
            _ => {}
        }
        let mut data = lock(&self.data);
        let mut txn = MemoryTxn {
            base: &data,
            overlay: BTreeMap::new(),
            read_only,
            failed: None,
        };
        let outcome = body(&mut txn);
        let MemoryTxn {
            overlay, failed, ..
        } = txn;
        // The body's own error wins; an error it swallowed still aborts the attempt.
        outcome?;
        if let Some(e) = failed {
            return Err(e);
        }
        match fault {
            Some(Fault::Conflict) => Err(StorageError::Conflict),
            Some(Fault::CommitUnknownNotCommitted) => Err(StorageError::CommitUnknown),
            Some(Fault::CommitUnknownCommitted) => {
                apply(&mut data, overlay);
                Err(StorageError::CommitUnknown)
            }
            Some(Fault::Unavailable | Fault::LatencyMs(_)) | None => {
                apply(&mut data, overlay);
                Ok(())
            }
        }
    }
}

impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn attempt(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
        self.run_attempt(body, false)
    }

    fn attempt_read(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
        self.run_attempt(body, true)
    }
}

/// Locks a mutex, taking over a poisoned one: the map only changes in [`apply`], which runs
/// no caller code, so a panic elsewhere cannot leave it half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes an overlay into the map: `Some` sets, `None` removes.
fn apply(data: &mut Map, overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
    for (key, value) in overlay {
        match value {
            Some(v) => {
                data.insert(key, v);
            }
            None => {
                data.remove(&key);
            }
        }
    }
}

/// The bounds `[begin, end)` as `BTreeMap::range` takes them.
fn half_open<'k>(begin: &'k [u8], end: &'k [u8]) -> (Bound<&'k [u8]>, Bound<&'k [u8]>) {
    (Bound::Included(begin), Bound::Excluded(end))
}

/// One attempt's view: the locked map plus the attempt's own writes.
struct MemoryTxn<'a> {
    base: &'a Map,
    /// New values (`Some`) and tombstones (`None`) by key.
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    read_only: bool,
    /// The first error returned to the body, so that swallowing it cannot commit.
    failed: Option<StorageError>,
}

impl MemoryTxn<'_> {
    fn check_write(&mut self) -> Result<(), StorageError> {
        if self.read_only {
            let e = StorageError::LimitExceeded("write in a read-only transaction".to_string());
            self.failed.get_or_insert_with(|| e.clone());
            return Err(e);
        }
        Ok(())
    }
}

impl Txn for MemoryTxn<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match self.overlay.get(key) {
            Some(own) => Ok(own.clone()),
            None => Ok(self.base.get(key).cloned()),
        }
    }

    fn get_range(
        &mut self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Kv>, StorageError> {
        let mut out = Vec::new();
        // `BTreeMap::range` panics on an inverted range; an empty one is simply empty.
        if begin >= end || limit == 0 {
            return Ok(out);
        }
        let mut base = self.base.range::<[u8], _>(half_open(begin, end)).peekable();
        let mut own = self
            .overlay
            .range::<[u8], _>(half_open(begin, end))
            .peekable();
        // Merge both sorted streams; on equal keys the overlay wins. The limit counts rows
        // returned, so it is applied after tombstones have hidden base rows.
        while out.len() < limit {
            let order = match (base.peek(), own.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((b, _)), Some((o, _))) => b.cmp(o),
            };
            match order {
                Ordering::Less => {
                    if let Some((k, v)) = base.next() {
                        out.push((k.clone(), v.clone()));
                    }
                }
                Ordering::Equal | Ordering::Greater => {
                    if order == Ordering::Equal {
                        base.next();
                    }
                    if let Some((k, Some(v))) = own.next() {
                        out.push((k.clone(), v.clone()));
                    }
                }
            }
        }
        Ok(out)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.check_write()?;
        self.overlay.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn clear(&mut self, key: &[u8]) -> Result<(), StorageError> {
        self.check_write()?;
        self.overlay.insert(key.to_vec(), None);
        Ok(())
    }

    fn clear_range(&mut self, begin: &[u8], end: &[u8]) -> Result<(), StorageError> {
        self.check_write()?;
        if begin >= end {
            return Ok(());
        }
        // The base cannot change during the attempt (it is locked), so a tombstone per base
        // key in the range is exact; the attempt's own writes in the range are hidden too.
        for (_, own) in self.overlay.range_mut::<[u8], _>(half_open(begin, end)) {
            *own = None;
        }
        for key in self
            .base
            .range::<[u8], _>(half_open(begin, end))
            .map(|(k, _)| k)
        {
            self.overlay.insert(key.clone(), None);
        }
        Ok(())
    }
}
