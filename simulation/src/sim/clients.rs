//! The clients: each draws operations from the workload, sends them to a gateway node, and
//! waits for the reply or its timeout.
//!
//! An operation whose outcome is unknown (`unavailable`, or no reply in time) is retried with
//! the same idempotency key when it has one (or is naturally idempotent), with exponential
//! backoff, up to [`RETRIES_MAX`] tries; otherwise its outcome stays unknown. Every reply is
//! handed to the checkers, even a late one for an attempt the client gave up on.
//!
//! A debit refused `insufficient_funds` by a shard of the hot account is decided as the
//! gateway decides it (`node::ledger::shards::after_short`, on the whole account read from
//! storage): refused for good, or sent again to the same shard after a backoff (its siblings
//! are moving money to it), up to [`GATHER_TRIES_MAX`] times.

use super::*;
use crate::check::sharded_reads;
use node::ledger::shards::{after_short, Short};

/// Where a client is in its loop.
pub(super) enum ClientState {
    /// Will draw a new operation when it wakes.
    Idle,
    /// Will send `op` again when it wakes.
    Retrying { op: usize, tries: u32 },
    /// Waiting for the reply to `attempt`.
    Waiting { op: usize, attempt: u64, tries: u32 },
    /// Spent its share of the workload.
    Done,
}

/// Most times a client sends a debit again to a shard that found too little money while the
/// account as a whole had it.
pub(super) const GATHER_TRIES_MAX: u32 = 8;
/// First wait before such a try; doubles per try.
const GATHER_BACKOFF_MS: u64 = 5;

/// One client.
pub(super) struct Client {
    pub(super) state: ClientState,
    pub(super) keyed: Vec<usize>,
    /// Tries of the current operation on a shard that found too little money.
    pub(super) gathers: u32,
}

impl Sim {
    pub(super) fn client_wake(&mut self, c: usize) {
        match self.clients[c].state {
            ClientState::Idle => {}
            ClientState::Retrying { op, tries } => return self.send_request(c, op, tries),
            ClientState::Waiting { .. } | ClientState::Done => return,
        }
        if self.stats.ops >= self.opts.ops {
            self.clients[c].state = ClientState::Done;
            return;
        }
        self.stats.ops += 1;
        let op = match self.gen.next(c, &self.ops, &self.clients[c].keyed) {
            Drawn::New(spec) => {
                self.ops.push(spec);
                let i = self.ops.len() - 1;
                if self.ops[i].idem_key.is_some() {
                    self.clients[c].keyed.push(i);
                }
                i
            }
            Drawn::Repeat(i) => i,
        };
        self.send_request(c, op, 1);
    }

