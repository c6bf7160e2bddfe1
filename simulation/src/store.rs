//! The simulated FoundationDB-semantics store: the node's `memory` backend, with faults drawn
//! from the seed, latency in simulated time, and an observer of every commit.
//!
//! [`SimBackend`] wraps [`MemoryBackend`] and implements the same [`Backend`] trait the node's
//! `Store` retry loop drives, so the ledger's transaction bodies run unchanged. Before each
//! attempt it draws a fault (conflict, unknown result with and without the commit, latency
//! spike) and injects it into the memory backend, which applies it to exactly that attempt;
//! during a storage outage every attempt fails as unavailable. Latency is not slept: it is
//! summed, and the simulator delays the operation's completion by that much simulated time.
//!
//! Every attempt's writes are recorded; when the attempt committed (success, or an unknown
//! result whose commit happened) they become a [`RawCommit`] for the checkers, together with
//! who wrote it and the lease the store held at commit time (the single-writer check).

use crate::rng::Rng;
use node::ledger::records::Lease;
use node::storage::codec::decode;
use node::storage::keys::Keys;
use node::storage::memory::{Fault, MemoryBackend};
use node::storage::{Backend, Body, Kv, StorageError, Txn};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Which activation runs the storage operation in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Writer {
    /// Node.
    pub node: String,
    /// Account.
    pub account: String,
    /// The activation's nonce.
    pub nonce: u64,
    /// The lease epoch the activation believes it holds.
    pub epoch: u64,
    /// True for an activation (which takes the lease), false for a commit of an activation.
    pub activating: bool,
}

