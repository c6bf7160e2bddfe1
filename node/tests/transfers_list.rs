//! `GET /v1/accounts/{id}/transfers` against API.md: an account's transfers, either side,
//! newest first, with a `status` filter and an opaque cursor, read from the transfer list
//! written with each transfer.

mod common;
use common::{call, code, deposit, open_account, TestNode};
use serde_json::{json, Value};

/// Sends a transfer and returns its answer's status and body.
fn transfer(n: &TestNode, from: &str, to: &str, amount: u64) -> (u16, Value) {
    call(
        "POST",
        &format!("{}/v1/transfers", n.url),
        Some(&json!({"from": from, "to": to, "amount": amount}).to_string()),
        None,
    )
}

/// Every page of `id`'s list with `query` (without `after`), followed to the end.
fn all_pages(n: &TestNode, id: &str, query: &str) -> (Vec<Value>, usize) {
    let mut out = Vec::new();
    let mut pages = 0;
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/accounts/{id}/transfers?{query}", n.url);
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let (s, v) = call("GET", &url, None, None);
        assert_eq!(s, 200, "{v}");
        pages += 1;
        out.extend(v["transfers"].as_array().unwrap().iter().cloned());
        match v["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => {
                assert!(v["next_after"].is_null(), "{v}");
                return (out, pages);
            }
        }
    }
}

/// Transfer ids in the list's order: newest first by creation time, then by id (transfers of
/// one millisecond).
fn newest_first(mut made: Vec<(u64, String)>) -> Vec<String> {
    made.sort_by(|a, b| (std::cmp::Reverse(a.0), &a.1).cmp(&(std::cmp::Reverse(b.0), &b.1)));
    made.into_iter().map(|(_, id)| id).collect()
}

