//! A group commit asks the store for every key its bodies read in one `get_many`, so on
//! FoundationDB a group costs one read round trip, not one per key.

use super::account::{Command, Effect, Input};
use super::exec;
use super::test_support::{acct, opened, CountingTxn};
use crate::storage::keys::Keys;
use crate::storage::memory::MemoryBackend;
use crate::storage::{Backend, Body, StorageError, Store};
use protocol::saga::{CreditOutcome, SagaMsg};
use protocol::{Amount, Currency, TransferId};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A memory store that counts the single reads and the batched reads of read-write attempts.
#[derive(Default)]
struct Counting {
    mem: MemoryBackend,
    gets: AtomicUsize,
    many: AtomicUsize,
}

impl Backend for Counting {
    fn name(&self) -> &'static str {
        "counting"
    }
    fn attempt(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
        self.mem.attempt(&mut |txn| {
            body(&mut CountingTxn {
                inner: txn,
                gets: &self.gets,
                many: &self.many,
            })
        })
    }
    fn attempt_read(&self, body: &mut Body<'_>) -> Result<(), StorageError> {
        self.mem.attempt_read(body)
    }
}

#[test]
fn group_reads_every_key_of_a_group_in_one_batched_read() {
    // Proves a group of a transfer (with an idempotency key) on one account and a credit on
    // another reads every key its bodies need (leases, idempotency record, the credit's saga
    // record where it is now and where releases before 0.2 kept it) in one `get_many`, and
    // makes no single read.
    let backend = Arc::new(Counting::default());
    let (store, keys) = (Store::new(backend.clone()), Keys::default());
    let a = opened(&store, &keys, "a", 100);
    let c = opened(&store, &keys, "c", 0);
    let transfer = [Input::Command(
        3,
        Command::Transfer {
            transfer_id: TransferId::new("t_2").unwrap(),
            to: acct("b"),
            amount: Amount::new(30).unwrap(),
            reference: None,
            idem_key: Some("pay-2".into()),
        },
    )];
    let credit = [Input::Saga(SagaMsg::Credit {
        transfer_id: TransferId::new("t_1").unwrap(),
        from: acct("x"),
        to: acct("c"),
        amount: Amount::new(5).unwrap(),
        currency: Currency::new("EUR").unwrap(),
        reference: None,
        created_at: 0,
    })];
    backend.gets.store(0, Ordering::SeqCst);
    backend.many.store(0, Ordering::SeqCst);
    let results = exec::commit_group(
        &store,
        &keys,
        "n1",
        &[(&a, &transfer[..]), (&c, &credit[..])],
        2,
    );
    let (a2, _) = results[0].as_ref().unwrap();
    assert_eq!(a2.core.record().unwrap().held, 30);
    let (c2, effects) = results[1].as_ref().unwrap();
    assert_eq!(c2.core.record().unwrap().balance, 5);
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Send(SagaMsg::Outcome {
            outcome: CreditOutcome::Applied,
            ..
        })
    )));
    assert_eq!(
        (
            backend.many.load(Ordering::SeqCst),
            backend.gets.load(Ordering::SeqCst)
        ),
        (1, 0),
        "one batched read, no single read"
    );
}
