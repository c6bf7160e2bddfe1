//! The account actor: the ractor shell around one [`AccountCore`] activation.

use super::{unavailable, Refusal, Shell, BATCH_INPUTS_MAX};
use crate::ledger::account::{Command, Effect, Input, Reply, ReqId};
use crate::ledger::exec::{self, Activation};
use crate::storage::StorageError;
use protocol::api::{TransferStatus, TransferView};
use protocol::saga::SagaMsg;
use protocol::{AccountId, ApiError, TransferId};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// Most callers waiting on one transfer's settlement.
pub const WAITERS_PER_TRANSFER_MAX: usize = 64;
/// First wait before reloading an account whose commit or reload failed.
pub const RELOAD_BACKOFF_INITIAL: Duration = Duration::from_millis(50);
/// Longest wait between reload attempts.
pub const RELOAD_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What a caller gets back: the reply, and for a pending transfer a receiver of its settlement.
pub type CommandReply = Result<(Reply, Option<oneshot::Receiver<TransferView>>), Refusal>;

/// A message to an account actor.
pub enum AccountMsg {
    /// A client command and where to answer it.
    Command {
        /// The command.
        cmd: Command,
        /// The reply port.
        reply: oneshot::Sender<CommandReply>,
    },
    /// A saga message from another account.
    Saga(SagaMsg),
    /// A saga timer fired; timers of an older generation (armed before a reload) are ignored.
    Timer(TransferId, u64),
    /// Reload the account from storage after a failure (the actor sends this to itself).
    Reload,
    /// Commit everything queued so far (the actor sends this to itself).
    Flush,
    /// The directory asks an idle actor whether it can passivate.
    IdleCheck,
    /// The pending sweep found this unsettled transfer of the account: an activation that does
    /// not know it checks that it still holds the lease, and steps aside if not.
    Resume(TransferId),
}

// Local only: account messages never cross the network (saga messages travel as `PeerMsg`).
impl ractor::Message for AccountMsg {}

/// The actor's behaviour (stateless; state is in [`ActorState`]).
pub struct AccountActor;

/// What the actor is started with.
pub struct ActorArgs {
    /// The node's shell.
    pub shell: Shell,
    /// The account.
    pub id: AccountId,
}

/// The actor's state.
pub struct ActorState {
    shell: Shell,
    id: AccountId,
    /// `None` after a failed commit: reload from storage before taking more input.
    act: Option<Activation>,
    queue: Vec<Input>,
    flush_scheduled: bool,
    replies: HashMap<ReqId, oneshot::Sender<CommandReply>>,
    waiters: BTreeMap<TransferId, Vec<oneshot::Sender<TransferView>>>,
    next_req: ReqId,
    /// Generation of saga timers: bumped at every (re)load, which re-arms every open saga.
    timer_gen: u64,
    /// Wait before the next reload attempt.
    reload_backoff: Duration,
    /// Whether a `Reload` is already scheduled.
    reload_scheduled: bool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn load(shell: &Shell, id: &AccountId) -> Result<Activation, StorageError> {
    let (store, keys) = (shell.store().clone(), shell.keys().clone());
    let (node, timing) = (shell.config().node_id.clone(), shell.config().timing);
    let id = id.clone();
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).expect("the OS provides randomness");
    let nonce = u64::from_le_bytes(nonce);
    tokio::task::spawn_blocking(move || exec::activate(&store, &keys, &node, &id, timing, nonce))
        .await
        .expect("activation does not panic")
}