fn ids(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn transfers_list_shows_both_sides_newest_first_filtered_and_paged() {
    // Proves the list holds every transfer naming the account on either side (completed, and
    // failed ones whose receiver refused the credit), newest first, in the transfer view's
    // shape; that `status` filters and the cursor pages without loss or repeat; and that a
    // never-opened account, a bad limit, cursor or status are refused with API.md's codes.
    let n = TestNode::start();
    for id in ["alice", "bob", "carol", "erin"] {
        open_account(&n.url, id);
    }
    let (s, _) = call(
        "POST",
        &format!("{}/v1/accounts", n.url),
        Some(r#"{"id":"dave","currency":"USD"}"#),
        None,
    );
    assert_eq!(s, 201);
    deposit(&n.url, "alice", 1_000);
    deposit(&n.url, "bob", 500);
    let (s, _) = call(
        "POST",
        &format!("{}/v1/accounts/erin/freeze", n.url),
        None,
        None,
    );
    assert_eq!(s, 200);

    // One at a time, so creation order is list order (newest last here).
    let mut alice_sent = Vec::new();
    let mut expect_failed = Vec::new();
    for (from, to, amount, ok) in [
        ("alice", "bob", 10, true),
        ("bob", "alice", 20, true),
        ("alice", "carol", 30, true),
        ("alice", "dave", 5, false),
        ("bob", "carol", 7, true),
        ("alice", "erin", 4, false),
        ("alice", "bob", 1, true),
    ] {
        let (s, v) = transfer(&n, from, to, amount);
        assert_eq!(s, if ok { 200 } else { 422 }, "{from}->{to}: {v}");
        let view = if ok { &v } else { &v["transfer"] };
        let made = (
            view["created_at"].as_u64().unwrap(),
            view["id"].as_str().unwrap().to_owned(),
        );
        if from == "alice" || to == "alice" {
            alice_sent.push(made.clone());
        }
        if !ok {
            expect_failed.push(made);
        }
    }

    // Newest first, every transfer of alice's, in the view's shape.
    let (s, v) = call(
        "GET",
        &format!("{}/v1/accounts/alice/transfers", n.url),
        None,
        None,
    );
    assert_eq!(s, 200, "{v}");
    let list = v["transfers"].as_array().unwrap().clone();
    assert!(v["next_after"].is_null(), "one page: {v}");
    let newest = newest_first(alice_sent.clone());
    assert_eq!(ids(&list), newest);
    let created: Vec<u64> = list
        .iter()
        .map(|t| t["created_at"].as_u64().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");
    let shown: Value = call(
        "GET",
        &format!("{}/v1/transfers/{}", n.url, newest[0]),
        None,
        None,
    )
    .1;
    assert_eq!(
        list[0], shown,
        "an item is the transfer as GET /v1/transfers shows it"
    );

    // Status filter.
    let (failed, _) = all_pages(&n, "alice", "status=failed");
    assert_eq!(ids(&failed), newest_first(expect_failed.clone()));
    for f in &failed {
        let want = if f["to"] == "erin" {
            "account_frozen"
        } else {
            "currency_mismatch"
        };
        assert_eq!(f["reason"], want, "{f}");
    }
    let (completed, _) = all_pages(&n, "alice", "status=completed");
    assert_eq!(completed.len(), alice_sent.len() - expect_failed.len());
    assert!(completed.iter().all(|t| t["status"] == "completed"));
    let (pending, _) = all_pages(&n, "alice", "status=pending");
    assert!(pending.is_empty());

    // Pages of 2 hold the same list, in order, without loss or repeat.
    let (paged, pages) = all_pages(&n, "alice", "limit=2");
    assert_eq!(ids(&paged), newest);
    assert_eq!(pages, newest.len().div_ceil(2));

    // The receivers' side: bob sees what he sent and received; dave, who refused the credit,
    // sees the failed transfer; carol sees two incoming.
    let (bob, _) = all_pages(&n, "bob", "limit=100");
    assert_eq!(bob.len(), 4, "{bob:?}");
    let (dave, _) = all_pages(&n, "dave", "limit=100");
    assert_eq!(ids(&dave), vec![expect_failed[0].1.clone()]);
    let (carol, _) = all_pages(&n, "carol", "status=completed");
    assert_eq!(carol.len(), 2);
    assert!(carol.iter().all(|t| t["to"] == "carol"));

    // Refusals.
    for (url, status, want) in [
        ("/v1/accounts/nobody/transfers", 404, "account_not_found"),
        (
            "/v1/accounts/alice/transfers?limit=0",
            400,
            "invalid_request",
        ),
        (
            "/v1/accounts/alice/transfers?limit=1001",
            400,
            "invalid_request",
        ),
        (
            "/v1/accounts/alice/transfers?after=zz",
            400,
            "invalid_request",
        ),
        (
            "/v1/accounts/alice/transfers?status=lost",
            400,
            "invalid_request",
        ),
        ("/v1/accounts/bad%20id/transfers", 400, "invalid_request"),
    ] {
        let (s, v) = call("GET", &format!("{}{url}", n.url), None, None);
        assert_eq!((s, code(&v)), (status, want), "{url}: {v}");
    }
}

fn walletctl(n: &TestNode, args: &[&str]) -> std::process::Output {
    common::walletctl(&n.url, args)
}

#[test]
fn transfers_list_through_walletctl_one_page_or_all() {
    // Proves `walletctl account transfers` prints one page with the cursor of the next, and
    // with --all follows every page (as one JSON list with --json), and refuses a bad status.
    let n = TestNode::start();
    open_account(&n.url, "wa");
    open_account(&n.url, "wb");
    deposit(&n.url, "wa", 100);
    let mut made = Vec::new();
    for amount in 1..=5 {
        let (s, v) = transfer(&n, "wa", "wb", amount);
        assert_eq!(s, 200, "{v}");
        made.push((
            v["created_at"].as_u64().unwrap(),
            v["id"].as_str().unwrap().to_owned(),
        ));
    }
    let sent = newest_first(made);

    let out = walletctl(
        &n,
        &[
            "--json",
            "account",
            "transfers",
            "wa",
            "--all",
            "--limit",
            "2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON page");
    assert_eq!(ids(v["transfers"].as_array().unwrap()), sent);
    assert!(v["next_after"].is_null());

    let out = walletctl(&n, &["account", "transfers", "wb", "--limit", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("TRANSFER"), "{text}");
    assert!(
        lines[1].starts_with(&sent[0]) && lines[2].starts_with(&sent[1]),
        "{text}"
    );
    assert!(lines[3].starts_with("(more: --after "), "{text}");

    let out = walletctl(&n, &["account", "transfers", "wa", "--status", "lost"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--status lost"));
}
