//! The actor shell: the virtual account actors of a node, and the runtime around them.
//!
//! [`Shell`] is what the gateway talks to. [`Shell::execute`] sends the command to the
//! account's actor (activating it on first use) and waits for the reply, which the actor sends
//! only after the transaction that decided it committed.
//!
//! Each active account is a virtual actor: an account driver
//! ([`crate::ledger::driver::Driver`]) that takes its inputs one at a time, in order, and makes
//! every decision: it queues inputs, asks for a `Flush` (which comes back after every input
//! that reached the actor before it, so one flush commits them all in one storage transaction,
//! at most [`crate::ledger::driver::BATCH_INPUTS_MAX`]), decides what each storage outcome
//! means (retry, reload after an unknown result, step aside when fenced), keeps the saga
//! deadlines and settlement waiters, and says when the activation stops. The accounts run on a
//! few [`host`]s per core, ractor actors that each hold many drivers in a [`table::Table`] and
//! carry out what they ask without waiting: batches through the node's [`committer`] task
//! (many accounts' batches in one storage transaction), other storage work on a blocking
//! thread, replies, saga messages (through [`Shell::deliver`]), stream publication, one timer
//! per account. The [`directory`] names an account's host (a hash of its id) and counts the
//! active accounts. The simulator runs the same driver. Hosting many accounts per ractor actor
//! is what keeps an idle active account at about 1.2 KB (an actor of its own costs 7.6 KB before
//! any state): BENCHMARKS.md, "Memory per active account".
//!
//! Activation takes the account's lease (epoch + 1); every batch checks it, so an older
//! activation can never commit (DESIGN.md section 4); a fenced activation answers its queued
//! commands `Moved` and hands its saga messages back to routing, and never takes the lease
//! back.
//!
//! Accounts passivate after `idle_passivate_ms` without input, unless they still orchestrate
//! an unsettled transfer; each host also asks its least recently used accounts to passivate
//! when it holds its share of `active_max`. Both go through the driver, which stops only an
//! idle activation. The [`sweeper`] scans the `pending` index and re-activates the sender of
//! any unsettled transfer whose actor is not active (after a restart, or a move), which
//! resumes it.
//!
//! [`placement::Ring`] is the consistent-hash ring (virtual nodes) that names each account's
//! owner; [`membership`] keeps the live members and the ring over them, and [`network`] joins
//! the node to its peers through `ractor_cluster`. [`Shell::execute`] runs a command here when
//! this node owns the account and forwards it to the owner's endpoint otherwise; an answer
//! `Moved` (nothing ran) is retried on the newer ring, so membership changes are invisible to
//! clients. [`Shell::deliver`] routes saga messages the same way. When the ring changes, the
//! [`sweeper`] passivates the actors of accounts this node no longer owns and resumes the
//! unsettled transfers whose senders it now owns.
//!
//! Single activation does not depend on the rings agreeing: two nodes that both believe they
//! own an account both activate it, and the lease epoch fences the older activation.
//!
//! Left out: a node never forwards a forwarded request again (it answers `Moved`), and saga
//! messages that reach a non-owner are dropped; both are retried by their senders.

pub mod committer;
pub mod detector;
pub mod directory;
#[cfg(test)]
mod fenced_tests;
pub mod host;
#[cfg(test)]
mod host_tests;
pub mod membership;
pub mod network;
pub mod placement;
pub mod sweeper;
pub mod table;
#[cfg(test)]
mod test_node;

use crate::ledger::account::{BalanceUpdate, Command, Reply, SagaTiming};
use crate::ledger::committer::GroupLimits;
use crate::ledger::driver::Limits as DriverLimits;
use crate::ledger::exec;
use crate::metrics::Metrics;
use crate::storage::keys::Keys;
use crate::storage::Store;
use committer::CommitterHandle;
use directory::Directory;
use host::{AccountMsg, CommandReply};
use membership::{Membership, PeerMsg};
use protocol::admin::NodeStats;
use protocol::api::{TransferView, TRANSFER_WAIT_MS_MAX};
use protocol::cluster::{self, PeerCast, PeerReply, PeerRequest};
use protocol::saga::SagaMsg;
use protocol::{AccountId, ApiError, ErrorCode, TransferId};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};

