//! The simulated FoundationDB-semantics store: the node's `memory` backend, with faults drawn
//! from the seed, latency in simulated time, and an observer of every commit.
//!
//! [`SimBackend`] wraps [`MemoryBackend`] and implements the same [`Backend`] trait the node's
//! `Store` retry loop drives, so the ledger's transaction bodies run unchanged. Before each
//! attempt it draws a fault (an injected conflict, unknown result with and without the
//! commit, for read-write attempts a stale read version, latency spike) and injects it into
//! the memory backend, which applies it to exactly that attempt; during a storage outage every
//! attempt fails as unavailable, except the outage's first read-write attempt: the outage
//! began while that commit was in flight, so its result is unknown, committed or not (a coin
//! flip), and the activation that made it must reload while storage is still down. Latency is not slept: it is summed, and the simulator delays
//! the operation's completion by that much simulated time.
//!
//! A stale read ([`Fault::StaleRead`]) models a transaction that began before the last
//! commits completed: it reads the store as of up to [`STALE_READ_BEHIND_MAX`] commits back,
//! and the memory backend's optimistic concurrency control checks its read-conflict ranges at
//! commit, so a body whose reads were overtaken gets a real [`StorageError::Conflict`]
//! (counted, and retried by the `Store` loop). This is what checks that every read a ledger
//! body depends on is protected by a read-conflict range. The depth is bounded the way
//! FoundationDB's read version is, causally: an activation never reads behind a commit it has
//! already seen, that is its own completed commits and every commit older than its previous
//! attempt (a retry begins after the commits that made it conflict). It may miss the latest
//! commits of other activations, and its own commit whose result was unknown (still in
//! flight, as after `commit_unknown_result`). Causality carried by messages between
//! activations is not tracked; the conflict check still validates every read. Attempts
//! without a writer and read-only attempts (snapshot reads) read the newest version. The
//! depth never exceeds the backend's history, so [`StorageError::TooOld`] does not arise here
//! (the backend's own tests cover it).
//!
//! The memory backend reports what each attempt applied: when it committed (success, or an
//! unknown result whose commit happened; never a conflicted attempt) its writes become a
//! [`RawCommit`] for the checkers, together with who wrote it and the lease the store held at
//! commit time (the single-writer check).

use crate::rng::Rng;
use node::ledger::records::Lease;
use node::storage::codec::decode;
use node::storage::keys::Keys;
use node::storage::memory::{Fault, MemoryBackend};
use node::storage::{Backend, Body, StorageError};
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
    /// Who wrote it (one activation, or each activation of a group commit), if the simulator
    /// said, each with its account's lease in the store once the transaction committed.
    pub writers: Vec<(Writer, Option<Lease>)>,
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
    /// Read-write attempts that read 1 to [`STALE_READ_BEHIND_MAX`] commits behind the newest.
    pub stale_read_ppm: u32,
    /// Failed read-write attempts of activations after which, before the next attempt, the
    /// lease of one of their accounts moves: another node activated it in between (and its
    /// activation then went away).
    pub lease_moved_ppm: u32,
}

/// Most commits a stale read version lies behind the newest (well inside the memory backend's
/// retained history, [`node::storage::memory::HISTORY_COMMITS_MAX`]).
pub const STALE_READ_BEHIND_MAX: u64 = 8;

struct State {
    rng: Rng,
    faults: StorageFaults,
    now_ms: u64,
    outage_until_ms: u64,
    /// The current outage has not yet cut a commit in flight.
    outage_cut_pending: bool,
    /// Latency accrued by attempts since the simulator last took it.
    latency_ms: u64,
    /// Extra latency of a read-write attempt (the disk's sync).
    sync_ms: u64,
    /// The activations behind the operation in progress (several for a group commit).
    writers: Vec<Writer>,
    commits: Vec<RawCommit>,
    attempts: u64,
    injected: u64,
    /// Conflicts the memory backend detected (stale attempts whose reads were overtaken).
    conflicts: u64,
    /// Leases moved between two attempts.
    leases_moved: u64,
    /// Per activation (account, nonce), the newest version it has seen; only activations
    /// that saw one of the last [`STALE_READ_BEHIND_MAX`] commits are kept.
    seen: BTreeMap<(String, u64), u64>,
}

impl State {
    /// How many of the newest commits the current writers have not seen (none without a
    /// writer), so the deepest stale read they may take. A group's transaction begins after
    /// each of its batches was handed over, so it has seen what any of its writers saw.
    fn unseen(&self, newest: u64) -> u64 {
        let seen = self
            .writers
            .iter()
            .map(|w| {
                self.seen
                    .get(&(w.account.clone(), w.nonce))
                    .copied()
                    .unwrap_or(0)
            })
            .max();
        seen.map_or(0, |seen| newest.saturating_sub(seen))
    }

