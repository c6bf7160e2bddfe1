//! Unit tests of the driver: inputs and work results in, emitted outputs asserted.
//!
//! A [`Rig`] plays the runtime: it carries out the work the driver asks for against an
//! in-memory store (the real transaction bodies), or feeds the driver a result the test
//! chooses, and collects the outputs.

use super::*;
use crate::ledger::account::SagaTiming;
use crate::ledger::exec;
use crate::storage::keys::Keys;
use crate::storage::memory::MemoryBackend;
use crate::storage::Store;
use protocol::api::TransferStatus;
use protocol::saga::CreditOutcome;
use protocol::{Amount, Currency, ErrorCode};
use std::sync::Arc;

const T0: u64 = 1_000_000;

fn acct(s: &str) -> AccountId {
    AccountId::new(s).unwrap()
}

fn open() -> Command {
    Command::Open {
        shards: None,
        currency: Currency::new("EUR").unwrap(),
    }
}

fn deposit(v: u64) -> Command {
    Command::Deposit {
        amount: Amount::new(v).unwrap(),
        reference: None,
        idem_key: None,
    }
}

fn transfer(t: &str, to: &str, v: u64) -> Command {
    Command::Transfer {
        transfer_id: TransferId::new(t).unwrap(),
        to: acct(to),
        amount: Amount::new(v).unwrap(),
        reference: None,
        idem_key: None,
    }
}

fn credit(t: &str, from: &str, to: &str, v: u64) -> SagaMsg {
    credit_made_at(t, from, to, v, 0)
}

/// The `Credit` a sender sends for a transfer it created at `created_at`.
fn credit_made_at(t: &str, from: &str, to: &str, v: u64, created_at: u64) -> SagaMsg {
    SagaMsg::Credit {
        transfer_id: TransferId::new(t).unwrap(),
        from: acct(from),
        to: acct(to),
        amount: Amount::new(v).unwrap(),
        currency: Currency::new("EUR").unwrap(),
        reference: None,
        created_at,
    }
}

fn applied(t: &str, from: &str) -> SagaMsg {
    SagaMsg::Outcome {
        transfer_id: TransferId::new(t).unwrap(),
        from: acct(from),
        outcome: CreditOutcome::Applied,
    }
}

struct Rig {
    store: Store,
    keys: Keys,
    d: Driver,
    now: u64,
    nonce: u64,
}

impl Rig {
    /// A driver for `name` whose first load ran.
    fn loaded(name: &str) -> Rig {
        let store = Store::new(Arc::new(MemoryBackend::new()));
        Rig::on(store, name)
    }

    fn on(store: Store, name: &str) -> Rig {
        let mut r = Rig {
            store,
            keys: Keys::default(),
            d: Driver::new(acct(name)),
            now: T0,
            nonce: 0,
        };
        assert_eq!(r.d.take_out(), vec![Out::Work(WorkKind::Load)]);
        r.work();
        r
    }

    /// An opened account funded with `balance`, every output consumed.
    fn funded(name: &str, balance: u64) -> Rig {
        let mut r = Rig::loaded(name);
        r.d.command(open());
        if balance > 0 {
            r.d.command(deposit(balance));
        }
        r.settle();
        r
    }

    /// Carries out the announced work for real and feeds its result back.
    fn work(&mut self) {
        let id = self.d.id().clone();
        match self.d.take_work() {
            Work::Load => {
                self.nonce += 1;
                let r = exec::activate(
                    &self.store,
                    &self.keys,
                    "n1",
                    &id,
                    SagaTiming::default(),
                    self.nonce,
                );
                self.d.loaded(r, self.now);
            }
            Work::Commit(b) => {
                let r =
                    exec::commit_batch(&self.store, &self.keys, "n1", &b.act, &b.inputs, self.now);
                self.d.committed(b, r, self.now);
            }
            Work::ReadLease => {
                let r = exec::read_lease(&self.store, &self.keys, &id);
                self.d.lease_read(r);
            }
            Work::ReadTransfers(ids) => {
                let r = exec::read_transfers(&self.store, &self.keys, &ids);
                self.d.transfers_read(r);
            }
            Work::ReadEntry(seq) => {
                let r = exec::read_entry(&self.store, &self.keys, &id, seq);
                self.d.entry_read(r);
            }
        }
    }

