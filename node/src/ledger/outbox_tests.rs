//! The outbox through the storage transaction bodies: every entry and settlement of a commit
//! is written with it, once per webhook that wants it, in `seq` order per account.

use super::account::{Command, Effect, Input};
use super::exec::{self, Activation};
use super::outbox;
use super::test_support::{acct, load, opened};
use crate::storage::keys::Keys;
use crate::storage::memory::MemoryBackend;
use crate::storage::Store;
use cluster_config::WebhookConfig;
use protocol::events::{Event, EventData};
use protocol::{Amount, TransferId};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

fn hook(id: &str, events: Option<&[&str]>, accounts: Option<&[&str]>) -> WebhookConfig {
    let list = |xs: &[&str]| {
        xs.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut toml = format!(
        "[[webhooks]]\nid = {id:?}\nurl = \"http://127.0.0.1:1/{id}\"\nsecret = \"0123456789abcdef\"\n"
    );
    if let Some(e) = events {
        toml += &format!("events = [{}]\n", list(e));
    }
    if let Some(a) = accounts {
        toml += &format!("accounts = [{}]\n", list(a));
    }
    let c = cluster_config::Config::from_toml_str(&toml).unwrap();
    c.validate().unwrap();
    c.webhooks[0].clone()
}

/// Accounts on one store, with their saga messages delivered until none is left.
struct Ledger {
    store: Store,
    keys: Keys,
    acts: BTreeMap<String, Activation>,
    now: u64,
}

impl Ledger {
    fn new(hooks: &[WebhookConfig], funded: &[(&str, u64)]) -> Self {
        let store = Store::new(Arc::new(MemoryBackend::new()));
        let keys = Keys::default().with_webhooks(hooks);
        let mut acts = BTreeMap::new();
        for (name, funds) in funded {
            acts.insert(name.to_string(), opened(&store, &keys, name, *funds));
        }
        Ledger {
            store,
            keys,
            acts,
            now: 10,
        }
    }

    fn run(&mut self, account: &str, input: Input) {
        let mut queue = VecDeque::from([(account.to_owned(), input)]);
        while let Some((to, input)) = queue.pop_front() {
            self.now += 1;
            let act = match self.acts.get(&to) {
                Some(a) => a.clone(),
                None => load(&self.store, &self.keys, &to, 7),
            };
            let (act, effects) =
                exec::commit_batch(&self.store, &self.keys, "n1", &act, &[input], self.now)
                    .unwrap();
            self.acts.insert(to, act);
            for e in effects {
                if let Effect::Send(m) = e {
                    queue.push_back((m.destination().as_str().to_owned(), Input::Saga(m)));
                }
            }
        }
    }

    /// The events waiting in `hook`'s outbox, in key order, as they are delivered; each
    /// outbox record is a few bytes (its key, and a settlement's time).
    fn outbox(&self, hook: &str) -> Vec<Event> {
        let (b, e) = self.keys.outbox_range(hook);
        self.store
            .read(|txn| {
                let rows = txn.get_range(&b, &e, 10_000)?;
                rows.iter()
                    .map(|(k, v)| {
                        assert!(v.len() <= 8, "an outbox record is a reference: {v:?}");
                        let json = outbox::read(txn, &self.keys, hook, k, v)?;
                        Ok(serde_json::from_slice(&json).unwrap())
                    })
                    .collect()
            })
            .unwrap()
    }
}

fn amount(v: u64) -> Amount {
    Amount::new(v).unwrap()
}

fn transfer(t: &str, to: &str, v: u64) -> Input {
    Input::Command(
        1,
        Command::Transfer {
            transfer_id: TransferId::new(t).unwrap(),
            to: acct(to),
            amount: amount(v),
            reference: None,
            idem_key: None,
        },
    )
}

fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{} {} {} {}", e.account, e.seq, e.kind, e.id))
        .collect()
}

#[test]
fn no_webhook_writes_no_outbox_record() {
    let mut l = Ledger::new(&[], &[("a", 100), ("b", 0)]);
    l.run("a", transfer("t1", "b", 40));
    let (b, e) = Keys::default().outbox_range("");
    let (b, e) = (b[..b.len() - 2].to_vec(), e[..e.len() - 2].to_vec());
    let all = l.store.read(|txn| txn.get_range(&b, &e, 10)).unwrap();
    assert!(all.is_empty(), "{all:?}");
}

