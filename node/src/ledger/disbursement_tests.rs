//! Disbursements through the storage transaction bodies: the payer and its receivers as
//! activations on one store, their messages carried by hand (and dropped or reordered).

use super::account::{Command, Effect, Input, Reply};
use super::exec::{self, Activation};
use super::test_support::{acct, load, opened};
use crate::storage::keys::Keys;
use crate::storage::memory::MemoryBackend;
use crate::storage::Store;
use protocol::api::{EntryKind, LegStatus, TransferStatus};
use protocol::saga::{LegOutcome, SagaMsg};
use protocol::{AccountId, Amount, ErrorCode, TransferId};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A store and the activations of its accounts.
struct World {
    store: Store,
    keys: Keys,
    acts: BTreeMap<AccountId, Activation>,
    now: u64,
}

impl World {
    /// `a` with 100, `b` and `c` with nothing.
    fn new() -> World {
        let (store, keys) = (Store::new(Arc::new(MemoryBackend::new())), Keys::default());
        let mut acts = BTreeMap::new();
        for (id, funds) in [("a", 100), ("b", 0), ("c", 0)] {
            acts.insert(acct(id), opened(&store, &keys, id, funds));
        }
        World {
            store,
            keys,
            acts,
            now: 10,
        }
    }

    /// Runs `input` on `id`; returns its effects.
    fn run(&mut self, id: &str, input: Input) -> Vec<Effect> {
        self.now += 1;
        let act = &self.acts[&acct(id)];
        let (act, fx) =
            exec::commit_batch(&self.store, &self.keys, "n1", act, &[input], self.now).unwrap();
        self.acts.insert(acct(id), act);
        fx
    }

    /// Delivers every message of `fx` (and of the answers, until none is left); messages
    /// matching `drop` are lost.
    fn deliver(&mut self, fx: Vec<Effect>, drop: &dyn Fn(&SagaMsg) -> bool) {
        let mut queue: Vec<SagaMsg> = sends(&fx);
        while let Some(msg) = (!queue.is_empty()).then(|| queue.remove(0)) {
            if drop(&msg) {
                continue;
            }
            let to = msg.destination().as_str().to_owned();
            let fx = self.run(&to, Input::Saga(msg));
            queue.extend(sends(&fx));
        }
    }

    fn view(&self) -> protocol::api::DisbursementView {
        exec::read_disbursement(&self.store, &self.keys, &tid("d1"))
            .unwrap()
            .unwrap()
    }

    /// (balance, held) of `id`, and its reserved legs.
    fn money(&self, id: &str) -> (u64, u64, usize) {
        let c = &self.acts[&acct(id)].core;
        let r = c.record().unwrap();
        (r.balance, r.held, c.reserved().len())
    }

    fn kinds(&self, id: &str) -> Vec<(EntryKind, u64)> {
        let page = exec::read_entries(&self.store, &self.keys, &acct(id), 0, 100)
            .unwrap()
            .unwrap();
        page.entries
            .into_iter()
            .filter(|e| e.transfer_id.as_ref().map(|t| t.as_str()) == Some("d1"))
            .map(|e| (e.kind, e.amount))
            .collect()
    }
}

fn tid(s: &str) -> TransferId {
    TransferId::new(s).unwrap()
}

