//! Every decoder of bytes from outside, under random and mutated input: no panic, and a refusal
//! is an error with a sentence. The decoders:
//! - HTTP bodies (`OpenAccount`, `Movement`, `TransferRequest`, `BatchTransfersRequest`, as
//!   JSON), path segments (account and transfer ids) and idempotency keys;
//! - WebSocket frames (`ClientFrame`, JSON);
//! - node-to-node messages (`PeerRequest`, `PeerReply`, `PeerCast`, versioned);
//! - stored records (account state, lease, journal entry, idempotency record, saga record,
//!   index value; binary version 2 and the JSON of version 1).
//!
//! Inputs are random bytes, and valid encodings of each decoder mutated by a few random edits
//! (a byte replaced, inserted or removed, the tail cut, a piece repeated), so they reach deep
//! into each format. `cargo test` runs [`CASES_QUICK`] cases per decoder; the ignored `fuzz_`
//! tests run [`CASES_FUZZ`] each:
//! `cargo test --release -p node --test fuzz_decoders -- --ignored fuzz_`.

use node::ledger::records::{
    AccountRecord, IdemRecord, Lease, SagaRecord, SenderStatus, StoredReply,
};
use node::storage::codec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use protocol::api::{
    AccountStatus, BatchTransfersRequest, Entry, EntryKind, Movement, OpenAccount, TransferRequest,
};
use protocol::cluster::{PeerCast, PeerReply, PeerRequest};
use protocol::saga::CreditOutcome;
use protocol::stream::ClientFrame;
use protocol::{AccountId, IdempotencyKey, TransferId};

/// Cases per decoder in the ordinary test run.
const CASES_QUICK: u32 = 2_000;
/// Cases per decoder in the `fuzz_` runs.
const CASES_FUZZ: u32 = 1_000_000;

/// Random bytes, or a sample of `corpus` with up to 8 random edits.
fn inputs(corpus: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((0u8..5, any::<usize>(), any::<u8>(), 1usize..16), 0..8);
    let mutated = (0..corpus.len(), edits).prop_map(move |(i, edits)| {
        let mut b = corpus[i].clone();
        for (op, at, byte, len) in edits {
            let at = if b.is_empty() { 0 } else { at % (b.len() + 1) };
            match op {
                0 if at < b.len() => b[at] = byte,
                1 => b.insert(at, byte),
                2 if at < b.len() => {
                    b.remove(at);
                }
                3 => b.truncate(at),
                _ => {
                    let end = (at + len).min(b.len());
                    let piece = b[at..end].to_vec();
                    b.splice(at..at, piece);
                }
            }
        }
        b
    });
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..256),
        4 => mutated,
    ]
}