impl Actor for AccountActor {
    type Msg = AccountMsg;
    type State = ActorState;
    type Arguments = ActorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<AccountMsg>,
        args: ActorArgs,
    ) -> Result<ActorState, ActorProcessingErr> {
        let act = load(&args.shell, &args.id).await?;
        args.shell.metrics().activations.inc();
        let resume = act.core.resume();
        let mut state = ActorState {
            shell: args.shell,
            id: args.id,
            act: Some(act),
            queue: Vec::new(),
            flush_scheduled: false,
            replies: HashMap::new(),
            waiters: BTreeMap::new(),
            next_req: 0,
            timer_gen: 0,
            reload_backoff: RELOAD_BACKOFF_INITIAL,
            reload_scheduled: false,
        };
        state.run_effects(&myself, resume);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<AccountMsg>,
        msg: AccountMsg,
        state: &mut ActorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AccountMsg::Command { cmd, reply } => {
                state.next_req += 1;
                let req = state.next_req;
                state.replies.insert(req, reply);
                state.enqueue(&myself, Input::Command(req, cmd)).await;
            }
            AccountMsg::Saga(m) => state.enqueue(&myself, Input::Saga(m)).await,
            AccountMsg::Timer(t, gen) => {
                if gen == state.timer_gen {
                    state.enqueue(&myself, Input::Timer(t)).await;
                }
            }
            AccountMsg::Flush => state.flush(&myself).await,
            AccountMsg::Reload => {
                state.reload_scheduled = false;
                if state.act.is_none() {
                    state.reload(&myself).await;
                }
            }
            AccountMsg::Resume(tid) => {
                let Some(act) = &state.act else {
                    return Ok(()); // a reload is scheduled; it resumes every open saga
                };
                let (store, keys, act) = (
                    state.shell.store().clone(),
                    state.shell.keys().clone(),
                    act.clone(),
                );
                let stale = tokio::task::spawn_blocking(move || {
                    exec::stale_for(&store, &keys, &act, &tid).map(|s| (s, tid))
                })
                .await
                .expect("lease read does not panic");
                if let Ok((true, tid)) = stale {
                    tracing::info!(account = %state.id, transfer = %tid, "stale activation steps aside");
                    state.fail_pending(&StorageError::Fenced);
                    state
                        .shell
                        .directory()
                        .passivate(&state.id, myself.get_id());
                }
            }
            AccountMsg::IdleCheck => {
                // Callers that gave up waiting do not keep the actor alive.
                state.waiters.retain(|_, list| {
                    list.retain(|w| !w.is_closed());
                    !list.is_empty()
                });
                let idle = state.queue.is_empty()
                    && state.replies.is_empty()
                    && state.waiters.is_empty()
                    && state
                        .act
                        .as_ref()
                        .is_none_or(|a| a.core.open_sagas().is_empty());
                if idle {
                    state
                        .shell
                        .directory()
                        .passivate(&state.id, myself.get_id());
                }
            }
        }
        Ok(())
    }
}

impl ActorState {
    async fn enqueue(&mut self, myself: &ActorRef<AccountMsg>, input: Input) {
        self.queue.push(input);
        if self.queue.len() >= BATCH_INPUTS_MAX {
            return self.flush(myself).await;
        }
        if !self.flush_scheduled {
            // While draining, the mailbox refuses new messages: commit inline instead.
            if myself.send_message(AccountMsg::Flush).is_ok() {
                self.flush_scheduled = true;
            } else {
                self.flush(myself).await;
            }
        }
    }

    async fn flush(&mut self, myself: &ActorRef<AccountMsg>) {
        self.flush_scheduled = false;
        if self.queue.is_empty() {
            return;
        }
        let inputs = std::mem::take(&mut self.queue);
        if self.act.is_none() {
            self.reload(myself).await;
        }
        let Some(act) = self.act.take() else {
            return self.fail_batch(&inputs);
        };
        let metrics = self.shell.metrics().clone();
        metrics.batch_inputs.observe(inputs.len() as f64);
        let (store, keys, node) = (
            self.shell.store().clone(),
            self.shell.keys().clone(),
            self.shell.config().node_id.clone(),
        );
        let now = now_ms();
        let (act_back, result) = tokio::task::spawn_blocking(move || {
            let r = exec::commit_batch(&store, &keys, &node, &act, &inputs, now);
            (act, r.map(|ok| (ok, inputs)))
        })
        .await
        .expect("a committed batch does not panic");
        match result {
            Ok(((next, effects), _inputs)) => {
                self.act = Some(next);
                self.run_effects(myself, effects);
            }
            Err(e) => {
                // The commit may have happened (unknown result): storage may be ahead of
                // memory, so the account is reloaded before it takes more input.
                tracing::warn!(account = %self.id, error = %e, "batch not committed");
                drop(act_back);
                self.fail_pending(&e);
                if e == StorageError::Fenced {
                    // A newer activation owns the account: step aside rather than take the
                    // lease back; the next message here activates afresh.
                    self.shell.directory().passivate(&self.id, myself.get_id());
                } else {
                    self.schedule_reload(myself);
                }
            }
        }
    }

