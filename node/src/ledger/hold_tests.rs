//! Holds through the storage transaction bodies: create, capture (in part, refused), void,
//! expiry, and what an activation loads back.

use super::account::{Command, Effect, Input, Reply};
use super::exec::{self, Activation};
use super::test_support::{acct, load, opened};
use crate::storage::keys::Keys;
use crate::storage::memory::MemoryBackend;
use crate::storage::Store;
use protocol::api::{EntryKind, HoldStatus, TransferStatus};
use protocol::saga::{CreditOutcome, SagaMsg};
use protocol::{Amount, ApiError, ErrorCode, TransferId};
use std::sync::Arc;

fn tid(s: &str) -> TransferId {
    TransferId::new(s).unwrap()
}

fn store() -> (Store, Keys) {
    (Store::new(Arc::new(MemoryBackend::new())), Keys::default())
}

/// Runs one input on `act` at `now`: the activation after and its effects.
fn run(s: &(Store, Keys), act: &Activation, input: Input, now: u64) -> (Activation, Vec<Effect>) {
    exec::commit_batch(&s.0, &s.1, "n1", act, &[input], now).unwrap()
}

fn answer(effects: &[Effect]) -> Result<Reply, ApiError> {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Reply(_, r) => Some(r.clone()),
            _ => None,
        })
        .expect("a command is answered")
}

fn hold(amount: u64, expires_in_ms: u64, key: Option<&str>) -> Input {
    Input::Command(
        1,
        Command::Hold {
            hold_id: tid("h1"),
            to: acct("b"),
            amount: Amount::new(amount).unwrap(),
            expires_in_ms,
            reference: Some("room 12".into()),
            idem_key: key.map(str::to_owned),
        },
    )
}

fn capture(capture_id: &str, amount: Option<u64>) -> Input {
    Input::Command(
        2,
        Command::Capture {
            hold_id: tid("h1"),
            capture_id: tid(capture_id),
            amount: amount.map(|a| Amount::new(a).unwrap()),
            idem_key: None,
        },
    )
}

fn void(hold_id: &str) -> Input {
    Input::Command(
        3,
        Command::Void {
            hold_id: tid(hold_id),
            idem_key: None,
        },
    )
}

fn outcome(capture_id: &str, outcome: CreditOutcome) -> Input {
    Input::Saga(SagaMsg::Outcome {
        transfer_id: tid(capture_id),
        from: acct("a"),
        outcome,
    })
}

/// (kind, amount, id) of every journal entry of `a`.
fn journal(s: &(Store, Keys)) -> Vec<(EntryKind, u64, String)> {
    let page = exec::read_entries(&s.0, &s.1, &acct("a"), 0, 100)
        .unwrap()
        .unwrap();
    page.entries
        .into_iter()
        .map(|e| {
            (
                e.kind,
                e.amount,
                e.transfer_id.map_or(String::new(), String::from),
            )
        })
        .collect()
}

fn held_and_available(act: &Activation) -> (u64, u64) {
    let r = act.core.record().unwrap();
    (r.held, r.available())
}

