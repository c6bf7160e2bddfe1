//! The `fdb` backend: FoundationDB, through the `foundationdb` crate (client API version 730).
//!
//! Design: the adapter is thin on purpose. It does not have a retry loop, a key layout or a
//! transaction body of its own: [`super::Store::run`] calls [`FdbBackend::attempt`] once per
//! attempt, the attempt runs the body in one new FoundationDB transaction and commits it, and
//! the bodies of `ledger::exec` and the keys of [`super::keys::Keys`] (tuple-encoded, under
//! `storage.prefix`) are the ones every backend uses. The limits of [`super::LimitedTxn`] are
//! FoundationDB's key, value and duration limits. Its transaction size counts the keys and
//! values written, where FoundationDB also counts conflict ranges, so a transaction close to
//! 10 MB that the other backends accept may be refused here (`transaction_too_large`, reported
//! as `LimitExceeded`); the ledger's transactions are a few kilobytes.
//!
//! Each attempt:
//! - creates a transaction with the [`ATTEMPT_TIMEOUT`] option (the 5 s of
//!   [`super::TXN_DURATION_MAX`] for the body, plus [`COMMIT_MARGIN`] for the commit), so a
//!   cluster that does not answer fails the attempt instead of blocking its thread;
//! - runs the body; reads of a read-write attempt are serializable reads, each adding a
//!   read-conflict range (a `get_range` that stops at its limit covers the keys up to the last
//!   one returned), which is what makes a body's decisions safe; reads of a read-only attempt
//!   ([`Backend::attempt_read`]) are snapshot reads and the transaction is dropped without a
//!   commit (FoundationDB does not need read-only transactions committed);
//! - commits when the body returned `Ok` and no operation failed: a body that swallowed an
//!   error (a failed read, a write refused in a read-only attempt) still cannot commit, and the
//!   body's own error wins over the operation's, as on the other backends.
//!
//! Errors ([`classify`]), as FoundationDB's documentation prescribes, but with the retrying
//! left to the one retry loop of the system:
//!
//! | FoundationDB error | during the body | at commit |
//! |---|---|---|
//! | 1020 `not_committed` (a conflict) | `Conflict` | `Conflict` |
//! | 1007 `transaction_too_old` | `TooOld` | `TooOld` |
//! | 1031 `transaction_timed_out` ([`ATTEMPT_TIMEOUT`]) | `TooOld` | `CommitUnknown` |
//! | 1025 `transaction_cancelled` | `Failed` | `CommitUnknown` |
//! | 1021 `commit_unknown_result`, 1039 `cluster_version_changed` (*maybe committed*) | `Unavailable` | `CommitUnknown` |
//! | 2101/2102/2103 `transaction_too_large`, `key_too_large`, `value_too_large` | `LimitExceeded` | `LimitExceeded` |
//! | other *retryable* errors (1009 `future_version`, 1037 `process_behind`, 1213 `tag_throttled`, …) | `Unavailable` | `Unavailable` |
//! | other client errors (2000–2999: misuse the client refuses before sending anything) | `Failed` | `Failed` |
//! | anything else | `Failed` | `CommitUnknown` |
//!
//! The last cell is deliberate: an error FoundationDB does not document as "not committed"
//! that arrives during a commit is reported as an unknown outcome, never as a rejection.
//! Before a retryable error is returned, the failed transaction's `on_error` runs, which waits
//! FoundationDB's backoff for that error; since the next attempt is a new transaction, that is
//! FoundationDB's first, short step, and the exponential growth is `Store::run`'s.
//!
//! Why `commit_unknown_result` is safe: `Store::run` runs the body again from scratch, and every
//! read-write body is idempotent. Per body (`ledger::exec`, whose module doc has the detail):
//! - `activate` bumps the lease epoch it read; a second run after a commit bumps it once more,
//!   which fences nobody but older activations.
//! - `commit_batch` first asks whether the previous attempt committed (the stored account
//!   record and lease equal that attempt's result) and, if so, returns that attempt's result
//!   without writing again, so its decisions are neither applied twice nor replayed from
//!   storage behind the activation's memory; otherwise it checks that the stored lease is
//!   still this activation's (a fenced retry after an unknown attempt is reported unknown by
//!   `Store::run`, not as a refusal) and writes absolute values computed from what it read.
//! - `store_identity` writes the store id only when none is stored; a second run reads the id
//!   the first one wrote and returns it.
//! - Bodies run by `Store::read` write nothing.
//!
//! A commit that timed out (1031) or met a cluster version change (1039) may still land after
//! the error, unlike one reported `commit_unknown_result`. That is safe too: each body reads
//! the keys it writes (the account record or the lease, the store id), so of the late commit
//! and the retry, whichever commits second conflicts on them and is not applied, and the
//! next retry reads what the first one wrote.
//!
//! The network thread ([`network`]) is started once per process, by the first
//! [`FdbBackend::open`], and stopped once: by [`network::stop`] when `walletd` exits, and by an
//! `atexit` hook in every other process (test binaries), because the client library requires
//! it to be stopped before the process exits. It cannot be started again after it stopped.
//!
//! If the network thread dies (`fdb_run_network` fails), its thread panics; `walletd` aborts
//! on any panic, and a process that does not would see its transactions hang.
//!
//! Left out: tenants, `automatic_idempotency` (the bodies are idempotent without it),
//! watches, a client-side cache of read versions, and concurrent reads inside one body (each
//! read is one round trip; `activate` reads an account's open sagas one by one, at most
//! `OPEN_SAGAS_MAX`).

