//! A hung member: three nodes under transfer load, one stopped with `SIGSTOP` (its process
//! frozen, its sockets open). Its peers drop it after `cluster.failure_timeout_ms` (default
//! 3000), its accounts are served by the others within 5 s and transfers into them complete;
//! after `SIGCONT` it finds it was stopped, passivates what it held, rejoins, and the cluster
//! converges: every acknowledged transfer is there, money is conserved and the audit passes.
//!
//! The stopped node is quiet when it is stopped: the load moves money between the other
//! nodes' accounts, and the last writes of its own accounts were acknowledged before. The
//! embedded store is one file shared by the nodes of one machine, with one writer at a time: a
//! process frozen inside its write transaction would hold the whole store until it resumes
//! (README, "Running it safely"). A node on FoundationDB holds nothing while it is frozen.

use e2e::cluster::{
    assert_audit_passes, assert_conserved, metric, owner_of, ring_members, start_three, status,
    wait_members, Load,
};
use e2e::{agent, open_funded, request};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ACCOUNTS: usize = 12;
const INITIAL: u64 = 1_000_000;
const WORKERS: usize = 3;
/// Acknowledged transfers to wait for in each load phase.
const ACKS_PER_PHASE: u64 = 60;
/// How soon the accounts of a stopped member must be served by the others.
const SERVED_WITHIN: Duration = Duration::from_secs(5);

fn acct(i: usize) -> String {
    format!("hg-{i}")
}

