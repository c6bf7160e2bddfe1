//! A ledger written by releases before 0.2 keeps working: transfer records
//! under each account, a copy of every summary at `("xfer", id)`, idempotency records that
//! hold a transfer's view. The old layout is made from a ledger the current code wrote, by
//! moving its records where the old code kept them, in the JSON the old code wrote, with a
//! transfer caught mid-saga.

use super::account::{Command, Effect, Input, Reply};
use super::exec::{self, Activation};
use super::records::{AccountRecord, IdemRecord, Lease, SagaRecord, StoredReply};
use super::test_support::{acct, load, opened};
use crate::storage::codec::{decode, encode_json, VALUE_VERSION_JSON};
use crate::storage::keys::Keys;
use crate::storage::memory::MemoryBackend;
use crate::storage::{Store, RANGE_LIMIT_MAX};
use protocol::api::{Entry, TransferStatus, TransferView};
use protocol::saga::{CreditOutcome, SagaMsg};
use protocol::{AccountId, Amount, Currency, TransferId};
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
        created_at: 0,
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

/// Rewrites a whole (small) ledger as releases before 0.2 wrote it: every value in JSON,
/// each side's transfer record under its account, a copy of each summary at `("xfer", id)`,
/// sender records carrying their request's idempotency key and fingerprint, and idempotency
/// records holding the transfer's view.
fn to_old_layout(store: &Store, keys: &Keys) {
    use foundationdb_tuple::Element;
    store
        .run(|txn| {
            let rows = txn.get_range(&[], &[0xff], RANGE_LIMIT_MAX)?;
            // Idempotency keys by transfer, to put them in the 0.1 sender records.
            let mut idem_of = std::collections::BTreeMap::new();
            // Each transfer's current view, from its sender record.
            let mut views = std::collections::BTreeMap::new();
            for (k, v) in &rows {
                let Ok(Element::Tuple(e)) = foundationdb_tuple::unpack::<Element>(k) else {
                    continue;
                };
                let s = |i: usize| match e.get(i) {
                    Some(Element::String(s)) => s.to_string(),
                    _ => String::new(),
                };
                if (s(0).as_str(), s(2).as_str()) == ("acct", "idem") {
                    let rec: IdemRecord = decode(v)?;
                    if let StoredReply::TransferId(t) = &rec.reply {
                        idem_of.insert(t.as_str().to_owned(), (s(3), rec.fingerprint.clone()));
                    }
                }
                if s(0) == "saga" {
                    if let Some(view) = decode::<SagaRecord>(v)?.view(&acct(&s(2))) {
                        views.insert(s(1), view);
                    }
                }
            }
            for (k, v) in rows {
                let Ok(Element::Tuple(e)) = foundationdb_tuple::unpack::<Element>(&k) else {
                    continue;
                };
                let s = |i: usize| match e.get(i) {
                    Some(Element::String(s)) => s.to_string(),
                    _ => String::new(),
                };
                match (s(0).as_str(), e.len(), s(2).as_str()) {
                    ("saga", 3, account) => {
                        let tid = s(1);
                        let mut rec: SagaRecord = decode(&v)?;
                        if let Some(view) = rec.view(&acct(account)) {
                            txn.set(&keys.legacy_transfer(&tid), &encode_json(&view))?;
                        }
                        if let SagaRecord::Sender {
                            idem_key,
                            fingerprint,
                            ..
                        } = &mut rec
                        {
                            if let Some((key, print)) = idem_of.get(&tid) {
                                (*idem_key, *fingerprint) =
                                    (Some(key.clone()), Some(print.clone()));
                            }
                        }
                        txn.clear(&k)?;
                        txn.set(&keys.legacy_saga(account, &tid), &encode_json(&rec))?;
                    }
                    ("acct", 3, "state") => {
                        txn.set(&k, &encode_json(&decode::<AccountRecord>(&v)?))?
                    }
                    ("acct", 3, "lease") => txn.set(&k, &encode_json(&decode::<Lease>(&v)?))?,
                    ("acct", 4, "jrnl") => txn.set(&k, &encode_json(&decode::<Entry>(&v)?))?,
                    ("acct", 4, "idem") => {
                        let mut rec: IdemRecord = decode(&v)?;
                        if let StoredReply::TransferId(t) = &rec.reply {
                            let view = views.get(t.as_str()).expect("a transfer's view");
                            rec.reply = StoredReply::Transfer(view.clone());
                        }
                        txn.set(&k, &encode_json(&rec))?;
                    }
                    ("pending", 2, _) => txn.set(&k, &encode_json(&decode::<AccountId>(&v)?))?,
                    // 0.1 kept no transfer lists.
                    ("acct", 5, "xfers") => txn.clear(&k)?,
                    _ => {}
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
    to_old_layout(&store, &keys);
    let rows = store
        .read(|txn| txn.get_range(&[], &[0xff], RANGE_LIMIT_MAX))
        .unwrap();
    assert!(
        rows.iter()
            .all(|(_, v)| v.is_empty() || v[0] == VALUE_VERSION_JSON),
        "every record is in the JSON of 0.1"
    );
    let (saga_begin, saga_end) = keys.saga_range("t_1");
    assert!(!rows.iter().any(|(k, _)| saga_begin <= *k && *k < saga_end));

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
