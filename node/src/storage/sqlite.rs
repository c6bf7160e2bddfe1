//! The `embedded` backend: SQLite in WAL mode, one table of ordered byte keys.
//!
//! Design: one table `kv(k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID`, so rows are
//! stored in a B-tree ordered by the key bytes (SQLite compares blobs with `memcmp`, then by
//! length: the same order as FoundationDB). A read-write attempt runs on the one writer
//! connection, behind a mutex, inside `BEGIN IMMEDIATE` … `COMMIT`: it takes the database's
//! write lock before its first read, so read-write transactions are serial, across threads and
//! processes, and never fail with a conflict (a body must not start another read-write
//! transaction on the same backend: it would wait for itself). A read-only attempt takes a
//! connection from a pool of [`READER_POOL_SIZE`] and runs in a deferred transaction: WAL
//! gives it a consistent snapshot from its first read, and it neither waits for nor blocks
//! the writer.
//!
//! Errors: `SQLITE_BUSY`/`SQLITE_LOCKED` (another process held the lock longer than
//! [`BUSY_TIMEOUT`]) and I/O errors become [`StorageError::Unavailable`], which the retry loop
//! retries. A `COMMIT` that fails while busy leaves the transaction open and uncommitted, so it
//! is rolled back and reported `Unavailable`; any other failure at `COMMIT` (an I/O error
//! during the WAL write or `fsync`, a full disk) may have left a valid commit frame that
//! recovery will replay, so it is reported [`StorageError::CommitUnknown`]. Once a statement of
//! an attempt has failed, the attempt can no longer commit, even if the body ignores the error:
//! SQLite may have rolled the transaction back already, and later statements would run in
//! autocommit mode, one by one.
//!
//! Durability: [`SyncMode::Full`] (the default, `PRAGMA synchronous=FULL`) syncs the WAL at
//! every commit, so an acknowledged commit survives a power loss. [`SyncMode::Normal`] syncs
//! only at checkpoints: a commit survives a crash of the process (SIGKILL included) but the
//! last commits may be lost with the machine.
//!
//! Checkpoints: a WAL grows with every commit until a checkpoint copies its frames into the
//! database file. SQLite's default runs that copy (and an `fsync` of the database file) inside
//! the commit that crosses 1,000 pages, on the writer, which holds every other commit back. A
//! background thread with its own connection runs a passive checkpoint every
//! [`CHECKPOINT_EVERY`] instead (it never blocks the writer or a reader), and the writer
//! checkpoints itself only past [`WRITER_CHECKPOINT_PAGES`]. Measured with `walletctl bench`
//! (1,000 accounts, 15 s, alternating the two builds twice): 4,910 and 5,036 transfers/s on the
//! batch route (1,000 per request, 8 workers) became 5,741 and 5,947 (+17%); one transfer per
//! request (32 workers) 2,593 and 2,345 became 2,692 and 2,404 (+3%).
//!
//! Multi-process use: every process opens the same directory; the WAL index lives in shared
//! memory (`wallet.db-shm`), so the processes must run on one machine, on a local file system
//! (not NFS). A writer waits up to [`BUSY_TIMEOUT`] for another process's write lock. Nothing
//! is held across attempts, and a process killed mid-transaction leaves no lock behind: SQLite
//! uses POSIX advisory locks, which the kernel drops with the process, and WAL frames written
//! without a commit record are ignored by every later reader and overwritten.
//!
//! Why SQLite rather than LMDB. Measured on this machine (2 cores AMD EPYC, 24 GiB, ext4 on a
//! virtual disk whose `fsync` takes about 70 µs, shared with other jobs: load average about 2),
//! with a scratch crate outside the repository that drives this backend through [`super::Store`]
//! and LMDB through `heed` 0.23 (default flags: a synced commit), 10 000 keys of 200 bytes
//! preloaded; each figure is the median of 5 interleaved runs of 2 s, two sessions:
//! `cd /work/scratch/embedded-bench && CARGO_TARGET_DIR=/work/scratch/target cargo run --release -- 5`
//!
//! | per second | SQLite WAL `FULL` | LMDB, synced | SQLite WAL `NORMAL` |
//! |---|---|---|---|
//! | txn: read 2 keys, write 4 × 200 B; 1 thread | 5.1k–7.0k | 2.5k–4.0k | 21k–22k |
//! | the same, 4 threads | 5.0k–6.6k | 2.2k–3.8k | 20k–20.6k |
//! | range read of 100 keys, 1 thread | 30.6k–31.4k | 104k–109k | 30.8k–33k |
//!
//! Verdict: for the ledger's workload, small durable read-write transactions, SQLite commits
//! about twice as fast as LMDB here (one sequential WAL append and one `fsync` per commit,
//! against LMDB's copy-on-write of B-tree pages, a data sync and a synced meta-page write),
//! and neither gains from more threads since both have one writer. LMDB reads ranges about
//! 3.5 times faster (memory-mapped, no SQL layer), but 30 000 100-row ranges per second is far
//! beyond what the node needs. Beyond speed, SQLite fits the other requirements better:
//! several `walletd` processes and several handles in one process share one file (LMDB
//! forbids opening an environment twice in one process); a process killed with SIGKILL leaves
//! nothing behind, while in LMDB it leaves a stale reader slot that pins old pages, so the file
//! grows until someone clears it; the file grows on demand and the WAL is bounded by
//! [`JOURNAL_SIZE_LIMIT_BYTES`], where LMDB needs its map size fixed in advance and fails
//! with `MDB_MAP_FULL` past it; SQLite is the most deployed and tested engine there is, has a
//! CLI to inspect the file during an incident (its keys; the values are binary since 0.2), and `rusqlite` bundles it, where `heed` reworked
//! how databases are opened in 0.23 and needs `unsafe` to open an environment.
//!
//! Measured again under group commit (one transaction per group of account batches, each batch
//! reading 2 keys and writing 5 values of 60 bytes: the state, a journal entry, an
//! idempotency record, a saga record and a pending entry of one of 1,000 accounts), with
//! `scripts/engine-bench` (SQLite through this backend and [`super::Store`], its background
//! checkpointer included; LMDB through `heed` 0.22, synced commits), medians of 3 interleaved
//! runs of 3 s, batches per second (a second session; the first gave the same within 5%):
//!
//! | batches per transaction | SQLite WAL `FULL` | LMDB, synced |
//! |---|---|---|
//! | 1 | 4,806 | 3,614 |
//! | 16 (a node under one-transfer-per-request load) | 22,060 | 22,522 |
//! | 64 (about the batch route's groups) | 28,538 | 31,667 |
//! | 256 | 31,389 | 40,353 |
//!
//! Group commit closes the gap: alone SQLite commits 33% faster, at 16 batches they are
//! equal, at 64 LMDB is 11% faster and at 256 29% (it writes each dirty page once, in place
//! of SQLite's WAL frame and later checkpoint copy). The node runs groups of about 15
//! batches under one transfer per request and about 75 on the batch route; the reasons above (sharing one file between processes and handles, nothing
//! left behind by SIGKILL, no fixed map size) outweigh that, so the embedded store stays
//! SQLite. Its costs under load are in BENCHMARKS.md ("Where the time goes now").
//!
//! Left out: a busy-waiting writer does not count toward the 5 s transaction limit (the limit
//! starts with the body); online backup and `VACUUM` (operations' business); watches.

