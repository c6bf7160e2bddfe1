//! No overdraft (DESIGN.md 6.2): `available` (balance minus holds) never goes below zero, and
//! no balance exceeds the largest amount. Checked on every stored state and journal entry as
//! it is committed; at phase ends the audit (`check/audit.rs`) checks every stored state and
//! every journal entry against the same rules.

use super::Check;
use crate::ledger::{Commit, Ledger, Row};
use crate::workload::OpSpec;
use protocol::AMOUNT_MAX;

/// The checker (stateless).
pub struct NoOverdraft;

fn state_ok(id: &str, balance: u64, held: u64) -> Result<(), String> {
    if held > balance {
        return Err(format!(
            "{id}: held {held} > balance {balance} (available below zero)"
        ));
    }
    if balance > AMOUNT_MAX {
        return Err(format!("{id}: balance {balance} over the largest amount"));
    }
    Ok(())
}

impl Check for NoOverdraft {
    fn name(&self) -> &'static str {
        "no overdraft (DESIGN.md 6.2)"
    }

    fn on_commit(
        &mut self,
        _before: &Ledger,
        commit: &Commit,
        _ops: &[OpSpec],
    ) -> Result<(), String> {
        for row in &commit.rows {
            match row {
                Row::State(id, Some(s)) => state_ok(id, s.balance, s.held)?,
                Row::Journal(id, seq, Some(e)) if e.available > e.balance => {
                    return Err(format!(
                        "{id} entry {seq}: available {} > balance {}",
                        e.available, e.balance
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}
