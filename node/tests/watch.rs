//! `walletctl watch ID...` against a node: every update printed once, in `seq` order, for plain
//! and sharded accounts; across a restart of the node on the same store and port it resumes
//! from the last printed `seq` with no gap and no duplicate; Ctrl-C stops it with exit 0; an
//! unknown account or a refused token fails with a clear error.

mod common;

use cluster_config::{AuthConfig, Scope, TokenConfig};
use common::{open_account, walletctl, TestNode};
use node::gateway::auth::{digest, digest_hex};
use node::storage::sqlite::{SqliteBackend, SyncMode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest wait for one line of `watch` (an update or a note).
const LINE_WAIT: Duration = Duration::from_secs(20);
/// Longest wait for `watch` to exit after SIGINT.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// A stream of `watch`: an account, or one shard of it.
type Key = (String, Option<u64>);

/// A running `walletctl watch`, its stdout and stderr read line by line by two threads.
struct Watch {
    child: Child,
    updates: Receiver<String>,
    notes: Receiver<String>,
}

impl Watch {
    /// Starts `walletctl --node URL ARGS...`.
    fn start(url: &str, args: &[&str]) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_walletctl"))
            .args(["--node", url])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("walletctl runs");
        let lines = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines() {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
            rx
        };
        let updates = lines(Box::new(child.stdout.take().unwrap()));
        let notes = lines(Box::new(child.stderr.take().unwrap()));
        Watch {
            child,
            updates,
            notes,
        }
    }

    /// Waits for a note on stderr that contains `text`; returns it.
    fn note(&self, text: &str) -> String {
        let until = Instant::now() + LINE_WAIT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.notes.recv_timeout(left) {
                Ok(l) if l.contains(text) => return l,
                Ok(_) => {}
                Err(e) => panic!("no note with {text:?} from watch: {e}"),
            }
        }
    }

    /// The next line on stdout.
    fn line(&self) -> String {
        self.updates
            .recv_timeout(LINE_WAIT)
            .unwrap_or_else(|e| panic!("no line from watch: {e}"))
    }

    /// Sends SIGINT and asserts that watch exits 0 within [`EXIT_WAIT`] and prints nothing more.
    fn interrupt(self) {
        let Watch {
            mut child, updates, ..
        } = self;
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                started.elapsed() < EXIT_WAIT,
                "watch still runs after SIGINT"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{status:?}");
        match updates.recv_timeout(EXIT_WAIT) {
            Err(RecvTimeoutError::Disconnected) => {}
            other => panic!("watch printed more: {other:?}"),
        }
    }

    /// Reads updates into `printed` until every stream in `upto` reached its `seq`.
    fn collect(&self, printed: &mut BTreeMap<Key, Vec<Value>>, upto: &BTreeMap<Key, u64>) {
        let reached = |p: &BTreeMap<Key, Vec<Value>>| {
            upto.iter().all(|(k, &seq)| {
                p.get(k)
                    .and_then(|v| v.last())
                    .map_or(seq == 0, |u| u["seq"].as_u64() >= Some(seq))
            })
        };
        while !reached(printed) {
            let line = self
                .updates
                .recv_timeout(LINE_WAIT)
                .unwrap_or_else(|e| panic!("watch printed {printed:?}, not yet {upto:?}: {e}"));
            let u: Value = serde_json::from_str(&line).expect("one JSON object per line");
            let key = (
                u["account"].as_str().unwrap().to_owned(),
                u["shard"].as_u64(),
            );
            printed.entry(key).or_default().push(u);
        }
    }
}

/// A node on the SQLite store in `dir`, listening on `listen`.
fn node_on(dir: &Path, listen: &str) -> TestNode {
    let backend = SqliteBackend::open(dir, SyncMode::Full).expect("the store opens");
    let listen = listen.to_owned();
    TestNode::start_backend(Arc::new(backend), move |c| c.node.listen = listen)
}

/// The whole journal of every stream, as `watch` should print it.
fn journals(n: &TestNode, keys: &[Key]) -> BTreeMap<Key, Vec<Value>> {
    keys.iter()
        .map(|(id, shard)| {
            let shard_q = shard.map_or(String::new(), |j| format!("&shard={j}"));
            let entries = n.entries(&format!(
                "/v1/accounts/{id}/entries?after_seq=0&limit=1000{shard_q}"
            ));
            ((id.clone(), *shard), entries)
        })
        .collect()
}

/// The last `seq` of each journal.
fn ends(journals: &BTreeMap<Key, Vec<Value>>) -> BTreeMap<Key, u64> {
    journals
        .iter()
        .map(|(k, e)| {
            (
                k.clone(),
                e.last().map_or(0, |e| e["seq"].as_u64().unwrap()),
            )
        })
        .collect()
}

fn deposit(n: &TestNode, id: &str, amount: u64) {
    let (s, v) = n.post(
        "/v1/deposits",
        json!({"account": id, "amount": amount}),
        None,
    );
    assert_eq!(s, 201, "{v}");
}

fn transfer(n: &TestNode, from: &str, to: &str, amount: u64) {
    let body = json!({"from": from, "to": to, "amount": amount, "wait_ms": 10000});
    let (s, v) = n.post("/v1/transfers", body, None);
    assert_eq!((s, v["status"].as_str()), (200, Some("completed")), "{v}");
}