    /// Records that the current writers saw version `seen`, with `newest` now the newest, and
    /// forgets the writers that saw none of the last [`STALE_READ_BEHIND_MAX`] commits (they
    /// limit no draw).
    fn saw(&mut self, seen: u64, newest: u64) {
        for w in &self.writers {
            let v = self.seen.entry((w.account.clone(), w.nonce)).or_insert(0);
            *v = (*v).max(seen);
        }
        self.seen
            .retain(|_, v| newest.saturating_sub(*v) < STALE_READ_BEHIND_MAX);
    }
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
                outage_cut_pending: false,
                latency_ms: 0,
                sync_ms: 0,
                writers: Vec::new(),
                commits: Vec::new(),
                attempts: 0,
                injected: 0,
                conflicts: 0,
                leases_moved: 0,
                seen: BTreeMap::new(),
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

    /// Sets the extra latency of every read-write attempt (the disk's sync; not a fault, so
    /// healing keeps it).
    pub fn set_sync_ms(&self, sync_ms: u64) {
        self.state().sync_ms = sync_ms;
    }

    /// Makes every attempt fail as unavailable until `until_ms`.
    pub fn outage_until(&self, until_ms: u64) {
        let mut s = self.state();
        if s.now_ms >= s.outage_until_ms {
            s.outage_cut_pending = true;
        }
        s.outage_until_ms = s.outage_until_ms.max(until_ms);
    }

    /// Ends any outage now.
    pub fn end_outage(&self) {
        let mut s = self.state();
        s.outage_until_ms = 0;
        s.outage_cut_pending = false;
    }

