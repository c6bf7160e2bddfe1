//! The key layout (DESIGN.md section 3), tuple-encoded, under an optional cluster prefix.
//!
//! | key | value |
//! |---|---|
//! | `("acct", id, "state")` | `AccountRecord`: balance, held, currency, status, seq, lease epoch |
//! | `("acct", id, "lease")` | `Lease`: owning node and activation epoch (fencing) |
//! | `("acct", id, "jrnl", seq)` | `Entry`: immutable journal entry |
//! | `("acct", id, "idem", key)` | `IdemRecord`: request fingerprint and result |
//! | `("acct", id, "open", transfer_id)` | empty: sender sagas of this account not yet settled |
//! | `("acct", id, "xfers", rank, transfer_id)` | account id of the sender: the account's transfers, either side, newest first (`rank` falls as the transfer's creation time grows); a sharded account's shards all write their rows under the account's id |
//! | `("acct", shard, "moving", transfer_id)` | empty: a move of this shard's money to a sibling, not settled (a sharded account's reads count it once) |
//! | `("accts", id)` | empty: index of every opened account, for listings and the audit |
//! | `("saga", transfer_id, id)` | `SagaRecord`: account `id`'s side of a transfer; the sender's is also the transfer's summary |
//! | `("pending", transfer_id)` | account id of the sender: unsettled sagas, so none is forgotten |
//! | `("holds", expires_at, hold_id)` | account id of the payer: open holds by expiry, so an expiry due while the payer was not active still happens |
//! | `("disbs", disbursement_id)` | account id of the payer: unsettled disbursements, so none is forgotten |
//! | `("outbox", webhook, id, seq, kind, record_id)` | a settlement's time (8 bytes), or empty for an entry: webhook events not yet delivered, per receiver, in `seq` order per account; each names the entry or saga record it is rendered from (see `ledger::outbox`) |
//!
//! Transfer ids sort by creation time, so the records of new transfers (`saga`, `pending`) go
//! to the end of their ranges: a group commit of a thousand transfers dirties a few pages
//! there, not one page per account as records under each account did. The transfer lists
//! (`xfers`) are per account by nature: each transfer adds one row on each side, at the
//! front of each account's list. Releases before 0.2
//! kept an account's side of a transfer at `("acct", id, "xfer", transfer_id)` and a copy of
//! the summary at `("xfer", transfer_id)`: both are still read ([`Keys::legacy_saga`],
//! [`Keys::legacy_transfer`]), never written.
//!
//! On FoundationDB, keys that grow at one end (`saga`, `pending`) send every new transfer's
//! writes to the shard that holds the end of the range, which bounds what more storage
//! servers can add; a cluster that outgrows one shard's write rate needs a spreading prefix
//! (for example a few bits of a hash of the transfer id before it), which the embedded
//! store, where the end of the range is what makes group commits cheap, does not want.

use cluster_config::WebhookConfig;
use foundationdb_tuple::Subspace;
use std::sync::Arc;

/// Builds every key of the ledger under one prefix, and knows which outboxes the layout holds
/// (one per webhook of the config).
#[derive(Clone, Debug)]
pub struct Keys {
    root: Subspace,
    webhooks: Arc<[OutboxHook]>,
}

/// A webhook whose events the ledger writes to an outbox of its own.
#[derive(Clone, Debug)]
pub struct OutboxHook {
    /// The outbox's id (the webhook's `id`, or the one derived from its URL).
    pub id: String,
    /// The webhook.
    pub config: WebhookConfig,
}

impl Default for Keys {
    fn default() -> Self {
        Keys::new("")
    }
}

impl Keys {
    /// Keys under `prefix` (tuple-encoded as a first element), or at the root when empty.
    pub fn new(prefix: &str) -> Self {
        let root = if prefix.is_empty() {
            Subspace::all()
        } else {
            Subspace::all().subspace(&prefix)
        };
        Keys {
            root,
            webhooks: Arc::from(Vec::new()),
        }
    }

    /// These keys, with an outbox for each webhook.
    pub fn with_webhooks(mut self, hooks: &[WebhookConfig]) -> Self {
        let hooks: Vec<OutboxHook> = hooks
            .iter()
            .map(|h| OutboxHook {
                id: h.outbox_id(),
                config: h.clone(),
            })
            .collect();
        self.webhooks = Arc::from(hooks);
        self
    }