fn sends(fx: &[Effect]) -> Vec<SagaMsg> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Send(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn disburse(legs: &[(&str, u64)]) -> Input {
    Input::Command(
        1,
        Command::Disburse {
            disbursement_id: tid("d1"),
            legs: legs
                .iter()
                .map(|(to, a)| (acct(to), Amount::new(*a).unwrap()))
                .collect(),
            reference: Some("payroll".into()),
            idem_key: Some("k".into()),
        },
    )
}

#[test]
fn disbursements_credit_every_leg_then_debit_once() {
    // Proves the happy path: the total is held, every leg reserved then credited, the payer
    // debited once at the end; the view and the journals say so; the key replays it.
    let mut w = World::new();
    let fx = w.run("a", disburse(&[("b", 30), ("c", 20)]));
    assert!(
        matches!(&fx[..], [.., Effect::Reply(_, Ok(Reply::Disbursement(d)))] if d.status == TransferStatus::Pending && d.total == 50),
        "{fx:?}"
    );
    assert_eq!(w.money("a"), (100, 50, 0));
    w.deliver(fx, &|_| false);
    let v = w.view();
    assert_eq!(v.status, TransferStatus::Completed);
    assert!(v.legs.iter().all(|l| l.status == LegStatus::Completed));
    assert_eq!(
        (w.money("a"), w.money("b"), w.money("c")),
        ((50, 0, 0), (30, 0, 0), (20, 0, 0))
    );
    assert_eq!(
        w.kinds("a"),
        [(EntryKind::Hold, 50), (EntryKind::TransferOut, 50)]
    );
    assert_eq!(w.kinds("b"), [(EntryKind::TransferIn, 30)]);
    let fx = w.run("a", disburse(&[("b", 30), ("c", 20)]));
    assert!(
        matches!(&fx[..], [Effect::Reply(_, Ok(Reply::Disbursement(d)))] if d.status == TransferStatus::Completed),
        "{fx:?}"
    );
    let (open, _) = exec::read_disbursing(&w.store, &w.keys, None, 10).unwrap();
    assert!(open.is_empty());
}

#[test]
fn disbursements_fail_whole_when_one_leg_refuses() {
    // Proves all or nothing: a frozen receiver refuses, the reserved leg is dropped, no leg
    // is credited, the hold is released, and the view names the failing leg and reason.
    let mut w = World::new();
    w.run("c", Input::Command(9, Command::Freeze));
    let fx = w.run("a", disburse(&[("b", 30), ("c", 20)]));
    w.deliver(fx, &|_| false);
    let v = w.view();
    assert_eq!(
        (v.status, v.reason),
        (TransferStatus::Failed, Some(ErrorCode::AccountFrozen))
    );
    let legs: Vec<(LegStatus, Option<ErrorCode>)> =
        v.legs.iter().map(|l| (l.status, l.reason)).collect();
    assert_eq!(
        legs,
        [
            (LegStatus::Cancelled, None),
            (LegStatus::Failed, Some(ErrorCode::AccountFrozen))
        ]
    );
    assert_eq!(
        (w.money("a"), w.money("b"), w.money("c")),
        ((100, 0, 0), (0, 0, 0), (0, 0, 0))
    );
    assert_eq!(
        w.kinds("a"),
        [(EntryKind::Hold, 50), (EntryKind::Release, 50)]
    );
    assert!(w.kinds("b").is_empty());
}

#[test]
fn disbursements_cancel_a_silent_leg_and_its_late_try_is_refused() {
    // Proves a receiver that never answers is cancelled after the timeout and its resends;
    // the cancel reaches it before the try, leaving a mark, so the late try is refused and
    // the disbursement fails with transfer_aborted.
    let mut w = World::new();
    let fx = w.run("a", disburse(&[("b", 30), ("c", 20)]));
    let to_c = |m: &SagaMsg| matches!(m, SagaMsg::Try { to, .. } if to.as_str() == "c");
    let late: Vec<SagaMsg> = sends(&fx).into_iter().filter(|m| to_c(m)).collect();
    w.deliver(fx, &to_c);
    for _ in 0..super::account::CREDIT_RESENDS_MAX {
        let fx = w.run("a", Input::Timer(tid("d1")));
        assert!(sends(&fx).iter().any(to_c), "the try is sent again: {fx:?}");
        w.deliver(fx, &to_c);
    }
    // The next timeout cancels, with c's leg the failing one; the cancel reaches c first.
    let fx = w.run("a", Input::Timer(tid("d1")));
    w.deliver(fx, &|_| false);
    let v = w.view();
    assert_eq!(
        (v.status, v.reason),
        (TransferStatus::Failed, Some(ErrorCode::TransferAborted))
    );
    assert_eq!(v.legs[1].status, LegStatus::Failed);
    let fx = w.run("c", Input::Saga(late[0].clone()));
    assert!(
        sends(&fx).iter().any(|m| matches!(
            m,
            SagaMsg::LegOutcome {
                outcome: LegOutcome::Cancelled,
                ..
            }
        )),
        "{fx:?}"
    );
    assert_eq!(
        (w.money("b"), w.money("c")),
        ((0, 0, 0), (0, 0, 0)),
        "nothing reserved, nothing credited"
    );
}

#[test]
fn disbursements_resume_after_a_reload_and_confirm_once() {
    // Proves the payer stores which legs answered: reloaded while confirming, it confirms
    // again only the leg that never answered; and a receiver answers a repeated confirm
    // without crediting twice.
    let mut w = World::new();
    let fx = w.run("a", disburse(&[("b", 30), ("c", 20)]));
    // Deliver the tries, their answers and b's confirm; lose c's confirm.
    let to_c = |m: &SagaMsg| matches!(m, SagaMsg::Confirm { to, .. } if to.as_str() == "c");
    w.deliver(fx, &to_c);
    assert_eq!(w.view().status, TransferStatus::Pending);
    assert_eq!(w.money("b"), (30, 0, 0));
    let act = load(&w.store, &w.keys, "a", 7);
    w.acts.insert(acct("a"), act);
    let resume = w.acts[&acct("a")].core.resume(w.now);
    let confirms = sends(&resume);
    assert!(
        matches!(&confirms[..], [m] if to_c(m)),
        "only c's confirm again: {resume:?}"
    );
    w.deliver(resume, &|_| false);
    assert_eq!(w.view().status, TransferStatus::Completed);
    // A confirm repeated after completion (a duplicate in flight) credits nothing twice.
    let again = SagaMsg::Confirm {
        disbursement_id: tid("d1"),
        from: acct("a"),
        to: acct("b"),
        reference: None,
    };
    w.deliver(vec![Effect::Send(again)], &|_| false);
    assert_eq!((w.money("b"), w.money("c")), ((30, 0, 0), (20, 0, 0)));
}