use super::{Backend, Body, Kv, StorageError, Txn, TXN_DURATION_MAX};
use foundationdb::options::{StreamingMode, TransactionOption};
use foundationdb::{Database, FdbError, RangeOption, Transaction};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake};
use std::time::Duration;

/// Time left for the commit once a body has used all of [`TXN_DURATION_MAX`].
pub const COMMIT_MARGIN: Duration = Duration::from_secs(2);
/// The timeout set on every transaction: the body's limit plus the commit's margin.
pub const ATTEMPT_TIMEOUT: Duration = TXN_DURATION_MAX.saturating_add(COMMIT_MARGIN);

/// `not_committed`: the transaction conflicted with another.
const NOT_COMMITTED: i32 = 1020;
/// `transaction_too_old`: the read version is older than FoundationDB keeps (5 s).
const TRANSACTION_TOO_OLD: i32 = 1007;
/// `transaction_timed_out`: the transaction's timeout option fired.
const TRANSACTION_TIMED_OUT: i32 = 1031;
/// `transaction_too_large`: more than 10 MB of mutations and conflict ranges.
const TRANSACTION_TOO_LARGE: i32 = 2101;
/// `key_too_large`: a key over 10 kB.
const KEY_TOO_LARGE: i32 = 2102;
/// `value_too_large`: a value over 100 kB.
const VALUE_TOO_LARGE: i32 = 2103;
/// `transaction_cancelled`: cancelled, possibly while its commit was in flight.
const TRANSACTION_CANCELLED: i32 = 1025;
/// The client's own errors (API misuse, refused before anything is sent).
const CLIENT_ERRORS: std::ops::RangeInclusive<i32> = 2000..=2999;

/// Where in an attempt an error happened: it decides whether a commit may have happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Creating the transaction or running the body: nothing was sent to commit.
    Body,
    /// Committing.
    Commit,
}

/// Maps a FoundationDB error onto the storage contract's errors (the table of the module doc).
pub fn classify(error: FdbError, stage: Stage) -> StorageError {
    let code = error.code();
    let what = format!("FoundationDB error {code}: {}", error.message());
    match code {
        NOT_COMMITTED => StorageError::Conflict,
        TRANSACTION_TOO_OLD => StorageError::TooOld,
        TRANSACTION_TIMED_OUT if stage == Stage::Commit => StorageError::CommitUnknown,
        TRANSACTION_TIMED_OUT => StorageError::TooOld,
        TRANSACTION_TOO_LARGE | KEY_TOO_LARGE | VALUE_TOO_LARGE => {
            StorageError::LimitExceeded(what)
        }
        TRANSACTION_CANCELLED if stage == Stage::Commit => StorageError::CommitUnknown,
        _ if error.is_maybe_committed() && stage == Stage::Commit => StorageError::CommitUnknown,
        // A maybe-committed error during the body (a read meeting a cluster version change)
        // committed nothing: the commit was never sent.
        _ if error.is_retryable() => StorageError::Unavailable(what),
        _ if CLIENT_ERRORS.contains(&code) => StorageError::Failed(what),
        _ if stage == Stage::Commit => StorageError::CommitUnknown,
        _ => StorageError::Failed(what),
    }
}

/// FoundationDB as a storage backend.
pub struct FdbBackend {
    db: Database,
    cluster_file: PathBuf,
}

impl std::fmt::Debug for FdbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FdbBackend")
            .field("cluster_file", &self.cluster_file)
            .finish_non_exhaustive()
    }
}