    /// The webhooks that have an outbox (none: no outbox record is written).
    pub fn webhooks(&self) -> &[OutboxHook] {
        &self.webhooks
    }

    /// An account's state record.
    pub fn state(&self, account: &str) -> Vec<u8> {
        self.root.pack(&("acct", account, "state"))
    }

    /// An account's activation lease.
    pub fn lease(&self, account: &str) -> Vec<u8> {
        self.root.pack(&("acct", account, "lease"))
    }

    /// One journal entry.
    pub fn journal(&self, account: &str, seq: u64) -> Vec<u8> {
        self.root.pack(&("acct", account, "jrnl", seq))
    }

    /// The range of journal entries with `seq > after_seq`.
    pub fn journal_after(&self, account: &str, after_seq: u64) -> (Vec<u8>, Vec<u8>) {
        let begin = self.journal(account, after_seq.saturating_add(1));
        let (_, end) = self.root.subspace(&("acct", account, "jrnl")).range();
        (begin, end)
    }

    /// Decodes the sequence number of a journal key.
    pub fn journal_seq(&self, account: &str, key: &[u8]) -> Option<u64> {
        self.root
            .subspace(&("acct", account, "jrnl"))
            .unpack::<(u64,)>(key)
            .ok()
            .map(|(s,)| s)
    }

    /// An idempotency record.
    pub fn idem(&self, account: &str, key: &str) -> Vec<u8> {
        self.root.pack(&("acct", account, "idem", key))
    }

    /// An account's record of one transfer.
    pub fn saga(&self, account: &str, transfer_id: &str) -> Vec<u8> {
        self.root.pack(&("saga", transfer_id, account))
    }

    /// The range of both sides' records of one transfer.
    pub fn saga_range(&self, transfer_id: &str) -> (Vec<u8>, Vec<u8>) {
        self.root.subspace(&("saga", transfer_id)).range()
    }

    /// Decodes the account of a key in [`Keys::saga_range`].
    pub fn saga_account(&self, transfer_id: &str, key: &[u8]) -> Option<String> {
        self.root
            .subspace(&("saga", transfer_id))
            .unpack::<(String,)>(key)
            .ok()
            .map(|(a,)| a)
    }

    /// Where releases before 0.2 kept an account's record of one transfer (read only).
    pub fn legacy_saga(&self, account: &str, transfer_id: &str) -> Vec<u8> {
        self.root.pack(&("acct", account, "xfer", transfer_id))
    }

    /// Marker of an unsettled sender saga of this account.
    pub fn open(&self, account: &str, transfer_id: &str) -> Vec<u8> {
        self.root.pack(&("acct", account, "open", transfer_id))
    }

    /// The range of this account's open-saga markers.
    pub fn open_range(&self, account: &str) -> (Vec<u8>, Vec<u8>) {
        self.root.subspace(&("acct", account, "open")).range()
    }

    /// Decodes the transfer id of an open-saga marker key.
    pub fn open_transfer_id(&self, account: &str, key: &[u8]) -> Option<String> {
        self.root
            .subspace(&("acct", account, "open"))
            .unpack::<(String,)>(key)
            .ok()
            .map(|(t,)| t)
    }

    /// Marker of a move of a shard's money to a sibling shard, in flight.
    pub fn moving(&self, shard: &str, transfer_id: &str) -> Vec<u8> {
        self.root.pack(&("acct", shard, "moving", transfer_id))
    }

    /// The range of a shard's move markers.
    pub fn moving_range(&self, shard: &str) -> (Vec<u8>, Vec<u8>) {
        self.root.subspace(&("acct", shard, "moving")).range()
    }

    /// Decodes the transfer id of a move marker key.
    pub fn moving_transfer_id(&self, shard: &str, key: &[u8]) -> Option<String> {
        self.root
            .subspace(&("acct", shard, "moving"))
            .unpack::<(String,)>(key)
            .ok()
            .map(|(t,)| t)
    }

    /// An account's row of one of its transfers (either side) in its transfer list, ordered
    /// newest first: `rank` falls as the time the account first recorded the transfer grows
    /// (see [`listed_rank`]).
    pub fn listed(&self, account: &str, rank: u64, transfer_id: &str) -> Vec<u8> {
        self.root
            .pack(&("acct", account, "xfers", rank, transfer_id))
    }

