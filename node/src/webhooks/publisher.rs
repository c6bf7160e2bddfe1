//! One webhook's publisher: a thread that delivers the events of its outbox for the accounts
//! this node owns, in key order (so in `seq` order per account), and deletes each once the
//! receiver answered 2xx.
//!
//! A pass reads the outbox in pages of [`PAGE_MAX`]; each account's events of a page are a
//! run, posted one after the other, and up to [`DELIVERY_WORKERS`] runs go at once. An
//! account that must wait (not owned here, in its backoff, or failed earlier in the pass) is
//! skipped whole: the pass seeks past its keys, so its later events can never overtake its
//! earlier ones.
//!
//! Two kinds of failure: the receiver as a whole (no connection, a timeout, 5xx, 429, 408)
//! ends the pass, and the next starts after the webhook's backoff; an answer that refuses one
//! event (another status) holds back only its account, with the account's own backoff, while
//! the others go on. Backoffs double from [`RETRY_FIRST`] up to the webhook's `retry_max_ms`;
//! an event still failing [`RETRY_FOR_MS`] after it was written is dropped, with an error in
//! the log naming it.
//!
//! The events waiting are counted apart from deliveries, every [`COUNT_EVERY`] (also while
//! the receiver is in backoff), up to the limit: the count closes and opens the
//! [`OutboxGate`].

use super::sign;
use super::{HookStats, OutboxGate};
use crate::cluster::membership::Membership;
use crate::ledger::outbox;
use crate::storage::keys::{Keys, OutboxHook};
use crate::storage::{StorageError, Store};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_rustls::rustls::crypto::aws_lc_rs;
use ureq::tls::TlsConfig;
use ureq::Agent;

/// Events read from the outbox at once.
pub const PAGE_MAX: usize = 256;
/// Keys read at once when counting the events waiting.
pub const COUNT_PAGE_MAX: usize = 1_024;
/// How often the events waiting are counted.
pub const COUNT_EVERY: Duration = Duration::from_secs(1);
/// Delivered events deleted in one transaction.
pub const DELETE_BATCH_MAX: usize = 256;
/// Accounts whose events are delivered at once (each account's one after the other).
pub const DELIVERY_WORKERS: usize = 8;
/// How long a delivery may take, connection included.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait before retrying a failed delivery.
pub const RETRY_FIRST: Duration = Duration::from_millis(500);
/// How long an event is retried after it was written (24 hours), in ms.
pub const RETRY_FOR_MS: u64 = 24 * 3_600 * 1_000;
/// How often the outbox is looked at when there was nothing to deliver.
pub const IDLE_POLL: Duration = Duration::from_millis(100);
/// How often a receiver that stays down is reported in the log.
pub const DOWN_REPORT_EVERY: Duration = Duration::from_secs(60);
/// Most accounts whose backoff is remembered (past it, the memory is dropped: those accounts
/// are retried at once).
pub const BACKOFFS_MAX: usize = 100_000;

/// Retries of one account, or of the receiver as a whole.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    failures: u32,
    next: Instant,
}

impl Backoff {
    fn after_failure(prev: Option<Backoff>, now: Instant, max: Duration) -> Backoff {
        let failures = prev.map_or(0, |b| b.failures).saturating_add(1);
        let wait = RETRY_FIRST
            .saturating_mul(1u32 << (failures - 1).min(16))
            .min(max);
        Backoff {
            failures,
            next: now + wait,
        }
    }
}

/// How a run of one account's events ended early.
#[derive(Debug)]
enum Stop {
    /// The receiver as a whole failed (named): the pass ends.
    Receiver(String),
    /// The receiver refused this event with this status: the account waits.
    Refused(u16),
    /// Another run found the receiver failing, or the node stops: nothing is wrong with this
    /// account, but it goes no further in this pass.
    Cut,
}

/// One outbox record of a page, as read.
enum Row {
    /// An event of an account this node owns, rendered.
    Event {
        key: Vec<u8>,
        account: String,
        body: Vec<u8>,
    },
    /// An event of an account another node owns: not rendered, not delivered here.
    NotOwned { key: Vec<u8>, account: String },
    /// A record that names no event it can render.
    Corrupt { key: Vec<u8> },
}

impl Row {
    fn key(&self) -> &[u8] {
        match self {
            Row::Event { key, .. } | Row::NotOwned { key, .. } | Row::Corrupt { key } => key,
        }
    }
}

