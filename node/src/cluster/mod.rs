//! The actor shell: one ractor actor per active account, and the node's runtime around them.
//!
//! [`Shell`] is what the gateway talks to. [`Shell::call`] finds the account's actor in the
//! [`directory::Directory`] (activating it on first use), sends it the command, and waits for the
//! reply, which the actor sends only after the transaction that decided it committed.
//!
//! An [`actor::AccountActor`] owns one [`crate::ledger::exec::Activation`]. It does not commit
//! each message on its own: an input is queued and the actor sends itself a `Flush`; ractor's
//! FIFO mailbox delivers every input that arrived before it first, so one `Flush` commits them
//! all in one storage transaction ([`BATCH_INPUTS_MAX`] at most). Effects run after the commit:
//! replies, saga messages to other accounts (through [`Shell::deliver`]), stream publication,
//! timers.
//!
//! Activation takes the account's lease (epoch + 1); every batch checks it, so an older
//! activation can never commit (DESIGN.md section 4). After a failed commit whose outcome is
//! unknown the actor reloads itself from storage before it takes more input.
//!
//! Actors passivate after `idle_passivate_ms` without input, unless they still orchestrate an
//! unsettled transfer; the directory also caps active actors at `active_max`, passivating the
//! least recently used. A passivated actor drains its mailbox first, so nothing queued is lost.
//! The [`sweeper`] scans the `pending` index and re-activates the sender of any unsettled
//! transfer whose actor is not active (after a restart, or an eviction), which resumes it.
//!
//! [`placement::Ring`] is the consistent-hash ring (virtual nodes) that names each account's
//! owner. With one node every account is local.
//!
//! Left out for now: forwarding to other nodes and membership (`ractor_cluster`), which a later
//! change adds behind [`Shell::deliver`] and [`Shell::call`] without touching the core.

pub mod actor;
pub mod directory;
pub mod placement;
pub mod sweeper;

use crate::ledger::account::{BalanceUpdate, Command, Reply, SagaTiming};
use crate::metrics::Metrics;
use crate::storage::keys::Keys;
use crate::storage::Store;
use actor::{AccountMsg, CommandReply};
use directory::Directory;
use protocol::api::TransferView;
use protocol::saga::SagaMsg;
use protocol::{AccountId, ApiError, ErrorCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

/// Most inputs one actor commits in one transaction.
pub const BATCH_INPUTS_MAX: usize = 256;
/// Longest a caller waits for an actor's reply before answering `unavailable`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Most times a message is re-sent when its actor stopped between lookup and send.
pub const DELIVERY_ATTEMPTS_MAX: u32 = 16;
/// Capacity of the node's balance-update channel; a slower subscriber back-fills from storage.
pub const STREAM_CHANNEL_CAPACITY: usize = 16_384;

/// Settings of the shell, from the node's config.
#[derive(Clone, Debug)]
pub struct ShellConfig {
    /// This node's id (written in leases).
    pub node_id: String,
    /// Passivate an actor after this long without input.
    pub idle_passivate_ms: u64,
    /// Most active actors.
    pub active_max: usize,
    /// Saga timing.
    pub timing: SagaTiming,
}

/// The node's runtime: storage, actors, the balance stream.
#[derive(Clone)]
pub struct Shell {
    inner: Arc<ShellInner>,
}

struct ShellInner {
    config: ShellConfig,
    store: Store,
    keys: Keys,
    directory: Directory,
    updates: broadcast::Sender<Arc<BalanceUpdate>>,
    metrics: Arc<Metrics>,
}

impl Shell {
    /// A shell over a store. Actors are activated on demand.
    pub fn new(config: ShellConfig, store: Store, keys: Keys, metrics: Arc<Metrics>) -> Self {
        let (updates, _) = broadcast::channel(STREAM_CHANNEL_CAPACITY);
        Shell {
            inner: Arc::new(ShellInner {
                directory: Directory::new(config.active_max),
                config,
                store,
                keys,
                updates,
                metrics,
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// The shell's settings.
    pub fn config(&self) -> &ShellConfig {
        &self.inner.config
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Number of active account actors.
    pub fn active_actors(&self) -> usize {
        self.inner.directory.len()
    }

    /// Whether an account's actor is active on this node.
    pub fn is_active(&self, id: &AccountId) -> bool {
        self.inner.directory.is_active(id)
    }

    /// A receiver of every balance update published on this node from now on.
    pub fn subscribe_updates(&self) -> broadcast::Receiver<Arc<BalanceUpdate>> {
        self.inner.updates.subscribe()
    }

    pub(crate) fn publish(&self, update: BalanceUpdate) {
        // No subscriber is not an error: the stream is also served from storage.
        let _ = self.inner.updates.send(Arc::new(update));
    }

    /// Runs a command on an account and waits for its committed reply. A transfer that is
    /// still pending comes with a receiver of its settlement.
    pub async fn call(
        &self,
        id: &AccountId,
        cmd: Command,
    ) -> Result<(Reply, Option<oneshot::Receiver<TransferView>>), ApiError> {
        let (tx, rx) = oneshot::channel::<CommandReply>();
        let mut msg = Some(AccountMsg::Command { cmd, reply: tx });
        for _ in 0..DELIVERY_ATTEMPTS_MAX {
            let actor = self.inner.directory.get_or_spawn(self, id).await?;
            match actor.send_message(msg.take().expect("message present")) {
                Ok(()) => break,
                // The actor stopped between lookup and send (passivation, or it died): look it
                // up again; a dead actor is forgotten so the account re-activates.
                Err(ractor::MessagingErr::SendErr(m)) => {
                    self.inner.directory.forget_dead(id, &actor);
                    msg = Some(m);
                }
                Err(_) => return Err(unavailable("the account actor is stopping")),
            }
        }
        if msg.is_some() {
            return Err(unavailable("the account actor kept stopping"));
        }
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(unavailable("the account actor stopped before answering")),
            Err(_) => Err(unavailable("the account actor did not answer in time")),
        }
    }

    /// Delivers a saga message to its destination account, activating it if needed.
    pub async fn deliver(&self, msg: SagaMsg) {
        let dest = msg.destination().clone();
        let mut msg = Some(AccountMsg::Saga(msg));
        for _ in 0..DELIVERY_ATTEMPTS_MAX {
            let actor = match self.inner.directory.get_or_spawn(self, &dest).await {
                Ok(a) => a,
                Err(e) => {
                    // The sender's timer re-drives the saga; losing this message is safe.
                    tracing::warn!(account = %dest, error = %e, "saga message not delivered");
                    return;
                }
            };
            match actor.send_message(msg.take().expect("message present")) {
                Ok(()) => return,
                Err(ractor::MessagingErr::SendErr(m)) => {
                    self.inner.directory.forget_dead(&dest, &actor);
                    msg = Some(m);
                }
                Err(_) => return,
            }
        }
        tracing::warn!(account = %dest, "saga message not delivered: actor kept stopping");
    }

    /// Activates an account (if it is not active) so its unsettled transfers resume.
    pub async fn ensure_active(&self, id: &AccountId) -> Result<(), ApiError> {
        self.inner
            .directory
            .get_or_spawn(self, id)
            .await
            .map(|_| ())
    }

    /// Passivates every actor, each after its queued inputs (graceful shutdown).
    pub async fn passivate_all(&self) {
        self.inner.directory.passivate_all().await;
    }

    pub(crate) fn directory(&self) -> &Directory {
        &self.inner.directory
    }
}

/// An `unavailable` error: the outcome is unknown, retry with the same key.
pub fn unavailable(why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!("{why}; the outcome is unknown: retry with the same idempotency key"),
    )
}
