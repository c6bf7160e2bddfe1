//! The ledger's transaction bodies under storage faults: a commit reported unknown, whether it
//! happened or not, is retried without applying anything twice and without leaving the
//! activation's memory behind its storage; a stale activation is fenced.

use node::ledger::account::{Command, Effect, Input, Reply, SagaTiming};
use node::ledger::exec::{
    activate, commit_batch, commit_group, read_entries, Activation, Committed, GroupBatch,
};
use node::storage::keys::Keys;
use node::storage::memory::{Fault, MemoryBackend};
use node::storage::{StorageError, Store};
use protocol::saga::SagaMsg;
use protocol::{AccountId, Amount, Currency, TransferId};
use std::sync::Arc;

fn id(s: &str) -> AccountId {
    AccountId::new(s).unwrap()
}

fn setup() -> (Arc<MemoryBackend>, Store, Keys) {
    let mem = Arc::new(MemoryBackend::new());
    (mem.clone(), Store::new(mem), Keys::default())
}

fn run(
    store: &Store,
    keys: &Keys,
    act: &Activation,
    inputs: Vec<Input>,
) -> (Activation, Vec<Effect>) {
    commit_batch(store, keys, "n1", act, &inputs, 1_000).expect("batch commits")
}

fn open_funded(store: &Store, keys: &Keys, name: &str, amount: u64) -> Activation {
    let act = activate(store, keys, "n1", &id(name), SagaTiming::default(), 1).unwrap();
    let (act, _) = run(
        store,
        keys,
        &act,
        vec![Input::Command(
            1,
            Command::Open {
                shards: None,
                currency: Currency::new("EUR").unwrap(),
            },
        )],
    );
    let (act, _) = run(
        store,
        keys,
        &act,
        vec![Input::Command(
            2,
            Command::Deposit {
                amount: Amount::new(amount).unwrap(),
                reference: None,
                idem_key: None,
            },
        )],
    );
    act
}

/// Reloads the account from storage, asserts memory equals it, and returns the reloaded
/// activation (which took the lease, so the caller must go on with it).
fn assert_memory_matches_storage(store: &Store, keys: &Keys, act: &Activation) -> Activation {
    let fresh = activate(store, keys, "n1", act.core.id(), SagaTiming::default(), 2).unwrap();
    assert_eq!(
        fresh.core.record(),
        act.core.record(),
        "memory and storage diverged"
    );
    let page = read_entries(store, keys, act.core.id(), 0, 1000)
        .unwrap()
        .unwrap();
    let seqs: Vec<u64> = page.entries.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=act.core.record().unwrap().seq).collect::<Vec<_>>(),
        "journal has a gap or an overwrite"
    );
    fresh
}

#[test]
fn exec_deposit_committed_but_reported_unknown_applies_once() {
    // Proves a deposit whose commit happened but was reported unknown is not re-decided from
    // the idempotency record it wrote (which would leave memory behind storage).
    let (mem, store, keys) = setup();
    let act = open_funded(&store, &keys, "a", 100);
    mem.inject(Fault::CommitUnknownCommitted);
    let dep = Input::Command(
        3,
        Command::Deposit {
            amount: Amount::new(5).unwrap(),
            reference: None,
            idem_key: Some("k".into()),
        },
    );
    let (act, effects) = run(&store, &keys, &act, vec![dep]);
    assert_eq!(act.core.record().unwrap().balance, 105);
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Reply(3, Ok(Reply::Movement(m))) if m.balance == 105)));
    let act = assert_memory_matches_storage(&store, &keys, &act);
    // The next command builds on the true state.
    let (act, _) = run(
        &store,
        &keys,
        &act,
        vec![Input::Command(
            4,
            Command::Deposit {
                amount: Amount::new(1).unwrap(),
                reference: None,
                idem_key: None,
            },
        )],
    );
    assert_eq!(act.core.record().unwrap().balance, 106);
    let _ = assert_memory_matches_storage(&store, &keys, &act);
}

