//! Conformance suite of the storage contract (DESIGN.md section 3), run against every backend
//! that can run here.
//!
//! The generic scenarios below take a [`Fixture`] and are instantiated once per backend by
//! `for_each_backend!`, as `memory::<scenario>`, `sqlite::<scenario>` and `fdb::<scenario>`,
//! and once more as `overlay::<scenario>`: every read-write body run inside an
//! [`Overlay`](node::storage::overlay::Overlay) over the memory backend's transaction, its
//! writes applied when it succeeds (how group commit runs each batch).
//! Tests of one backend only (injected faults, reopening a directory, several processes) are
//! named `memory_<scenario>` and `sqlite_<scenario>`. Every scenario starts with a comment
//! saying what it proves.
//!
//! FoundationDB: built with `--features fdb` and run with `FDB_CLUSTER_FILE` naming a cluster
//! file, the `fdb::` scenarios run against that cluster, each under a key prefix of its own
//! (`wallet-conformance/<random>/`) that it clears when it ends. Without `FDB_CLUSTER_FILE`
//! they pass after printing that they were skipped, and say why.

use node::storage::memory::{Fault, MemoryBackend};
use node::storage::sqlite::{SqliteBackend, SyncMode, READER_POOL_SIZE};
use node::storage::{
    Backend, Kv, RetryPolicy, StorageError, Store, Txn, RANGE_LIMIT_MAX, RETRY_ATTEMPTS_MAX,
    TXN_SIZE_MAX, VALUE_SIZE_MAX,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

/// A store on a fresh backend, with what must outlive it.
struct Fixture {
    store: Store,
    /// What the backend needs kept until the test ends (a temporary directory, a key prefix
    /// to clear), dropped after the store.
    _keep: Option<Box<dyn std::any::Any>>,
}

fn memory_fixture() -> Fixture {
    Fixture {
        store: Store::new(Arc::new(MemoryBackend::new())),
        _keep: None,
    }
}

/// The memory backend with every read-write body run inside an overlay of its transaction.
struct Overlaid(MemoryBackend);

impl Backend for Overlaid {
    fn name(&self) -> &'static str {
        "overlay"
    }

    fn attempt(&self, body: &mut node::storage::Body<'_>) -> Result<(), StorageError> {
        self.0.attempt(&mut |txn: &mut dyn Txn| {
            let mut o = node::storage::overlay::Overlay::new(txn);
            body(&mut o)?;
            o.apply()
        })
    }

    fn attempt_read(&self, body: &mut node::storage::Body<'_>) -> Result<(), StorageError> {
        self.0.attempt_read(body)
    }
}

fn overlay_fixture() -> Fixture {
    Fixture {
        store: Store::new(Arc::new(Overlaid(MemoryBackend::new()))),
        _keep: None,
    }
}

fn sqlite_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let backend = SqliteBackend::open(dir.path(), SyncMode::Full).expect("open sqlite");
    Fixture {
        store: Store::new(Arc::new(backend)),
        _keep: Some(Box::new(dir)),
    }
}

/// The environment variable naming the FoundationDB cluster file the `fdb::` scenarios use.
const FDB_CLUSTER_FILE: &str = "FDB_CLUSTER_FILE";

/// Attempts of a transaction in the FoundationDB scenarios, where threads really conflict.
#[cfg(feature = "fdb")]
const FDB_CONTENDED_ATTEMPTS_MAX: u32 = 100;

/// A store on the FoundationDB cluster of `FDB_CLUSTER_FILE`, under a fresh key prefix; `None`
/// (after saying so) when the variable is not set.
#[cfg(feature = "fdb")]
fn fdb_fixture() -> Option<Fixture> {
    use node::storage::fdb::FdbBackend;
    use std::sync::OnceLock;
    static BACKEND: OnceLock<Arc<FdbBackend>> = OnceLock::new();
    let Some(file) = std::env::var_os(FDB_CLUSTER_FILE) else {
        eprintln!("skipped: {FDB_CLUSTER_FILE} is not set, so there is no FoundationDB cluster to run this scenario on");
        return None;
    };
    let backend = BACKEND.get_or_init(|| {
        Arc::new(FdbBackend::open(Path::new(&file)).expect("open the FoundationDB cluster"))
    });
    let mut prefix = b"wallet-conformance/".to_vec();
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("random prefix");
    prefix.extend(format!("{:016x}/", u64::from_be_bytes(random)).bytes());
    let space = Arc::new(prefixed::Prefixed::new(backend.clone(), prefix));
    // The scenarios make threads fight over one key, which on FoundationDB are real
    // conflicts; the ledger never does (an account's actor serializes its commits), so the
    // production budget of attempts is widened for them, not the backoff.
    let policy = RetryPolicy {
        attempts_max: FDB_CONTENDED_ATTEMPTS_MAX,
        ..RetryPolicy::default()
    };
    Some(Fixture {
        store: Store::with_policy(space.clone(), policy),
        _keep: Some(Box::new(prefixed::ClearOnDrop(space))),
    })
}

/// Without the `fdb` feature there is no FoundationDB client to run the `fdb::` scenarios.
#[cfg(not(feature = "fdb"))]
fn fdb_fixture() -> Option<Fixture> {
    eprintln!("skipped: this test binary is built without the `fdb` feature (cargo test -p node --features fdb, with {FDB_CLUSTER_FILE} set, runs it on FoundationDB)");
    None
}

#[test]
fn fdb_cluster_file_without_the_fdb_feature_is_an_error() {
    // Proves that asking for the FoundationDB run (FDB_CLUSTER_FILE set) in a build that cannot
    // do it fails loudly instead of passing with every fdb scenario skipped.
    if cfg!(feature = "fdb") || std::env::var_os(FDB_CLUSTER_FILE).is_none() {
        return;
    }
    panic!("{FDB_CLUSTER_FILE} is set but this test binary has no FoundationDB client: run cargo test -p node --features fdb");
}

