//! The `memory` backend: a multi-version ordered map behind one lock, for unit tests and the
//! simulator.
//!
//! Design: the newest committed data is a `BTreeMap<Vec<u8>, Vec<u8>>` behind a
//! `std::sync::Mutex`, with a commit version and the undo logs of the last
//! [`HISTORY_COMMITS_MAX`] commits. An attempt holds the lock from before its body runs until
//! its writes are applied, so attempts run one at a time, deterministically (and a body must
//! not start another transaction on the same backend: it would wait for itself). The body
//! writes into an overlay (a sorted map of new values and tombstones) that its own reads
//! consult first; the overlay reaches the map only when the body returns `Ok`, no injected
//! fault says otherwise and no conflict is found, so an aborted attempt leaves nothing behind.
//! A panicking body poisons the lock but cannot have changed the store, which is why a
//! poisoned lock is simply taken over.
//!
//! Concurrency is modelled the way FoundationDB runs it, optimistically. Every commit with
//! writes gets the next version and leaves an undo log: for each key it wrote (a
//! `clear_range` counts as the keys it found in the range), the value the key had before. A
//! read-write attempt reads at a read version, normally the newest; [`Fault::StaleRead`]`(n)`
//! puts it `n` commits behind, as if it had begun before the last `n` commits ran, and its
//! reads see the store as of that version (rebuilt from the undo logs) merged with its own
//! writes. Every read of a read-write attempt records a read-conflict range, as FoundationDB
//! does: `get(k)` covers `[k, k\0)`; `get_range(b, e, limit)` covers `[b, e)`, or only
//! `[b, last\0)` when it returned `limit` rows (reads answered by the attempt's own writes
//! record one too, which is conservative). At commit, if a commit newer than the read version
//! wrote a key inside one of those ranges, the attempt fails with [`StorageError::Conflict`]
//! and applies nothing; writes alone never conflict (blind writes). A read version older than
//! the retained history fails with [`StorageError::TooOld`], FoundationDB's
//! `transaction_too_old`. One rule is stricter than FoundationDB's: the check also covers an
//! attempt that wrote nothing, which FoundationDB commits at once, and one whose body
//! returned an error, which FoundationDB hands to the caller; both then report the conflict.
//! FoundationDB may skip them because a read version is never older than a commit that
//! completed before the transaction began, whereas a stale version here is drawn without
//! knowing which commits the caller had already seen complete: unchecked, it could answer a
//! client with data older than what that client was already told (an account not found after
//! its creation was acknowledged), or fence an activation with a lease it had replaced. So
//! whatever a stale attempt reports, it decided on reads that are still current at its end.
//! Read-only attempts ([`Backend::attempt_read`], the ledger's snapshot reads) read the newest
//! version, record no ranges and never conflict on their own: FoundationDB's read version
//! includes every commit that completed before the transaction began.
//!
//! Faults ([`Fault`]) are queued with [`MemoryBackend::inject`] and consumed one per attempt,
//! in order, by read-write and read-only attempts alike, so a test or the simulator can make
//! the next attempt conflict, read stale data, lose its commit result, find the store
//! unavailable or run late.
//!
//! Left out: durability (everything lives in the process), real parallelism (attempts run one
//! at a time, readers included: concurrency exists only as the stale read versions that
//! [`Fault::StaleRead`] asks for, so without it no conflict can happen and
//! [`Fault::Conflict`] imitates one), write-conflict ranges wider than the keys written (a
//! `clear_range` conflicts only with readers of the keys it removed, which is enough for
//! serializability), virtual time ([`Fault::LatencyMs`] really sleeps), and the time limit,
//! which [`super::LimitedTxn`] enforces for every backend.

use super::{Backend, Body, Kv, StorageError, Txn};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Most commits whose undo log is kept, so the oldest read version a stale attempt may take
/// (FoundationDB keeps 5 s of versions; older reads fail as `transaction_too_old`).
pub const HISTORY_COMMITS_MAX: usize = 64;

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
    /// A read-write attempt reads at the version this many commits behind the newest, as if
    /// it had begun before them: if one of them wrote a key it read, it reports
    /// [`StorageError::Conflict`] whatever its body returned; it fails with
    /// [`StorageError::TooOld`], without running the body, when that version is older than
    /// the retained history. A read-only attempt consumes it and ignores it: it reads the
    /// newest version.
    StaleRead(u64),
}

