//! Helpers of the multi-node tests: configs of nodes that know each other, waiting for the
//! members a node sees, and a load of keyed transfers that retries unknown outcomes.

use crate::{agent, binary, request, Walletd};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a node may take to see the members a test waits for.
pub const MEMBERS_WAIT: Duration = Duration::from_secs(30);

/// The first port [`free_port`] hands out; below it, ports other services may use.
const TEST_PORTS_FROM: u16 = 20_000;
/// The kernel's ephemeral range (Linux's default) begins here: outgoing connections take
/// their source ports from it, so [`free_port`] stays below.
const EPHEMERAL_PORTS_FROM: u16 = 32_768;

/// A port free on 127.0.0.1 now, for a node to bind later (its cluster address, which its
/// peers' configs name before it starts). Not from the ephemeral range: a port `bind(0)`
/// picked there can be taken, before the node binds it, as the source port of one of the
/// connections the starting nodes open to each other, and the node then fails to start (the
/// likely cause of a three-node test's node exiting at start, once in about fifteen runs;
/// its log was gone, so the cause is inferred). Never the same twice in one process, and
/// each process starts at its own offset.
pub fn free_port() -> u16 {
    static HANDED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let span = EPHEMERAL_PORTS_FROM - TEST_PORTS_FROM;
    let start = (std::process::id() % u32::from(span)) as u16;
    let mut handed = HANDED.lock().unwrap();
    for i in 0..span {
        let port = TEST_PORTS_FROM + (start + i) % span;
        if !handed.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed.insert(port);
            return port;
        }
    }
    panic!("no free port from {TEST_PORTS_FROM} to {EPHEMERAL_PORTS_FROM}")
}

/// Writes node `i`'s config (of `ports.len()` nodes sharing `data`, node-to-node on `ports`)
/// with `extra` TOML appended, and returns its path.
pub fn write_config(
    dir: &Path,
    i: usize,
    ports: &[u16],
    cookie: &str,
    data: &Path,
    extra: &str,
) -> PathBuf {
    let peers: Vec<String> = ports
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, p)| format!("\"127.0.0.1:{p}\""))
        .collect();
    let toml = format!(
        "[node]\nid = \"n{n}\"\nlisten = \"127.0.0.1:0\"\ncluster_listen = \"127.0.0.1:{port}\"\n\
         [cluster]\ncookie = \"{cookie}\"\npeers = [{peers}]\n\
         {storage}\
         {extra}",
        n = i + 1,
        port = ports[i],
        peers = peers.join(", "),
        storage = crate::storage_toml(data),
    );
    let path = dir.join(format!("n{}.toml", i + 1));
    std::fs::write(&path, toml).unwrap();
    path
}

/// `GET /admin/status` of the node at `url`.
pub fn status(url: &str) -> Value {
    let (s, v) = request(&agent(), "GET", &format!("{url}/admin/status"), None, None).unwrap();
    assert_eq!(s, 200, "{v}");
    v
}

