//! One webhook's publisher: a thread that delivers the events of its outbox for the accounts
//! this node owns, in key order (so in `seq` order per account), and deletes each once the
//! receiver answered 2xx.
//!
//! A pass reads the outbox in pages of [`PAGE_MAX`] and, account by account, posts each event
//! in turn. A receiver that cannot be reached (connection refused, timeout) ends the pass:
//! the next one starts after the hook's backoff. A receiver that answers an error status for
//! an event holds back that account's later events (their order must hold) with the
//! account's own backoff, and the pass goes on with the other accounts. Backoffs double from
//! [`RETRY_FIRST`] to [`RETRY_MAX`]; an event still failing [`RETRY_FOR_MS`] after it was
//! written is dropped, with an error in the log naming it.

use super::sign;
use super::{HookStats, OutboxGate};
use crate::cluster::membership::Membership;
use crate::storage::keys::{Keys, OutboxHook};
use crate::storage::{StorageError, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_rustls::rustls::crypto::aws_lc_rs;
use ureq::tls::TlsConfig;
use ureq::Agent;

/// Events read from the outbox at once.
pub const PAGE_MAX: usize = 256;
/// Delivered events deleted in one transaction.
pub const DELETE_BATCH_MAX: usize = 64;
/// How long a delivery may take, connection included.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait before retrying a failed delivery.
pub const RETRY_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between two attempts.
pub const RETRY_MAX: Duration = Duration::from_secs(300);
/// How long an event is retried after it was written (24 hours), in ms.
pub const RETRY_FOR_MS: u64 = 24 * 3_600 * 1_000;
/// How often the outbox is looked at when there was nothing to deliver.
pub const IDLE_POLL: Duration = Duration::from_millis(100);
/// How often a receiver that stays down is reported in the log.
pub const DOWN_REPORT_EVERY: Duration = Duration::from_secs(60);
/// Most accounts whose backoff is remembered (past it, the oldest memory is dropped: those
/// accounts are retried at once).
pub const BACKOFFS_MAX: usize = 100_000;

/// Retries of one account, or of the receiver as a whole.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    failures: u32,
    next: Instant,
}

impl Backoff {
    fn after_failure(prev: Option<Backoff>, now: Instant) -> Backoff {
        let failures = prev.map_or(0, |b| b.failures).saturating_add(1);
        let wait = RETRY_FIRST
            .saturating_mul(1u32 << (failures - 1).min(16))
            .min(RETRY_MAX);
        Backoff {
            failures,
            next: now + wait,
        }
    }
}

/// Why a delivery failed.
enum Failure {
    /// The receiver could not be reached: the whole pass stops.
    Unreachable(String),
    /// The receiver answered this status: the account waits, others go on.
    Status(u16),
}

