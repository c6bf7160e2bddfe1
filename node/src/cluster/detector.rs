//! Failure detection: which members went silent, and whether this node itself stalled.
//!
//! Every member sends every other a heartbeat each `heartbeat_ms`, carrying its
//! *incarnation*: a number that starts at the node's start time (so a restarted node always
//! comes back with a larger one) and grows by one each time the node rejoins. The detector is
//! the pure, deterministic core of the protocol: it is told what was heard and when, and on
//! each tick says what to do. The membership applies its verdicts; the simulator runs the same
//! detector.
//!
//! - A peer silent for `failure_timeout_ms` is **dropped**: it leaves this node's ring (its
//!   accounts re-activate on the others; the lease epoch fences whatever it still holds).
//! - A dropped peer that speaks again with the incarnation it was dropped at is **stale**: it
//!   has not learnt yet. It is told (a `Dropped` message naming that incarnation), passivates
//!   everything it held and rejoins with a larger incarnation, which **revives** it here.
//! - A node whose own ticks were `failure_timeout_ms` apart was stopped itself (a `SIGSTOP`,
//!   a long pause of the machine): its peers must have dropped it. It **stalls**: it rejoins
//!   at once, without waiting to be told, and gives each peer a fresh silence window (it heard
//!   nothing while stopped, through no fault of theirs).
//!
//! Left out: indirect probes through a third member and suspicion levels (a member is up or
//! dropped). Sessions are TCP, so a silent member is a hung process or machine, not a lossy
//! link.

use std::collections::BTreeMap;

/// What hearing from a peer means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard {
    /// A live member (or a new one): nothing to do.
    Live,
    /// A dropped peer came back with a newer incarnation: it is a member again.
    Revived,
    /// A dropped peer speaks with the incarnation it was dropped at: tell it it was dropped.
    Stale {
        /// The incarnation it was dropped at (the one to name in the message).
        incarnation: u64,
    },
}

/// What a tick found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// This peer was silent too long: take it out of the ring, and tell it.
    Drop {
        /// The peer.
        peer: String,
        /// Its incarnation (the one the message names).
        incarnation: u64,
    },
    /// This node was stopped for longer than the timeout: passivate and rejoin with the new
    /// incarnation.
    Stalled {
        /// The incarnation to rejoin with.
        incarnation: u64,
    },
}

#[derive(Clone, Debug)]
struct Liveness {
    last_heard_ms: u64,
    incarnation: u64,
    dropped: bool,
}

/// One node's failure detector (times are milliseconds on a monotonic clock).
#[derive(Clone, Debug)]
pub struct Detector {
    heartbeat_ms: u64,
    timeout_ms: u64,
    incarnation: u64,
    last_tick_ms: Option<u64>,
    peers: BTreeMap<String, Liveness>,
}

impl Detector {
    /// A detector for a node starting with `incarnation`, ticking every `heartbeat_ms` and
    /// dropping peers silent for `timeout_ms`.
    pub fn new(incarnation: u64, heartbeat_ms: u64, timeout_ms: u64) -> Self {
        assert!(
            heartbeat_ms > 0 && timeout_ms > heartbeat_ms,
            "a failure timeout is longer than the heartbeat"
        );
        Detector {
            heartbeat_ms,
            timeout_ms,
            incarnation,
            last_tick_ms: None,
            peers: BTreeMap::new(),
        }
    }

    /// This node's incarnation (sent with every heartbeat and introduction).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Whether `peer` is dropped (out of the ring until it rejoins).
    pub fn is_dropped(&self, peer: &str) -> bool {
        self.peers.get(peer).is_some_and(|l| l.dropped)
    }

    /// The peers dropped now.
    pub fn dropped(&self) -> impl Iterator<Item = &str> {
        self.peers
            .iter()
            .filter(|(_, l)| l.dropped)
            .map(|(id, _)| id.as_str())
    }

