//! `walletctl audit`: waits for the cluster to be quiet, then streams every account and journal
//! from the node through the library's [`Auditor`] (the same rules as `GET /admin/audit`).
//!
//! The audit is meant for a quiescent point: transfers still in flight would look half-applied,
//! which is why it first waits for `/admin/pending` to drain. Open holds (`/admin/holds`) are
//! named pending: a hold may still hold what it has not released. Journal entries written after
//! an account was listed are ignored by the auditor, so ongoing deposits do not cause false
//! alarms.

use crate::client::CliError;
use crate::commands::{Ctx, Failure};
use crate::output;
use indicatif::{ProgressBar, ProgressStyle};
use node::ledger::audit::Auditor;
use protocol::admin::{AccountsPage, HoldsPage, PendingPage, ADMIN_PAGE_MAX};
use protocol::api::{EntriesPage, ENTRIES_PAGE_MAX};
use protocol::{AccountId, ErrorCode};
use std::time::{Duration, Instant};

/// Longest pause between two polls of `/admin/pending`.
const PENDING_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Spinner and bar redraw period.
const TICK: Duration = Duration::from_millis(120);

/// `audit [--wait-secs N]`.
pub fn run(ctx: &Ctx, wait_secs: u64) -> Result<(), Failure> {
    let mut auditor = Auditor::new();
    wait_for_pending(ctx, wait_secs, &mut auditor)?;
    open_holds(ctx, &mut auditor)?;
    scan(ctx, &mut auditor)?;
    // And those opened while the scan ran (holds never all settle).
    open_holds(ctx, &mut auditor)?;
    let report = auditor.finish();
    if ctx.json {
        output::json(&report)?;
    } else {
        output::line(output::audit_report(&report))?;
    }
    if report.ok {
        Ok(())
    } else {
        let n = report.violations.len() as u64 + report.violations_not_listed;
        Err(CliError::Failed {
            code: "audit_failed",
            message: format!(
                "the audit found {n} violation{}; see the report",
                if n == 1 { "" } else { "s" }
            ),
        }
        .into())
    }
}

/// Polls `/admin/pending` until it is empty or `wait_secs` pass; what is left is a violation.
fn wait_for_pending(ctx: &Ctx, wait_secs: u64, auditor: &mut Auditor) -> Result<(), CliError> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(wait_secs);
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(TICK);
    let result = loop {
        let page: PendingPage = match ctx
            .client
            .get(&format!("/admin/pending?limit={ADMIN_PAGE_MAX}"))
        {
            Ok(p) => p,
            Err(e) => break Err(e),
        };
        let count = page.transfers.len() + page.disbursements.len();
        if count == 0 {
            break Ok(());
        }
        let n = if page.truncated {
            format!("more than {count}")
        } else {
            count.to_string()
        };
        let now = Instant::now();
        if now >= deadline {
            let disbursing: Vec<_> = page.disbursements.into_iter().map(|d| d.id).collect();
            let ids = page.transfers.into_iter().map(|t| t.id);
            let ids = ids.chain(disbursing.iter().cloned()).collect();
            auditor.still_pending(ids, page.truncated, &format!("after {wait_secs}s"));
            auditor.set_disbursements(disbursing);
            break Ok(());
        }
        spinner.set_message(format!(
            "waiting for {n} pending transfers and disbursements to settle ({}s of {wait_secs}s)",
            (now - started).as_secs()
        ));
        std::thread::sleep(PENDING_POLL_INTERVAL.min(deadline - now));
    };
    spinner.finish_and_clear();
    result
}

/// Names every open hold pending (read in pages of `/admin/holds`; a node of a release
/// before holds has none).
fn open_holds(ctx: &Ctx, auditor: &mut Auditor) -> Result<(), CliError> {
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            None => format!("/admin/holds?limit={ADMIN_PAGE_MAX}"),
            Some(c) => format!("/admin/holds?limit={ADMIN_PAGE_MAX}&after={c}"),
        };
        let page: HoldsPage = match ctx.client.get(&path) {
            Ok(p) => p,
            // A node of a release before holds: it has none.
            Err(CliError::Api { error }) if error.code == ErrorCode::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        auditor.set_pending(page.holds.into_iter().map(|h| h.id));
        match page.next_after {
            Some(c) => after = Some(c),
            None => return Ok(()),
        }
    }
}

/// Pages through every account and its journal, feeding the auditor.
fn scan(ctx: &Ctx, auditor: &mut Auditor) -> Result<(), CliError> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} auditing [{bar:30}] {pos}/{len} accounts (listed so far), {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(TICK);
    let result = scan_pages(ctx, auditor, &bar);
    bar.finish_and_clear();
    result
}

fn scan_pages(ctx: &Ctx, auditor: &mut Auditor, bar: &ProgressBar) -> Result<(), CliError> {
    // `cursor` is what the next page is asked after; `last` is the last account audited.
    let mut cursor: Option<AccountId> = None;
    let mut last: Option<AccountId> = None;
    let mut entries: u64 = 0;
    loop {
        let path = match &cursor {
            None => format!("/admin/accounts?limit={ADMIN_PAGE_MAX}"),
            Some(a) => format!("/admin/accounts?after={a}&limit={ADMIN_PAGE_MAX}"),
        };
        let page: AccountsPage = ctx.client.get(&path)?;
        bar.inc_length(page.accounts.len() as u64);
        for account in &page.accounts {
            // Strictly increasing ids: a repeated account would be counted twice in conservation.
            if last.as_ref().is_some_and(|prev| account.id <= *prev) {
                return Err(bad_order(ctx, &path, &account.id, last.as_ref()));
            }
            auditor.begin_account(account);
            let mut after_seq = 0u64;
            while auditor.wants_more() {
                let epath = format!(
                    "/admin/accounts/{}/entries?after_seq={after_seq}&limit={ENTRIES_PAGE_MAX}",
                    account.id
                );
                let ep: EntriesPage = ctx.client.get(&epath)?;
                auditor.feed(&ep.entries);
                entries += ep.entries.len() as u64;
                match ep.next_after_seq {
                    None => break,
                    Some(next) if next <= after_seq => {
                        return Err(CliError::BadResponse {
                            url: format!("{}{epath}", ctx.client.base()),
                            status: 200,
                            detail: format!(
                                "next_after_seq {next} does not advance past after_seq {after_seq}"
                            ),
                        })
                    }
                    Some(next) => after_seq = next,
                }
            }
            auditor.end_account();
            last = Some(account.id.clone());
            bar.inc(1);
            bar.set_message(format!("{entries} entries"));
        }
        match page.next_after {
            None => return Ok(()),
            Some(next) => {
                // The cursor must move forward, or the listing would never end.
                if cursor.as_ref().is_some_and(|prev| next <= *prev) {
                    return Err(CliError::BadResponse {
                        url: format!("{}{path}", ctx.client.base()),
                        status: 200,
                        detail: format!("next_after {next} does not advance past after"),
                    });
                }
                cursor = Some(next);
            }
        }
    }
}

fn bad_order(ctx: &Ctx, path: &str, id: &AccountId, prev: Option<&AccountId>) -> CliError {
    CliError::BadResponse {
        url: format!("{}{path}", ctx.client.base()),
        status: 200,
        detail: format!(
            "account {id} is listed after {}: the listing must be in strictly increasing id order",
            prev.map_or("(start)", |p| p.as_str())
        ),
    }
}
