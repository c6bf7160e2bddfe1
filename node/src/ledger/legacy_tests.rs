//! A ledger written with the key layout of releases before 0.2 keeps working: transfer records
//! under each account, a copy of every summary at `("xfer", id)`, idempotency records that
//! hold a transfer's view. The old layout is made from a ledger the current code wrote, by
//! moving its records where the old code kept them, in the JSON the old code wrote, with a
//! transfer caught mid-saga.

use super::account::{Command, Effect, Input, Reply};
use super::exec::{self, Activation};
use super::records::{IdemRecord, SagaRecord, StoredReply};
use super::test_support::{acct, load, opened};
use crate::storage::codec::{decode, encode_json};
use crate::storage::keys::Keys;
use crate::storage::memory::MemoryBackend;
use crate::storage::Store;
use protocol::api::{TransferStatus, TransferView};
use protocol::saga::{CreditOutcome, SagaMsg};
use protocol::{Amount, Currency, TransferId};
use std::sync::Arc;

/// Commits `inputs` on `act` and returns the activation after them and their effects.
fn run(
    store: &Store,
    keys: &Keys,
    act: &Activation,
    inputs: Vec<Input>,
) -> (Activation, Vec<Effect>) {
    exec::commit_batch(store, keys, "n1", act, &inputs, 5_000).unwrap()
}

fn transfer_cmd(key: &str) -> Input {
    Input::Command(
        3,
        Command::Transfer {
            transfer_id: TransferId::new("t_1").unwrap(),
            to: acct("b"),
            amount: Amount::new(30).unwrap(),
            reference: None,
            idem_key: Some(key.to_owned()),
        },
    )
}

fn credit() -> Input {
    Input::Saga(SagaMsg::Credit {
        transfer_id: TransferId::new("t_1").unwrap(),
        from: acct("a"),
        to: acct("b"),
        amount: Amount::new(30).unwrap(),
        currency: Currency::new("EUR").unwrap(),
        reference: None,
    })
}

fn replied_view(effects: &[Effect]) -> TransferView {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Reply(_, Ok(Reply::Transfer(v))) => Some(v.clone()),
            _ => None,
        })
        .expect("a transfer reply")
}

/// Moves a ledger's transfer records to the layout of releases before 0.2.
fn to_old_layout(store: &Store, keys: &Keys, transfer: &str, sides: &[&str]) {
    store
        .run(|txn| {
            for side in sides {
                let bytes = txn
                    .get(&keys.saga(side, transfer))?
                    .expect("a side's record");
                txn.clear(&keys.saga(side, transfer))?;
                let rec: SagaRecord = decode(&bytes)?;
                txn.set(&keys.legacy_saga(side, transfer), &encode_json(&rec))?;
                if let Some(view) = rec.view(&acct(side)) {
                    txn.set(&keys.legacy_transfer(transfer), &encode_json(&view))?;
                    let idem = keys.idem(side, "pay-1");
                    let mut old: IdemRecord = decode(&txn.get(&idem)?.expect("idem record"))?;
                    old.reply = StoredReply::Transfer(view);
                    txn.set(&idem, &encode_json(&old))?;
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn legacy_layout_a_transfer_caught_mid_saga_settles_and_replays_its_current_view() {
    // Proves an open saga whose records sit where releases before 0.2 put them is found by
    // activation, the receiver answers a repeated credit with its old decision (no second
    // credit), the sender settles it, and the old idempotency record and summary lookups
    // answer the transfer's current status.
    let (store, keys) = (Store::new(Arc::new(MemoryBackend::new())), Keys::default());
    for (name, funds) in [("a", 100), ("b", 0)] {
        opened(&store, &keys, name, funds);
    }
    let a = load(&store, &keys, "a", 2);
    let (_, accepted) = run(&store, &keys, &a, vec![transfer_cmd("pay-1")]);
    assert_eq!(replied_view(&accepted).status, TransferStatus::Pending);
    let b = load(&store, &keys, "b", 2);
    let (_, credited) = run(&store, &keys, &b, vec![credit()]);
    assert!(credited.iter().any(|e| matches!(
        e,
        Effect::Send(SagaMsg::Outcome {
            outcome: CreditOutcome::Applied,
            ..
        })
    )));
    to_old_layout(&store, &keys, "t_1", &["a", "b"]);

    // The receiver, reloaded, finds its old decision: the repeated credit changes nothing.
    let b = load(&store, &keys, "b", 3);
    let (b2, again) = run(&store, &keys, &b, vec![credit()]);
    assert!(again.iter().any(|e| matches!(
        e,
        Effect::Send(SagaMsg::Outcome {
            outcome: CreditOutcome::Applied,
            ..
        })
    )));
    assert_eq!(b2.core.record().unwrap().balance, 30);

    // The sender, reloaded, still holds the saga and settles it on the outcome.
    let a = load(&store, &keys, "a", 3);
    assert_eq!(a.core.record().unwrap().held, 30);
    let tid = TransferId::new("t_1").unwrap();
    let pending = exec::read_pending(&store, &keys, None, 10).unwrap().0;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].0.status, TransferStatus::Pending);
    let outcome = Input::Saga(SagaMsg::Outcome {
        transfer_id: tid.clone(),
        from: acct("a"),
        outcome: CreditOutcome::Applied,
    });
    let (a2, _) = run(&store, &keys, &a, vec![outcome]);
    let r = a2.core.record().unwrap();
    assert_eq!((r.balance, r.held), (70, 0));

    // Summary, idempotent replay and pending index all say completed.
    let view = exec::read_transfer(&store, &keys, &tid).unwrap().unwrap();
    assert_eq!((view.status, view.amount), (TransferStatus::Completed, 30));
    let (_, replay) = run(&store, &keys, &a2, vec![transfer_cmd("pay-1")]);
    assert_eq!(replied_view(&replay), view);
    assert!(exec::read_pending(&store, &keys, None, 10)
        .unwrap()
        .0
        .is_empty());
}

#[test]
fn legacy_layout_summaries_of_new_transfers_are_their_sender_records() {
    // Proves the current layout stores a transfer's view once: the summary read back is the
    // sender record's, no copy is written at the old summary key, and the idempotency record
    // names the transfer rather than holding its view.
    let (store, keys) = (Store::new(Arc::new(MemoryBackend::new())), Keys::default());
    let act = opened(&store, &keys, "a", 100);
    let (_, accepted) = run(&store, &keys, &act, vec![transfer_cmd("pay-1")]);
    let tid = TransferId::new("t_1").unwrap();
    let view = exec::read_transfer(&store, &keys, &tid).unwrap().unwrap();
    assert_eq!(view, replied_view(&accepted));
    store
        .read(|txn| {
            assert!(txn.get(&keys.legacy_transfer("t_1"))?.is_none());
            assert!(txn.get(&keys.saga("a", "t_1"))?.is_some());
            let idem: IdemRecord = decode(&txn.get(&keys.idem("a", "pay-1"))?.unwrap())?;
            assert_eq!(idem.reply, StoredReply::TransferId(tid.clone()));
            Ok(())
        })
        .unwrap();
}