/// One account's events of a page, in order.
struct Run {
    account: String,
    events: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What a pass did.
#[derive(Default)]
struct Pass {
    delivered: u64,
    failed: bool,
    last_error: Option<String>,
}

/// One webhook's delivery loop.
pub struct Publisher {
    hook: OutboxHook,
    store: Store,
    keys: Keys,
    membership: Arc<Membership>,
    stats: Arc<HookStats>,
    gate: Arc<OutboxGate>,
    outbox_max: u64,
    retry_max: Duration,
    agent: Agent,
    accounts: HashMap<String, Backoff>,
    receiver: Option<Backoff>,
    down_since: Option<Instant>,
    reported: Option<Instant>,
}

/// Opens the gate of a publisher's webhook when its thread ends, however it ends: a stopped
/// publisher must not keep refusing payments.
struct OpenOnExit(Arc<OutboxGate>, String);

impl Drop for OpenOnExit {
    fn drop(&mut self) {
        self.0.set_full(&self.1, false);
    }
}

impl Publisher {
    /// A publisher of `hook`'s outbox; `outbox_max` is `limits.webhook_outbox_max`.
    pub fn new(
        hook: OutboxHook,
        store: Store,
        keys: Keys,
        membership: Arc<Membership>,
        stats: Arc<HookStats>,
        gate: Arc<OutboxGate>,
        outbox_max: u64,
    ) -> Self {
        let tls = TlsConfig::builder()
            .unversioned_rustls_crypto_provider(Arc::new(aws_lc_rs::default_provider()))
            .build();
        // A redirect would turn the POST into a GET without the event: a 3xx is a refusal.
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_global(Some(DELIVERY_TIMEOUT))
            .user_agent(concat!("walletd/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build()
            .into();
        let retry_max = Duration::from_millis(hook.config.retry_max_ms());
        Publisher {
            hook,
            store,
            keys,
            membership,
            stats,
            gate,
            outbox_max,
            retry_max,
            agent,
            accounts: HashMap::new(),
            receiver: None,
            down_since: None,
            reported: None,
        }
    }

    /// Delivers until `stop` is set (checked between deliveries).
    pub fn run(mut self, stop: Arc<AtomicBool>) {
        let _open = OpenOnExit(self.gate.clone(), self.hook.id.clone());
        let mut next_count = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next_count {
                self.count();
                next_count = now + COUNT_EVERY;
            }
            if let Some(b) = self.receiver.filter(|b| b.next > now) {
                std::thread::park_timeout(b.next.min(next_count) - now);
                continue;
            }
            let pass = match self.pass(&stop) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(webhook = %self.hook.id, error = %e, "cannot read the webhook outbox; trying again");
                    std::thread::park_timeout(RETRY_FIRST);
                    continue;
                }
            };
            self.after_pass(&pass);
            if pass.delivered == 0 {
                std::thread::park_timeout(IDLE_POLL);
            }
        }
    }