#[cfg(feature = "fdb")]
mod prefixed {
    //! A backend that keeps every key of its callers under a prefix of another backend, so
    //! that scenarios sharing one FoundationDB cluster never see each other's keys.

    use node::storage::{Backend, Body, Kv, StorageError, Txn};
    use std::sync::Arc;

    /// `inner`, seen through `prefix`.
    pub struct Prefixed {
        inner: Arc<dyn Backend>,
        prefix: Vec<u8>,
    }

    impl Prefixed {
        /// Keys of callers are stored as `prefix ++ key`.
        pub fn new(inner: Arc<dyn Backend>, prefix: Vec<u8>) -> Self {
            Prefixed { inner, prefix }
        }
    }

    impl Backend for Prefixed {
        fn name(&self) -> &'static str {
            self.inner.name()
        }

        fn attempt(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
            self.inner.attempt(&mut |txn: &mut dyn Txn| {
                body(&mut PrefixedTxn {
                    inner: txn,
                    prefix: &self.prefix,
                })
            })
        }

        fn attempt_read(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
            self.inner.attempt_read(&mut |txn: &mut dyn Txn| {
                body(&mut PrefixedTxn {
                    inner: txn,
                    prefix: &self.prefix,
                })
            })
        }
    }

    struct PrefixedTxn<'a> {
        inner: &'a mut dyn Txn,
        prefix: &'a [u8],
    }

    impl PrefixedTxn<'_> {
        fn key(&self, key: &[u8]) -> Vec<u8> {
            [self.prefix, key].concat()
        }
    }

    impl Txn for PrefixedTxn<'_> {
        fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
            let key = self.key(key);
            self.inner.get(&key)
        }

        fn get_range(
            &mut self,
            begin: &[u8],
            end: &[u8],
            limit: usize,
        ) -> Result<Vec<Kv>, StorageError> {
            let (begin, end) = (self.key(begin), self.key(end));
            let rows = self.inner.get_range(&begin, &end, limit)?;
            Ok(rows
                .into_iter()
                .map(|(k, v)| {
                    let k = k
                        .strip_prefix(self.prefix)
                        .expect("a range under the prefix returns keys under it")
                        .to_vec();
                    (k, v)
                })
                .collect())
        }

        fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
            let key = self.key(key);
            self.inner.set(&key, value)
        }

        fn clear(&mut self, key: &[u8]) -> Result<(), StorageError> {
            let key = self.key(key);
            self.inner.clear(&key)
        }

        fn clear_range(&mut self, begin: &[u8], end: &[u8]) -> Result<(), StorageError> {
            let (begin, end) = (self.key(begin), self.key(end));
            self.inner.clear_range(&begin, &end)
        }
    }

    /// Clears every key under the prefix when the scenario ends.
    pub struct ClearOnDrop(pub Arc<Prefixed>);

    impl Drop for ClearOnDrop {
        fn drop(&mut self) {
            let store = node::storage::Store::new(self.0.clone());
            let cleared = store.run(|t| t.clear_range(b"", super::KEYS_END));
            if let Err(e) = cleared {
                eprintln!("could not clear the scenario's keys: {e}");
            }
        }
    }
}

/// A store and the memory backend under it, for fault injection.
fn memory_store() -> (Store, Arc<MemoryBackend>) {
    let backend = Arc::new(MemoryBackend::new());
    (Store::new(backend.clone()), backend)
}

fn sqlite_store(dir: &Path) -> Store {
    Store::new(Arc::new(
        SqliteBackend::open(dir, SyncMode::Full).expect("open sqlite"),
    ))
}

/// Every key of the tests sorts below this one.
const KEYS_END: &[u8] = b"\xff";

fn put(store: &Store, key: &[u8], value: &[u8]) {
    store.run(|t| t.set(key, value)).expect("committed write");
}

fn get(store: &Store, key: &[u8]) -> Option<Vec<u8>> {
    store.read(|t| t.get(key)).expect("read")
}

fn dump(store: &Store) -> Vec<Kv> {
    store
        .read(|t| t.get_range(b"", KEYS_END, RANGE_LIMIT_MAX))
        .expect("read everything")
}

fn kv(key: &str, value: &str) -> Kv {
    (key.as_bytes().to_vec(), value.as_bytes().to_vec())
}

fn read_counter(t: &mut dyn Txn, key: &[u8]) -> Result<u64, StorageError> {
    Ok(match t.get(key)? {
        Some(bytes) => {
            let bytes: [u8; 8] = bytes.as_slice().try_into().expect("an 8-byte counter");
            u64::from_be_bytes(bytes)
        }
        None => 0,
    })
}

/// Not idempotent on purpose: a second run after a commit adds one more.
fn increment(t: &mut dyn Txn, key: &[u8]) -> Result<u64, StorageError> {
    let n = read_counter(t, key)? + 1;
    t.set(key, &n.to_be_bytes())?;
    Ok(n)
}

fn counter(store: &Store, key: &[u8]) -> u64 {
    store.read(|t| read_counter(t, key)).expect("read counter")
}

macro_rules! for_each_backend {
    ($($scenario:ident),* $(,)?) => {
        /// The generic scenarios on the memory backend.
        mod memory {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(super::memory_fixture());
                }
            )*
        }

        /// The generic scenarios with every body inside an overlay (memory backend below).
        mod overlay {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(super::overlay_fixture());
                }
            )*
        }

        /// The generic scenarios on the SQLite backend, in a temporary directory.
        mod sqlite {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(super::sqlite_fixture());
                }
            )*
        }

        /// The generic scenarios on FoundationDB, when `FDB_CLUSTER_FILE` names a cluster.
        mod fdb {
            $(
                #[test]
                fn $scenario() {
                    if let Some(fixture) = super::fdb_fixture() {
                        super::$scenario(fixture);
                    }
                }
            )*
        }
    };
}

