//! Unit tests of the account state machine: inputs in, writes and effects asserted.

use super::account::*;
use super::records::*;
use protocol::api::{AccountStatus, EntryKind, TransferStatus};
use protocol::saga::{CreditOutcome, SagaMsg};
use protocol::{AccountId, Amount, Currency, ErrorCode, TransferId};

fn id(s: &str) -> AccountId {
    AccountId::new(s).unwrap()
}

fn tid(s: &str) -> TransferId {
    TransferId::new(s).unwrap()
}

fn eur() -> Currency {
    Currency::new("EUR").unwrap()
}

fn amt(v: u64) -> Amount {
    Amount::new(v).unwrap()
}

/// An opened account with `balance`.
fn funded(name: &str, balance: u64) -> AccountCore {
    let mut c = AccountCore::new(id(name), None, Unsettled::default(), SagaTiming::default());
    c.step(
        Input::Command(
            1,
            Command::Open {
                shards: None,
                currency: eur(),
            },
        ),
        Reads::default(),
        10,
    );
    if balance > 0 {
        c.step(
            Input::Command(
                2,
                Command::Deposit {
                    amount: amt(balance),
                    reference: None,
                    idem_key: None,
                },
            ),
            Reads::default(),
            11,
        );
    }
    c
}

fn reply(step: &Step) -> &Result<Reply, protocol::ApiError> {
    step.effects
        .iter()
        .find_map(|e| match e {
            Effect::Reply(_, r) => Some(r),
            _ => None,
        })
        .expect("a command is answered")
}

fn err_code(step: &Step) -> ErrorCode {
    reply(step).as_ref().unwrap_err().code
}

fn transfer(to: &str, amount: u64, t: &str, key: Option<&str>) -> Input {
    Input::Command(
        7,
        Command::Transfer {
            transfer_id: tid(t),
            to: id(to),
            amount: amt(amount),
            reference: None,
            idem_key: key.map(str::to_owned),
        },
    )
}

#[test]
fn open_creates_once_and_refuses_other_currency() {
    // Proves open is idempotent for the same currency and account_exists for another.
    let mut c = AccountCore::new(id("a"), None, Unsettled::default(), SagaTiming::default());
    let s = c.step(
        Input::Command(
            1,
            Command::Open {
                shards: None,
                currency: eur(),
            },
        ),
        Reads::default(),
        5,
    );
    assert_eq!(s.writes, vec![Write::Created]);
    assert!(matches!(
        reply(&s),
        Ok(Reply::Account { created: true, .. })
    ));
    let s = c.step(
        Input::Command(
            2,
            Command::Open {
                shards: None,
                currency: eur(),
            },
        ),
        Reads::default(),
        6,
    );
    assert!(s.writes.is_empty());
    assert!(matches!(
        reply(&s),
        Ok(Reply::Account { created: false, .. })
    ));
    let s = c.step(
        Input::Command(
            3,
            Command::Open {
                shards: None,
                currency: Currency::new("USD").unwrap(),
            },
        ),
        Reads::default(),
        7,
    );
    assert_eq!(err_code(&s), ErrorCode::AccountExists);
}

#[test]
fn deposit_journals_publishes_and_records_idempotency() {
    // Proves a deposit writes one entry, one idempotency record and publishes the entry.
    let mut c = funded("a", 0);
    let s = c.step(
        Input::Command(
            9,
            Command::Deposit {
                amount: amt(500),
                reference: Some("r".into()),
                idem_key: Some("k1".into()),
            },
        ),
        Reads::default(),
        20,
    );
    let Write::Journal(e) = &s.writes[0] else {
        panic!("journal first: {:?}", s.writes)
    };
    assert_eq!(
        (e.seq, e.kind, e.amount, e.balance, e.available),
        (1, EntryKind::Deposit, 500, 500, 500)
    );
    assert!(
        matches!(&s.writes[1], Write::Idem(k, rec) if k == "k1" && rec.fingerprint == "deposit|500|r")
    );
    assert!(s
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Publish(u) if u.entry.seq == 1)));
    assert_eq!(c.record().unwrap().balance, 500);
}