    /// `peer` was heard (a heartbeat or an introduction) with `incarnation` at `now_ms`. A
    /// peer of an older release (incarnation 0) sends no heartbeat: it is not watched.
    pub fn heard(&mut self, peer: &str, incarnation: u64, now_ms: u64) -> Heard {
        if incarnation == 0 {
            self.peers.remove(peer);
            return Heard::Live;
        }
        let Some(l) = self.peers.get_mut(peer) else {
            self.peers.insert(
                peer.to_owned(),
                Liveness {
                    last_heard_ms: now_ms,
                    incarnation,
                    dropped: false,
                },
            );
            return Heard::Live;
        };
        if l.dropped {
            if incarnation > l.incarnation {
                *l = Liveness {
                    last_heard_ms: now_ms,
                    incarnation,
                    dropped: false,
                };
                return Heard::Revived;
            }
            return Heard::Stale {
                incarnation: l.incarnation,
            };
        }
        l.last_heard_ms = l.last_heard_ms.max(now_ms);
        l.incarnation = l.incarnation.max(incarnation);
        Heard::Live
    }

    /// The session to `peer` ended: forget it (a new session starts it afresh).
    pub fn forget(&mut self, peer: &str) {
        self.peers.remove(peer);
    }

    /// A peer says this node was dropped at `incarnation`. True when that is news: this node
    /// takes a new incarnation and must passivate and rejoin; false for an older incarnation
    /// (it rejoined since).
    pub fn told_dropped(&mut self, incarnation: u64, now_ms: u64) -> bool {
        if incarnation < self.incarnation {
            return false;
        }
        // Equal, or larger (this node restarted with a clock behind its last life's): go past
        // it, or the peer would keep it dropped for ever.
        self.incarnation = incarnation;
        self.rejoin(now_ms);
        true
    }