/// Longest a caller waits for an actor's reply before answering `unavailable`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Most times a message is re-sent when its actor stopped between lookup and send.
pub const DELIVERY_ATTEMPTS_MAX: u32 = 16;
/// How long a command keeps following its account while ownership moves.
pub const MOVE_RETRY_FOR: Duration = Duration::from_secs(10);
/// First wait before retrying a command whose account moved.
pub const MOVE_BACKOFF_INITIAL: Duration = Duration::from_millis(20);
/// Longest wait between retries of a command whose account moved.
pub const MOVE_BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Most times a saga message is forwarded between nodes whose rings disagree.
pub const SAGA_HOPS_MAX: u8 = 3;
/// Longest wait for a peer to acknowledge that this node leaves, and for the requests peers
/// sent before to finish.
pub const LEAVE_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Capacity of the node's balance-update channel; a slower subscriber back-fills from storage.
pub const STREAM_CHANNEL_CAPACITY: usize = 16_384;

/// An actor's answer to one command, or `unavailable` (outcome unknown) when the actor stopped
/// first or did not answer by `deadline`.
async fn answer_by(
    deadline: tokio::time::Instant,
    rx: oneshot::Receiver<CommandReply>,
) -> CommandReply {
    match tokio::time::timeout_at(deadline, rx).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(_)) => Err(Refusal::Api(unavailable(
            "the account actor stopped before answering",
        ))),
        Err(_) => Err(Refusal::Api(unavailable(
            "the account actor did not answer in time",
        ))),
    }
}

/// Why a command did not produce a reply.
#[derive(Debug)]
pub enum Refusal {
    /// A business error, or `unavailable` (outcome unknown): the client gets it.
    Api(ApiError),
    /// The node asked does not own the account (any more) and nothing ran: ask the owner.
    Moved,
}

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
    /// The committer's group caps.
    pub group: GroupLimits,
    /// Each account driver's limits (its queue: `limits.actor_queue_max`).
    pub driver_limits: DriverLimits,
    /// Closed while a webhook's outbox is at its limit: commands that move money of this
    /// node's accounts are refused.
    pub outbox_gate: Arc<crate::webhooks::OutboxGate>,
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
    membership: Arc<Membership>,
    committer: CommitterHandle,
}