/// Sends one keyed transfer through `url` until it has a definite answer (an unknown outcome
/// is retried with the same key); returns its status and body.
fn transfer(url: &str, from: &str, to: &str, amount: u64, key: &str) -> (u16, Value) {
    let a = agent();
    let body = json!({"from": from, "to": to, "amount": amount, "wait_ms": 5000});
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match request(
            &a,
            "POST",
            &format!("{url}/v1/transfers"),
            Some(&body),
            Some(key),
        ) {
            Ok((s, v)) if s != 503 => return (s, v),
            other => assert!(
                Instant::now() < deadline,
                "{from} -> {to} through {url}: still no definite answer: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hang_sigstopped_member_is_dropped_its_accounts_move_and_it_rejoins_after_sigcont() {
    let dir = tempfile::tempdir().unwrap();
    let (_, nodes) = start_three(dir.path(), "hang-cookie", "");
    let (n1, n2, n3) = (&nodes[0].url, &nodes[1].url, &nodes[2].url);

    // Accounts on every node; n3's are the ones that will have to move.
    let a = agent();
    let mut owner = BTreeMap::new();
    for i in 0..ACCOUNTS {
        open_funded(&a, n1, &acct(i), INITIAL, &format!("fund-{i}"));
        owner.insert(acct(i), owner_of(n1, &acct(i)));
    }
    let (victims, others): (Vec<String>, Vec<String>) =
        (0..ACCOUNTS).map(acct).partition(|id| owner[id] == "n3");
    assert!(
        !victims.is_empty() && others.len() >= 2,
        "accounts on n3 and on the others: {owner:?}"
    );

    // Money into each of n3's accounts, so that they are active there when it stops (the
    // others will have to fence those activations). Acknowledged: n3 wrote, then went quiet.
    for (k, v) in victims.iter().enumerate() {
        let (s, t) = transfer(n1, &others[k % others.len()], v, 10, &format!("warm-{k}"));
        assert_eq!((s, &t["status"]), (200, &json!("completed")), "{t}");
    }

    // Load between the other nodes' accounts, through n1 and n2.
    let load = Arc::new(Load::new(others.clone()));
    load.enter("steady", &[&nodes[0], &nodes[1]]);
    let workers = load.spawn_workers(WORKERS);
    load.wait_acks(ACKS_PER_PHASE);
    // A busy cluster does not drop its members (heartbeats do not wait behind ledger work).
    for url in [n1, n2, n3] {
        assert_eq!(
            metric(url, "wallet_peers_dropped_total"),
            0,
            "{url} dropped a member under load"
        );
    }

    // SIGSTOP n3: its sockets stay open, it answers nothing.
    load.enter("stopped", &[&nodes[0], &nodes[1]]);
    nodes[2].signal("STOP");
    let stopped = Instant::now();

    // Its accounts are served by the others within 5 s.
    for v in &victims {
        loop {
            let (s, body) = request(&a, "GET", &format!("{n1}/v1/accounts/{v}"), None, None)
                .unwrap_or((0, Value::Null));
            if s == 200 {
                break;
            }
            assert!(
                stopped.elapsed() < SERVED_WITHIN,
                "{v} not served {:?} after n3 stopped: {s} {body}",
                stopped.elapsed()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let served = stopped.elapsed();
    assert!(served < SERVED_WITHIN, "served after {served:?}");
    eprintln!("n3's accounts served by the others {served:?} after SIGSTOP");
    assert_eq!(ring_members(n1), ["n1", "n2"].map(String::from).into());
    let n3_seen = status(n1)["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["node_id"] == "n3")
        .cloned()
        .expect("n1 still knows n3");
    assert_eq!(n3_seen["dropped"], true, "{n3_seen}");

    // Transfers into and out of its accounts complete, through either live node.
    for (k, v) in victims.iter().enumerate() {
        let (s, t) = transfer(n2, &others[k % others.len()], v, 7, &format!("into-{k}"));
        assert_eq!((s, &t["status"]), (200, &json!("completed")), "{t}");
        let (s, t) = transfer(
            n1,
            v,
            &others[(k + 1) % others.len()],
            3,
            &format!("out-{k}"),
        );
        assert_eq!((s, &t["status"]), (200, &json!("completed")), "{t}");
    }
    load.wait_acks(ACKS_PER_PHASE);

    // SIGCONT: n3 finds it was stopped, passivates, rejoins; every node sees all three again.
    nodes[2].signal("CONT");
    for n in &nodes {
        wait_members(&n.url, &["n1", "n2", "n3"]);
    }
    assert!(metric(n3, "wallet_rejoins_total") >= 1, "n3 rejoined");
    assert!(
        metric(n1, "wallet_peers_dropped_total") >= 1,
        "n1 dropped n3"
    );
    // Load over every account through every node: n3's accounts are back on n3.
    load.use_accounts((0..ACCOUNTS).map(acct).collect());
    load.enter("rejoined", &[&nodes[0], &nodes[1], &nodes[2]]);
    load.wait_acks(ACKS_PER_PHASE);
    load.stop(workers);

    let sent = load.take_sent();
    for phase in ["steady", "stopped", "rejoined"] {
        let n = sent.iter().filter(|s| s.phase.0 == phase).count();
        assert!(n > 0, "load ran in phase {phase}");
        eprintln!("{phase}: {n} transfers");
    }
    for s in &sent {
        // A definite answer, and never a failure (the audit wait below settles a 202).
        let last = *s.tries.last().unwrap();
        assert!(matches!(last, 200 | 202), "{s:?}: no definite success");
        // Moving money between the live nodes' accounts never noticed n3 stop.
        if s.phase == ("steady", "steady") || s.phase == ("stopped", "stopped") {
            assert_eq!(s.tries, vec![200], "{s:?}: retried while n3 was stopped");
        }
    }

    assert_audit_passes(n1);
    // Every acknowledged transfer is present, seen from n3; money is conserved.
    for s in &sent {
        let id = s.last["id"].as_str().unwrap();
        let (st, v) = request(&a, "GET", &format!("{n3}/v1/transfers/{id}"), None, None).unwrap();
        assert_eq!((st, &v["status"]), (200, &json!("completed")), "{s:?}: {v}");
    }
    let all: Vec<String> = (0..ACCOUNTS).map(acct).collect();
    assert_conserved(n3, &all, ACCOUNTS as u64 * INITIAL);
}