for_each_backend!(
    set_get_clear,
    read_your_writes,
    get_many_in_order_over_own_writes,
    get_range_order_bounds_and_limit_over_own_writes,
    clear_range_bounds,
    rollback_when_body_errs,
    atomicity_all_or_nothing,
    readers_never_see_half_a_commit,
    serializable_concurrent_increments,
    value_over_limit_is_refused_not_retried,
    transaction_over_limit_is_refused,
    read_only_attempt_refuses_writes,
    panic_in_body_leaves_store_usable,
    random_transactions_match_a_model,
);

fn set_get_clear(f: Fixture) {
    // Proves set, overwrite, get and clear of single keys, including empty keys and values.
    let s = &f.store;
    assert_eq!(get(s, b"a"), None);
    put(s, b"a", b"1");
    assert_eq!(get(s, b"a").as_deref(), Some(&b"1"[..]));
    put(s, b"a", b"2");
    assert_eq!(get(s, b"a").as_deref(), Some(&b"2"[..]));
    s.run(|t| t.clear(b"a")).expect("clear");
    assert_eq!(get(s, b"a"), None);
    s.run(|t| t.clear(b"never-written"))
        .expect("clearing an absent key is fine");
    // An empty value is a value, not an absence; the empty key is a key.
    put(s, b"e", b"");
    assert_eq!(get(s, b"e"), Some(Vec::new()));
    put(s, b"", b"root");
    assert_eq!(get(s, b"").as_deref(), Some(&b"root"[..]));
    // Binary keys and values round-trip byte for byte.
    let key = [0u8, 0xff, 0x00, 0x7f];
    let value: Vec<u8> = (0..=255u8).collect();
    put(s, &key, &value);
    assert_eq!(get(s, &key), Some(value));
    assert_eq!(dump(s).len(), 3);
}

fn read_your_writes(f: Fixture) {
    // Proves a transaction reads its own sets, clears and range clears before it commits.
    let s = &f.store;
    put(s, b"k1", b"old");
    put(s, b"k2", b"old");
    s.run(|t| {
        t.set(b"k1", b"new")?;
        assert_eq!(t.get(b"k1")?.as_deref(), Some(&b"new"[..]));
        t.set(b"k3", b"fresh")?;
        assert_eq!(t.get(b"k3")?.as_deref(), Some(&b"fresh"[..]));
        t.clear(b"k2")?;
        assert_eq!(t.get(b"k2")?, None);
        t.set(b"k2", b"again")?;
        assert_eq!(t.get(b"k2")?.as_deref(), Some(&b"again"[..]));
        t.clear_range(b"k1", b"k3")?;
        assert_eq!(t.get(b"k1")?, None);
        assert_eq!(t.get(b"k2")?, None);
        assert_eq!(t.get(b"k3")?.as_deref(), Some(&b"fresh"[..]));
        t.set(b"k1", b"last")?;
        assert_eq!(t.get(b"k1")?.as_deref(), Some(&b"last"[..]));
        Ok(())
    })
    .expect("commit");
    assert_eq!(dump(s), vec![kv("k1", "last"), kv("k3", "fresh")]);
}

fn get_many_in_order_over_own_writes(f: Fixture) {
    // Proves get_many answers one value per key in the order asked (absent keys as None,
    // repeated keys twice), sees the transaction's own writes, and reads in a read-only
    // attempt too.
    let s = &f.store;
    put(s, b"m1", b"one");
    put(s, b"m2", b"two");
    s.run(|t| {
        t.set(b"m3", b"three")?;
        t.clear(b"m2")?;
        let keys = [
            b"m3".to_vec(),
            b"none".to_vec(),
            b"m1".to_vec(),
            b"m2".to_vec(),
            b"m1".to_vec(),
        ];
        let got = t.get_many(&keys)?;
        assert_eq!(
            got,
            vec![
                Some(b"three".to_vec()),
                None,
                Some(b"one".to_vec()),
                None,
                Some(b"one".to_vec())
            ]
        );
        assert!(t.get_many(&[])?.is_empty());
        Ok(())
    })
    .expect("commit");
    let read = s
        .read(|t| t.get_many(&[b"m1".to_vec(), b"m3".to_vec()]))
        .expect("read");
    assert_eq!(read, vec![Some(b"one".to_vec()), Some(b"three".to_vec())]);
}

fn get_range_order_bounds_and_limit_over_own_writes(f: Fixture) {
    // Proves get_range returns [begin, end) in key order, merges the transaction's writes and
    // clears with committed rows, and applies the limit after that merge.
    let s = &f.store;
    s.run(|t| {
        for k in ["k01", "k03", "k05", "k07", "k09", "k11"] {
            t.set(k.as_bytes(), b"base")?;
        }
        Ok(())
    })
    .expect("seed");
    let expected = vec![
        kv("k02", "own"),
        kv("k05", "own"),
        kv("k08", "own"),
        kv("k09", "base"),
    ];
    let seen = s
        .run(|t| {
            t.set(b"k02", b"own")?; // new key between committed ones
            t.set(b"k05", b"own")?; // overwrite of a committed key
            t.clear(b"k03")?; // committed key cleared
            t.clear_range(b"k06", b"k09")?; // clears committed k07
            t.set(b"k08", b"own")?; // written after the range clear: visible
            t.set(b"k10", b"own")?; // the end bound is exclusive
            t.set(b"k00", b"own")?; // before begin
            let all = t.get_range(b"k02", b"k10", 100)?;
            assert_eq!(all, expected, "full range");
            for limit in 0..=expected.len() {
                assert_eq!(
                    t.get_range(b"k02", b"k10", limit)?,
                    expected[..limit].to_vec(),
                    "limit {limit}"
                );
            }
            assert_eq!(t.get_range(b"k03", b"k05", 10)?, vec![], "only tombstones");
            assert_eq!(t.get_range(b"k05", b"k05", 10)?, vec![], "empty range");
            assert_eq!(t.get_range(b"k09", b"k02", 10)?, vec![], "inverted range");
            Ok(all)
        })
        .expect("commit");
    assert_eq!(seen, expected);
    // After the commit a fresh transaction sees the same rows.
    let after = s.read(|t| t.get_range(b"k02", b"k10", 100)).expect("read");
    assert_eq!(after, expected);
    let keys: Vec<Vec<u8>> = dump(s).into_iter().map(|(k, _)| k).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "whole key space in order");
    assert_eq!(keys.len(), 8);
}

