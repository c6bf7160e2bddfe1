//! The account actor: the ractor runtime of one [`Driver`].
//!
//! Every decision is the driver's; this file only carries out its outputs: batches through the
//! node's committer and other storage work on a blocking thread (awaited in the handler, so
//! the mailbox waits and one batch is in flight at a time), replies and settlement waiters through oneshot channels, saga messages through
//! [`Shell::deliver`], publications on the node's stream, the one saga timer and the backoff
//! as delayed self-messages, and the stop through the directory.

use super::{unavailable, Refusal, Shell};
use crate::ledger::account::{Command, Reply, ReqId};
use crate::ledger::driver::{Answer, Driver, Out, StopReason, Work};
use crate::ledger::exec;
use protocol::api::TransferView;
use protocol::saga::SagaMsg;
use protocol::{AccountId, TransferId};
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

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
    /// Client commands in order, each with where to answer it (one sender's items of a batch:
    /// one message, so they queue together, in order, and commit in as few batches as the
    /// driver's batch cap allows).
    Commands(Vec<(Command, oneshot::Sender<CommandReply>)>),
    /// A saga message from another account.
    Saga(SagaMsg),
    /// The saga timer armed with this token fired.
    Timer(u64),
    /// The backoff announced with this token elapsed.
    Backoff(u64),
    /// Commit everything queued so far (the actor sends this to itself).
    Flush,
    /// Stop if idle (idle passivation, or eviction to make room under `active_max`).
    Passivate,
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

/// The actor's state: the driver and the ports of the callers it answers.
pub struct ActorState {
    shell: Shell,
    driver: Driver,
    replies: HashMap<ReqId, oneshot::Sender<CommandReply>>,
    waiters: HashMap<ReqId, oneshot::Sender<TransferView>>,
    timer: Option<JoinHandle<Result<(), ractor::MessagingErr<AccountMsg>>>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
        let mut state = ActorState {
            shell: args.shell,
            driver: Driver::new(args.id),
            replies: HashMap::new(),
            waiters: HashMap::new(),
            timer: None,
        };
        // The first load runs before the actor takes messages; if it fails the spawn fails
        // and the caller learns that the account could not be activated.
        if state.drive(&myself).await == Some(StopReason::LoadFailed) {
            return Err("the account could not be activated (storage unreachable)".into());
        }
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
                let req = state.driver.command(cmd);
                state.replies.insert(req, reply);
            }
            AccountMsg::Commands(cmds) => {
                for (cmd, reply) in cmds {
                    let req = state.driver.command(cmd);
                    state.replies.insert(req, reply);
                }
            }
            AccountMsg::Saga(m) => state.driver.saga(m),
            AccountMsg::Timer(token) => state.driver.timer_fired(token, now_ms()),
            AccountMsg::Backoff(token) => state.driver.backoff_elapsed(token),
            AccountMsg::Flush => state.driver.flush(),
            AccountMsg::Passivate => {
                state.driver.passivate();
            }
            AccountMsg::Resume(tid) => state.driver.resume(&tid),
        }
        state.drive(&myself).await;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<AccountMsg>,
        state: &mut ActorState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(t) = state.timer.take() {
            t.abort();
        }
        Ok(())
    }
}