    /// Runs the driver as a runtime would until it asks for nothing more (flushes delivered,
    /// work done); returns every output except work and flush requests.
    fn settle(&mut self) -> Vec<Out> {
        let mut seen = Vec::new();
        for _ in 0..1_000 {
            let out = self.d.take_out();
            if out.is_empty() {
                return seen;
            }
            for o in out {
                match o {
                    Out::Work(_) => self.work(),
                    Out::Flush => self.d.flush(),
                    other => seen.push(other),
                }
            }
        }
        panic!("the driver never settled");
    }

    /// Takes the announced commit, lets it land in storage, and reports it unknown (a
    /// commit whose acknowledgement was lost); returns the outputs.
    fn land_but_report_unknown(&mut self) -> Vec<Out> {
        let Work::Commit(b) = self.d.take_work() else {
            panic!("a commit was announced");
        };
        let landed = exec::commit_batch(&self.store, &self.keys, "n1", &b.act, &b.inputs, self.now);
        assert!(landed.is_ok());
        self.d
            .committed(b, Err(StorageError::CommitUnknown), self.now);
        self.d.take_out()
    }

    /// Takes the announced commit and answers it with `err`, returning the outputs.
    fn fail_commit(&mut self, err: StorageError) -> Vec<Out> {
        let Work::Commit(b) = self.d.take_work() else {
            panic!("a commit was announced");
        };
        self.d.committed(b, Err(err), self.now);
        self.d.take_out()
    }
}

fn answers(out: &[Out]) -> Vec<(ReqId, Answer)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Answer { req, answer, .. } => Some((*req, answer.clone())),
            _ => None,
        })
        .collect()
}

fn is_ok(a: &Answer) -> bool {
    matches!(a, Answer::Reply(Ok(_)))
}

#[test]
fn driver_commits_inputs_queued_before_the_flush_in_one_batch() {
    let mut r = Rig::loaded("a");
    let a = r.d.command(open());
    assert_eq!(
        r.d.take_out(),
        vec![Out::Flush],
        "the first input asks for a flush"
    );
    let b = r.d.command(deposit(5));
    let c = r.d.command(deposit(7));
    assert!(r.d.take_out().is_empty(), "one flush for the whole batch");
    r.d.flush();
    assert_eq!(r.d.take_out(), vec![Out::Work(WorkKind::Commit)]);
    let Work::Commit(batch) = r.d.take_work() else {
        panic!("commit")
    };
    assert_eq!(batch.inputs.len(), 3);
    let res = exec::commit_batch(&r.store, &r.keys, "n1", &batch.act, &batch.inputs, r.now);
    r.d.committed(batch, res, r.now);
    let out = r.d.take_out();
    let got = answers(&out);
    assert_eq!(
        got.iter().map(|(q, _)| *q).collect::<Vec<_>>(),
        vec![a, b, c]
    );
    assert!(got.iter().all(|(_, x)| is_ok(x)), "{got:?}");
    let published = out.iter().filter(|o| matches!(o, Out::Publish(_))).count();
    assert_eq!(published, 2, "each deposit's entry is published");
    assert!(r.d.is_idle());
}

#[test]
fn driver_commits_a_full_batch_without_waiting_for_the_flush() {
    let mut r = Rig::funded("a", 0);
    for _ in 0..BATCH_INPUTS_MAX {
        r.d.command(Command::Get);
    }
    let out = r.d.take_out();
    assert_eq!(out, vec![Out::Flush, Out::Work(WorkKind::Commit)]);
    let Work::Commit(batch) = r.d.take_work() else {
        panic!("commit")
    };
    assert_eq!(batch.inputs.len(), BATCH_INPUTS_MAX);
}

#[test]
fn driver_answers_one_batch_at_a_time_in_order() {
    let mut r = Rig::funded("a", 0);
    r.d.command(deposit(1));
    r.d.flush();
    assert_eq!(
        r.d.take_out(),
        vec![Out::Flush, Out::Work(WorkKind::Commit)]
    );
    let _first = r.d.take_work();
    // Arrives while the first batch is in flight: waits for it.
    r.d.command(deposit(2));
    r.d.flush();
    let out = r.d.take_out();
    assert!(
        !out.iter().any(|o| matches!(o, Out::Work(_))),
        "a second batch never starts while one is in flight: {out:?}"
    );
}