use super::{Backend, Body, Kv, StorageError, Txn};
use rusqlite::{Connection, ErrorCode, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// File name of the database inside the directory given to [`SqliteBackend::open`].
pub const DB_FILE_NAME: &str = "wallet.db";
/// Connections kept for read-only attempts; more concurrent readers wait for one.
pub const READER_POOL_SIZE: usize = 4;
/// How long a connection waits for another one's lock before reporting busy.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Page cache of each connection, in KiB (`PRAGMA cache_size` takes it negated).
pub const CACHE_SIZE_KIB: i64 = 16 * 1024;
/// How often the background checkpointer copies the WAL's new frames into the database.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(10);
/// WAL pages past which the writer checkpoints itself, after its commit (the background
/// checkpointer could not keep the WAL short, for example behind a long read).
pub const WRITER_CHECKPOINT_PAGES: i64 = 20_000;
/// Size the WAL file is truncated back to after a checkpoint, in bytes.
pub const JOURNAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID";
const SQL_GET: &str = "SELECT v FROM kv WHERE k = ?1";
const SQL_RANGE: &str = "SELECT k, v FROM kv WHERE k >= ?1 AND k < ?2 ORDER BY k LIMIT ?3";
const SQL_SET: &str =
    "INSERT INTO kv (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v";
const SQL_CLEAR: &str = "DELETE FROM kv WHERE k = ?1";
const SQL_CLEAR_RANGE: &str = "DELETE FROM kv WHERE k >= ?1 AND k < ?2";

/// When a commit is on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// `synchronous=FULL`: an acknowledged commit survives a power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: an acknowledged commit survives a process crash only.
    Normal,
}

/// What a connection is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Writer,
    Reader,
}

/// The SQLite backend: one writer connection and a pool of readers on `<dir>/wallet.db`.
pub struct SqliteBackend {
    file: PathBuf,
    sync: SyncMode,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    reader_returned: Condvar,
    /// Held for its `Drop`, which stops the thread.
    _checkpointer: Checkpointer,
}