fn clear_range_bounds(f: Fixture) {
    // Proves clear_range removes exactly [begin, end), including longer keys sharing the
    // prefix, and that an empty or inverted range clears nothing.
    let s = &f.store;
    s.run(|t| {
        for k in ["a", "a\0", "ab", "abc", "b", "b\0", "c"] {
            t.set(k.as_bytes(), b"v")?;
        }
        Ok(())
    })
    .expect("seed");
    s.run(|t| t.clear_range(b"b", b"a")).expect("inverted");
    s.run(|t| t.clear_range(b"b", b"b")).expect("empty");
    assert_eq!(dump(s).len(), 7);
    s.run(|t| t.clear_range(b"a", b"b")).expect("clear range");
    let keys: Vec<Vec<u8>> = dump(s).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![b"b".to_vec(), b"b\0".to_vec(), b"c".to_vec()]);
    s.run(|t| t.clear_range(b"", KEYS_END)).expect("clear all");
    assert_eq!(dump(s), vec![]);
}

fn rollback_when_body_errs(f: Fixture) {
    // Proves a body's error rolls back every write of the attempt and is returned as is,
    // without a retry when it is not retryable.
    let s = &f.store;
    put(s, b"x", b"1");
    put(s, b"z", b"1");
    let runs = AtomicU32::new(0);
    let result: Result<(), _> = s.run(|t| {
        runs.fetch_add(1, Ordering::SeqCst);
        t.set(b"x", b"2")?;
        t.set(b"y", b"3")?;
        t.clear(b"z")?;
        t.clear_range(b"", KEYS_END)?;
        Err(StorageError::Fenced)
    });
    assert_eq!(result, Err(StorageError::Fenced));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(dump(s), vec![kv("x", "1"), kv("z", "1")]);
}

fn atomicity_all_or_nothing(f: Fixture) {
    // Proves a transaction over many keys commits all of them, and one that fails after
    // many writes commits none.
    let s = &f.store;
    let key = |i: u32| format!("many/{i:04}").into_bytes();
    s.run(|t| {
        for i in 0..500 {
            t.set(&key(i), b"first")?;
        }
        Ok(())
    })
    .expect("commit 500 keys");
    assert_eq!(dump(s).len(), 500);
    let result: Result<(), _> = s.run(|t| {
        t.clear_range(b"many/", b"many0")?;
        for i in 500..1000 {
            t.set(&key(i), b"second")?;
        }
        Err(StorageError::Corrupt("abort after 1000 writes".into()))
    });
    assert!(matches!(result, Err(StorageError::Corrupt(_))));
    let rows = dump(s);
    assert_eq!(rows.len(), 500);
    assert!(rows.iter().all(|(_, v)| v == b"first"));
}

fn readers_never_see_half_a_commit(f: Fixture) {
    // Proves concurrent readers see either all or none of a multi-key commit (snapshot reads).
    let s = f.store.clone();
    fn write(s: &Store, round: u32) {
        s.run(|t| {
            for i in 0..50 {
                t.set(format!("snap/{i:03}").as_bytes(), &round.to_be_bytes())?;
            }
            Ok(())
        })
        .expect("commit round")
    }
    write(&s, 0);
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            for round in 1..=30 {
                write(&s, round);
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads < 10 {
        let rows = s
            .read(|t| t.get_range(b"snap/", b"snap0", 100))
            .expect("read");
        assert_eq!(rows.len(), 50);
        assert!(
            rows.iter().all(|(_, v)| *v == rows[0].1),
            "a read saw two different rounds"
        );
        reads += 1;
    }
    writer.join().expect("writer thread");
}

fn serializable_concurrent_increments(f: Fixture) {
    // Proves read-modify-write transactions from N threads through Store::run are
    // serializable: N threads doing 200 increments each leave exactly N*200.
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 200;
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let s = f.store.clone();
            std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    s.run(|t| increment(t, b"counter")).expect("increment");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("increment thread");
    }
    assert_eq!(counter(&f.store, b"counter"), THREADS * PER_THREAD);
}