impl FdbBackend {
    /// Starts the network if this process has not yet, opens the database of `cluster_file`
    /// and checks that its cluster answers within [`ATTEMPT_TIMEOUT`].
    pub fn open(cluster_file: &Path) -> Result<Self, StorageError> {
        let shown = cluster_file.display();
        if !cluster_file.is_file() {
            return Err(StorageError::Failed(format!(
                "FoundationDB cluster file {shown} does not exist; install the foundationdb-clients package and copy the cluster's fdb.cluster there"
            )));
        }
        let path = cluster_file.to_str().ok_or_else(|| {
            StorageError::Failed(format!("cluster file path {shown} is not UTF-8"))
        })?;
        network::start()?;
        let db = Database::new(Some(path)).map_err(|e| {
            StorageError::Failed(format!(
                "cannot open the FoundationDB database of {shown}: {}",
                classify(e, Stage::Body)
            ))
        })?;
        let backend = FdbBackend {
            db,
            cluster_file: cluster_file.to_path_buf(),
        };
        backend.check_reachable()?;
        Ok(backend)
    }

    /// The cluster file this backend was opened with.
    pub fn cluster_file(&self) -> &Path {
        &self.cluster_file
    }

    /// Asks the cluster for a read version, which needs a working cluster controller and
    /// proxies, and names the cluster file when it does not answer.
    fn check_reachable(&self) -> Result<(), StorageError> {
        let trx = self.transaction()?;
        block_on(trx.get_read_version()).map_err(|e| {
            StorageError::Unavailable(format!(
                "the FoundationDB cluster of {} did not answer within {} s ({}); check it with `fdbcli -C {} --exec status`",
                self.cluster_file.display(),
                ATTEMPT_TIMEOUT.as_secs(),
                classify(e, Stage::Body),
                self.cluster_file.display(),
            ))
        })?;
        Ok(())
    }

    /// A new transaction with the attempt timeout set.
    fn transaction(&self) -> Result<Transaction, StorageError> {
        let trx = self.db.create_trx().map_err(|e| classify(e, Stage::Body))?;
        let timeout_ms = i32::try_from(ATTEMPT_TIMEOUT.as_millis())
            .expect("the attempt timeout fits FoundationDB's i32 milliseconds");
        trx.set_option(TransactionOption::Timeout(timeout_ms))
            .map_err(|e| classify(e, Stage::Body))?;
        Ok(trx)
    }

    fn run_attempt(&self, body: &mut Body<'_>, read_only: bool) -> Result<(), StorageError> {
        let trx = self.transaction()?;
        let mut txn = FdbTxn {
            trx: &trx,
            read_only,
            failed: None,
        };
        let outcome = body(&mut txn);
        let failed = txn.failed.take();
        // The body's own error wins; an operation that failed still prevents the commit.
        let error = match (outcome, failed) {
            (Ok(()), None) => None,
            (Err(e), failed) => Some((e, failed.and_then(|(fdb, _)| fdb))),
            (Ok(()), Some((fdb, e))) => Some((e, fdb)),
        };
        if let Some((error, fdb_error)) = error {
            // Before a retryable error goes back to the retry loop, `on_error` waits
            // FoundationDB's backoff for it; its answer (an error when FoundationDB would not
            // retry, a timeout say) is not needed, `classify` has decided.
            if let (true, Some(fdb_error)) = (error.is_retryable(), fdb_error) {
                let _ = block_on(trx.on_error(fdb_error));
            }
            return Err(error);
        }
        if read_only {
            // Dropping the transaction cancels it; a read-only one has nothing to commit.
            return Ok(());
        }
        match block_on(trx.commit()) {
            Ok(_) => Ok(()),
            Err(commit_error) => {
                let error = classify(*commit_error, Stage::Commit);
                if error.is_retryable() {
                    let _ = block_on(commit_error.on_error());
                }
                Err(error)
            }
        }
    }
}

impl Backend for FdbBackend {
    fn name(&self) -> &'static str {
        "fdb"
    }

    fn attempt(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
        self.run_attempt(body, false)
    }

    fn attempt_read(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
        self.run_attempt(body, true)
    }
}

/// One attempt's transaction, as the body sees it.
struct FdbTxn<'a> {
    trx: &'a Transaction,
    /// True for [`Backend::attempt_read`]: snapshot reads, and writes are refused.
    read_only: bool,
    /// The first failed operation: its FoundationDB error if it has one (for `on_error`), and
    /// the error the body was given.
    failed: Option<(Option<FdbError>, StorageError)>,
}

