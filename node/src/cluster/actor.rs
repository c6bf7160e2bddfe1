//! The account actor: the ractor shell around one [`AccountCore`] activation.

use super::{unavailable, Shell, BATCH_INPUTS_MAX};
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

/// What a caller gets back: the reply, and for a pending transfer a receiver of its settlement.
pub type CommandReply = Result<(Reply, Option<oneshot::Receiver<TransferView>>), ApiError>;

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
    /// A saga timer fired.
    Timer(TransferId),
    /// Commit everything queued so far (the actor sends this to itself).
    Flush,
    /// The directory asks an idle actor whether it can passivate.
    IdleCheck,
}

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
    tokio::task::spawn_blocking(move || exec::activate(&store, &keys, &node, &id, timing))
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
            AccountMsg::Timer(t) => state.enqueue(&myself, Input::Timer(t)).await,
            AccountMsg::Flush => state.flush(&myself).await,
            AccountMsg::IdleCheck => {
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
        let act = match self.act.take() {
            Some(a) => a,
            None => match load(&self.shell, &self.id).await {
                Ok(a) => {
                    let resume = a.core.resume();
                    self.run_effects(myself, resume);
                    a
                }
                Err(e) => return self.fail_batch(&inputs, &e),
            },
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
                // memory, so reload before the next input. A fenced activation reloads too,
                // taking the lease back only if this node is still asked to serve the account.
                tracing::warn!(account = %self.id, error = %e, "batch not committed");
                drop(act_back);
                self.fail_pending(&e);
            }
        }
    }

    /// Answers every command of a batch that could not run: outcome unknown.
    fn fail_batch(&mut self, inputs: &[Input], e: &StorageError) {
        tracing::warn!(account = %self.id, error = %e, "account could not be reloaded");
        for input in inputs {
            if let Input::Command(req, _) = input {
                if let Some(port) = self.replies.remove(req) {
                    let _ = port.send(Err(unavailable("storage is unreachable")));
                }
            }
        }
    }

    fn fail_pending(&mut self, e: &StorageError) {
        let why = match e {
            StorageError::Fenced => "the account moved to another activation",
            _ => "storage did not confirm the commit",
        };
        for (_, port) in self.replies.drain() {
            let _ = port.send(Err(unavailable(why)));
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
                    myself.send_after(Duration::from_millis(after_ms), move || {
                        AccountMsg::Timer(transfer_id)
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
        let _ = port.send(result.map(|r| (r, settle)));
    }
}
