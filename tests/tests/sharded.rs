//! A sharded (hot) account on a three-node cluster: its shards spread over the members, and
//! with payers paying it and being paid from it through two nodes while a third is
//! SIGKILLed and restarted, every transfer settles, the account's read is its shards' sum,
//! money is conserved, and `walletctl audit` passes.

use e2e::cluster::{
    assert_audit_passes, assert_conserved, kill_and_restart, post_answered, start_three_slots,
    url_of,
};
use e2e::{agent, open_funded, request};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAYERS: usize = 4;
const INITIAL: u64 = 100_000;
const SHARDS: u64 = 8;
/// Transfers answered before the kill, and again after the restart, before payers stop.
const ANSWERED_PER_PHASE: usize = 60;
const SAGA_TOML: &str = "[saga]\ncredit_timeout_ms = 1000\n";

/// Sends transfer `key` through `urls` until a node answers definitively; returns the
/// transfer's final or pending view, or `None` when refused before it ran.
fn send(urls: &[String], key: &str, body: &Value, deadline: Instant) -> Option<Value> {
    match post_answered(urls, "/v1/transfers", key, body, deadline) {
        (200 | 202, v) => Some(v),
        (422, v) if v["transfer"]["id"].is_string() => Some(v["transfer"].clone()),
        (422, v) if v["error"]["code"] == "insufficient_funds" => None,
        (s, v) => panic!("transfer {key}: unexpected {s} {v}"),
    }
}

#[test]
fn a_sharded_account_on_three_nodes_survives_a_sigkill_and_reads_its_sum() {
    let dir = tempfile::tempdir().unwrap();
    let (configs, mut nodes) = start_three_slots(dir.path(), "test-cookie", SAGA_TOML);
    let (n1, n3) = (url_of(&nodes, 0), url_of(&nodes, 2));
    let a = agent();
    let body = json!({"id": "merchant", "currency": "EUR", "shards": SHARDS});
    let (s, v) = request(&a, "POST", &format!("{n1}/v1/accounts"), Some(&body), None).unwrap();
    assert_eq!((s, v["shards"].as_u64()), (201, Some(SHARDS)), "{v}");
    let (s, shards) = request(
        &a,
        "GET",
        &format!("{n3}/admin/accounts/merchant/shards"),
        None,
        None,
    )
    .unwrap();
    assert_eq!(s, 200, "{shards}");
    let homes: BTreeSet<&str> = shards
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["node_id"].as_str().unwrap())
        .collect();
    assert!(homes.len() >= 2, "8 shards on one node: {shards}");
    let payers: Vec<String> = (0..PAYERS).map(|i| format!("sp-{i}")).collect();
    for p in &payers {
        open_funded(&a, &n1, p, INITIAL, &format!("fund-{p}"));
    }
    let total = INITIAL * PAYERS as u64;

    // Each payer pays the merchant and is paid back by it, through n1 and n3, until told to
    // stop; refunds larger than most shards hold make the shards move money between them.
    let answered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(120);
    let workers: Vec<_> = payers
        .iter()
        .enumerate()
        .map(|(p, payer)| {
            let (answered, stop, payer) = (answered.clone(), stop.clone(), payer.clone());
            let urls = vec![n1.clone(), n3.clone()];
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for k in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let body = if k % 3 == 2 {
                        json!({"from": "merchant", "to": payer, "amount": 700, "wait_ms": 2000})
                    } else {
                        json!({"from": payer, "to": "merchant", "amount": 400 + p as u64, "wait_ms": 2000})
                    };
                    if let Some(v) = send(&urls, &format!("s-{p}-{k}"), &body, deadline) {
                        seen.push(v["id"].as_str().unwrap().to_owned());
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                }
                seen
            })
        })
        .collect();
    let wait_answered = |n: usize| {
        let since = Instant::now();
        while answered.load(Ordering::SeqCst) < n && since.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_answered(ANSWERED_PER_PHASE);
    let before_kill = answered.load(Ordering::SeqCst);
    kill_and_restart(&mut nodes, &configs, dir.path(), 1);
    let after_restart = answered.load(Ordering::SeqCst);
    wait_answered(after_restart + ANSWERED_PER_PHASE);
    stop.store(true, Ordering::SeqCst);
    let ids: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        after_restart > before_kill && ids.len() > after_restart,
        "transfers ran before ({before_kill}), across ({after_restart}) and after ({}) the kill",
        ids.len()
    );

    // Every transfer settles, shown with the account's id, never a shard's.
    let mut refunds = 0;
    for id in &ids {
        let settle_by = Instant::now() + Duration::from_secs(60);
        let t = loop {
            let (s, t) =
                request(&a, "GET", &format!("{n1}/v1/transfers/{id}"), None, None).unwrap();
            assert_eq!(s, 200, "{t}");
            if t["status"] != "pending" {
                break t;
            }
            assert!(Instant::now() < settle_by, "{id} still pending: {t}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let sides = [t["from"].as_str().unwrap(), t["to"].as_str().unwrap()];
        assert!(sides.iter().all(|s| !s.contains('~')), "{t}");
        refunds += usize::from(sides[0] == "merchant" && t["status"] == "completed");
    }
    assert!(refunds > 0, "no refund completed");

    // The account's read is its shards' sum once nothing moves, and money is conserved.
    assert_audit_passes(&n1);
    let (_, whole) = request(&a, "GET", &format!("{n3}/v1/accounts/merchant"), None, None).unwrap();
    let (_, shards) = request(
        &a,
        "GET",
        &format!("{n1}/admin/accounts/merchant/shards"),
        None,
        None,
    )
    .unwrap();
    let sum: u64 = shards
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["balance"].as_u64().unwrap())
        .sum();
    assert_eq!(whole["balance"].as_u64(), Some(sum), "{whole} {shards}");
    let mut accounts = payers.clone();
    accounts.push("merchant".into());
    assert_conserved(&n1, &accounts, total);
    eprintln!(
        "{} transfers, {refunds} refunds completed; shards on {homes:?}",
        ids.len()
    );
}
