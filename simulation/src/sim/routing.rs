//! Routing: what a node does with a message, as the shell's gateway and `Shell::execute` do.
//!
//! A client's request reaches a gateway node, which reads history itself and turns every other
//! operation into a command for the account's owner under the ring it knows. A node that does
//! not own an account forwards the command or saga message to the owner it believes in, at most
//! [`SAGA_HOPS_MAX`] times (rings disagree while membership changes); the owner hands it to the
//! account's actor ([`super::runtime`]).

use super::runtime::Caller;
use super::*;

/// A message to a node.
#[derive(Clone, Debug)]
pub(super) enum NodeMsg {
    /// A client's request at its gateway.
    Request {
        client: usize,
        attempt: u64,
        op: usize,
    },
    /// A command on its way to the account's owner.
    Command {
        client: usize,
        attempt: u64,
        account: AccountId,
        cmd: Command,
        hops: u8,
        /// Times it was routed again after its actor answered `Moved`.
        moves: u32,
    },
    /// A saga message on its way to the account's owner.
    Saga { msg: SagaMsg, hops: u8 },
}

impl Sim {
    /// The node that `node` believes owns `account`.
    pub(super) fn owner(&self, node: usize, account: &AccountId) -> usize {
        let id = &self.nodes[node].ring.owner(account.as_str()).node_id;
        self.nodes
            .iter()
            .position(|n| &n.id == id)
            .expect("ring members are nodes")
    }

    /// A message reaches `node`.
    pub(super) fn node_receive(&mut self, node: usize, msg: NodeMsg) {
        if !self.nodes[node].alive {
            self.stats.lost += 1;
            trace!(self, "n{} down, dropped {}", node + 1, describe(&msg));
            return;
        }
        trace!(self, "n{} recv {}", node + 1, describe(&msg));
        match msg {
            NodeMsg::Request {
                client,
                attempt,
                op,
            } => self.gateway(node, client, attempt, op),
            NodeMsg::Command {
                client,
                attempt,
                account,
                cmd,
                hops,
                moves,
            } => {
                let owner = self.owner(node, &account);
                if owner == node {
                    let caller = Caller {
                        to: ReplyTo { client, attempt },
                        account,
                        cmd,
                        moves,
                        since: 0,
                    };
                    self.actor_command(node, caller);
                } else if hops < SAGA_HOPS_MAX {
                    let msg = NodeMsg::Command {
                        client,
                        attempt,
                        account,
                        cmd,
                        hops: hops + 1,
                        moves,
                    };
                    self.send_node(Some(node), owner, msg);
                } else {
                    let r = ClientResult::Reply(Err(unavailable("account is moving; retry")));
                    self.send_client(node, client, attempt, r);
                }
            }
            NodeMsg::Saga { msg, hops } => {
                let account = msg.destination().clone();
                let owner = self.owner(node, &account);
                if owner == node {
                    self.actor_saga(node, msg);
                } else if hops < SAGA_HOPS_MAX {
                    self.send_node(
                        Some(node),
                        owner,
                        NodeMsg::Saga {
                            msg,
                            hops: hops + 1,
                        },
                    );
                }
            }
        }
    }

    /// Sends the result of a read the gateway made itself, `lat` after the read began.
    fn answer_read(&mut self, node: usize, client: usize, attempt: u64, r: ClientResult, lat: u64) {
        let Some(d) = self.link_delay(Some(node), None) else {
            return;
        };
        self.at(
            d + lat,
            Event::ToClient {
                client,
                attempt,
                result: r,
            },
        );
    }

