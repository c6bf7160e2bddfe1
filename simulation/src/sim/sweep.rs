//! Each node's pending-index sweep, as the shell's sweeper runs it.
//!
//! A node reads the `pending` index in pages and, for every unsettled transfer whose sender it
//! owns, activates the sender if it has no actor for it (activation resumes every open saga),
//! or tells the actor it has, whose driver steps aside if it lost the lease to an activation
//! that started the saga. The page size and the cap on activations per sweep are the shell's.

use super::*;
use node::cluster::sweeper::{SWEEP_ACTIVATIONS_MAX, SWEEP_PAGE};

/// Most pending-index rows one sweep reads.
pub const SWEEP_ROWS_MAX: usize = 100_000;

impl Sim {
    /// One sweep of `node`.
    pub(super) fn sweep(&mut self, node: usize) {
        let mut rows = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let cursor = after.clone();
            let (page, _) = self.storage(Vec::new(), |s, k| {
                exec::read_pending(s, k, cursor.as_deref(), SWEEP_PAGE)
            });
            let Ok((page, more)) = page else {
                return; // storage down: the next sweep tries again
            };
            after = page.last().map(|(v, _)| v.id.as_str().to_owned());
            rows.extend(page);
            if !more || rows.len() >= SWEEP_ROWS_MAX {
                break;
            }
        }
        let mut activated = 0;
        for (view, sender) in rows {
            if self.owner(node, &sender) != node {
                continue; // its owner's sweep resumes it
            }
            if self.nodes[node].actors.contains_key(&sender) {
                self.actor_resume(node, &sender, &view.id);
            } else if activated < SWEEP_ACTIVATIONS_MAX {
                trace!(self, "n{} sweep resumes {sender} for {}", node + 1, view.id);
                self.activate(node, &sender);
                activated += 1;
            }
        }
    }
}
