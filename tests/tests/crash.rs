//! Durability under SIGKILL: acknowledged means durable (DESIGN.md invariant 7), retries after
//! a crash apply once (invariant 4), and every pending transfer finishes (invariant 3).

use e2e::{agent, open_funded, request, Walletd};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ACCOUNTS: usize = 12;
const INITIAL: u64 = 1_000_000;
const WORKERS: usize = 6;
/// The node is killed once this many commands were acknowledged (or the time bound passes).
const ACKS_BEFORE_KILL: usize = 300;
const LOAD_TIME_MAX: Duration = Duration::from_secs(20);

#[derive(Clone, Debug)]
enum Op {
    Deposit {
        account: String,
        amount: u64,
    },
    Transfer {
        from: String,
        to: String,
        amount: u64,
    },
}

impl Op {
    fn route(&self) -> &'static str {
        match self {
            Op::Deposit { .. } => "/v1/deposits",
            Op::Transfer { .. } => "/v1/transfers",
        }
    }
    fn body(&self) -> Value {
        match self {
            Op::Deposit { account, amount } => json!({"account": account, "amount": amount}),
            Op::Transfer { from, to, amount } => {
                json!({"from": from, "to": to, "amount": amount, "wait_ms": 2000})
            }
        }
    }
}

/// What a worker learned of one command.
#[derive(Debug)]
struct Sent {
    key: String,
    op: Op,
    /// The answer, or None when the connection failed (outcome unknown).
    answer: Option<(u16, Value)>,
}

fn acct(i: usize) -> String {
    format!("crash-{i}")
}