/// The background checkpointer: a thread with its own connection that copies committed WAL
/// frames into the database file every [`CHECKPOINT_EVERY`] (a passive checkpoint: it never
/// blocks the writer or a reader), so the writer's commits do not pay for it.
struct Checkpointer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(file: &Path, sync: SyncMode) -> Result<Checkpointer, StorageError> {
        let conn = open_connection(file, sync, Role::Reader)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                    // A failure (busy, I/O) is retried at the next tick; the writer's own
                    // checkpoint past WRITER_CHECKPOINT_PAGES bounds the WAL meanwhile.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    std::thread::sleep(CHECKPOINT_EVERY);
                }
            })
            .map_err(|e| {
                StorageError::Unavailable(format!("cannot start the checkpointer: {e}"))
            })?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("file", &self.file)
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

impl SqliteBackend {
    /// Opens (creating if needed) the directory `path` and its `wallet.db`.
    pub fn open(path: &Path, sync: SyncMode) -> Result<Self, StorageError> {
        std::fs::create_dir_all(path).map_err(|e| {
            StorageError::Unavailable(format!("cannot create {}: {e}", path.display()))
        })?;
        let file = path.join(DB_FILE_NAME);
        let writer = open_connection(&file, sync, Role::Writer)?;
        let readers = (0..READER_POOL_SIZE)
            .map(|_| open_connection(&file, sync, Role::Reader))
            .collect::<Result<Vec<_>, _>>()?;
        let checkpointer = Checkpointer::start(&file, sync)?;
        Ok(SqliteBackend {
            file,
            sync,
            writer: Mutex::new(writer),
            readers: Mutex::new(readers),
            reader_returned: Condvar::new(),
            _checkpointer: checkpointer,
        })
    }

    /// The database file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Takes a reader connection from the pool, waiting for one if all are in use.
    fn take_reader(&self) -> PooledReader<'_> {
        let mut readers = lock(&self.readers);
        loop {
            if let Some(conn) = readers.pop() {
                return PooledReader {
                    backend: self,
                    conn: Some(conn),
                };
            }
            readers = self
                .reader_returned
                .wait(readers)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Makes sure `conn` is not inside a transaction left over by a panic or a failed
    /// rollback, replacing the connection (closing rolls back) when `ROLLBACK` cannot end it.
    fn ensure_idle(&self, conn: &mut Connection, role: Role) -> Result<(), StorageError> {
        if conn.is_autocommit() {
            return Ok(());
        }
        let _ = conn.execute_batch("ROLLBACK");
        if !conn.is_autocommit() {
            *conn = open_connection(&self.file, self.sync, role)?;
        }
        Ok(())
    }
}

impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn attempt(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
        let mut conn = lock(&self.writer);
        self.ensure_idle(&mut conn, Role::Writer)?;
        run_in_transaction(&conn, "BEGIN IMMEDIATE", body, Role::Writer)
    }

    fn attempt_read(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
        let mut reader = self.take_reader();
        let conn = reader
            .conn
            .as_mut()
            .expect("a pooled reader holds its connection until dropped");
        self.ensure_idle(conn, Role::Reader)?;
        run_in_transaction(conn, "BEGIN DEFERRED", body, Role::Reader)
    }
}

/// A reader connection on loan; it goes back to the pool when dropped, even on a panic.
struct PooledReader<'b> {
    backend: &'b SqliteBackend,
    conn: Option<Connection>,
}

impl Drop for PooledReader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            lock(&self.backend.readers).push(conn);
            self.backend.reader_returned.notify_one();
        }
    }
}

/// Rolls back the open transaction when dropped, so that an error or a panic in the body
/// cannot leave the write lock held. A failed `ROLLBACK` is caught by the next `ensure_idle`.
struct RollbackOnDrop<'c>(&'c Connection);

impl Drop for RollbackOnDrop<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

/// Runs one attempt of `body` in a transaction opened by `begin`, and commits it.
fn run_in_transaction(
    conn: &Connection,
    begin: &str,
    body: &mut Body<'_>,
    role: Role,
) -> Result<(), StorageError> {
    execute(conn, begin)?;
    let _rollback = RollbackOnDrop(conn);
    let mut txn = SqliteTxn {
        conn,
        read_only: role == Role::Reader,
        failed: None,
    };
    let outcome = body(&mut txn);
    // The body's own error wins; an error it swallowed still aborts the attempt.
    outcome?;
    if let Some(e) = txn.failed {
        return Err(e);
    }
    if conn.is_autocommit() {
        // Defensive: no statement failed, yet the transaction is gone, so COMMIT could only
        // fail or commit an empty transaction; the attempt is reported as not committed.
        return Err(StorageError::Unavailable(
            "transaction ended before commit".to_string(),
        ));
    }
    if role == Role::Reader {
        // Nothing to commit: ending the read transaction releases its snapshot.
        return execute(conn, "ROLLBACK");
    }
    match conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let busy = matches!(
                e.sqlite_error_code(),
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
            );
            if busy && !conn.is_autocommit() {
                // SQLite documents that a busy COMMIT leaves the transaction open and
                // uncommitted; `_rollback` ends it.
                Err(map_error(e))
            } else {
                Err(StorageError::CommitUnknown)
            }
        }
    }
}