#[test]
fn exec_credit_committed_but_reported_unknown_applies_once() {
    // Proves a receiver's credit is applied exactly once across an unknown commit result.
    let (mem, store, keys) = setup();
    let b = open_funded(&store, &keys, "b", 1);
    mem.inject(Fault::CommitUnknownCommitted);
    let credit = Input::Saga(SagaMsg::Credit {
        transfer_id: TransferId::new("t1").unwrap(),
        from: id("a"),
        to: id("b"),
        amount: Amount::new(30).unwrap(),
        currency: Currency::new("EUR").unwrap(),
        reference: None,
        created_at: 0,
    });
    let (b, _) = run(&store, &keys, &b, vec![credit.clone()]);
    assert_eq!(b.core.record().unwrap().balance, 31);
    let b = assert_memory_matches_storage(&store, &keys, &b);
    // A duplicate Credit later replays the outcome and changes nothing.
    let (b, _) = run(&store, &keys, &b, vec![credit]);
    assert_eq!(b.core.record().unwrap().balance, 31);
    let _ = assert_memory_matches_storage(&store, &keys, &b);
}

#[test]
fn exec_unknown_result_without_commit_applies_on_retry() {
    // Proves a commit reported unknown that did not happen is applied by the retry, once.
    let (mem, store, keys) = setup();
    let act = open_funded(&store, &keys, "a", 100);
    mem.inject(Fault::CommitUnknownNotCommitted);
    mem.inject(Fault::Conflict);
    let w = Input::Command(
        3,
        Command::Withdraw {
            amount: Amount::new(40).unwrap(),
            reference: None,
            idem_key: Some("w".into()),
        },
    );
    let (act, _) = run(&store, &keys, &act, vec![w]);
    assert_eq!(act.core.record().unwrap().balance, 60);
    let _ = assert_memory_matches_storage(&store, &keys, &act);
}

#[test]
fn exec_open_committed_but_reported_unknown_keeps_the_new_lease() {
    // Proves opening an account (which takes the first lease) survives an unknown result.
    let (mem, store, keys) = setup();
    let act = activate(&store, &keys, "n1", &id("c"), SagaTiming::default(), 3).unwrap();
    mem.inject(Fault::CommitUnknownCommitted);
    let (act, _) = run(
        &store,
        &keys,
        &act,
        vec![Input::Command(
            1,
            Command::Open {
                shards: None,
                currency: Currency::new("EUR").unwrap(),
            },
        )],
    );
    assert_eq!(act.epoch(), 1);
    let (act, _) = run(
        &store,
        &keys,
        &act,
        vec![Input::Command(
            2,
            Command::Deposit {
                amount: Amount::new(9).unwrap(),
                reference: None,
                idem_key: None,
            },
        )],
    );
    let _ = assert_memory_matches_storage(&store, &keys, &act);
}

#[test]
fn exec_stale_activation_is_fenced() {
    // Proves invariant 5: once a newer activation took the lease, the old one cannot commit.
    let (_, store, keys) = setup();
    let old = open_funded(&store, &keys, "a", 10);
    let new = activate(&store, &keys, "n2", &id("a"), SagaTiming::default(), 4).unwrap();
    assert!(new.epoch() > old.epoch());
    let dep = || {
        vec![Input::Command(
            9,
            Command::Deposit {
                amount: Amount::new(1).unwrap(),
                reference: None,
                idem_key: None,
            },
        )]
    };
    assert_eq!(
        commit_batch(&store, &keys, "n1", &old, &dep(), 1).unwrap_err(),
        StorageError::Fenced
    );
    let (new, _) = commit_batch(&store, &keys, "n2", &new, &dep(), 1).unwrap();
    assert_eq!(new.core.record().unwrap().balance, 11);
}