#[test]
fn driver_retries_a_batch_that_did_not_commit_then_answers_unknown() {
    let mut r = Rig::funded("a", 10);
    let q = r.d.command(deposit(5));
    r.d.flush();
    r.d.take_out();
    for attempt in 0..BATCH_RETRIES_MAX {
        let out = r.fail_commit(StorageError::Conflict);
        assert!(
            answers(&out).is_empty(),
            "attempt {attempt}: nobody answered yet"
        );
        let token = match out.as_slice() {
            [Out::Backoff { token, .. }] => *token,
            other => panic!("a backoff, not {other:?}"),
        };
        r.d.backoff_elapsed(token);
        assert_eq!(
            r.d.take_out(),
            vec![Out::Work(WorkKind::Commit)],
            "the same batch again"
        );
    }
    let out = r.fail_commit(StorageError::Unavailable("down".into()));
    assert_eq!(
        answers(&out),
        vec![(q, Answer::Unknown("storage refused the commit"))]
    );
    // Nothing committed, so the activation is kept: the next command commits without a load.
    let q2 = r.d.command(deposit(1));
    let out = r.settle();
    assert!(matches!(answers(&out)[..], [(x, Answer::Reply(Ok(_)))] if x == q2));
}

#[test]
fn driver_reloads_after_an_unknown_commit_and_publishes_what_landed() {
    let mut r = Rig::funded("a", 10);
    let q = r.d.command(deposit(5));
    r.d.flush();
    r.d.take_out();
    // The commit lands, but the runtime learns only "unknown".
    let out = r.land_but_report_unknown();
    assert_eq!(
        answers(&out),
        vec![(q, Answer::Unknown("storage did not confirm the commit"))]
    );
    assert!(!out.iter().any(|o| matches!(o, Out::Publish(_))));
    let Some(Out::Backoff { token, .. }) = out.last().cloned() else {
        panic!("a reload backoff: {out:?}")
    };
    // A command that arrives meanwhile waits for the reload instead of failing.
    let q2 = r.d.command(Command::Get);
    assert!(answers(&r.d.take_out()).is_empty());
    r.d.backoff_elapsed(token);
    assert_eq!(r.d.take_out(), vec![Out::Work(WorkKind::Load)]);
    r.work();
    let out = r.settle();
    let heads: Vec<u64> = out
        .iter()
        .filter_map(|o| match o {
            Out::Publish(u) => Some(u.entry.seq),
            _ => None,
        })
        .collect();
    assert_eq!(
        heads,
        vec![2],
        "the landed deposit (seq 2) is published after the reload"
    );
    match &answers(&out)[..] {
        [(x, Answer::Reply(Ok(Reply::Account { view, .. })))] if *x == q2 => {
            assert_eq!(view.balance, 15, "memory caught up with storage")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn driver_steps_aside_when_fenced_and_never_takes_the_lease_back() {
    let store = Store::new(Arc::new(MemoryBackend::new()));
    let mut old = Rig::on(store.clone(), "a");
    old.d.command(open());
    old.settle();
    // A newer activation (another node's) takes the lease.
    let newer = Rig::on(store.clone(), "a");
    let lease_of_newer = exec::read_lease(&store, &newer.keys, &acct("a")).unwrap();
    let q1 = old.d.command(deposit(5));
    old.d.flush();
    old.d.take_out();
    // Queued behind the batch in flight.
    let q2 = old.d.command(deposit(6));
    old.d.saga(credit("t1", "b", "a", 3));
    let Work::Commit(b) = old.d.take_work() else {
        panic!("commit")
    };
    let res = exec::commit_batch(&store, &old.keys, "n1", &b.act, &b.inputs, old.now);
    assert_eq!(res.as_ref().err(), Some(&StorageError::Fenced));
    old.d.committed(b, res, old.now);
    let out = old.d.take_out();
    assert_eq!(
        out,
        vec![
            Out::Answer {
                req: q1,
                answer: Answer::Moved,
                waiter: false
            },
            Out::Answer {
                req: q2,
                answer: Answer::Moved,
                waiter: false
            },
            Out::Reroute(credit("t1", "b", "a", 3)),
            Out::Stop(StopReason::SteppedAside),
        ]
    );
    // What the runtime still delivers is handed back, and nothing is ever loaded again.
    let q3 = old.d.command(deposit(1));
    old.d.saga(credit("t2", "b", "a", 4));
    old.d.flush();
    old.d.timer_fired(1, T0 + 60_000);
    assert_eq!(
        old.d.take_out(),
        vec![
            Out::Answer {
                req: q3,
                answer: Answer::Moved,
                waiter: false
            },
            Out::Reroute(credit("t2", "b", "a", 4)),
        ]
    );
    assert_eq!(
        exec::read_lease(&store, &old.keys, &acct("a")).unwrap(),
        lease_of_newer,
        "the newer activation keeps its lease"
    );
}

#[test]
fn driver_steps_aside_when_the_sweep_finds_a_saga_it_does_not_know_and_the_lease_moved() {
    let store = Store::new(Arc::new(MemoryBackend::new()));
    let mut old = Rig::on(store.clone(), "a");
    old.d.command(open());
    old.settle();
    // While the lease is still ours, an unknown saga is ignored after one lease read.
    old.d.resume(&TransferId::new("t9").unwrap());
    assert_eq!(old.d.take_out(), vec![Out::Work(WorkKind::ReadLease)]);
    old.work();
    assert!(old.d.take_out().is_empty());
    assert!(!old.d.is_stopped());
    let _newer = Rig::on(store, "a");
    old.d.resume(&TransferId::new("t9").unwrap());
    assert_eq!(old.d.take_out(), vec![Out::Work(WorkKind::ReadLease)]);
    old.work();
    assert_eq!(old.d.take_out(), vec![Out::Stop(StopReason::SteppedAside)]);
}

#[test]
fn driver_keeps_one_deadline_per_saga_and_none_once_settled() {
    let mut r = Rig::funded("a", 100);
    let made = r.now;
    let q = r.d.command(transfer("t1", "b", 30));
    let out = r.settle();
    assert!(out.contains(&Out::Send(credit_made_at("t1", "a", "b", 30, made))));
    assert!(out.contains(&Out::Answer {
        req: q,
        answer: answers(&out)[0].1.clone(),
        waiter: true
    }));
    let credit_timeout = SagaTiming::default().credit_timeout_ms;
    let token = out
        .iter()
        .find_map(|o| match o {
            Out::SetTimer { token, at_ms } => {
                assert_eq!(*at_ms, T0 + credit_timeout);
                Some(*token)
            }
            _ => None,
        })
        .expect("the saga's deadline arms the timer");
    assert_eq!(r.d.deadlines(), 1);
    assert!(!r.d.is_idle(), "an open saga keeps the actor");
    assert!(!r.d.passivate());
    // A stale firing does nothing.
    r.d.timer_fired(token + 100, T0 + credit_timeout);
    assert!(r.d.take_out().is_empty());
    // The receiver applied: settled, the waiter answered, the timer cancelled.
    r.d.saga(applied("t1", "a"));
    let out = r.settle();
    let settle = out
        .iter()
        .find_map(|o| match o {
            Out::Settle { waiters, view } => Some((waiters.clone(), view.status)),
            _ => None,
        })
        .expect("settled");
    assert_eq!(settle, (vec![q], TransferStatus::Completed));
    assert!(out.contains(&Out::CancelTimer), "{out:?}");
    assert_eq!(r.d.deadlines(), 0);
    // The cancelled timer firing late changes nothing.
    r.d.timer_fired(token, T0 + credit_timeout);
    assert!(r.d.take_out().is_empty());
    assert!(r.d.passivate());
    assert_eq!(r.d.take_out(), vec![Out::Stop(StopReason::Idle)]);
}

#[test]
fn driver_timer_resends_the_credit_when_due() {
    let mut r = Rig::funded("a", 100);
    let made = r.now;
    r.d.command(transfer("t1", "b", 30));
    let out = r.settle();
    let (token, at) = out
        .iter()
        .find_map(|o| match o {
            Out::SetTimer { token, at_ms } => Some((*token, *at_ms)),
            _ => None,
        })
        .unwrap();
    r.now = at;
    r.d.timer_fired(token, at);
    let out = r.settle();
    assert!(
        out.contains(&Out::Send(credit_made_at("t1", "a", "b", 30, made))),
        "{out:?}"
    );
    assert!(
        out.iter().any(|o| matches!(o, Out::SetTimer { .. })),
        "re-armed: {out:?}"
    );
}

#[test]
fn driver_answers_waiters_of_a_transfer_that_settled_in_an_unknown_commit() {
    let mut r = Rig::funded("a", 100);
    let q = r.d.command(transfer("t1", "b", 30));
    r.settle();
    r.d.saga(applied("t1", "a"));
    r.d.flush();
    r.d.take_out();
    let out = r.land_but_report_unknown();
    let Some(token) = out.iter().find_map(|o| match o {
        Out::Backoff { token, .. } => Some(*token),
        _ => None,
    }) else {
        panic!("{out:?}")
    };
    r.d.backoff_elapsed(token);
    let out = r.settle();
    let settled = out.iter().find_map(|o| match o {
        Out::Settle { waiters, view } => Some((waiters.clone(), view.status)),
        _ => None,
    });
    assert_eq!(settled, Some((vec![q], TransferStatus::Completed)));
    assert!(r.d.is_idle());
}

#[test]
fn driver_first_load_failure_stops_and_a_reload_failure_backs_off() {
    let store = Store::new(Arc::new(MemoryBackend::new()));
    let mut d = Driver::new(acct("a"));
    d.take_out();
    let q = d.command(open());
    let _ = d.take_work();
    d.loaded(Err(StorageError::Unavailable("down".into())), T0);
    let out = d.take_out();
    assert_eq!(
        answers(&out),
        vec![(
            q,
            Answer::Unknown("the account could not be activated (storage unreachable)")
        )]
    );
    assert_eq!(out.last(), Some(&Out::Stop(StopReason::LoadFailed)));

    let mut r = Rig::on(store, "a");
    r.d.command(open());
    r.settle();
    r.d.command(deposit(1));
    r.d.flush();
    r.d.take_out();
    r.fail_commit(StorageError::CommitUnknown);
    for expected_ms in [RELOAD_BACKOFF_INITIAL_MS * 2, RELOAD_BACKOFF_INITIAL_MS * 4] {
        let token = r.d.tokens;
        r.d.backoff_elapsed(token);
        assert_eq!(r.d.take_out(), vec![Out::Work(WorkKind::Load)]);
        let _ = r.d.take_work();
        r.d.loaded(Err(StorageError::Unavailable("down".into())), r.now);
        match r.d.take_out().as_slice() {
            [Out::Backoff { after_ms, .. }] => assert_eq!(*after_ms, expected_ms),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn driver_refuses_past_its_queue_limit() {
    let mut d = Driver::new(acct("a"));
    d.take_out();
    for _ in 0..QUEUE_INPUTS_MAX {
        d.command(Command::Get);
    }
    assert!(d.take_out().is_empty(), "queued while loading");
    let q = d.command(Command::Get);
    assert_eq!(
        answers(&d.take_out()),
        vec![(q, Answer::Overloaded)],
        "refused before anything ran: overloaded, not outcome unknown"
    );
    assert_eq!(d.queued(), QUEUE_INPUTS_MAX);
}

#[test]
fn driver_business_errors_are_replies_not_failures() {
    let mut r = Rig::funded("a", 5);
    let q = r.d.command(transfer("t1", "b", 50));
    let out = r.settle();
    match &answers(&out)[..] {
        [(x, Answer::Reply(Err(e)))] if *x == q => {
            assert_eq!(e.code, ErrorCode::InsufficientFunds)
        }
        other => panic!("{other:?}"),
    }
    assert!(r.d.is_idle());
}

#[test]
fn driver_reads_the_unpublished_head_again_when_the_read_fails() {
    // A new activation of an account another activation wrote to publishes the newest entry,
    // even when storage fails the first read: streams never wait for the next commit.
    let store = Store::new(Arc::new(MemoryBackend::new()));
    let mut first = Rig::on(store.clone(), "a");
    first.d.command(open());
    first.d.command(deposit(4));
    first.settle();
    let mut d = Driver::new(acct("a"));
    assert_eq!(d.take_out(), vec![Out::Work(WorkKind::Load)]);
    let _ = d.take_work();
    let act = exec::activate(
        &store,
        &Keys::default(),
        "n2",
        &acct("a"),
        SagaTiming::default(),
        9,
    );
    d.loaded(act, T0);
    assert_eq!(d.take_out(), vec![Out::Work(WorkKind::ReadEntry)]);
    let Work::ReadEntry(seq) = d.take_work() else {
        panic!("a head read")
    };
    assert_eq!(seq, 1);
    d.entry_read(Err(StorageError::Unavailable("down".into())));
    let out = d.take_out();
    let [Out::Backoff { token, .. }] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert!(!d.is_quiet(), "not quiet while the head is unpublished");
    d.backoff_elapsed(*token);
    assert_eq!(d.take_out(), vec![Out::Work(WorkKind::ReadEntry)]);
    let _ = d.take_work();
    d.entry_read(exec::read_entry(&store, &Keys::default(), &acct("a"), 1));
    match d.take_out().as_slice() {
        [Out::Publish(u)] => assert_eq!((u.entry.seq, u.entry.balance), (1, 4)),
        other => panic!("{other:?}"),
    }
    assert!(d.is_idle());
}