/// Runs one statement without parameters or rows (`BEGIN`, `COMMIT`, `ROLLBACK`).
fn execute(conn: &Connection, sql: &str) -> Result<(), StorageError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(map_error)
}

/// Opens and configures one connection to `file`.
fn open_connection(file: &Path, sync: SyncMode, role: Role) -> Result<Connection, StorageError> {
    let conn = Connection::open(file).map_err(map_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(map_error)?;
    // Switching a new database to WAL needs an exclusive lock and does not always go through
    // the busy handler, so several processes opening a fresh directory at once retry it here.
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        let mode = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0));
        match mode {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => break,
            Ok(mode) => {
                return Err(StorageError::Unavailable(format!(
                    "{}: journal_mode is {mode}, WAL is required",
                    file.display()
                )))
            }
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(map_error(e)),
        }
    }
    let synchronous = match sync {
        SyncMode::Full => "FULL",
        SyncMode::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(map_error)?;
    conn.pragma_update(None, "cache_size", -CACHE_SIZE_KIB)
        .map_err(map_error)?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT_BYTES)
        .map_err(map_error)?;
    match role {
        Role::Writer => {
            conn.execute_batch(SCHEMA).map_err(map_error)?;
            conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
                .map_err(map_error)?;
        }
        // A second guard behind `SqliteTxn::read_only`: SQLite itself refuses writes.
        Role::Reader => conn
            .pragma_update(None, "query_only", true)
            .map_err(map_error)?,
    }
    Ok(conn)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Maps a SQLite error to the storage contract's errors.
fn map_error(e: rusqlite::Error) -> StorageError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StorageError::Unavailable(format!("sqlite busy: {e}"))
        }
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            StorageError::Corrupt(format!("sqlite: {e}"))
        }
        Some(ErrorCode::TooBig) => StorageError::LimitExceeded(format!("sqlite: {e}")),
        // I/O errors, a full disk, a file that cannot be opened or locked, and anything
        // unexpected: nothing was committed, and retrying is harmless.
        Some(_) => StorageError::Unavailable(format!("sqlite: {e}")),
        // Not an error of SQLite: a stored value of the wrong type, for instance.
        None => StorageError::Corrupt(format!("sqlite: {e}")),
    }
}

/// Locks a mutex, taking over a poisoned one: a connection left inside a transaction by a
/// panic is cleaned up by `ensure_idle` before its next use.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One attempt's view of the database: SQLite's own transaction gives read-your-writes.
struct SqliteTxn<'c> {
    conn: &'c Connection,
    read_only: bool,
    /// The first error returned to the body; every later operation returns it again.
    failed: Option<StorageError>,
}

impl SqliteTxn<'_> {
    fn run<T>(
        &mut self,
        write: bool,
        op: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StorageError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = if write && self.read_only {
            Err(StorageError::LimitExceeded(
                "write in a read-only transaction".to_string(),
            ))
        } else {
            op(self.conn).map_err(map_error)
        };
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }
}

impl Txn for SqliteTxn<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.run(false, |conn| {
            conn.prepare_cached(SQL_GET)?
                .query_row([key], |row| row.get::<_, Vec<u8>>(0))
                .optional()
        })
    }

    fn get_range(
        &mut self,
        begin: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Kv>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(false, |conn| {
            let mut stmt = conn.prepare_cached(SQL_RANGE)?;
            let rows = stmt.query_map((begin, end, limit), |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?))
            })?;
            rows.collect()
        })
    }

    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.run(true, |conn| {
            conn.prepare_cached(SQL_SET)?.execute((key, value))?;
            Ok(())
        })
    }

    fn clear(&mut self, key: &[u8]) -> Result<(), StorageError> {
        self.run(true, |conn| {
            conn.prepare_cached(SQL_CLEAR)?.execute([key])?;
            Ok(())
        })
    }

    fn clear_range(&mut self, begin: &[u8], end: &[u8]) -> Result<(), StorageError> {
        self.run(true, |conn| {
            conn.prepare_cached(SQL_CLEAR_RANGE)?
                .execute((begin, end))?;
            Ok(())
        })
    }
}