#[test]
fn deposit_replayed_from_idempotency_record_and_refused_with_other_body() {
    // Proves a repeated key returns the first result without writing, and a changed body is refused.
    let mut c = funded("a", 0);
    let s = c.step(
        Input::Command(
            1,
            Command::Deposit {
                amount: amt(5),
                reference: None,
                idem_key: Some("k".into()),
            },
        ),
        Reads::default(),
        1,
    );
    let Write::Idem(_, rec) = s.writes[1].clone() else {
        panic!()
    };
    let StoredReply::Movement(m) = rec.reply else {
        panic!("a deposit keeps its movement")
    };
    let rec = Replay {
        fingerprint: rec.fingerprint,
        reply: Reply::Movement(m),
    };
    let again = c.step(
        Input::Command(
            2,
            Command::Deposit {
                amount: amt(5),
                reference: None,
                idem_key: Some("k".into()),
            },
        ),
        Reads {
            idem: Some(rec.clone()),
            saga: None,
        },
        2,
    );
    assert!(again.writes.is_empty());
    assert_eq!(reply(&again), reply(&s));
    assert_eq!(c.record().unwrap().balance, 5);
    let other = c.step(
        Input::Command(
            3,
            Command::Deposit {
                amount: amt(6),
                reference: None,
                idem_key: Some("k".into()),
            },
        ),
        Reads {
            idem: Some(rec),
            saga: None,
        },
        3,
    );
    assert_eq!(err_code(&other), ErrorCode::IdempotencyKeyReused);
}

#[test]
fn withdrawal_refused_beyond_available_and_deposit_beyond_max() {
    // Proves no overdraft and no balance above 2^53-1.
    let mut c = funded("a", 100);
    let s = c.step(
        Input::Command(
            1,
            Command::Withdraw {
                amount: amt(101),
                reference: None,
                idem_key: None,
            },
        ),
        Reads::default(),
        1,
    );
    assert_eq!(err_code(&s), ErrorCode::InsufficientFunds);
    assert!(s.writes.is_empty());
    let s = c.step(
        Input::Command(
            1,
            Command::Deposit {
                amount: amt(protocol::AMOUNT_MAX),
                reference: None,
                idem_key: None,
            },
        ),
        Reads::default(),
        1,
    );
    assert_eq!(err_code(&s), ErrorCode::BalanceOverflow);
}

#[test]
fn transfer_holds_then_sends_credit_and_arms_timer() {
    // Proves step 1 of the saga: hold, saga record, pending index, Credit and a timer.
    let mut c = funded("a", 100);
    let s = c.step(transfer("b", 30, "t1", Some("k")), Reads::default(), 50);
    let r = c.record().unwrap();
    assert_eq!((r.balance, r.held, r.available()), (100, 30, 70));
    assert!(s
        .writes
        .iter()
        .any(|w| matches!(w, Write::Journal(e) if e.kind == EntryKind::Hold && e.available == 70)));
    assert!(s
        .writes
        .iter()
        .any(|w| matches!(w, Write::Pending(t, true) if t.as_str() == "t1")));
    assert!(s
        .writes
        .iter()
        .any(|w| matches!(w, Write::OpenMark(t, true) if t.as_str() == "t1")));
    assert!(
        s.writes.iter().any(
            |w| matches!(w, Write::Listed(t, 50, s) if t.as_str() == "t1" && s.as_str() == "a")
        ),
        "the sender lists the transfer at its creation"
    );
    assert!(s
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Send(SagaMsg::Credit { to, .. }) if to.as_str() == "b")));
    assert!(s
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Timer { after_ms: 2000, .. })));
    assert!(matches!(reply(&s), Ok(Reply::Transfer(v)) if v.status == TransferStatus::Pending));
}

