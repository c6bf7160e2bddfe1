//! Saga deadlines of one account: one entry per open saga, one timer for the earliest.

use protocol::TransferId;
use std::collections::{BTreeMap, BTreeSet};

/// When each open saga of an activation next needs its timer input, ordered by time.
///
/// An entry is replaced when its saga arms a new timer and removed when the saga settles, so a
/// settled transfer costs nothing later. The runtime keeps one timer per actor, armed for
/// [`Deadlines::earliest`].
#[derive(Clone, Debug, Default)]
pub struct Deadlines {
    by_transfer: BTreeMap<TransferId, u64>,
    by_time: BTreeSet<(u64, TransferId)>,
}

impl Deadlines {
    /// Sets (or moves) the deadline of `transfer` to `at_ms`.
    pub fn set(&mut self, transfer: TransferId, at_ms: u64) {
        if let Some(old) = self.by_transfer.insert(transfer.clone(), at_ms) {
            self.by_time.remove(&(old, transfer.clone()));
        }
        self.by_time.insert((at_ms, transfer));
    }

    /// Removes the deadline of `transfer`, if any.
    pub fn remove(&mut self, transfer: &TransferId) {
        if let Some(at) = self.by_transfer.remove(transfer) {
            self.by_time.remove(&(at, transfer.clone()));
        }
    }

    /// Removes every deadline.
    pub fn clear(&mut self) {
        self.by_transfer.clear();
        self.by_time.clear();
    }

    /// Gives back the memory of emptied maps (an emptied `BTreeMap` keeps its last node).
    pub fn compact(&mut self) {
        if self.by_transfer.is_empty() {
            *self = Deadlines::default();
        }
    }

    /// The earliest deadline.
    pub fn earliest(&self) -> Option<u64> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns the transfers whose deadline is at or before `now_ms`, in deadline
    /// order.
    pub fn take_due(&mut self, now_ms: u64) -> Vec<TransferId> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.by_time.first() {
            if *at > now_ms {
                break;
            }
            let (_, t) = self.by_time.pop_first().expect("checked above");
            self.by_transfer.remove(&t);
            due.push(t);
        }
        due
    }

    /// Number of deadlines.
    pub fn len(&self) -> usize {
        self.by_transfer.len()
    }

    /// True when no deadline is set.
    pub fn is_empty(&self) -> bool {
        self.by_transfer.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TransferId {
        TransferId::new(s.to_owned()).unwrap()
    }

    #[test]
    fn deadlines_move_settle_and_come_due_in_order() {
        let mut d = Deadlines::default();
        d.set(t("a"), 30);
        d.set(t("b"), 10);
        d.set(t("c"), 20);
        d.set(t("a"), 5); // moved earlier
        d.remove(&t("c")); // settled
        assert_eq!(d.earliest(), Some(5));
        assert_eq!(d.take_due(10), vec![t("a"), t("b")]);
        assert!(d.is_empty());
        assert_eq!(d.earliest(), None);
    }
}