#[test]
fn crash_sigkill_mid_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Walletd::start(&data);
    let a = agent();
    for i in 0..ACCOUNTS {
        open_funded(&a, &node.url, &acct(i), INITIAL, &format!("init-{i}"));
    }

    // Concurrent load until enough acknowledgements, then SIGKILL.
    let sent = Arc::new(Mutex::new(Vec::<Sent>::new()));
    let acks = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (sent, acks, stop, url) = (sent.clone(), acks.clone(), stop.clone(), node.url.clone());
        workers.push(std::thread::spawn(move || {
            let a = agent();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let x = (w as u64) * 7919 + n * 104_729;
                let op = if n.is_multiple_of(3) {
                    Op::Deposit {
                        account: acct((x % ACCOUNTS as u64) as usize),
                        amount: 1 + x % 50,
                    }
                } else {
                    let from = (x % ACCOUNTS as u64) as usize;
                    let to = (from + 1 + (x / 7 % (ACCOUNTS as u64 - 1)) as usize) % ACCOUNTS;
                    Op::Transfer {
                        from: acct(from),
                        to: acct(to),
                        amount: 1 + x % 100,
                    }
                };
                let key = format!("w{w}-{n}");
                let answer = request(
                    &a,
                    "POST",
                    &format!("{url}{}", op.route()),
                    Some(&op.body()),
                    Some(&key),
                )
                .ok();
                let failed = answer.is_none();
                if answer.as_ref().is_some_and(|(s, _)| *s < 300) {
                    acks.fetch_add(1, Ordering::Relaxed);
                }
                sent.lock().unwrap().push(Sent { key, op, answer });
                if failed {
                    return; // the node is gone
                }
            }
        }));
    }
    let started = Instant::now();
    while acks.load(Ordering::Relaxed) < ACKS_BEFORE_KILL && started.elapsed() < LOAD_TIME_MAX {
        std::thread::sleep(Duration::from_millis(5));
    }
    node.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let sent = Arc::try_unwrap(sent).unwrap().into_inner().unwrap();
    assert!(
        acks.load(Ordering::Relaxed) >= 50,
        "too little load before the kill to prove anything"
    );

    // Restart on the same data.
    let node = Walletd::start(&data);
    let a = agent();

    // Every acknowledged command is there; every unknown one, retried with its key, resolves
    // to a definitive answer.
    let mut acknowledged_deposits: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    let mut transfer_ids = BTreeSet::new();
    let mut deposit_keys = 0usize;
    for s in &sent {
        let answer = match &s.answer {
            Some((status, body)) if *status < 500 => (*status, body.clone()),
            _ => {
                let (status, body) = request(
                    &a,
                    "POST",
                    &format!("{}{}", node.url, s.op.route()),
                    Some(&s.op.body()),
                    Some(&s.key),
                )
                .expect("restarted node answers");
                assert!(
                    status < 500,
                    "retry of {} after restart: {status} {body}",
                    s.key
                );
                (status, body)
            }
        };
        match &s.op {
            Op::Deposit { account, amount } => {
                assert_eq!(answer.0, 201, "{answer:?}");
                deposit_keys += 1;
                acknowledged_deposits
                    .entry(account.clone())
                    .or_default()
                    .push((answer.1["seq"].as_u64().unwrap(), *amount));
            }
            Op::Transfer { .. } => {
                if let Some(id) = answer.1["id"]
                    .as_str()
                    .or(answer.1["transfer"]["id"].as_str())
                {
                    transfer_ids.insert(id.to_owned());
                } else {
                    // Refused before any effect (e.g. insufficient funds): nothing to find.
                    assert_eq!(answer.0, 422, "{answer:?}");
                }
            }
        }
    }

    // Every pending transfer finishes after the restart.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, p) = request(
            &a,
            "GET",
            &format!("{}/admin/pending?limit=1000", node.url),
            None,
            None,
        )
        .unwrap();
        if p["transfers"].as_array().is_some_and(|t| t.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "transfers still pending after restart: {p}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for id in &transfer_ids {
        let (s, t) = request(
            &a,
            "GET",
            &format!("{}/v1/transfers/{id}", node.url),
            None,
            None,
        )
        .unwrap();
        assert_eq!(s, 200, "acknowledged transfer {id} lost: {t}");
        assert!(t["status"] == "completed" || t["status"] == "failed", "{t}");
    }

    // Journals: acknowledged deposits at their seq, deposits applied exactly once per key,
    // conservation of money, and replay equal to the stored state.
    let mut total_balance = 0u64;
    let mut total_deposited = 0u64;
    let mut deposit_entries = 0usize;
    let mut transfer_in = BTreeMap::<String, u64>::new();
    let mut transfer_out = BTreeMap::<String, u64>::new();
    for i in 0..ACCOUNTS {
        let id = acct(i);
        let (_, state) = request(
            &a,
            "GET",
            &format!("{}/v1/accounts/{id}", node.url),
            None,
            None,
        )
        .unwrap();
        let mut entries: BTreeMap<u64, Value> = BTreeMap::new();
        let mut after = 0;
        loop {
            let (s, page) = request(
                &a,
                "GET",
                &format!(
                    "{}/v1/accounts/{id}/entries?after_seq={after}&limit=1000",
                    node.url
                ),
                None,
                None,
            )
            .unwrap();
            assert_eq!(s, 200);
            for e in page["entries"].as_array().unwrap() {
                entries.insert(e["seq"].as_u64().unwrap(), e.clone());
            }
            match page["next_after_seq"].as_u64() {
                Some(n) => after = n,
                None => break,
            }
        }
        let (mut balance, mut held) = (0u64, 0u64);
        for (expect_seq, (seq, e)) in (1u64..).zip(&entries) {
            assert_eq!(*seq, expect_seq, "{id}: journal gap");
            let amount = e["amount"].as_u64().unwrap();
            match e["kind"].as_str().unwrap() {
                "deposit" => {
                    balance += amount;
                    total_deposited += amount;
                    deposit_entries += 1;
                }
                "hold" => held += amount,
                "release" => held -= amount,
                "transfer_out" => {
                    balance -= amount;
                    held -= amount;
                    *transfer_out
                        .entry(e["transfer_id"].as_str().unwrap().to_owned())
                        .or_default() += amount;
                }
                "transfer_in" => {
                    balance += amount;
                    *transfer_in
                        .entry(e["transfer_id"].as_str().unwrap().to_owned())
                        .or_default() += amount;
                }
                k => panic!("unexpected entry kind {k}"),
            }
            assert_eq!(
                (e["balance"].as_u64(), e["available"].as_u64()),
                (Some(balance), Some(balance - held)),
                "{id} seq {seq}"
            );
        }
        assert_eq!(
            (
                state["balance"].as_u64(),
                state["held"].as_u64(),
                state["seq"].as_u64()
            ),
            (Some(balance), Some(0), Some(entries.len() as u64)),
            "{id}: replay != state"
        );
        for (seq, amount) in acknowledged_deposits.get(&id).into_iter().flatten() {
            let e = &entries[seq];
            assert_eq!(
                (e["kind"].as_str(), e["amount"].as_u64()),
                (Some("deposit"), Some(*amount)),
                "{id}: acknowledged deposit at seq {seq} lost"
            );
        }
        total_balance += balance;
    }
    assert_eq!(
        deposit_entries,
        ACCOUNTS + deposit_keys,
        "a deposit applied twice or lost"
    );
    assert_eq!(total_balance, total_deposited, "conservation of money");
    assert_eq!(
        transfer_in, transfer_out,
        "every transfer credited once and debited once"
    );

    // The ops CLI's audit agrees.
    let out = std::process::Command::new(e2e::binary("walletctl"))
        .args(["--node", &node.url, "audit", "--wait-secs", "30"])
        .output()
        .expect("walletctl runs");
    assert!(
        out.status.success(),
        "walletctl audit failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // So does the node's own audit, which reads the embedded store directly.
    let (s, report) = request(
        &agent(),
        "GET",
        &format!("{}/admin/audit?wait_secs=10", node.url),
        None,
        None,
    )
    .expect("the node answers the audit");
    assert_eq!(
        (s, report["ok"].as_bool(), report["accounts"].as_u64()),
        (200, Some(true), Some(ACCOUNTS as u64)),
        "GET /admin/audit: {report}"
    );

    // A graceful stop exits cleanly.
    assert!(node.terminate(), "walletd did not exit cleanly on SIGTERM");
}