#[test]
fn holds_capture_in_part_moves_it_and_releases_the_rest() {
    // Proves a partial capture moves its amount through a transfer of its own, releases the
    // rest when the transfer completes, and that an activation in between loads the hold and
    // its capture as they were.
    let s = store();
    let act = opened(&s.0, &s.1, "a", 100);
    let (act, fx) = run(&s, &act, hold(60, 5_000, Some("k1")), 10);
    let Ok(Reply::Hold(view)) = answer(&fx) else {
        panic!("{fx:?}")
    };
    assert_eq!(
        (view.status, view.amount, view.expires_at),
        (HoldStatus::Held, 60, 5_010)
    );
    assert_eq!(held_and_available(&act), (60, 40));
    assert!(fx.iter().any(|e| matches!(e, Effect::Timer { transfer_id, after_ms: 5_000 } if transfer_id.as_str() == "h1")));
    let (act, fx) = run(&s, &act, capture("c1", Some(25)), 20);
    let Ok(Reply::Capture { hold: h, transfer }) = answer(&fx) else {
        panic!("{fx:?}")
    };
    assert_eq!(
        (h.status, transfer.status, transfer.amount),
        (HoldStatus::Capturing, TransferStatus::Pending, 25)
    );
    assert!(fx.iter().any(|e| matches!(e, Effect::Send(SagaMsg::Credit { transfer_id, amount, .. }) if transfer_id.as_str() == "c1" && amount.get() == 25)));
    assert_eq!(
        held_and_available(&act),
        (60, 40),
        "the capture moves money, holds no more"
    );
    // A fresh activation loads the capturing hold and its transfer.
    let act = load(&s.0, &s.1, "a", 2);
    assert_eq!(
        act.core.open_holds()[&tid("h1")].status,
        HoldStatus::Capturing
    );
    assert_eq!(act.core.open_sagas()[&tid("c1")].of_hold, Some(tid("h1")));
    let (act, _) = run(&s, &act, outcome("c1", CreditOutcome::Applied), 30);
    assert_eq!(act.core.record().unwrap().balance, 75);
    assert_eq!(held_and_available(&act), (0, 75));
    let view = exec::read_hold(&s.0, &s.1, &tid("h1")).unwrap().unwrap();
    assert_eq!(
        (view.status, view.captured, view.capture_id),
        (HoldStatus::Captured, 25, Some(tid("c1")))
    );
    use EntryKind::*;
    let h = |k, a, t: &str| (k, a, t.to_owned());
    assert_eq!(
        journal(&s)[1..],
        [
            h(Hold, 60, "h1"),
            h(Release, 25, "h1"),
            h(Hold, 25, "c1"),
            h(TransferOut, 25, "c1"),
            h(Release, 35, "h1")
        ]
    );
    // The key replays the hold as it is now; the index of holds by expiry no longer has it.
    let (_, fx) = run(&s, &act, hold(60, 5_000, Some("k1")), 40);
    assert!(matches!(answer(&fx), Ok(Reply::Hold(v)) if v.status == HoldStatus::Captured));
    let (due, _) = exec::read_due_holds(&s.0, &s.1, exec::EXPIRY_MAX, None, 10).unwrap();
    assert!(due.is_empty(), "{due:?}");
}

#[test]
fn holds_refused_capture_leaves_it_held_and_only_a_held_hold_moves() {
    // Proves a capture the receiver refuses gives the amount back to the hold (held again),
    // a second capture then works, and capture and void answer hold_not_active,
    // hold_not_found and capture_exceeds_hold where they must.
    let s = store();
    let act = opened(&s.0, &s.1, "a", 100);
    let (act, _) = run(&s, &act, hold(60, 5_000, None), 10);
    let code = |fx: &[Effect]| answer(fx).unwrap_err().code;
    let (act, fx) = run(&s, &act, capture("c0", Some(61)), 15);
    assert_eq!(code(&fx), ErrorCode::CaptureExceedsHold);
    let (act, _) = run(&s, &act, capture("c1", None), 20);
    let (act, fx) = run(&s, &act, void("h1"), 21);
    let e = answer(&fx).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::HoldNotActive, "hold h1 is capturing")
    );
    let (act, fx) = run(&s, &act, capture("c2", None), 22);
    assert_eq!(code(&fx), ErrorCode::HoldNotActive);
    let (act, _) = run(
        &s,
        &act,
        outcome("c1", CreditOutcome::Rejected(ErrorCode::AccountFrozen)),
        30,
    );
    let view = exec::read_hold(&s.0, &s.1, &tid("h1")).unwrap().unwrap();
    assert_eq!(
        (view.status, view.capture_id.clone()),
        (HoldStatus::Held, Some(tid("c1")))
    );
    assert_eq!(held_and_available(&act), (60, 40));
    let (act, fx) = run(&s, &act, void("h1"), 40);
    assert!(matches!(answer(&fx), Ok(Reply::Hold(v)) if v.status == HoldStatus::Voided));
    assert_eq!(held_and_available(&act), (0, 100));
    // Settled: read from its record, as a fresh activation would.
    let act = load(&s.0, &s.1, "a", 2);
    let (act, fx) = run(&s, &act, capture("c3", None), 50);
    let e = answer(&fx).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::HoldNotActive, "hold h1 is voided")
    );
    let (_, fx) = run(&s, &act, void("h9"), 51);
    assert_eq!(code(&fx), ErrorCode::HoldNotFound);
    use EntryKind::*;
    let h = |k, a, t: &str| (k, a, t.to_owned());
    assert_eq!(
        journal(&s)[1..],
        [
            h(Hold, 60, "h1"),
            h(Release, 60, "h1"),
            h(Hold, 60, "c1"),
            h(Release, 60, "c1"),
            h(Hold, 60, "h1"),
            h(Release, 60, "h1")
        ]
    );
}