#[test]
fn exec_racing_opens_never_share_a_lease() {
    // Proves two activations of a not-yet-opened account cannot both commit: the loser of the
    // race is fenced even when its retry finds a record equal to the one it meant to write.
    let (mem, store, keys) = setup();
    let eur = Currency::new("EUR").unwrap();
    let p1 = activate(&store, &keys, "n1", &id("r"), SagaTiming::default(), 11).unwrap();
    let p2 = activate(&store, &keys, "n2", &id("r"), SagaTiming::default(), 22).unwrap();
    let open = || {
        vec![Input::Command(
            1,
            Command::Open {
                shards: None,
                currency: eur,
            },
        )]
    };
    let (p2, _) = run(&store, &keys, &p2, open());
    // P1's first attempt is reported unknown without committing; its retry then sees P2's
    // lease and record (same currency, same time) and must not take them for its own.
    mem.inject(Fault::CommitUnknownNotCommitted);
    assert_eq!(
        commit_batch(&store, &keys, "n1", &p1, &open(), 1_000).unwrap_err(),
        StorageError::Fenced
    );
    let (p2, _) = run(
        &store,
        &keys,
        &p2,
        vec![Input::Command(
            2,
            Command::Deposit {
                amount: Amount::new(7).unwrap(),
                reference: None,
                idem_key: None,
            },
        )],
    );
    let _ = assert_memory_matches_storage(&store, &keys, &p2);
}

#[test]
fn exec_stale_activation_cannot_drop_an_outcome_it_does_not_know() {
    // Proves a stale activation does not silently drop a saga message from memory: an
    // `Outcome` for a saga only the newer activation knows is fenced (so the shell steps aside
    // and the message reaches the saga), and the stored lease tells the pending sweep's
    // resumption (the driver reads it) that the old activation must step aside.
    let (_mem, store, keys) = setup();
    let old = open_funded(&store, &keys, "a", 100);
    let newer = activate(&store, &keys, "n2", &id("a"), SagaTiming::default(), 2).unwrap();
    let t = TransferId::new("t-1").unwrap();
    let (newer, _) = commit_batch(
        &store,
        &keys,
        "n2",
        &newer,
        &[transfer(1, &t, "b", 30)],
        2_000,
    )
    .unwrap();
    assert!(newer.core.open_sagas().contains_key(&t));
    let outcome = Input::Saga(SagaMsg::Outcome {
        transfer_id: t.clone(),
        from: id("a"),
        outcome: protocol::saga::CreditOutcome::Applied,
    });
    let r = commit_batch(&store, &keys, "n1", &old, &[outcome], 3_000);
    assert_eq!(r.err(), Some(StorageError::Fenced));
    let stored = node::ledger::exec::read_lease(&store, &keys, &id("a")).unwrap();
    assert_ne!(stored, old.lease, "the old activation lost the lease");
    assert_eq!(stored, newer.lease, "the newer one holds it");
}

/// A deposit of `amount` as a one-input batch.
fn deposit(req: u64, amount: u64) -> Vec<Input> {
    vec![Input::Command(
        req,
        Command::Deposit {
            amount: Amount::new(amount).unwrap(),
            reference: None,
            idem_key: None,
        },
    )]
}

/// A transfer of `amount` to `to` as one input.
fn transfer(req: u64, t: &TransferId, to: &str, amount: u64) -> Input {
    Input::Command(
        req,
        Command::Transfer {
            transfer_id: t.clone(),
            to: id(to),
            amount: Amount::new(amount).unwrap(),
            reference: None,
            idem_key: None,
        },
    )
}

#[test]
fn exec_group_commits_every_batch_but_the_fenced_one() {
    // Proves a group runs each account's batch in one transaction: the batches that may commit
    // do, with memory equal to storage, while a fenced one gets `Fenced` and writes nothing.
    let (_, store, keys) = setup();
    let a = open_funded(&store, &keys, "a", 10);
    let b = open_funded(&store, &keys, "b", 20);
    let c = open_funded(&store, &keys, "c", 30);
    let _newer = activate(&store, &keys, "n2", &id("c"), SagaTiming::default(), 9).unwrap();
    let (da, db, dc) = (deposit(7, 1), deposit(8, 2), deposit(9, 3));
    let batches: Vec<GroupBatch<'_>> = vec![(&a, &da), (&b, &db), (&c, &dc)];
    let mut results = commit_group(&store, &keys, "n1", &batches, 1_000).into_iter();
    let (a, _) = results.next().unwrap().expect("a commits");
    let (b, _) = results.next().unwrap().expect("b commits");
    assert_eq!(results.next().unwrap().unwrap_err(), StorageError::Fenced);
    assert_eq!(
        (
            a.core.record().unwrap().balance,
            b.core.record().unwrap().balance
        ),
        (11, 22)
    );
    assert_memory_matches_storage(&store, &keys, &a);
    assert_memory_matches_storage(&store, &keys, &b);
    let page = read_entries(&store, &keys, &id("c"), 0, 10)
        .unwrap()
        .unwrap();
    assert_eq!(
        page.entries.len(),
        1,
        "the fenced batch wrote nothing (only its funding entry)"
    );
}