    /// Counts the events waiting for the accounts this node owns (up to the limit), and
    /// closes or opens the gate.
    fn count(&mut self) {
        let id = &self.hook.id;
        let (mut begin, end) = self.keys.outbox_range(id);
        let mut waiting = 0u64;
        while waiting < self.outbox_max {
            let page = match self
                .store
                .read(|txn| txn.get_range(&begin, &end, COUNT_PAGE_MAX))
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(webhook = %id, error = %e, "cannot count the webhook outbox; the gate stays as it was");
                    return;
                }
            };
            let full_page = page.len() == COUNT_PAGE_MAX;
            if let Some((last, _)) = page.last() {
                begin = last.clone();
                begin.push(0);
            }
            waiting += page
                .iter()
                .filter_map(|(k, _)| self.keys.outbox_row(id, k))
                .filter(|(account, _, _)| self.membership.owns(account))
                .count() as u64;
            if !full_page {
                break;
            }
        }
        self.stats.waiting.store(waiting, Ordering::Relaxed);
        let full = waiting >= self.outbox_max;
        if self.gate.set_full(id, full) {
            if full {
                tracing::error!(webhook = %id, url = %self.hook.config.url, waiting, limit = self.outbox_max,
                    "the webhook outbox is full: requests that move money out of or into this node's accounts are refused (503 overloaded) until its receiver takes events again");
            } else {
                tracing::info!(webhook = %id, waiting, "the webhook outbox is below its limit again: requests that move money are admitted");
            }
        }
    }

    /// Keeps the log up to date after a pass.
    fn after_pass(&mut self, pass: &Pass) {
        let id = &self.hook.id;
        let waiting = self.stats.waiting.load(Ordering::Relaxed);
        let now = Instant::now();
        match (pass.failed, self.down_since) {
            (true, None) => {
                self.down_since = Some(now);
                self.reported = Some(now);
                tracing::warn!(webhook = %id, url = %self.hook.config.url, error = ?pass.last_error, waiting,
                    "a webhook receiver is failing; its events wait in the outbox and are retried with backoff for 24 hours");
            }
            (true, Some(since)) if self.reported.is_none_or(|r| now - r >= DOWN_REPORT_EVERY) => {
                self.reported = Some(now);
                tracing::warn!(webhook = %id, url = %self.hook.config.url, error = ?pass.last_error, waiting,
                    down_for_s = (now - since).as_secs(), "a webhook receiver is still failing");
            }
            (false, Some(since)) if pass.delivered > 0 => {
                self.down_since = None;
                tracing::info!(webhook = %id, down_for_s = (now - since).as_secs(), "a webhook receiver takes events again");
            }
            _ => {}
        }
    }

    /// Whether `account`'s events wait in this pass.
    fn waits(&self, account: &str, held_back: &HashSet<String>, now: Instant) -> bool {
        held_back.contains(account) || self.accounts.get(account).is_some_and(|b| b.next > now)
    }

    /// One pass over the outbox (see the module's notes). Ends early when the receiver as a
    /// whole fails, or the node stops.
    fn pass(&mut self, stop: &AtomicBool) -> Result<Pass, StorageError> {
        let id = self.hook.id.clone();
        let (mut begin, end) = self.keys.outbox_range(&id);
        let mut pass = Pass::default();
        let mut held_back: HashSet<String> = HashSet::new();
        let now = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let page = self.read_page(&begin, &end)?;
            let full_page = page.len() == PAGE_MAX;
            let mut runs: Vec<Run> = Vec::new();
            let mut skipped_last = None;
            let mut corrupt: Vec<Vec<u8>> = Vec::new();
            for row in page {
                begin = row.key().to_vec();
                begin.push(0);
                let (key, account, body) = match row {
                    Row::Event { key, account, body } => (key, account, Some(body)),
                    Row::NotOwned { key, account } => (key, account, None),
                    Row::Corrupt { key } => {
                        tracing::error!(webhook = %id, key = ?key, "an outbox record names no event it can render; it is dropped");
                        corrupt.push(key);
                        continue;
                    }
                };
                let Some(body) = body.filter(|_| !self.waits(&account, &held_back, now)) else {
                    held_back.insert(account.clone());
                    skipped_last = Some(account);
                    continue;
                };
                skipped_last = None;
                match runs.last_mut() {
                    Some(r) if r.account == account => r.events.push((key, body)),
                    _ => runs.push(Run {
                        account,
                        events: vec![(key, body)],
                    }),
                }
            }
            // The rest of an account skipped at the page's end is skipped too: seek past it.
            if let Some(account) = skipped_last {
                begin = self.keys.outbox_account_end(&id, &account);
            }
            let results = self.deliver_runs(&runs, stop);
            let mut done: Vec<Vec<u8>> = corrupt;
            let mut receiver_failed = false;
            for (run, (delivered, stopped)) in runs.into_iter().zip(results) {
                pass.delivered += delivered as u64;
                self.stats
                    .delivered
                    .fetch_add(delivered as u64, Ordering::Relaxed);
                let mut events = run.events.into_iter();
                done.extend(events.by_ref().take(delivered).map(|(k, _)| k));
                let failed = match stopped {
                    None => {
                        self.accounts.remove(&run.account);
                        continue;
                    }
                    Some(Stop::Cut) => {
                        held_back.insert(run.account);
                        continue;
                    }
                    Some(f) => f,
                };
                // The run's account goes no further in this pass; its later events in the
                // next pages are skipped.
                held_back.insert(run.account.clone());
                let (key, body) = events.next().expect("a failure names its event");
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                pass.failed = true;
                if expired(&body) {
                    tracing::error!(webhook = %id, event = %event_id(&body), account = %run.account,
                        "a webhook event failed for 24 hours and is dropped");
                    self.stats.expired.fetch_add(1, Ordering::Relaxed);
                    done.push(key);
                }
                match failed {
                    Stop::Receiver(e) => {
                        receiver_failed = true;
                        pass.last_error = Some(e);
                    }
                    Stop::Refused(s) => {
                        if self.accounts.len() >= BACKOFFS_MAX {
                            self.accounts.clear();
                        }
                        let prev = self.accounts.get(&run.account).copied();
                        self.accounts.insert(
                            run.account,
                            Backoff::after_failure(prev, now, self.retry_max),
                        );
                        pass.last_error = Some(format!("status {s}"));
                    }
                    Stop::Cut => unreachable!("handled above"),
                }
            }
            for chunk in done.chunks(DELETE_BATCH_MAX) {
                self.delete(chunk)?;
            }
            if receiver_failed {
                self.receiver = Some(Backoff::after_failure(self.receiver, now, self.retry_max));
                return Ok(pass);
            }
            if !full_page {
                break;
            }
        }
        self.receiver = None;
        Ok(pass)
    }

    /// A page of the outbox from `begin`, read in one transaction; ownership is decided
    /// once here, and only the events of accounts this node owns are rendered.
    fn read_page(&self, begin: &[u8], end: &[u8]) -> Result<Vec<Row>, StorageError> {
        let id = &self.hook.id;
        self.store.read(|txn| {
            let rows = txn.get_range(begin, end, PAGE_MAX)?;
            let mut out = Vec::with_capacity(rows.len());
            for (key, v) in rows {
                let Some((account, _, _)) = self.keys.outbox_row(id, &key) else {
                    out.push(Row::Corrupt { key });
                    continue;
                };
                if !self.membership.owns(&account) {
                    out.push(Row::NotOwned { key, account });
                    continue;
                }
                out.push(match outbox::read(txn, &self.keys, id, &key, &v) {
                    Ok(body) => Row::Event { key, account, body },
                    Err(StorageError::Corrupt(_)) => Row::Corrupt { key },
                    Err(e) => return Err(e),
                });
            }
            Ok(out)
        })
    }

    /// Delivers each run's events in order, runs in parallel on up to [`DELIVERY_WORKERS`]
    /// threads; for each run, how many it delivered and why it stopped early, if it did. A
    /// receiver failing as a whole, or the node stopping, cuts every run at its next event.
    fn deliver_runs(&self, runs: &[Run], stop: &AtomicBool) -> Vec<(usize, Option<Stop>)> {
        let receiver_failed = AtomicBool::new(false);
        let next = AtomicUsize::new(0);
        let results: Vec<Mutex<(usize, Option<Stop>)>> =
            runs.iter().map(|_| Mutex::new((0, None))).collect();
        let workers = DELIVERY_WORKERS.min(runs.len());
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(run) = runs.get(i) else { return };
                    let mut out = results[i].lock().expect("delivery result lock");
                    for (_, body) in &run.events {
                        if receiver_failed.load(Ordering::Relaxed) || stop.load(Ordering::Relaxed) {
                            out.1 = Some(Stop::Cut);
                            break;
                        }
                        match self.deliver(body) {
                            Ok(()) => out.0 += 1,
                            Err(f) => {
                                if matches!(f, Stop::Receiver(_)) {
                                    receiver_failed.store(true, Ordering::Relaxed);
                                }
                                out.1 = Some(f);
                                break;
                            }
                        }
                    }
                });
            }
        });
        results
            .into_iter()
            .map(|m| m.into_inner().expect("delivery result lock"))
            .collect()
    }

    /// Deletes delivered (or dropped) events; a crash before this delivers them again, with
    /// the same ids.
    fn delete(&self, done: &[Vec<u8>]) -> Result<(), StorageError> {
        self.store.run(|txn| {
            for k in done {
                txn.clear(k)?;
            }
            Ok(())
        })
    }

    /// Posts one event.
    fn deliver(&self, body: &[u8]) -> Result<(), Stop> {
        let signature = sign::signature(&self.hook.config.secret, unix_ms(), body);
        let res = self
            .agent
            .post(&self.hook.config.url)
            .header("Content-Type", "application/json")
            .header(sign::HEADER, &signature)
            .send(body);
        match res {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => {
                let s = r.status().as_u16();
                if s >= 500 || s == 429 || s == 408 {
                    Err(Stop::Receiver(format!("status {s}")))
                } else {
                    Err(Stop::Refused(s))
                }
            }
            Err(e) => Err(Stop::Receiver(e.to_string())),
        }
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The parts of an event the publisher reads.
#[derive(serde::Deserialize)]
struct Head {
    id: String,
    at: u64,
}

fn head(body: &[u8]) -> Option<Head> {
    serde_json::from_slice(body).ok()
}

/// Whether an event was written more than [`RETRY_FOR_MS`] ago.
fn expired(body: &[u8]) -> bool {
    head(body).is_some_and(|h| unix_ms().saturating_sub(h.at) > RETRY_FOR_MS)
}

fn event_id(body: &[u8]) -> String {
    head(body).map_or_else(|| "(undecodable)".into(), |h| h.id)
}
