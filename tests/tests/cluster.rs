//! A three-node cluster over real sockets (DESIGN.md section 4): transfers across all nodes,
//! SIGKILL of one node under load and its return, a drain of another under load, then
//! `walletctl audit` and a check that every acknowledged transfer is there. Also: a node with
//! the wrong cookie is refused and says so.

use e2e::cluster::{
    assert_audit_passes, assert_conserved, free_port, listed_transfers, node_log, owner_of,
    start_three, status, wait_members, walletctl, write_config, Load, Sent, RETRIES_MAX,
};
use e2e::{agent, open_funded, request, Walletd};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ACCOUNTS: usize = 12;
const INITIAL: u64 = 1_000_000;
const WORKERS: usize = 4;
/// Acknowledged transfers to wait for in each load phase (or the phase's time bound).
const ACKS_PER_PHASE: u64 = 120;
/// The nodes' saga settings: a short credit timeout, so that aborts happen under moves.
const SAGA_TOML: &str = "[saga]\ncredit_timeout_ms = 1000\n";

fn acct(i: usize) -> String {
    format!("cl-{i}")
}

#[test]
fn cluster_three_nodes_survive_sigkill_rejoin_and_drain_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let (configs, started) = start_three(dir.path(), "test-cookie", SAGA_TOML);
    let log = |i: usize| node_log(dir.path(), i);
    let mut nodes: Vec<Option<Walletd>> = started.into_iter().map(Some).collect();
    let url = |nodes: &Vec<Option<Walletd>>, i: usize| nodes[i].as_ref().unwrap().url.clone();

    // Accounts spread over every node; opened and funded through n1 (forwarded to owners).
    let a = agent();
    let n1 = url(&nodes, 0);
    let mut owners = BTreeSet::new();
    for i in 0..ACCOUNTS {
        open_funded(&a, &n1, &acct(i), INITIAL, &format!("fund-{i}"));
        owners.insert(owner_of(&n1, &acct(i)));
    }
    assert_eq!(owners.len(), 3, "accounts land on every node: {owners:?}");

    // One batch through n1 whose senders live on every node (the others' items are forwarded):
    // every item runs, results come back in the items' order, and a sender's two items run in
    // the order given: acct(0), which receives nothing in this batch, pays 1, then cannot pay
    // its whole initial balance (in the other order the large one would pass).
    let mut items: Vec<Value> = (0..ACCOUNTS - 1)
        .map(|i| {
            json!({"from": acct(i), "to": acct(i + 1), "amount": 1 + i as u64,
                        "idempotency_key": format!("batch-{i}")})
        })
        .collect();
    items.push(json!({"from": acct(0), "to": acct(1), "amount": INITIAL,
                      "idempotency_key": "batch-too-much"}));
    let (st, v) = request(
        &a,
        "POST",
        &format!("{n1}/v1/transfers/batch"),
        Some(&json!({"transfers": items})),
        None,
    )
    .unwrap();
    assert_eq!(st, 200, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), ACCOUNTS);
    for (i, r) in results.iter().take(ACCOUNTS - 1).enumerate() {
        assert_eq!(r["status"], "completed", "item {i}: {r}");
        assert_eq!(r["from"], items[i]["from"], "item {i} in its place: {r}");
    }
    assert_eq!(
        results[ACCOUNTS - 1]["error"]["code"],
        "insufficient_funds",
        "acct(0)'s second item ran after its first: {v}"
    );

    // A WebSocket on n1 streams every account from the start, through every move below.
    let (mut ws, _) = tungstenite::connect(format!("{}/v1/stream", n1.replace("http", "ws")))
        .expect("websocket connects");
    if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = ws.get_mut() {
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    for i in 0..ACCOUNTS {
        let sub = json!({"op": "subscribe", "account": acct(i), "from_seq": 0});
        ws.send(tungstenite::Message::text(sub.to_string()))
            .unwrap();
    }

    let load = Arc::new(Load::new((0..ACCOUNTS).map(acct).collect()));
    load.enter(
        "steady",
        &[nodes[0].as_ref().unwrap(), nodes[2].as_ref().unwrap()],
    );
    let workers = load.spawn_workers(WORKERS);
    load.wait_acks(ACKS_PER_PHASE);

    // Failover: SIGKILL n2 under load; its accounts re-activate on n1 and n3.
    load.enter(
        "failover",
        &[nodes[0].as_ref().unwrap(), nodes[2].as_ref().unwrap()],
    );
    nodes[1].take().unwrap().kill9();
    wait_members(&n1, &["n1", "n3"]);
    load.wait_acks(ACKS_PER_PHASE);

    // n2 comes back and rejoins; accounts move back to it.
    nodes[1] = Some(Walletd::start_config(&configs[1], &log(1)));
    for i in 0..3 {
        wait_members(&url(&nodes, i), &["n1", "n2", "n3"]);
    }
    load.enter(
        "rejoin",
        &[nodes[0].as_ref().unwrap(), nodes[1].as_ref().unwrap()],
    );
    load.wait_acks(ACKS_PER_PHASE);

    // Drain n3 under load (clients use n1 and n2): no client request may fail.
    load.enter(
        "drain",
        &[nodes[0].as_ref().unwrap(), nodes[1].as_ref().unwrap()],
    );
    let out = walletctl(&n1, &["drain", "n3"]);
    assert!(
        out.status.success(),
        "walletctl drain failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        nodes[2]
            .as_mut()
            .unwrap()
            .wait_exit(Duration::from_secs(30)),
        "a drained node stops by itself, with success"
    );
    wait_members(&n1, &["n1", "n2"]);
    load.enter(
        "after-drain",
        &[nodes[0].as_ref().unwrap(), nodes[1].as_ref().unwrap()],
    );
    load.wait_acks(ACKS_PER_PHASE);
    load.stop(workers);

    let sent = load.take_sent();
    for phase in ["steady", "failover", "rejoin", "drain", "after-drain"] {
        let of: Vec<&Sent> = sent.iter().filter(|s| s.phase.0 == phase).collect();
        let retried = of.iter().filter(|s| s.tries.len() > 1).count();
        eprintln!(
            "{phase}: {} transfers, {retried} retried after an unknown outcome",
            of.len()
        );
    }
    assert!(
        sent.iter().filter(|s| s.phase.0 == "drain").count() > 0,
        "load ran during the drain"
    );
    for s in &sent {
        let last = *s.tries.last().unwrap();
        // Every transfer got a definite answer (retrying unknown outcomes with the same key).
        assert!(
            matches!(last, 200 | 202 | 422),
            "{s:?}: no definite answer after {RETRIES_MAX} tries"
        );
        // Amounts are tiny against the balances: the only refusal a move could cause is an
        // abort, and the saga resends credits before it aborts.
        assert_ne!(last, 422, "{s:?}: a transfer failed");
        // Only a SIGKILL may cost a client a retry (a request in flight on the killed node has
        // an unknown outcome); a drain, like a steady cluster, fails nothing.
        let strict =
            s.phase.0 == "drain" || s.phase.1 == "drain" || s.phase == ("steady", "steady");
        if strict {
            assert!(
                s.tries.iter().all(|t| matches!(t, 200 | 202)),
                "{s:?}: a request failed while the cluster was steady or draining"
            );
        }
    }

    // The audit passes once every transfer settled.
    assert_audit_passes(&n1);

    // Every acknowledged transfer is present and completed, seen from n2 (which was killed).
    let n2 = url(&nodes, 1);
    let mut moved = 0u64;
    for s in &sent {
        let id = s.last["id"].as_str().unwrap_or_else(|| panic!("{s:?}"));
        let (st, v) = request(&a, "GET", &format!("{n2}/v1/transfers/{id}"), None, None).unwrap();
        assert_eq!(st, 200, "{s:?}: acknowledged transfer missing: {v}");
        assert_eq!(v["status"], "completed", "{s:?}: {v}");
        assert_eq!(
            (v["from"].as_str(), v["to"].as_str()),
            (Some(&*s.from), Some(&*s.to))
        );
        assert_eq!(v["amount"].as_u64(), Some(s.amount));
        moved += s.amount;
        // The same key again returns the same transfer (exactly once across nodes).
        let (st2, again) = request(
            &a,
            "POST",
            &format!("{n2}/v1/transfers"),
            Some(&json!({"from": s.from, "to": s.to, "amount": s.amount, "wait_ms": 3000})),
            Some(&s.key),
        )
        .unwrap();
        assert_eq!(st2, 200, "{s:?}: {again}");
        assert_eq!(again["id"], v["id"], "{s:?}");
    }
    assert!(moved > 0);
    // Every acknowledged transfer is in its sender's and its receiver's transfer lists,
    // whichever node wrote each side (some sides were written before n2's SIGKILL or on the
    // drained n3).
    let lists: std::collections::BTreeMap<String, BTreeSet<String>> = (0..ACCOUNTS)
        .map(|i| {
            (
                acct(i),
                listed_transfers(&n2, &acct(i)).into_iter().collect(),
            )
        })
        .collect();
    for s in &sent {
        let id = s.last["id"].as_str().unwrap();
        assert!(
            lists[&s.from].contains(id),
            "{s:?}: not in its sender's list"
        );
        assert!(
            lists[&s.to].contains(id),
            "{s:?}: not in its receiver's list"
        );
    }
    let all: Vec<String> = (0..ACCOUNTS).map(acct).collect();
    assert_conserved(&n2, &all, ACCOUNTS as u64 * INITIAL);

    // Invariant 8: each account's stream delivered every entry in order, no gap, no duplicate,
    // although its owner changed (n2 killed and back, n3 drained) and n1 owns only some.
    let mut finals = std::collections::BTreeMap::new();
    for i in 0..ACCOUNTS {
        let (_, v) = request(
            &a,
            "GET",
            &format!("{n1}/v1/accounts/{}", acct(i)),
            None,
            None,
        )
        .unwrap();
        finals.insert(acct(i), v["seq"].as_u64().unwrap());
    }
    let mut seen: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while finals
        .iter()
        .any(|(k, f)| seen.get(k).copied().unwrap_or(0) < *f)
    {
        assert!(
            Instant::now() < deadline,
            "streams stopped short: {seen:?} of {finals:?}"
        );
        let msg = ws.read().expect("stream frame");
        let Ok(text) = msg.to_text() else { continue };
        let f: Value = serde_json::from_str(text).unwrap();
        if f["type"] != "balance" {
            continue;
        }
        let account = f["account"].as_str().unwrap().to_owned();
        let seq = f["seq"].as_u64().unwrap();
        let last = seen.entry(account.clone()).or_insert(0);
        assert_eq!(seq, *last + 1, "{account}: stream gap or duplicate");
        *last = seq;
    }
    assert_eq!(seen, finals);
}

#[test]
fn cluster_node_with_wrong_cookie_is_refused_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ports = [free_port(), free_port()];
    let good = write_config(dir.path(), 0, &ports, "right-cookie", &data, SAGA_TOML);
    let bad = write_config(dir.path(), 1, &ports, "wrong-cookie", &data, SAGA_TOML);
    let (l1, l2) = (dir.path().join("n1.log"), dir.path().join("n2.log"));
    let (n1, _n2) = std::thread::scope(|s| {
        let a = s.spawn(|| Walletd::start_config(&good, &l1));
        let b = s.spawn(|| Walletd::start_config(&bad, &l2));
        (a.join().unwrap(), b.join().unwrap())
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let said = std::fs::read_to_string(&l2).unwrap();
        if said.contains("cluster.cookie must be the same on every node") {
            break;
        }
        assert!(Instant::now() < deadline, "n2 never said why: {said}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let v = status(&n1.url);
    let members: Vec<&str> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        members,
        vec!["n1"],
        "the node with the wrong cookie is not a member"
    );
}