fn value_over_limit_is_refused_not_retried(f: Fixture) {
    // Proves a value over VALUE_SIZE_MAX is refused with LimitExceeded on the first attempt
    // (it is a caller bug, not retried) and nothing of the transaction is written.
    let s = &f.store;
    put(s, b"max", &vec![7u8; VALUE_SIZE_MAX]);
    assert_eq!(get(s, b"max").map(|v| v.len()), Some(VALUE_SIZE_MAX));
    let runs = AtomicU32::new(0);
    let result = s.run(|t| {
        runs.fetch_add(1, Ordering::SeqCst);
        t.set(b"before", b"x")?;
        t.set(b"big", &vec![7u8; VALUE_SIZE_MAX + 1])
    });
    assert!(
        matches!(result, Err(StorageError::LimitExceeded(_))),
        "{result:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(s.stats().retries.load(Ordering::SeqCst), 0);
    assert_eq!(get(s, b"before"), None);
    assert_eq!(get(s, b"big"), None);
}

fn transaction_over_limit_is_refused(f: Fixture) {
    // Proves a transaction writing more than TXN_SIZE_MAX bytes is refused with
    // LimitExceeded, once, and none of its writes are committed.
    let s = &f.store;
    let value = vec![1u8; VALUE_SIZE_MAX - 100];
    let runs = AtomicU32::new(0);
    let result = s.run(|t| {
        runs.fetch_add(1, Ordering::SeqCst);
        let mut written = 0;
        let mut i = 0u32;
        while written <= TXN_SIZE_MAX {
            let key = format!("bulk/{i:05}").into_bytes();
            t.set(&key, &value)?;
            written += key.len() + value.len();
            i += 1;
        }
        Ok(())
    });
    assert!(
        matches!(result, Err(StorageError::LimitExceeded(_))),
        "{result:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(dump(s), vec![]);
}

fn read_only_attempt_refuses_writes(f: Fixture) {
    // Proves Store::read sees committed data and a write from a read-only body fails the
    // attempt (even if the body ignores the error) without writing anything.
    let s = &f.store;
    put(s, b"k", b"v");
    assert_eq!(get(s, b"k").as_deref(), Some(&b"v"[..]));
    let result = s.read(|t| t.set(b"k", b"changed"));
    assert!(
        matches!(result, Err(StorageError::LimitExceeded(_))),
        "{result:?}"
    );
    let swallowed = s.read(|t| {
        let _ignored = t.clear(b"k");
        Ok(())
    });
    assert!(swallowed.is_err(), "{swallowed:?}");
    assert_eq!(dump(s), vec![kv("k", "v")]);
}

fn panic_in_body_leaves_store_usable(f: Fixture) {
    // Proves a body that panics mid-transaction commits nothing and leaves no lock behind:
    // later read and write transactions work.
    let s = &f.store;
    put(s, b"k", b"before");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = s.run(|t| -> Result<(), StorageError> {
            t.set(b"k", b"during")?;
            panic!("body panics on purpose");
        });
    }));
    assert!(outcome.is_err());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = s.read(|t| -> Result<(), StorageError> {
            t.get(b"k")?;
            panic!("read body panics on purpose");
        });
    }));
    assert!(outcome.is_err());
    assert_eq!(get(s, b"k").as_deref(), Some(&b"before"[..]));
    put(s, b"k", b"after");
    assert_eq!(get(s, b"k").as_deref(), Some(&b"after"[..]));
}

/// A small deterministic generator (xorshift64*), so a failure replays identically.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn key(&mut self) -> Vec<u8> {
        // Few distinct keys, some of them prefixes of others, so operations collide.
        let mut key = vec![b'r', b'a' + self.below(12) as u8];
        if self.below(3) == 0 {
            key.push(self.below(3) as u8);
        }
        key
    }
}