impl ActorState {
    /// Carries out the driver's outputs until it asks for nothing more; returns why it
    /// stopped, if it did.
    async fn drive(&mut self, myself: &ActorRef<AccountMsg>) -> Option<StopReason> {
        let mut stopped = None;
        loop {
            let out = self.driver.take_out();
            if out.is_empty() {
                return stopped;
            }
            for o in out {
                match o {
                    Out::Work(_) => self.work(myself).await,
                    Out::Flush => {
                        // While draining, the mailbox refuses new messages: flush inline.
                        if myself.send_message(AccountMsg::Flush).is_err() {
                            self.driver.flush();
                        }
                    }
                    Out::Answer {
                        req,
                        answer,
                        waiter,
                    } => self.answer(req, answer, waiter),
                    Out::Settle { waiters, view } => {
                        self.shell.metrics().transfers_settled(view.status);
                        for req in waiters {
                            if let Some(w) = self.waiters.remove(&req) {
                                let _ = w.send(view.clone());
                            }
                        }
                    }
                    Out::DropWaiters(reqs) => {
                        for req in reqs {
                            self.waiters.remove(&req);
                        }
                    }
                    Out::Send(msg) => {
                        self.shell.metrics().saga_messages.inc();
                        // To an active actor on this node: straight into its mailbox.
                        if let Some(msg) = self.shell.deliver_now(msg) {
                            let shell = self.shell.clone();
                            tokio::spawn(async move { shell.deliver(msg).await });
                        }
                    }
                    Out::Reroute(msg) => {
                        let shell = self.shell.clone();
                        tokio::spawn(async move { shell.deliver(msg).await });
                    }
                    Out::Publish(update) => self.shell.publish(update),
                    Out::SetTimer { token, at_ms } => {
                        if let Some(t) = self.timer.take() {
                            t.abort();
                        }
                        let after = Duration::from_millis(at_ms.saturating_sub(now_ms()));
                        self.timer =
                            Some(myself.send_after(after, move || AccountMsg::Timer(token)));
                    }
                    Out::CancelTimer => {
                        if let Some(t) = self.timer.take() {
                            t.abort();
                        }
                    }
                    Out::Backoff { token, after_ms } => {
                        myself.send_after(Duration::from_millis(after_ms), move || {
                            AccountMsg::Backoff(token)
                        });
                    }
                    Out::Stop(reason) => {
                        let id = self.driver.id().clone();
                        match reason {
                            StopReason::SteppedAside => {
                                tracing::info!(account = %id, "stale activation steps aside")
                            }
                            StopReason::Idle => {}
                            StopReason::LoadFailed => {
                                tracing::warn!(account = %id, "activation failed")
                            }
                        }
                        self.shell.directory().passivate(&id, myself.get_id());
                        // Callers still waiting for a settlement report the transfer pending.
                        self.waiters.clear();
                        stopped = Some(reason);
                    }
                }
            }
        }
    }

    /// Carries out the announced work on a blocking thread and reports its result.
    async fn work(&mut self, _myself: &ActorRef<AccountMsg>) {
        let (store, keys) = (self.shell.store().clone(), self.shell.keys().clone());
        let id = self.driver.id().clone();
        let node = self.shell.config().node_id.clone();
        match self.driver.take_work() {
            Work::Load => {
                let timing = self.shell.config().timing;
                let mut nonce = [0u8; 8];
                getrandom::fill(&mut nonce).expect("the OS provides randomness");
                let nonce = u64::from_le_bytes(nonce);
                let r = blocking(move || exec::activate(&store, &keys, &node, &id, timing, nonce))
                    .await;
                match &r {
                    Ok(_) => self.shell.metrics().activations.inc(),
                    Err(e) => {
                        tracing::warn!(account = %self.driver.id(), error = %e, "account could not be loaded")
                    }
                }
                self.driver.loaded(r, now_ms());
            }
            Work::Commit(batch) => {
                self.shell
                    .metrics()
                    .batch_inputs
                    .observe(batch.inputs.len() as f64);
                let Some((batch, r)) = self.shell.committer().commit(batch).await else {
                    return; // the runtime shuts down
                };
                if let Err(e) = &r {
                    tracing::warn!(account = %self.driver.id(), error = %e, "batch not committed");
                }
                self.driver.committed(batch, r, now_ms());
            }
            Work::ReadLease => {
                let r = blocking(move || exec::read_lease(&store, &keys, &id)).await;
                self.driver.lease_read(r);
            }
            Work::ReadTransfers(ids) => {
                let r = blocking(move || exec::read_transfers(&store, &keys, &ids)).await;
                self.driver.transfers_read(r);
            }
            Work::ReadEntry(seq) => {
                let r = blocking(move || exec::read_entry(&store, &keys, &id, seq)).await;
                self.driver.entry_read(r);
            }
        }
    }

    fn answer(&mut self, req: ReqId, answer: Answer, waiter: bool) {
        let Some(port) = self.replies.remove(&req) else {
            return; // the caller gave up
        };
        let reply = match answer {
            Answer::Reply(Ok(reply)) => {
                let settle = waiter.then(|| {
                    let (tx, rx) = oneshot::channel();
                    self.waiters.insert(req, tx);
                    rx
                });
                Ok((reply, settle))
            }
            Answer::Reply(Err(e)) => Err(Refusal::Api(e)),
            Answer::Moved => Err(Refusal::Moved),
            Answer::Unknown(why) => Err(Refusal::Api(unavailable(why))),
        };
        let _ = port.send(reply);
    }
}

/// Runs storage work on a blocking thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("storage work does not panic")
}