#[test]
fn holds_expire_on_their_timer_and_when_activated_after_their_time() {
    // Proves a timer that fires early arms again, one at the expiry releases everything, and
    // an activation after the expiry arms the timer at once (the sweep finds the payer from
    // the index of holds by expiry).
    let s = store();
    let act = opened(&s.0, &s.1, "a", 100);
    let (act, _) = run(&s, &act, hold(60, 1_000, None), 10);
    let (due, _) = exec::read_due_holds(&s.0, &s.1, 1_009, None, 10).unwrap();
    assert!(due.is_empty());
    let (due, _) = exec::read_due_holds(&s.0, &s.1, 1_010, None, 10).unwrap();
    assert_eq!(due, vec![((1_010, tid("h1")), acct("a"))]);
    let (act, fx) = run(&s, &act, Input::Timer(tid("h1")), 500);
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::Timer { after_ms: 510, .. })));
    assert_eq!(held_and_available(&act), (60, 40));
    // Passivated meanwhile: a fresh activation past the expiry arms the timer at once.
    let act = load(&s.0, &s.1, "a", 2);
    assert!(act.core.resume(2_000).iter().any(
        |e| matches!(e, Effect::Timer { transfer_id, after_ms: 0 } if transfer_id.as_str() == "h1")
    ));
    let (act, _) = run(&s, &act, Input::Timer(tid("h1")), 2_000);
    assert_eq!(held_and_available(&act), (0, 100));
    let view = exec::read_hold(&s.0, &s.1, &tid("h1")).unwrap().unwrap();
    assert_eq!(view.status, HoldStatus::Expired);
    let (due, _) = exec::read_due_holds(&s.0, &s.1, exec::EXPIRY_MAX, None, 10).unwrap();
    assert!(due.is_empty());
    assert!(act.core.open_holds().is_empty());
}

#[test]
fn holds_past_their_time_expire_before_a_capture_or_void() {
    // Proves a capture or void that reaches the payer after the hold's time but before its
    // timer ran (the payer was passivated, or just activated) finds the hold expired: it is
    // expired in that same step, and the request answers hold_not_active.
    let s = store();
    let act = opened(&s.0, &s.1, "a", 100);
    run(&s, &act, hold(60, 1_000, None), 10);
    let act = load(&s.0, &s.1, "a", 2); // passivated and back: no timer ran
    let (act, fx) = run(&s, &act, capture("c1", None), 1_010);
    let e = answer(&fx).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::HoldNotActive, "hold h1 is expired")
    );
    assert_eq!(held_and_available(&act), (0, 100));
    let view = exec::read_hold(&s.0, &s.1, &tid("h1")).unwrap().unwrap();
    assert_eq!((view.status, view.capture_id), (HoldStatus::Expired, None));
    let (_, fx) = run(&s, &act, void("h1"), 1_011);
    assert_eq!(answer(&fx).unwrap_err().code, ErrorCode::HoldNotActive);
}
