//! The storage contract: an ordered byte-key space with serializable transactions.
//!
//! The contract is FoundationDB's (DESIGN.md section 3). A transaction body gets a [`Txn`] with
//! `get`, `get_range`, `set`, `clear` and `clear_range`, sees its own writes, and is committed
//! atomically. [`Store::run`] is the one retry loop of the system: it runs a body, and on a
//! retryable error (a conflict, a commit whose result is unknown, a transaction that grew too
//! old, a store briefly unavailable) runs it again from scratch, with jittered exponential
//! backoff, up to [`RETRY_ATTEMPTS_MAX`] times. Once an attempt's commit result was unknown,
//! any final error is reported as [`StorageError::CommitUnknown`]: nothing later proves that
//! the unknown attempt did not land. A body must therefore be safe to run more than once, including
//! after a commit that did happen but was reported unknown: every body in `ledger::exec` reads
//! what it depends on and writes absolute values, so a second run writes the same bytes again.
//!
//! FoundationDB's limits are enforced here, once, for every backend, by [`LimitedTxn`]: a key of
//! at most [`KEY_SIZE_MAX`] bytes, a value of at most [`VALUE_SIZE_MAX`] bytes, at most
//! [`TXN_SIZE_MAX`] bytes written per transaction, and at most [`TXN_DURATION_MAX`] per attempt.
//!
//! Backends ([`Backend`]):
//! - `memory` ([`memory::MemoryBackend`]): a multi-version `BTreeMap` behind a lock, for unit
//!   tests and the simulator, which models FoundationDB's optimistic concurrency (read
//!   versions, read-conflict ranges, snapshot reads) and takes injectable faults (a stale read
//!   version, conflict, unknown result with and without the commit having happened,
//!   unavailability, latency).
//! - `embedded` ([`sqlite::SqliteBackend`]): SQLite in WAL mode, one table of ordered keys.
//!   See that module for why SQLite was chosen over LMDB, with the measurements.
//! - `fdb` (`fdb::FdbBackend`, with the `fdb` cargo feature): FoundationDB, the backend for
//!   nodes on several machines. It runs each attempt as one FoundationDB transaction and maps
//!   FoundationDB's errors onto [`StorageError`], so this retry loop is its retry loop too.
//!
//! [`overlay::Overlay`] runs a body inside another body's transaction with its writes held
//! back until it succeeds (the building block of group commit); [`prefetch::Prefetched`]
//! serves a group's reads from one [`Txn::get_many`] made at its start.
//!
//! Keys are built by [`keys::Keys`] with the FoundationDB tuple encoding, the same bytes on
//! every backend. Values carry a version byte ([`codec`]): a compact binary form now
//! (`ledger::stored`), JSON in data written by releases before 0.2, which still decodes.
//!
//! Isolation, as FoundationDB gives it and every backend must: a read-write attempt is
//! serializable, because every read it makes is protected (on FoundationDB, by a read-conflict
//! range; a `get_range` that stops at its limit protects only the keys up to the last one it
//! returned), so a body may decide from what it read. A read-only attempt
//! ([`Backend::attempt_read`]) is a snapshot read: one consistent version that includes every
//! commit acknowledged before it began, no conflict ranges, no commit.
//!
//! Left out on purpose: watches, versionstamps, atomic mutations, and snapshot reads inside a
//! read-write attempt; nothing in the ledger needs them. Backends are synchronous: the actor
//! shell calls them from blocking threads, and the simulator calls them inline.

pub mod codec;
#[cfg(feature = "fdb")]
pub mod fdb;
pub mod keys;
pub mod memory;
pub mod overlay;
pub mod prefetch;
pub mod sqlite;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest key, in bytes (FoundationDB: 10 kB).
pub const KEY_SIZE_MAX: usize = 10_000;
/// Largest value, in bytes (FoundationDB: 100 kB).
pub const VALUE_SIZE_MAX: usize = 100_000;
/// Most bytes a transaction may write, keys and values (FoundationDB: 10 MB).
pub const TXN_SIZE_MAX: usize = 10_000_000;
/// Longest an attempt may run (FoundationDB: 5 s).
pub const TXN_DURATION_MAX: Duration = Duration::from_secs(5);
/// Most rows one `get_range` call returns.
pub const RANGE_LIMIT_MAX: usize = 10_000;
/// Most attempts [`Store::run`] makes before it reports the error.
pub const RETRY_ATTEMPTS_MAX: u32 = 10;
/// First backoff between attempts.
pub const RETRY_BACKOFF_INITIAL: Duration = Duration::from_millis(1);
/// Longest backoff between attempts.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(200);

