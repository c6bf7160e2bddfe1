//! The committer: group commit of a node's batches, sans-IO.
//!
//! Every account driver commits its queued inputs as one batch ([`super::driver::Work::Commit`]);
//! without grouping, each batch is its own storage transaction and pays its own `fsync`, so a
//! node commits only as many batches a second as its disk syncs. The committer takes the
//! batches of every driver of the node and commits many of them in one transaction
//! ([`super::exec::commit_group`]): one commit, one `fsync`, for all of them.
//!
//! The policy:
//! - **No wait when idle.** A batch submitted while no group is in flight starts a group at
//!   once (a group of one): grouping never adds latency to a quiet node.
//! - **Groups form while a commit runs.** Batches submitted while a group is in flight wait,
//!   in arrival order, and the next group takes them when a commit slot frees up, up to
//!   [`GroupLimits::batches`] batches and [`GroupLimits::inputs`] inputs (a batch larger than
//!   the input cap still goes alone). So the busier the node, the larger its groups, and the
//!   fewer syncs per transfer.
//! - **Several groups in flight** ([`GroupLimits::in_flight`], for a store that commits
//!   concurrently, such as FoundationDB; the embedded store has one writer, so 1). While one
//!   group is in flight and a slot is free, the next group starts when it is full or when its
//!   oldest batch has waited [`GroupLimits::age_ms`]; [`Committer::wake_at`] says when.
//! - **Bounded.** At most [`GroupLimits::queue`] batches wait; past it [`Committer::submit`]
//!   hands the batch back and the runtime reports it not committed (`Unavailable`), which the
//!   driver retries after a backoff: nothing ran.
//! - **Per-account order** is the driver's: it has at most one batch in flight, so no
//!   activation has two batches in the committer, and two groups in flight never share one.
//!   The committer asserts it. (A second activation of the same account may have a batch
//!   beside the first one's, if the first actor was stopped while its batch waited; the
//!   lease fences the older one.)
//!
//! What a group's commit means for each batch is [`super::exec::commit_group`]'s: a batch that
//! fails on its own (fenced, corrupt) fails alone; an error of the whole transaction retries
//! the group, every batch keeping its own record of earlier attempts. [`Committer::finished`]
//! hands each batch back with its result, for the runtime to give to its driver's
//! `committed`.
//!
//! Left out: the committer does not order groups by account or size (arrival order is fair
//! and keeps the oldest batch first), and it does not estimate bytes: the input cap keeps a
//! group inside the transaction size limit. A group that fails as a whole for its size or
//! its duration anyway (`LimitExceeded`, `TooOld`) is split: its batches go back to the
//! queue's front and may only join groups of half as many, so a batch too large on its own
//! ends up alone and gets its error while the others commit.

use super::driver::Batch;
use super::exec::{Committed, GroupBatch};
use crate::storage::StorageError;
use protocol::AccountId;
use std::collections::{BTreeSet, VecDeque};

/// Most batches in one group.
pub const GROUP_BATCHES_MAX: usize = 1_024;
/// Most inputs in one group (a batch larger than this still goes, alone). An input writes at
/// most about 8 KB (a transfer whose 256-byte reference is all escaped characters, stored
/// four times, with the rest of its rows), so a full group stays under FoundationDB's 10 MB
/// transaction limit, which every backend enforces.
pub const GROUP_INPUTS_MAX: usize = 1_024;
/// Longest the oldest waiting batch waits for a free slot to fill its group, when a group is
/// already in flight and another may start.
pub const GROUP_AGE_MAX_MS: u64 = 2;
/// Groups in flight at once on the embedded store (one writer).
pub const GROUPS_IN_FLIGHT_MAX: usize = 1;
/// Groups in flight at once on FoundationDB (which commits concurrently).
pub const GROUPS_IN_FLIGHT_FDB: usize = 4;
/// Most batches waiting for a group.
pub const COMMIT_QUEUE_MAX: usize = 65_536;