fn model_range(model: &BTreeMap<Vec<u8>, Vec<u8>>, b: &[u8], e: &[u8], limit: usize) -> Vec<Kv> {
    model
        .iter()
        .filter(|(k, _)| k.as_slice() >= b && k.as_slice() < e)
        .take(limit)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn random_transactions_match_a_model(f: Fixture) {
    // Proves, on 150 random transactions of mixed operations (a fifth of them aborted),
    // that every read inside a transaction and the committed state match a BTreeMap model.
    let s = &f.store;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for round in 0..150u32 {
        let ops: Vec<(u64, Vec<u8>, Vec<u8>, usize)> = (0..rng.below(12) + 1)
            .map(|_| {
                let (a, b) = (rng.key(), rng.key());
                (rng.below(6), a, b, rng.below(6) as usize)
            })
            .collect();
        let abort = rng.below(5) == 0;
        let mut local = model.clone();
        let result = s.run(|t| {
            // The body may run again; it starts from the committed model each time.
            local = model.clone();
            for (i, (op, a, b, n)) in ops.iter().enumerate() {
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                match op {
                    0 | 1 => {
                        let value = format!("{round}.{i}").into_bytes();
                        t.set(a, &value)?;
                        local.insert(a.clone(), value);
                    }
                    2 => {
                        t.clear(a)?;
                        local.remove(a);
                    }
                    3 => {
                        t.clear_range(lo, hi)?;
                        local.retain(|k, _| !(k >= lo && k < hi));
                    }
                    4 => assert_eq!(t.get(a)?, local.get(a).cloned(), "get {a:?}"),
                    _ => assert_eq!(
                        t.get_range(lo, hi, *n)?,
                        model_range(&local, lo, hi, *n),
                        "range {lo:?}..{hi:?} limit {n}"
                    ),
                }
            }
            if abort {
                return Err(StorageError::Fenced);
            }
            Ok(())
        });
        match result {
            Ok(()) => model = local.clone(),
            Err(StorageError::Fenced) => assert!(abort),
            Err(e) => panic!("round {round}: {e}"),
        }
        let committed: BTreeMap<Vec<u8>, Vec<u8>> = dump(s).into_iter().collect();
        assert_eq!(committed, model, "after round {round}");
    }
}

// ---- memory backend only: injected faults and the retry loop ----

/// A store whose retry loop does not sleep, for fault tests.
fn memory_store_fast() -> (Store, Arc<MemoryBackend>) {
    let backend = Arc::new(MemoryBackend::new());
    let policy = RetryPolicy {
        backoff_initial: Duration::from_micros(10),
        backoff_max: Duration::from_micros(10),
        ..RetryPolicy::default()
    };
    (Store::with_policy(backend.clone(), policy), backend)
}

#[test]
fn memory_faults_are_consumed_in_order_one_per_attempt() {
    // Proves injected faults apply to the next attempts, first in first out, one each.
    let backend = MemoryBackend::new();
    backend.inject(Fault::Conflict);
    backend.inject(Fault::Unavailable);
    backend.inject(Fault::CommitUnknownNotCommitted);
    assert_eq!(backend.faults_pending(), 3);
    let mut body = |t: &mut dyn Txn| t.set(b"k", b"v");
    assert_eq!(backend.attempt(&mut body), Err(StorageError::Conflict));
    assert_eq!(
        backend.attempt(&mut body),
        Err(StorageError::Unavailable("injected".into()))
    );
    assert_eq!(backend.attempt(&mut body), Err(StorageError::CommitUnknown));
    assert_eq!(backend.faults_pending(), 0);
    assert!(backend.snapshot().is_empty(), "no faulted attempt applied");
    assert_eq!(backend.attempt(&mut body), Ok(()));
    assert_eq!(backend.snapshot().len(), 1);
}

#[test]
fn memory_conflict_is_retried_and_applied_once() {
    // Proves Store::run retries a Conflict and the body's writes are applied exactly once.
    let (store, backend) = memory_store_fast();
    backend.inject(Fault::Conflict);
    let runs = AtomicU32::new(0);
    let n = store
        .run(|t| {
            runs.fetch_add(1, Ordering::SeqCst);
            increment(t, b"c")
        })
        .expect("committed after a retry");
    assert_eq!((n, runs.load(Ordering::SeqCst)), (1, 2));
    assert_eq!(counter(&store, b"c"), 1);
    assert_eq!(store.stats().retries.load(Ordering::SeqCst), 1);
    assert_eq!(backend.faults_pending(), 0);
}

#[test]
fn memory_commit_unknown_not_committed_is_retried_and_applied_once() {
    // Proves Store::run retries an unknown result whose commit did not happen, applying the
    // body once.
    let (store, backend) = memory_store_fast();
    backend.inject(Fault::CommitUnknownNotCommitted);
    let runs = AtomicU32::new(0);
    store
        .run(|t| {
            runs.fetch_add(1, Ordering::SeqCst);
            increment(t, b"c")
        })
        .expect("committed after a retry");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(counter(&store, b"c"), 1);
}

/// A ledger-shaped idempotent body: it reads what it depends on and writes absolute values.
fn credit_once(t: &mut dyn Txn, request: &[u8], amount: u64) -> Result<u64, StorageError> {
    let idem = [b"idem/".as_slice(), request].concat();
    if let Some(done) = t.get(&idem)? {
        // Already applied by an earlier run whose result was lost: answer the same.
        let done: [u8; 8] = done.as_slice().try_into().expect("an 8-byte balance");
        return Ok(u64::from_be_bytes(done));
    }
    let balance = read_counter(t, b"balance")? + amount;
    t.set(b"balance", &balance.to_be_bytes())?;
    t.set(&idem, &balance.to_be_bytes())?;
    Ok(balance)
}

#[test]
fn memory_commit_unknown_committed_idempotent_body_leaves_one_run_of_state() {
    // Proves that when a commit happened but was reported unknown, the retry of an
    // idempotent body leaves exactly the state of a single run.
    let (store, backend) = memory_store_fast();
    let (reference, _) = memory_store_fast();
    for s in [&store, &reference] {
        s.run(|t| credit_once(t, b"seed", 100)).expect("seed");
    }
    backend.inject(Fault::CommitUnknownCommitted);
    let runs = AtomicU32::new(0);
    let balance = store
        .run(|t| {
            runs.fetch_add(1, Ordering::SeqCst);
            credit_once(t, b"req-1", 50)
        })
        .expect("committed");
    let expected = reference
        .run(|t| credit_once(t, b"req-1", 50))
        .expect("reference");
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the body ran twice");
    assert_eq!(balance, expected);
    assert_eq!(balance, 150);
    assert_eq!(dump(&store), dump(&reference));
}

#[test]
fn memory_commit_unknown_committed_applies_a_non_idempotent_body_twice() {
    // Proves WHY bodies must be idempotent: a blind increment whose commit happened but was
    // reported unknown is retried by Store::run and applied twice.
    let (store, backend) = memory_store_fast();
    backend.inject(Fault::CommitUnknownCommitted);
    let n = store.run(|t| increment(t, b"c")).expect("committed");
    assert_eq!(n, 2);
    assert_eq!(counter(&store, b"c"), 2, "one request, two increments");
}

#[test]
fn memory_fault_never_applies_the_writes_of_a_failed_body() {
    // Proves a body's error wins over an injected fault: even CommitUnknownCommitted applies
    // nothing when the body fails, and the fault is consumed.
    let (store, backend) = memory_store_fast();
    backend.inject(Fault::CommitUnknownCommitted);
    let result = store.run(|t| {
        t.set(b"k", b"v")?;
        Err::<(), _>(StorageError::Fenced)
    });
    assert_eq!(result, Err(StorageError::Fenced));
    assert_eq!(backend.faults_pending(), 0);
    assert!(backend.snapshot().is_empty());
}

#[test]
fn memory_unavailable_beyond_retry_limit_is_reported() {
    // Proves Store::run gives up after RETRY_ATTEMPTS_MAX attempts of a persistent fault and
    // reports the last error, having applied nothing; with one fault fewer it succeeds.
    let (store, backend) = memory_store();
    for _ in 0..RETRY_ATTEMPTS_MAX {
        backend.inject(Fault::Unavailable);
    }
    let runs = AtomicU32::new(0);
    let result = store.run(|t| {
        runs.fetch_add(1, Ordering::SeqCst);
        t.set(b"k", b"v")
    });
    assert_eq!(result, Err(StorageError::Unavailable("injected".into())));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "an unavailable store runs no body"
    );
    assert_eq!(backend.faults_pending(), 0);
    assert_eq!(
        store.stats().retries.load(Ordering::SeqCst),
        u64::from(RETRY_ATTEMPTS_MAX - 1)
    );
    assert_eq!(store.stats().failures.load(Ordering::SeqCst), 1);
    assert!(backend.snapshot().is_empty());

    for _ in 0..RETRY_ATTEMPTS_MAX - 1 {
        backend.inject(Fault::Unavailable);
    }
    store
        .run(|t| t.set(b"k", b"v"))
        .expect("the last attempt commits");
    assert_eq!(get(&store, b"k").as_deref(), Some(&b"v"[..]));
}

