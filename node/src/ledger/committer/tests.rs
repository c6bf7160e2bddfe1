//! Unit tests of the committer: batches in, groups and routed results asserted; the last
//! tests run real drivers through it against an in-memory store.

use super::*;
use crate::ledger::account::{Command, Input, SagaTiming};
use crate::ledger::driver::{Driver, Out, Work};
use crate::ledger::exec::{self, Activation};
use crate::storage::keys::Keys;
use crate::storage::memory::MemoryBackend;
use crate::storage::{StorageError, Store};
use protocol::{Amount, Currency};
use std::sync::Arc;

fn acct(s: &str) -> AccountId {
    AccountId::new(s).unwrap()
}

fn deposit(req: u64) -> Input {
    Input::Command(
        req,
        Command::Deposit {
            amount: Amount::new(1).unwrap(),
            reference: None,
            idem_key: None,
        },
    )
}

/// An activation of `name` (never opened) on a fresh store.
fn activation(name: &str) -> Activation {
    activation_with_nonce(name, 1)
}

/// An activation of `name` with this nonce.
fn activation_with_nonce(name: &str, nonce: u64) -> Activation {
    let store = Store::new(Arc::new(MemoryBackend::new()));
    exec::activate(
        &store,
        &Keys::default(),
        "n1",
        &acct(name),
        SagaTiming::default(),
        nonce,
    )
    .unwrap()
}

/// A batch of `n` inputs of `name`.
fn batch(name: &str, n: usize) -> Batch {
    Batch {
        act: activation(name),
        inputs: (0..n as u64).map(deposit).collect(),
    }
}

fn limits(batches: usize, inputs: usize, in_flight: usize) -> GroupLimits {
    GroupLimits {
        batches,
        inputs,
        age_ms: 5,
        in_flight,
        queue: 100,
    }
}

fn tickets<T: Copy>(g: &Group<T>) -> Vec<T> {
    g.members().map(|(t, _)| *t).collect()
}

/// Results for every batch of `g`: each gets its activation back and no effect.
fn ok_results(g: &Group<u32>) -> Vec<Committed> {
    g.members()
        .map(|(_, b)| Ok((b.act.clone(), Vec::new())))
        .collect()
}

#[test]
fn an_idle_committer_starts_a_group_of_one_at_once() {
    let mut c = Committer::new(GroupLimits::default());
    c.submit(1, batch("a", 3), 0).unwrap();
    let g = c.next_group(0).expect("no wait when idle");
    assert_eq!((tickets(&g), g.len(), g.inputs()), (vec![1], 1, 3));
    assert_eq!((c.in_flight(), c.queued()), (1, 0));
    assert!(c.next_group(100).is_none(), "nothing else waits");
}

#[test]
fn batches_that_arrive_during_a_commit_form_the_next_group_in_arrival_order() {
    let mut c = Committer::new(limits(10, 100, 1));
    c.submit(1, batch("a", 1), 0).unwrap();
    let first = c.next_group(0).unwrap();
    for (t, name) in [(2, "b"), (3, "c"), (4, "d")] {
        c.submit(t, batch(name, 2), 1).unwrap();
    }
    assert!(
        c.next_group(1_000).is_none(),
        "one group in flight at most, however old the waiting batches"
    );
    assert_eq!(c.wake_at(), None, "no slot frees up by time alone");
    let r = ok_results(&first);
    let done = c.finished(first, r);
    assert_eq!(done.len(), 1);
    let second = c.next_group(2).unwrap();
    assert_eq!((tickets(&second), second.id), (vec![2, 3, 4], 2));
}

#[test]
fn a_group_stops_at_its_batch_and_input_caps_and_a_large_batch_goes_alone() {
    let mut c = Committer::new(limits(2, 5, 1));
    c.submit(0, batch("z", 1), 0).unwrap();
    let g0 = c.next_group(0).unwrap();
    c.submit(1, batch("a", 1), 0).unwrap();
    c.submit(2, batch("b", 1), 0).unwrap();
    c.submit(3, batch("c", 1), 0).unwrap();
    c.submit(4, batch("d", 4), 0).unwrap();
    c.submit(5, batch("e", 9), 0).unwrap();
    c.submit(6, batch("f", 1), 0).unwrap();
    let r = ok_results(&g0);
    c.finished(g0, r);
    let mut formed = Vec::new();
    while let Some(g) = c.next_group(0) {
        formed.push((tickets(&g), g.inputs()));
        let r = ok_results(&g);
        c.finished(g, r);
    }
    assert_eq!(
        formed,
        vec![
            (vec![1, 2], 2), // the batch cap
            (vec![3, 4], 5), // the input cap, reached exactly
            (vec![5], 9),    // larger than the cap: alone
            (vec![6], 1),
        ]
    );
}