/// The committer's named limits; the node runs [`GroupLimits::default`], the simulator draws
/// small ones so every cap is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupLimits {
    /// Most batches in a group ([`GROUP_BATCHES_MAX`]).
    pub batches: usize,
    /// Most inputs in a group ([`GROUP_INPUTS_MAX`]).
    pub inputs: usize,
    /// Longest wait to fill a group while another is in flight ([`GROUP_AGE_MAX_MS`]).
    pub age_ms: u64,
    /// Groups in flight at once ([`GROUPS_IN_FLIGHT_MAX`]).
    pub in_flight: usize,
    /// Batches waiting ([`COMMIT_QUEUE_MAX`]).
    pub queue: usize,
}

impl Default for GroupLimits {
    fn default() -> Self {
        GroupLimits {
            batches: GROUP_BATCHES_MAX,
            inputs: GROUP_INPUTS_MAX,
            age_ms: GROUP_AGE_MAX_MS,
            in_flight: GROUPS_IN_FLIGHT_MAX,
            queue: COMMIT_QUEUE_MAX,
        }
    }
}

/// A batch waiting for its group, with whoever submitted it.
#[derive(Debug)]
struct Waiting<T> {
    ticket: T,
    batch: Batch,
    since_ms: u64,
    /// Most batches of the group it may join: [`GroupLimits::batches`], halved each time a
    /// group of it failed as a whole for its size or duration.
    cap: usize,
}

/// Batches to commit in one transaction, each with its submitter's ticket.
#[derive(Debug)]
pub struct Group<T> {
    /// Numbers the groups of one committer, from 1.
    pub id: u64,
    members: Vec<(T, Batch)>,
}

impl<T> Group<T> {
    /// The batches, in order, as `exec::commit_group` takes them.
    pub fn batches(&self) -> Vec<GroupBatch<'_>> {
        self.members
            .iter()
            .map(|(_, b)| (&b.act, b.inputs.as_slice()))
            .collect()
    }

    /// The tickets and batches, in order.
    pub fn members(&self) -> impl Iterator<Item = (&T, &Batch)> {
        self.members.iter().map(|(t, b)| (t, b))
    }

    /// Number of batches.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True for a group without batches (never formed).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Number of inputs over all batches.
    pub fn inputs(&self) -> usize {
        self.members.iter().map(|(_, b)| b.inputs.len()).sum()
    }
}

/// Forms groups from the batches of a node's drivers (see the module doc).
#[derive(Debug)]
pub struct Committer<T> {
    limits: GroupLimits,
    queue: VecDeque<Waiting<T>>,
    /// Activations (account, nonce) with a batch waiting or in flight: a driver never has
    /// two. (Two activations of one account may each have one: a newer activation fences
    /// the older one's batch.)
    busy: BTreeSet<(AccountId, u64)>,
    in_flight: usize,
    groups: u64,
}

impl<T> Committer<T> {
    /// A committer with `limits` (each at least 1, but the age).
    pub fn new(limits: GroupLimits) -> Self {
        assert!(
            limits.batches > 0 && limits.inputs > 0 && limits.in_flight > 0 && limits.queue > 0,
            "every limit admits at least one: {limits:?}"
        );
        Committer {
            limits,
            queue: VecDeque::new(),
            busy: BTreeSet::new(),
            in_flight: 0,
            groups: 0,
        }
    }

    /// The limits it runs with.
    pub fn limits(&self) -> GroupLimits {
        self.limits
    }

    /// Batches waiting for a group.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Groups in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Queues `batch`, submitted at `now_ms` by `ticket`'s driver; hands it back when the
    /// queue is full (nothing ran: the runtime reports it not committed).
    pub fn submit(&mut self, ticket: T, batch: Batch, now_ms: u64) -> Result<(), Box<(T, Batch)>> {
        if self.queue.len() >= self.limits.queue {
            return Err(Box::new((ticket, batch)));
        }
        let id = batch.act.core.id().clone();
        assert!(
            self.busy.insert((id.clone(), batch.act.nonce)),
            "{id}: a second batch of one activation while one is in the committer (per-account order)"
        );
        self.queue.push_back(Waiting {
            ticket,
            batch,
            since_ms: now_ms,
            cap: self.limits.batches,
        });
        Ok(())
    }