    /// The range of an account's transfer list after the row (`rank`, `transfer_id`)
    /// (exclusive; from the newest when `None`).
    pub fn listed_after(&self, account: &str, after: Option<(u64, &str)>) -> (Vec<u8>, Vec<u8>) {
        let (begin, end) = self.root.subspace(&("acct", account, "xfers")).range();
        match after {
            // The smallest key above the row's own key: append a zero byte.
            Some((rank, tid)) => {
                let mut k = self.listed(account, rank, tid);
                k.push(0);
                (k, end)
            }
            None => (begin, end),
        }
    }

    /// Decodes the rank and transfer id of a transfer-list key.
    pub fn listed_row(&self, account: &str, key: &[u8]) -> Option<(u64, String)> {
        self.root
            .subspace(&("acct", account, "xfers"))
            .unpack::<(u64, String)>(key)
            .ok()
    }

    /// An entry of the account index.
    pub fn account_index(&self, account: &str) -> Vec<u8> {
        self.root.pack(&("accts", account))
    }

    /// The range of the account index after `after` (exclusive; from the start when `None`).
    pub fn account_index_after(&self, after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
        let sub = self.root.subspace(&("accts",));
        let (begin, end) = sub.range();
        match after {
            // The smallest key above `after`'s own key: append a zero byte.
            Some(a) => {
                let mut k = self.account_index(a);
                k.push(0);
                (k, end)
            }
            None => (begin, end),
        }
    }

    /// Decodes the account id of an account-index key.
    pub fn account_index_id(&self, key: &[u8]) -> Option<String> {
        self.root
            .subspace(&("accts",))
            .unpack::<(String,)>(key)
            .ok()
            .map(|(a,)| a)
    }

    /// The store's identity, written once by the first node that opens it.
    pub fn store_id(&self) -> Vec<u8> {
        self.root.pack(&("meta", "store_id"))
    }

    /// Where releases before 0.2 kept a copy of a transfer's summary (read only).
    pub fn legacy_transfer(&self, transfer_id: &str) -> Vec<u8> {
        self.root.pack(&("xfer", transfer_id))
    }

    /// The pending-index entry of a transfer.
    pub fn pending(&self, transfer_id: &str) -> Vec<u8> {
        self.root.pack(&("pending", transfer_id))
    }

    /// The whole pending index.
    pub fn pending_range(&self) -> (Vec<u8>, Vec<u8>) {
        self.root.subspace(&("pending",)).range()
    }

    /// The pending index after `after` (exclusive).
    pub fn pending_after(&self, after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
        let (begin, end) = self.pending_range();
        match after {
            Some(t) => {
                let mut k = self.pending(t);
                k.push(0);
                (k, end)
            }
            None => (begin, end),
        }
    }

    /// Decodes the transfer id of a pending-index key.
    pub fn pending_transfer_id(&self, key: &[u8]) -> Option<String> {
        self.root
            .subspace(&("pending",))
            .unpack::<(String,)>(key)
            .ok()
            .map(|(t,)| t)
    }
}

impl Keys {
    /// The entry of an open hold in the index of holds by expiry.
    pub fn hold_due(&self, expires_at: u64, hold_id: &str) -> Vec<u8> {
        self.root.pack(&("holds", expires_at, hold_id))
    }

    /// The holds that expire at or before `until_ms`, after the entry `after` (exclusive;
    /// from the earliest when `None`).
    pub fn holds_due(&self, until_ms: u64, after: Option<(u64, &str)>) -> (Vec<u8>, Vec<u8>) {
        let sub = self.root.subspace(&("holds",));
        let begin = match after {
            Some((at, h)) => {
                let mut k = self.hold_due(at, h);
                k.push(0);
                k
            }
            None => sub.range().0,
        };
        // Every entry of `until_ms` sorts before the first of the next millisecond.
        let end = sub.pack(&(until_ms.saturating_add(1),));
        (begin, end)
    }

    /// The entry of an unsettled disbursement in its index.
    pub fn disbursing(&self, id: &str) -> Vec<u8> {
        self.root.pack(&("disbs", id))
    }

    /// The index of unsettled disbursements after `after` (exclusive; from the start when
    /// `None`).
    pub fn disbursing_after(&self, after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
        let (begin, end) = self.root.subspace(&("disbs",)).range();
        match after {
            Some(id) => {
                let mut k = self.disbursing(id);
                k.push(0);
                (k, end)
            }
            None => (begin, end),
        }
    }