#[test]
fn watch_prints_each_update_once_in_order_resumes_across_a_restart_and_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let n = node_on(dir.path(), "127.0.0.1:0");
    let listen = n.host().to_owned();
    open_account(&n.url, "a");
    open_account(&n.url, "b");
    let (s, v) = n.post(
        "/v1/accounts",
        json!({"id": "h", "currency": "EUR", "shards": 2}),
        None,
    );
    assert_eq!(s, 201, "{v}");
    // An update before watch starts is not printed: watch shows what happens from now on.
    deposit(&n, "a", 1);
    let keys: Vec<Key> = vec![
        ("a".into(), None),
        ("b".into(), None),
        ("h".into(), Some(0)),
        ("h".into(), Some(1)),
    ];

    let watch = Watch::start(&n.url, &["--json", "watch", "a", "b", "h"]);
    let note = watch.note("watching");
    assert!(
        note.contains("a after seq 1") && note.contains("h shard 1 after seq 0"),
        "{note}"
    );
    deposit(&n, "a", 100);
    deposit(&n, "b", 50);
    transfer(&n, "a", "b", 30);
    for amount in [4, 5, 6, 7] {
        deposit(&n, "h", amount);
    }
    transfer(&n, "b", "h", 20);
    let mut printed = BTreeMap::new();
    watch.collect(&mut printed, &ends(&journals(&n, &keys)));

    // The node stops; watch notices, and resumes on the node started again on its store and
    // port, from the last seq it printed.
    let last_a = printed[&("a".to_owned(), None)].last().unwrap()["seq"].clone();
    drop(n);
    watch.note("stream connection lost");
    // Its reconnect attempts are refused until the node is back; the updates made right after
    // the restart land while it waits out its backoff, and come through its replay.
    watch.note("reconnecting in 1600 ms");
    let n = node_on(dir.path(), &listen);
    deposit(&n, "a", 8);
    transfer(&n, "a", "h", 9);
    deposit(&n, "b", 10);
    deposit(&n, "h", 11);
    let all = journals(&n, &keys);
    watch.collect(&mut printed, &ends(&all));
    let note = watch.note("resumed");
    assert!(note.contains(&format!("a after seq {last_a},")), "{note}");

    // Ctrl-C: exit 0, promptly, and nothing more printed (no duplicate after the last update).
    watch.interrupt();

    // Every stream printed exactly its journal after seq 1 of `a`, in order, each entry once.
    for (key, entries) in &all {
        let skip = if key.0 == "a" { 1 } else { 0 };
        let want: Vec<&Value> = entries.iter().skip(skip).collect();
        let got = printed.get(key).map_or(&[][..], |v| &v[..]);
        assert_eq!(got.len(), want.len(), "{key:?}: {got:?}");
        for (u, e) in got.iter().zip(want) {
            assert_eq!(u["seq"], e["seq"], "{key:?}");
            assert_eq!(u["entry"]["kind"], e["kind"], "{key:?}");
            assert_eq!(u["entry"]["amount"], e["amount"], "{key:?}");
            assert_eq!(u["balance"], e["balance"], "{key:?}");
            assert_eq!(u["available"], e["available"], "{key:?}");
        }
    }
    // Both sides of the restart are there, and the sharded account's shards both moved.
    assert!(all.values().all(|e| !e.is_empty()));
    assert!(printed[&("a".to_owned(), None)].len() >= 5);
}

#[test]
fn watch_prints_human_lines_and_replays_after_from_seq() {
    let n = TestNode::start();
    open_account(&n.url, "a");
    deposit(&n, "a", 100);
    deposit(&n, "a", 23);
    let watch = Watch::start(&n.url, &["watch", "a", "--from-seq", "1"]);
    assert_eq!(
        watch.line(),
        "a  seq 2  deposit  23  balance 123  available 123  held 0"
    );
    watch.interrupt();
}

#[test]
fn watch_refuses_an_unknown_account_and_a_refused_token_and_sends_a_good_one() {
    let n = TestNode::start();
    open_account(&n.url, "a");
    let out = walletctl(&n.url, &["watch", "a", "ghost"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not_found") && err.contains("ghost"), "{err}");

    let token = |id: &str, secret: &str, scopes: &[Scope], accounts: Option<&str>| TokenConfig {
        id: id.into(),
        sha256: digest_hex(&digest(secret)),
        scopes: scopes.to_vec(),
        accounts: accounts.map(|a| vec![a.to_owned()]),
    };
    let n = TestNode::start_with(|c| {
        c.auth = Some(AuthConfig {
            tokens: vec![
                token("setup", "secret-setup", &[Scope::Read, Scope::Write], None),
                token("shop", "secret-shop", &[Scope::Read], Some("shop-*")),
            ],
        })
    });
    let setup = |path: &str, body: Value| {
        let mut resp = common::agent()
            .post(format!("{}{path}", n.url))
            .header("authorization", "Bearer secret-setup")
            .send_json(body)
            .unwrap();
        assert_eq!(
            resp.status(),
            201,
            "{}",
            resp.body_mut().read_to_string().unwrap()
        );
    };
    for id in ["shop-1", "other"] {
        setup("/v1/accounts", json!({"id": id, "currency": "EUR"}));
    }
    for (token, id, code) in [
        ("wrong", "shop-1", "unauthorized"),
        ("secret-shop", "other", "forbidden"),
    ] {
        let out = walletctl(&n.url, &["--token", token, "watch", id]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.starts_with(&format!("error: {code}: ")), "{err}");
    }
    // The token reaches the WebSocket too: an update streams.
    let watch = Watch::start(&n.url, &["--token", "secret-shop", "watch", "shop-1"]);
    watch.note("watching");
    setup("/v1/deposits", json!({"account": "shop-1", "amount": 5}));
    assert_eq!(
        watch.line(),
        "shop-1  seq 1  deposit  5  balance 5  available 5  held 0"
    );
    watch.interrupt();
}