    /// The next group to commit now, if one may start: at once when none is in flight;
    /// while others are, when a slot is free and the group is full or its oldest batch
    /// waited [`GroupLimits::age_ms`].
    pub fn next_group(&mut self, now_ms: u64) -> Option<Group<T>> {
        let oldest = self.queue.front()?;
        if self.in_flight >= self.limits.in_flight {
            return None;
        }
        if self.in_flight > 0
            && !self.full()
            && now_ms < oldest.since_ms.saturating_add(self.limits.age_ms)
        {
            return None;
        }
        let mut members = Vec::new();
        let mut inputs = 0;
        let mut cap = self.limits.batches;
        while let Some(next) = self.queue.front() {
            let n = next.batch.inputs.len();
            let next_cap = cap.min(next.cap);
            if members.len() >= next_cap || (!members.is_empty() && inputs + n > self.limits.inputs)
            {
                break;
            }
            cap = next_cap;
            inputs += n;
            let w = self.queue.pop_front().expect("a front");
            members.push((w.ticket, w.batch));
        }
        self.in_flight += 1;
        self.groups += 1;
        Some(Group {
            id: self.groups,
            members,
        })
    }

    /// When [`Committer::next_group`] may return a group without anything else happening
    /// (the oldest batch reaches the age cap while a slot is free), if ever.
    pub fn wake_at(&self) -> Option<u64> {
        let oldest = self.queue.front()?;
        (self.in_flight > 0 && self.in_flight < self.limits.in_flight)
            .then(|| oldest.since_ms.saturating_add(self.limits.age_ms))
    }

    /// The group's commit ended with `results` (one per batch, in order, from
    /// `exec::commit_group`): each ticket with its batch and result, but for the batches that
    /// failed together for the group's size or duration, which wait again (see the module
    /// doc).
    pub fn finished(
        &mut self,
        group: Group<T>,
        results: Vec<Committed>,
    ) -> Vec<(T, Batch, Committed)> {
        assert_eq!(
            group.members.len(),
            results.len(),
            "group {}: one result per batch",
            group.id
        );
        assert!(
            self.in_flight > 0,
            "group {} finished while none was in flight",
            group.id
        );
        self.in_flight -= 1;
        // Batches that failed together for the group's size or duration (a group too large
        // for the transaction limits) go back to the queue's front, to run in groups of at
        // most half as many: a batch too large on its own ends up alone and gets its error,
        // and the others commit.
        let too_big = |r: &Committed| {
            matches!(
                r,
                Err(StorageError::LimitExceeded(_) | StorageError::TooOld)
            )
        };
        let together = results.iter().filter(|r| too_big(r)).count();
        let mut answered = Vec::with_capacity(results.len());
        let mut again = Vec::new();
        for ((ticket, batch), result) in group.members.into_iter().zip(results) {
            if together > 1 && too_big(&result) {
                again.push(Waiting {
                    ticket,
                    batch,
                    since_ms: 0,
                    cap: together / 2,
                });
            } else {
                self.busy
                    .remove(&(batch.act.core.id().clone(), batch.act.nonce));
                answered.push((ticket, batch, result));
            }
        }
        for w in again.into_iter().rev() {
            self.queue.push_front(w);
        }
        answered
    }

    /// Every waiting batch, handed back (the node stops; nothing of them ran).
    pub fn drain(&mut self) -> Vec<(T, Batch)> {
        self.queue
            .drain(..)
            .map(|w| {
                self.busy
                    .remove(&(w.batch.act.core.id().clone(), w.batch.act.nonce));
                (w.ticket, w.batch)
            })
            .collect()
    }

    fn full(&self) -> bool {
        if self.queue.len() >= self.limits.batches {
            return true;
        }
        let mut inputs = 0;
        for w in &self.queue {
            inputs += w.batch.inputs.len();
            if inputs >= self.limits.inputs {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests;
