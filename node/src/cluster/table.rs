//! The accounts one host runs: their activations, their order of use, and the callers they
//! answer.
//!
//! A [`Table`] is plain data, owned by one host ([`super::host`]) and read by the directory
//! (is an account active?). An activation is a [`Slot`]: the account's driver, a generation
//! that tells its events from those of an earlier activation of the same account, and whether
//! it drains. Callers waiting for an answer or a settlement are kept per table, keyed by
//! (generation, request), so an account holds no map of its own: an idle account costs its
//! driver and two index entries.
//!
//! The table keeps its accounts in order of last use. A host over its share of `active_max`
//! asks its least recently used accounts to passivate ([`Table::evictions`]), and the idle scan
//! asks those unused for `idle_passivate_ms` ([`Table::idle`]); both go through the driver,
//! which stops only an idle activation.

use super::host::CommandReply;
use crate::ledger::account::ReqId;
use crate::ledger::driver::Driver;
use protocol::api::TransferView;
use protocol::AccountId;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

/// Most idle accounts of one host asked to passivate per chunk of an idle scan (a scan goes
/// on in further chunks, each behind the host's waiting messages, until none is left).
pub const IDLE_SCAN_BATCH_MAX: usize = 1_024;
/// Most least-recently-used accounts asked to passivate per activation over the cap.
pub const EVICTION_ASKS_MAX: usize = 8;

/// One activation of an account.
pub struct Slot {
    /// Tells this activation's events (flush, timer, backoff, work done) from an earlier one's.
    pub gen: u64,
    /// The account's driver.
    pub driver: Driver,
    /// Stop as soon as the driver is drainable (shutdown, or the account moved away).
    pub draining: bool,
    /// The armed saga timer.
    pub timer: Option<AbortHandle>,
    /// Its place in the order of use.
    tick: u64,
}

impl Slot {
    /// Disarms the saga timer.
    pub fn cancel_timer(&mut self) {
        if let Some(t) = self.timer.take() {
            t.abort();
        }
    }
}

/// The activations of one host.
pub struct Table {
    slots: HashMap<AccountId, Box<Slot>>,
    /// Accounts by last use: the first is the least recently used.
    lru: BTreeMap<u64, (AccountId, Instant)>,
    tick: u64,
    next_gen: u64,
    cap: usize,
    /// Callers waiting for a command's answer.
    pub replies: BTreeMap<(u64, ReqId), oneshot::Sender<CommandReply>>,
    /// Callers waiting for a transfer's settlement.
    pub waiters: BTreeMap<(u64, ReqId), oneshot::Sender<TransferView>>,
}

impl Table {
    /// An empty table that asks for evictions past `cap` activations.
    pub fn new(cap: usize) -> Self {
        assert!(cap >= 1, "a host runs at least one account");
        Table {
            slots: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            next_gen: 0,
            cap,
            replies: BTreeMap::new(),
            waiters: BTreeMap::new(),
        }
    }

    /// Number of activations.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no account is active.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether the account is active here.
    pub fn contains(&self, id: &AccountId) -> bool {
        self.slots.contains_key(id)
    }

    /// The account's activation.
    pub fn get_mut(&mut self, id: &AccountId) -> Option<&mut Slot> {
        self.slots.get_mut(id).map(|b| &mut **b)
    }

    /// The activation with generation `gen`, if it is still the account's.
    pub fn current(&mut self, id: &AccountId, gen: u64) -> Option<&mut Slot> {
        self.get_mut(id).filter(|s| s.gen == gen)
    }

    /// Every active account.
    pub fn ids(&self) -> Vec<AccountId> {
        self.slots.keys().cloned().collect()
    }

    /// Starts an activation of `id` (which must not be active) around `driver`; returns its
    /// generation.
    pub fn insert(&mut self, id: AccountId, driver: Driver, draining: bool) -> u64 {
        assert!(!self.slots.contains_key(&id), "{id} is already active");
        self.next_gen += 1;
        self.tick += 1;
        let slot = Slot {
            gen: self.next_gen,
            driver,
            draining,
            timer: None,
            tick: self.tick,
        };
        self.lru.insert(self.tick, (id.clone(), Instant::now()));
        self.slots.insert(id, Box::new(slot));
        self.next_gen
    }

    /// Marks the account as just used.
    pub fn touch(&mut self, id: &AccountId) {
        let Some(slot) = self.slots.get(id) else {
            return;
        };
        if slot.tick == self.tick {
            // Already the most recently used (a busy account's inputs in a row): its place
            // stays, only its time of use moves.
            if let Some((_, used)) = self.lru.get_mut(&slot.tick) {
                *used = Instant::now();
            }
            return;
        }
        self.tick += 1;
        let now_tick = self.tick;
        if let Some(slot) = self.slots.get_mut(id) {
            let (id, _) = self.lru.remove(&slot.tick).expect("every slot has a place");
            slot.tick = now_tick;
            self.lru.insert(now_tick, (id, Instant::now()));
        }
    }

