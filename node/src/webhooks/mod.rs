//! Webhooks: delivering the outbox's events to their receivers (API.md "Webhooks").
//!
//! The ledger writes each event in the same transaction as its change (`ledger::outbox`),
//! under the webhook's outbox and the account's id. Each node runs one [`publisher`] thread
//! per `[[webhooks]]` entry; it delivers the events of the accounts this node owns on the
//! ring, in key order, so each account's (each shard's) events arrive in `seq` order, and
//! deletes an event once its receiver answered 2xx. Delivery is at least once: a node killed
//! between the answer and the delete, or an account changing owner during a delivery, sends
//! an event again, with the same `id`. Each delivery is signed ([`sign`]).
//!
//! The outbox is bounded: a publisher counts the events waiting for the accounts this node
//! owns (every second, up to the limit), shows the count (`wallet_webhook_outbox_events`),
//! and at `limits.webhook_outbox_max` closes the node's [`OutboxGate`]: the node then refuses
//! the commands that move money of the accounts it owns (deposits, withdrawals, transfers,
//! holds, captures, disbursements; wherever the request entered the cluster) with 503
//! `overloaded` until the receiver catches up. Changes already under way (a saga's later
//! steps) still write their events, so the count can pass the limit by what was in flight.
//! A receiver that fails is logged when it starts failing, every minute while it does, and
//! when it recovers.
//!
//! Left out: batching events into one request, a dead-letter store for events dropped after
//! 24 hours (they are logged and counted), and trust of a private CA for `https://`
//! receivers (the public web roots only). Every node must list the same webhooks: a node
//! writes outbox records for the webhooks of its own config.

pub mod publisher;
pub mod sign;

use crate::cluster::membership::Membership;
use crate::storage::keys::Keys;
use crate::storage::Store;
use protocol::{ApiError, ErrorCode};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Counts of one webhook's deliveries on this node.
#[derive(Debug, Default)]
pub struct HookStats {
    /// Events waiting in its outbox for the accounts this node owns (at the last pass).
    pub waiting: AtomicU64,
    /// Events delivered (2xx).
    pub delivered: AtomicU64,
    /// Attempts that failed.
    pub failed: AtomicU64,
    /// Events dropped after failing for 24 hours.
    pub expired: AtomicU64,
}

/// Which webhooks' outboxes are at their limit on this node: while any is, the node refuses
/// the commands that move money of its accounts.
#[derive(Debug, Default)]
pub struct OutboxGate {
    /// How many are full: the fast path of every command reads only this.
    count: AtomicUsize,
    full: Mutex<BTreeSet<String>>,
}

impl OutboxGate {
    /// Marks `hook`'s outbox full or not; true when that changed.
    pub fn set_full(&self, hook: &str, full: bool) -> bool {
        let mut g = self.full.lock().expect("outbox gate lock");
        let changed = if full {
            g.insert(hook.to_owned())
        } else {
            g.remove(hook)
        };
        self.count.store(g.len(), Ordering::Release);
        changed
    }

    /// The webhook whose outbox is full, if any.
    pub fn full(&self) -> Option<String> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.full.lock().expect("outbox gate lock").first().cloned()
    }

    /// The refusal of a command that moves money while an outbox is full (`overloaded`:
    /// nothing ran), if one is.
    pub fn refusal(&self) -> Option<ApiError> {
        let hook = self.full()?;
        Some(ApiError::new(
            ErrorCode::Overloaded,
            format!("the outbox of webhook {hook} is full (limits.webhook_outbox_max) on the node that owns this account: its receiver is not taking events; nothing ran: retry later with the same idempotency key"),
        ))
    }
}

/// The node's publishers: one thread per webhook.
pub struct Publishers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    stats: Vec<(String, Arc<HookStats>)>,
}

impl Publishers {
    /// Starts a publisher for every webhook `keys` has an outbox for (none: no thread).
    pub fn start(
        store: &Store,
        keys: &Keys,
        membership: &Arc<Membership>,
        gate: &Arc<OutboxGate>,
        outbox_max: u64,
    ) -> Publishers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut stats = Vec::new();
        for hook in keys.webhooks() {
            let s = Arc::new(HookStats::default());
            stats.push((hook.id.clone(), s.clone()));
            let p = publisher::Publisher::new(
                hook.clone(),
                store.clone(),
                keys.clone(),
                membership.clone(),
                s,
                gate.clone(),
                outbox_max,
            );
            let stop = stop.clone();
            let t = std::thread::Builder::new()
                .name(format!("webhook-{}", hook.id))
                .spawn(move || p.run(stop))
                .expect("a thread starts");
            threads.push(t);
        }
        if !keys.webhooks().is_empty() {
            let ids: Vec<&str> = keys.webhooks().iter().map(|h| h.id.as_str()).collect();
            tracing::info!(webhooks = ?ids, "webhook publishers started");
        }
        Publishers {
            stop,
            threads,
            stats,
        }
    }

    /// Each webhook's id and counts.
    pub fn stats(&self) -> &[(String, Arc<HookStats>)] {
        &self.stats
    }

    /// Stops every publisher and waits for it (the deliveries in flight end, at most one
    /// delivery's timeout); what was not delivered stays in the outbox.
    pub fn stop(mut self) {
        self.signal_stop();
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
    }

    fn signal_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in &self.threads {
            t.thread().unpark();
        }
    }
}

// A node dropped without its shutdown still stops its publishers (without waiting).
impl Drop for Publishers {
    fn drop(&mut self) {
        self.signal_stop();
    }
}
