//! Floods with an outside load generator (`wrk`, from Debian's packages): every request is
//! answered (success, or 503 `overloaded` past a limit; none dropped), the p99 of answered
//! requests stays under 2 s, and resident memory stays flat. Each flood lasts a few seconds.
//!
//! Floods: 1,000 connections depositing into one account; 200 connections reading random
//! never-opened accounts (no actor activated, nothing written); WebSocket connections beyond
//! `limits.ws_connections_max` (refused with 503 before the upgrade, the rest served).

use e2e::{agent, open_funded, request, storage_toml, Walletd};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Seconds of each wrk flood.
const FLOOD_SECS: u32 = 5;
/// Largest acceptable p99 of answered requests.
const P99_MAX_MS: u64 = 2_000;
/// Largest acceptable growth of resident memory over a flood of many distinct never-opened ids
/// once the connections' own buffers exist (one activation each would be over 1 KB per id:
/// tens of thousands of ids would show).
const RSS_GROWTH_MAX_KIB: u64 = 24 * 1024;
/// Largest acceptable resident memory of the node serving 1,000 connections on one account
/// (their buffers and tasks; it must not grow with the number of requests).
const RSS_FLOOD_MAX_KIB: u64 = 256 * 1024;

/// What a wrk run reported through `flood/count.lua`.
struct Flood {
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    p99_ms: u64,
    requests: u64,
}

fn wrk(url: &str, connections: u32, args: &[&str]) -> Flood {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flood/count.lua");
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{FLOOD_SECS}s"),
        ])
        .args(["--timeout", "10s", "-s"])
        .arg(&script)
        .arg(url)
        .arg("--")
        .args(args)
        .output()
        .expect("wrk runs (Debian package `wrk`: .ci/run installs it; apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut flood = Flood {
        statuses: BTreeMap::new(),
        errors: u64::MAX,
        p99_ms: u64::MAX,
        requests: 0,
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(key), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        match key {
            "errors" => flood.errors = value,
            "p99_us" => flood.p99_ms = value / 1_000,
            "requests" => flood.requests = value,
            k => {
                if let Some(status) = k.strip_prefix("status_") {
                    flood.statuses.insert(status.parse().unwrap(), value);
                }
            }
        }
    }
    assert!(flood.errors != u64::MAX, "no report from wrk: {text}");
    eprintln!(
        "flood: {} requests, statuses {:?}, errors {}, p99 {} ms",
        flood.requests, flood.statuses, flood.errors, flood.p99_ms
    );
    flood
}

fn active_actors(url: &str) -> u64 {
    let (_, v) = request(&agent(), "GET", &format!("{url}/admin/status"), None, None).unwrap();
    v["members"]
        .as_array()
        .and_then(|m| m.first())
        .and_then(|m| m["active_actors"].as_u64())
        .or_else(|| v["active_actors"].as_u64())
        .unwrap_or_else(|| panic!("active_actors in {v}"))
}

/// The floods run one at a time: each measures latency and memory on a machine of two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn node(dir: &Path, limits: &str) -> Walletd {
    let config = dir.join("node.toml");
    let toml = format!(
        "[node]\nlisten = \"127.0.0.1:0\"\n{}\n[limits]\n{limits}\n",
        storage_toml(&dir.join("data"))
    );
    std::fs::write(&config, toml).unwrap();
    Walletd::start_config(&config, &dir.join("walletd.log"))
}

#[test]
fn flood_of_one_account_and_of_never_opened_ids_answers_everything_with_flat_memory() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), "");
    open_funded(&agent(), &n.url, "hot", 1, "fund-hot");

    // 1,000 connections depositing into one account.
    let hot = wrk(&n.url, 1_000, &["deposit", "hot"]);
    assert_eq!(hot.errors, 0, "no request dropped");
    assert!(
        hot.statuses.keys().all(|s| *s == 201 || *s == 503),
        "only success or overloaded: {:?}",
        hot.statuses
    );
    assert!(hot.statuses.get(&201).copied().unwrap_or(0) > 0);
    assert!(hot.p99_ms < P99_MAX_MS, "p99 {} ms", hot.p99_ms);
    // Every deposit answered 201 is in the balance; wrk stops with one request in flight per
    // connection, which the node may have run without wrk reading the answer.
    let (_, v) = request(
        &agent(),
        "GET",
        &format!("{}/v1/accounts/hot", n.url),
        None,
        None,
    )
    .unwrap();
    let balance = v["balance"].as_u64().expect("a balance");
    let acked = 1 + hot.statuses[&201];
    assert!(
        (acked..=acked + 1_000).contains(&balance),
        "balance {balance}, acknowledged {acked}"
    );

    let hot_rss = n.rss_kib();
    assert!(hot_rss < RSS_FLOOD_MAX_KIB, "resident memory {hot_rss} KiB");

    // 200 connections reading random never-opened ids: none activates an actor.
    let before = n.rss_kib();
    let ghosts = wrk(&n.url, 200, &["ghosts"]);
    assert_eq!(ghosts.errors, 0, "no request dropped");
    assert!(
        ghosts.statuses.keys().all(|s| *s == 404 || *s == 503),
        "only not found or overloaded: {:?}",
        ghosts.statuses
    );
    assert!(ghosts.p99_ms < P99_MAX_MS, "p99 {} ms", ghosts.p99_ms);
    assert!(
        active_actors(&n.url) <= 1,
        "reads of never-opened ids activated accounts"
    );
    let after = n.rss_kib();
    eprintln!("resident memory: {hot_rss} KiB after the hot flood, {after} KiB after the reads of never-opened ids");
    assert!(
        after.saturating_sub(before) < RSS_GROWTH_MAX_KIB,
        "resident memory grew from {before} to {after} KiB"
    );
}

#[test]
fn flood_of_websockets_past_the_limit_is_refused_before_the_upgrade() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), "ws_connections_max = 50");
    let ws_url = n.url.replace("http://", "ws://") + "/v1/stream";
    let before = n.rss_kib();
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..80 {
        match tungstenite::connect(&ws_url) {
            Ok((socket, _)) => open.push(socket),
            Err(tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 503);
                assert_eq!(resp.headers()["retry-after"], "1");
                refused += 1;
            }
            Err(e) => panic!("a connection was dropped, not answered: {e}"),
        }
    }
    assert_eq!((open.len(), refused), (50, 30));
    // The admitted ones are served.
    for socket in open.iter_mut() {
        socket
            .send(tungstenite::Message::Text(r#"{"op":"ping"}"#.into()))
            .unwrap();
        loop {
            if let tungstenite::Message::Text(t) = socket.read().unwrap() {
                assert!(t.as_str().contains("pong"), "{t}");
                break;
            }
        }
    }
    let after = n.rss_kib();
    assert!(
        after.saturating_sub(before) < RSS_GROWTH_MAX_KIB,
        "resident memory grew from {before} to {after} KiB"
    );
}
