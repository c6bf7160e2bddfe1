//! Faults and healing: node crashes and restarts, partitions, forced passivations and drains,
//! membership churn with a lag per node, storage outages (hangs are in [`super::liveness`]).
//!
//! Each fault class is on for about half the seeds ([`crate::options`]); an enabled fault
//! fires again after a time drawn around its mean, until the liveness phase heals everything.
//! A crash loses the node's actors and everything in flight on it (its storage is shared and
//! never lost); with churn on, the crashed node also leaves the ring, as failure detection
//! would take it out. A membership change reaches each node after its own lag, so rings
//! disagree for a while.

use super::*;

impl Sim {
    /// Brings a crashed node back (it rejoins the ring when churn is on).
    pub(super) fn restart(&mut self, n: usize) {
        let latest = self.memberships.len() - 1;
        let names: Vec<String> = self.nodes.iter().map(|x| x.id.clone()).collect();
        let ring = ring_of(&self.memberships[latest], &names, self.opts.vnodes);
        let node = &mut self.nodes[n];
        node.alive = true;
        node.ring = ring;
        node.ring_version = latest;
        let life = node.life;
        trace!(self, "n{} restarts", n + 1);
        self.at(1, Event::Sweep { node: n, life });
        if self.detecting() {
            self.at(1, Event::HeartbeatTick { node: n, life });
        }
        // With a membership service (churn) or failure detection (which may have dropped it),
        // the restarted node joins the ring, as a new session does.
        let rejoins = self.opts.churn_every_ms > 0 || self.detecting();
        if rejoins && !self.memberships[latest].contains(&n) {
            let mut m = self.memberships[latest].clone();
            m.insert(n);
            self.change_membership(m, self.opts.ring_lag_max_ms);
        }
    }

    pub(super) fn change_membership(&mut self, members: BTreeSet<usize>, lag_max: u64) {
        assert!(!members.is_empty(), "membership never empties");
        self.stats.churns += 1;
        self.memberships.push(members);
        let version = self.memberships.len() - 1;
        trace!(
            self,
            "membership v{version}: {:?}",
            self.memberships[version]
        );
        for node in 0..self.nodes.len() {
            let lag = self.rng_fault.range(0, lag_max);
            self.at(lag, Event::RingUpdate { node, version });
        }
    }

    pub(super) fn again(&mut self, every: u64, ev: Event) {
        if !self.healed {
            let t = self.rng_fault.around(every);
            self.at(t, ev);
        }
    }

    pub(super) fn fault_crash(&mut self) {
        if self.healed {
            return;
        }
        let alive: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].alive)
            .collect();
        if !alive.is_empty() {
            let n = *self.rng_fault.pick(&alive);
            self.stats.crashes += 1;
            let committer = group::NodeCommitter::new(&self.opts);
            let node = &mut self.nodes[n];
            node.alive = false;
            node.life += 1;
            node.actors.clear();
            node.group = committer;
            node.liveness = liveness::Liveness::new(node.life, &self.opts);
            self.forget_node(n);
            self.streams_node_down(n);
            trace!(self, "CRASH n{}", n + 1);
            let down = self.rng_fault.range(1, self.opts.down_max_ms);
            self.at(down, Event::Restart(n));
            // With a membership service, the crashed node is taken off the ring (failover).
            let latest = self.memberships.last().expect("one").clone();
            if self.opts.churn_every_ms > 0 && latest.contains(&n) && latest.len() > 1 {
                let mut m = latest;
                m.remove(&n);
                self.change_membership(m, self.opts.ring_lag_max_ms);
            }
        }
        self.again(self.opts.crash_every_ms, Event::FaultCrash);
    }

    pub(super) fn fault_partition(&mut self) {
        if self.healed {
            return;
        }
        let n = self.nodes.len() as u64;
        let a = self.rng_fault.below(n) as usize;
        let mut b = self.rng_fault.below(n - 1) as usize;
        if b >= a {
            b += 1;
        }
        let len = self.rng_fault.range(1, self.opts.partition_max_ms);
        let mut links = Vec::new();
        match self.rng_fault.below(3) {
            0 => links.push((a, b)),             // one-way
            1 => links.extend([(a, b), (b, a)]), // symmetric pair
            _ => {
                for o in 0..self.nodes.len() {
                    // isolate a
                    if o != a {
                        links.extend([(a, o), (o, a)]);
                    }
                }
            }
        }
        self.stats.partitions += 1;
        trace!(self, "PARTITION {links:?} for {len} ms");
        for l in links {
            *self.blocked.entry(l).or_insert(0) += 1;
            self.at(len, Event::Heal(l.0, l.1));
        }
        self.again(self.opts.partition_every_ms, Event::FaultPartition);
    }

    /// Stops one actor: half the time as idle passivation (through its driver, which stops
    /// only an idle activation), half the time as a drain (shutdown, or the account moving
    /// away: any quiet actor stops, its open sagas left to the sweep).
    pub(super) fn fault_passivate(&mut self) {
        if self.healed {
            return;
        }
        let drain = self.rng_fault.chance(500_000);
        let mut pick = Vec::new();
        for (n, node) in self.nodes.iter().enumerate() {
            // A hung node does nothing, passivations included.
            if !node.alive || node.liveness.hung {
                continue;
            }
            for (id, a) in &node.actors {
                let fits = if drain {
                    a.driver.is_quiet()
                } else {
                    a.driver.is_idle()
                };
                if fits {
                    pick.push((n, id.clone()));
                }
            }
        }
        if !pick.is_empty() {
            let (n, id) = self.rng_fault.pick(&pick).clone();
            self.stats.passivations += 1;
            trace!(
                self,
                "PASSIVATE n{} {id}{}",
                n + 1,
                if drain { " (drain)" } else { "" }
            );
            if drain {
                self.drain_actor(n, &id);
            } else {
                let stopped = self.actor_passivate(n, &id);
                assert!(stopped, "an idle driver passivates");
            }
        }
        self.again(self.opts.passivate_every_ms, Event::FaultPassivate);
    }

    pub(super) fn fault_churn(&mut self) {
        if self.healed {
            return;
        }
        let n = self.rng_fault.below(self.nodes.len() as u64) as usize;
        let mut m = self.memberships.last().expect("one").clone();
        if m.contains(&n) {
            if m.len() > 1 {
                m.remove(&n);
                self.change_membership(m, self.opts.ring_lag_max_ms);
            }
        } else if self.nodes[n].alive {
            m.insert(n);
            self.change_membership(m, self.opts.ring_lag_max_ms);
        }
        self.again(self.opts.churn_every_ms, Event::FaultChurn);
    }

    pub(super) fn fault_outage(&mut self) {
        if self.healed {
            return;
        }
        let len = self.rng_fault.range(1, self.opts.outage_max_ms);
        self.stats.outages += 1;
        trace!(self, "STORAGE OUTAGE {len} ms");
        self.backend.outage_until(self.now + len);
        self.again(self.opts.outage_every_ms, Event::FaultOutage);
    }
}