    /// Ends an activation: its timer is disarmed and its callers are dropped (a caller
    /// waiting for a settlement reports the transfer pending; one waiting for an answer
    /// reports the outcome unknown).
    pub fn remove(&mut self, id: &AccountId) -> Option<Box<Slot>> {
        let mut slot = self.slots.remove(id)?;
        self.lru.remove(&slot.tick);
        slot.cancel_timer();
        let gen = slot.gen;
        drop_gen(&mut self.replies, gen);
        drop_gen(&mut self.waiters, gen);
        Some(slot)
    }

    /// The least recently used accounts to ask to passivate so that one more activation fits
    /// under the cap; each is touched, so one that refuses is not asked again at once.
    pub fn evictions(&mut self) -> Vec<AccountId> {
        let over = (self.slots.len() + 1).saturating_sub(self.cap);
        let victims: Vec<AccountId> = self
            .lru
            .values()
            .take(over.min(EVICTION_ASKS_MAX))
            .map(|(id, _)| id.clone())
            .collect();
        for v in &victims {
            self.touch(v);
        }
        victims
    }

    /// Accounts unused for at least `idle`, oldest first, at most [`IDLE_SCAN_BATCH_MAX`];
    /// each is touched, so one that refuses to passivate is not asked again at once.
    pub fn idle(&mut self, idle: Duration) -> Vec<AccountId> {
        let ids: Vec<AccountId> = self
            .lru
            .values()
            .take_while(|(_, used)| used.elapsed() >= idle)
            .take(IDLE_SCAN_BATCH_MAX)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            self.touch(id);
        }
        ids
    }
}

/// Removes every entry of generation `gen`.
fn drop_gen<T>(map: &mut BTreeMap<(u64, ReqId), T>, gen: u64) {
    let tail = map.split_off(&(gen, ReqId::MIN));
    let mut rest = tail;
    let after = rest.split_off(&(gen + 1, ReqId::MIN));
    drop(rest);
    map.extend(after);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> AccountId {
        AccountId::new(s).expect("valid id")
    }

    fn table_with(cap: usize, ids: &[&str]) -> Table {
        let mut t = Table::new(cap);
        for s in ids {
            t.insert(id(s), Driver::new(id(s)), false);
        }
        t
    }

    #[test]
    fn evictions_name_the_least_recently_used_only_over_the_cap() {
        let mut t = table_with(3, &["a", "b"]);
        assert!(t.evictions().is_empty(), "a third fits under a cap of 3");
        t.insert(id("c"), Driver::new(id("c")), false);
        t.touch(&id("a"));
        assert_eq!(t.evictions(), vec![id("b")]);
        // b was touched when asked: the next ask names c.
        assert_eq!(t.evictions(), vec![id("c")]);
    }

    #[test]
    fn evictions_are_capped_per_activation() {
        let names: Vec<String> = (0..20).map(|i| format!("acct{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut t = table_with(1, &refs);
        assert_eq!(t.evictions().len(), EVICTION_ASKS_MAX);
    }

    #[test]
    fn idle_names_only_accounts_unused_long_enough() {
        let mut t = table_with(10, &["a", "b"]);
        assert!(t.idle(Duration::from_secs(3600)).is_empty());
        assert_eq!(t.idle(Duration::ZERO), vec![id("a"), id("b")]);
    }

    #[test]
    fn removal_drops_only_the_callers_of_that_activation() {
        let mut t = table_with(10, &["a", "b"]);
        let gen_a = t.get_mut(&id("a")).expect("a").gen;
        let gen_b = t.get_mut(&id("b")).expect("b").gen;
        let mut keep = Vec::new();
        for (gen, req) in [(gen_a, 1), (gen_a, 2), (gen_b, 1)] {
            let (tx, rx) = oneshot::channel();
            t.replies.insert((gen, req), tx);
            keep.push(rx);
        }
        let slot = t.remove(&id("a")).expect("a was active");
        assert_eq!(slot.gen, gen_a);
        assert!(!t.contains(&id("a")));
        assert_eq!(
            t.replies.keys().copied().collect::<Vec<_>>(),
            vec![(gen_b, 1)]
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.evictions().len(), 0);
        // A new activation of the same account has a new generation.
        t.insert(id("a"), Driver::new(id("a")), false);
        assert!(t.current(&id("a"), gen_a).is_none());
    }
}