#[test]
fn entries_and_settlements_are_written_in_seq_order_per_account() {
    let mut l = Ledger::new(&[hook("all", None, None)], &[("a", 100), ("b", 0)]);
    l.run("a", transfer("t1", "b", 40));
    l.run("a", transfer("t2", "b", 500)); // refused at once: nothing held, nothing written
    let events = l.outbox("all");
    assert_eq!(
        summary(&events),
        [
            // a: the deposit, the transfer's hold, then, once b applied it, the debit and
            // the settlement at its seq.
            "a 1 entry entry:a:1",
            "a 2 entry entry:a:2",
            "a 3 entry entry:a:3",
            "a 3 transfer.settled transfer.settled:t1",
            "b 1 entry entry:b:1",
        ]
    );
    let EventData::Transfer(t) = &events[3].data else {
        panic!("{:?}", events[3])
    };
    assert_eq!((t.from.as_str(), t.to.as_str(), t.amount), ("a", "b", 40));
    assert_eq!(format!("{:?}", t.status), "Completed");
    let EventData::Entry(e) = &events[4].data else {
        panic!("{:?}", events[4])
    };
    assert_eq!(
        (e.balance, e.available, e.held, e.entry.amount),
        (40, 40, 0, 40)
    );
    // The body is what the API promises: id, type, account, seq, at, data.
    let json = serde_json::to_value(&events[0]).unwrap();
    for field in ["id", "type", "account", "seq", "at", "data"] {
        assert!(json.get(field).is_some(), "{field} in {json}");
    }
}

#[test]
fn a_failed_transfer_settles_with_its_release_and_a_hold_when_voided() {
    let mut l = Ledger::new(&[hook("all", None, None)], &[("a", 100)]);
    // To an account never opened: the receiver refuses, the sender releases.
    l.run("a", transfer("t1", "nobody", 30));
    l.run(
        "a",
        Input::Command(
            2,
            Command::Hold {
                hold_id: TransferId::new("h1").unwrap(),
                to: acct("b"),
                amount: amount(20),
                expires_in_ms: 60_000,
                reference: None,
                idem_key: None,
            },
        ),
    );
    l.run(
        "a",
        Input::Command(
            3,
            Command::Void {
                hold_id: TransferId::new("h1").unwrap(),
                idem_key: None,
            },
        ),
    );
    let events = l.outbox("all");
    assert_eq!(
        summary(&events),
        [
            "a 1 entry entry:a:1",
            "a 2 entry entry:a:2",
            "a 3 entry entry:a:3",
            "a 3 transfer.settled transfer.settled:t1",
            "a 4 entry entry:a:4",
            "a 5 entry entry:a:5",
            "a 5 hold.settled hold.settled:h1",
        ]
    );
    let EventData::Hold(h) = &events[6].data else {
        panic!("{:?}", events[6])
    };
    assert_eq!(format!("{:?}", h.status), "Voided");
}

#[test]
fn each_webhook_gets_the_types_and_accounts_it_asked_for() {
    let hooks = [
        hook("settled", Some(&["transfer.settled"]), None),
        hook("shop", None, Some(&["shop-*"])),
    ];
    let mut l = Ledger::new(&hooks, &[("a", 100), ("shop-1", 0)]);
    l.run("a", transfer("t1", "shop-1", 40));
    assert_eq!(
        summary(&l.outbox("settled")),
        ["a 3 transfer.settled transfer.settled:t1"]
    );
    assert_eq!(
        summary(&l.outbox("shop")),
        ["shop-1 1 entry entry:shop-1:1"]
    );
}

#[test]
fn a_disbursement_settles_once_on_its_payer() {
    let mut l = Ledger::new(
        &[hook("d", Some(&["disbursement.settled"]), None)],
        &[("a", 100), ("b", 0), ("c", 0)],
    );
    l.run(
        "a",
        Input::Command(
            1,
            Command::Disburse {
                disbursement_id: TransferId::new("d1").unwrap(),
                legs: vec![(acct("b"), amount(10)), (acct("c"), amount(20))],
                reference: None,
                idem_key: None,
            },
        ),
    );
    let events = l.outbox("d");
    assert_eq!(summary(&events).len(), 1, "{:?}", summary(&events));
    let EventData::Disbursement(d) = &events[0].data else {
        panic!("{:?}", events[0])
    };
    assert_eq!((d.total, d.legs.len()), (30, 2));
    assert_eq!(events[0].id, "disbursement.settled:d1");
}
