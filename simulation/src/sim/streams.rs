//! Balance-stream subscribers, modelled on the WebSocket gateway, checked for invariant 8.
//!
//! A subscriber is a socket on one node, subscribed to every account of the run from sequence
//! 0. Its rules are the gateway's (`node::gateway::stream`): a live update published on its
//! node is delivered only when it is the next one of its account; an older one is skipped; a
//! newer one first back-fills the missing entries from the journal. Accounts its node does not
//! push (another node owns them, or no actor of them is active here) are read from the journal
//! every [`REMOTE_POLL_EVERY`]. A subscriber disconnects now and then (and when its node
//! crashes) and resumes on a live node from the last sequence it delivered.
//!
//! Checked: every delivered entry is the next one of its account and is the journal's entry
//! (in order, no gap, no duplicate); and at the end of the liveness phase, a subscriber on a
//! node whose actor of an account holds its lease, or that has no actor of it, has delivered
//! the account's whole journal (nothing held back). A subscriber behind a stale actor (one that
//! lost the lease and was never told) is not judged: the shell passivates such an actor when
//! the ring moves its account or when it is idle, and the socket then polls.

use super::*;
use node::gateway::stream::{BACKFILL_PAGE, REMOTE_POLL_EVERY};
use node::ledger::account::BalanceUpdate;
use protocol::api::Entry;

/// Longest a subscriber stays disconnected before it resumes.
pub const RECONNECT_MAX_MS: u64 = 2_000;

/// Something that happens to a subscriber.
#[derive(Clone, Debug)]
pub(crate) enum StreamEvent {
    /// Read the journals of the accounts the node does not push.
    Poll { sub: usize, conn: u64 },
    /// The socket closes.
    Disconnect { sub: usize, conn: u64 },
    /// The subscriber connects again and resumes.
    Reconnect { sub: usize },
}

/// One subscriber.
pub(super) struct Subscriber {
    node: usize,
    /// Bumped at every connection: events of an earlier one are ignored.
    conn: u64,
    connected: bool,
    /// Last delivered sequence per account.
    last: BTreeMap<AccountId, u64>,
}

impl Subscriber {
    /// The node it is connected to (or will connect to).
    pub(super) fn node(&self) -> usize {
        self.node
    }

    /// A subscriber to `accounts` on `node`, not yet connected.
    pub(super) fn new(node: usize, accounts: &[AccountId]) -> Self {
        Subscriber {
            node,
            conn: 0,
            connected: false,
            last: accounts.iter().map(|a| (a.clone(), 0)).collect(),
        }
    }
}

fn poll_ms() -> u64 {
    REMOTE_POLL_EVERY.as_millis() as u64
}

impl Sim {
    /// Connects every subscriber at the start of the run.
    pub(super) fn streams_start(&mut self) {
        for sub in 0..self.subscribers.len() {
            self.at(0, Event::Stream(StreamEvent::Reconnect { sub }));
        }
    }

    /// A subscriber's event.
    pub(super) fn stream_event(&mut self, ev: StreamEvent) {
        match ev {
            StreamEvent::Poll { sub, conn } => {
                if !self.live_conn(sub, conn) {
                    return;
                }
                let node = self.subscribers[sub].node;
                let accounts: Vec<AccountId> = self.subscribers[sub].last.keys().cloned().collect();
                for a in accounts {
                    let pushed =
                        self.owner(node, &a) == node && self.nodes[node].actors.contains_key(&a);
                    if pushed {
                        if let Some(why) = self.held_back(sub, &a) {
                            let check = "monotonic streams (DESIGN.md 6.8)";
                            return self.fail(FailureKind::Correctness, check, why);
                        }
                    } else if !self.catch_up(sub, &a, None) {
                        return;
                    }
                }
                self.at(poll_ms(), Event::Stream(StreamEvent::Poll { sub, conn }));
            }
            StreamEvent::Disconnect { sub, conn } => {
                if self.live_conn(sub, conn) {
                    self.disconnect(sub);
                }
            }
            StreamEvent::Reconnect { sub } => self.reconnect(sub),
        }
    }

