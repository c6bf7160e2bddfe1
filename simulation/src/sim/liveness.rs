//! Hangs and failure detection: a node that stops processing while its links stay up (a
//! `SIGSTOP`, a stalled machine), and the node crate's own [`Detector`] on every node deciding
//! when a silent member leaves the ring and when a node that woke up must rejoin.
//!
//! A hung node is alive: every event meant for it (messages, its actors' storage results and
//! timers, its sweeps, its committer, its ring updates, its heartbeat ticks) waits, in order,
//! until it resumes; nothing is lost, unlike a crash. While it is silent its peers' detectors
//! drop it, which takes it out of the membership (each node learns it after its own lag), so
//! its accounts activate elsewhere and the lease epoch fences what it still holds. When it
//! resumes, its own detector sees that its ticks were a failure timeout apart (or a peer tells
//! it it was dropped): it passivates its quiet actors (the busy ones finish or are fenced) and
//! rejoins with a newer incarnation, which puts it back in the membership.
//!
//! Heartbeats run only in seeds with hangs on, so every other seed's run is as before. They
//! travel with the network's delay and are stopped by partitions, never otherwise lost nor
//! reordered (the sessions are TCP): a partition longer than the failure timeout drops the
//! member on the far side, which keeps serving what it thinks it owns (two activations race
//! and fencing must hold) until the partition heals and it is told, and rejoins. The failure
//! timeout is drawn longer than two heartbeats plus the longest delay, so that nothing else
//! drops a member.
//!
//! Left out: the real rejoin also takes the node out of its own ring while its accounts drain,
//! and asks busy accounts to stop once they committed what they queued; here the quiet ones
//! stop and the busy ones go on until fencing or idleness stops them.

use super::*;
use node::cluster::detector::{Detector, Heard, Verdict};

/// A node's failure detection, and the events that wait while it hangs.
pub(super) struct Liveness {
    pub(super) detector: Detector,
    /// The incarnation the node announces.
    pub(super) incarnation: u64,
    /// The node stopped processing: its events wait in `held`.
    pub(super) hung: bool,
    pub(super) held: Vec<Event>,
}

impl Liveness {
    /// The detection state of a node in its `life`-th life (a restart always comes back with
    /// a larger incarnation, as a restarted `walletd` does with its start time).
    pub(super) fn new(life: u64, opts: &Options) -> Self {
        let incarnation = (life + 1) * 1_000_000;
        Liveness {
            detector: Detector::new(incarnation, opts.heartbeat_ms, opts.failure_timeout_ms),
            incarnation,
            hung: false,
            held: Vec::new(),
        }
    }
}

impl Sim {
    /// Whether failure detection runs in this seed.
    pub(super) fn detecting(&self) -> bool {
        self.opts.hang_every_ms > 0 && self.nodes.len() > 1
    }

    /// The node an event is for, when it is one a hung node would not process.
    pub(super) fn event_node(&self, ev: &Event) -> Option<usize> {
        match ev {
            Event::ToNode { node, .. }
            | Event::Actor { node, .. }
            | Event::Sweep { node, .. }
            | Event::GroupDone { node, .. }
            | Event::CommitterWake { node, .. }
            | Event::RingUpdate { node, .. }
            | Event::HeartbeatTick { node, .. }
            | Event::Heartbeat { to: node, .. }
            | Event::Dropped { to: node, .. } => Some(*node),
            Event::Stream(streams::StreamEvent::Poll { sub, .. }) => {
                Some(self.subscribers[*sub].node())
            }
            _ => None,
        }
    }

    /// Holds `ev` if it is for a hung node (`None`); otherwise gives it back to be handled.
    pub(super) fn hold_if_hung(&mut self, ev: Event) -> Option<Event> {
        match self.event_node(&ev) {
            Some(n) if self.nodes[n].alive && self.nodes[n].liveness.hung => {
                self.nodes[n].liveness.held.push(ev);
                None
            }
            _ => Some(ev),
        }
    }