#[test]
fn transfer_refused_to_self_when_frozen_and_without_funds() {
    // Proves the sender's validations and that a refusal writes nothing.
    let mut c = funded("a", 10);
    assert_eq!(
        err_code(&c.step(transfer("a", 1, "t1", None), Reads::default(), 1)),
        ErrorCode::SameAccount
    );
    assert_eq!(
        err_code(&c.step(transfer("b", 11, "t2", None), Reads::default(), 1)),
        ErrorCode::InsufficientFunds
    );
    c.step(Input::Command(1, Command::Freeze), Reads::default(), 1);
    let s = c.step(transfer("b", 1, "t3", None), Reads::default(), 1);
    assert_eq!(err_code(&s), ErrorCode::AccountFrozen);
    assert!(s.writes.is_empty());
}

#[test]
fn receiver_applies_credit_once_and_replays_recorded_outcome() {
    // Proves exactly-once credit: a repeated Credit gets the recorded outcome and writes nothing.
    let mut b = funded("b", 0);
    let credit = Input::Saga(SagaMsg::Credit {
        transfer_id: tid("t1"),
        from: id("a"),
        to: id("b"),
        amount: amt(30),
        currency: eur(),
        reference: None,
        created_at: 40,
    });
    let s = b.step(credit.clone(), Reads::default(), 60);
    assert_eq!(b.record().unwrap().balance, 30);
    let rec = s.writes.iter().find_map(|w| match w {
        Write::Saga(r) => Some(r.clone()),
        _ => None,
    });
    assert!(matches!(
        rec,
        Some(SagaRecord::Receiver {
            outcome: CreditOutcome::Applied,
            ..
        })
    ));
    assert!(
        s.writes.iter().any(
            |w| matches!(w, Write::Listed(t, 40, s) if t.as_str() == "t1" && s.as_str() == "a")
        ),
        "the receiver lists the transfer with its first record of it, at its creation"
    );
    let again = b.step(
        credit,
        Reads {
            idem: None,
            saga: rec,
        },
        61,
    );
    assert!(again.writes.is_empty());
    assert_eq!(b.record().unwrap().balance, 30);
    assert!(again.effects.iter().any(|e| matches!(
        e,
        Effect::Send(SagaMsg::Outcome {
            outcome: CreditOutcome::Applied,
            ..
        })
    )));
}

#[test]
fn receiver_rejects_other_currency_frozen_and_unknown_account() {
    // Proves the receiver's business rejections are recorded and answered.
    let credit = |cur: &str| {
        Input::Saga(SagaMsg::Credit {
            transfer_id: tid("t1"),
            from: id("a"),
            to: id("b"),
            amount: amt(1),
            currency: Currency::new(cur).unwrap(),
            reference: None,
            created_at: 0,
        })
    };
    let outcome = |s: &Step| {
        s.effects.iter().find_map(|e| match e {
            Effect::Send(SagaMsg::Outcome { outcome, .. }) => Some(*outcome),
            _ => None,
        })
    };
    let mut b = funded("b", 0);
    assert_eq!(
        outcome(&b.step(credit("USD"), Reads::default(), 1)),
        Some(CreditOutcome::Rejected(ErrorCode::CurrencyMismatch))
    );
    b.step(Input::Command(1, Command::Freeze), Reads::default(), 1);
    assert_eq!(
        outcome(&b.step(credit("EUR"), Reads::default(), 1)),
        Some(CreditOutcome::Rejected(ErrorCode::AccountFrozen))
    );
    let mut none = AccountCore::new(id("b"), None, Unsettled::default(), SagaTiming::default());
    let s = none.step(credit("EUR"), Reads::default(), 1);
    assert_eq!(
        outcome(&s),
        Some(CreditOutcome::Rejected(ErrorCode::AccountNotFound))
    );
    assert!(
        s.writes.iter().any(|w| matches!(w, Write::Saga(_))),
        "a rejection is recorded"
    );
}