#[test]
fn exec_group_retried_after_an_unknown_commit_applies_each_batch_once() {
    // Proves a group whose commit was reported unknown (it landed), then conflicted, is retried
    // as a whole and each batch recognizes its own landed attempt: nothing is applied twice.
    let (mem, store, keys) = setup();
    let a = open_funded(&store, &keys, "a", 10);
    let b = open_funded(&store, &keys, "b", 20);
    let (da, db) = (deposit(7, 1), deposit(8, 2));
    let batches: Vec<GroupBatch<'_>> = vec![(&a, &da), (&b, &db)];
    mem.inject(Fault::CommitUnknownCommitted);
    mem.inject(Fault::Conflict);
    let results = commit_group(&store, &keys, "n1", &batches, 1_000);
    let acts: Vec<Activation> = results.into_iter().map(|r| r.unwrap().0).collect();
    assert_eq!(
        (
            acts[0].core.record().unwrap().balance,
            acts[1].core.record().unwrap().balance
        ),
        (11, 22)
    );
    for act in &acts {
        assert_memory_matches_storage(&store, &keys, act);
    }
}

/// A memory backend that runs a hook just before its second read-write attempt: what another
/// node does between two attempts of one transaction.
struct Between {
    mem: Arc<MemoryBackend>,
    attempts: std::sync::atomic::AtomicU32,
    hook: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl node::storage::Backend for Between {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn attempt(&self, body: &mut node::storage::Body<'_>) -> Result<(), StorageError> {
        if self
            .attempts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            == 1
        {
            if let Some(hook) = self.hook.lock().unwrap().take() {
                hook();
            }
        }
        self.mem.attempt(body)
    }

    fn attempt_read(&self, body: &mut node::storage::Body<'_>) -> Result<(), StorageError> {
        self.mem.attempt_read(body)
    }
}

/// Accounts a (10) and b (20), and the results of a group depositing 1 into a and 2 into b
/// whose first attempt meets `fault` and before whose second attempt another node activates
/// a (its lease moves).
fn group_with_a_moved_between_attempts(fault: Fault) -> (Store, Keys, Vec<Committed>) {
    group_with_a_moved_between_attempts_running(fault, deposit(7, 1))
}

/// The same, with `a_inputs` as a's batch.
fn group_with_a_moved_between_attempts_running(
    fault: Fault,
    a_inputs: Vec<Input>,
) -> (Store, Keys, Vec<Committed>) {
    let (mem, store, keys) = setup();
    let a = open_funded(&store, &keys, "a", 10);
    let b = open_funded(&store, &keys, "b", 20);
    let meddled = Arc::new(Between {
        mem: mem.clone(),
        attempts: std::sync::atomic::AtomicU32::new(0),
        hook: std::sync::Mutex::new(None),
    });
    let (mem2, keys2) = (mem.clone(), keys.clone());
    *meddled.hook.lock().unwrap() = Some(Box::new(move || {
        let other = Store::new(mem2);
        activate(&other, &keys2, "n2", &id("a"), SagaTiming::default(), 9).unwrap();
    }));
    let (da, db) = (a_inputs, deposit(8, 2));
    let batches: Vec<GroupBatch<'_>> = vec![(&a, &da), (&b, &db)];
    mem.inject(fault);
    let results = commit_group(&Store::new(meddled), &keys, "n1", &batches, 1_000);
    (store, keys, results)
}

#[test]
fn exec_group_batch_fenced_after_an_unknown_attempt_is_unknown_not_fenced() {
    // Proves a batch whose group attempt landed but was reported unknown, and whose lease
    // then moved before the retry, is reported "outcome unknown" (it may have run), never
    // `Fenced` (which tells the driver nothing ran, so its commands would run again on the
    // new owner); the other batch recognizes its own landed attempt.
    let (store, keys, results) = group_with_a_moved_between_attempts(Fault::CommitUnknownCommitted);
    let mut results = results.into_iter();
    assert_eq!(
        results.next().unwrap().unwrap_err(),
        StorageError::CommitUnknown,
        "a's first attempt landed: its outcome is unknown"
    );
    let (b, _) = results
        .next()
        .unwrap()
        .expect("b's landed attempt is recognized");
    assert_eq!(b.core.record().unwrap().balance, 22);
    assert_memory_matches_storage(&store, &keys, &b);
    let page = read_entries(&store, &keys, &id("a"), 0, 10)
        .unwrap()
        .unwrap();
    assert_eq!(
        page.entries.len(),
        2,
        "a's deposit landed once, in the first attempt"
    );
}

#[test]
fn exec_group_batch_fenced_after_a_conflicted_attempt_is_fenced() {
    // Proves the rule above is exact: when the earlier attempt conflicted (nothing committed)
    // and the lease then moved, the batch is `Fenced` (nothing ran, its driver steps aside),
    // and the other batch commits once.
    let (store, keys, results) = group_with_a_moved_between_attempts(Fault::Conflict);
    let mut results = results.into_iter();
    assert_eq!(results.next().unwrap().unwrap_err(), StorageError::Fenced);
    let (b, _) = results.next().unwrap().expect("b commits on the retry");
    assert_eq!(b.core.record().unwrap().balance, 22);
    let page = read_entries(&store, &keys, &id("a"), 0, 10)
        .unwrap()
        .unwrap();
    assert_eq!(page.entries.len(), 1, "a's deposit never ran");
}

#[test]
fn exec_group_read_only_batch_fenced_after_an_unknown_attempt_is_fenced() {
    // Proves a batch that writes nothing (a read), fenced on the retry after an attempt whose
    // result was unknown, is `Fenced`, not "outcome unknown": none of its attempts wrote, so
    // nothing of it can have landed, and its driver steps aside instead of reloading (which
    // would take the lease back from the node that now holds it).
    let get = vec![Input::Command(7, Command::Get)];
    let (_, _, results) =
        group_with_a_moved_between_attempts_running(Fault::CommitUnknownCommitted, get);
    let mut results = results.into_iter();
    assert_eq!(results.next().unwrap().unwrap_err(), StorageError::Fenced);
    let (b, _) = results
        .next()
        .unwrap()
        .expect("b's landed attempt is recognized");
    assert_eq!(b.core.record().unwrap().balance, 22);
}

#[test]
fn exec_stale_activation_learns_it_was_fenced_at_its_next_timer() {
    // Proves a saga timer of an activation whose lease moved is `Fenced` (its driver steps
    // aside) although the timer writes nothing: a stale activation does not go on resending
    // its sagas' messages for as long as it lives, beside the one that owns the account now.
    let (_, store, keys) = setup();
    let a = open_funded(&store, &keys, "a", 100);
    let t = TransferId::new("t_1").unwrap();
    let (a, _) = run(&store, &keys, &a, vec![transfer(3, &t, "b", 30)]);
    // While the lease is its own, the timer resends the credit.
    let (a, effects) = run(&store, &keys, &a, vec![Input::Timer(t.clone())]);
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Send(SagaMsg::Credit { .. }))));
    activate(&store, &keys, "n2", &id("a"), SagaTiming::default(), 9).unwrap();
    assert_eq!(
        commit_batch(&store, &keys, "n1", &a, &[Input::Timer(t)], 2_000).unwrap_err(),
        StorageError::Fenced
    );
}