#[test]
fn memory_any_final_error_after_an_unknown_commit_is_unknown() {
    // Proves that once an attempt's commit result was unknown, Store::run never reports an
    // error that claims nothing committed: that attempt may have landed. Both a commit that
    // happened and one that did not end as CommitUnknown after the retries run out.
    for first in [
        Fault::CommitUnknownCommitted,
        Fault::CommitUnknownNotCommitted,
    ] {
        let (store, backend) = memory_store();
        backend.inject(first);
        for _ in 1..RETRY_ATTEMPTS_MAX {
            backend.inject(Fault::Unavailable);
        }
        let result = store.run(|t| t.set(b"k", b"v"));
        assert_eq!(result, Err(StorageError::CommitUnknown), "after {first:?}");
        let landed = get(&store, b"k").is_some();
        assert_eq!(landed, first == Fault::CommitUnknownCommitted);
    }
}

#[test]
fn memory_latency_delays_then_commits() {
    // Proves a LatencyMs fault delays the attempt and then lets it commit normally.
    let (store, backend) = memory_store();
    backend.inject(Fault::LatencyMs(30));
    let started = Instant::now();
    put(&store, b"k", b"v");
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert_eq!(get(&store, b"k").as_deref(), Some(&b"v"[..]));
    assert_eq!(store.stats().retries.load(Ordering::SeqCst), 0);
}

#[test]
fn memory_read_attempts_consume_faults_too() {
    // Proves read-only attempts take the next fault like any attempt, and Store::read
    // retries it.
    let (store, backend) = memory_store_fast();
    put(&store, b"k", b"v");
    backend.inject(Fault::Conflict);
    assert_eq!(get(&store, b"k").as_deref(), Some(&b"v"[..]));
    assert_eq!(backend.faults_pending(), 0);
    assert_eq!(store.stats().retries.load(Ordering::SeqCst), 1);
}

// ---- SQLite backend only: files, reopening, several handles and processes ----

#[test]
fn sqlite_reopen_keeps_committed_data() {
    // Proves commits are in the directory's file: dropping the backend and opening the same
    // directory again (in either sync mode) finds them.
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("nested").join("data");
    {
        let store = sqlite_store(&path);
        put(&store, b"k1", b"v1");
        store.run(|t| increment(t, b"c")).expect("increment");
    }
    assert!(path.join("wallet.db").exists(), "the directory was created");
    {
        let store = Store::new(Arc::new(
            SqliteBackend::open(&path, SyncMode::Normal).expect("reopen"),
        ));
        assert_eq!(get(&store, b"k1").as_deref(), Some(&b"v1"[..]));
        store.run(|t| increment(t, b"c")).expect("increment");
    }
    let store = sqlite_store(&path);
    assert_eq!(counter(&store, b"c"), 2);
    assert_eq!(store.backend_name(), "embedded");
}

#[test]
fn sqlite_two_backends_on_one_directory_see_each_others_commits() {
    // Proves two backends opened on one directory (as two processes would) read each
    // other's commits, through read-write and read-only attempts.
    let dir = tempfile::tempdir().expect("temporary directory");
    let a = sqlite_store(dir.path());
    let b = sqlite_store(dir.path());
    put(&a, b"from-a", b"1");
    assert_eq!(get(&b, b"from-a").as_deref(), Some(&b"1"[..]));
    assert_eq!(
        b.run(|t| t.get(b"from-a"))
            .expect("read-write read")
            .as_deref(),
        Some(&b"1"[..])
    );
    put(&b, b"from-b", b"2");
    assert_eq!(get(&a, b"from-b").as_deref(), Some(&b"2"[..]));
    put(&a, b"from-a", b"3");
    assert_eq!(get(&b, b"from-a").as_deref(), Some(&b"3"[..]));
}

#[test]
fn sqlite_two_backends_serialize_concurrent_increments() {
    // Proves increments from two backends on one directory, two threads each, are
    // serialized: no increment is lost.
    let dir = tempfile::tempdir().expect("temporary directory");
    let stores = [sqlite_store(dir.path()), sqlite_store(dir.path())];
    let threads: Vec<_> = stores
        .iter()
        .chain(stores.iter())
        .map(|s| {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    s.run(|t| increment(t, b"c")).expect("increment");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("increment thread");
    }
    assert_eq!(counter(&stores[0], b"c"), 400);
    assert_eq!(counter(&stores[1], b"c"), 400);
}

#[test]
fn sqlite_concurrent_open_of_a_fresh_directory() {
    // Proves several backends may open a new directory at the same moment (creating the
    // file, the table and the WAL mode race) and all work.
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("fresh");
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4u8)
        .map(|i| {
            let (path, barrier) = (path.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let store = sqlite_store(&path);
                put(&store, &[b'k', i], b"v");
            })
        })
        .collect();
    for t in threads {
        t.join().expect("opening thread");
    }
    assert_eq!(dump(&sqlite_store(&path)).len(), 4);
}

#[test]
fn sqlite_reads_do_not_wait_for_a_writer() {
    // Proves read-only attempts run on their own connections and snapshot: while a write
    // transaction is open and holds the write lock, more readers than the pool has finish
    // and see the last committed value.
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = sqlite_store(dir.path());
    put(&store, b"k", b"committed");
    let (in_txn_tx, in_txn_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            store
                .run(|t| {
                    t.set(b"k", b"uncommitted")?;
                    in_txn_tx.send(()).expect("signal");
                    release_rx.recv().expect("release");
                    Ok(())
                })
                .expect("writer commits")
        })
    };
    in_txn_rx.recv().expect("writer inside its transaction");
    let readers: Vec<_> = (0..READER_POOL_SIZE * 2)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || get(&store, b"k"))
        })
        .collect();
    for r in readers {
        assert_eq!(
            r.join().expect("reader").as_deref(),
            Some(&b"committed"[..])
        );
    }
    release_tx.send(()).expect("release writer");
    writer.join().expect("writer thread");
    assert_eq!(get(&store, b"k").as_deref(), Some(&b"uncommitted"[..]));
}