/// The writes of one commit, in key order (`None` removes the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// The commit's version.
    pub version: u64,
    /// Keys and new values; a `clear_range` appears as a removal of each key it found.
    pub writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// What one attempt did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What the attempt reports to its caller.
    pub result: Result<(), StorageError>,
    /// What it applied: `Some` when its writes reached the store, including after an unknown
    /// result whose commit happened; `None` when nothing was applied or it wrote nothing.
    pub commit: Option<Commit>,
}

impl Outcome {
    fn failed(e: StorageError) -> Self {
        Outcome {
            result: Err(e),
            commit: None,
        }
    }
}

type Map = BTreeMap<Vec<u8>, Vec<u8>>;
/// Values by key, `None` for an absent key: an overlay of writes, or an undo log.
type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;
/// A key and its value at some version (`None`: absent).
type Row<'s> = (&'s [u8], Option<&'s [u8]>);

/// One retained commit: its version and, for each key it wrote, the value before.
#[derive(Debug)]
struct Undo {
    version: u64,
    before: Changes,
}

/// The committed store: the newest data, its version, and the undo logs of the last commits.
#[derive(Debug, Default)]
struct Versioned {
    data: Map,
    version: u64,
    /// Oldest first, versions consecutive and ending at `version`.
    history: VecDeque<Undo>,
}

impl Versioned {
    /// The version `behind` commits before the newest, if the history still covers it.
    fn read_version(&self, behind: u64) -> Option<u64> {
        let retained = u64::try_from(self.history.len()).ok()?;
        if behind > retained {
            return None;
        }
        self.version.checked_sub(behind)
    }

    /// The commits newer than `version`, newest first.
    fn after(&self, version: u64) -> impl Iterator<Item = &Undo> + '_ {
        self.history
            .iter()
            .rev()
            .take_while(move |u| u.version > version)
    }

    /// The value of `key` at `version`: the value before the oldest newer commit that wrote
    /// it, or else the newest value.
    fn value_at(&self, key: &[u8], version: u64) -> Option<&[u8]> {
        match self.after(version).filter_map(|u| u.before.get(key)).last() {
            Some(before) => before.as_deref(),
            None => self.data.get(key).map(Vec::as_slice),
        }
    }

    /// The keys of `[begin, end)` that exist now or existed at `version`, in key order, with
    /// their values at `version` (`None` for keys absent then).
    fn range_at<'s>(
        &'s self,
        begin: &[u8],
        end: &[u8],
        version: u64,
    ) -> impl Iterator<Item = Row<'s>> + 's {
        let newest = self
            .data
            .range::<[u8], _>(half_open(begin, end))
            .map(|(k, v)| (k.as_slice(), Some(v.as_slice())));
        // Only keys written since `version` can differ from the newest data.
        let changed: BTreeSet<&[u8]> = self
            .after(version)
            .flat_map(|u| u.before.range::<[u8], _>(half_open(begin, end)))
            .map(|(k, _)| k.as_slice())
            .collect();
        let changed = changed
            .into_iter()
            .map(move |k| (k, self.value_at(k, version)));
        merge(newest, changed)
    }

    /// True when a commit newer than `version` wrote a key inside one of `ranges`.
    fn conflicts(&self, version: u64, ranges: &[(Vec<u8>, Vec<u8>)]) -> bool {
        self.after(version).any(|u| {
            ranges
                .iter()
                .any(|(b, e)| u.before.range::<[u8], _>(half_open(b, e)).next().is_some())
        })
    }

    /// Applies `writes` as the next version, keeping its undo log; `None` when there are none.
    fn commit(&mut self, writes: Changes) -> Option<Commit> {
        if writes.is_empty() {
            return None;
        }
        let version = self
            .version
            .checked_add(1)
            .expect("commit versions never run out");
        let mut before = Changes::new();
        for (key, value) in &writes {
            let old = match value {
                Some(v) => self.data.insert(key.clone(), v.clone()),
                None => self.data.remove(key),
            };
            before.insert(key.clone(), old);
        }
        if self.history.len() >= HISTORY_COMMITS_MAX {
            self.history.pop_front();
        }
        self.history.push_back(Undo { version, before });
        self.version = version;
        Some(Commit {
            version,
            writes: writes.into_iter().collect(),
        })
    }
}