#[test]
fn sender_captures_on_applied_and_ignores_duplicate_outcome() {
    // Proves step 3: capture once, pending cleared, the sender record (the transfer's only
    // summary) settled, and the idempotency record, which names the transfer, left as it was.
    let mut a = funded("a", 100);
    let accepted = a.step(transfer("b", 30, "t1", Some("k")), Reads::default(), 1);
    assert!(accepted
        .writes
        .iter()
        .any(|w| matches!(w, Write::Idem(k, rec)
        if k == "k" && rec.reply == StoredReply::TransferId(tid("t1")))));
    let applied = Input::Saga(SagaMsg::Outcome {
        transfer_id: tid("t1"),
        from: id("a"),
        outcome: CreditOutcome::Applied,
    });
    let s = a.step(applied.clone(), Reads::default(), 2);
    let r = a.record().unwrap();
    assert_eq!((r.balance, r.held), (70, 0));
    assert!(s
        .writes
        .iter()
        .any(|w| matches!(w, Write::Journal(e) if e.kind == EntryKind::TransferOut)));
    assert!(s
        .writes
        .iter()
        .any(|w| matches!(w, Write::Pending(_, false))));
    assert!(!s.writes.iter().any(|w| matches!(w, Write::Idem(..))));
    assert!(s.writes.iter().any(|w| matches!(w, Write::Saga(rec)
        if rec.view(&id("a")).is_some_and(|v| v.status == TransferStatus::Completed))));
    assert!(s
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Settled(v) if v.status == TransferStatus::Completed)));
    let dup = a.step(applied, Reads::default(), 3);
    assert!(dup.writes.is_empty() && dup.effects.is_empty());
    assert_eq!(a.record().unwrap().balance, 70);
}

#[test]
fn sender_releases_on_rejected_with_reason() {
    // Proves a rejected credit releases the hold and fails the transfer with the reason.
    let mut a = funded("a", 100);
    a.step(transfer("b", 30, "t1", None), Reads::default(), 1);
    let s = a.step(
        Input::Saga(SagaMsg::Outcome {
            transfer_id: tid("t1"),
            from: id("a"),
            outcome: CreditOutcome::Rejected(ErrorCode::AccountFrozen),
        }),
        Reads::default(),
        2,
    );
    let r = a.record().unwrap();
    assert_eq!((r.balance, r.held), (100, 0));
    assert!(s.writes.iter().any(
        |w| matches!(w, Write::Journal(e) if e.kind == EntryKind::Release && e.available == 100)
    ));
    assert!(s
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Settled(v) if v.reason == Some(ErrorCode::AccountFrozen))));
}

#[test]
fn timeout_resends_credit_then_aborts_without_releasing_and_backs_off() {
    // Proves step 4: a timeout never releases by itself; the first CREDIT_RESENDS_MAX timeouts
    // send the same Credit again (a credit lost in a move costs a delay, not the transfer),
    // later ones send Abort with growing delays.
    let mut a = funded("a", 100);
    let first = a.step(transfer("b", 30, "t1", None), Reads::default(), 1);
    let credit = first
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::Send(m @ SagaMsg::Credit { .. }) => Some(m.clone()),
            _ => None,
        })
        .expect("the transfer sends its credit");
    for _ in 0..CREDIT_RESENDS_MAX {
        let s = a.step(Input::Timer(tid("t1")), Reads::default(), 2);
        assert!(s.writes.is_empty());
        assert!(s.effects.contains(&Effect::Send(credit.clone())), "{s:?}");
        assert!(!s
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Send(SagaMsg::Abort { .. }))));
    }
    let mut delays = vec![];
    for _ in 0..8 {
        let s = a.step(Input::Timer(tid("t1")), Reads::default(), 2);
        assert!(s.writes.is_empty());
        assert!(s
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Send(SagaMsg::Abort { .. }))));
        delays.extend(s.effects.iter().filter_map(|e| match e {
            Effect::Timer { after_ms, .. } => Some(*after_ms),
            _ => None,
        }));
    }
    assert_eq!(
        a.record().unwrap().held,
        30,
        "hold kept until a definitive answer"
    );
    assert!(delays.windows(2).all(|w| w[0] <= w[1]));
    assert!(delays[0] > SagaTiming::default().credit_timeout_ms);
    assert_eq!(
        *delays.last().unwrap(),
        SagaTiming::default().abort_backoff_max_ms
    );
}

