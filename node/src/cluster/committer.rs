//! The node's committer task: the runtime of the sans-IO [`Committer`].
//!
//! Every account's host hands its batches here ([`CommitterHandle::commit`]) and the result
//! goes back to the account (its driver has at most one batch in flight). The task owns the committer:
//! it takes every submission that has arrived, starts each group the committer allows on a
//! blocking thread (`exec::commit_group`: one storage transaction, one `fsync`), sleeps until
//! the committer's wake-up time when it has one, and sends each batch's result back to its
//! account when its group ends. Every decision (when a group starts, what it holds) is the
//! committer's, which the simulator runs too.

use crate::ledger::committer::{Committer, Group, GroupLimits};
use crate::ledger::driver::Batch;
use crate::ledger::exec::{self, Committed};
use crate::metrics::Metrics;
use crate::storage::keys::Keys;
use crate::storage::{StorageError, Store};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// Where a batch's result goes.
type Reply = oneshot::Sender<(Batch, Committed)>;

/// A batch handed to the committer.
struct Submission {
    batch: Batch,
    reply: Reply,
}

/// The hosts' way to the node's committer task.
#[derive(Clone)]
pub struct CommitterHandle {
    tx: mpsc::UnboundedSender<Submission>,
}

impl CommitterHandle {
    /// Starts the committer task of a node (on the current tokio runtime).
    pub fn start(
        store: Store,
        keys: Keys,
        node: String,
        limits: GroupLimits,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Task {
            committer: Committer::new(limits),
            store,
            keys,
            node,
            metrics,
            running: JoinSet::new(),
        };
        tokio::spawn(task.run(rx));
        CommitterHandle { tx }
    }

    /// Commits `batch` in the node's next group; returns it with its result, or `None` when
    /// the runtime shuts down with the batch's group in flight (its outcome is then unknown,
    /// and nobody is left to tell). The queue is bounded by the committer
    /// ([`GroupLimits::queue`]) and by the accounts themselves (one batch each), so the channel
    /// needs no bound of its own.
    pub async fn commit(&self, batch: Batch) -> Option<(Batch, Committed)> {
        let (reply, rx) = oneshot::channel();
        let gone = |batch| {
            let e = StorageError::Unavailable("the node's committer stopped".into());
            (batch, Err(e))
        };
        if let Err(mpsc::error::SendError(s)) = self.tx.send(Submission { batch, reply }) {
            return Some(gone(s.batch));
        }
        // The task answers every batch it took; it drops one only when the runtime shuts
        // down.
        rx.await.ok()
    }
}

struct Task {
    committer: Committer<Reply>,
    store: Store,
    keys: Keys,
    node: String,
    metrics: Arc<Metrics>,
    running: JoinSet<(Group<Reply>, Vec<Committed>)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Submission>) {
        let mut open = true;
        loop {
            while let Ok(s) = rx.try_recv() {
                self.submit(s);
            }
            let now = now_ms();
            while let Some(group) = self.committer.next_group(now) {
                self.start(group);
            }
            if !open && self.running.is_empty() && self.committer.queued() == 0 {
                return;
            }
            let wake = self
                .committer
                .wake_at()
                .map(|at| Duration::from_millis(at.saturating_sub(now)));
            tokio::select! {
                s = rx.recv(), if open => match s {
                    Some(s) => self.submit(s),
                    None => open = false,
                },
                Some(done) = self.running.join_next(), if !self.running.is_empty() => {
                    // A group's thread never panics (see `start`); an error here is the
                    // runtime shutting down, and nobody is left to answer.
                    let Ok((group, results)) = done else {
                        return;
                    };
                    for (reply, batch, result) in self.committer.finished(group, results) {
                        let _ = reply.send((batch, result)); // its host stopped meanwhile
                    }
                }
                () = tokio::time::sleep(wake.unwrap_or_default()), if wake.is_some() => {}
            }
        }
    }

    fn submit(&mut self, s: Submission) {
        if let Err(refused) = self.committer.submit(s.reply, s.batch, now_ms()) {
            let (reply, batch) = *refused;
            let e = StorageError::Unavailable("the node's commit queue is full".into());
            let _ = reply.send((batch, Err(e)));
        }
    }

    fn start(&mut self, group: Group<Reply>) {
        self.metrics.group_batches.observe(group.len() as f64);
        let (store, keys, node) = (self.store.clone(), self.keys.clone(), self.node.clone());
        let metrics = self.metrics.clone();
        self.running.spawn_blocking(move || {
            let started = std::time::Instant::now();
            // A panic in a body is a bug, but it must not take the node's every write down
            // with it: the group's batches are answered "outcome unknown" (their drivers
            // reload) and the committer goes on.
            let run = || exec::commit_group(&store, &keys, &node, &group.batches(), now_ms());
            let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                .unwrap_or_else(|_| {
                    tracing::error!(batches = group.len(), "a group commit panicked");
                    (0..group.len())
                        .map(|_| Err(StorageError::CommitUnknown))
                        .collect()
                });
            metrics
                .group_commit_latency
                .observe(started.elapsed().as_secs_f64());
            (group, results)
        });
    }
}