impl FdbTxn<'_> {
    /// Records a failed operation and returns its mapped error.
    fn fail(&mut self, error: FdbError) -> StorageError {
        let mapped = classify(error, Stage::Body);
        self.failed.get_or_insert((Some(error), mapped.clone()));
        mapped
    }

    /// Refuses a write in a read-only attempt (a bug in the caller, as on the other backends),
    /// failing the attempt even if the body ignores the error.
    fn check_write(&mut self) -> Result<(), StorageError> {
        if self.read_only {
            let e = StorageError::LimitExceeded("write in a read-only transaction".to_string());
            self.failed.get_or_insert((None, e.clone()));
            return Err(e);
        }
        Ok(())
    }
}

impl Txn for FdbTxn<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match block_on(self.trx.get(key, self.read_only)) {
            Ok(value) => Ok(value.map(|v| v.to_vec())),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn get_many(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        // Each `get` is sent when its future is made: all are in flight before the first
        // wait, so the batch costs one round trip, not one per key.
        let reads: Vec<_> = keys
            .iter()
            .map(|k| self.trx.get(k, self.read_only))
            .collect();
        let mut out = Vec::with_capacity(reads.len());
        for read in reads {
            match block_on(read) {
                Ok(value) => out.push(value.map(|v| v.to_vec())),
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(out)
    }

    fn get_range(
        &mut self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Kv>, StorageError> {
        let mut rows = Vec::new();
        // The contract reads nothing for a limit of 0, where FoundationDB would read
        // everything; FoundationDB refuses an inverted range, the contract finds it empty.
        if limit == 0 || begin >= end {
            return Ok(rows);
        }
        let mut option = RangeOption {
            limit: Some(limit),
            mode: StreamingMode::WantAll,
            ..RangeOption::from((begin, end))
        };
        // One call may return part of the range (`more`); the next call starts after the last
        // key returned, with the limit reduced by the rows already read.
        loop {
            let batch = match block_on(self.trx.get_range(&option, 1, self.read_only)) {
                Ok(batch) => batch,
                Err(e) => return Err(self.fail(e)),
            };
            rows.extend(
                batch
                    .iter()
                    .map(|kv| (kv.key().to_vec(), kv.value().to_vec())),
            );
            match option.next_range(&batch) {
                Some(next) => option = next,
                None => break,
            }
        }
        debug_assert!(rows.len() <= limit, "FoundationDB returned past the limit");
        Ok(rows)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.check_write()?;
        self.trx.set(key, value);
        Ok(())
    }

    fn clear(&mut self, key: &[u8]) -> Result<(), StorageError> {
        self.check_write()?;
        self.trx.clear(key);
        Ok(())
    }

    fn clear_range(&mut self, begin: &[u8], end: &[u8]) -> Result<(), StorageError> {
        self.check_write()?;
        if begin < end {
            self.trx.clear_range(begin, end);
        }
        Ok(())
    }
}

/// Wakes the thread that waits in [`block_on`].
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a FoundationDB future to completion on this thread. The futures are completed by the
/// network thread, which wakes this one; backends are called from blocking threads only.
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Arc::new(ThreadWaker(std::thread::current())).into();
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        // A spurious unpark only costs one more poll.
        std::thread::park();
    }
}

pub mod network {
    //! The FoundationDB network thread: started at most once per process, stopped at most once.

    use super::StorageError;
    use foundationdb::api::{FdbApiBuilder, NetworkAutoStop};
    use std::sync::{Mutex, MutexGuard, PoisonError};

    /// The network's life in this process.
    enum State {
        /// Not started yet.
        Idle,
        /// Running; dropping the guard stops the network and joins its thread.
        Running { _guard: NetworkAutoStop },
        /// Could not start (the error); the client library allows no second try.
        Broken(String),
        /// Stopped; the client library cannot start it again.
        Stopped,
    }

    static STATE: Mutex<State> = Mutex::new(State::Idle);

    fn state() -> MutexGuard<'static, State> {
        STATE.lock().unwrap_or_else(PoisonError::into_inner)
    }

    unsafe extern "C" {
        /// The C library's exit hook registry.
        fn atexit(hook: extern "C" fn()) -> std::os::raw::c_int;
    }

    extern "C" fn stop_at_exit() {
        stop();
    }

