//! The directory of active account actors: activation on demand, LRU cap, passivation.
//!
//! A slot is `Active` (an actor takes messages) or `Busy` (one is being activated or drained).
//! Whoever finds a `Busy` slot waits for it to change, so an account never has two actors on
//! one node: a new activation starts only after the old actor drained its mailbox and stopped.
//!
//! Idle passivation and eviction go through the account's driver: the directory only asks an
//! actor to passivate ([`AccountMsg::Passivate`]), and the driver stops it if it is idle
//! (nothing queued or in flight, no open saga, no caller waiting for a settlement), so neither
//! strands a caller or a saga. The cap `active_max` is therefore soft: when the least recently
//! used actors are all busy, a new activation still starts, and the busy ones are asked again
//! at the next activation. Draining every actor (shutdown) or the actors of accounts that moved
//! away does not ask: ractor drains their mailboxes, each queued input is processed, then they
//! stop.

use super::actor::{AccountActor, AccountMsg, ActorArgs};
use super::{unavailable, Shell};
use protocol::{AccountId, ApiError};
use ractor::{Actor, ActorRef};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Most idle actors asked to passivate per idle scan.
pub const IDLE_SCAN_BATCH_MAX: usize = 1_024;
/// Most least-recently-used actors asked to passivate per activation over the cap.
pub const EVICTION_ASKS_MAX: usize = 8;

/// An actor being stopped and the sender whose drop wakes the waiters on its slot.
type Stop = (ActorRef<AccountMsg>, watch::Sender<()>);

enum Slot {
    Active {
        actor: ActorRef<AccountMsg>,
        tick: u64,
    },
    Busy(watch::Receiver<()>),
}

#[derive(Default)]
struct Inner {
    slots: HashMap<AccountId, Slot>,
    /// Active actors by last use: the first is the least recently used.
    lru: BTreeMap<u64, (AccountId, Instant)>,
    tick: u64,
    active: usize,
}

impl Inner {
    fn touch(&mut self, id: &AccountId) {
        self.tick += 1;
        let now_tick = self.tick;
        if let Some(Slot::Active { tick, .. }) = self.slots.get_mut(id) {
            self.lru.remove(tick);
            *tick = now_tick;
            self.lru.insert(now_tick, (id.clone(), Instant::now()));
        }
    }

    /// Marks an active slot busy and returns its actor and the sender that ends the wait.
    fn begin_stop(&mut self, id: &AccountId) -> Option<Stop> {
        match self.slots.get(id) {
            Some(Slot::Active { .. }) => {}
            _ => return None,
        }
        let (tx, rx) = watch::channel(());
        let Some(Slot::Active { actor, tick }) = self.slots.insert(id.clone(), Slot::Busy(rx))
        else {
            unreachable!("checked active above");
        };
        self.lru.remove(&tick);
        self.active -= 1;
        Some((actor, tx))
    }
}

/// The active actors of this node.
pub struct Directory {
    inner: Arc<Mutex<Inner>>,
    active_max: usize,
}

impl Directory {
    /// An empty directory with a cap on active actors.
    pub fn new(active_max: usize) -> Self {
        assert!(active_max >= 1, "active_max must be at least 1");
        Directory {
            inner: Arc::new(Mutex::new(Inner::default())),
            active_max,
        }
    }