    /// Loads the account from storage after a failure, re-arming every open saga under a new
    /// timer generation and answering waiters of transfers that settled meanwhile; on failure,
    /// tries again later with backoff so no open saga is left without a timer.
    async fn reload(&mut self, myself: &ActorRef<AccountMsg>) {
        match load(&self.shell, &self.id).await {
            Ok(act) => {
                self.timer_gen += 1;
                self.reload_backoff = RELOAD_BACKOFF_INITIAL;
                let resume = act.core.resume();
                let settled: Vec<TransferId> = self
                    .waiters
                    .keys()
                    .filter(|t| !act.core.open_sagas().contains_key(*t))
                    .cloned()
                    .collect();
                self.act = Some(act);
                self.run_effects(myself, resume);
                self.answer_settled_waiters(settled).await;
            }
            Err(e) => {
                tracing::warn!(account = %self.id, error = %e, "account could not be reloaded");
                self.schedule_reload(myself);
            }
        }
    }

    fn schedule_reload(&mut self, myself: &ActorRef<AccountMsg>) {
        if self.reload_scheduled {
            return;
        }
        self.reload_scheduled = true;
        myself.send_after(self.reload_backoff, || AccountMsg::Reload);
        self.reload_backoff = (self.reload_backoff * 2).min(RELOAD_BACKOFF_MAX);
    }

    /// Answers the waiters of transfers that are no longer open from their stored summaries
    /// (their settlement happened in a commit whose result this actor never learned).
    async fn answer_settled_waiters(&mut self, transfers: Vec<TransferId>) {
        for tid in transfers {
            let (store, keys, t) = (
                self.shell.store().clone(),
                self.shell.keys().clone(),
                tid.clone(),
            );
            let view = tokio::task::spawn_blocking(move || exec::read_transfer(&store, &keys, &t))
                .await
                .expect("transfer read does not panic");
            let waiters = self.waiters.remove(&tid).unwrap_or_default();
            if let Ok(Some(view)) = view {
                for w in waiters {
                    let _ = w.send(view.clone());
                }
            }
            // Without a summary the waiters are dropped: their callers report "pending",
            // which is true from their point of view, and can read the transfer later.
        }
    }

    /// Answers every command of a batch that could not run: outcome unknown.
    fn fail_batch(&mut self, inputs: &[Input]) {
        for input in inputs {
            if let Input::Command(req, _) = input {
                if let Some(port) = self.replies.remove(req) {
                    let _ = port.send(Err(Refusal::Api(unavailable("storage is unreachable"))));
                }
            }
        }
    }

    fn fail_pending(&mut self, e: &StorageError) {
        // Fenced is definitive (the store reports an earlier unknown attempt as unknown, not
        // fenced): nothing of these commands ran, so the caller may send them to the new owner.
        let refusal = || match e {
            StorageError::Fenced => Refusal::Moved,
            _ => Refusal::Api(unavailable("storage did not confirm the commit")),
        };
        for (_, port) in self.replies.drain() {
            let _ = port.send(Err(refusal()));
        }
        // Saga messages of the failed batch are dropped: the sender's timer re-drives them.
    }

    fn run_effects(&mut self, myself: &ActorRef<AccountMsg>, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Reply(req, result) => self.reply(req, result),
                Effect::Send(msg) => {
                    let shell = self.shell.clone();
                    shell.metrics().saga_messages.inc();
                    tokio::spawn(async move { shell.deliver(msg).await });
                }
                Effect::Publish(update) => self.shell.publish(update),
                Effect::Timer {
                    transfer_id,
                    after_ms,
                } => {
                    let gen = self.timer_gen;
                    myself.send_after(Duration::from_millis(after_ms), move || {
                        AccountMsg::Timer(transfer_id, gen)
                    });
                }
                Effect::Settled(view) => {
                    self.shell.metrics().transfers_settled(view.status);
                    for w in self.waiters.remove(&view.id).unwrap_or_default() {
                        let _ = w.send(view.clone());
                    }
                }
            }
        }
    }

    fn reply(&mut self, req: ReqId, result: Result<Reply, ApiError>) {
        let Some(port) = self.replies.remove(&req) else {
            return; // the caller gave up
        };
        let settle = match &result {
            Ok(Reply::Transfer(view)) if view.status == TransferStatus::Pending => {
                let (tx, rx) = oneshot::channel();
                let list = self.waiters.entry(view.id.clone()).or_default();
                list.retain(|w| !w.is_closed());
                if list.len() < WAITERS_PER_TRANSFER_MAX {
                    list.push(tx);
                    Some(rx)
                } else {
                    None
                }
            }
            _ => None,
        };
        let _ = port.send(result.map(|r| (r, settle)).map_err(Refusal::Api));
    }
}