    /// Selects the client API version and starts the network thread, once; later calls return
    /// at once (or the first call's error).
    pub fn start() -> Result<(), StorageError> {
        let mut state = state();
        match &*state {
            State::Running { .. } => Ok(()),
            State::Broken(e) => Err(StorageError::Failed(e.clone())),
            State::Stopped => Err(StorageError::Failed(
                "the FoundationDB network of this process has stopped and cannot start again"
                    .to_string(),
            )),
            State::Idle => {
                let builder = FdbApiBuilder::default().build().map_err(|e| {
                    let message = format!(
                        "the FoundationDB client library cannot provide API version {} ({e}); install foundationdb-clients 7.3 or newer",
                        FdbApiBuilder::default().runtime_version()
                    );
                    *state = State::Broken(message.clone());
                    StorageError::Failed(message)
                })?;
                // SAFETY: the guard lives in `STATE` and is dropped (stopping the network)
                // by `stop`, which `walletd` calls before it returns and the `atexit` hook
                // registered below calls in every other process before it exits.
                let guard = unsafe { builder.boot() }.map_err(|e| {
                    let message = format!("the FoundationDB network did not start: {e}");
                    *state = State::Broken(message.clone());
                    StorageError::Failed(message)
                })?;
                // SAFETY: registers a plain function with no arguments, as `atexit` expects.
                if unsafe { atexit(stop_at_exit) } != 0 {
                    // Without the hook nothing would stop the network before exit: stop it now.
                    drop(guard);
                    let message =
                        "could not register the FoundationDB network's exit hook".to_string();
                    *state = State::Broken(message.clone());
                    return Err(StorageError::Failed(message));
                }
                *state = State::Running { _guard: guard };
                Ok(())
            }
        }
    }

    /// Stops the network thread if it runs and waits for it to end. Every database handle must
    /// be dropped first; no FoundationDB call may follow in this process.
    pub fn stop() {
        let previous = {
            let mut state = state();
            match *state {
                State::Running { .. } => std::mem::replace(&mut *state, State::Stopped),
                _ => return,
            }
        };
        // Outside the lock: stopping joins the network thread.
        drop(previous);
    }
}

#[cfg(test)]
mod tests {
    //! The error table. These need the client library (`fdb_error_predicate`), so they run
    //! where `libfdb_c` is installed: `cargo test -p node --features fdb --lib storage::fdb`.

    use super::{classify, Stage};
    use crate::storage::StorageError;
    use foundationdb::FdbError;

    fn at(code: i32, stage: Stage) -> StorageError {
        classify(FdbError::from_code(code), stage)
    }

    #[test]
    fn conflicts_and_old_reads_retry_and_never_committed() {
        for stage in [Stage::Body, Stage::Commit] {
            assert_eq!(at(1020, stage), StorageError::Conflict);
            assert_eq!(at(1007, stage), StorageError::TooOld);
        }
    }

    #[test]
    fn a_timeout_is_unknown_only_at_commit() {
        assert_eq!(at(1031, Stage::Body), StorageError::TooOld);
        assert_eq!(at(1031, Stage::Commit), StorageError::CommitUnknown);
    }

    #[test]
    fn maybe_committed_errors_are_unknown_at_commit_only() {
        // commit_unknown_result, cluster_version_changed.
        for code in [1021, 1039] {
            assert_eq!(at(code, Stage::Commit), StorageError::CommitUnknown);
            assert!(matches!(
                at(code, Stage::Body),
                StorageError::Unavailable(_)
            ));
        }
    }

    #[test]
    fn size_limits_are_refused_not_retried() {
        for code in [2101, 2102, 2103] {
            let e = at(code, Stage::Commit);
            assert!(matches!(e, StorageError::LimitExceeded(_)), "{code}: {e:?}");
            assert!(!e.is_retryable());
        }
    }

    #[test]
    fn transient_errors_are_unavailable_and_retried() {
        // future_version, process_behind, tag_throttled.
        for code in [1009, 1037, 1213] {
            let e = at(code, Stage::Body);
            assert!(matches!(e, StorageError::Unavailable(_)), "{code}: {e:?}");
            assert!(e.is_retryable());
        }
    }

    #[test]
    fn a_cancel_is_unknown_only_at_commit() {
        assert!(matches!(at(1025, Stage::Body), StorageError::Failed(_)));
        assert_eq!(at(1025, Stage::Commit), StorageError::CommitUnknown);
    }

    #[test]
    fn client_errors_fail_and_other_commit_errors_are_unknown() {
        // used_during_commit, client_invalid_operation: refused before anything is sent.
        for code in [2017, 2000] {
            for stage in [Stage::Body, Stage::Commit] {
                assert!(matches!(at(code, stage), StorageError::Failed(_)), "{code}");
            }
        }
        // internal_error: not documented as "not committed".
        assert!(matches!(at(4100, Stage::Body), StorageError::Failed(_)));
        assert_eq!(at(4100, Stage::Commit), StorageError::CommitUnknown);
    }
}