impl Shell {
    /// A shell over a store, placing accounts by `membership`. Accounts are activated on
    /// demand; the node's committer task and account hosts start here (on the current tokio
    /// runtime).
    pub async fn new(
        config: ShellConfig,
        store: Store,
        keys: Keys,
        metrics: Arc<Metrics>,
        membership: Arc<Membership>,
    ) -> Self {
        let (updates, _) = broadcast::channel(STREAM_CHANNEL_CAPACITY);
        let committer = CommitterHandle::start(
            store.clone(),
            keys.clone(),
            config.node_id.clone(),
            config.group,
            metrics.clone(),
        );
        let shell = Shell {
            inner: Arc::new(ShellInner {
                committer,
                directory: Directory::new(config.active_max),
                config,
                store,
                keys,
                updates,
                metrics,
                membership,
            }),
        };
        shell.inner.directory.start(&shell).await;
        shell
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

    /// The live members and the ring.
    pub fn membership(&self) -> &Arc<Membership> {
        &self.inner.membership
    }

    /// The node's committer (group commit of every actor's batches).
    pub fn committer(&self) -> &CommitterHandle {
        &self.inner.committer
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

    /// Runs a command on an account wherever it lives and returns its committed reply. A
    /// transfer waits up to `wait` for its settlement (it is reported pending after that).
    ///
    /// The command goes to the account's owner under the current ring: run here, or forwarded
    /// to the owner's endpoint. When the owner answers that the account moved (nothing ran),
    /// the call is retried on the newer ring with backoff, for up to [`MOVE_RETRY_FOR`], so a
    /// membership change is invisible to the client.
    pub async fn execute(
        &self,
        id: &AccountId,
        cmd: Command,
        wait: Duration,
    ) -> Result<Reply, ApiError> {
        let deadline = tokio::time::Instant::now() + MOVE_RETRY_FOR;
        let mut backoff = MOVE_BACKOFF_INITIAL;
        loop {
            let owner = self.membership().ring().owner(id.as_str()).node_id.clone();
            let outcome = if owner == self.config().node_id {
                self.run_local(id, cmd.clone(), wait).await
            } else {
                self.run_remote(&owner, id, cmd.clone(), wait).await
            };
            match outcome {
                Ok(reply) => return Ok(reply),
                Err(Refusal::Api(e)) => return Err(e),
                Err(Refusal::Moved) => {
                    if tokio::time::Instant::now() + backoff > deadline {
                        return Err(unavailable("the account kept moving between nodes"));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MOVE_BACKOFF_MAX);
                }
            }
        }
    }

    /// Runs several commands of one account, in order, and waits up to `wait` in all for the
    /// settlement of the transfers they start; one result per command, in order. On the owner
    /// they reach the account's actor in one message (so they queue together and commit in as
    /// few batches as possible); commands answered `Moved` (the account moved: nothing of them
    /// ran, and they are the last ones) and commands of an account another node owns run one
    /// after the other through [`Shell::execute`], which keeps their order.
    pub async fn execute_many(
        &self,
        id: &AccountId,
        cmds: Vec<Command>,
        wait: Duration,
    ) -> Vec<Result<Reply, ApiError>> {
        let deadline = tokio::time::Instant::now() + wait;
        let owner = self.membership().ring().owner(id.as_str()).node_id.clone();
        let mut results: Vec<Option<Result<Reply, ApiError>>> = Vec::with_capacity(cmds.len());
        let mut moved = Vec::new();
        let local = owner == self.config().node_id && !self.membership().is_leaving();
        if let (true, Some(first)) = (local, cmds.first()) {
            if !cmds.iter().any(|c| matches!(c, Command::Open { .. })) {
                if let Err(Refusal::Api(e)) = self.refuse_never_opened(id, first).await {
                    return cmds.iter().map(|_| Err(e.clone())).collect();
                }
            }
        }
        if local {
            if let Err(e) = self.refuse_while_outbox_full(&cmds) {
                return cmds.iter().map(|_| Err(e.clone())).collect();
            }
            let answers = self.call_local_many(id, cmds.clone()).await;
            let mut settling = Vec::new();
            for (i, answer) in answers.into_iter().enumerate() {
                results.push(match answer {
                    Ok((reply, Some(rx))) if reply.awaits().is_some() => {
                        settling.push((i, rx));
                        Some(Ok(reply))
                    }
                    Ok((reply, _)) => Some(Ok(reply)),
                    Err(Refusal::Api(e)) => Some(Err(e)),
                    Err(Refusal::Moved) => {
                        moved.push(i);
                        None
                    }
                });
            }
            for (i, rx) in settling {
                // Past the deadline, or the actor stopped: the transfer goes on, reported
                // pending.
                if let Ok(Ok(settled)) = tokio::time::timeout_at(deadline, rx).await {
                    if let Some(Ok(reply)) = results[i].take() {
                        results[i] = Some(Ok(reply.settled(settled)));
                    }
                }
            }
        } else {
            results.resize_with(cmds.len(), || None);
            moved = (0..cmds.len()).collect();
        }
        for i in moved {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            results[i] = Some(self.execute(id, cmds[i].clone(), left).await);
        }
        results
            .into_iter()
            .map(|r| r.expect("every command has a result"))
            .collect()
    }

    /// Sends commands of one account to this node's actor in one message and collects their
    /// answers, in order.
    async fn call_local_many(
        &self,
        id: &AccountId,
        cmds: Vec<Command>,
    ) -> Vec<Result<(Reply, Option<oneshot::Receiver<TransferView>>), Refusal>> {
        let n = cmds.len();
        let mut ports = Vec::with_capacity(n);
        let items: Vec<(Command, oneshot::Sender<CommandReply>)> = cmds
            .into_iter()
            .map(|cmd| {
                let (tx, rx) = oneshot::channel::<CommandReply>();
                ports.push(rx);
                (cmd, tx)
            })
            .collect();
        if let Err(e) = self.send_local(id, AccountMsg::Commands(items)).await {
            return (0..n).map(|_| Err(Refusal::Api(e.clone()))).collect();
        }
        let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
        let mut answers = Vec::with_capacity(n);
        for rx in ports {
            answers.push(answer_by(deadline, rx).await);
        }
        answers
    }

    /// Runs a command on this node's actor of an account the caller found this node owns.
    async fn run_local(
        &self,
        id: &AccountId,
        cmd: Command,
        wait: Duration,
    ) -> Result<Reply, Refusal> {
        // A leaving node answers at once rather than hold a forwarded call open while it stops.
        let wait = if self.membership().is_leaving() {
            Duration::ZERO
        } else {
            wait
        };
        self.refuse_never_opened(id, &cmd).await?;
        self.refuse_while_outbox_full(std::slice::from_ref(&cmd))
            .map_err(Refusal::Api)?;
        let (reply, settle) = self.call_local(id, cmd).await?;
        Ok(match settle {
            Some(rx) if reply.awaits().is_some() && !wait.is_zero() => {
                match tokio::time::timeout(wait, rx).await {
                    Ok(Ok(settled)) => reply.settled(settled),
                    // Timed out, or the actor stopped: the transfer goes on; report it pending.
                    _ => reply,
                }
            }
            _ => reply,
        })
    }

    /// Refuses commands that move money (`overloaded`, nothing ran) while a webhook's outbox
    /// on this node is at its limit; the others (reads, opening, freezing) go on.
    fn refuse_while_outbox_full(&self, cmds: &[Command]) -> Result<(), ApiError> {
        let moves_money = |c: &Command| {
            matches!(
                c,
                Command::Deposit { .. }
                    | Command::Withdraw { .. }
                    | Command::Transfer { .. }
                    | Command::Hold { .. }
                    | Command::Capture { .. }
                    | Command::Disburse { .. }
            )
        };
        if !cmds.iter().any(moves_money) {
            return Ok(());
        }
        match self.config().outbox_gate.refusal() {
            Some(e) => {
                self.metrics().overloaded.inc();
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Answers `account_not_found` for a command to an account that is not active here and
    /// was never opened, from a read of storage, so that a flood of requests for ids that do
    /// not exist activates nothing and writes nothing. Opening is the one command such an
    /// account takes. An account being opened is active (its open is queued there), so this
    /// never refuses an account whose open was acknowledged.
    async fn refuse_never_opened(&self, id: &AccountId, cmd: &Command) -> Result<(), Refusal> {
        if matches!(cmd, Command::Open { .. }) || self.is_active(id) {
            return Ok(());
        }
        let (store, keys, account) = (self.store().clone(), self.keys().clone(), id.clone());
        let opened = tokio::task::spawn_blocking(move || exec::is_opened(&store, &keys, &account))
            .await
            .expect("a storage read does not panic");
        match opened {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::Api(ErrorCode::AccountNotFound.into())),
            // Storage will tell the activation; let it decide as before.
            Err(_) => Ok(()),
        }
    }

    /// Forwards a command to the node that owns the account.
    async fn run_remote(
        &self,
        node: &str,
        id: &AccountId,
        cmd: Command,
        wait: Duration,
    ) -> Result<Reply, Refusal> {
        let req = PeerRequest::Command {
            account: id.clone(),
            command: cmd,
            wait_ms: wait.as_millis() as u64,
        };
        match self.call_peer(node, &req, CALL_TIMEOUT + wait).await? {
            PeerReply::Done(reply) => Ok(*reply),
            PeerReply::Failed(e) => Err(Refusal::Api(e)),
            PeerReply::Moved => Err(Refusal::Moved),
            PeerReply::Stats(_) | PeerReply::Ack => Err(Refusal::Api(unavailable(
                "the owner node answered a command with something else",
            ))),
        }
    }

    /// Sends a request to a peer and waits for its answer. `Moved` when the peer is gone before
    /// anything was sent; `unavailable` when it may have run but did not answer.
    pub async fn call_peer(
        &self,
        node: &str,
        req: &PeerRequest,
        timeout: Duration,
    ) -> Result<PeerReply, Refusal> {
        // A peer gone or dropped for silence: nothing is sent, the caller's newer ring names
        // another node.
        let Some(endpoint) = self.membership().endpoint(node) else {
            return Err(Refusal::Moved);
        };
        let bytes = cluster::encode(req);
        let call = endpoint.call(|port| PeerMsg::Call(bytes, port), Some(timeout));
        let answer = tokio::select! {
            biased;
            answer = call => answer,
            () = self.until_dropped(node) => {
                return Err(Refusal::Api(unavailable(&format!(
                    "node {node} stopped answering and was dropped from the ring; the outcome is unknown: retry with the same key"
                ))));
            }
        };
        match answer {
            Ok(ractor::rpc::CallResult::Success(answer)) => cluster::decode::<PeerReply>(&answer)
                .map_err(|e| {
                    Refusal::Api(unavailable(&format!("node {node} answered garbage ({e})")))
                }),
            Ok(_) => Err(Refusal::Api(unavailable(&format!(
                "node {node} did not answer in time or its session ended"
            )))),
            // Nothing was sent: the peer's endpoint is gone.
            Err(_) => Err(Refusal::Moved),
        }
    }

    /// Resolves once `node` is dropped from the ring for silence (never, while it answers).
    async fn until_dropped(&self, node: &str) {
        let mut ring = self.membership().watch();
        while !self.membership().is_dropped(node) {
            if ring.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Rejoins the cluster with a newer incarnation after its peers dropped it for silence:
    /// leaves its own ring, asks every account it holds to drain (each stops once it committed
    /// what it had queued; the lease epoch fences any that another node activated meanwhile),
    /// then enters the ring again and introduces itself. One at a time: a rejoin asked for
    /// while one runs is folded into it.
    pub async fn rejoin(&self) {
        if !self.membership().begin_rejoin() {
            return;
        }
        self.metrics().rejoins.inc();
        let draining = self.directory().drain_moved().await;
        let incarnation = self.membership().end_rejoin();
        tracing::info!(draining, incarnation, "rejoined the cluster");
    }

    /// Answers a peer's request (run by this node's endpoint).
    pub async fn serve_peer(&self, req: PeerRequest) -> PeerReply {
        match req {
            PeerRequest::Command {
                account,
                command,
                wait_ms,
            } => {
                // The sender's ring named this node; this node's ring decides.
                if !self.membership().owns(account.as_str()) {
                    return PeerReply::Moved;
                }
                let wait = Duration::from_millis(wait_ms.min(TRANSFER_WAIT_MS_MAX));
                match self.run_local(&account, command, wait).await {
                    Ok(reply) => PeerReply::Done(Box::new(reply)),
                    Err(Refusal::Api(e)) => PeerReply::Failed(e),
                    Err(Refusal::Moved) => PeerReply::Moved,
                }
            }
            PeerRequest::Stats => PeerReply::Stats(self.stats()),
            PeerRequest::Leaving(hello) => {
                self.membership().introduced(hello);
                PeerReply::Ack
            }
        }
    }

    /// Takes this node out of the ring and makes sure no peer sends it new requests: every
    /// peer acknowledges the news (or does not answer within [`LEAVE_ACK_TIMEOUT`]), then the
    /// requests that reached this node before are waited for (up to [`LEAVE_ACK_TIMEOUT`]).
    /// Returns true when every peer acknowledged and no request is left in flight.
    pub async fn leave_cluster(&self) -> bool {
        let peers = self.membership().leave();
        let hello = self.membership().hello();
        let asks: Vec<_> = peers
            .into_iter()
            .map(|(node, _)| {
                let (shell, req) = (self.clone(), PeerRequest::Leaving(hello.clone()));
                tokio::spawn(async move {
                    matches!(
                        shell.call_peer(&node, &req, LEAVE_ACK_TIMEOUT).await,
                        Ok(PeerReply::Ack) | Err(Refusal::Moved)
                    )
                })
            })
            .collect();
        let mut all_acked = true;
        for ask in asks {
            all_acked &= ask.await.unwrap_or(false);
        }
        // A local request through the endpoint's mailbox: once it is answered, every peer
        // request queued before it has been counted as in flight.
        if let Some(me) = self.membership().local_endpoint() {
            let barrier = cluster::encode(&PeerRequest::Stats);
            let _ = me
                .call(|port| PeerMsg::Call(barrier, port), Some(LEAVE_ACK_TIMEOUT))
                .await;
        }
        let deadline = tokio::time::Instant::now() + LEAVE_ACK_TIMEOUT;
        while self.membership().requests_in_flight() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        all_acked
    }

    /// This node's own figures.
    pub fn stats(&self) -> NodeStats {
        NodeStats {
            node_id: self.config().node_id.clone(),
            active_actors: self.active_actors() as u64,
            leaving: self.membership().is_leaving(),
        }
    }

    /// Runs a command on this node's actor of the account and waits for its committed reply.
    /// A transfer that is still pending comes with a receiver of its settlement.
    async fn call_local(
        &self,
        id: &AccountId,
        cmd: Command,
    ) -> Result<(Reply, Option<oneshot::Receiver<TransferView>>), Refusal> {
        let (tx, rx) = oneshot::channel::<CommandReply>();
        self.send_local(id, AccountMsg::Command { cmd, reply: tx })
            .await
            .map_err(Refusal::Api)?;
        answer_by(tokio::time::Instant::now() + CALL_TIMEOUT, rx).await
    }

    /// Sends a message to this node's actor of `id` (its host activates it if needed).
    async fn send_local(&self, id: &AccountId, msg: AccountMsg) -> Result<(), ApiError> {
        self.inner.directory.send(id, msg)
    }

    /// Delivers a saga message to its destination account: to this node's actor when this
    /// node owns the account, otherwise to the owner's endpoint. A message that cannot be
    /// delivered is dropped: the sender's timer re-drives the saga.
    pub async fn deliver(&self, msg: SagaMsg) {
        self.route_saga(msg, 0).await
    }

    /// Delivers a saga message that a peer sent here: here if this node owns its destination,
    /// else on to the owner this node knows (rings differ for a moment while membership
    /// changes), at most [`SAGA_HOPS_MAX`] times.
    pub async fn deliver_from_peer(&self, msg: SagaMsg, hops: u8) {
        if self.membership().owns(msg.destination().as_str()) {
            self.deliver_local(msg).await;
        } else if hops < SAGA_HOPS_MAX {
            self.route_saga(msg, hops + 1).await;
        } else {
            tracing::debug!(account = %msg.destination(), "saga message dropped after {SAGA_HOPS_MAX} forwards; the sender retries");
        }
    }

    async fn route_saga(&self, msg: SagaMsg, hops: u8) {
        let owner = self
            .membership()
            .ring()
            .owner(msg.destination().as_str())
            .node_id
            .clone();
        if owner == self.config().node_id {
            return self.deliver_local(msg).await;
        }
        let dest = msg.destination().clone();
        let cast = PeerCast::Saga { msg, hops };
        let sent = self
            .membership()
            .endpoint(&owner)
            .map(|e| e.cast(PeerMsg::Cast(cluster::encode(&cast))).is_ok());
        if sent != Some(true) {
            tracing::debug!(account = %dest, node = %owner, "saga message not sent: the owner's endpoint is gone");
        }
    }

    async fn deliver_local(&self, msg: SagaMsg) {
        let dest = msg.destination().clone();
        if let Err(e) = self.send_local(&dest, AccountMsg::Saga(msg)).await {
            // The sender's timer re-drives the saga; losing this message is safe.
            tracing::warn!(account = %dest, error = %e, "saga message not delivered");
        }
    }

    /// Delivers a saga message at once when this node owns its destination (no task, no
    /// await: a push into its host's mailbox); otherwise hands it back for [`Shell::deliver`].
    pub fn deliver_now(&self, msg: SagaMsg) -> Option<SagaMsg> {
        let dest = msg.destination().clone();
        if self.membership().ring().owner(dest.as_str()).node_id != self.config().node_id {
            return Some(msg);
        }
        match self.inner.directory.try_send(&dest, AccountMsg::Saga(msg)) {
            Ok(()) => None,
            Err(AccountMsg::Saga(m)) => Some(m),
            Err(_) => unreachable!("the message comes back as it was sent"),
        }
    }

    /// Asks the account's actor on this node to resume `transfer`, activating it if it is not
    /// active (the activation resumes every unsettled transfer of the account).
    pub async fn resume(&self, id: &AccountId, transfer: TransferId) -> Result<(), ApiError> {
        self.send_local(id, AccountMsg::Resume(transfer)).await
    }

    /// Drains every account on this node, each after its queued inputs (graceful shutdown).
    pub async fn passivate_all(&self) {
        self.inner.directory.drain_all().await;
    }

    /// Stops the account hosts (the last step of a shutdown): later messages to accounts are
    /// refused ("the node is stopping").
    pub fn stop_hosts(&self) {
        self.inner.directory.stop_all();
    }

    pub(crate) fn directory(&self) -> &Directory {
        &self.inner.directory
    }
}

/// An `overloaded` error: refused by admission control before anything ran; retry after a
/// moment with the same key.
pub fn overloaded(why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Overloaded,
        format!("{why}; nothing ran: retry after Retry-After with the same idempotency key"),
    )
}

/// An `unavailable` error: the outcome is unknown, retry with the same key.
pub fn unavailable(why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!("{why}; the outcome is unknown: retry with the same idempotency key"),
    )
}
