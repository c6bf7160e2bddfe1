//! Authentication as an operator meets it: tokens made by `walletctl token new` are accepted
//! as printed, `walletctl` sends `--token` or `$WALLET_TOKEN`, and `walletd` re-reads its
//! tokens on SIGHUP, so a revoked token stops working (also on an open WebSocket) without a
//! restart, while a config that does not load keeps the current tokens.

use e2e::{agent, binary, storage_toml, Walletd};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A token made by `walletctl token new --json`: its secret and its config entry.
struct Made {
    token: String,
    entry: String,
}

fn token_new(args: &[&str]) -> Made {
    let out = Command::new(binary("walletctl"))
        .args(["--json", "token", "new"])
        .args(args)
        .output()
        .expect("walletctl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    Made {
        token: v["token"].as_str().unwrap().to_owned(),
        entry: v["config"].as_str().unwrap().to_owned(),
    }
}

fn write_config(path: &Path, data: &Path, entries: &[&str]) {
    let mut text = format!(
        "[node]\nlisten = \"127.0.0.1:0\"\n{}\n[auth]\n",
        storage_toml(data)
    );
    for e in entries {
        text.push_str(e);
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn walletctl(url: &str, args: &[&str], env_token: Option<&str>) -> Output {
    let mut cmd = Command::new(binary("walletctl"));
    cmd.args(["--node", url])
        .args(args)
        .env_remove("WALLET_TOKEN");
    if let Some(t) = env_token {
        cmd.env("WALLET_TOKEN", t);
    }
    cmd.output().expect("walletctl runs")
}

fn get(url: &str, token: &str) -> u16 {
    agent()
        .get(url)
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .expect("the node answers")
        .status()
        .as_u16()
}

fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "{what} within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn auth_token_new_output_is_accepted_and_walletctl_sends_it() {
    // Proves the printed token authenticates against its printed entry, walletctl sends
    // --token and $WALLET_TOKEN (bench included), and refusals name their code.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The plain output: the token, then the entry (which must parse as config as it is).
    let out = Command::new(binary("walletctl"))
        .args([
            "token",
            "new",
            "--scopes",
            "read,write",
            "--accounts",
            "shop-*",
            "--id",
            "shop",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let (token, entry) = text.split_once('\n').unwrap();
    assert!(
        token.starts_with("wlt_") && token.len() == 4 + 64,
        "{token}"
    );
    assert!(!entry.contains(token), "the entry holds only the digest");
    let all = token_new(&["--scopes", "read,write,admin"]);
    let config = dir.path().join("wallet.toml");
    write_config(&config, &data, &[entry, &all.entry]);
    let node = Walletd::start_config(&config, &dir.path().join("walletd.log"));
    let url = node.url.as_str();

    let ok = walletctl(
        url,
        &[
            "--token",
            token,
            "account",
            "open",
            "shop-1",
            "--currency",
            "EUR",
        ],
        None,
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let ok = walletctl(url, &["account", "show", "shop-1"], Some(token));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = walletctl(url, &["account", "show", "shop-1"], None);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("unauthorized"),
        "{stderr}"
    );
    let refused = walletctl(
        url,
        &["account", "open", "bank", "--currency", "EUR"],
        Some(token),
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("forbidden"),
        "{stderr}"
    );
    let refused = walletctl(url, &["status"], Some(token));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("forbidden"));
    let ok = walletctl(url, &["status"], Some(&all.token));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bench = walletctl(
        url,
        &[
            "--json",
            "bench",
            "--accounts",
            "4",
            "--duration",
            "5",
            "--concurrency",
            "2",
            "--count",
            "10",
        ],
        Some(&all.token),
    );
    assert!(
        bench.status.success(),
        "{}",
        String::from_utf8_lossy(&bench.stderr)
    );
}

#[test]
fn auth_sighup_reloads_tokens_and_revokes_on_open_sockets() {
    // Proves SIGHUP swaps the token set: a removed token gets 401 (and its open WebSocket an
    // `unauthorized` frame and a close) while the others keep working, and a config that does
    // not load keeps the current tokens.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (a, b) = (
        token_new(&["--scopes", "read,write", "--id", "a"]),
        token_new(&["--scopes", "read", "--id", "b"]),
    );
    let config = dir.path().join("wallet.toml");
    let log = dir.path().join("walletd.log");
    write_config(&config, &data, &[&a.entry, &b.entry]);
    let node = Walletd::start_config(&config, &log);
    let health = format!("{}/healthz", node.url);
    let status_of = format!("{}/v1/accounts/nobody", node.url);
    assert_eq!(get(&status_of, &a.token), 404);
    assert_eq!(get(&status_of, &b.token), 404);

    // A WebSocket opened with token a.
    let host = node.url.trim_start_matches("http://");
    let (mut ws, _) =
        tungstenite::connect(format!("ws://{host}/v1/stream?access_token={}", a.token))
            .expect("upgrade with a");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    ws.send(tungstenite::Message::Text(r#"{"op":"ping"}"#.into()))
        .unwrap();
    assert!(ws.read().unwrap().to_text().unwrap().contains("pong"));

    write_config(&config, &data, &[&b.entry]);
    node.signal("HUP");
    until("token a refused after SIGHUP", || {
        get(&status_of, &a.token) == 401
    });
    assert_eq!(get(&status_of, &b.token), 404, "b still accepted");
    assert_eq!(get(&health, "whatever"), 200);
    ws.send(tungstenite::Message::Text(r#"{"op":"ping"}"#.into()))
        .unwrap();
    let frame: Value = serde_json::from_str(ws.read().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(frame["code"].as_str(), Some("unauthorized"), "{frame}");
    match ws.read() {
        Ok(tungstenite::Message::Close(_)) | Err(_) => {}
        Ok(other) => panic!("after revocation the socket closes, not {other:?}"),
    }

    // A config that does not load: the current tokens stay.
    std::fs::write(&config, "[auth\nbroken").unwrap();
    node.signal("HUP");
    until("the failed reload logged", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("the current tokens stay")
    });
    assert_eq!(get(&status_of, &b.token), 404);
    assert_eq!(get(&status_of, &a.token), 401);
}

#[test]
fn auth_operator_with_an_admin_token_audits_on_the_admin_listener() {
    // Proves an operator holding only an `admin` token, talking to the admin listener, can
    // run `walletctl audit` (it reads every journal through admin routes), while the client
    // listener no longer serves admin routes.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ops = token_new(&["--scopes", "admin", "--id", "ops"]);
    let app = token_new(&["--scopes", "read,write", "--id", "app"]);
    let config = dir.path().join("wallet.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{}\n[auth]\n{}\n{}\n",
            storage_toml(&data),
            ops.entry,
            app.entry
        ),
    )
    .unwrap();
    let node = Walletd::start_config(&config, &dir.path().join("walletd.log"));
    let admin = node
        .admin_url
        .clone()
        .expect("the start line names the admin listener");
    for args in [
        &["account", "open", "a1", "--currency", "EUR"][..],
        &["deposit", "a1", "500"],
        &["account", "open", "a2", "--currency", "EUR"],
        &["transfer", "a1", "a2", "120"],
    ] {
        let out = walletctl(&node.url, args, Some(&app.token));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let audit = walletctl(&admin, &["audit"], Some(&ops.token));
    assert!(
        audit.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );
    let refused = walletctl(&node.url, &["audit"], Some(&ops.token));
    assert!(
        !refused.status.success(),
        "no admin routes on the client listener"
    );
}