    pub(super) fn fault_hang(&mut self) {
        if self.healed {
            return;
        }
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].alive && !self.nodes[n].liveness.hung)
            .collect();
        // At least one node keeps running, as in a real cluster someone must notice.
        if candidates.len() > 1 {
            let n = *self.rng_fault.pick(&candidates);
            let len = self.rng_fault.range(1, self.opts.hang_max_ms);
            self.stats.hangs += 1;
            self.nodes[n].liveness.hung = true;
            trace!(self, "HANG n{} for {len} ms", n + 1);
            let life = self.nodes[n].life;
            self.at(len, Event::Resume { node: n, life });
        }
        self.again(self.opts.hang_every_ms, Event::FaultHang);
    }

    /// A hung node goes on: what waited for it is delivered in its order.
    pub(super) fn resume(&mut self, n: usize) {
        if !self.nodes[n].liveness.hung {
            return;
        }
        self.nodes[n].liveness.hung = false;
        let held = std::mem::take(&mut self.nodes[n].liveness.held);
        trace!(self, "RESUME n{} ({} events waited)", n + 1, held.len());
        for ev in held {
            self.at(0, ev);
        }
    }

    /// A node's periodic detection: drops the silent, notices its own stall, sends heartbeats.
    pub(super) fn heartbeat_tick(&mut self, n: usize) {
        let now = self.now;
        let verdicts = self.nodes[n].liveness.detector.tick(now);
        for v in verdicts {
            match v {
                Verdict::Drop { peer, incarnation } => {
                    let p = self.node_index(&peer);
                    self.stats.drops += 1;
                    trace!(self, "n{} drops {peer} (silent)", n + 1);
                    self.set_member(p, false);
                    self.tell_dropped(n, p, incarnation);
                }
                Verdict::Stalled { .. } => {
                    trace!(self, "n{} finds it was stopped", n + 1);
                    self.rejoin(n);
                }
            }
        }
        let inc = self.nodes[n].liveness.incarnation;
        let from_life = self.nodes[n].life;
        for p in 0..self.nodes.len() {
            if p != n && self.nodes[p].alive {
                let Some(d) = self.heartbeat_delay(n, p) else {
                    continue;
                };
                let life = self.nodes[p].life;
                self.at(
                    d,
                    Event::Heartbeat {
                        to: p,
                        life,
                        from: n,
                        from_life,
                        incarnation: inc,
                    },
                );
            }
        }
    }

    /// `to` hears `from`'s heartbeat.
    pub(super) fn heartbeat(&mut self, to: usize, from: usize, incarnation: u64) {
        let now = self.now;
        let from_id = self.nodes[from].id.clone();
        match self.nodes[to]
            .liveness
            .detector
            .heard(&from_id, incarnation, now)
        {
            Heard::Live => {}
            // A drop that raced the peer's rejoin: the real node re-admits it here.
            Heard::Revived => self.set_member(from, true),
            Heard::Stale { incarnation } => self.tell_dropped(to, from, incarnation),
        }
    }

    /// `n` is told it was dropped at `incarnation`.
    pub(super) fn told_dropped(&mut self, n: usize, incarnation: u64) {
        let now = self.now;
        if self.nodes[n]
            .liveness
            .detector
            .told_dropped(incarnation, now)
        {
            trace!(self, "n{} learns it was dropped", n + 1);
            self.rejoin(n);
        }
    }

    /// Passivates the node's quiet actors and rejoins with its newest incarnation, as
    /// `Shell::rejoin` does (a busy actor finishes, or its next commit is fenced).
    fn rejoin(&mut self, n: usize) {
        self.stats.rejoins += 1;
        let quiet: Vec<AccountId> = self.nodes[n]
            .actors
            .iter()
            .filter(|(_, a)| a.driver.is_quiet())
            .map(|(id, _)| id.clone())
            .collect();
        for id in &quiet {
            self.drain_actor(n, id);
        }
        let inc = self.nodes[n].liveness.detector.incarnation();
        self.nodes[n].liveness.incarnation = inc;
        trace!(
            self,
            "n{} rejoins as incarnation {inc} ({} actors passivated)",
            n + 1,
            quiet.len()
        );
        self.set_member(n, true);
    }

    /// Puts `n` in the membership (`true`) or takes it out (`false`, never the last member),
    /// when that changes it; each node learns it after its own lag.
    fn set_member(&mut self, n: usize, member: bool) {
        let mut m = self.memberships.last().expect("one").clone();
        let changed = if member {
            m.insert(n)
        } else {
            m.len() > 1 && m.remove(&n)
        };
        if changed {
            self.change_membership(m, self.opts.ring_lag_max_ms);
        }
    }

    /// `from` tells `to` that it was dropped at `incarnation` (unless a partition blocks it).
    fn tell_dropped(&mut self, from: usize, to: usize, incarnation: u64) {
        if let Some(d) = self.heartbeat_delay(from, to) {
            let life = self.nodes[to].life;
            self.at(
                d,
                Event::Dropped {
                    to,
                    life,
                    incarnation,
                },
            );
        }
    }

    /// A node's session to every peer ended (it crashed): they forget its liveness.
    pub(super) fn forget_node(&mut self, n: usize) {
        let id = self.nodes[n].id.clone();
        for (p, node) in self.nodes.iter_mut().enumerate() {
            if p != n {
                node.liveness.detector.forget(&id);
            }
        }
    }

    fn node_index(&self, id: &str) -> usize {
        self.nodes
            .iter()
            .position(|x| x.id == id)
            .expect("peers are nodes")
    }

    /// The delay of a liveness message from `from` to `to`, `None` while a partition blocks
    /// the link (the sessions are TCP: nothing is lost or reordered otherwise).
    fn heartbeat_delay(&mut self, from: usize, to: usize) -> Option<u64> {
        if self.blocked.contains_key(&(from, to)) {
            return None;
        }
        Some(self.rng_net.range(0, self.opts.net_delay_max_ms))
    }
}
