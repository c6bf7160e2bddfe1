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
//! A host that stopped (a bug made it panic; ractor catches it) lost its activations; the next
//! send to it starts a new host with an empty table, and its accounts re-activate on their
//! next message (the lease fences anything the lost activations still had in flight).

use super::host::{AccountMsg, Host, HostArgs, HostMsg};
use super::table::Table;
use super::{unavailable, Shell};
use protocol::{AccountId, ApiError};
use ractor::{Actor, ActorRef};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use tokio::sync::oneshot;

pub use super::table::{EVICTION_ASKS_MAX, IDLE_SCAN_BATCH_MAX};

/// Hosts per core of the machine.
pub const HOSTS_PER_CORE: usize = 4;

/// A running host and its table.
#[derive(Clone)]
struct Running {
    actor: ActorRef<HostMsg>,
    table: Arc<Mutex<Table>>,
}

/// The hosts of this node.
pub struct Directory {
    hosts: OnceLock<Vec<RwLock<Running>>>,
    /// Serializes restarts of stopped hosts.
    restart: tokio::sync::Mutex<()>,
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
            restart: tokio::sync::Mutex::new(()),
            count,
            active_max,
            active: AtomicUsize::new(0),
        }
    }

    /// Starts the hosts (once, on the current tokio runtime).
    pub async fn start(&self, shell: &Shell) {
        let mut hosts = Vec::with_capacity(self.count);
        for i in 0..self.count {
            hosts.push(RwLock::new(self.spawn(shell, i).await));
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
            table: table.clone(),
        };
        let (actor, _join) = Actor::spawn(None, Host, args)
            .await
            .expect("a host's start cannot fail");
        Running { actor, table }
    }

    fn index(&self, id: &AccountId) -> usize {
        let mut h = DefaultHasher::new();
        id.as_str().hash(&mut h);
        (h.finish() % self.count as u64) as usize
    }

    fn running(&self, i: usize) -> Running {
        let hosts = self.hosts.get().expect("the hosts were started");
        hosts[i].read().expect("host slot").clone()
    }

    fn all(&self) -> Vec<Running> {
        (0..self.count).map(|i| self.running(i)).collect()
    }

    /// Number of active accounts.
    pub fn len(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// True when no account is active.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn activated(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn deactivated(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether the account is active on this node.
    pub fn is_active(&self, id: &AccountId) -> bool {
        let table = self.running(self.index(id)).table;
        // A poisoned table belongs to a host that stopped: none of its accounts is active.
        let active = table.lock().map(|t| t.contains(id)).unwrap_or(false);
        active
    }

    /// Hands a message to the account's host at once; gives it back if the host stopped.
    pub(crate) fn try_send(&self, id: &AccountId, msg: AccountMsg) -> Result<(), AccountMsg> {
        let host = self.running(self.index(id)).actor;
        match host.send_message(HostMsg::To(id.clone(), msg)) {
            Ok(()) => Ok(()),
            Err(ractor::MessagingErr::SendErr(HostMsg::To(_, msg))) => Err(msg),
            Err(_) => unreachable!("a refused message comes back"),
        }
    }

    /// Hands a message to the account's host, restarting the host if it stopped.
    pub(crate) async fn send(
        &self,
        shell: &Shell,
        id: &AccountId,
        msg: AccountMsg,
    ) -> Result<(), ApiError> {
        let msg = match self.try_send(id, msg) {
            Ok(()) => return Ok(()),
            Err(msg) => msg,
        };
        self.restart(shell, self.index(id)).await;
        self.try_send(id, msg)
            .map_err(|_| unavailable("the account's host stopped"))
    }

    /// Replaces host `i` if it stopped; its accounts are forgotten.
    async fn restart(&self, shell: &Shell, i: usize) {
        let _one = self.restart.lock().await;
        let old = self.running(i);
        if old.actor.get_status() != ractor::ActorStatus::Stopped {
            return; // running, or restarted meanwhile
        }
        let lost = old
            .table
            .lock()
            .map_or_else(|e| e.into_inner().len(), |t| t.len());
        tracing::error!(
            host = i,
            accounts = lost,
            "an account host stopped (a bug); its accounts re-activate on their next message"
        );
        self.active.fetch_sub(lost, Ordering::Relaxed);
        let new = self.spawn(shell, i).await;
        let hosts = self.hosts.get().expect("the hosts were started");
        *hosts[i].write().expect("host slot") = new;
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
}