/// Runs `check` on `cases` inputs built from `corpus`; a panic inside fails the run. Reports
/// how many decodes accepted their input and how many refused it.
fn run(name: &str, cases: u32, corpus: Vec<Vec<u8>>, check: fn(&[u8]) -> (u64, u64)) {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let started = std::time::Instant::now();
    let accepted = std::sync::atomic::AtomicU64::new(0);
    let refused = std::sync::atomic::AtomicU64::new(0);
    TestRunner::new(config)
        .run(&inputs(corpus), |bytes| {
            let (a, r) = check(&bytes);
            accepted.fetch_add(a, std::sync::atomic::Ordering::Relaxed);
            refused.fetch_add(r, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let (accepted, refused) = (accepted.into_inner(), refused.into_inner());
    eprintln!(
        "{name}: {cases} cases, no panic; decodes accepted {accepted}, refused with a sentence {refused}; {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        accepted > 0,
        "{name}: the mutated samples never decoded: the corpus is broken"
    );
}

/// Tallies one decode: (accepted, refused); a refusal must say why.
fn said<E: std::fmt::Display>(r: Result<impl Sized, E>) -> (u64, u64) {
    match r {
        Ok(_) => (1, 0),
        Err(e) => {
            assert!(
                !e.to_string().trim().is_empty(),
                "an error without a sentence"
            );
            (0, 1)
        }
    }
}

/// Sums tallies.
fn tally(all: &[(u64, u64)]) -> (u64, u64) {
    all.iter().fold((0, 0), |(a, r), (x, y)| (a + x, r + y))
}

fn json(v: serde_json::Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn http_corpus() -> Vec<Vec<u8>> {
    use serde_json::json;
    vec![
        json(json!({"id": "alice", "currency": "EUR"})),
        json(json!({"account": "alice", "amount": 1000, "reference": "salary"})),
        json(json!({"from": "alice", "to": "bob", "amount": 250, "wait_ms": 100})),
        json(json!({"transfers": [
            {"from": "a", "to": "b", "amount": 1, "idempotency_key": "k1"},
            {"from": "b", "to": "c", "amount": 9007199254740991u64, "reference": "r"}
        ]})),
    ]
}

fn check_http(bytes: &[u8]) -> (u64, u64) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    tally(&[
        said(serde_json::from_slice::<OpenAccount>(bytes)),
        said(serde_json::from_slice::<Movement>(bytes)),
        said(serde_json::from_slice::<TransferRequest>(bytes)),
        said(serde_json::from_slice::<BatchTransfersRequest>(bytes)),
        said(AccountId::new(text.clone())),
        said(TransferId::new(text.clone())),
        said(IdempotencyKey::new(text)),
    ])
}

fn ws_corpus() -> Vec<Vec<u8>> {
    use serde_json::json;
    vec![
        json(json!({"op": "subscribe", "account": "alice", "from_seq": 12})),
        json(json!({"op": "unsubscribe", "account": "alice"})),
        json(json!({"op": "ping"})),
        json(
            json!({"op": "transfer", "req_id": "r1", "from": "a", "to": "b", "amount": 5, "idempotency_key": "k"}),
        ),
        json(json!({"op": "deposit", "req_id": "r2", "account": "a", "amount": 5})),
        json(json!({"op": "get", "req_id": "r3", "account": "a"})),
    ]
}

fn check_ws(bytes: &[u8]) -> (u64, u64) {
    said(serde_json::from_slice::<ClientFrame>(bytes))
}

fn cluster_corpus() -> Vec<Vec<u8>> {
    use node::ledger::account::{Command, Reply};
    use protocol::cluster::{self, Hello};
    use protocol::saga::SagaMsg;
    use protocol::{Amount, Currency};
    let a = AccountId::new("alice").unwrap();
    let b = AccountId::new("bob").unwrap();
    let hello = Hello {
        node_id: "n1".into(),
        http: "127.0.0.1:8080".into(),
        cluster_addr: "127.0.0.1:7946".into(),
        leaving: false,
        store_id: "s".into(),
        incarnation: 3,
    };
    let credit = SagaMsg::Credit {
        transfer_id: TransferId::new("t1").unwrap(),
        from: a.clone(),
        to: b.clone(),
        amount: Amount::new(5).unwrap(),
        currency: Currency::new("EUR").unwrap(),
        reference: None,
        created_at: 1_767_225_600_000,
    };
    let deposit = Command::Deposit {
        amount: Amount::new(7).unwrap(),
        reference: Some("r".into()),
        idem_key: Some("k".into()),
    };
    vec![
        cluster::encode(&PeerRequest::Command {
            account: a,
            command: deposit,
            wait_ms: 10,
        }),
        cluster::encode(&PeerRequest::Stats),
        cluster::encode(&PeerRequest::Leaving(hello.clone())),
        cluster::encode(&PeerCast::Hello(hello)),
        cluster::encode(&PeerCast::Saga {
            msg: credit,
            hops: 1,
        }),
        cluster::encode(&PeerCast::Heartbeat {
            node_id: "n2".into(),
            incarnation: 4,
        }),
        cluster::encode(&PeerCast::Dropped {
            node_id: "n3".into(),
            incarnation: 4,
        }),
        cluster::encode(&PeerReply::Moved),
        cluster::encode(&PeerReply::Failed(protocol::ErrorCode::Overloaded.into())),
        cluster::encode(&PeerReply::Done(Box::new(Reply::Account {
            view: protocol::api::AccountView {
                shards: None,
                id: AccountId::new("alice").unwrap(),
                currency: Currency::new("EUR").unwrap(),
                status: AccountStatus::Active,
                balance: 10,
                available: 5,
                held: 5,
                seq: 2,
            },
            created: false,
        }))),
    ]
}

fn check_cluster(bytes: &[u8]) -> (u64, u64) {
    tally(&[
        said(protocol::cluster::decode::<PeerRequest>(bytes)),
        said(protocol::cluster::decode::<PeerReply>(bytes)),
        said(protocol::cluster::decode::<PeerCast>(bytes)),
    ])
}

fn stored_corpus() -> Vec<Vec<u8>> {
    let record = AccountRecord {
        shards: None,
        currency: protocol::Currency::new("EUR").unwrap(),
        status: AccountStatus::Active,
        balance: 1_000,
        held: 10,
        seq: 3,
        opened_at: 1_700_000_000_000,
    };
    let lease = Lease {
        node: "n1".into(),
        epoch: 4,
        nonce: 99,
    };
    let mut out = vec![
        codec::encode(&record),
        codec::encode(&lease),
        codec::encode(&AccountId::new("alice").unwrap()),
        codec::encode_json(&record),
        codec::encode_json(&lease),
    ];
    let tid = TransferId::new("t_01a228f2d25e044dcc038580f96000d6").unwrap();
    let entry = Entry {
        shard: None,
        seq: 118,
        kind: EntryKind::TransferOut,
        amount: 2_500,
        balance: 1_000_413,
        available: 997_913,
        transfer_id: Some(tid.clone()),
        reference: Some("rent".into()),
        at: 1_795_983_331_900,
    };
    let sender = SagaRecord::Sender {
        transfer_id: tid.clone(),
        to: AccountId::new("bob").unwrap(),
        amount: 5,
        status: SenderStatus::Failed(protocol::ErrorCode::AccountFrozen),
        idem_key: None,
        fingerprint: None,
        reference: Some("r".into()),
        created_at: 3,
    };
    let receiver = SagaRecord::Receiver {
        transfer_id: tid.clone(),
        from: AccountId::new("alice").unwrap(),
        amount: 5,
        outcome: CreditOutcome::Rejected(protocol::ErrorCode::BalanceOverflow),
    };
    let idem = IdemRecord {
        fingerprint: "transfer:alice:bob:5".into(),
        reply: StoredReply::TransferId(tid),
    };
    out.extend([
        codec::encode(&entry),
        codec::encode(&sender),
        codec::encode(&receiver),
        codec::encode(&idem),
        codec::encode_json(&entry),
        codec::encode_json(&sender),
        codec::encode_json(&idem),
    ]);
    out
}

fn check_stored(bytes: &[u8]) -> (u64, u64) {
    tally(&[
        said(codec::decode::<AccountRecord>(bytes)),
        said(codec::decode::<Lease>(bytes)),
        said(codec::decode::<Entry>(bytes)),
        said(codec::decode::<IdemRecord>(bytes)),
        said(codec::decode::<SagaRecord>(bytes)),
        said(codec::decode::<AccountId>(bytes)),
    ])
}

#[test]
fn decoders_survive_random_and_mutated_input() {
    run(
        "HTTP bodies, paths, keys",
        CASES_QUICK,
        http_corpus(),
        check_http,
    );
    run("WebSocket frames", CASES_QUICK, ws_corpus(), check_ws);
    run(
        "node-to-node messages",
        CASES_QUICK,
        cluster_corpus(),
        check_cluster,
    );
    run("stored records", CASES_QUICK, stored_corpus(), check_stored);
}

#[test]
#[ignore = "a million cases per decoder: run with --release --ignored fuzz_"]
fn fuzz_http_bodies_paths_and_keys() {
    run(
        "HTTP bodies, paths, keys",
        CASES_FUZZ,
        http_corpus(),
        check_http,
    );
}

#[test]
#[ignore = "a million cases per decoder: run with --release --ignored fuzz_"]
fn fuzz_websocket_frames() {
    run("WebSocket frames", CASES_FUZZ, ws_corpus(), check_ws);
}

#[test]
#[ignore = "a million cases per decoder: run with --release --ignored fuzz_"]
fn fuzz_node_to_node_messages() {
    run(
        "node-to-node messages",
        CASES_FUZZ,
        cluster_corpus(),
        check_cluster,
    );
}

#[test]
#[ignore = "a million cases per decoder: run with --release --ignored fuzz_"]
fn fuzz_stored_records() {
    run("stored records", CASES_FUZZ, stored_corpus(), check_stored);
}