#[test]
fn with_two_slots_the_second_group_waits_until_full_or_old() {
    let mut c = Committer::new(limits(3, 100, 2));
    c.submit(1, batch("a", 1), 10).unwrap();
    let _g1 = c.next_group(10).unwrap();
    c.submit(2, batch("b", 1), 11).unwrap();
    assert!(c.next_group(15).is_none(), "not full, and only 4 ms old");
    assert_eq!(c.wake_at(), Some(16));
    let g2 = c.next_group(16).expect("the age cap starts it");
    assert_eq!(tickets(&g2), vec![2]);
    assert_eq!(c.wake_at(), None);
    c.submit(3, batch("c", 1), 20).unwrap();
    assert!(c.next_group(1_000).is_none(), "both slots taken");
    assert_eq!(c.wake_at(), None);
    let r = ok_results(&g2);
    c.finished(g2, r);
    c.submit(4, batch("d", 1), 20).unwrap();
    c.submit(5, batch("e", 1), 20).unwrap();
    let g3 = c
        .next_group(20)
        .expect("full: no need to wait for the age cap");
    assert_eq!(tickets(&g3), vec![3, 4, 5]);
}

#[test]
fn a_full_queue_hands_the_batch_back() {
    let mut c = Committer::new(GroupLimits {
        queue: 2,
        ..limits(10, 100, 1)
    });
    c.submit(1, batch("a", 1), 0).unwrap();
    c.submit(2, batch("b", 1), 0).unwrap();
    let (t, b) = *c.submit(3, batch("c", 1), 0).unwrap_err();
    assert_eq!((t, b.act.core.id().as_str()), (3, "c"));
    let g = c.next_group(0).unwrap();
    assert_eq!(tickets(&g), vec![1, 2]);
    c.submit(3, batch("c", 1), 0)
        .expect("room again once a group took the waiting batches");
}

#[test]
fn results_go_back_to_their_tickets_in_order_and_free_the_accounts() {
    let mut c = Committer::new(limits(10, 100, 1));
    c.submit(7, batch("a", 1), 0).unwrap();
    c.submit(8, batch("b", 2), 0).unwrap();
    let g = c.next_group(0).unwrap();
    let results = vec![Ok((activation("a"), Vec::new())), Err(StorageError::Fenced)];
    let done = c.finished(g, results);
    let routed: Vec<(u32, &str, usize, bool)> = done
        .iter()
        .map(|(t, b, r)| (*t, b.act.core.id().as_str(), b.inputs.len(), r.is_ok()))
        .collect();
    assert_eq!(routed, vec![(7, "a", 1, true), (8, "b", 2, false)]);
    assert_eq!(c.in_flight(), 0);
    c.submit(9, batch("a", 1), 0)
        .expect("a's batch is done: its next one is welcome");
}

#[test]
#[should_panic(expected = "per-account order")]
fn a_second_batch_of_one_account_is_a_bug() {
    let mut c = Committer::new(GroupLimits::default());
    c.submit(1, batch("a", 1), 0).unwrap();
    let _g = c.next_group(0).unwrap();
    let _ = c.submit(2, batch("a", 1), 0);
}

#[test]
fn a_newer_activation_of_the_same_account_may_queue_beside_an_older_one() {
    // Proves the per-account check is per activation: an actor stopped while its batch waited
    // leaves that batch in the committer, and the account's next activation is not refused
    // (the lease fences the older batch when the group runs).
    let mut c = Committer::new(limits(10, 100, 1));
    c.submit(1, batch("a", 1), 0).unwrap();
    let newer = Batch {
        act: activation_with_nonce("a", 2),
        inputs: vec![deposit(9)],
    };
    c.submit(2, newer, 0).unwrap();
    let g = c.next_group(0).unwrap();
    assert_eq!(tickets(&g), vec![1, 2]);
}