/// A storage failure, or a body's decision to abort.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// Another transaction conflicted; nothing was committed. Retryable.
    #[error("transaction conflict (not committed)")]
    Conflict,
    /// The commit may or may not have happened. Retryable only because bodies are idempotent.
    #[error("commit result unknown")]
    CommitUnknown,
    /// The attempt ran longer than the store allows; nothing was committed. Retryable.
    #[error("transaction too old (not committed)")]
    TooOld,
    /// The store could not be reached or is busy; nothing was committed. Retryable.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A key, value or transaction exceeds a limit. Not retryable: a bug in the caller.
    #[error("storage limit exceeded: {0}")]
    LimitExceeded(String),
    /// The activation writing was fenced by a newer one (lease epoch moved). Not retryable.
    #[error("fenced: a newer activation owns this account")]
    Fenced,
    /// Stored bytes could not be decoded. Not retryable: corruption or a bug.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The store refused the attempt in a way running it again cannot fix (a client error, a
    /// misconfiguration); nothing was committed. Not retryable.
    #[error("storage failed: {0}")]
    Failed(String),
}

impl StorageError {
    /// True when running the body again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StorageError::Conflict
                | StorageError::CommitUnknown
                | StorageError::TooOld
                | StorageError::Unavailable(_)
        )
    }

    /// True when a commit may have happened although an error was returned.
    pub fn maybe_committed(&self) -> bool {
        matches!(self, StorageError::CommitUnknown)
    }
}

/// One key-value pair.
pub type Kv = (Vec<u8>, Vec<u8>);

/// Operations inside one transaction. Reads see the transaction's own writes.
pub trait Txn {
    /// Reads one key.
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// Reads several keys, values in the order of `keys`. A backend whose reads are round
    /// trips issues them all before it waits for one (FoundationDB); the default reads them
    /// one by one.
    fn get_many(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        keys.iter().map(|k| self.get(k)).collect()
    }
    /// Reads keys in `[begin, end)` in key order, at most `limit` of them (0 reads nothing;
    /// FoundationDB's "0 means no limit" is translated by its adapter).
    fn get_range(
        &mut self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Kv>, StorageError>;
    /// Writes one key.
    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError>;
    /// Removes one key.
    fn clear(&mut self, key: &[u8]) -> Result<(), StorageError>;
    /// Removes every key in `[begin, end)`.
    fn clear_range(&mut self, begin: &[u8], end: &[u8]) -> Result<(), StorageError>;
}

/// The body of one attempt, as a backend sees it.
pub type Body<'a> = dyn FnMut(&mut dyn Txn) -> Result<(), StorageError> + 'a;

/// A storage engine. It runs one attempt of a body in a fresh transaction.
pub trait Backend: Send + Sync + 'static {
    /// The backend's config name (`memory`, `embedded`, `fdb`).
    fn name(&self) -> &'static str;
    /// Runs `body` in a new read-write transaction and commits it if `body` returns `Ok`;
    /// otherwise rolls back and returns the body's error. One attempt, no retry.
    fn attempt(&self, body: &mut Body<'_>) -> Result<(), StorageError>;
    /// Like [`Backend::attempt`] for a body that only reads; a backend may run it concurrently
    /// with writers on a consistent snapshot. Writes from such a body are a bug.
    fn attempt_read(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
        self.attempt(body)
    }
}

/// Counters of a store, for metrics.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Committed read-write transactions.
    pub commits: AtomicU64,
    /// Attempts that failed with a retryable error and were run again.
    pub retries: AtomicU64,
    /// Transactions that failed after every attempt, or with a final error.
    pub failures: AtomicU64,
}

/// How [`Store::run`] retries.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Most attempts.
    pub attempts_max: u32,
    /// First backoff.
    pub backoff_initial: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts_max: RETRY_ATTEMPTS_MAX,
            backoff_initial: RETRY_BACKOFF_INITIAL,
            backoff_max: RETRY_BACKOFF_MAX,
        }
    }
}

/// A backend with the retry loop and the limits: what the rest of the node uses.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    policy: RetryPolicy,
    stats: Arc<StoreStats>,
}