    /// A node accepting a client request: reads history and transfer summaries itself, routes commands.
    pub(super) fn gateway(&mut self, node: usize, client: usize, attempt: u64, op: usize) {
        let spec = self.ops[op].clone();
        let cmd = match &spec.kind {
            OpKind::History(after) => {
                let (page, lat) = self.storage(Vec::new(), |s, k| {
                    exec::read_entries(s, k, &spec.account, *after, crate::workload::HISTORY_PAGE)
                });
                let r = ClientResult::Page(page.map_err(|e| unavailable(&e.to_string())));
                return self.answer_read(node, client, attempt, r, lat);
            }
            OpKind::ShowTransfer(id) => {
                let (read, lat) = self.storage(Vec::new(), |s, k| exec::read_transfer(s, k, id));
                let r = ClientResult::Reply(match read {
                    Ok(Some(v)) => Ok(Reply::Transfer(v)),
                    Ok(None) => Err(ApiError::new(
                        ErrorCode::TransferNotFound,
                        "no such transfer",
                    )),
                    Err(e) => Err(unavailable(&e.to_string())),
                });
                return self.answer_read(node, client, attempt, r, lat);
            }
            OpKind::ShowHold(id) => {
                let (read, lat) = self.storage(Vec::new(), |s, k| exec::read_hold(s, k, id));
                let r = ClientResult::Reply(match read {
                    Ok(Some(v)) => Ok(Reply::Hold(Box::new(v))),
                    Ok(None) => Err(ApiError::new(ErrorCode::HoldNotFound, "no such hold")),
                    Err(e) => Err(unavailable(&e.to_string())),
                });
                return self.answer_read(node, client, attempt, r, lat);
            }
            OpKind::ShowDisbursement(id) => {
                let (read, lat) =
                    self.storage(Vec::new(), |s, k| exec::read_disbursement(s, k, id));
                let r = ClientResult::Reply(match read {
                    Ok(Some(v)) => Ok(Reply::Disbursement(Box::new(v))),
                    Ok(None) => Err(ApiError::new(
                        ErrorCode::DisbursementNotFound,
                        "no such disbursement",
                    )),
                    Err(e) => Err(unavailable(&e.to_string())),
                });
                return self.answer_read(node, client, attempt, r, lat);
            }
            OpKind::Disburse { legs } => {
                self.next_tid += 1;
                Command::Disburse {
                    disbursement_id: TransferId::new(format!("d{}", self.next_tid)).expect("valid"),
                    legs: legs
                        .iter()
                        .map(|(to, a)| {
                            (
                                to.clone(),
                                Amount::new(*a).expect("workload amounts are valid"),
                            )
                        })
                        .collect(),
                    reference: Some(spec.reference.clone()),
                    idem_key: spec.idem_key.clone(),
                }
            }
            OpKind::Hold {
                to,
                amount,
                expires_in_ms,
            } => {
                self.next_tid += 1;
                Command::Hold {
                    hold_id: TransferId::new(format!("h{}", self.next_tid)).expect("valid"),
                    to: to.clone(),
                    amount: Amount::new(*amount).expect("workload amounts are valid"),
                    expires_in_ms: *expires_in_ms,
                    reference: Some(spec.reference.clone()),
                    idem_key: spec.idem_key.clone(),
                }
            }
            // The gateway finds the payer by reading the hold; the workload names it.
            OpKind::Capture { hold, amount } => {
                self.next_tid += 1;
                Command::Capture {
                    hold_id: hold.clone(),
                    capture_id: TransferId::new(format!("t{}", self.next_tid)).expect("valid"),
                    amount: amount.map(|a| Amount::new(a).expect("workload amounts are valid")),
                    idem_key: spec.idem_key.clone(),
                }
            }
            OpKind::Void(hold) => Command::Void {
                hold_id: hold.clone(),
                idem_key: spec.idem_key.clone(),
            },
            // The hot account and its shards are opened with its shard count.
            OpKind::Open(c) => Command::Open {
                shards: self.universe.shards_of(&spec.account),
                currency: *c,
            },
            // A sharded account is read as the gateway reads it: its shards summed from one
            // storage snapshot.
            OpKind::Get if self.universe.shards_of(&spec.account).is_some() => {
                let (read, lat) = self.storage(Vec::new(), |s, k| {
                    shard_reads::read_whole(s, k, &spec.account)
                });
                let r = ClientResult::Reply(match read {
                    Ok(Some(view)) => Ok(Reply::Account {
                        view,
                        created: false,
                    }),
                    Ok(None) => Err(ApiError::new(ErrorCode::AccountNotFound, "no such account")),
                    Err(StorageError::Corrupt(e)) => {
                        let msg =
                            format!("{}: the read of {} found {e}", spec.reference, spec.account);
                        return self.fail(FailureKind::Correctness, "sharded accounts", msg);
                    }
                    Err(e) => Err(unavailable(&e.to_string())),
                });
                return self.answer_read(node, client, attempt, r, lat);
            }
            OpKind::Deposit(a) => Command::Deposit {
                amount: Amount::new(*a).expect("workload amounts are valid"),
                reference: Some(spec.reference.clone()),
                idem_key: spec.idem_key.clone(),
            },
            OpKind::Withdraw(a) => Command::Withdraw {
                amount: Amount::new(*a).expect("workload amounts are valid"),
                reference: Some(spec.reference.clone()),
                idem_key: spec.idem_key.clone(),
            },
            OpKind::Transfer { to, amount } => {
                self.next_tid += 1;
                Command::Transfer {
                    transfer_id: TransferId::new(format!("t{}", self.next_tid)).expect("valid"),
                    to: to.clone(),
                    amount: Amount::new(*amount).expect("workload amounts are valid"),
                    reference: Some(spec.reference.clone()),
                    idem_key: spec.idem_key.clone(),
                }
            }
            OpKind::Freeze => Command::Freeze,
            OpKind::Unfreeze => Command::Unfreeze,
            OpKind::Get => Command::Get,
        };
        self.node_receive(
            node,
            NodeMsg::Command {
                client,
                attempt,
                account: spec.account,
                cmd,
                hops: 0,
                moves: 0,
            },
        );
    }
}

pub(super) fn describe(msg: &NodeMsg) -> String {
    match msg {
        NodeMsg::Request {
            client,
            attempt,
            op,
        } => format!("request c{client} a{attempt} o{op}"),
        NodeMsg::Command {
            client,
            attempt,
            account,
            hops,
            ..
        } => format!("command c{client} a{attempt} for {account} (hop {hops})"),
        NodeMsg::Saga { msg, hops } => format!("{} (hop {hops})", describe_saga(msg)),
    }
}

fn describe_saga(m: &SagaMsg) -> String {
    match m {
        SagaMsg::Credit {
            transfer_id,
            from,
            to,
            amount,
            ..
        } => format!("credit {transfer_id} {from}->{to} {}", amount.get()),
        SagaMsg::Abort {
            transfer_id, to, ..
        } => format!("abort {transfer_id} ->{to}"),
        SagaMsg::Try {
            disbursement_id,
            to,
            amount,
            ..
        } => format!("try {disbursement_id} ->{to} {}", amount.get()),
        SagaMsg::Gather { from, to, want } => format!("gather {from}<-{to} {}", want.get()),
        SagaMsg::Confirm {
            disbursement_id,
            to,
            ..
        } => format!("confirm {disbursement_id} ->{to}"),
        SagaMsg::Cancel {
            disbursement_id,
            to,
            ..
        } => format!("cancel {disbursement_id} ->{to}"),
        SagaMsg::LegOutcome {
            disbursement_id,
            from,
            to,
            outcome,
        } => format!("leg {disbursement_id} {to} ->{from} {outcome:?}"),
        SagaMsg::Outcome {
            transfer_id,
            from,
            outcome,
        } => format!("outcome {transfer_id} ->{from} {outcome:?}"),
    }
}