/// An in-memory ordered key space with serializable transactions and injectable faults.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    store: Mutex<Versioned>,
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
        lock(&self.store).data.clone()
    }

    /// The newest committed value of one key, for checkers.
    pub fn get_committed(&self, key: &[u8]) -> Option<Vec<u8>> {
        lock(&self.store).data.get(key).cloned()
    }

    /// The newest commit version (0 before the first commit with writes).
    pub fn version(&self) -> u64 {
        lock(&self.store).version
    }

    /// Runs one attempt of `body`, read-only or read-write, taking the next queued fault, and
    /// says what it applied: [`Backend::attempt`] and [`Backend::attempt_read`] keep only
    /// the result.
    pub fn run_attempt(&self, body: &mut Body<'_>, read_only: bool) -> Outcome {
        // Taken before the store lock and released at once: the two locks are never nested.
        let fault = lock(&self.faults).pop_front();
        match fault {
            Some(Fault::LatencyMs(ms)) => std::thread::sleep(Duration::from_millis(ms)),
            Some(Fault::Unavailable) => {
                return Outcome::failed(StorageError::Unavailable("injected".to_string()))
            }
            _ => {}
        }
        let mut store = lock(&self.store);
        let behind = match fault {
            Some(Fault::StaleRead(n)) if !read_only => n,
            _ => 0,
        };
        let Some(read_version) = store.read_version(behind) else {
            return Outcome::failed(StorageError::TooOld);
        };
        let mut txn = MemoryTxn {
            store: &store,
            read_version,
            overlay: Changes::new(),
            read_only,
            reads: Vec::new(),
            failed: None,
        };
        let outcome = body(&mut txn);
        let MemoryTxn {
            overlay,
            reads,
            failed,
            ..
        } = txn;
        // Reads overtaken by a later commit make a conflict, whatever the body then decided
        // and whether or not it wrote (see the module doc). Only a stale attempt can have any.
        if store.conflicts(read_version, &reads) {
            return Outcome::failed(StorageError::Conflict);
        }
        // The body's own error wins; an error it swallowed still aborts the attempt.
        if let Err(e) = outcome.and(failed.map_or(Ok(()), Err)) {
            return Outcome::failed(e);
        }
        match fault {
            Some(Fault::Conflict) => Outcome::failed(StorageError::Conflict),
            Some(Fault::CommitUnknownNotCommitted) => Outcome::failed(StorageError::CommitUnknown),
            Some(Fault::CommitUnknownCommitted) => Outcome {
                result: Err(StorageError::CommitUnknown),
                commit: store.commit(overlay),
            },
            Some(Fault::Unavailable | Fault::LatencyMs(_) | Fault::StaleRead(_)) | None => {
                Outcome {
                    result: Ok(()),
                    commit: store.commit(overlay),
                }
            }
        }
    }
}

impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn attempt(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
        self.run_attempt(body, false).result
    }

    fn attempt_read(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
        self.run_attempt(body, true).result
    }
}

/// Locks a mutex, taking over a poisoned one: the store only changes in
/// [`Versioned::commit`], which runs no caller code, so a panic elsewhere cannot leave it
/// half-written.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The bounds `[begin, end)` as `BTreeMap::range` takes them.
fn half_open<'k>(begin: &'k [u8], end: &'k [u8]) -> (Bound<&'k [u8]>, Bound<&'k [u8]>) {
    (Bound::Included(begin), Bound::Excluded(end))
}

/// The first key after `key`: `key` followed by a zero byte.
fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// Merges two streams of rows sorted by key into one; on equal keys the second wins.
fn merge<'s>(
    first: impl Iterator<Item = Row<'s>>,
    second: impl Iterator<Item = Row<'s>>,
) -> impl Iterator<Item = Row<'s>> {
    let mut first = first.peekable();
    let mut second = second.peekable();
    std::iter::from_fn(move || {
        let order = match (first.peek(), second.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        match order {
            Ordering::Less => first.next(),
            Ordering::Equal => {
                first.next();
                second.next()
            }
            Ordering::Greater => second.next(),
        }
    })
}

