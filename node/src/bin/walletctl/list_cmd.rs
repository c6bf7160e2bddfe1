//! `account transfers ID`: an account's transfers (either side), newest first, page by page.
//!
//! One page by default (with the cursor of the next one), or `--all` to follow every page;
//! pages are printed as they arrive, so a long list is never held in memory.

use crate::client::CliError;
use crate::commands::{account_id, write_raw, Ctx, Failure};
use crate::output;
use node::ledger::exec::decode_list_cursor;
use protocol::api::{TransferStatus, TransfersPage, TRANSFERS_PAGE_MAX};

/// `account transfers ID [--status S] [--after CURSOR] [--limit N] [--all]`.
pub fn transfers(
    ctx: &Ctx,
    id: &str,
    status: Option<&str>,
    after: Option<String>,
    limit: Option<u32>,
    all: bool,
) -> Result<(), Failure> {
    let id = account_id("account", id)?;
    if let Some(s) = status {
        serde_json::from_value::<TransferStatus>(serde_json::Value::String(s.to_owned())).map_err(
            |_| {
                CliError::Usage(format!(
                    "--status {s}: a transfer's status is pending, completed or failed"
                ))
            },
        )?;
    }
    if let Some(a) = &after {
        decode_list_cursor(a).ok_or_else(|| {
            CliError::Usage(format!(
                "--after {a}: not a cursor; pass the next_after of an earlier page"
            ))
        })?;
    }
    if let Some(l) = limit {
        if l == 0 || l > TRANSFERS_PAGE_MAX {
            return Err(CliError::Usage(format!(
                "--limit {l}: a page holds 1 to {TRANSFERS_PAGE_MAX} transfers"
            ))
            .into());
        }
    }
    let page_url = |after: Option<&str>, limit: Option<u32>| {
        let mut q = Vec::new();
        if let Some(s) = status {
            q.push(format!("status={s}"));
        }
        if let Some(a) = after {
            q.push(format!("after={a}"));
        }
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        format!("/v1/accounts/{id}/transfers?{}", q.join("&"))
    };
    if !all {
        let page: TransfersPage = ctx.client.get(&page_url(after.as_deref(), limit))?;
        if ctx.json {
            output::json(&page)?;
        } else {
            output::line(output::transfer_header())?;
            for t in &page.transfers {
                output::line(output::transfer_row(t))?;
            }
            if let Some(next) = page.next_after {
                output::line(format!("(more: --after {next}, or --all)"))?;
            }
        }
        return Ok(());
    }
    // --all: the JSON form is one TransfersPage with next_after null, written as it goes.
    let limit = Some(limit.unwrap_or(TRANSFERS_PAGE_MAX));
    let mut first = true;
    if ctx.json {
        write_raw("{\"transfers\":[")?;
    } else {
        output::line(output::transfer_header())?;
    }
    let mut after = after;
    loop {
        let page: TransfersPage = ctx.client.get(&page_url(after.as_deref(), limit))?;
        for t in &page.transfers {
            if ctx.json {
                let text = serde_json::to_string(t)
                    .map_err(|e| CliError::Output(std::io::Error::other(e)))?;
                write_raw(&format!("{}{text}", if first { "" } else { "," }))?;
                first = false;
            } else {
                output::line(output::transfer_row(t))?;
            }
        }
        match page.next_after {
            None => break,
            // Each page's cursor must lie past the previous one, or following them would
            // never end.
            Some(next) if !advances(after.as_deref(), &next) => {
                return Err(CliError::BadResponse {
                    url: format!("{}{}", ctx.client.base(), page_url(Some(&next), limit)),
                    status: 200,
                    detail: format!("next_after {next} does not advance past the page's cursor"),
                }
                .into())
            }
            Some(next) => after = Some(next),
        }
    }
    if ctx.json {
        output::line("],\"next_after\":null}")?;
    }
    Ok(())
}

/// Whether the cursor `next` lies past `after` in the list (cursors are this node's own).
fn advances(after: Option<&str>, next: &str) -> bool {
    match (after.map(decode_list_cursor), decode_list_cursor(next)) {
        (None, Some(_)) => true,
        (Some(Some(a)), Some(n)) => n > a,
        _ => false,
    }
}
