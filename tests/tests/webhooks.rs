//! Webhooks end to end: a local receiver that fails its first deliveries, then goes down
//! while events pile up in the outbox, and the node SIGKILLed meanwhile. Every event must
//! still arrive, in `seq` order per account, each delivery signed, and a repeated delivery
//! must carry the same id and body. A second test fills a small outbox and checks that
//! requests moving money are refused until the receiver takes events again.

use e2e::{agent, request, Walletd};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_test_0123456789";
/// The webhook's id (its metrics' label).
const HOOK: &str = "test-hook";
/// Deliveries the receiver refuses (500) before it takes any.
const FAIL_FIRST: usize = 3;
/// Longest a test waits for its events.
const DELIVERY_TIME_MAX: Duration = Duration::from_secs(60);

/// One delivery as the receiver got it.
#[derive(Clone, Debug)]
struct Delivery {
    signature: String,
    body: String,
}

/// What the receiver has seen: every attempt counted, the deliveries it took, and whether it
/// is down (then it answers 500). One lock, so a test that sets `down` knows that nothing is
/// taken after.
#[derive(Default)]
struct Seen {
    attempts: usize,
    down: bool,
    taken: Vec<Delivery>,
    /// Every attempt: the event's id and the status answered.
    log: Vec<(String, u16)>,
}

/// Decides a delivery's status from the attempts before it and its body (200 takes it).
type Policy = Box<dyn Fn(usize, &str) -> u16 + Send + Sync>;

/// A webhook receiver on a loopback port: answers each delivery as its policy says (500
/// while down), and records each one it took.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Seen>>,
}

impl Receiver {
    /// Refuses the first `fail_first` deliveries (500), takes the others.
    fn start(fail_first: usize) -> Receiver {
        Receiver::with_policy(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            Box::new(move |n, _| if n < fail_first { 500 } else { 200 }),
        )
    }

    fn with_policy(listener: TcpListener, policy: Policy) -> Receiver {
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (s, policy) = (seen.clone(), Arc::new(policy));
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (s, p) = (s.clone(), policy.clone());
                std::thread::spawn(move || serve(conn, &s, &p));
            }
        });
        Receiver { url, seen }
    }

    fn taken(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap().taken.clone()
    }

    fn attempts(&self) -> usize {
        self.seen.lock().unwrap().attempts
    }

    /// Sets `down`; returns how many deliveries were taken when it changed.
    fn set_down(&self, down: bool) -> usize {
        let mut g = self.seen.lock().unwrap();
        g.down = down;
        g.taken.len()
    }
}