/// What a pass did.
#[derive(Default)]
struct Pass {
    delivered: u64,
    waiting: u64,
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
    agent: Agent,
    accounts: HashMap<String, Backoff>,
    receiver: Option<Backoff>,
    down_since: Option<Instant>,
    reported: Option<Instant>,
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
        let agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(DELIVERY_TIMEOUT))
            .user_agent(concat!("walletd/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build()
            .into();
        Publisher {
            hook,
            store,
            keys,
            membership,
            stats,
            gate,
            outbox_max,
            agent,
            accounts: HashMap::new(),
            receiver: None,
            down_since: None,
            reported: None,
        }
    }

    /// Delivers until `stop` is set (checked between deliveries).
    pub fn run(mut self, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if let Some(b) = self.receiver.filter(|b| b.next > now) {
                std::thread::park_timeout(b.next - now);
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

    /// Keeps the gauge, the gate and the log up to date after a pass.
    fn after_pass(&mut self, pass: &Pass) {
        let id = &self.hook.id;
        self.stats.waiting.store(pass.waiting, Ordering::Relaxed);
        let full = pass.waiting >= self.outbox_max;
        if self.gate.set_full(id, full) {
            if full {
                tracing::error!(webhook = %id, url = %self.hook.config.url, waiting = pass.waiting, limit = self.outbox_max,
                    "the webhook outbox is full: requests that move money are refused (503 overloaded) until its receiver takes events again");
            } else {
                tracing::info!(webhook = %id, waiting = pass.waiting, "the webhook outbox is below its limit again: requests that move money are admitted");
            }
        }
        let now = Instant::now();
        match (pass.failed, self.down_since) {
            (true, None) => {
                self.down_since = Some(now);
                self.reported = Some(now);
                tracing::warn!(webhook = %id, url = %self.hook.config.url, error = ?pass.last_error, waiting = pass.waiting,
                    "a webhook receiver is failing; its events wait in the outbox and are retried with backoff for 24 hours");
            }
            (true, Some(since)) if self.reported.is_none_or(|r| now - r >= DOWN_REPORT_EVERY) => {
                self.reported = Some(now);
                tracing::warn!(webhook = %id, url = %self.hook.config.url, error = ?pass.last_error, waiting = pass.waiting,
                    down_for_s = (now - since).as_secs(), "a webhook receiver is still failing");
            }
            (false, Some(since)) if pass.delivered > 0 => {
                self.down_since = None;
                tracing::info!(webhook = %id, down_for_s = (now - since).as_secs(), "a webhook receiver takes events again");
            }
            _ => {}
        }
    }

    /// One pass over the outbox.
    fn pass(&mut self, stop: &AtomicBool) -> Result<Pass, StorageError> {
        let id = self.hook.id.clone();
        let (mut begin, end) = self.keys.outbox_range(&id);
        let mut pass = Pass::default();
        let mut done: Vec<Vec<u8>> = Vec::new();
        let mut held_back: Option<String> = None;
        loop {
            let page = self
                .store
                .read(|txn| txn.get_range(&begin, &end, PAGE_MAX))?;
            let full_page = page.len() == PAGE_MAX;
            if let Some((last, _)) = page.last() {
                begin = last.clone();
                begin.push(0);
            }
            for (key, body) in page {
                let Some((account, _seq)) = self.keys.outbox_row(&id, &key) else {
                    tracing::error!(webhook = %id, "an outbox key does not decode; it is skipped");
                    continue;
                };
                if !self.membership.owns(&account) {
                    continue;
                }
                pass.waiting += 1;
                let now = Instant::now();
                let stopped = stop.load(Ordering::Relaxed);
                if stopped
                    || pass.failed && self.receiver.is_some_and(|b| b.next > now)
                    || held_back.as_deref() == Some(account.as_str())
                    || self.accounts.get(&account).is_some_and(|b| b.next > now)
                {
                    held_back = Some(account);
                    continue;
                }
                match self.deliver(&body) {
                    Ok(()) => {
                        self.accounts.remove(&account);
                        self.receiver = None;
                        self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                        pass.delivered += 1;
                        done.push(key);
                    }
                    Err(f) => {
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        pass.failed = true;
                        if expired(&body) {
                            tracing::error!(webhook = %id, event = %event_id(&body), account = %account,
                                "a webhook event failed for 24 hours and is dropped");
                            self.stats.expired.fetch_add(1, Ordering::Relaxed);
                            done.push(key);
                            continue;
                        }
                        held_back = Some(account.clone());
                        match f {
                            Failure::Unreachable(e) => {
                                self.receiver = Some(Backoff::after_failure(self.receiver, now));
                                pass.last_error = Some(e);
                            }
                            Failure::Status(s) => {
                                if self.accounts.len() >= BACKOFFS_MAX {
                                    self.accounts.clear();
                                }
                                let prev = self.accounts.get(&account).copied();
                                self.accounts
                                    .insert(account, Backoff::after_failure(prev, now));
                                pass.last_error = Some(format!("status {s}"));
                            }
                        }
                    }
                }
                if done.len() >= DELETE_BATCH_MAX {
                    self.delete(&mut done)?;
                }
            }
            if !full_page {
                break;
            }
        }
        self.delete(&mut done)?;
        pass.waiting -= pass.delivered.min(pass.waiting);
        Ok(pass)
    }

    /// Deletes delivered (or dropped) events; a crash before this delivers them again, with
    /// the same ids.
    fn delete(&self, done: &mut Vec<Vec<u8>>) -> Result<(), StorageError> {
        if done.is_empty() {
            return Ok(());
        }
        self.store.run(|txn| {
            for k in done.iter() {
                txn.clear(k)?;
            }
            Ok(())
        })?;
        done.clear();
        Ok(())
    }

    /// Posts one event.
    fn deliver(&self, body: &[u8]) -> Result<(), Failure> {
        let signature = sign::signature(&self.hook.config.secret, unix_ms(), body);
        let res = self
            .agent
            .post(&self.hook.config.url)
            .header("Content-Type", "application/json")
            .header(sign::HEADER, &signature)
            .send(body);
        match res {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(Failure::Status(r.status().as_u16())),
            Err(e) => Err(Failure::Unreachable(e.to_string())),
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
