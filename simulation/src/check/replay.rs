//! Journal replay equals state (DESIGN.md 6.6): folding an account's journal gives its stored
//! balance, holds and sequence, and each entry's balance and available at its own sequence.
//!
//! At every commit, new entries must continue the journal without a gap (sequence last + 1),
//! never rewrite an entry, and match the fold; a commit that appends entries also writes the
//! state, equal to the fold.
//!
//! At phase ends, the audit (`check/audit.rs`) replays the stored journals: no gap, each entry's
//! balance and available, the state's balance and holds. What this checker still checks there
//! is what the audit does not: that the journal ends exactly at the state's sequence (the audit
//! reads a live ledger and ignores entries after the listed sequence), that no journal exists
//! without an account, and that its own incremental fold equals the stored journal's.

use super::Check;
use crate::ledger::{Commit, Ledger, Row};
use crate::workload::OpSpec;
use protocol::api::{Entry, EntryKind};
use std::collections::BTreeMap;

/// Per account: (last seq, balance, held) folded so far.
#[derive(Default)]
pub struct Replay {
    folds: BTreeMap<String, Fold>,
}

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Fold {
    seq: u64,
    balance: i128,
    held: i128,
}

impl Fold {
    /// Folds an entry in, without judging it.
    fn step(&mut self, e: &Entry) {
        let a = e.amount as i128;
        match e.kind {
            EntryKind::Deposit | EntryKind::TransferIn => self.balance += a,
            EntryKind::Withdrawal => self.balance -= a,
            EntryKind::Hold => self.held += a,
            EntryKind::Release => self.held -= a,
            EntryKind::TransferOut => {
                self.balance -= a;
                self.held -= a;
            }
        }
        self.seq = e.seq;
    }

    /// Folds an entry in: it must follow the last one and state the folded balances.
    fn apply(&mut self, id: &str, e: &Entry) -> Result<(), String> {
        if e.seq != self.seq + 1 {
            return Err(format!(
                "{id}: entry {} follows {} (gap or reorder)",
                e.seq, self.seq
            ));
        }
        self.step(e);
        if e.balance as i128 != self.balance || e.available as i128 != self.balance - self.held {
            return Err(format!(
                "{id}: entry {} says balance {} available {}, the journal folds to {} and {}",
                e.seq,
                e.balance,
                e.available,
                self.balance,
                self.balance - self.held
            ));
        }
        Ok(())
    }

    fn matches(&self, id: &str, seq: u64, balance: u64, held: u64) -> Result<(), String> {
        if (self.seq, self.balance, self.held) != (seq, balance as i128, held as i128) {
            return Err(format!(
                "{id}: state (seq {seq}, balance {balance}, held {held}) but the journal folds to (seq {}, balance {}, held {})",
                self.seq, self.balance, self.held
            ));
        }
        Ok(())
    }
}

impl Check for Replay {
    fn name(&self) -> &'static str {
        "journal replay equals state (DESIGN.md 6.6)"
    }

    fn on_commit(
        &mut self,
        before: &Ledger,
        commit: &Commit,
        _ops: &[OpSpec],
    ) -> Result<(), String> {
        let mut appended: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for row in &commit.rows {
            if let Row::Journal(id, seq, e) = row {
                if before
                    .accounts
                    .get(id)
                    .is_some_and(|a| a.journal.contains_key(seq))
                {
                    return Err(format!("{id}: journal entry {seq} rewritten or removed"));
                }
                let e = e
                    .as_ref()
                    .ok_or_else(|| format!("{id}: removal of absent entry {seq}"))?;
                if e.seq != *seq {
                    return Err(format!("{id}: entry {} stored under sequence {seq}", e.seq));
                }
                appended.entry(id).or_default().push(e);
            }
        }
        for (id, entries) in &appended {
            let fold = self.folds.entry(id.to_string()).or_default();
            for e in entries {
                fold.apply(id, e)?;
            }
        }
        for row in &commit.rows {
            if let Row::State(id, Some(s)) = row {
                let fold = self.folds.get(id).copied().unwrap_or_default();
                fold.matches(id, s.seq, s.balance, s.held)?;
            }
        }
        for id in appended.keys() {
            let has_state = commit
                .rows
                .iter()
                .any(|r| matches!(r, Row::State(a, Some(_)) if a == id));
            if !has_state {
                return Err(format!("{id}: journal appended without the state"));
            }
        }
        Ok(())
    }

    fn phase_end(
        &mut self,
        ledger: &Ledger,
        _ops: &[OpSpec],
        _quiescent: bool,
    ) -> Result<(), String> {
        for (id, a) in &ledger.accounts {
            let mut fold = Fold::default();
            for (e, _) in a.journal.values() {
                fold.step(e);
            }
            match a.state() {
                Some(s) if s.seq != fold.seq => {
                    return Err(format!(
                        "{id}: state at sequence {} but the journal ends at {}",
                        s.seq, fold.seq
                    ))
                }
                Some(_) => {}
                None if a.journal.is_empty() => {}
                None => return Err(format!("{id}: a journal without an account")),
            }
            if self.folds.get(id).copied().unwrap_or_default() != fold {
                return Err(format!(
                    "{id}: incremental fold differs from the stored journal's"
                ));
            }
        }
        Ok(())
    }
}
