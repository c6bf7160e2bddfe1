//! `walletctl bench` end to end against a node: one transfer per request, the batch route and
//! an open loop, each reporting what it did (JSON), and a ledger that audits clean after.

mod common;
use common::{call, TestNode};
use serde_json::Value;

fn bench(n: &TestNode, extra: &[&str]) -> Value {
    let mut args = vec![
        "--node",
        n.url.as_str(),
        "--json",
        "bench",
        "--accounts",
        "4",
        "--duration",
        "20",
        "--concurrency",
        "2",
        "--seed",
        "7",
    ];
    args.extend_from_slice(extra);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_walletctl"))
        .args(&args)
        .output()
        .expect("walletctl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench {extra:?} failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not a report ({e}): {text}"))
}

fn check(r: &Value, count: u64, batch: Option<u64>, rate: Option<u64>) {
    assert_eq!(r["attempted"], count, "{r}");
    let failed: u64 = r["failed"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let (completed, pending, unknown) = (
        r["completed"].as_u64().unwrap(),
        r["pending"].as_u64().unwrap(),
        r["unknown"].as_u64().unwrap(),
    );
    assert_eq!(completed + pending + unknown + failed, count, "{r}");
    assert!(completed > 0 && unknown == 0, "{r}");
    assert_eq!(r["batch"].as_u64(), batch, "{r}");
    assert_eq!(r["rate"].as_u64(), rate, "{r}");
    assert!(r["transfers_per_s"].as_f64().unwrap() > 0.0, "{r}");
    let l = &r["latency_ms"];
    assert_eq!(l["samples"].as_u64(), Some(completed), "{r}");
    assert!(
        l["p50"].as_f64().unwrap() <= l["p99"].as_f64().unwrap(),
        "{r}"
    );
    assert!(
        l["p99"].as_f64().unwrap() <= l["max"].as_f64().unwrap(),
        "{r}"
    );
    let cpu = r["client_cpu_cores"].as_f64().expect("client CPU on Linux");
    assert!((0.0..=64.0).contains(&cpu), "{r}");
}

#[test]
fn bench_cli_reports_every_path_and_leaves_an_audited_ledger() {
    // Proves `walletctl bench --json` runs a bounded number of transfers one per request,
    // through the batch route and in an open loop, accounts for every one of them (completed,
    // pending, unknown or failed), reports latency figures and the client's own CPU, and
    // leaves a ledger the audit passes.
    let n = TestNode::start();
    check(&bench(&n, &["--count", "40"]), 40, None, None);
    check(
        &bench(&n, &["--count", "60", "--batch", "10"]),
        60,
        Some(10),
        None,
    );
    check(
        &bench(&n, &["--count", "30", "--rate", "200"]),
        30,
        None,
        Some(200),
    );
    let (s, audit) = call("GET", &format!("{}/admin/audit", n.url), None, None);
    assert_eq!((s, audit["ok"].as_bool()), (200, Some(true)), "{audit}");
}

#[test]
fn bench_cli_aims_a_share_of_transfers_at_a_hot_account() {
    // Proves `bench --hot ID --hot-share PCT` pays that share of its transfers into the hot
    // account (all of them at 100%, about half at 50%), counts those it completed, and refuses
    // a hot account that is not opened or holds another currency.
    let n = TestNode::start();
    common::open_account(&n.url, "merchant");
    let r = bench(
        &n,
        &["--count", "30", "--hot", "merchant", "--hot-share", "100"],
    );
    check(&r, 30, None, None);
    assert_eq!(
        (&r["hot"], &r["hot_share"]),
        (&Value::from("merchant"), &Value::from(100))
    );
    assert_eq!(r["hot_completed"], r["completed"], "{r}");
    let (_, m) = call(
        "GET",
        &format!("{}/v1/accounts/merchant", n.url),
        None,
        None,
    );
    let into = m["balance"].as_u64().unwrap();
    assert!(into > 0, "{m}");
    let r = bench(&n, &["--count", "200", "--hot", "merchant"]);
    let hot = r["hot_completed"].as_u64().unwrap();
    let all = r["completed"].as_u64().unwrap();
    assert!(
        hot > all / 4 && hot < all * 3 / 4,
        "about half of {all}: {hot}"
    );
    for (hot, why) in [("nobody", "no such account"), ("dollar", "holds USD")] {
        if hot == "dollar" {
            let (s, _) = call(
                "POST",
                &format!("{}/v1/accounts", n.url),
                Some(r#"{"id":"dollar","currency":"USD"}"#),
                None,
            );
            assert_eq!(s, 201);
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_walletctl"))
            .args([
                "--node",
                n.url.as_str(),
                "bench",
                "--count",
                "5",
                "--hot",
                hot,
            ])
            .output()
            .expect("walletctl runs");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{err}");
    }
    let (s, audit) = call("GET", &format!("{}/admin/audit", n.url), None, None);
    assert_eq!((s, audit["ok"].as_bool()), (200, Some(true)), "{audit}");
}