    /// The periodic check at `now_ms`: what to drop, or whether this node stalled.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Verdict> {
        let gap = self
            .last_tick_ms
            .map_or(0, |last| now_ms.saturating_sub(last));
        self.last_tick_ms = Some(now_ms);
        if gap >= self.timeout_ms {
            self.rejoin(now_ms);
            return vec![Verdict::Stalled {
                incarnation: self.incarnation,
            }];
        }
        if gap > 2 * self.heartbeat_ms {
            // This node was stopped for a while, under the timeout: what its peers sent meanwhile
            // still waits in its sockets and mailboxes. Only silence while it was ticking on time
            // counts against them.
            let late = gap - self.heartbeat_ms;
            for l in self.peers.values_mut() {
                l.last_heard_ms = (l.last_heard_ms + late).min(now_ms);
            }
        }
        let mut verdicts = Vec::new();
        for (id, l) in &mut self.peers {
            if !l.dropped && now_ms.saturating_sub(l.last_heard_ms) >= self.timeout_ms {
                l.dropped = true;
                verdicts.push(Verdict::Drop {
                    peer: id.clone(),
                    incarnation: l.incarnation,
                });
            }
        }
        verdicts
    }

    /// A new incarnation, and a fresh silence window for every peer (this node heard nothing
    /// while it was stopped).
    fn rejoin(&mut self, now_ms: u64) {
        self.incarnation += 1;
        for l in self.peers.values_mut() {
            l.last_heard_ms = l.last_heard_ms.max(now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drop(peer: &str, incarnation: u64) -> Verdict {
        Verdict::Drop {
            peer: peer.into(),
            incarnation,
        }
    }

    #[test]
    fn a_silent_peer_is_dropped_once_after_the_timeout() {
        // Proves a peer heard at 0 survives ticks before 3000 ms and is dropped by the first
        // tick at 3000 ms, once; a peer that keeps speaking is never dropped.
        let mut d = Detector::new(100, 500, 3_000);
        assert_eq!(d.heard("b", 7, 0), Heard::Live);
        assert_eq!(d.heard("c", 9, 0), Heard::Live);
        for t in (500..3_000).step_by(500) {
            d.heard("c", 9, t);
            assert!(d.tick(t).is_empty(), "nothing is dropped at {t}");
        }
        d.heard("c", 9, 3_000);
        assert_eq!(d.tick(3_000), vec![drop("b", 7)]);
        assert!(d.is_dropped("b") && !d.is_dropped("c"));
        assert_eq!(d.dropped().collect::<Vec<_>>(), vec!["b"]);
        assert!(d.tick(3_500).is_empty(), "dropped once");
    }

    #[test]
    fn a_dropped_peer_is_told_until_it_rejoins_with_a_newer_incarnation() {
        // Proves a dropped peer's heartbeats at its old incarnation are answered Stale with
        // that incarnation, and a newer incarnation revives it with a fresh window.
        let mut d = Detector::new(100, 500, 3_000);
        d.heard("b", 7, 0);
        for t in (500..=3_000).step_by(500) {
            d.tick(t);
        }
        assert!(d.is_dropped("b"));
        assert_eq!(d.heard("b", 7, 3_100), Heard::Stale { incarnation: 7 });
        assert_eq!(d.heard("b", 6, 3_100), Heard::Stale { incarnation: 7 });
        assert_eq!(d.heard("b", 8, 3_200), Heard::Revived);
        assert!(!d.is_dropped("b"));
        for t in (3_500..6_500).step_by(500) {
            assert!(
                d.tick(t).is_empty(),
                "revived with a fresh window: nothing at {t}"
            );
        }
        assert_eq!(d.tick(6_500), vec![drop("b", 8)]);
    }

    #[test]
    fn a_node_stopped_longer_than_the_timeout_stalls_and_spares_its_peers() {
        // Proves ticks 3000 ms apart make the node stall (new incarnation) and drop nobody,
        // although it heard nothing while stopped; the next ordinary tick drops nobody either.
        let mut d = Detector::new(100, 500, 3_000);
        d.heard("b", 7, 0);
        assert!(d.tick(400).is_empty());
        assert_eq!(d.tick(10_000), vec![Verdict::Stalled { incarnation: 101 }]);
        assert_eq!(d.incarnation(), 101);
        assert!(!d.is_dropped("b"));
        d.heard("b", 7, 10_100);
        assert!(d.tick(10_500).is_empty());
    }

    #[test]
    fn being_told_of_a_drop_is_news_only_for_the_current_incarnation() {
        // Proves the first Dropped naming this incarnation starts a rejoin, and repeats of it
        // (several peers, several heartbeats) do not start another; one naming a larger
        // incarnation (this node restarted with its clock behind) moves past it.
        let mut d = Detector::new(100, 500, 3_000);
        d.heard("b", 7, 0);
        assert!(d.told_dropped(100, 50));
        assert_eq!(d.incarnation(), 101);
        assert!(!d.told_dropped(100, 60));
        assert!(!d.told_dropped(99, 60));
        assert_eq!(d.incarnation(), 101);
        assert!(d.told_dropped(500, 70));
        assert_eq!(d.incarnation(), 501);
    }

    #[test]
    fn a_pause_just_under_the_timeout_drops_nobody() {
        // Proves a node stopped for a little less than the timeout does not blame its peers for
        // the silence it caused: its first tick after the pause drops nobody (the heartbeats
        // sent meanwhile are still on their way in), and a peer that then stays silent is
        // dropped once the timeout passed on ticks that came on time.
        let mut d = Detector::new(100, 500, 3_000);
        d.heard("b", 7, 400);
        assert!(d.tick(500).is_empty());
        assert!(
            d.tick(3_410).is_empty(),
            "paused 2910 ms: not stalled, nobody dropped"
        );
        assert_eq!(d.incarnation(), 100);
        // Silent from 400 for 3000 ms of on-time ticking: 400 + 2410 (the pause, less one
        // interval) + 3000 = 5810, so the tick at 5910 drops it.
        for t in (3_910..5_910).step_by(500) {
            assert!(d.tick(t).is_empty(), "nothing is dropped at {t}");
        }
        assert_eq!(d.tick(5_910), vec![drop("b", 7)]);
    }

    #[test]
    fn a_peer_of_an_older_release_is_not_watched() {
        // Proves a peer introduced with incarnation 0 (it sends no heartbeat) is never dropped.
        let mut d = Detector::new(100, 500, 3_000);
        assert_eq!(d.heard("old", 0, 0), Heard::Live);
        for t in (500..=10_000).step_by(500) {
            assert!(d.tick(t).is_empty());
        }
        assert!(!d.is_dropped("old"));
    }

    #[test]
    fn a_forgotten_peer_starts_afresh() {
        // Proves a peer whose session ended is forgotten: heard again, it is live, not stale.
        let mut d = Detector::new(100, 500, 3_000);
        d.heard("b", 7, 0);
        d.tick(3_000);
        assert!(d.is_dropped("b"));
        d.forget("b");
        assert_eq!(d.heard("b", 7, 3_100), Heard::Live);
        assert!(!d.is_dropped("b"));
    }
}