    fn live_conn(&self, sub: usize, conn: u64) -> bool {
        let s = &self.subscribers[sub];
        s.connected && s.conn == conn && self.nodes[s.node].alive
    }

    fn disconnect(&mut self, sub: usize) {
        let s = &mut self.subscribers[sub];
        s.connected = false;
        trace!(self, "stream s{sub} disconnects");
        let after = self.rng_streams.range(1, RECONNECT_MAX_MS);
        self.at(after, Event::Stream(StreamEvent::Reconnect { sub }));
    }

    /// Connects to a live node and resumes every account from its last delivered sequence.
    fn reconnect(&mut self, sub: usize) {
        if self.subscribers[sub].connected {
            return;
        }
        // A hung node accepts no connection (it answers nothing).
        let alive: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].alive && !self.nodes[n].liveness.hung)
            .collect();
        if alive.is_empty() {
            let after = self.rng_streams.range(1, RECONNECT_MAX_MS);
            self.at(after, Event::Stream(StreamEvent::Reconnect { sub }));
            return;
        }
        let node = *self.rng_streams.pick(&alive);
        let s = &mut self.subscribers[sub];
        s.node = node;
        s.conn += 1;
        s.connected = true;
        let conn = s.conn;
        trace!(self, "stream s{sub} connects to n{}", node + 1);
        let accounts: Vec<AccountId> = self.subscribers[sub].last.keys().cloned().collect();
        for a in accounts {
            if !self.catch_up(sub, &a, None) {
                return;
            }
        }
        self.at(poll_ms(), Event::Stream(StreamEvent::Poll { sub, conn }));
        let every = self.opts.stream_churn_every_ms;
        if every > 0 && !self.healed {
            let after = self.rng_streams.around(every);
            self.at(after, Event::Stream(StreamEvent::Disconnect { sub, conn }));
        }
    }

    /// Every subscriber on `node` loses its socket (the node crashed).
    pub(super) fn streams_node_down(&mut self, node: usize) {
        for sub in 0..self.subscribers.len() {
            if self.subscribers[sub].connected && self.subscribers[sub].node == node {
                self.disconnect(sub);
            }
        }
    }

    /// Faults healed: every subscriber that is down resumes soon, and none leaves again.
    pub(super) fn streams_heal(&mut self) {
        for sub in 0..self.subscribers.len() {
            if !self.subscribers[sub].connected {
                self.at(1, Event::Stream(StreamEvent::Reconnect { sub }));
            }
        }
    }

    /// A balance update published on `node`.
    pub(super) fn publish(&mut self, node: usize, update: BalanceUpdate) {
        if update.entry.balance.checked_sub(update.entry.available) != Some(update.held) {
            let why = format!(
                "{} published seq {} with held {}, but its entry says balance {} and available {}",
                update.account,
                update.entry.seq,
                update.held,
                update.entry.balance,
                update.entry.available
            );
            return self.fail(
                FailureKind::Correctness,
                "monotonic streams (DESIGN.md 6.8)",
                why,
            );
        }
        for sub in 0..self.subscribers.len() {
            let s = &self.subscribers[sub];
            if !s.connected || s.node != node {
                continue;
            }
            let Some(&last) = s.last.get(&update.account) else {
                continue;
            };
            let seq = update.entry.seq;
            if seq <= last {
                continue; // a duplicate
            }
            if seq > last + 1 && !self.catch_up(sub, &update.account, Some(seq - 1)) {
                continue;
            }
            if self.subscribers[sub].last.get(&update.account) == Some(&(seq - 1)) {
                self.deliver(sub, &update.account, &update.entry);
            }
        }
    }

    /// Delivers the journal entries after the last delivered one, up to `upto` (or the end);
    /// false when the read failed and the socket closed.
    fn catch_up(&mut self, sub: usize, account: &AccountId, upto: Option<u64>) -> bool {
        loop {
            let last = self.subscribers[sub].last[account];
            if upto.is_some_and(|u| last >= u) {
                return true;
            }
            // A read that can only come back empty is skipped (the model's one shortcut: the
            // observed store says no entry follows `last`), which keeps polling cheap.
            let newest = self
                .ledger
                .accounts
                .get(account.as_str())
                .and_then(|a| a.journal.keys().next_back().copied())
                .unwrap_or(0);
            if newest <= last {
                return true;
            }
            let (page, _) = self.storage(Vec::new(), |s, k| {
                exec::read_entries(s, k, account, last, BACKFILL_PAGE)
            });
            let page = match page {
                Ok(Some(p)) => p,
                Ok(None) => return true, // not opened yet
                Err(_) => {
                    // The gateway ends the stream; the client resumes from its last sequence.
                    self.disconnect(sub);
                    return false;
                }
            };
            for e in &page.entries {
                if upto.is_some_and(|u| e.seq > u) {
                    return true;
                }
                self.deliver(sub, account, e);
            }
            if page.next_after_seq.is_none() {
                return true;
            }
        }
    }

    fn deliver(&mut self, sub: usize, account: &AccountId, entry: &Entry) {
        let last = self.subscribers[sub].last[account];
        let check = "monotonic streams (DESIGN.md 6.8)";
        if entry.seq != last + 1 {
            let why = format!(
                "stream s{sub} got {account} seq {} after seq {last} (gap or duplicate)",
                entry.seq
            );
            return self.fail(FailureKind::Correctness, check, why);
        }
        let stored = self
            .ledger
            .accounts
            .get(account.as_str())
            .and_then(|a| a.journal.get(&entry.seq))
            .map(|(e, _)| e);
        if stored != Some(entry) {
            let why = format!(
                "stream s{sub} got {account} seq {} that the journal does not hold: {entry:?}",
                entry.seq
            );
            return self.fail(FailureKind::Correctness, check, why);
        }
        self.subscribers[sub]
            .last
            .insert(account.clone(), entry.seq);
        self.stats.streamed += 1;
    }

    /// Whether a pushed account's newest entries are held back from a subscriber: once the
    /// node's actor of the account holds the lease and is quiet (nothing queued, in flight or
    /// backing off), it has published every entry of the journal, so a connected subscriber
    /// of its node has them all.
    fn held_back(&self, sub: usize, account: &AccountId) -> Option<String> {
        let s = &self.subscribers[sub];
        let a = self.nodes[s.node].actors.get(account)?;
        let obs = self.ledger.accounts.get(account.as_str())?;
        let act = a.driver.activation()?;
        if !a.driver.is_quiet() || act.lease != obs.lease {
            return None;
        }
        let stored = obs.journal.keys().next_back().copied().unwrap_or(0);
        let last = s.last[account];
        (last < stored).then(|| {
            format!(
                "stream s{sub} on n{} has {account} up to seq {last}, but the quiet activation there holds the lease and the journal ends at {stored}: entries held back",
                s.node + 1
            )
        })
    }

    /// At the end of the liveness phase: nothing held back (see the module doc).
    pub(super) fn check_streams(&mut self) {
        if let Some(why) = self.streams_held_back() {
            let check = "monotonic streams (DESIGN.md 6.8)";
            self.fail(FailureKind::Liveness, check, why);
        }
    }

    fn streams_held_back(&self) -> Option<String> {
        for (sub, s) in self.subscribers.iter().enumerate() {
            if !s.connected || !self.nodes[s.node].alive {
                continue;
            }
            for (account, &last) in &s.last {
                let Some(obs) = self.ledger.accounts.get(account.as_str()) else {
                    continue;
                };
                let stored = obs.journal.keys().next_back().copied().unwrap_or(0);
                if last == stored {
                    continue;
                }
                let judged = match self.nodes[s.node].actors.get(account) {
                    None => true,
                    Some(a) => a
                        .driver
                        .activation()
                        .is_some_and(|act| act.lease == obs.lease),
                };
                if judged {
                    return Some(format!(
                        "stream s{sub} on n{} delivered {account} up to seq {last} but the journal ends at {stored}, every fault healed",
                        s.node + 1
                    ));
                }
            }
        }
        None
    }
}