/// The writes of one committed attempt, in key order (`None` removes the key).
#[derive(Clone, Debug)]
pub struct RawCommit {
    /// Who wrote it, if the simulator said.
    pub writer: Option<Writer>,
    /// The writer account's lease as the transaction saw it at its end.
    pub lease_at_commit: Option<Lease>,
    /// Keys and new values.
    pub writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Storage fault rates of a run (ppm per attempt).
#[derive(Clone, Copy, Debug, Default)]
pub struct StorageFaults {
    /// Conflicts.
    pub conflict_ppm: u32,
    /// Unknown results whose commit happened.
    pub unknown_committed_ppm: u32,
    /// Unknown results whose commit did not happen.
    pub unknown_lost_ppm: u32,
    /// Latency spikes.
    pub slow_ppm: u32,
    /// Longest spike.
    pub slow_max_ms: u64,
}

struct State {
    rng: Rng,
    faults: StorageFaults,
    now_ms: u64,
    outage_until_ms: u64,
    /// Latency accrued by attempts since the simulator last took it.
    latency_ms: u64,
    writer: Option<Writer>,
    commits: Vec<RawCommit>,
    attempts: u64,
    injected: u64,
}

/// The simulated store.
pub struct SimBackend {
    mem: MemoryBackend,
    keys: Keys,
    state: Mutex<State>,
}

/// Latency of an ordinary attempt, in simulated ms.
pub const ATTEMPT_LATENCY_MS: u64 = 1;

impl SimBackend {
    /// An empty store drawing its faults from `rng`.
    pub fn new(rng: Rng, keys: Keys) -> Arc<Self> {
        Arc::new(SimBackend {
            mem: MemoryBackend::new(),
            keys,
            state: Mutex::new(State {
                rng,
                faults: StorageFaults::default(),
                now_ms: 0,
                outage_until_ms: 0,
                latency_ms: 0,
                writer: None,
                commits: Vec::new(),
                attempts: 0,
                injected: 0,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the fault rates (all zero heals the store).
    pub fn set_faults(&self, faults: StorageFaults) {
        self.state().faults = faults;
    }

    /// Sets the simulated time the next operations run at.
    pub fn set_now(&self, now_ms: u64) {
        self.state().now_ms = now_ms;
    }

    /// Makes every attempt fail as unavailable until `until_ms`.
    pub fn outage_until(&self, until_ms: u64) {
        let mut s = self.state();
        s.outage_until_ms = s.outage_until_ms.max(until_ms);
    }

    /// Ends any outage now.
    pub fn end_outage(&self) {
        self.state().outage_until_ms = 0;
    }

    /// Names the activation behind the next operations (`None`: a plain read or the sweeper).
    pub fn set_writer(&self, writer: Option<Writer>) {
        self.state().writer = writer;
    }

    /// Takes the latency accrued since the last call.
    pub fn take_latency(&self) -> u64 {
        std::mem::take(&mut self.state().latency_ms)
    }

    /// Takes the commits observed since the last call, in commit order.
    pub fn take_commits(&self) -> Vec<RawCommit> {
        std::mem::take(&mut self.state().commits)
    }

    /// Attempts run and faults injected so far.
    pub fn counts(&self) -> (u64, u64) {
        let s = self.state();
        (s.attempts, s.injected)
    }

    /// Every committed key and value.
    pub fn snapshot(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.mem.snapshot()
    }

    fn run(&self, body: &mut Body<'_>, read_only: bool) -> Result<(), StorageError> {
        let (fault, writer) = {
            let mut s = self.state();
            s.attempts += 1;
            s.latency_ms += ATTEMPT_LATENCY_MS;
            if s.now_ms < s.outage_until_ms {
                s.injected += 1;
                return Err(StorageError::Unavailable("simulated outage".into()));
            }
            let f = s.faults;
            let fault = if s.rng.chance(f.conflict_ppm) {
                Some(Fault::Conflict)
            } else if !read_only && s.rng.chance(f.unknown_committed_ppm) {
                Some(Fault::CommitUnknownCommitted)
            } else if !read_only && s.rng.chance(f.unknown_lost_ppm) {
                Some(Fault::CommitUnknownNotCommitted)
            } else {
                None
            };
            if s.rng.chance(f.slow_ppm) {
                let spike = s.rng.range(1, f.slow_max_ms.max(1));
                s.latency_ms += spike;
            }
            if let Some(fault) = fault {
                s.injected += 1;
                self.mem.inject(fault);
            }
            (fault, s.writer.clone())
        };
        let mut writes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let mut lease_at_commit = None;
        let mut body_ok = false;
        let lease_key = writer.as_ref().map(|w| self.keys.lease(&w.account));
        let mut wrapped = |txn: &mut dyn Txn| -> Result<(), StorageError> {
            let mut rec = Recording {
                inner: txn,
                writes: &mut writes,
            };
            body(&mut rec)?;
            if let Some(k) = &lease_key {
                if !rec.writes.is_empty() {
                    lease_at_commit = rec.get(k)?.map(|b| decode::<Lease>(&b)).transpose()?;
                }
            }
            body_ok = true;
            Ok(())
        };
        let result = if read_only {
            self.mem.attempt_read(&mut wrapped)
        } else {
            self.mem.attempt(&mut wrapped)
        };
        let committed = match &result {
            Ok(()) => true,
            Err(StorageError::CommitUnknown) => {
                body_ok && fault == Some(Fault::CommitUnknownCommitted)
            }
            Err(_) => false,
        };
        if committed && !writes.is_empty() {
            self.state().commits.push(RawCommit {
                writer,
                lease_at_commit,
                writes: writes.into_iter().collect(),
            });
        }
        result
    }
}

impl Backend for SimBackend {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn attempt(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
        self.run(body, false)
    }

    fn attempt_read(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
        self.run(body, true)
    }
}

/// A transaction that remembers what it wrote, the way the store will apply it.
struct Recording<'a, 'b> {
    inner: &'a mut dyn Txn,
    writes: &'b mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Txn for Recording<'_, '_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key)
    }

    fn get_range(
        &mut self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Kv>, StorageError> {
        self.inner.get_range(begin, end, limit)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.inner.set(key, value)?;
        self.writes.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn clear(&mut self, key: &[u8]) -> Result<(), StorageError> {
        self.inner.clear(key)?;
        self.writes.insert(key.to_vec(), None);
        Ok(())
    }

    fn clear_range(&mut self, begin: &[u8], end: &[u8]) -> Result<(), StorageError> {
        // Record the keys the range removes as this transaction sees them.
        let rows = self
            .inner
            .get_range(begin, end, node::storage::RANGE_LIMIT_MAX)?;
        assert!(
            rows.len() < node::storage::RANGE_LIMIT_MAX,
            "the simulator records clear_range of at most {} keys",
            node::storage::RANGE_LIMIT_MAX
        );
        self.inner.clear_range(begin, end)?;
        for (k, _) in rows {
            self.writes.insert(k, None);
        }
        Ok(())
    }
}