#[test]
fn sqlite_file_is_wal_with_one_kv_table() {
    // Proves the on-disk format the module documents: <dir>/wallet.db in WAL mode, one table
    // `kv` without rowid; and that full sync is the default mode.
    assert_eq!(SyncMode::default(), SyncMode::Full);
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = sqlite_store(dir.path());
    put(&store, b"k", b"v");
    let conn = rusqlite::Connection::open(dir.path().join("wallet.db")).expect("open file");
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    let tables: Vec<String> = conn
        .prepare("SELECT sql FROM sqlite_schema WHERE type = 'table'")
        .expect("schema query")
        .query_map([], |r| r.get(0))
        .expect("schema rows")
        .collect::<Result<_, _>>()
        .expect("schema");
    assert_eq!(tables.len(), 1, "{tables:?}");
    assert!(tables[0].contains("WITHOUT ROWID"), "{tables:?}");
    let v: Vec<u8> = conn
        .query_row("SELECT v FROM kv WHERE k = ?1", [b"k".as_slice()], |r| {
            r.get(0)
        })
        .expect("row");
    assert_eq!(v, b"v");
}

#[test]
fn sqlite_commits_reach_the_database_file_without_the_writer_checkpointing() {
    // Proves the background checkpointer copies committed WAL frames into wallet.db: the
    // writer checkpoints only past WRITER_CHECKPOINT_PAGES, far more than this writes, so the
    // file grows only if the checkpointer runs.
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = sqlite_store(dir.path());
    let file = dir.path().join("wallet.db");
    let before = std::fs::metadata(&file).expect("db file").len();
    let value = vec![7u8; 1_000];
    for t in 0..50u32 {
        store
            .run(|txn| {
                for k in 0..10u32 {
                    txn.set(format!("ck/{t:04}/{k:02}").as_bytes(), &value)?;
                }
                Ok(())
            })
            .expect("committed");
    }
    assert!(
        500 * 1_000 / 4_096 < node::storage::sqlite::WRITER_CHECKPOINT_PAGES as usize,
        "the test writes less than the writer's own checkpoint threshold"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let len = std::fs::metadata(&file).expect("db file").len();
        if len >= before + 400_000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "wallet.db stayed at {len} bytes: no checkpoint copied the commits"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Environment variables that turn `sqlite_child_process_helper` into a child's work.
const CHILD_DIR_ENV: &str = "STORAGE_CONFORMANCE_CHILD_DIR";
const CHILD_MODE_ENV: &str = "STORAGE_CONFORMANCE_CHILD_MODE";
const CHILD_INCREMENTS: u64 = 100;

/// Increments the counter and records the increment's number in the same transaction.
fn increment_with_log(t: &mut dyn Txn) -> Result<u64, StorageError> {
    let n = increment(t, b"c")?;
    t.set(format!("log/{n:08}").as_bytes(), b"")?;
    Ok(n)
}

fn spawn_child(dir: &Path, mode: &str) -> std::process::Child {
    let exe = std::env::current_exe().expect("test binary path");
    std::process::Command::new(exe)
        .args(["sqlite_child_process_helper", "--exact", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_MODE_ENV, mode)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn the child test process")
}

#[test]
fn sqlite_child_process_helper() {
    // Not a scenario on its own: the body of the child processes of the two tests below,
    // and a no-op when run without them.
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let store = sqlite_store(Path::new(&dir));
    let mode = std::env::var(CHILD_MODE_ENV).unwrap_or_default();
    // "until-killed" stops by itself after a while if the parent never kills it.
    let count = if mode == "until-killed" {
        100_000
    } else {
        CHILD_INCREMENTS
    };
    for _ in 0..count {
        store.run(increment_with_log).expect("child increment");
    }
}

#[test]
fn sqlite_child_process_shares_the_directory() {
    // Proves two processes on one directory serialize their increments (none lost), and
    // that the parent reads the child's commits.
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = sqlite_store(dir.path());
    put(&store, b"ready", b"1");
    let mut child = spawn_child(dir.path(), "increments");
    for _ in 0..CHILD_INCREMENTS {
        store.run(increment_with_log).expect("parent increment");
    }
    let status = child.wait().expect("child exit");
    assert!(status.success(), "child failed: {status}");
    assert_eq!(counter(&store, b"c"), 2 * CHILD_INCREMENTS);
}

#[test]
fn sqlite_sigkill_mid_stream_leaves_a_consistent_usable_file() {
    // Proves crash safety across processes: a writer killed with SIGKILL in the middle of
    // its commits leaves every transaction whole (the counter equals its log entries) and
    // no lock behind (this process then writes at once).
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = sqlite_store(dir.path());
    let mut child = spawn_child(dir.path(), "until-killed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter(&store, b"c") < 50 {
        assert!(Instant::now() < deadline, "the child made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    let reopened = sqlite_store(dir.path());
    let n = counter(&reopened, b"c");
    let logs = reopened
        .read(|t| t.get_range(b"log/", b"log0", RANGE_LIMIT_MAX))
        .expect("log entries");
    assert_eq!(logs.len() as u64, n, "a transaction was cut in half");
    let started = Instant::now();
    reopened
        .run(increment_with_log)
        .expect("write after the kill");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a lock was left"
    );
    assert_eq!(counter(&store, b"c"), n + 1);
}
