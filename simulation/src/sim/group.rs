//! Each node's committer: the node crate's own [`Committer`] driven by events.
//!
//! A driver's batch goes to its node's committer instead of straight to storage. The
//! committer's decisions (when a group starts, what it holds, how many are in flight) are the
//! node's; this file only carries them out: a group runs against the simulated store at once
//! (its commit point, one transaction for every batch of the group, with every batch's
//! activation named as a writer, so the store's faults hit the group as a whole: a conflict,
//! an unknown result committed or not, an outage), and its results reach the drivers after
//! the group's latency ([`Event::GroupDone`]); only then does its slot free up. A crash loses
//! the committer's queue and the results of its groups in flight, as it loses the actors.
//! Each batch is checked as it was when it committed alone: its lease held, its mixed
//! statuses marked, its failure counted.

use super::runtime::WorkResult;
use super::*;
use node::ledger::committer::{Committer, Group};
use node::ledger::driver::Batch;
use node::ledger::exec::Committed;

/// Who submitted a batch: the account and its actor's incarnation.
pub(super) type Ticket = (AccountId, u64);

/// A node's committer and the groups it has in flight.
pub(super) struct NodeCommitter {
    pub committer: Committer<Ticket>,
    /// Groups committed whose results have not reached their drivers yet.
    pub in_flight: BTreeMap<u64, (Group<Ticket>, Vec<Committed>)>,
    /// The wake-up scheduled, if any (one at a time).
    pub wake: Option<u64>,
}

impl NodeCommitter {
    pub fn new(opts: &Options) -> Self {
        NodeCommitter {
            committer: Committer::new(opts.group),
            in_flight: BTreeMap::new(),
            wake: None,
        }
    }
}

impl Sim {
    /// Hands a driver's batch to its node's committer.
    pub(super) fn submit_batch(
        &mut self,
        node: usize,
        account: &AccountId,
        inc: u64,
        batch: Batch,
    ) {
        let now = self.wall();
        let ticket = (account.clone(), inc);
        if let Err(refused) = self.nodes[node].group.committer.submit(ticket, batch, now) {
            let (_, batch) = *refused;
            // Nothing ran: the driver retries after a backoff.
            self.stats.commit_queue_full += 1;
            trace!(self, "n{} {account}: commit queue full", node + 1);
            let r = Err(StorageError::Unavailable(
                "the node's commit queue is full".into(),
            ));
            let a = self.actor_mut(node, account, inc).expect("present");
            a.done = Some(WorkResult::Committed(batch, r));
            self.at(
                0,
                Event::Actor {
                    node,
                    account: account.clone(),
                    inc,
                    ev: ActorEvent::WorkDone,
                },
            );
            return;
        }
        self.pump_committer(node);
    }

    /// Starts every group the committer allows now, and asks to be woken when one may start
    /// by time alone.
    pub(super) fn pump_committer(&mut self, node: usize) {
        let now = self.wall();
        while let Some(group) = self.nodes[node].group.committer.next_group(now) {
            self.run_group(node, group);
        }
        let at = self.nodes[node].group.committer.wake_at();
        if let Some(when) = at.filter(|_| at != self.nodes[node].group.wake) {
            self.nodes[node].group.wake = at;
            let life = self.nodes[node].life;
            self.at(
                when.saturating_sub(now),
                Event::CommitterWake { node, life },
            );
        }
    }

    /// Commits a group now and delivers its results after its latency.
    fn run_group(&mut self, node: usize, group: Group<Ticket>) {
        let node_id = self.nodes[node].id.clone();
        let wall = self.wall();
        let writers: Vec<Writer> = group
            .members()
            .map(|((account, _), b)| Writer {
                node: node_id.clone(),
                account: account.as_str().to_owned(),
                nonce: b.act.nonce,
                epoch: b.act.epoch(),
                activating: false,
            })
            .collect();
        let (results, lat) = self.storage(writers, |s, k| {
            exec::commit_group(s, k, &node_id, &group.batches(), wall)
        });
        self.stats.groups += 1;
        self.stats.grouped_batches += group.len() as u64;
        if results.iter().any(Result::is_ok) {
            self.stats.fenced_in_group += results
                .iter()
                .filter(|r| r.as_ref().err() == Some(&StorageError::Fenced))
                .count() as u64;
        }
        for (((account, _), batch), r) in group.members().zip(&results) {
            self.mark_mixed_status(account, &batch.inputs, r.is_ok());
            self.check_lease_held(node, account, r);
            trace!(
                self,
                "n{} {account} batch of {} (epoch {}) in group {}/{}: {}",
                node + 1,
                batch.inputs.len(),
                batch.act.epoch(),
                group.id,
                group.len(),
                match r {
                    Ok((_, fx)) => format!("ok, {} effects", fx.len()),
                    Err(e) => format!("error: {e}"),
                }
            );
            if matches!(r, Err(e) if *e != StorageError::Fenced) {
                self.stats.failed_batches += 1;
            }
            // The store holds only what the ledger wrote: a record it cannot read, or one that
            // contradicts another, is a bug of the ledger, not a storage fault.
            if let Err(StorageError::Corrupt(why)) = r {
                let msg = format!(
                    "n{} {account}: a batch found a corrupt record: {why}",
                    node + 1
                );
                self.fail(FailureKind::Correctness, "stored records", msg);
            }
        }
        let (id, life) = (group.id, self.nodes[node].life);
        self.nodes[node]
            .group
            .in_flight
            .insert(id, (group, results));
        self.at(lat, Event::GroupDone { node, life, id });
    }

    /// A group's latency passed: its results reach their drivers and its slot frees up.
    pub(super) fn group_done(&mut self, node: usize, life: u64, id: u64) {
        if !self.nodes[node].alive || self.nodes[node].life != life {
            return; // lost with the node
        }
        let (group, results) = self.nodes[node]
            .group
            .in_flight
            .remove(&id)
            .expect("a group in flight");
        let done = self.nodes[node].group.committer.finished(group, results);
        for ((account, inc), batch, r) in done {
            let a = self
                .actor_mut(node, &account, inc)
                .expect("an actor with a batch in flight does not stop");
            a.done = Some(WorkResult::Committed(batch, r));
            self.actor_event(node, &account, inc, ActorEvent::WorkDone);
        }
        self.pump_committer(node);
    }

    /// The committer asked to be woken (an age cap may have been reached).
    pub(super) fn committer_wake(&mut self, node: usize, life: u64) {
        if self.nodes[node].alive && self.nodes[node].life == life {
            self.nodes[node].group.wake = None;
            self.pump_committer(node);
        }
    }
}