    /// Number of active actors.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("directory lock").active
    }

    /// True when no actor is active.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether an account's actor is active.
    pub fn is_active(&self, id: &AccountId) -> bool {
        matches!(
            self.inner.lock().expect("directory lock").slots.get(id),
            Some(Slot::Active { .. })
        )
    }

    /// The account's actor if it is active (without activating it or touching its LRU place).
    pub fn active(&self, id: &AccountId) -> Option<ActorRef<AccountMsg>> {
        match self.inner.lock().expect("directory lock").slots.get(id) {
            Some(Slot::Active { actor, .. }) => Some(actor.clone()),
            _ => None,
        }
    }

    /// Every active actor's account and actor id.
    pub fn active_ids(&self) -> Vec<(AccountId, ractor::ActorId)> {
        let g = self.inner.lock().expect("directory lock");
        g.slots
            .iter()
            .filter_map(|(id, slot)| match slot {
                Slot::Active { actor, .. } => Some((id.clone(), actor.get_id())),
                _ => None,
            })
            .collect()
    }

    /// The account's actor, activated if needed.
    pub async fn get_or_spawn(
        &self,
        shell: &Shell,
        id: &AccountId,
    ) -> Result<ActorRef<AccountMsg>, ApiError> {
        enum Found {
            Active(ActorRef<AccountMsg>),
            Wait(watch::Receiver<()>),
            Spawn(watch::Sender<()>, Vec<ActorRef<AccountMsg>>),
        }
        loop {
            let found = {
                let mut g = self.inner.lock().expect("directory lock");
                match g.slots.get(id) {
                    Some(Slot::Active { actor, .. }) => {
                        let actor = actor.clone();
                        g.touch(id);
                        Found::Active(actor)
                    }
                    Some(Slot::Busy(rx)) => Found::Wait(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(());
                        g.slots.insert(id.clone(), Slot::Busy(rx));
                        Found::Spawn(tx, self.evictions(&mut g))
                    }
                }
            };
            match found {
                Found::Active(actor) => return Ok(actor),
                // Err means the sender was dropped: the slot changed either way.
                Found::Wait(mut rx) => {
                    let _ = rx.changed().await;
                }
                Found::Spawn(tx, victims) => {
                    for actor in victims {
                        // The driver stops only if idle; an actor that stopped meanwhile
                        // refuses the message, which is fine.
                        let _ = actor.send_message(AccountMsg::Passivate);
                    }
                    return self.spawn(shell, id, tx).await;
                }
            }
        }
    }

    async fn spawn(
        &self,
        shell: &Shell,
        id: &AccountId,
        done: watch::Sender<()>,
    ) -> Result<ActorRef<AccountMsg>, ApiError> {
        let args = ActorArgs {
            shell: shell.clone(),
            id: id.clone(),
        };
        let result = Actor::spawn(None, AccountActor, args).await;
        let mut g = self.inner.lock().expect("directory lock");
        let out = match result {
            Ok((actor, _join)) => {
                g.tick += 1;
                let tick = g.tick;
                g.slots.insert(
                    id.clone(),
                    Slot::Active {
                        actor: actor.clone(),
                        tick,
                    },
                );
                g.lru.insert(tick, (id.clone(), Instant::now()));
                g.active += 1;
                Ok(actor)
            }
            Err(e) => {
                g.slots.remove(id);
                tracing::warn!(account = %id, error = %e, "activation failed");
                Err(unavailable(
                    "the account could not be activated (storage unreachable)",
                ))
            }
        };
        drop(g);
        drop(done);
        out
    }

    /// Picks least-recently-used actors to ask to passivate so a new one fits under the cap;
    /// each is touched, so one that is busy is not asked again at once.
    fn evictions(&self, g: &mut Inner) -> Vec<ActorRef<AccountMsg>> {
        let over = (g.active + 1).saturating_sub(self.active_max);
        let victims: Vec<AccountId> = g
            .lru
            .values()
            .take(over.min(EVICTION_ASKS_MAX))
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Vec::with_capacity(victims.len());
        for victim in victims {
            if let Some(Slot::Active { actor, .. }) = g.slots.get(&victim) {
                out.push(actor.clone());
            }
            g.touch(&victim);
        }
        out
    }

    /// Drains the actor (its queued inputs are processed, nothing queued is lost), then frees
    /// the slot and wakes whoever waits for it.
    fn stop_in_background(
        &self,
        id: AccountId,
        actor: ActorRef<AccountMsg>,
        done: watch::Sender<()>,
    ) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let _ = actor.drain_and_wait(None).await;
            finish_stop(&inner, &id);
            drop(done);
        });
    }

    /// Passivates an actor if it is still the one registered for `id` (called by the actor
    /// itself once its driver stopped). The slot is freed once the actor drained and stopped.
    pub fn passivate(&self, id: &AccountId, actor_id: ractor::ActorId) {
        let stop = {
            let mut g = self.inner.lock().expect("directory lock");
            match g.slots.get(id) {
                Some(Slot::Active { actor, .. }) if actor.get_id() == actor_id => g.begin_stop(id),
                _ => None,
            }
        };
        if let Some((actor, done)) = stop {
            self.stop_in_background(id.clone(), actor, done);
        }
    }

    /// Forgets an actor that refused a message while its slot is still active, which means it
    /// died (a bug made it panic), so the next message re-activates the account. A draining
    /// actor's slot is busy, not active, so this never cuts a drain short.
    pub fn forget_dead(&self, id: &AccountId, actor: &ActorRef<AccountMsg>) {
        let mut g = self.inner.lock().expect("directory lock");
        if let Some(Slot::Active { actor: a, tick }) = g.slots.get(id) {
            if a.get_id() == actor.get_id() {
                let tick = *tick;
                g.lru.remove(&tick);
                g.slots.remove(id);
                g.active -= 1;
            }
        }
    }

    /// Actors idle for at least `idle`, oldest first, at most [`IDLE_SCAN_BATCH_MAX`]; each is
    /// touched so that one which refuses to passivate is not asked again at once.
    pub fn idle_actors(&self, idle: Duration) -> Vec<ActorRef<AccountMsg>> {
        let mut g = self.inner.lock().expect("directory lock");
        let mut ids = Vec::new();
        for (_, (id, used)) in g.lru.iter() {
            if used.elapsed() < idle || ids.len() >= IDLE_SCAN_BATCH_MAX {
                break;
            }
            ids.push(id.clone());
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(Slot::Active { actor, .. }) = g.slots.get(&id) {
                out.push(actor.clone());
            }
            g.touch(&id);
        }
        out
    }

    /// Drains and stops every active actor, and waits for all of them.
    pub async fn passivate_all(&self) {
        let stops: Vec<_> = {
            let mut g = self.inner.lock().expect("directory lock");
            let ids: Vec<AccountId> = g.lru.values().map(|(id, _)| id.clone()).collect();
            ids.iter()
                .filter_map(|id| g.begin_stop(id).map(|s| (id.clone(), s)))
                .collect()
        };
        let mut joins = Vec::with_capacity(stops.len());
        for (id, (actor, done)) in stops {
            let inner = self.inner.clone();
            joins.push(tokio::spawn(async move {
                let _ = actor.drain_and_wait(None).await;
                finish_stop(&inner, &id);
                drop(done);
            }));
        }
        for j in joins {
            let _ = j.await;
        }
    }
}

/// Frees the busy slot of an actor that stopped.
fn finish_stop(inner: &Mutex<Inner>, id: &AccountId) {
    let mut g = inner.lock().expect("directory lock");
    if matches!(g.slots.get(id), Some(Slot::Busy(_))) {
        g.slots.remove(id);
    }
}
