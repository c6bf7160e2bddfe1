//! The directory: which host runs an account, and the node's count of active accounts.
//!
//! A node runs [`HOSTS_PER_CORE`] hosts per core ([`super::host`]); an account always goes to
//! the same one (a hash of its id), so it has at most one activation on the node, and its
//! inputs reach it in the order they were sent. Activation is the host's: any input to an
//! account it does not run activates it, so sending is one mailbox push, with no lookup to
//! await and no slot to wait for.
//!
//! `active_max` is split over the hosts (shares that add up to it exactly; a node whose cap is
//! below its number of hosts runs one host per account it may hold), and each asks its least
//! recently used accounts to passivate when it holds its share: a least-recently-used order
//! per host, as in a sharded cache. The driver stops only an idle account, so the cap is soft:
//! when they are all busy a new activation still starts.
//!
//! A bug that panics while a host handles an account costs that account's activation only (the
//! host catches the panic, drops the activation and goes on), as a panic cost one actor when
//! each account had its own.

use super::host::{AccountMsg, Host, HostArgs, HostMsg};
use super::table::Table;
use super::{unavailable, Shell};
use protocol::{AccountId, ApiError};
use ractor::{Actor, ActorRef};
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::oneshot;

pub use super::table::{EVICTION_ASKS_MAX, IDLE_SCAN_BATCH_MAX};

/// The 64-bit hash of an account id that places it on a host.
fn hash(id: &AccountId) -> u64 {
    let mut h = DefaultHasher::new();
    id.as_str().hash(&mut h);
    h.finish()
}

/// Hosts per core of the machine.
pub const HOSTS_PER_CORE: usize = 4;

/// A running host.
#[derive(Clone)]
struct Running {
    actor: ActorRef<HostMsg>,
}

/// The hosts of this node.
pub struct Directory {
    hosts: OnceLock<Vec<Running>>,
    /// Per host, the hashes of its active accounts: read by [`Directory::is_active`] without
    /// waiting for the host's table, which its host holds while it handles a message (a hot
    /// account's host is busy most of the time).
    active_ids: Vec<Mutex<HashSet<u64>>>,
    count: usize,
    active_max: usize,
    active: AtomicUsize,
}

impl Directory {
    /// A directory for a node with a cap on active accounts; no host runs before
    /// [`Directory::start`].
    pub fn new(active_max: usize) -> Self {
        assert!(active_max >= 1, "active_max must be at least 1");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let count = (cores * HOSTS_PER_CORE).min(active_max);
        Directory {
            hosts: OnceLock::new(),
            active_ids: (0..count).map(|_| Mutex::new(HashSet::new())).collect(),
            count,
            active_max,
            active: AtomicUsize::new(0),
        }
    }

    /// Starts the hosts (once, on the current tokio runtime).
    pub async fn start(&self, shell: &Shell) {
        let mut hosts = Vec::with_capacity(self.count);
        for i in 0..self.count {
            hosts.push(self.spawn(shell, i).await);
        }
        assert!(
            self.hosts.set(hosts).is_ok(),
            "the directory starts its hosts once"
        );
    }

    /// Host `i`'s share of `active_max`.
    fn cap(&self, i: usize) -> usize {
        self.active_max / self.count + usize::from(i < self.active_max % self.count)
    }

    async fn spawn(&self, shell: &Shell, i: usize) -> Running {
        let table = Arc::new(Mutex::new(Table::new(self.cap(i))));
        let args = HostArgs {
            shell: shell.clone(),
            table,
        };
        let (actor, _join) = Actor::spawn(None, Host, args)
            .await
            .expect("a host's start cannot fail");
        Running { actor }
    }

    fn index(&self, id: &AccountId) -> usize {
        self.place(id).0
    }

    /// The account's host and its id's hash, hashing once.
    fn place(&self, id: &AccountId) -> (usize, u64) {
        let h = hash(id);
        ((h % self.count as u64) as usize, h)
    }