/// Answers one connection's requests (HTTP/1.1, kept alive) until it closes.
fn serve(conn: TcpStream, seen: &Mutex<Seen>, policy: &Policy) {
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let (mut len, mut signature) = (0usize, String::new());
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => len = value.trim().parse().unwrap(),
                "wallet-signature" => signature = value.trim().to_owned(),
                _ => {}
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8(body).unwrap();
        let status = {
            let mut g = seen.lock().unwrap();
            let status = if g.down {
                500
            } else {
                policy(g.attempts, &body)
            };
            g.attempts += 1;
            let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned();
            g.log.push((id, status));
            if status == 200 {
                g.taken.push(Delivery { signature, body });
            }
            status
        };
        let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Whether `header` signs `body` with [`SECRET`]: `t=<ms>,v1=<hex HMAC-SHA256("<t>.<body>")>`.
fn signed(header: &str, body: &str) -> bool {
    let parts: BTreeMap<&str, &str> = header
        .split(',')
        .filter_map(|p| p.split_once('='))
        .collect();
    let (Some(t), Some(v1)) = (parts.get("t"), parts.get("v1")) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    want == *v1
}

/// The `[[webhooks]]` entry of the tests: retries at most a second apart.
fn webhook_toml(url: &str) -> String {
    format!("[[webhooks]]\nid = \"{HOOK}\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\nretry_max_ms = 1000\n")
}

fn write_config(dir: &Path, url: &str, extra: &str) -> std::path::PathBuf {
    let toml = format!(
        "[node]\nid = \"n1\"\nlisten = \"127.0.0.1:0\"\n{storage}{hook}{extra}",
        storage = e2e::storage_toml(&dir.join("data")),
        hook = webhook_toml(url),
    );
    let path = dir.join("walletd.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn post(url: &str, route: &str, body: Value, key: &str) -> (u16, Value) {
    request(
        &agent(),
        "POST",
        &format!("{url}{route}"),
        Some(&body),
        Some(key),
    )
    .unwrap()
}

fn open(url: &str, id: &str) {
    let (s, v) = post(
        url,
        "/v1/accounts",
        json!({"id": id, "currency": "EUR"}),
        id,
    );
    assert!(s == 201 || s == 200, "{v}");
}

fn seq_of(url: &str, id: &str) -> u64 {
    let (s, v) = request(
        &agent(),
        "GET",
        &format!("{url}/v1/accounts/{id}"),
        None,
        None,
    )
    .unwrap();
    assert_eq!(s, 200, "{v}");
    v["seq"].as_u64().unwrap()
}

/// Deposits into each account and transfers around them; returns the ids of the transfers
/// that completed.
fn traffic(url: &str, accounts: &[&str], round: &str, transfers: usize) -> Vec<String> {
    for a in accounts {
        let (s, v) = post(
            url,
            "/v1/deposits",
            json!({"account": a, "amount": 1_000}),
            &format!("{round}-dep-{a}"),
        );
        assert_eq!(s, 201, "{v}");
    }
    let mut done = Vec::new();
    for i in 0..transfers {
        let (from, to) = (
            accounts[i % accounts.len()],
            accounts[(i + 1) % accounts.len()],
        );
        let body = json!({"from": from, "to": to, "amount": 1 + i as u64 % 7});
        let (s, v) = post(url, "/v1/transfers", body, &format!("{round}-t{i}"));
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["status"], "completed", "{v}");
        done.push(v["id"].as_str().unwrap().to_owned());
    }
    done
}

/// The ids of every event the accounts' journals and the settled transfers must have given.
fn expected_events(url: &str, accounts: &[&str], settled: &[String]) -> BTreeSet<String> {
    let mut want: BTreeSet<String> = settled
        .iter()
        .map(|t| format!("transfer.settled:{t}"))
        .collect();
    for a in accounts {
        for seq in 1..=seq_of(url, a) {
            want.insert(format!("entry:{a}:{seq}"));
        }
    }
    want
}

fn event_id(d: &Delivery) -> String {
    serde_json::from_str::<Value>(&d.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until the receiver took every event of `want`; returns what it took, in order.
fn wait_for_all(receiver: &Receiver, want: &BTreeSet<String>, log: &Path) -> Vec<Delivery> {
    let deadline = Instant::now() + DELIVERY_TIME_MAX;
    loop {
        let taken = receiver.taken();
        let ids: BTreeSet<String> = taken.iter().map(event_id).collect();
        let missing: Vec<&String> = want.difference(&ids).collect();
        if missing.is_empty() {
            return taken;
        }
        assert!(
            Instant::now() < deadline,
            "{} events never arrived, for example {:?}; log: {}",
            missing.len(),
            &missing[..missing.len().min(5)],
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asserts that every delivery is signed and has the API's fields, that a repeated id carries
/// the same body, and that each account's events came in `seq` order, entries without a gap;
/// returns the number of distinct events and of repeated deliveries.
fn assert_ordered_and_signed(taken: &[Delivery], accounts: &[&str]) -> (usize, usize) {
    let mut bodies: BTreeMap<String, String> = BTreeMap::new();
    let mut last: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut repeats = 0;
    for d in taken {
        assert!(
            signed(&d.signature, &d.body),
            "bad signature {:?} on {}",
            d.signature,
            d.body
        );
        let v: Value = serde_json::from_str(&d.body).unwrap();
        let id = v["id"].as_str().unwrap().to_owned();
        for field in ["id", "type", "account", "seq", "at", "data"] {
            assert!(v.get(field).is_some(), "{field} missing in {v}");
        }
        if let Some(first) = bodies.get(&id) {
            assert_eq!(first, &d.body, "a repeated delivery of {id} changed");
            repeats += 1;
            continue;
        }
        bodies.insert(id.clone(), d.body.clone());
        let account = v["account"].as_str().unwrap().to_owned();
        let seq = v["seq"].as_u64().unwrap();
        if let Some((prev_seq, prev_id)) = last.get(&account) {
            assert!(
                seq >= *prev_seq,
                "{account}: {id} (seq {seq}) arrived after {prev_id} (seq {prev_seq})"
            );
        }
        if v["type"] == "entry" {
            assert_eq!(v["data"]["entry"]["seq"], seq, "{v}");
        }
        last.insert(account, (seq, id));
    }
    // Entries of one account arrive without a gap: each new one is the next seq.
    for a in accounts {
        let seqs: Vec<u64> = taken
            .iter()
            .map(|d| serde_json::from_str::<Value>(&d.body).unwrap())
            .filter(|v| v["account"] == *a && v["type"] == "entry")
            .map(|v| v["seq"].as_u64().unwrap())
            .collect();
        let mut next = 1;
        for s in seqs {
            assert!(s <= next, "{a}: entry {s} arrived before entry {next}");
            next = next.max(s + 1);
        }
    }
    (bodies.len(), repeats)
}

#[test]
fn every_event_arrives_in_order_signed_across_failures_and_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(FAIL_FIRST);
    let config = write_config(dir.path(), &receiver.url, "");
    let log = dir.path().join("walletd.log");
    let node = Walletd::start_config(&config, &log);
    let accounts = ["wh-a", "wh-b", "wh-c"];
    for a in accounts {
        open(&node.url, a);
    }
    let mut settled = traffic(&node.url, &accounts, "r1", 12);

    // The receiver goes down; events pile up; the node dies with them outstanding.
    let before_kill = receiver.set_down(true);
    settled.extend(traffic(&node.url, &accounts, "r2", 12));
    let written: u64 = accounts.iter().map(|a| seq_of(&node.url, a)).sum();
    // The publisher meets the refusals (and backs off) before the node dies.
    let attempts = receiver.attempts();
    let deadline = Instant::now() + DELIVERY_TIME_MAX;
    while receiver.attempts() < attempts + 2 {
        assert!(
            Instant::now() < deadline,
            "no delivery attempted while down"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    node.kill9();
    let outstanding_at_kill = receiver.taken().len();
    assert_eq!(
        before_kill, outstanding_at_kill,
        "nothing is taken while the receiver is down"
    );
    assert!(
        (outstanding_at_kill as u64) < written,
        "events were outstanding when the node was killed ({outstanding_at_kill} of {written} entries taken)"
    );

    let node = Walletd::start_config(&config, &log);
    receiver.set_down(false);
    settled.extend(traffic(&node.url, &accounts, "r3", 6));

    let want = expected_events(&node.url, &accounts, &settled);
    let taken = wait_for_all(&receiver, &want, &log);
    assert!(
        receiver.attempts() >= FAIL_FIRST + taken.len(),
        "the refused deliveries were retried"
    );
    let (distinct, repeats) = assert_ordered_and_signed(&taken, &accounts);
    // The node's counts: what this process delivered, and an empty outbox.
    let hook_metric =
        |name: &str| e2e::cluster::metric(&node.url, &format!("{name}{{webhook=\"{HOOK}\"}}"));
    let deadline = Instant::now() + DELIVERY_TIME_MAX;
    while hook_metric("wallet_webhook_outbox_events") != 0 {
        assert!(
            Instant::now() < deadline,
            "the outbox gauge never fell to 0"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(hook_metric("wallet_webhook_deliveries_total") > 0);
    eprintln!(
        "{distinct} events, {} deliveries taken ({repeats} repeated), {} attempts",
        taken.len(),
        receiver.attempts()
    );
}

#[test]
fn a_full_outbox_refuses_money_movements_until_the_receiver_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0);
    receiver.set_down(true);
    let config = write_config(
        dir.path(),
        &receiver.url,
        "[limits]\nwebhook_outbox_max = 5\n",
    );
    let log = dir.path().join("walletd.log");
    let node = Walletd::start_config(&config, &log);
    open(&node.url, "full-a");
    let deposit = |i: usize| {
        post(
            &node.url,
            "/v1/deposits",
            json!({"account": "full-a", "amount": 1}),
            &format!("d{i}"),
        )
    };
    // Each deposit is one event; once the publisher has counted 5 waiting, deposits are
    // refused with `overloaded`, nothing applied.
    let deadline = Instant::now() + DELIVERY_TIME_MAX;
    let mut i = 0;
    let refused = loop {
        let (s, v) = deposit(i);
        if s == 503 {
            break v;
        }
        assert_eq!(s, 201, "{v}");
        i += 1;
        assert!(Instant::now() < deadline, "never refused");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(refused["error"]["code"], "overloaded", "{refused}");
    let waiting = e2e::cluster::metric(
        &node.url,
        &format!("wallet_webhook_outbox_events{{webhook=\"{HOOK}\"}}"),
    );
    assert!(waiting >= 5, "{waiting} events waiting");
    let failures = e2e::cluster::metric(
        &node.url,
        &format!("wallet_webhook_failures_total{{webhook=\"{HOOK}\"}}"),
    );
    assert!(failures >= 1, "{failures} failures counted");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("webhook"),
        "{refused}"
    );
    assert!(i >= 5, "refused after {i} events");
    assert_eq!(
        seq_of(&node.url, "full-a"),
        i as u64,
        "the refused deposit did not apply"
    );
    // Freezing moves no money: admitted. Reads still work.
    for route in ["freeze", "unfreeze"] {
        let (s, v) = post(
            &node.url,
            &format!("/v1/accounts/full-a/{route}"),
            json!({}),
            route,
        );
        assert_eq!(s, 200, "{route}: {v}");
    }
    let (s, _) = request(
        &agent(),
        "GET",
        &format!("{}/v1/accounts/full-a", node.url),
        None,
        None,
    )
    .unwrap();
    assert_eq!(s, 200);

    // The receiver recovers: the outbox drains and the same deposit (same key) is admitted.
    receiver.set_down(false);
    let deadline = Instant::now() + DELIVERY_TIME_MAX;
    loop {
        let (s, v) = deposit(i);
        if s == 201 {
            break;
        }
        assert_eq!(s, 503, "{v}");
        assert!(Instant::now() < deadline, "still refused: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(seq_of(&node.url, "full-a"), i as u64 + 1);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("the webhook outbox is full"), "{log}");
    assert!(log.contains("a webhook receiver is failing"), "{log}");
}

#[test]
fn three_nodes_each_deliver_the_events_of_the_accounts_they_own() {
    use e2e::cluster::{kill_and_restart, owner_of, post_answered, start_three_slots, url_of};
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0);
    let extra = webhook_toml(&receiver.url);
    let (configs, mut nodes) = start_three_slots(dir.path(), "webhook-cookie", &extra);
    let names: Vec<String> = (0..9).map(|i| format!("c-{i}")).collect();
    let accounts: Vec<&str> = names.iter().map(String::as_str).collect();
    let n1 = url_of(&nodes, 0);
    for a in &accounts {
        open(&n1, a);
    }
    let owners: BTreeSet<String> = accounts.iter().map(|a| owner_of(&n1, a)).collect();
    assert!(owners.len() >= 2, "the accounts all sit on {owners:?}");
    // Through n1 and n3 (n2 is killed meanwhile): deposits, then transfers around the ring.
    let urls = [url_of(&nodes, 0), url_of(&nodes, 2)];
    let mut settled = Vec::new();
    let round = |tag: &str, settled: &mut Vec<String>| {
        let deadline = Instant::now() + DELIVERY_TIME_MAX;
        for a in &accounts {
            let body = json!({"account": a, "amount": 500});
            let (s, v) = post_answered(
                &urls,
                "/v1/deposits",
                &format!("{tag}-d-{a}"),
                &body,
                deadline,
            );
            assert_eq!(s, 201, "{v}");
        }
        for i in 0..accounts.len() {
            let (from, to) = (accounts[i], accounts[(i + 1) % accounts.len()]);
            let body = json!({"from": from, "to": to, "amount": 3});
            let (s, v) = post_answered(
                &urls,
                "/v1/transfers",
                &format!("{tag}-t-{i}"),
                &body,
                deadline,
            );
            assert!(s == 200 || s == 202, "{v}");
            settled.push(v["id"].as_str().unwrap().to_owned());
        }
    };
    round("a", &mut settled);
    receiver.set_down(true);
    round("b", &mut settled);
    kill_and_restart(&mut nodes, &configs, dir.path(), 1);
    receiver.set_down(false);
    round("c", &mut settled);

    // Every transfer settles (a pending one is finished by its sender), then every event of
    // every account arrives, whichever node owns it.
    let deadline = Instant::now() + DELIVERY_TIME_MAX;
    for t in &settled {
        loop {
            let (s, v) = request(
                &agent(),
                "GET",
                &format!("{n1}/v1/transfers/{t}"),
                None,
                None,
            )
            .unwrap();
            assert_eq!(s, 200, "{v}");
            if v["status"] == "completed" {
                break;
            }
            assert!(Instant::now() < deadline, "{t} never completed: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let want = expected_events(&n1, &accounts, &settled);
    let taken = wait_for_all(&receiver, &want, &dir.path().join("n1.log"));
    let (distinct, repeats) = assert_ordered_and_signed(&taken, &accounts);
    let delivering: Vec<u64> = (0..3)
        .map(|i| {
            e2e::cluster::metric(
                &url_of(&nodes, i),
                &format!("wallet_webhook_deliveries_total{{webhook=\"{HOOK}\"}}"),
            )
        })
        .collect();
    assert!(
        delivering.iter().filter(|n| **n > 0).count() >= 2,
        "deliveries per node: {delivering:?}"
    );
    eprintln!("{distinct} events, {repeats} repeated; deliveries per node {delivering:?}");
}

#[test]
fn an_unreachable_receiver_and_a_refused_event_hold_back_only_what_they_must() {
    // A port with nothing listening: every delivery is refused a connection.
    let parked = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = parked.local_addr().unwrap();
    drop(parked);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/events");
    let config = write_config(dir.path(), &url, "");
    let log = dir.path().join("walletd.log");
    let node = Walletd::start_config(&config, &log);
    let accounts = ["u-hot", "u-a", "u-b"];
    for a in accounts {
        open(&node.url, a);
    }
    // More events of one account than the publisher reads in a page (256).
    for i in 0..300 {
        let body = json!({"account": "u-hot", "amount": 1});
        let (s, v) = post(&node.url, "/v1/deposits", body, &format!("hot-{i}"));
        assert_eq!(s, 201, "{v}");
    }
    for a in ["u-a", "u-b"] {
        for i in 0..5 {
            let (s, v) = post(
                &node.url,
                "/v1/deposits",
                json!({"account": a, "amount": 1}),
                &format!("{a}-{i}"),
            );
            assert_eq!(s, 201, "{v}");
        }
    }
    // The receiver starts listening; it refuses one event of u-a three times (400).
    let refused = "entry:u-a:2";
    let refusals = Arc::new(Mutex::new(0));
    let r = refusals.clone();
    let receiver = Receiver::with_policy(
        TcpListener::bind(addr).unwrap(),
        Box::new(move |_, body| {
            let mut n = r.lock().unwrap();
            if body.contains(&format!("\"id\":\"{refused}\"")) && *n < 3 {
                *n += 1;
                400
            } else {
                200
            }
        }),
    );
    let want = expected_events(&node.url, &accounts, &[]);
    let taken = wait_for_all(&receiver, &want, &log);
    let (distinct, _) = assert_ordered_and_signed(&taken, &accounts);
    assert_eq!(distinct, want.len());
    // u-a waited alone: between its event's first refusal and its delivery, other accounts'
    // events were taken, and none of u-a's later ones.
    let attempts = receiver.seen.lock().unwrap().log.clone();
    let first_refusal = attempts
        .iter()
        .position(|(id, s)| id == refused && *s == 400)
        .unwrap();
    let delivered = attempts
        .iter()
        .position(|(id, s)| id == refused && *s == 200)
        .unwrap();
    let between = &attempts[first_refusal..delivered];
    assert!(
        between
            .iter()
            .any(|(id, s)| *s == 200 && !id.starts_with("entry:u-a:")),
        "nothing else was delivered while u-a waited: {between:?}"
    );
    assert!(
        !between
            .iter()
            .any(|(id, _)| id.starts_with("entry:u-a:") && id != refused),
        "u-a's later events went before its refused one: {between:?}"
    );
    assert_eq!(*refusals.lock().unwrap(), 3);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("a webhook receiver is failing"), "{log}");
    assert!(
        log.contains("a webhook receiver takes events again"),
        "{log}"
    );
}
