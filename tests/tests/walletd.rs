//! `walletd` as an operator meets it: config errors name the field, and SIGTERM under load
//! stops gracefully without losing an acknowledged command.

use e2e::{agent, binary, request, Walletd};
use serde_json::json;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

fn run_walletd(args: &[&str]) -> (bool, String) {
    let out = Command::new(binary("walletd"))
        .args(args)
        .output()
        .expect("walletd runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn walletd_refuses_bad_config_naming_the_field() {
    // Proves a bad value or unknown field stops walletd at start with a sentence naming it.
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[actors]\nidle_passivate_ms = 5\n", "idle_passivate_ms"),
        ("[cluster]\nvnodes = 0\n", "vnodes"),
        ("[node]\nlisten = \"nowhere\"\n", "listen"),
        ("[storage]\nbackend = \"fdb\"\n", "cluster_file"),
        ("[node]\nlsten = \"127.0.0.1:1\"\n", "lsten"),
    ];
    for (toml, field) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, toml).unwrap();
        let (ok, stderr) = run_walletd(&["--config", path.to_str().unwrap()]);
        assert!(!ok, "walletd accepted {toml:?}");
        assert!(
            stderr.contains(field),
            "stderr does not name {field}: {stderr}"
        );
    }
    let (ok, stderr) = run_walletd(&["--config", "/nonexistent/wallet.toml"]);
    assert!(
        !ok && stderr.contains("/nonexistent/wallet.toml"),
        "{stderr}"
    );
}

#[test]
fn walletd_port_in_use_is_a_clear_error() {
    // Proves a second node on a taken port exits non-zero and says which address.
    let dir = tempfile::tempdir().unwrap();
    let first = Walletd::start(&dir.path().join("a"));
    let host = first.url.trim_start_matches("http://").to_owned();
    let (ok, stderr) = run_walletd(&[
        "--listen",
        &host,
        "--data",
        dir.path().join("b").to_str().unwrap(),
    ]);
    assert!(!ok && stderr.contains(&host), "{stderr}");
}

#[test]
fn walletd_sigterm_under_load_exits_cleanly_and_keeps_acknowledged() {
    // Proves graceful shutdown: SIGTERM mid-load exits 0, and every acknowledged deposit is
    // there after a restart.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Walletd::start(&data);
    let a = agent();
    let (s, _) = request(
        &a,
        "POST",
        &format!("{}/v1/accounts", node.url),
        Some(&json!({"id": "g", "currency": "EUR"})),
        None,
    )
    .unwrap();
    assert_eq!(s, 201);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = vec![];
    for w in 0..4 {
        let (acked, stop, url) = (acked.clone(), stop.clone(), node.url.clone());
        workers.push(std::thread::spawn(move || {
            let a = agent();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let key = format!("g{w}-{n}");
                match request(
                    &a,
                    "POST",
                    &format!("{url}/v1/deposits"),
                    Some(&json!({"account": "g", "amount": 1})),
                    Some(&key),
                ) {
                    Ok((201, v)) => acked.lock().unwrap().push(v["seq"].as_u64().unwrap()),
                    _ => return,
                }
            }
        }));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while acked.lock().unwrap().len() < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "no load reached the node; see its log"
        );
        std::thread::yield_now();
    }
    assert!(node.terminate(), "walletd did not exit 0 on SIGTERM");
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let node = Walletd::start(&data);
    let (_, state) = request(
        &a,
        "GET",
        &format!("{}/v1/accounts/g", node.url),
        None,
        None,
    )
    .unwrap();
    let acked = acked.lock().unwrap();
    let max_acked = *acked.iter().max().unwrap();
    assert!(
        state["seq"].as_u64().unwrap() >= max_acked,
        "acknowledged deposit lost: {state}"
    );
    assert!(state["balance"].as_u64().unwrap() >= acked.len() as u64);
}