#[test]
fn abort_tombstones_undecided_and_replays_decided() {
    // Proves the receiver's Abort: tombstone when undecided; the recorded outcome otherwise.
    let mut b = funded("b", 0);
    let abort = Input::Saga(SagaMsg::Abort {
        transfer_id: tid("t1"),
        from: id("a"),
        to: id("b"),
        created_at: 0,
    });
    let s = b.step(abort.clone(), Reads::default(), 1);
    let tomb = s.writes.iter().find_map(|w| match w {
        Write::Saga(r) => Some(r.clone()),
        _ => None,
    });
    assert!(matches!(
        tomb,
        Some(SagaRecord::Receiver {
            outcome: CreditOutcome::Aborted,
            ..
        })
    ));
    // A late Credit finds the tombstone and is refused without crediting.
    let late = b.step(
        Input::Saga(SagaMsg::Credit {
            transfer_id: tid("t1"),
            from: id("a"),
            to: id("b"),
            amount: amt(5),
            currency: eur(),
            reference: None,
            created_at: 0,
        }),
        Reads {
            idem: None,
            saga: tomb,
        },
        2,
    );
    assert!(late.writes.is_empty());
    assert_eq!(b.record().unwrap().balance, 0);
    assert!(late.effects.iter().any(|e| matches!(
        e,
        Effect::Send(SagaMsg::Outcome {
            outcome: CreditOutcome::Aborted,
            ..
        })
    )));
}

#[test]
fn resume_resends_credit_for_every_open_saga() {
    // Proves a re-activated sender re-drives its unsettled transfers.
    let mut a = funded("a", 100);
    a.step(transfer("b", 1, "t1", None), Reads::default(), 1);
    a.step(transfer("c", 2, "t2", None), Reads::default(), 1);
    let sends = a
        .resume(0)
        .into_iter()
        .filter(|e| matches!(e, Effect::Send(SagaMsg::Credit { .. })))
        .count();
    assert_eq!(sends, 2);
}

#[test]
fn freeze_unfreeze_and_get() {
    // Proves status changes and that get reports balances.
    let mut a = funded("a", 10);
    let s = a.step(Input::Command(1, Command::Freeze), Reads::default(), 1);
    assert!(
        matches!(reply(&s), Ok(Reply::Account { view, .. }) if view.status == AccountStatus::Frozen)
    );
    a.step(Input::Command(1, Command::Unfreeze), Reads::default(), 1);
    let s = a.step(Input::Command(1, Command::Get), Reads::default(), 1);
    assert!(
        matches!(reply(&s), Ok(Reply::Account { view, .. }) if view.status == AccountStatus::Active && view.balance == 10)
    );
    let mut none = AccountCore::new(id("x"), None, Unsettled::default(), SagaTiming::default());
    assert_eq!(
        err_code(&none.step(Input::Command(1, Command::Get), Reads::default(), 1)),
        ErrorCode::AccountNotFound
    );
}

#[test]
fn aborted_transfer_fails_with_transfer_aborted_not_unavailable() {
    // Proves a definitive abort is reported as a business failure, never as "outcome unknown".
    let mut a = funded("a", 100);
    a.step(transfer("b", 30, "t1", None), Reads::default(), 1);
    a.step(Input::Timer(tid("t1")), Reads::default(), 2);
    let s = a.step(
        Input::Saga(SagaMsg::Outcome {
            transfer_id: tid("t1"),
            from: id("a"),
            outcome: CreditOutcome::Aborted,
        }),
        Reads::default(),
        3,
    );
    assert_eq!(a.record().unwrap().held, 0);
    assert!(s
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Settled(v) if v.reason == Some(ErrorCode::TransferAborted))));
    assert!(!ErrorCode::TransferAborted.is_outcome_unknown());
}