    pub(super) fn send_request(&mut self, c: usize, op: usize, tries: u32) {
        self.next_attempt += 1;
        let attempt = self.next_attempt;
        self.stats.requests += 1;
        self.clients[c].state = ClientState::Waiting { op, attempt, tries };
        self.attempts.insert(attempt, (op, self.ledger.commits));
        let alive: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].alive)
            .collect();
        let gw = if !alive.is_empty() && self.rng_net.chance(900_000) {
            *self.rng_net.pick(&alive)
        } else {
            self.rng_net.below(self.nodes.len() as u64) as usize
        };
        trace!(
            self,
            "c{c} a{attempt} try {tries} {} via n{}",
            short(&self.ops[op]),
            gw + 1
        );
        self.send_node(
            None,
            gw,
            NodeMsg::Request {
                client: c,
                attempt,
                op,
            },
        );
        let timeout = self.opts.client_timeout_ms;
        self.at(timeout, Event::ClientTimeout(c, attempt));
    }

    pub(super) fn client_receive(&mut self, c: usize, attempt: u64, result: ClientResult) {
        trace!(self, "c{c} a{attempt} got {}", brief(&result));
        // Every reply is checked, even a late one for an attempt the client gave up on.
        let Some((op, sent_commit, current)) = self.attempt_info(c, attempt) else {
            return;
        };
        if !result.is_unknown() {
            let ctx = ReplyCtx {
                ledger: &self.ledger,
                op: &self.ops[op],
                ops: &self.ops,
                sent_commit,
                result: &result,
            };
            if let Err((check, msg)) = self.checks.on_reply(&ctx) {
                let msg = format!(
                    "{msg} (reply to {} attempt {attempt})",
                    self.ops[op].reference
                );
                return self.fail(FailureKind::Correctness, check, msg);
            }
        }
        match &result {
            ClientResult::Reply(Ok(Reply::Account { view, .. })) => {
                self.gen.saw(&view.id, view.available)
            }
            ClientResult::Reply(Ok(Reply::Movement(m))) => self.gen.saw(&m.account, m.balance),
            ClientResult::Reply(Ok(Reply::Transfer(t))) => self.gen.saw_transfer(&t.id),
            ClientResult::Reply(Ok(Reply::Hold(h))) => self.gen.saw_hold(&h.id, &h.from, h.amount),
            ClientResult::Reply(Ok(Reply::Disbursement(d))) => self.gen.saw_disbursement(&d.id),
            ClientResult::Reply(Ok(Reply::Capture { hold, transfer })) => {
                self.gen.saw_transfer(&transfer.id);
                self.gen.saw_hold(&hold.id, &hold.from, hold.amount);
            }
            _ => {}
        }
        if !current {
            return;
        }
        if result.is_unknown() {
            return self.client_unknown(c);
        }
        if self.shard_short(c, op, &result) {
            return;
        }
        match &result {
            ClientResult::Reply(Ok(_)) | ClientResult::Page(Ok(_)) => self.stats.acked += 1,
            _ => self.stats.refused += 1,
        }
        self.client_next(c);
    }

    /// The operation, commit count at sending and whether it is the client's current attempt.
    pub(super) fn attempt_info(&self, c: usize, attempt: u64) -> Option<(usize, u64, bool)> {
        let &(op, sent_commit) = self.attempts.get(&attempt)?;
        let current = matches!(
            self.clients[c].state,
            ClientState::Waiting { attempt: a, .. } if a == attempt
        );
        Some((op, sent_commit, current))
    }

    pub(super) fn client_unknown(&mut self, c: usize) {
        let ClientState::Waiting { op, tries, .. } = self.clients[c].state else {
            return;
        };
        let spec = &self.ops[op];
        let retryable = spec.idem_key.is_some() || spec.kind.naturally_idempotent();
        if retryable && tries < RETRIES_MAX {
            let backoff = RETRY_BACKOFF_MS << (tries - 1).min(6);
            self.clients[c].state = ClientState::Retrying {
                op,
                tries: tries + 1,
            };
            self.at(backoff, Event::ClientWake(c));
        } else {
            self.stats.unknown += 1;
            self.client_next(c);
        }
    }

    /// A shard of the hot account refused a debit for want of money: true when the client
    /// sends it again (the whole account has the money), as the gateway would.
    fn shard_short(&mut self, c: usize, op: usize, result: &ClientResult) -> bool {
        let ClientResult::Reply(Err(e)) = result else {
            return false;
        };
        let spec = self.ops[op].clone();
        let amount = match &spec.kind {
            OpKind::Withdraw(a) => *a,
            OpKind::Transfer { amount, .. } | OpKind::Hold { amount, .. } => *amount,
            OpKind::Disburse { legs } => legs.iter().fold(0u64, |t, (_, a)| t.saturating_add(*a)),
            _ => return false,
        };
        if e.code != ErrorCode::InsufficientFunds || !spec.account.is_shard() {
            return false;
        }
        let ClientState::Waiting { tries, .. } = self.clients[c].state else {
            return false;
        };
        let account = spec.account.public();
        let (whole, _) = self.storage(Vec::new(), |s, k| shard_reads::read_whole(s, k, &account));
        let at = self.ledger.commits;
        let retry = match whole {
            // (A refusal for another reason, a freeze reaching the shards one after the
            // other, is the gateway's answer; the client keeps the shard's.)
            Ok(Some(v)) => match after_short(&v, amount) {
                Short::Retry => true,
                Short::Refuse(code) => {
                    // Refused for want of money only when the account as a whole lacked it.
                    let k = v.shards.unwrap_or(1);
                    let truth = sharded_reads::money_at(&self.ledger, &account, k, at);
                    if let (ErrorCode::InsufficientFunds, Ok((b, h))) = (code, &truth) {
                        let available = b.saturating_sub(*h);
                        if available >= amount {
                            let msg = format!(
                                "{}: refused insufficient_funds for {amount} while {account} had {available} available (read {v:?})",
                                spec.reference
                            );
                            self.fail(FailureKind::Correctness, "sharded accounts", msg);
                        }
                    }
                    false
                }
            },
            Ok(None) => false,
            Err(StorageError::Corrupt(e)) => {
                let msg = format!("{}: the read of {account} found {e}", spec.reference);
                self.fail(FailureKind::Correctness, "sharded accounts", msg);
                return true;
            }
            // The gateway answers `unavailable` when it cannot read: try again.
            Err(_) => true,
        };
        if retry && self.clients[c].gathers >= GATHER_TRIES_MAX {
            // As the gateway after its 2 s: `unavailable`, nothing ran.
            self.client_unknown(c);
            return true;
        }
        if retry {
            let g = self.clients[c].gathers;
            self.clients[c].gathers = g + 1;
            self.clients[c].state = ClientState::Retrying { op, tries };
            self.stats.gathers += 1;
            self.at(GATHER_BACKOFF_MS << g.min(6), Event::ClientWake(c));
        }
        retry
    }

    pub(super) fn client_next(&mut self, c: usize) {
        self.clients[c].gathers = 0;
        self.clients[c].state = ClientState::Idle;
        let think = self.gen.think(self.opts.think_max_ms);
        self.at(think, Event::ClientWake(c));
    }
}

pub(super) fn short(op: &OpSpec) -> String {
    format!(
        "{} {} {:?}{}",
        op.reference,
        op.account,
        op.kind,
        op.idem_key
            .as_ref()
            .map(|k| format!(" key {k}"))
            .unwrap_or_default()
    )
}

fn brief(r: &ClientResult) -> String {
    match r {
        ClientResult::Reply(Ok(rep)) => format!("{rep:?}"),
        ClientResult::Reply(Err(e)) | ClientResult::Page(Err(e)) => format!("error {}", e.code),
        ClientResult::Page(Ok(Some(p))) => format!("page of {}", p.entries.len()),
        ClientResult::Page(Ok(None)) => "no such account".into(),
    }
}