    /// Decodes the disbursement id of an index entry.
    pub fn disbursing_id(&self, key: &[u8]) -> Option<String> {
        self.root
            .subspace(&("disbs",))
            .unpack::<(String,)>(key)
            .ok()
            .map(|(d,)| d)
    }

    /// Decodes the expiry and hold id of an index entry.
    pub fn hold_due_row(&self, key: &[u8]) -> Option<(u64, String)> {
        self.root
            .subspace(&("holds",))
            .unpack::<(u64, String)>(key)
            .ok()
    }
}

impl Keys {
    /// An event waiting in a webhook's outbox: ordered by account, then `seq`, then `kind`
    /// (0 for an entry, which comes before the settlements written at its `seq`); `id` names
    /// the record it tells of (empty for the entry at `seq`).
    pub fn outbox(&self, hook: &str, account: &str, seq: u64, kind: u64, id: &str) -> Vec<u8> {
        self.root.pack(&("outbox", hook, account, seq, kind, id))
    }

    /// Every event of a webhook's outbox.
    pub fn outbox_range(&self, hook: &str) -> (Vec<u8>, Vec<u8>) {
        self.root.subspace(&("outbox", hook)).range()
    }

    /// The first key after every event of `account` in a webhook's outbox.
    pub fn outbox_account_end(&self, hook: &str, account: &str) -> Vec<u8> {
        self.root.subspace(&("outbox", hook, account)).range().1
    }

    /// Decodes the account, `seq` and record id (empty for an entry) of an outbox key.
    pub fn outbox_row(&self, hook: &str, key: &[u8]) -> Option<(String, u64, String)> {
        self.root
            .subspace(&("outbox", hook))
            .unpack::<(String, u64, u64, String)>(key)
            .ok()
            .map(|(a, seq, _, id)| (a, seq, id))
    }
}

/// The rank of a transfer first recorded by an account at `at_ms` in its transfer list: later
/// is smaller, so the list reads newest first. Kept within `i64` so that every reader of the
/// tuple layout (a signed 64-bit integer element) decodes it.
pub fn listed_rank(at_ms: u64) -> u64 {
    (i64::MAX as u64).saturating_sub(at_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_journal_range_orders_by_sequence_and_excludes_other_accounts() {
        // Proves journal keys sort numerically and the range stops at the account's end.
        let k = Keys::new("wallet");
        let (b, e) = k.journal_after("a", 1);
        assert!(k.journal("a", 1) < b);
        assert!(b <= k.journal("a", 2));
        assert!(k.journal("a", 2) < k.journal("a", 10));
        assert!(k.journal("a", u64::MAX) < e);
        assert!(k.state("a") < b || k.state("a") >= e);
        assert!(!(b <= k.journal("a.", 1) && k.journal("a.", 1) < e));
        assert_eq!(k.journal_seq("a", &k.journal("a", 42)), Some(42));
    }

    #[test]
    fn keys_holds_due_range_stops_after_its_millisecond() {
        // Proves the due-holds range holds every hold expiring up to and at `until_ms`, none
        // later, and resumes after the entry it is given.
        let k = Keys::new("w");
        let (b, e) = k.holds_due(100, None);
        let inside = |key: &Vec<u8>| &b <= key && key < &e;
        assert!(inside(&k.hold_due(0, "h")));
        assert!(inside(&k.hold_due(100, "zzzz")));
        assert!(!inside(&k.hold_due(101, "a")));
        let (b2, _) = k.holds_due(100, Some((50, "h1")));
        assert!(k.hold_due(50, "h1") < b2 && b2 <= k.hold_due(50, "h2"));
        assert_eq!(
            k.hold_due_row(&k.hold_due(7, "h9")),
            Some((7, "h9".to_owned()))
        );
    }

    #[test]
    fn keys_account_index_after_skips_the_named_account() {
        // Proves paging the account index resumes strictly after the last id seen.
        let k = Keys::default();
        let (b, _) = k.account_index_after(Some("bob"));
        assert!(k.account_index("bob") < b);
        assert!(b <= k.account_index("bob0"));
        assert!(b <= k.account_index("bob:"));
        assert_eq!(
            k.account_index_id(&k.account_index("carol")).as_deref(),
            Some("carol")
        );
    }
}
