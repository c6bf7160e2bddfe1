//! Each node's pending-index sweep, as the shell's sweeper runs it.
//!
//! A node reads the `pending` index in pages and, for every unsettled transfer whose sender it
//! owns, activates the sender if it has no actor for it (activation resumes every open saga),
//! or tells the actor it has, whose driver steps aside if it lost the lease to an activation
//! that started the saga. The page size and the cap on activations per sweep are the shell's.
//! The same sweep then reads the index of unsettled disbursements and the index of holds by
//! expiry up to now, and activates the payer of every disbursement and of every hold that came
//! due (the activation resumes the one and expires the other), as the shell's sweeper does.

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
        let mut holds = Vec::new();
        let mut after: Option<(u64, String)> = None;
        let now = self.wall();
        loop {
            let cursor = after.clone();
            let (page, _) = self.storage(Vec::new(), |s, k| {
                exec::read_due_holds(s, k, now, cursor, SWEEP_PAGE)
            });
            let Ok((page, more)) = page else {
                break; // storage down: the next sweep reads it again
            };
            after = page.last().map(|((at, h), _)| (*at, h.as_str().to_owned()));
            holds.extend(page);
            if !more || holds.len() >= SWEEP_ROWS_MAX {
                break;
            }
        }
        let mut disbursing = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let cursor = after.clone();
            let (page, _) = self.storage(Vec::new(), |s, k| {
                exec::read_disbursing(s, k, cursor.as_deref(), SWEEP_PAGE)
            });
            let Ok((page, more)) = page else {
                break; // storage down: the next sweep reads it again
            };
            after = page.last().map(|d| d.id.as_str().to_owned());
            disbursing.extend(page.into_iter().map(|d| (d.id, d.from)));
            if !more || disbursing.len() >= SWEEP_ROWS_MAX {
                break;
            }
        }
        let due = holds.into_iter().map(|((_, h), payer)| (h, payer));
        let rows = rows.into_iter().map(|(view, sender)| (view.id, sender));
        let rows = rows.chain(disbursing);
        let mut activated = 0;
        for (id, sender) in rows.chain(due) {
            if self.owner(node, &sender) != node {
                continue; // its owner's sweep resumes it
            }
            if self.nodes[node].actors.contains_key(&sender) {
                self.actor_resume(node, &sender, &id);
            } else if activated < SWEEP_ACTIVATIONS_MAX {
                trace!(self, "n{} sweep resumes {sender} for {id}", node + 1);
                self.activate(node, &sender);
                activated += 1;
            }
        }
    }
}
