//! Placement: which node owns an account, by consistent hashing with virtual nodes.

use hashring::HashRing;
use std::hash::{Hash, Hasher};

/// A member of the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Node id.
    pub node_id: String,
    /// HTTP address.
    pub http: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct VNode {
    node_id: String,
    index: u32,
}

impl Hash for VNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.node_id.hash(state);
        self.index.hash(state);
    }
}

/// The ring over the live members: identical on every node for the same member set, since
/// placement depends only on member ids and the virtual-node count.
pub struct Ring {
    ring: HashRing<VNode>,
    members: Vec<Member>,
    vnodes: u32,
}

impl Ring {
    /// A ring over `members`, each with `vnodes` virtual nodes.
    pub fn new(mut members: Vec<Member>, vnodes: u32) -> Self {
        assert!(vnodes >= 1, "a ring needs virtual nodes");
        assert!(!members.is_empty(), "a ring needs a member");
        members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        let mut ring = HashRing::new();
        for m in &members {
            for index in 0..vnodes {
                ring.add(VNode {
                    node_id: m.node_id.clone(),
                    index,
                });
            }
        }
        Ring {
            ring,
            members,
            vnodes,
        }
    }

    /// The member that owns `account`.
    pub fn owner(&self, account: &str) -> &Member {
        let v = self
            .ring
            .get(&account)
            .expect("a non-empty ring has an owner");
        self.members
            .iter()
            .find(|m| m.node_id == v.node_id)
            .expect("every virtual node belongs to a member")
    }

    /// The members, sorted by id.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Each member's share of a sample of account ids (an estimate of its ring share).
    pub fn shares(&self) -> Vec<(String, f64)> {
        const SAMPLE: u32 = 4_096;
        let mut counts: Vec<(String, u32)> = self
            .members
            .iter()
            .map(|m| (m.node_id.clone(), 0))
            .collect();
        for i in 0..SAMPLE {
            let owner = &self.owner(&format!("sample-{i}")).node_id;
            if let Some(c) = counts.iter_mut().find(|(n, _)| n == owner) {
                c.1 += 1;
            }
        }
        let _ = self.vnodes;
        counts
            .into_iter()
            .map(|(n, c)| (n, c as f64 / SAMPLE as f64))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str) -> Member {
        Member {
            node_id: id.into(),
            http: format!("{id}:80"),
        }
    }

    #[test]
    fn placement_same_members_in_any_order_give_same_owners() {
        // Proves every node computes the same owner for the same member set.
        let a = Ring::new(vec![m("n1"), m("n2"), m("n3")], 64);
        let b = Ring::new(vec![m("n3"), m("n1"), m("n2")], 64);
        for i in 0..500 {
            let acct = format!("acct-{i}");
            assert_eq!(a.owner(&acct), b.owner(&acct));
        }
        let shares = a.shares();
        assert!(shares.iter().all(|(_, s)| *s > 0.15), "{shares:?}");
    }
}
