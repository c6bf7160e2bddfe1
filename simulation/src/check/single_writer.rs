//! Single writer (DESIGN.md 6.5): at most one activation of an account commits at a time.
//!
//! Every commit of an activation (not its activation itself, which takes the lease) must find
//! the account's lease carrying that activation's nonce at commit time: a commit from a
//! fenced activation, whose lease a newer one took, is a violation. An activation writes only
//! its own account's keys, and lease epochs start at 1 and only grow. A group commit has
//! several writers: each account's keys must come from that account's activation, and each
//! activation that wrote must hold its lease.

use super::Check;
use crate::ledger::{Commit, Ledger, Row};
use crate::workload::OpSpec;

/// The checker (stateless).
pub struct SingleWriter;

impl Check for SingleWriter {
    fn name(&self) -> &'static str {
        "single writer (DESIGN.md 6.5)"
    }

    fn on_commit(
        &mut self,
        before: &Ledger,
        commit: &Commit,
        _ops: &[OpSpec],
    ) -> Result<(), String> {
        for row in &commit.rows {
            if let Row::Lease(id, Some(l)) = row {
                // Epoch 0 means "no lease" (an account not yet opened): a lease taken starts
                // at 1.
                if l.epoch == 0 {
                    return Err(format!("{id}: a lease was written with epoch 0"));
                }
                let old = before.accounts.get(id).and_then(|a| a.lease.as_ref());
                if let Some(o) = old {
                    if l.epoch <= o.epoch {
                        return Err(format!(
                            "{id}: lease epoch went from {} to {}",
                            o.epoch, l.epoch
                        ));
                    }
                }
            }
        }
        if commit.writers.is_empty() {
            return Ok(());
        }
        let owner_of = |row: &Row| match row {
            Row::State(a, _)
            | Row::Lease(a, _)
            | Row::Journal(a, _, _)
            | Row::Idem(a, _, _)
            | Row::Saga(a, _, _)
            | Row::Open(a, _, _)
            | Row::Moving(a, _, _)
            | Row::Index(a, _)
            | Row::Outbox(a, ..) => Some((a.clone(), false)),
            // A sharded account's list is written by its shards.
            Row::Listed(a, ..) => Some((a.clone(), true)),
            Row::Pending(..) | Row::HoldDue(..) | Row::Disbursing(..) => None,
        };
        for (owner, by_shards) in commit.rows.iter().filter_map(owner_of) {
            let wrote = |w: &crate::store::Writer| {
                w.account == owner
                    || (by_shards
                        && w.account.split(protocol::ids::SHARD_SEPARATOR).next()
                            == Some(owner.as_str()))
            };
            if !commit.writers.iter().any(|(w, _)| wrote(w)) {
                let (w, _) = &commit.writers[0];
                return Err(format!(
                    "activation of {} on {} wrote {owner}'s keys",
                    w.account, w.node
                ));
            }
        }
        for (w, lease_at_commit) in &commit.writers {
            // In a group, a batch that wrote nothing of its account (fenced, or nothing to
            // write) committed nothing, whoever holds the lease; a lone writer is always held
            // to its lease.
            let wrote = commit.writers.len() == 1
                || commit
                    .rows
                    .iter()
                    // (A list row is never an account's only write; one under a sharded
                    // account's id is its shards', not the account record's.)
                    .any(|r| {
                        owner_of(r).is_some_and(|(o, by_shards)| !by_shards && o == w.account)
                    });
            if w.activating || !wrote {
                continue;
            }
            match lease_at_commit {
                Some(l) if l.nonce == w.nonce && l.node == w.node => {}
                Some(l) => {
                    return Err(format!(
                        "{} committed by the activation on {} (epoch {}) while {} holds epoch {}: a fenced activation wrote",
                        w.account, w.node, w.epoch, l.node, l.epoch
                    ))
                }
                None if w.epoch == 0 => {}
                None => {
                    return Err(format!(
                        "{} committed by epoch {} without a lease",
                        w.account, w.epoch
                    ))
                }
            }
        }
        Ok(())
    }
}