    /// Names the activations behind the next operations (none: a plain read or the sweeper;
    /// several: a group commit).
    pub fn set_writers(&self, writers: Vec<Writer>) {
        self.state().writers = writers;
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

    /// Conflicts detected so far: attempts with a stale read version that read a key a later
    /// commit wrote (injected conflicts are not counted here).
    pub fn conflicts_detected(&self) -> u64 {
        self.state().conflicts
    }

    /// Leases moved between two attempts so far.
    pub fn leases_moved(&self) -> u64 {
        self.state().leases_moved
    }

    /// Every committed key and value.
    pub fn snapshot(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.mem.snapshot()
    }

    /// With the run's `lease_moved_ppm`, moves the lease of one of `writers`' accounts as an
    /// activation on another node would (epoch + 1, a node that runs no actor), committed
    /// and observed like any commit: the retry that follows must find itself fenced, and a
    /// batch whose earlier attempt may have landed must not claim that nothing ran.
    fn maybe_move_a_lease(&self, writers: &[Writer]) {
        let account = {
            let mut s = self.state();
            let ppm = s.faults.lease_moved_ppm;
            if !s.rng.chance(ppm) {
                return;
            }
            let i = s.rng.below(writers.len() as u64) as usize;
            s.injected += 1;
            writers[i].account.clone()
        };
        let key = self.keys.lease(&account);
        let nonce = self.state().rng.next_u64();
        let mut bump = |txn: &mut dyn node::storage::Txn| -> Result<(), StorageError> {
            let Some(bytes) = txn.get(&key)? else {
                return Ok(()); // never opened: no lease to take
            };
            let old: Lease = decode(&bytes)?;
            let taken = Lease {
                node: "elsewhere".into(),
                epoch: old.epoch + 1,
                nonce,
            };
            txn.set(&key, &node::storage::codec::encode(&taken))
        };
        let outcome = self.mem.run_attempt(&mut bump, false);
        if let Some(commit) = outcome.commit {
            let mut s = self.state();
            s.leases_moved += 1;
            s.commits.push(RawCommit {
                writers: Vec::new(),
                writes: commit.writes,
            });
        }
    }

    fn run(&self, body: &mut Body<'_>, read_only: bool) -> Result<(), StorageError> {
        let newest = self.mem.version();
        let (fault, writers) = {
            let mut s = self.state();
            s.attempts += 1;
            s.latency_ms += ATTEMPT_LATENCY_MS;
            if !read_only {
                s.latency_ms += s.sync_ms;
            }
            let f = s.faults;
            let unseen = s.unseen(newest);
            let fault = if s.now_ms < s.outage_until_ms {
                if read_only || !std::mem::take(&mut s.outage_cut_pending) {
                    s.injected += 1;
                    return Err(StorageError::Unavailable("simulated outage".into()));
                }
                Some(if s.rng.chance(500_000) {
                    Fault::CommitUnknownCommitted
                } else {
                    Fault::CommitUnknownNotCommitted
                })
            } else if s.rng.chance(f.conflict_ppm) {
                Some(Fault::Conflict)
            } else if !read_only && s.rng.chance(f.unknown_committed_ppm) {
                Some(Fault::CommitUnknownCommitted)
            } else if !read_only && s.rng.chance(f.unknown_lost_ppm) {
                Some(Fault::CommitUnknownNotCommitted)
            } else if !read_only && s.rng.chance(f.stale_read_ppm) {
                let behind = s.rng.range(1, STALE_READ_BEHIND_MAX).min(unseen);
                (behind > 0).then_some(Fault::StaleRead(behind))
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
            (fault, s.writers.clone())
        };
        let outcome = self.mem.run_attempt(body, read_only);
        let movable = if read_only || outcome.result.is_ok() {
            Vec::new()
        } else {
            writers.clone()
        };
        {
            let mut s = self.state();
            let stale = matches!(fault, Some(Fault::StaleRead(_)));
            if stale && outcome.result == Err(StorageError::Conflict) {
                s.conflicts += 1;
            }
            // The next attempt of this writer begins after this one ended, so its read version
            // covers every commit that completed before: this attempt's own when it succeeded,
            // and at least every commit older than this attempt (a conflict reported them). An
            // unknown result's own commit stays unseen: it may still be in flight.
            let seen = match &outcome.result {
                Ok(()) => self.mem.version(),
                Err(_) => newest,
            };
            s.saw(seen, self.mem.version());
        }
        if let Some(commit) = outcome.commit {
            // Attempts run one at a time, inline: the lease now is the lease at commit.
            let writers = writers
                .into_iter()
                .map(|w| {
                    let lease = self
                        .mem
                        .get_committed(&self.keys.lease(&w.account))
                        .map(|b| decode::<Lease>(&b).expect("a committed lease decodes"));
                    (w, lease)
                })
                .collect();
            self.state().commits.push(RawCommit {
                writers,
                writes: commit.writes,
            });
        }
        // After this attempt's own commit is observed (its lease at commit is the one above).
        if !movable.is_empty() {
            self.maybe_move_a_lease(&movable);
        }
        outcome.result
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

#[cfg(test)]
mod tests {
    use super::*;
    use node::storage::{RetryPolicy, Store, Txn};
    use std::time::Duration;

    fn count(t: &mut dyn Txn, key: &[u8]) -> Result<u64, StorageError> {
        Ok(t.get(key)?.map_or(0, |b| {
            u64::from_be_bytes(b.as_slice().try_into().expect("8 bytes"))
        }))
    }

    #[test]
    fn stale_reads_conflict_for_real_but_never_hide_a_writer_s_own_commits() {
        // Proves SimBackend's stale reads are causal and their conflicts real: with half the
        // read-write attempts drawing a stale read, two activations incrementing a shared
        // counter and their own one lose no increment (the model detects the conflicts on
        // the shared one), and no attempt, not even one that conflicts, reads its own
        // activation's counter older than its last completed commit.
        let backend = SimBackend::new(Rng::new(11), Keys::default());
        backend.set_faults(StorageFaults {
            stale_read_ppm: 500_000,
            ..StorageFaults::default()
        });
        let store = Store::with_policy(
            backend.clone(),
            RetryPolicy {
                attempts_max: 100,
                backoff_initial: Duration::ZERO,
                backoff_max: Duration::ZERO,
            },
        );
        let mut own = [0u64; 2];
        let rounds = 200u64;
        for i in 0..rounds {
            let who = usize::try_from(i % 3 % 2).expect("0 or 1");
            let account = format!("acc-{who}");
            backend.set_writers(vec![Writer {
                node: "n1".into(),
                account: account.clone(),
                nonce: 7,
                epoch: 1,
                activating: false,
            }]);
            store
                .run(|t| {
                    let mine = count(t, account.as_bytes())?;
                    assert_eq!(mine, own[who], "{account} read behind its own commit");
                    t.set(account.as_bytes(), &(mine + 1).to_be_bytes())?;
                    let shared = count(t, b"shared")?;
                    t.set(b"shared", &(shared + 1).to_be_bytes())
                })
                .expect("committed");
            own[who] += 1;
        }
        backend.set_writers(Vec::new());
        let total = store.read(|t| count(t, b"shared")).expect("read");
        assert_eq!(total, rounds);
        assert!(backend.conflicts_detected() > 10, "conflicts were detected");
        assert_eq!(
            backend.take_commits().len(),
            200,
            "one commit observed per round"
        );
    }
}
