//! Disbursements on a three-node cluster whose legs live on every node, with a node
//! SIGKILLed mid-way and restarted: every disbursement ends completed (every leg credited
//! once) or failed (none credited), never partial, and `walletctl audit` passes.

use e2e::cluster::{
    assert_audit_passes, assert_conserved, kill_and_restart, owner_of, post_answered,
    start_three_slots, url_of,
};
use e2e::{agent, open_funded, request};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PAYERS: usize = 3;
const RECEIVERS: usize = 9;
const INITIAL: u64 = 100_000;
/// Disbursements answered before the kill, and again after the restart, before senders stop.
const ANSWERED_PER_PHASE: usize = 30;
/// The nodes' saga settings: a short credit timeout, so that legs on the killed node are
/// cancelled while it is down.
const SAGA_TOML: &str = "[saga]\ncredit_timeout_ms = 1000\n";

fn payer(i: usize) -> String {
    format!("dp-{i}")
}

fn receiver(i: usize) -> String {
    format!("dr-{i}")
}

/// Sends disbursement `key` through `urls` until a node answers definitively; returns its
/// id once an answer names one.
fn send(urls: &[String], key: &str, body: &Value, deadline: Instant) -> Option<String> {
    match post_answered(urls, "/v1/disbursements", key, body, deadline) {
        (200 | 202, v) => v["id"].as_str().map(str::to_owned),
        (422, v) if v["disbursement"]["id"].is_string() => {
            v["disbursement"]["id"].as_str().map(str::to_owned)
        }
        // Refused before it ran (insufficient funds after many payouts): nothing to track.
        (422, _) => None,
        (s, v) => panic!("disbursement {key}: unexpected {s} {v}"),
    }
}

#[test]
fn disbursements_across_three_nodes_survive_a_sigkill_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let (configs, mut nodes) = start_three_slots(dir.path(), "test-cookie", SAGA_TOML);
    let (n1, n3) = (url_of(&nodes, 0), url_of(&nodes, 2));
    let a = agent();
    let mut owners = BTreeSet::new();
    let accounts: Vec<String> = (0..PAYERS)
        .map(payer)
        .chain((0..RECEIVERS).map(receiver))
        .collect();
    for (i, id) in accounts.iter().enumerate() {
        let funds = if i < PAYERS { INITIAL } else { 1 };
        open_funded(&a, &n1, id, funds, &format!("fund-{id}"));
        if i >= PAYERS {
            owners.insert(owner_of(&n1, id));
        }
    }
    assert_eq!(owners.len(), 3, "receivers live on every node: {owners:?}");
    let total = INITIAL * PAYERS as u64 + RECEIVERS as u64;

    // Each payer's thread sends disbursements of 3 legs (on different receivers each time)
    // through n1 and n3, one after the other, until told to stop; n2 is killed once some have
    // been answered, and started again while they go on.
    let ids: Arc<Mutex<BTreeMap<String, Value>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(90);
    let senders: Vec<_> = (0..PAYERS)
        .map(|p| {
            let (ids, stop) = (ids.clone(), stop.clone());
            let urls = vec![n1.clone(), n3.clone()];
            std::thread::spawn(move || {
                for k in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let legs: Vec<Value> = (0..3)
                        .map(|j| json!({"to": receiver((p + k + 3 * j) % RECEIVERS), "amount": 10 + j}))
                        .collect();
                    let body = json!({"from": payer(p), "legs": legs, "wait_ms": 2000});
                    if let Some(id) = send(&urls, &format!("d-{p}-{k}"), &body, deadline) {
                        ids.lock().unwrap().insert(id, body);
                    }
                }
            })
        })
        .collect();
    let answered = |n: usize| {
        let since = Instant::now();
        while ids.lock().unwrap().len() < n && since.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    answered(ANSWERED_PER_PHASE);
    let before_kill = ids.lock().unwrap().len();
    kill_and_restart(&mut nodes, &configs, dir.path(), 1);
    let after_restart = ids.lock().unwrap().len();
    answered(after_restart + ANSWERED_PER_PHASE);
    stop.store(true, Ordering::SeqCst);
    for s in senders {
        s.join().unwrap();
    }
    let ids = ids.lock().unwrap().clone();
    assert!(
        after_restart > before_kill && ids.len() > after_restart,
        "disbursements ran before ({before_kill}), across ({after_restart}) and after ({}) the kill",
        ids.len()
    );

    // Every disbursement settles, whole or not at all.
    let (mut completed, mut failed) = (0, 0);
    for (id, body) in &ids {
        let settle_by = Instant::now() + Duration::from_secs(60);
        let d = loop {
            let (s, d) = request(
                &a,
                "GET",
                &format!("{n1}/v1/disbursements/{id}"),
                None,
                None,
            )
            .unwrap();
            assert_eq!(s, 200, "{d}");
            if d["status"] != "pending" {
                break d;
            }
            assert!(Instant::now() < settle_by, "{id} still pending: {d}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let statuses: Vec<&str> = d["legs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["status"].as_str().unwrap())
            .collect();
        match d["status"].as_str().unwrap() {
            "completed" => {
                completed += 1;
                assert!(statuses.iter().all(|s| *s == "completed"), "{d}");
            }
            "failed" => {
                failed += 1;
                assert!(
                    statuses.iter().all(|s| *s == "cancelled" || *s == "failed"),
                    "{d}"
                );
                assert_eq!(
                    statuses.iter().filter(|s| **s == "failed").count(),
                    1,
                    "{d}"
                );
            }
            s => panic!("{id}: status {s}"),
        }
        // Each leg's receiver was credited once if completed, never if failed.
        for leg in body["legs"].as_array().unwrap() {
            let to = leg["to"].as_str().unwrap();
            let (s, page) = request(
                &a,
                "GET",
                &format!("{n1}/v1/accounts/{to}/entries?limit=1000"),
                None,
                None,
            )
            .unwrap();
            assert_eq!(s, 200);
            let credits = page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["transfer_id"] == id.as_str())
                .count();
            let want = usize::from(d["status"] == "completed");
            assert_eq!(credits, want, "{id} credits {to} {credits} times: {d}");
        }
    }
    eprintln!(
        "{} disbursements: {completed} completed, {failed} failed",
        ids.len()
    );
    assert!(completed > 0, "no disbursement completed");
    assert_audit_passes(&n1);
    assert_conserved(&n1, &accounts, total);
}