impl Store {
    /// Wraps a backend with the default retry policy.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Store::with_policy(backend, RetryPolicy::default())
    }

    /// Wraps a backend with a given retry policy.
    pub fn with_policy(backend: Arc<dyn Backend>, policy: RetryPolicy) -> Self {
        assert!(policy.attempts_max >= 1, "a retry policy needs one attempt");
        Store {
            backend,
            policy,
            stats: Arc::new(StoreStats::default()),
        }
    }

    /// The backend's config name.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The store's counters.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Runs a read-write body to commit, retrying retryable errors. The body may run several
    /// times and must be idempotent; its result is that of the attempt that committed.
    pub fn run<T>(
        &self,
        mut body: impl FnMut(&mut dyn Txn) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.run_knowing(|txn, _| body(txn))
    }

    /// Like [`Store::run`], and tells the body whether an earlier attempt's commit result was
    /// unknown (that attempt may have landed): a body that decides alone what its own
    /// failure means (a group of batches, each failing on its own) needs to know.
    pub fn run_knowing<T>(
        &self,
        mut body: impl FnMut(&mut dyn Txn, bool) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let result = self.retry(|backend, out: &mut Option<T>, unknown_before| {
            backend.attempt(&mut |txn: &mut dyn Txn| {
                let mut limited = LimitedTxn::new(txn);
                *out = Some(body(&mut limited, unknown_before)?);
                Ok(())
            })
        });
        if result.is_ok() {
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Runs a read-only body, retrying retryable errors.
    pub fn read<T>(
        &self,
        mut body: impl FnMut(&mut dyn Txn) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.retry(|backend, out: &mut Option<T>, _| {
            backend.attempt_read(&mut |txn: &mut dyn Txn| {
                let mut limited = LimitedTxn::new(txn);
                *out = Some(body(&mut limited)?);
                Ok(())
            })
        })
    }

    fn retry<T>(
        &self,
        mut attempt: impl FnMut(&dyn Backend, &mut Option<T>, bool) -> Result<(), StorageError>,
    ) -> Result<T, StorageError> {
        let mut backoff = self.policy.backoff_initial;
        let mut attempt_index = 0;
        // Once an attempt's commit result was unknown, no later error proves that nothing
        // committed: that attempt may have landed (and then moved the lease, say).
        let mut unknown_seen = false;
        loop {
            attempt_index += 1;
            let mut out = None;
            match attempt(self.backend.as_ref(), &mut out, unknown_seen) {
                Ok(()) => return Ok(out.expect("a successful attempt sets its result")),
                Err(e) if e.is_retryable() && attempt_index < self.policy.attempts_max => {
                    unknown_seen |= e == StorageError::CommitUnknown;
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(jittered(backoff));
                    backoff = (backoff * 2).min(self.policy.backoff_max);
                }
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    if unknown_seen && e != StorageError::CommitUnknown {
                        tracing::warn!(
                            "storage: {e} after an attempt whose commit is unknown; reporting unknown"
                        );
                        return Err(StorageError::CommitUnknown);
                    }
                    return Err(e);
                }
            }
        }
    }
}

/// A backoff of between half and all of `backoff`, so that attempts that conflicted with each
/// other do not all come back at the same instant. Zero stays zero (the simulator's policy).
fn jittered(backoff: Duration) -> Duration {
    if backoff.is_zero() {
        return backoff;
    }
    let mut random = [0u8; 4];
    // Without randomness the full backoff is still a backoff.
    if getrandom::fill(&mut random).is_err() {
        return backoff;
    }
    let half = backoff / 2;
    half + half.mul_f64(f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX))
}

/// A transaction wrapper that enforces FoundationDB's limits the same way on every backend.
pub struct LimitedTxn<'a> {
    inner: &'a mut dyn Txn,
    written_bytes: usize,
    started: Instant,
}

impl<'a> LimitedTxn<'a> {
    /// Wraps a backend's transaction.
    pub fn new(inner: &'a mut dyn Txn) -> Self {
        LimitedTxn {
            inner,
            written_bytes: 0,
            started: Instant::now(),
        }
    }

    fn check_age(&self) -> Result<(), StorageError> {
        if self.started.elapsed() > TXN_DURATION_MAX {
            return Err(StorageError::TooOld);
        }
        Ok(())
    }

    fn check_key(key: &[u8]) -> Result<(), StorageError> {
        if key.len() > KEY_SIZE_MAX {
            return Err(StorageError::LimitExceeded(format!(
                "key of {} bytes (limit {KEY_SIZE_MAX})",
                key.len()
            )));
        }
        Ok(())
    }

    fn add_written(&mut self, bytes: usize) -> Result<(), StorageError> {
        self.written_bytes += bytes;
        if self.written_bytes > TXN_SIZE_MAX {
            return Err(StorageError::LimitExceeded(format!(
                "transaction writes {} bytes (limit {TXN_SIZE_MAX})",
                self.written_bytes
            )));
        }
        Ok(())
    }
}

impl Txn for LimitedTxn<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.check_age()?;
        Self::check_key(key)?;
        self.inner.get(key)
    }

    fn get_many(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        self.check_age()?;
        for k in keys {
            Self::check_key(k)?;
        }
        self.inner.get_many(keys)
    }

    fn get_range(
        &mut self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Kv>, StorageError> {
        self.check_age()?;
        assert!(
            limit <= RANGE_LIMIT_MAX,
            "range limit {limit} over {RANGE_LIMIT_MAX}"
        );
        self.inner.get_range(begin, end, limit)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.check_age()?;
        Self::check_key(key)?;
        if value.len() > VALUE_SIZE_MAX {
            return Err(StorageError::LimitExceeded(format!(
                "value of {} bytes (limit {VALUE_SIZE_MAX})",
                value.len()
            )));
        }
        self.add_written(key.len() + value.len())?;
        self.inner.set(key, value)
    }

    fn clear(&mut self, key: &[u8]) -> Result<(), StorageError> {
        self.check_age()?;
        Self::check_key(key)?;
        self.add_written(key.len())?;
        self.inner.clear(key)
    }

    fn clear_range(&mut self, begin: &[u8], end: &[u8]) -> Result<(), StorageError> {
        self.check_age()?;
        self.add_written(begin.len() + end.len())?;
        self.inner.clear_range(begin, end)
    }
}