    fn running(&self, i: usize) -> &Running {
        &self.hosts.get().expect("the hosts were started")[i]
    }

    fn all(&self) -> &[Running] {
        self.hosts.get().expect("the hosts were started")
    }

    /// Number of active accounts.
    pub fn len(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// True when no account is active.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts an activation of `id` (called by its host).
    pub(crate) fn activated(&self, id: &AccountId) {
        self.active.fetch_add(1, Ordering::Relaxed);
        let (i, h) = self.place(id);
        self.active_ids[i].lock().expect("active ids").insert(h);
    }

    /// Counts the end of an activation of `id` (called by its host).
    pub(crate) fn deactivated(&self, id: &AccountId) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        let (i, h) = self.place(id);
        self.active_ids[i].lock().expect("active ids").remove(&h);
    }

    /// Whether the account is active on this node (by a 64-bit hash of its id: two active
    /// ids with one hash would make one of them look active for a while, which only costs
    /// the storage read that spares a never-opened account its activation).
    pub fn is_active(&self, id: &AccountId) -> bool {
        let (i, h) = self.place(id);
        let active = self.active_ids[i].lock().expect("active ids").contains(&h);
        active
    }

    /// Hands a message to the account's host at once; gives it back if the host stopped.
    pub(crate) fn try_send(&self, id: &AccountId, msg: AccountMsg) -> Result<(), AccountMsg> {
        let host = &self.running(self.index(id)).actor;
        match host.send_message(HostMsg::To(id.clone(), msg)) {
            Ok(()) => Ok(()),
            Err(ractor::MessagingErr::SendErr(HostMsg::To(_, msg))) => Err(msg),
            Err(_) => unreachable!("a refused message comes back"),
        }
    }

    /// Hands a message to the account's host.
    pub(crate) fn send(&self, id: &AccountId, msg: AccountMsg) -> Result<(), ApiError> {
        self.try_send(id, msg)
            .map_err(|_| unavailable("the node is stopping"))
    }

    /// The index of the account's host (tests pick accounts that share one).
    #[cfg(test)]
    pub(crate) fn host_of(&self, id: &AccountId) -> usize {
        self.index(id)
    }

    /// Sends a message to the account's host (tests plant faults with it).
    #[cfg(test)]
    pub(crate) fn send_host(&self, id: &AccountId, msg: HostMsg) {
        let sent = self.running(self.index(id)).actor.send_message(msg);
        assert!(sent.is_ok(), "the host takes messages");
    }

    /// Asks every host to passivate its accounts unused for `idle`.
    pub fn idle_scan(&self, idle: Duration) {
        for host in self.all() {
            let _ = host.actor.send_message(HostMsg::IdleScan(idle));
        }
    }

    /// Drains the accounts this node no longer owns (each commits what it has queued, then
    /// stops; the new owner activates it on its next message). Returns how many.
    pub async fn drain_moved(&self) -> usize {
        let mut asks = Vec::with_capacity(self.count);
        for host in self.all() {
            let (tx, rx) = oneshot::channel();
            if host.actor.send_message(HostMsg::DrainMoved(tx)).is_ok() {
                asks.push(rx);
            }
        }
        let mut n = 0;
        for rx in asks {
            n += rx.await.unwrap_or(0);
        }
        n
    }

    /// Drains every account, and waits until none is left.
    pub async fn drain_all(&self) {
        let mut asks = Vec::with_capacity(self.count);
        for host in self.all() {
            let (tx, rx) = oneshot::channel();
            if host.actor.send_message(HostMsg::DrainAll(tx)).is_ok() {
                asks.push(rx);
            }
        }
        for rx in asks {
            let _ = rx.await;
        }
    }

    /// Stops the hosts (the last step of a shutdown, after [`Directory::drain_all`]); later
    /// messages are refused.
    pub fn stop_all(&self) {
        for host in self.all() {
            host.actor.stop(None);
        }
    }
}