#[test]
fn a_group_too_large_for_the_transaction_is_split_until_the_culprit_is_alone() {
    // Proves batches that failed together for the group's size (or its duration) are not
    // answered but queued again at the front, in order, to run in groups of half as many; a
    // batch that still fails with others beside it that commit is answered with its error.
    let mut c = Committer::new(limits(10, 100, 1));
    for (t, name) in [(1, "a"), (2, "b"), (3, "c"), (4, "d")] {
        c.submit(t, batch(name, 1), 0).unwrap();
    }
    let g = c.next_group(0).unwrap();
    assert_eq!(tickets(&g), vec![1, 2, 3, 4]);
    let too_large = || Err(StorageError::LimitExceeded("transaction too large".into()));
    let done = c.finished(g, vec![too_large(), too_large(), too_large(), too_large()]);
    assert!(done.is_empty(), "nobody is answered yet");
    assert_eq!(c.queued(), 4);
    c.submit(5, batch("e", 1), 1).unwrap();
    c.submit(6, batch("f", 1), 1).unwrap();
    let g = c.next_group(1).unwrap();
    assert_eq!(tickets(&g), vec![1, 2], "half as many");
    let ok_b = Ok((activation("b"), Vec::new()));
    let done = c.finished(g, vec![too_large(), ok_b]);
    let answered: Vec<(u32, bool)> = done.iter().map(|(t, _, r)| (*t, r.is_ok())).collect();
    assert_eq!(
        answered,
        vec![(1, false), (2, true)],
        "a fails alone, b commits"
    );
    let g = c.next_group(1).unwrap();
    assert_eq!(tickets(&g), vec![3, 4], "the other half, still capped");
    let done = c.finished(
        g,
        vec![Err(StorageError::TooOld), Err(StorageError::TooOld)],
    );
    assert!(done.is_empty());
    let g = c.next_group(1).unwrap();
    assert_eq!(tickets(&g), vec![3], "groups of one now");
    let r = ok_results(&g);
    assert_eq!(c.finished(g, r).len(), 1);
    let g = c.next_group(1).unwrap();
    assert_eq!(tickets(&g), vec![4]);
    let r = ok_results(&g);
    c.finished(g, r);
    let g = c.next_group(1).unwrap();
    assert_eq!(
        tickets(&g),
        vec![5, 6],
        "new batches are not held to the cap of split ones"
    );
}

#[test]
fn drain_hands_back_the_waiting_batches() {
    let mut c = Committer::new(limits(10, 100, 1));
    c.submit(1, batch("a", 1), 0).unwrap();
    let _g = c.next_group(0).unwrap();
    c.submit(2, batch("b", 1), 0).unwrap();
    c.submit(3, batch("c", 1), 0).unwrap();
    let back: Vec<u32> = c.drain().into_iter().map(|(t, _)| t).collect();
    assert_eq!((back, c.queued()), (vec![2, 3], 0));
    c.submit(4, batch("b", 1), 0).unwrap();
}

/// Runs a driver's announced load against `store`.
fn load(d: &mut Driver, store: &Store, nonce: u64) {
    assert!(matches!(d.take_out().as_slice(), [Out::Work(_)]));
    let Work::Load = d.take_work() else {
        panic!("a load first")
    };
    let r = exec::activate(
        store,
        &Keys::default(),
        "n1",
        d.id(),
        SagaTiming::default(),
        nonce,
    );
    d.loaded(r, 0);
}

#[test]
fn drivers_of_three_accounts_commit_in_one_transaction() {
    // Proves the committer between real drivers and the real group body: three accounts'
    // batches, submitted while a commit is in flight, take one storage commit together and
    // each driver gets its own result.
    let mem = Arc::new(MemoryBackend::new());
    let store = Store::new(mem.clone());
    let keys = Keys::default();
    let mut c: Committer<usize> = Committer::new(GroupLimits::default());
    let names = ["a", "b", "c"];
    let mut drivers: Vec<Driver> = names.iter().map(|n| Driver::new(acct(n))).collect();
    for (i, d) in drivers.iter_mut().enumerate() {
        load(d, &store, i as u64 + 1);
        d.command(Command::Open {
            shards: None,
            currency: Currency::new("EUR").unwrap(),
        });
        assert_eq!(d.take_out(), vec![Out::Flush]);
        d.flush();
        assert!(matches!(d.take_out().as_slice(), [Out::Work(_)]));
        let Work::Commit(b) = d.take_work() else {
            panic!("a commit")
        };
        c.submit(i, b, 0).unwrap();
    }
    let before = mem.version();
    let g = c.next_group(0).expect("idle: at once");
    assert_eq!(g.len(), 3, "all three waited for the same slot");
    let results = exec::commit_group(&store, &keys, "n1", &g.batches(), 0);
    assert_eq!(
        mem.version(),
        before + 1,
        "one storage commit for three batches"
    );
    for (i, batch, result) in c.finished(g, results) {
        drivers[i].committed(batch, result, 0);
        let answered = drivers[i].take_out().into_iter().any(|o| {
            matches!(
                o,
                Out::Answer {
                    answer: crate::ledger::driver::Answer::Reply(Ok(_)),
                    ..
                }
            )
        });
        assert!(answered, "{}: its open is answered", names[i]);
        let (stored, _) = exec::read_accounts(&store, &keys, None, 10).unwrap();
        assert!(stored.iter().any(|v| v.id.as_str() == names[i]));
    }
}