/// The members `url` sees in its ring: neither leaving nor dropped for silence.
pub fn ring_members(url: &str) -> BTreeSet<String> {
    status(url)["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            !m["leaving"].as_bool().unwrap_or(false) && !m["dropped"].as_bool().unwrap_or(false)
        })
        .map(|m| m["node_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until `url` sees exactly `ids` as its ring members.
pub fn wait_members(url: &str, ids: &[&str]) {
    let want: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
    let deadline = Instant::now() + MEMBERS_WAIT;
    loop {
        let got = ring_members(url);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} sees {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `walletctl --node URL ARGS...` and returns its output.
pub fn walletctl(url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(binary("walletctl"))
        .args(["--node", url])
        .args(args)
        .output()
        .expect("walletctl runs")
}

/// The value of the counter `name` in the node's `/metrics` (0 when absent).
pub fn metric(url: &str, name: &str) -> u64 {
    let mut resp = agent()
        .get(&format!("{url}/metrics"))
        .call()
        .expect("metrics answer");
    let text = resp.body_mut().read_to_string().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// Times a load client retries a transfer whose outcome is unknown, with the same key.
pub const RETRIES_MAX: usize = 20;
/// Longest a load phase waits for its acknowledgements.
pub const PHASE_TIME_MAX: Duration = Duration::from_secs(20);

/// One client transfer and what finally came of it.
#[derive(Debug)]
pub struct Sent {
    /// The load phase when the transfer was sent, and when its last answer came.
    pub phase: (&'static str, &'static str),
    /// Its idempotency key.
    pub key: String,
    /// Sender.
    pub from: String,
    /// Receiver.
    pub to: String,
    /// Amount.
    pub amount: u64,
    /// Every answer, in order: status, or 0 when no answer came.
    pub tries: Vec<u16>,
    /// The last answer's body.
    pub last: Value,
}

/// The load: workers send keyed transfers between the phase's accounts to the phase's target
/// nodes, retrying an unknown outcome with the same key on another target, as API.md tells
/// clients to.
pub struct Load {
    accounts: Mutex<Vec<String>>,
    targets: Mutex<Vec<String>>,
    phase: Mutex<&'static str>,
    stop: AtomicBool,
    acked: AtomicU64,
    sent: Mutex<Vec<Sent>>,
}

impl Load {
    /// A load over `accounts` (at least two), in phase "steady", with no target yet.
    pub fn new(accounts: Vec<String>) -> Self {
        assert!(accounts.len() >= 2, "transfers need two accounts");
        Load {
            accounts: Mutex::new(accounts),
            targets: Mutex::new(Vec::new()),
            phase: Mutex::new("steady"),
            stop: AtomicBool::new(false),
            acked: AtomicU64::new(0),
            sent: Mutex::new(Vec::new()),
        }
    }

    /// Worker `w`'s loop, until [`Load::stop`].
    pub fn worker(&self, w: usize) {
        let a = agent();
        let mut n = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            n += 1;
            let accounts = self.accounts.lock().unwrap().clone();
            let len = accounts.len();
            let i = (w * 7 + n as usize * 5) % len;
            let j = (i + 1 + (n as usize % (len - 1))) % len;
            let (from, to, amount) = (accounts[i].clone(), accounts[j].clone(), 1 + n % 50);
            let key = format!("w{w}-{n}");
            let phase = *self.phase.lock().unwrap();
            let body = json!({"from": from, "to": to, "amount": amount, "wait_ms": 3000});
            let mut tries = Vec::new();
            let mut last = Value::Null;
            for attempt in 0..RETRIES_MAX {
                let targets = self.targets.lock().unwrap().clone();
                let url = &targets[(w + attempt) % targets.len()];
                match request(
                    &a,
                    "POST",
                    &format!("{url}/v1/transfers"),
                    Some(&body),
                    Some(&key),
                ) {
                    Ok((s, v)) => {
                        tries.push(s);
                        last = v;
                        if s != 503 {
                            break;
                        }
                    }
                    Err(e) => {
                        tries.push(0);
                        last = json!({ "no_answer": e });
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if matches!(tries.last(), Some(200 | 202 | 422)) {
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            let phase = (phase, *self.phase.lock().unwrap());
            self.sent.lock().unwrap().push(Sent {
                phase,
                key,
                from,
                to,
                amount,
                tries,
                last,
            });
        }
    }

    /// Waits for `n` more acknowledgements (or [`PHASE_TIME_MAX`]).
    pub fn wait_acks(&self, n: u64) {
        let start = self.acked.load(Ordering::Relaxed);
        let deadline = Instant::now() + PHASE_TIME_MAX;
        while self.acked.load(Ordering::Relaxed) < start + n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Enters `phase`: later transfers go to `targets`.
    pub fn enter(&self, phase: &'static str, targets: &[&Walletd]) {
        *self.targets.lock().unwrap() = targets.iter().map(|n| n.url.clone()).collect();
        *self.phase.lock().unwrap() = phase;
    }

    /// Later transfers move money between `accounts` (at least two).
    pub fn use_accounts(&self, accounts: Vec<String>) {
        assert!(accounts.len() >= 2, "transfers need two accounts");
        *self.accounts.lock().unwrap() = accounts;
    }

    /// Starts `n` workers on their own threads.
    pub fn spawn_workers(self: &Arc<Self>, n: usize) -> Vec<JoinHandle<()>> {
        (0..n)
            .map(|w| {
                let l = self.clone();
                std::thread::spawn(move || l.worker(w))
            })
            .collect()
    }

    /// Stops the workers after their transfer in progress, and waits for them.
    pub fn stop(&self, workers: Vec<JoinHandle<()>>) {
        self.stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
    }

    /// Every transfer sent so far, and what came of it.
    pub fn take_sent(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

/// Starts one node per config at once (each waits to meet a peer before it serves), node `i`
/// logging to `log(i)`.
pub fn start_nodes(configs: &[PathBuf], log: impl Fn(usize) -> PathBuf) -> Vec<Walletd> {
    std::thread::scope(|s| {
        let handles: Vec<_> = configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let l = log(i);
                s.spawn(move || Walletd::start_config(c, &l))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Where node `i` of a cluster under `dir` logs.
pub fn node_log(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("n{}.log", i + 1))
}

/// Writes the configs of three nodes sharing one store under `dir` (`extra` TOML appended to
/// each), starts them together and waits until each sees all three members; returns the
/// configs (to start a node again) and the nodes.
pub fn start_three(dir: &Path, cookie: &str, extra: &str) -> (Vec<PathBuf>, Vec<Walletd>) {
    let data = dir.join("data");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let configs: Vec<PathBuf> = (0..3)
        .map(|i| write_config(dir, i, &ports, cookie, &data, extra))
        .collect();
    // Started together: each waits to meet a peer before it serves.
    let nodes = start_nodes(&configs, |i| node_log(dir, i));
    for n in &nodes {
        wait_members(&n.url, &["n1", "n2", "n3"]);
    }
    (configs, nodes)
}

/// The node id that the node at `url` names as `account`'s owner.
pub fn owner_of(url: &str, account: &str) -> String {
    let (s, o) = request(
        &agent(),
        "GET",
        &format!("{url}/admin/owner/{account}"),
        None,
        None,
    )
    .unwrap();
    assert_eq!(s, 200, "{o}");
    o["node_id"].as_str().unwrap().to_owned()
}

/// Asserts that `walletctl audit` passes against `url` once every transfer settled.
pub fn assert_audit_passes(url: &str) {
    let out = walletctl(url, &["audit", "--wait-secs", "60"]);
    assert!(
        out.status.success(),
        "walletctl audit failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that `accounts`, read through `url`, hold nothing and sum to `total`.
pub fn assert_conserved(url: &str, accounts: &[String], total: u64) {
    let a = agent();
    let mut sum = 0;
    for id in accounts {
        let (s, v) = request(&a, "GET", &format!("{url}/v1/accounts/{id}"), None, None).unwrap();
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["held"], 0, "{v}");
        sum += v["balance"].as_u64().unwrap();
    }
    assert_eq!(sum, total, "money is conserved");
}

/// Every transfer id in `account`'s transfer list, read through `url` page by page, newest
/// first; asserts the pages hold each transfer once, in creation order.
pub fn listed_transfers(url: &str, account: &str) -> Vec<String> {
    let a = agent();
    let mut ids = Vec::new();
    let mut created = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("{url}/v1/accounts/{account}/transfers?limit=50");
        if let Some(c) = &after {
            path.push_str(&format!("&after={c}"));
        }
        let (s, v) = request(&a, "GET", &path, None, None).unwrap();
        assert_eq!(s, 200, "{v}");
        for t in v["transfers"].as_array().unwrap() {
            ids.push(t["id"].as_str().unwrap().to_owned());
            created.push(t["created_at"].as_u64().unwrap());
        }
        match v["next_after"].as_str() {
            Some(c) => after = Some(c.to_owned()),
            None => break,
        }
    }
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "{account}'s list is newest first"
    );
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "{account}'s list repeats a transfer"
    );
    ids
}

/// POSTs `body` under idempotency key `key` to `path` through `urls` in turn until a node
/// gives a definitive answer (anything but 503 or no answer, which leave the outcome unknown:
/// the same key again), and returns it; panics at `deadline`.
pub fn post_answered(
    urls: &[String],
    path: &str,
    key: &str,
    body: &Value,
    deadline: Instant,
) -> (u16, Value) {
    let a = agent();
    let mut attempt = 0;
    while Instant::now() < deadline {
        let url = &urls[attempt % urls.len()];
        attempt += 1;
        match request(&a, "POST", &format!("{url}{path}"), Some(body), Some(key)) {
            Ok((503, _)) | Err(_) => std::thread::sleep(Duration::from_millis(100)),
            Ok(answer) => return answer,
        }
    }
    panic!("{path} {key}: no definitive answer before the deadline")
}

/// SIGKILLs node `i` of a three-node cluster, waits until the others dropped it, and starts
/// it again from its config; returns once every node sees all three members.
pub fn kill_and_restart(nodes: &mut [Option<Walletd>], configs: &[PathBuf], dir: &Path, i: usize) {
    let ids = ["n1", "n2", "n3"];
    nodes[i].take().expect("the node runs").kill9();
    let others: Vec<&str> = ids
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, n)| *n)
        .collect();
    let survivor = nodes
        .iter()
        .flatten()
        .next()
        .expect("a node runs")
        .url
        .clone();
    wait_members(&survivor, &others);
    std::thread::sleep(Duration::from_secs(1));
    nodes[i] = Some(Walletd::start_config(&configs[i], &node_log(dir, i)));
    for n in nodes.iter().flatten() {
        wait_members(&n.url, &ids);
    }
}

/// Three nodes started as [`start_three`] does, each in a slot a test can empty (to kill
/// it) and fill again (to restart it), with their configs.
pub fn start_three_slots(
    dir: &Path,
    cookie: &str,
    extra: &str,
) -> (Vec<PathBuf>, Vec<Option<Walletd>>) {
    let (configs, started) = start_three(dir, cookie, extra);
    (configs, started.into_iter().map(Some).collect())
}

/// The URL of the node in slot `i` (which must be running).
pub fn url_of(nodes: &[Option<Walletd>], i: usize) -> String {
    nodes[i].as_ref().expect("the node runs").url.clone()
}