/// One attempt's view: the store at its read version plus the attempt's own writes.
struct MemoryTxn<'a> {
    store: &'a Versioned,
    read_version: u64,
    /// New values (`Some`) and tombstones (`None`) by key.
    overlay: Changes,
    read_only: bool,
    /// Read-conflict ranges `[begin, end)` (read-write attempts only).
    reads: Vec<(Vec<u8>, Vec<u8>)>,
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

    /// Records a read-conflict range (a read-only attempt has none).
    fn read_conflict(&mut self, begin: &[u8], end: Vec<u8>) {
        if !self.read_only {
            self.reads.push((begin.to_vec(), end));
        }
    }

    /// The rows of `[begin, end)` this attempt sees, its own writes included, in key order
    /// (`None`: absent).
    fn view<'s>(&'s self, begin: &[u8], end: &[u8]) -> impl Iterator<Item = Row<'s>> + 's {
        let own = self
            .overlay
            .range::<[u8], _>(half_open(begin, end))
            .map(|(k, v)| (k.as_slice(), v.as_deref()));
        merge(self.store.range_at(begin, end, self.read_version), own)
    }
}

impl Txn for MemoryTxn<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.read_conflict(key, key_after(key));
        Ok(match self.overlay.get(key) {
            Some(own) => own.clone(),
            None => self
                .store
                .value_at(key, self.read_version)
                .map(<[u8]>::to_vec),
        })
    }

    fn get_range(
        &mut self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Kv>, StorageError> {
        // `BTreeMap::range` panics on an inverted range; an empty one is simply empty.
        if begin >= end || limit == 0 {
            return Ok(Vec::new());
        }
        // The limit counts rows returned, so it applies after absent keys are skipped.
        let rows: Vec<Kv> = self
            .view(begin, end)
            .filter_map(|(k, v)| Some((k.to_vec(), v?.to_vec())))
            .take(limit)
            .collect();
        // A read that stopped at its limit saw nothing past its last row (FoundationDB).
        let conflict_end = match rows.last() {
            Some((last, _)) if rows.len() == limit => key_after(last),
            _ => end.to_vec(),
        };
        self.read_conflict(begin, conflict_end);
        Ok(rows)
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
        // The store cannot change during the attempt (it is locked), so a tombstone per key
        // present, in the newest data or in this attempt's view, is exact: the first removes
        // at commit what is there, the second hides from later reads what the view still has.
        let doomed: Vec<Vec<u8>> = self
            .store
            .range_at(begin, end, self.store.version)
            .chain(self.view(begin, end))
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.to_vec())
            .collect();
        for (_, own) in self.overlay.range_mut::<[u8], _>(half_open(begin, end)) {
            *own = None;
        }
        for key in doomed {
            self.overlay.insert(key, None);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{RetryPolicy, Store};
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering as AtomicOrdering};
    use std::sync::Arc;

    type Rows = Vec<(&'static [u8], &'static [u8])>;

    /// Runs one read-write attempt of `body` with `fault` (if any) queued first.
    fn attempt(
        mem: &MemoryBackend,
        fault: Option<Fault>,
        mut body: impl FnMut(&mut dyn Txn) -> Result<(), StorageError>,
    ) -> Outcome {
        if let Some(f) = fault {
            mem.inject(f);
        }
        mem.run_attempt(&mut body, false)
    }

    /// Commits one attempt setting `sets` and clearing `clears`.
    fn commit(mem: &MemoryBackend, sets: Rows, clears: &[&[u8]]) {
        let out = attempt(mem, None, |t| {
            for (k, v) in &sets {
                t.set(k, v)?;
            }
            for k in clears {
                t.clear(k)?;
            }
            Ok(())
        });
        assert_eq!(out.result, Ok(()));
    }

    /// The committed data as owned pairs, for comparisons.
    fn data(rows: Rows) -> Map {
        rows.into_iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }

    fn pairs(rows: Rows) -> Vec<Kv> {
        data(rows).into_iter().collect()
    }

    /// A store whose retry loop neither sleeps nor gives up early.
    fn store_on(backend: Arc<dyn Backend>) -> Store {
        Store::with_policy(
            backend,
            RetryPolicy {
                attempts_max: 200,
                backoff_initial: Duration::ZERO,
                backoff_max: Duration::ZERO,
            },
        )
    }

    fn read_u64(t: &mut dyn Txn, key: &[u8]) -> Result<u64, StorageError> {
        Ok(t.get(key)?.map_or(0, |b| {
            u64::from_be_bytes(b.as_slice().try_into().expect("8 bytes"))
        }))
    }

    #[test]
    fn memory_model_get_of_a_key_written_since_the_read_version_conflicts() {
        // Proves a get records a read-conflict range: a stale attempt that read a key written
        // after its read version conflicts and applies nothing; one that read only other keys
        // commits; a blind write never conflicts.
        let mem = MemoryBackend::new();
        commit(&mem, vec![(b"a", b"1"), (b"b", b"1")], &[]);
        commit(&mem, vec![(b"a", b"2")], &[]);

        let out = attempt(&mem, Some(Fault::StaleRead(1)), |t| {
            assert_eq!(t.get(b"a")?.as_deref(), Some(&b"1"[..]), "reads version 1");
            t.set(b"c", b"x")
        });
        assert_eq!(out, Outcome::failed(StorageError::Conflict));
        assert_eq!(mem.get_committed(b"c"), None);

        let out = attempt(&mem, Some(Fault::StaleRead(1)), |t| {
            t.get(b"b")?;
            t.get(b"never")?;
            t.set(b"c", b"x")
        });
        assert_eq!(out.result, Ok(()));
        assert_eq!(mem.get_committed(b"c").as_deref(), Some(&b"x"[..]));

        let out = attempt(&mem, Some(Fault::StaleRead(2)), |t| t.set(b"a", b"blind"));
        assert_eq!(
            out.result,
            Ok(()),
            "a blind write of a key written since commits"
        );
        assert_eq!(mem.get_committed(b"a").as_deref(), Some(&b"blind"[..]));
        assert_eq!(mem.version(), 4);
    }

    #[test]
    fn memory_model_overtaken_reads_conflict_whatever_the_body_decided() {
        // Proves a stale attempt never reports a decision taken on overtaken reads: a body
        // that read a key written since its read version conflicts, whether it wrote nothing
        // or returned its own error; on current reads, its result and error stand.
        let mem = MemoryBackend::new();
        commit(&mem, vec![(b"lease", b"1"), (b"other", b"1")], &[]);
        commit(&mem, vec![(b"lease", b"2")], &[]);
        let fenced = |t: &mut dyn Txn| {
            assert_eq!(t.get(b"lease")?.as_deref(), Some(&b"1"[..]));
            Err(StorageError::Fenced)
        };
        let out = attempt(&mem, Some(Fault::StaleRead(1)), fenced);
        assert_eq!(out, Outcome::failed(StorageError::Conflict));
        let out = attempt(&mem, Some(Fault::StaleRead(1)), |t| {
            t.get(b"lease").map(drop)
        });
        assert_eq!(out, Outcome::failed(StorageError::Conflict));
        let out = attempt(&mem, Some(Fault::StaleRead(1)), |t| {
            t.get(b"other")?;
            Err(StorageError::Fenced)
        });
        assert_eq!(out, Outcome::failed(StorageError::Fenced));
        let out = attempt(&mem, Some(Fault::StaleRead(1)), |t| {
            t.get(b"other").map(drop)
        });
        assert_eq!(
            out,
            Outcome {
                result: Ok(()),
                commit: None
            }
        );
    }

    #[test]
    fn memory_model_get_range_conflict_range_stops_at_the_limit() {
        // Proves get_range's read-conflict range: [begin, end) when fewer than `limit` rows
        // came back (a key written or added inside it conflicts), only [begin, last\0) when
        // the limit was reached (a write past the last row returned does not conflict, one
        // at or before it does).
        let base: Rows = vec![(b"k1", b"1"), (b"k2", b"1"), (b"k3", b"1"), (b"k4", b"1")];
        let read_all = |t: &mut dyn Txn| {
            assert_eq!(t.get_range(b"k", b"l", 100)?.len(), 4);
            t.set(b"out", b"x")
        };
        let read_two = |t: &mut dyn Txn| {
            let rows = t.get_range(b"k", b"l", 2)?;
            assert_eq!(rows, pairs(vec![(b"k1", b"1"), (b"k2", b"1")]));
            t.set(b"out", b"x")
        };
        let cases: [(Rows, bool, &str); 7] = [
            (vec![(b"k3", b"2")], true, "a write inside the whole range"),
            (
                vec![(b"k25", b"new")],
                true,
                "a key added inside the whole range",
            ),
            (vec![(b"l", b"2")], false, "a write at the range's end"),
            (
                vec![(b"k3", b"2")],
                false,
                "a write past the last row at the limit",
            ),
            (
                vec![(b"k2\0", b"new")],
                false,
                "a key added just past the last row",
            ),
            (
                vec![(b"k2", b"2")],
                true,
                "a write of the last row at the limit",
            ),
            (
                vec![(b"k15", b"new")],
                true,
                "a key added before the last row",
            ),
        ];
        for (i, (write, conflicts, what)) in cases.into_iter().enumerate() {
            let mem = MemoryBackend::new();
            commit(&mem, base.clone(), &[]);
            commit(&mem, write, &[]);
            let out = if i < 3 {
                attempt(&mem, Some(Fault::StaleRead(1)), read_all)
            } else {
                attempt(&mem, Some(Fault::StaleRead(1)), read_two)
            };
            let expected = if conflicts {
                Err(StorageError::Conflict)
            } else {
                Ok(())
            };
            assert_eq!(out.result, expected, "{what}");
            assert_eq!(mem.get_committed(b"out").is_some(), !conflicts, "{what}");
        }
    }

    #[test]
    fn memory_model_stale_reads_see_their_version_merged_with_own_writes() {
        // Proves a stale attempt reads the store as of its read version, rebuilt from the
        // undo logs (values, removed keys, keys added later, clear_range), with its own
        // writes on top, in get and get_range (whose limit counts visible rows).
        let mem = MemoryBackend::new();
        commit(
            &mem,
            vec![(b"a", b"1"), (b"b", b"1"), (b"c", b"1"), (b"d", b"1")],
            &[],
        );
        commit(&mem, vec![(b"a", b"2"), (b"e", b"1")], &[b"b"]);
        let cleared = attempt(&mem, None, |t| t.clear_range(b"c", b"d\0"));
        assert_eq!(
            cleared.commit.map(|c| c.writes),
            Some(vec![(b"c".to_vec(), None), (b"d".to_vec(), None)]),
            "clear_range commits as the keys it removed"
        );
        let newest = data(vec![(b"a", b"2"), (b"e", b"1")]);
        assert_eq!(mem.snapshot(), newest);

        let v1 = data(vec![(b"a", b"1"), (b"b", b"1"), (b"c", b"1"), (b"d", b"1")]);
        let v2 = data(vec![(b"a", b"2"), (b"c", b"1"), (b"d", b"1"), (b"e", b"1")]);
        for (behind, expected, result) in [
            (2, &v1, Err(StorageError::Conflict)),
            (1, &v2, Err(StorageError::Conflict)),
            (0, &newest, Ok(())),
        ] {
            let out = attempt(&mem, Some(Fault::StaleRead(behind)), |t| {
                let rows: Map = t.get_range(b"", b"z", 100)?.into_iter().collect();
                assert_eq!(&rows, expected, "{behind} commits behind");
                for key in [&b"a"[..], b"b", b"c", b"d", b"e"] {
                    assert_eq!(t.get(key)?.as_ref(), expected.get(key), "{behind}: {key:?}");
                }
                Ok(())
            });
            // Even without writes, reads overtaken by a later commit conflict.
            assert_eq!(
                out,
                Outcome {
                    result,
                    commit: None
                },
                "{behind} commits behind"
            );
        }

        let out = attempt(&mem, Some(Fault::StaleRead(2)), |t| {
            t.set(b"f", b"own")?;
            t.clear(b"a")?;
            t.set(b"b", b"own")?;
            let rows = t.get_range(b"", b"z", 3)?;
            assert_eq!(
                rows,
                pairs(vec![(b"b", b"own"), (b"c", b"1"), (b"d", b"1")])
            );
            t.clear_range(b"c", b"e")?;
            let rows = t.get_range(b"", b"z", 100)?;
            assert_eq!(rows, pairs(vec![(b"b", b"own"), (b"f", b"own")]));
            assert_eq!(t.get(b"a")?, None);
            assert_eq!(t.get(b"c")?, None);
            Ok(())
        });
        assert_eq!(
            out.result,
            Err(StorageError::Conflict),
            "it read a, b, c, d"
        );
        assert_eq!(mem.snapshot(), newest, "nothing applied");
    }

    #[test]
    fn memory_model_clear_range_of_a_stale_attempt_removes_what_is_there_at_commit() {
        // Proves clear_range is a write, not a read: a stale blind clear_range commits and
        // removes the keys present at commit, including one added after its read version.
        let mem = MemoryBackend::new();
        commit(&mem, vec![(b"x1", b"1")], &[]);
        commit(&mem, vec![(b"x2", b"1"), (b"y", b"1")], &[]);
        let out = attempt(&mem, Some(Fault::StaleRead(1)), |t| {
            t.clear_range(b"x", b"y")
        });
        assert_eq!(out.result, Ok(()));
        assert_eq!(mem.snapshot(), data(vec![(b"y", b"1")]));
    }

    #[test]
    fn memory_model_read_version_beyond_the_history_is_too_old() {
        // Proves the history is bounded and a read version older than it fails with TooOld
        // before the body runs, applying nothing; the oldest retained version still reads.
        let mem = MemoryBackend::new();
        let runs = AtomicU32::new(0);
        let out = attempt(&mem, Some(Fault::StaleRead(1)), |t| {
            runs.fetch_add(1, AtomicOrdering::SeqCst);
            t.set(b"k", b"v")
        });
        assert_eq!(
            out,
            Outcome::failed(StorageError::TooOld),
            "no version 0 - 1"
        );
        let commits = u64::try_from(HISTORY_COMMITS_MAX).expect("small") + 5;
        for i in 1..=commits {
            let out = attempt(&mem, None, |t| t.set(b"n", &i.to_be_bytes()));
            assert_eq!(out.commit.map(|c| c.version), Some(i));
        }
        assert_eq!(lock(&mem.store).history.len(), HISTORY_COMMITS_MAX);
        let behind = u64::try_from(HISTORY_COMMITS_MAX).expect("small");
        let out = attempt(&mem, Some(Fault::StaleRead(behind + 1)), |t| {
            runs.fetch_add(1, AtomicOrdering::SeqCst);
            t.set(b"k", b"v")
        });
        assert_eq!(out, Outcome::failed(StorageError::TooOld));
        assert_eq!(runs.load(AtomicOrdering::SeqCst), 0, "the body never ran");
        assert_eq!(mem.get_committed(b"k"), None);
        let out = attempt(&mem, Some(Fault::StaleRead(behind)), |t| {
            assert_eq!(read_u64(t, b"n")?, commits - behind);
            Ok(())
        });
        assert_eq!(out.result, Err(StorageError::Conflict), "n changed since");
    }

    /// A backend that makes every read-write attempt stale by a random number of commits.
    struct StaleAttempts {
        mem: MemoryBackend,
        rng: Mutex<u64>,
        stale_commits: AtomicU64,
        conflicts: AtomicU64,
    }

    impl Backend for StaleAttempts {
        fn name(&self) -> &'static str {
            "stale"
        }

        fn attempt(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
            let behind = {
                let mut x = lock(&self.rng);
                *x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (*x >> 33) % 5
            };
            self.mem.inject(Fault::StaleRead(behind));
            let result = self.mem.attempt(body);
            match &result {
                Ok(()) if behind > 0 => self.stale_commits.fetch_add(1, AtomicOrdering::SeqCst),
                Err(StorageError::Conflict) => self.conflicts.fetch_add(1, AtomicOrdering::SeqCst),
                _ => 0,
            };
            result
        }
    }

    #[test]
    fn memory_model_stale_read_modify_writes_lose_no_update() {
        // Proves conflict detection prevents lost updates: 300 read-modify-write increments
        // of three counters through Store::run, every attempt reading 0 to 4 commits behind,
        // end with every increment counted. Each conflict was an attempt that had read a
        // counter older than the newest value: applied, it would have lost an update (with
        // the conflict check disabled, this test fails on the total). Stale attempts that read
        // nothing written since their version commit (no false conflict).
        let backend = Arc::new(StaleAttempts {
            mem: MemoryBackend::new(),
            rng: Mutex::new(7),
            stale_commits: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
        });
        let store = store_on(backend.clone());
        let increments = 300u64;
        for i in 0..increments {
            let key = [b'c', b'0' + u8::try_from(i % 3).expect("small")];
            store
                .run(|t| {
                    let n = read_u64(t, &key)?;
                    t.set(&key, &(n + 1).to_be_bytes())
                })
                .expect("committed");
        }
        let total: u64 = backend
            .mem
            .snapshot()
            .values()
            .map(|b| u64::from_be_bytes(b.as_slice().try_into().expect("8 bytes")))
            .sum();
        assert_eq!(total, increments);
        let conflicts = backend.conflicts.load(AtomicOrdering::SeqCst);
        assert!(conflicts > 50, "only {conflicts} conflicts");
        assert!(store.stats().retries.load(AtomicOrdering::SeqCst) >= conflicts);
        assert!(backend.stale_commits.load(AtomicOrdering::SeqCst) > 20);
        assert_eq!(backend.mem.version(), increments);
    }

    #[test]
    fn memory_model_snapshot_reads_see_the_newest_version_and_never_conflict() {
        // Proves read-only attempts read the newest committed data, ignore an injected
        // StaleRead (consumed), record no conflict ranges, and refuse writes.
        let mem = MemoryBackend::new();
        commit(&mem, vec![(b"a", b"1")], &[]);
        commit(&mem, vec![(b"a", b"2"), (b"b", b"2")], &[]);
        let mut read = |t: &mut dyn Txn| {
            assert_eq!(t.get(b"a")?.as_deref(), Some(&b"2"[..]));
            assert_eq!(t.get_range(b"", b"z", 1)?, pairs(vec![(b"a", b"2")]));
            Ok(())
        };
        assert_eq!(mem.run_attempt(&mut read, true).result, Ok(()));
        mem.inject(Fault::StaleRead(1));
        let out = mem.run_attempt(&mut read, true);
        assert_eq!(
            out,
            Outcome {
                result: Ok(()),
                commit: None
            }
        );
        assert_eq!(mem.faults_pending(), 0);

        let mut write = |t: &mut dyn Txn| {
            let refused = t.set(b"a", b"3");
            assert!(matches!(refused, Err(StorageError::LimitExceeded(_))));
            Ok(())
        };
        let out = mem.run_attempt(&mut write, true);
        assert!(matches!(out.result, Err(StorageError::LimitExceeded(_))));
        assert_eq!(mem.get_committed(b"a").as_deref(), Some(&b"2"[..]));
        assert_eq!(mem.version(), 2);
    }

    #[test]
    fn memory_model_unknown_results_apply_or_not_as_injected() {
        // Proves CommitUnknownCommitted applies the writes (as a new version) and reports
        // CommitUnknown, and CommitUnknownNotCommitted reports the same and applies nothing.
        let mem = MemoryBackend::new();
        let out = attempt(&mem, Some(Fault::CommitUnknownNotCommitted), |t| {
            t.set(b"k", b"lost")
        });
        assert_eq!(out, Outcome::failed(StorageError::CommitUnknown));
        assert_eq!((mem.snapshot(), mem.version()), (Map::new(), 0));
        let out = attempt(&mem, Some(Fault::CommitUnknownCommitted), |t| {
            t.set(b"k", b"kept")
        });
        assert_eq!(out.result, Err(StorageError::CommitUnknown));
        assert_eq!(
            out.commit,
            Some(Commit {
                version: 1,
                writes: vec![(b"k".to_vec(), Some(b"kept".to_vec()))],
            })
        );
        assert_eq!(mem.snapshot(), data(vec![(b"k", b"kept")]));
    }

    #[test]
    fn memory_model_idempotent_body_after_unknown_result_and_stale_retry_applies_once() {
        // Proves an idempotent body (it checks a marker key before incrementing) retried by
        // Store::run after an unknown result that did commit ends with exactly one effect,
        // even when the retry reads from before that commit: the stale retry misses the
        // marker, conflicts on it, and the fresh retry finds it.
        let mem = Arc::new(MemoryBackend::new());
        let store = store_on(mem.clone());
        mem.inject(Fault::CommitUnknownCommitted);
        mem.inject(Fault::StaleRead(1));
        let runs = AtomicU32::new(0);
        let total = store
            .run(|t| {
                runs.fetch_add(1, AtomicOrdering::SeqCst);
                let n = read_u64(t, b"count")?;
                if t.get(b"done/req-1")?.is_some() {
                    return Ok(n);
                }
                t.set(b"count", &(n + 1).to_be_bytes())?;
                t.set(b"done/req-1", b"")?;
                Ok(n + 1)
            })
            .expect("committed");
        assert_eq!(total, 1);
        assert_eq!(runs.load(AtomicOrdering::SeqCst), 3);
        assert_eq!(store.stats().retries.load(AtomicOrdering::SeqCst), 2);
        assert_eq!(mem.version(), 1, "one commit: the retries wrote nothing");
    }
}
